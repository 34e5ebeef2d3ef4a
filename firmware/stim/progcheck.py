"""The program validator: every key of a program checked against the engine's ranges, before the
program runs (stim.programs.prepare). Pure module, loaded for a check and forgotten again
(stim.forget), as the board validator is: its rules and messages need not stay on the heap.
"""

from stim import pulse
from stim.programs import ProgramError

_KEYS = (
    "id",
    "name",
    "kind",
    "rate_hz",
    "phase_us",
    "gap_us",
    "session_min",
    "burst",
    "sweep",
    "cycle",
)


def _num(p, key, lo, hi, where=""):
    v = p.get(key)
    name = where + key
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ProgramError(name, "must be a number")
    if not lo <= v <= hi:
        raise ProgramError(name, "%s outside %s..%s" % (v, lo, hi))
    return v


def check(p, max_session_min):
    """Every key of a program (not its plan: stim.programs.prepare builds that); raises
    ProgramError naming the first bad key."""
    if not isinstance(p, dict):
        raise ProgramError("<program>", "must be an object")
    for k in p:
        if k not in _KEYS:
            raise ProgramError(k, "unknown key")
    for k in ("id", "name"):
        if not isinstance(p.get(k), str) or not p.get(k):
            raise ProgramError(k, "must be a non-empty string")
    if p.get("kind") not in ("tens", "ems"):
        raise ProgramError("kind", "must be 'tens' or 'ems'")
    rate = _num(p, "rate_hz", pulse.RATE_MIN_HZ, pulse.RATE_MAX_HZ)
    phase = _num(p, "phase_us", pulse.PHASE_MIN_US, pulse.PHASE_MAX_US)
    gap = _num(p, "gap_us", pulse.GAP_MIN_US, pulse.GAP_MAX_US)
    s = _num(p, "session_min", 1, max_session_min)
    if s != int(s):
        raise ProgramError("session_min", "must be whole minutes")
    shapes = [k for k in ("burst", "sweep", "cycle") if k in p]
    if len(shapes) > 1:
        raise ProgramError(shapes[1], "a program has at most one of burst, sweep, cycle")
    worst_phase, worst_rate = phase, rate
    if "burst" in p:
        b = p["burst"]
        if not isinstance(b, dict) or set(b) != {"pulses", "rate_hz"}:
            raise ProgramError("burst", "needs exactly pulses and rate_hz")
        n = _num(b, "pulses", 2, 20, "burst.")
        br = _num(b, "rate_hz", 0.5, 10, "burst.")
        if n != int(n):
            raise ProgramError("burst.pulses", "must be a whole number")
        if n / rate >= 1.0 / br:
            raise ProgramError(
                "burst", "%d pulses at %s Hz do not fit a %s Hz burst" % (n, rate, br)
            )
    if "sweep" in p:
        w = p["sweep"]
        if not isinstance(w, dict) or set(w) != {"param", "min", "max", "period_s", "shape"}:
            raise ProgramError("sweep", "needs exactly param, min, max, period_s, shape")
        if w["param"] not in ("phase_us", "rate_hz"):
            raise ProgramError("sweep.param", "must be 'phase_us' or 'rate_hz'")
        if w["shape"] not in ("triangle", "sine"):
            raise ProgramError("sweep.shape", "must be 'triangle' or 'sine'")
        if w["param"] == "phase_us":
            lo = _num(w, "min", pulse.PHASE_MIN_US, pulse.PHASE_MAX_US, "sweep.")
            hi = _num(w, "max", lo, pulse.PHASE_MAX_US, "sweep.")
            worst_phase = hi
        else:
            lo = _num(w, "min", pulse.RATE_MIN_HZ, pulse.RATE_MAX_HZ, "sweep.")
            hi = _num(w, "max", lo, pulse.RATE_MAX_HZ, "sweep.")
            worst_rate = hi
        _num(w, "period_s", 0.2, 60, "sweep.")
    if "cycle" in p:
        c = p["cycle"]
        if not isinstance(c, dict) or set(c) != {"on_s", "off_s", "ramp_up_s", "ramp_down_s"}:
            raise ProgramError("cycle", "needs exactly on_s, off_s, ramp_up_s, ramp_down_s")
        on = _num(c, "on_s", 1, 60, "cycle.")
        _num(c, "off_s", 0, 120, "cycle.")
        up = _num(c, "ramp_up_s", 0, 10, "cycle.")
        down = _num(c, "ramp_down_s", 0, 10, "cycle.")
        if up + down > on:
            raise ProgramError("cycle", "ramps (%s s + %s s) longer than on_s %s" % (up, down, on))
    try:
        pulse.check(worst_rate, worst_phase, gap)
    except pulse.PulseError as e:
        raise ProgramError("phase_us", str(e)) from None

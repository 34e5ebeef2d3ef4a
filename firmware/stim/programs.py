"""Therapy programs as data, and their validation.

Each program is a dict (DESIGN.md, "Built-in programs"); a program is validated when loaded and
a bad one is refused with a ProgramError naming the key, never adjusted into something else
(SR-3). The modulation engine (stim/modulation.py) turns a program into a pulse schedule.

Keys:
  id, name: identifiers; kind: "tens" or "ems"; session_min: default session length
  rate_hz, phase_us, gap_us: the base pulse
  burst:  {"pulses": N, "rate_hz": bursts per second}: trains of N pulses at rate_hz
  sweep:  {"param": "phase_us" or "rate_hz", "min": a, "max": b, "period_s": T,
           "shape": "triangle" or "sine"}: the parameter moves between a and b every T seconds
  cycle:  {"on_s", "off_s", "ramp_up_s", "ramp_down_s"}: EMS work/rest cycles with ramps
"""

from micropython import const

from stim import modulation

DEFAULT_GAP_US = 20


# The built-ins, each built as a dict when it is asked for (PROGRAMS[i], by_id): the code that
# builds them runs from flash (ROMFS or frozen), where six dicts kept alive from import would take
# about 1.3 KB of the heap; only the selected program's dict stays alive.
def _program(i):
    if i == 0:
        return {
            "id": "tens_conventional",
            "name": "TENS conventional",
            "kind": "tens",
            "rate_hz": 100,
            "phase_us": 100,
            "gap_us": DEFAULT_GAP_US,
            "session_min": 30,
        }
    if i == 1:
        return {
            "id": "tens_acupuncture",
            "name": "TENS acupuncture-like",
            "kind": "tens",
            "rate_hz": 2,
            "phase_us": 200,
            "gap_us": DEFAULT_GAP_US,
            "session_min": 30,
        }
    if i == 2:
        return {
            "id": "tens_burst",
            "name": "TENS burst",
            "kind": "tens",
            "rate_hz": 100,
            "phase_us": 200,
            "gap_us": DEFAULT_GAP_US,
            "burst": {"pulses": 7, "rate_hz": 2},
            "session_min": 30,
        }
    if i == 3:
        return {
            "id": "tens_modulated",
            "name": "TENS modulated",
            "kind": "tens",
            "rate_hz": 80,
            "phase_us": 200,
            "gap_us": DEFAULT_GAP_US,
            "sweep": {
                "param": "phase_us",
                "min": 200,
                "max": 330,
                "period_s": 1.0,
                "shape": "triangle",
            },
            "session_min": 30,
        }
    if i == 4:
        return {
            "id": "ems_relax",
            "name": "EMS relax (massage)",
            "kind": "ems",
            "rate_hz": 8,
            "phase_us": 250,
            "gap_us": DEFAULT_GAP_US,
            "session_min": 30,
        }
    if i == 5:
        return {
            "id": "ems_strength",
            "name": "EMS strength",
            "kind": "ems",
            "rate_hz": 50,
            "phase_us": 300,
            "gap_us": DEFAULT_GAP_US,
            "cycle": {"on_s": 5.0, "off_s": 10.0, "ramp_up_s": 1.5, "ramp_down_s": 1.0},
            "session_min": 20,
        }
    raise IndexError(i)


_N = const(6)


_custom = []  # installed programs (stim.custom), after the built-ins


def install(ps):
    """The custom programs (checked by stim.custom) from now on, after the built-ins."""
    global _custom
    _custom = ps


def installed():
    return _custom


def is_builtin(pid):
    for i in range(_N):
        if _program(i)["id"] == pid:
            return True
    return False


class _Table:
    """PROGRAMS: the built-in programs in order, each a fresh dict, then the installed ones
    (len, index, iterate)."""

    def __len__(self):
        return _N + len(_custom)

    def __getitem__(self, i):
        if i < 0:
            i += len(self)
        if i >= _N:
            return _custom[i - _N]
        return _program(i)


PROGRAMS = _Table()


class ProgramError(ValueError):
    def __init__(self, key, msg):
        super().__init__("%s: %s" % (key, msg))
        self.key = key


def validate(p, max_session_min=120):
    """Check a program dict, every key (built-in or not); return it unchanged or raise
    ProgramError naming the key."""
    return prepare(p, max_session_min, True)[0]


def prepare(p, max_session_min=120, whole=False):
    """(program, plan): the program checked and its pulse plan (stim.modulation.plan) built
    once; a program is only valid if the engine can play it. A built-in program (one of
    PROGRAMS, checked whole by the tests) is only checked against the board's session limit
    unless `whole` (an installed one was checked whole when installed, stim.custom); any other
    goes through stim.progcheck, loaded for the check and forgotten
    again (its rules and messages need not stay on the heap, nor cost a boot)."""
    i = -1 if whole or not isinstance(p, dict) else index_of(p.get("id"))
    if i >= 0 and PROGRAMS[i] == p:
        if p["session_min"] > max_session_min:
            raise ProgramError(
                "session_min", "%s outside 1..%s" % (p["session_min"], max_session_min)
            )
    else:
        import stim
        from stim import progcheck

        try:
            progcheck.check(p, max_session_min)
        finally:
            stim.forget("progcheck")
    try:
        return p, modulation.plan(p)
    except modulation.PlanError as e:
        raise ProgramError("sweep", str(e)) from None


def by_id(pid):
    i = index_of(pid)
    if i >= 0:
        return PROGRAMS[i]
    raise ProgramError("id", "no program %r" % (pid,))


def index_of(pid):
    for i in range(_N):
        if _program(i)["id"] == pid:
            return i
    for i in range(len(_custom)):
        if _custom[i]["id"] == pid:
            return _N + i
    return -1

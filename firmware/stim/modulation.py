"""One modulation engine for every program: what each pulse looks like, and how strong.

Pure module. A program becomes
- a *plan*: the repeating list of pulses, each (period_us, phase_us, gap_us). A continuous
  program has one entry; a burst has N entries, the last one carrying the pause to the next
  burst; a sweep has one entry per pulse across one sweep period. The pulse engine plays the
  plan in hardware, one entry per period, with no CPU work per pulse edge;
- an *envelope*: the amplitude factor 0..1 at time t into the session (EMS on/off cycles with
  their ramps; 1 otherwise). Soft start and session-end ramps multiply on top of it.
"""

import math

_MAX_PLAN = 400  # pulses per plan cycle: bounds the memory a plan takes on the device


class PlanError(ValueError):
    pass


def _sweep_value(sw, x):
    """Sweep position 0..1 over one period -> parameter value between min and max."""
    if sw["shape"] == "triangle":
        f = 2 * x if x < 0.5 else 2 - 2 * x
    else:
        f = 0.5 - 0.5 * math.cos(2 * math.pi * x)
    return sw["min"] + (sw["max"] - sw["min"]) * f


def plan(program):
    """The repeating pulse plan of a validated program: [(period_us, phase_us, gap_us), ...]."""
    rate = program["rate_hz"]
    phase = program["phase_us"]
    gap = program["gap_us"]
    period_us = int(1_000_000 / rate + 0.5)
    b = program.get("burst")
    if b:
        n = int(b["pulses"])
        burst_us = int(1_000_000 / b["rate_hz"] + 0.5)
        last = burst_us - (n - 1) * period_us
        return [(period_us, phase, gap)] * (n - 1) + [(last, phase, gap)]
    sw = program.get("sweep")
    if sw:
        out = []
        t_us = 0
        total_us = int(sw["period_s"] * 1_000_000 + 0.5)
        while t_us < total_us:
            x = t_us / total_us
            if sw["param"] == "phase_us":
                p_us, ph = period_us, int(_sweep_value(sw, x) + 0.5)
            else:
                p_us, ph = int(1_000_000 / _sweep_value(sw, x) + 0.5), phase
            out.append((p_us, ph, gap))
            t_us += p_us
            if len(out) > _MAX_PLAN:
                raise PlanError("sweep needs more than %d pulses per period" % _MAX_PLAN)
        return out
    return [(period_us, phase, gap)]


def envelope(program, t_s):
    """Amplitude factor 0..1 at t_s seconds into the program (EMS work/rest cycles)."""
    c = program.get("cycle")
    if not c:
        return 1.0
    on, off = c["on_s"], c["off_s"]
    up, down = c["ramp_up_s"], c["ramp_down_s"]
    x = t_s % (on + off)
    if x >= on:
        return 0.0
    if up and x < up:
        return x / up
    if down and x > on - down:
        return (on - x) / down
    return 1.0


def cycle_ms(program):
    """The EMS work/rest cycle in whole milliseconds, for integer-only checks of where in it
    a moment falls: (period_ms, on_ms, plateau_from_ms, plateau_to_ms), or None without one.
    The envelope is 1 from plateau_from_ms to plateau_to_ms and 0 from on_ms to period_ms."""
    c = program.get("cycle")
    if not c:
        return None
    on = int(c["on_s"] * 1000 + 0.5)
    up = int(c["ramp_up_s"] * 1000 + 0.5)
    down = int(c["ramp_down_s"] * 1000 + 0.5)
    return (on + int(c["off_s"] * 1000 + 0.5), on, up, on - down)


def ramp(t_s, length_s):
    """Soft-start factor: linear from 0 to 1 over length_s (SR-2)."""
    if length_s <= 0 or t_s >= length_s:
        return 1.0
    if t_s <= 0:
        return 0.0
    return t_s / length_s

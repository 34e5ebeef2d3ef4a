"""One modulation engine for every program: what each pulse looks like, and how strong.

Pure module. A program becomes
- a *plan*: the repeating list of pulses, each (period_ns, phase_us, gap_us). A continuous
  program has one entry; a burst has N entries, the last one carrying the pause to the next
  burst; a sweep has one entry per pulse across one sweep period. The pulse engine plays the
  plan in hardware, one entry per period, with no CPU work per pulse edge;
- an *envelope*: the amplitude factor at time t into the session (EMS on/off cycles with
  their ramps; full otherwise), in integers (envelope_q12). Soft start and session-end fades
  multiply on top of it.
"""

import math

from stim import pulse

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
    """The repeating pulse plan of a validated program: [(period_ns, phase_us, gap_us), ...].
    Periods are in nanoseconds, so the rate the engine plays is right to well under 1 ppm."""
    rate = program["rate_hz"]
    phase = program["phase_us"]
    gap = program["gap_us"]
    period_ns = pulse.period_ns(rate)
    b = program.get("burst")
    if b:
        n = int(b["pulses"])
        last = pulse.period_ns(b["rate_hz"]) - (n - 1) * period_ns
        return [(period_ns, phase, gap)] * (n - 1) + [(last, phase, gap)]
    sw = program.get("sweep")
    if sw:
        out = []
        t_ns = 0
        total_ns = int(sw["period_s"] * 1_000_000_000 + 0.5)
        while t_ns < total_ns:
            x = t_ns / total_ns
            if sw["param"] == "phase_us":
                p_ns, ph = period_ns, int(_sweep_value(sw, x) + 0.5)
            else:
                p_ns, ph = pulse.period_ns(_sweep_value(sw, x)), phase
            out.append((p_ns, ph, gap))
            t_ns += p_ns
            if len(out) > _MAX_PLAN:
                raise PlanError("sweep needs more than %d pulses per period" % _MAX_PLAN)
        return out
    return [(period_ns, phase, gap)]


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


Q12 = 4096  # 1.0 in the envelope's fixed point


def envelope_q12(cycle, t_ms):
    """Amplitude factor in 1/4096 at t_ms milliseconds into the program, for
    cycle = cycle_ms(program) (None: no work/rest cycle, always full). Integers only: the
    control loop works the level out with it every tick of an EMS ramp without allocating."""
    if cycle is None:
        return Q12
    period, on, up_end, down_from = cycle
    x = t_ms % period
    if x >= on:
        return 0
    if x < up_end:
        return x * Q12 // up_end
    if x > down_from:
        return (on - x) * Q12 // (on - down_from)
    return Q12


def envelope(program, t_s):
    """Amplitude factor 0..1 at t_s seconds into the program (EMS work/rest cycles)."""
    return envelope_q12(cycle_ms(program), int(t_s * 1000)) / Q12

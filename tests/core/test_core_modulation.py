"""Plans and envelopes (stim/modulation.py), run by pytest and on MicroPython's VM alike."""

from coreenv import close, modulation, programs, pulse, req


@req("FR-3")
def test_continuous_program_has_one_plan_entry():
    # periods in nanoseconds
    assert modulation.plan(programs.by_id("tens_conventional")) == [(10_000_000, 100, 20)]
    assert modulation.plan(programs.by_id("tens_acupuncture")) == [(500_000_000, 200, 20)]


@req("FR-3")
def test_burst_plan_fills_the_burst_period():
    p = programs.by_id("tens_burst")
    plan = modulation.plan(p)
    assert len(plan) == p["burst"]["pulses"]
    assert sum(e[0] for e in plan) == 500_000_000
    assert all(e[1:] == (200, 20) for e in plan)
    assert all(e[0] == 10_000_000 for e in plan[:-1])


@req("FR-3")
def test_sweep_plan_goes_min_max_min_over_one_period():
    p = programs.by_id("tens_modulated")
    plan = modulation.plan(p)
    widths = [e[1] for e in plan]
    sw = p["sweep"]
    assert widths[0] == sw["min"] and max(widths) == sw["max"]
    top = widths.index(max(widths))
    assert all(widths[i] <= widths[i + 1] for i in range(top))
    assert all(widths[i] >= widths[i + 1] for i in range(top, len(widths) - 1))
    assert abs(sum(e[0] for e in plan) - sw["period_s"] * 1_000_000_000) < plan[0][0]
    for period_ns, phase_us, gap_us in plan:  # every entry playable
        pulse.cycles(period_ns, phase_us, gap_us, 125_000_000)


@req("FR-3")
def test_ems_envelope_ramps_holds_and_rests():
    p = programs.by_id("ems_strength")
    c = p["cycle"]
    env = modulation.envelope
    assert env(p, 0) == 0.0
    assert close(env(p, c["ramp_up_s"] / 2), 0.5)
    assert env(p, c["ramp_up_s"]) == 1.0
    assert close(env(p, c["on_s"] - c["ramp_down_s"] / 2), 0.5)
    assert env(p, c["on_s"] + 0.1) == 0.0
    assert close(env(p, c["on_s"] + c["off_s"] + c["ramp_up_s"] / 2), 0.5)  # next cycle
    assert env(programs.by_id("tens_conventional"), 123.4) == 1.0


@req("FR-3")
def test_envelope_in_integers_matches_the_cycle_in_milliseconds():
    """envelope_q12: what the control loop uses every tick (1/4096, integer ms)."""
    p = programs.by_id("ems_strength")
    c = modulation.cycle_ms(p)
    period, on, up_end, down_from = c
    q = modulation.envelope_q12
    assert q(None, 12_345) == modulation.Q12
    assert q(c, 0) == 0 and q(c, up_end) == modulation.Q12
    assert q(c, up_end // 2) == modulation.Q12 // 2
    assert q(c, down_from) == modulation.Q12 and q(c, on) == 0
    assert q(c, period + up_end // 2) == modulation.Q12 // 2  # the next cycle
    assert all(isinstance(q(c, t), int) for t in range(0, period, 97))

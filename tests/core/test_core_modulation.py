"""Plans and envelopes (stim/modulation.py), run by pytest and on MicroPython's VM alike."""

from coreenv import close, modulation, programs, pulse, req


@req("FR-3")
def test_continuous_program_has_one_plan_entry():
    assert modulation.plan(programs.by_id("tens_conventional")) == [(10_000, 100, 20)]
    assert modulation.plan(programs.by_id("tens_acupuncture")) == [(500_000, 200, 20)]


@req("FR-3")
def test_burst_plan_fills_the_burst_period():
    p = programs.by_id("tens_burst")
    plan = modulation.plan(p)
    assert len(plan) == p["burst"]["pulses"]
    assert sum(e[0] for e in plan) == 500_000
    assert all(e[1:] == (200, 20) for e in plan)
    assert all(e[0] == 10_000 for e in plan[:-1])


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
    assert abs(sum(e[0] for e in plan) - sw["period_s"] * 1_000_000) < plan[0][0]
    for period_us, phase_us, gap_us in plan:  # every entry playable
        pulse.cycles(1e6 / period_us, phase_us, gap_us, 125_000_000, period_us)


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


@req("SR-2")
def test_soft_start_ramp_is_linear_and_clamped():
    assert modulation.ramp(-1, 2.0) == 0.0
    assert modulation.ramp(0, 2.0) == 0.0
    assert close(modulation.ramp(0.5, 2.0), 0.25)
    assert modulation.ramp(2.0, 2.0) == 1.0
    assert modulation.ramp(5, 2.0) == 1.0
    assert modulation.ramp(0, 0) == 1.0

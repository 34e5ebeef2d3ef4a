"""SR-3 caps and program validation (stim/limits.py, stim/programs.py), run by pytest and on
MicroPython's VM alike: the error classes carry their key on both."""

from coreenv import BOARD, close, limits, programs, raises, req


@req("SR-3")
def test_max_step_is_the_last_step_check_accepts():
    lim = BOARD["limits"]
    for p in programs.PROGRAMS:
        top = limits.max_step(BOARD, p)
        assert 0 < top <= BOARD["intensity"]["steps"]
        for step in range(top + 1):
            f = limits.check(BOARD, p, step)
            assert f["peak_ma"] <= lim["max_peak_ma"]
            assert f["power_w_per_cm2"] <= lim["max_power_w_per_cm2"]
        if top < BOARD["intensity"]["steps"]:
            raises(limits.LimitError, limits.check, BOARD, p, top + 1)


@req("SR-3")
def test_refusal_names_the_limit():
    p = programs.by_id("tens_conventional")
    e = raises(limits.LimitError, limits.check, BOARD, p, BOARD["intensity"]["steps"] + 1)
    assert e.key == "step" and str(e).startswith("step: ")
    assert isinstance(e, ValueError)
    assert raises(limits.LimitError, limits.check, BOARD, p, True).key == "step"
    assert raises(limits.LimitError, limits.check, BOARD, p, 2.0).key == "step"
    low_cap = dict(BOARD, limits=dict(BOARD["limits"], max_peak_ma=10.0))
    e = raises(limits.LimitError, limits.check, low_cap, p, 10)  # 15 mA
    assert e.key == "max_peak_ma" and str(e).startswith("max_peak_ma: ")


def test_step_current_is_the_step_times_the_board_step():
    assert limits.step_ma(BOARD, 0) == 0
    assert limits.step_ma(BOARD, 3) == 3 * BOARD["intensity"]["step_ma"]


@req("FR-1")
@req("SR-3")
def test_builtin_programs_validate_unchanged():
    for p in programs.PROGRAMS:
        assert programs.validate(p) is p


@req("FR-1")
@req("SR-3")
def test_bad_programs_are_refused_naming_the_key():
    base = programs.by_id("tens_conventional")
    cases = (
        (dict(base, rate_hz=500), "rate_hz"),
        (dict(base, phase_us="100"), "phase_us"),
        (dict(base, kind="other"), "kind"),
        (dict(base, colour=1), "colour"),
        (dict(base, burst={"pulses": 7}), "burst"),
        (dict(base, session_min=2.5), "session_min"),
    )
    for p, key in cases:
        e = raises(programs.ProgramError, programs.validate, p)
        assert e.key == key, (key, e.key)
        assert str(e).startswith(key + ": ")
    assert raises(programs.ProgramError, programs.by_id, "nope").key == "id"


def _capped(**caps):
    """BOARD with some of its caps replaced (everything else as the board file says)."""
    return dict(BOARD, limits=dict(BOARD["limits"], **caps))


@req("SR-3")
def test_each_cap_holds_exactly_at_its_value():
    # A cap set to exactly what step k gives admits step k and refuses step k + 1: every
    # comparison is "above the cap", never "at it".
    p = programs.by_id("tens_conventional")
    for k in (1, 6):
        peak = limits.step_ma(BOARD, k)
        f1 = limits.figures(BOARD, p, peak, load_ohm=1)  # the worst load for current caps
        f500 = limits.figures(BOARD, p, peak)
        cases = (
            ("max_peak_ma", peak),
            ("max_charge_per_phase_uc", f1["charge_per_phase_uc"]),
            ("max_rms_ma_per_cm2", f1["rms_ma_per_cm2"]),
            ("max_power_w_per_cm2", f500["power_w_per_cm2"]),
        )
        for key, value in cases:
            board = _capped(**{key: value})
            limits.check(board, p, k)
            assert raises(limits.LimitError, limits.check, board, p, k + 1).key == key
            assert limits.max_step(board, p) == k


@req("SR-3")
def test_steps_from_zero_to_the_last_are_accepted_and_no_other():
    p = programs.by_id("tens_conventional")
    board = _capped(max_peak_ma=1e6, max_charge_per_phase_uc=1e6,
                    max_rms_ma_per_cm2=1e6, max_power_w_per_cm2=1e6)  # fmt: skip
    top = BOARD["intensity"]["steps"]
    assert limits.check(board, p, 0)["peak_ma"] == 0
    assert limits.check(board, p, top)["peak_ma"] == limits.step_ma(board, top)
    assert raises(limits.LimitError, limits.check, board, p, top + 1).key == "step"
    assert raises(limits.LimitError, limits.check, board, p, -1).key == "step"
    assert limits.max_step(board, p) == top


@req("SR-3")
def test_the_worst_case_of_a_sweep_or_a_burst_is_what_the_caps_are_checked_at():
    base = {"rate_hz": 80, "phase_us": 200}
    assert limits.worst_case(base) == (200, 80, 80)
    rate_sweep = dict(base, sweep={"param": "rate_hz", "max": 120})
    assert limits.worst_case(rate_sweep) == (200, 120, 120)  # the fastest pulses, all the time
    phase_sweep = dict(base, sweep={"param": "phase_us", "max": 300})
    assert limits.worst_case(phase_sweep) == (300, 80, 80)
    burst = dict(base, rate_hz=100, burst={"pulses": 7, "rate_hz": 2})
    assert limits.worst_case(burst) == (200, 100, 14)  # 7 pulses twice a second


@req("SR-3")
def test_figures_are_the_pulse_physics_worked_out_by_hand():
    p = {"rate_hz": 100, "phase_us": 250}
    f = limits.figures(BOARD, p, 10.0)  # into the reference load, 500 ohm, unless told
    area = BOARD["limits"]["min_electrode_area_cm2"]
    # 10 mA for 250 us: 2.5 uC a phase; rms over two phases 100 times a second
    assert close(f["charge_per_phase_uc"], 2.5)
    rms_ma = 10.0 * (2 * 250e-6 * 100) ** 0.5
    assert close(f["rms_ma"], rms_ma) and close(f["rms_ma_per_cm2"], rms_ma / area)
    assert close(f["power_w_per_cm2"], (rms_ma / 1000) ** 2 * 500 / area)
    # into 1 ohm the source gives what it is set to; into a high load the compliance limits it
    high = limits.figures(BOARD, p, 10.0, load_ohm=1e6)
    assert close(high["peak_ma"], BOARD["analog"]["compliance_v"] / 1e6 * 1000)


@req("SR-3")
def test_max_step_is_zero_when_even_the_first_step_is_over_a_cap():
    p = programs.by_id("tens_conventional")
    tiny = limits.step_ma(BOARD, 1) / 2
    assert limits.max_step(_capped(max_peak_ma=tiny), p) == 0

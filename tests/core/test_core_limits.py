"""SR-3 caps and program validation (stim/limits.py, stim/programs.py), run by pytest and on
MicroPython's VM alike: the error classes carry their key on both."""

from coreenv import BOARD, limits, programs, raises, req


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

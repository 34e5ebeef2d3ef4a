"""Programs as data, their validation, the SR-3 hard caps and the modulation engine.

- Validation (firmware/stim/programs.py): every built-in program validates; every kind of bad
  program is refused with a ProgramError whose key and message name the offending key, and no
  mutation of a good program gets anything else out of `validate` (no TypeError, no silent fix).
- SR-3 (firmware/stim/limits.py): for both boards, every program at every intensity step is
  either accepted with figures inside every board limit (recomputed here independently) or
  refused with a LimitError naming the first limit it would exceed; `max_step` is exactly the
  last accepted step. Then the proof at the pins: each program at its `max_step` current runs on
  the simulated board into 500 ohm and the board model's measured peak current, charge per phase,
  rms current density and power density stay within the board's limits.
- Modulation (firmware/stim/modulation.py): burst, sweep and EMS envelope shapes.
"""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_tools.boards import load_board
from host_tools.sim.rig import FirmwareRig

BOARDS = ("pico", "wearable_v1")
REF_OHM = 500

_PURE = FirmwareRig("pico")
pulse = _PURE.import_module("stim.pulse")
programs = _PURE.import_module("stim.programs")
modulation = _PURE.import_module("stim.modulation")
limits = _PURE.import_module("stim.limits")
ProgramError = programs.ProgramError
LimitError = limits.LimitError
PROGRAM_IDS = [p["id"] for p in programs.PROGRAMS]
LIMIT_ORDER = (
    "max_peak_ma",
    "max_charge_per_phase_uc",
    "max_rms_ma_per_cm2",
    "max_power_w_per_cm2",
)


def prog(pid: str) -> dict:
    return copy.deepcopy(programs.by_id(pid))


def base(**kw) -> dict:
    p = {
        "id": "custom",
        "name": "Custom",
        "kind": "tens",
        "rate_hz": 100,
        "phase_us": 200,
        "gap_us": 20,
        "session_min": 30,
    }
    p.update(kw)
    return p


# ---- validation ----------------------------------------------------------------------------
@pytest.mark.req("FR-1")
@pytest.mark.req("SR-3")
@pytest.mark.parametrize("pid", PROGRAM_IDS)
def test_builtin_programs_validate(pid):
    p = programs.by_id(pid)
    before = copy.deepcopy(p)
    assert programs.validate(p) is p
    assert p == before  # returned unchanged, never adjusted
    for board in BOARDS:
        programs.validate(p, load_board(board)["limits"]["max_session_min"])
    # and the pulse engine can play every entry of its plan
    for period_ns, phase_us, gap_us in modulation.plan(p):
        pulse.cycles(period_ns, phase_us, gap_us, 125_000_000)


@pytest.mark.req("FR-1")
def test_builtin_ids_unique_and_found():
    assert len(set(PROGRAM_IDS)) == len(PROGRAM_IDS)
    for i, pid in enumerate(PROGRAM_IDS):
        assert programs.by_id(pid)["id"] == pid
        assert programs.index_of(pid) == i
    assert programs.index_of("nope") == -1
    with pytest.raises(ProgramError, match="^id: "):
        programs.by_id("nope")


def _with(pid, **changes):
    p = prog(pid)
    for k, v in changes.items():
        if "." in k:
            outer, inner = k.split(".")
            if v is _DEL:
                del p[outer][inner]
            else:
                p[outer][inner] = v
        elif v is _DEL:
            del p[k]
        else:
            p[k] = v
    return p


_DEL = object()
SWEEP = {"param": "phase_us", "min": 200, "max": 330, "period_s": 1.0, "shape": "triangle"}
BURST = {"pulses": 7, "rate_hz": 2}
CYCLE = {"on_s": 5.0, "off_s": 10.0, "ramp_up_s": 1.5, "ramp_down_s": 1.0}

BAD = [
    # (program, key named)
    ([1, 2], "<program>"),
    (_with("tens_conventional", colour="red"), "colour"),
    (_with("tens_conventional", id=""), "id"),
    (_with("tens_conventional", id=5), "id"),
    (_with("tens_conventional", name=_DEL), "name"),
    (_with("tens_conventional", kind="ecg"), "kind"),
    (_with("tens_conventional", rate_hz="100"), "rate_hz"),
    (_with("tens_conventional", rate_hz=True), "rate_hz"),
    (_with("tens_conventional", rate_hz=None), "rate_hz"),
    (_with("tens_conventional", rate_hz=_DEL), "rate_hz"),
    (_with("tens_conventional", rate_hz=0), "rate_hz"),
    (_with("tens_conventional", rate_hz=150.5), "rate_hz"),
    (_with("tens_conventional", rate_hz=float("nan")), "rate_hz"),
    (_with("tens_conventional", rate_hz=float("inf")), "rate_hz"),
    (_with("tens_conventional", phase_us=19), "phase_us"),
    (_with("tens_conventional", phase_us=501), "phase_us"),
    (_with("tens_conventional", phase_us=[100]), "phase_us"),
    (_with("tens_conventional", gap_us=0), "gap_us"),
    (_with("tens_conventional", gap_us=201), "gap_us"),
    (_with("tens_conventional", session_min=0), "session_min"),
    (_with("tens_conventional", session_min=121), "session_min"),
    (_with("tens_conventional", session_min=1.5), "session_min"),
    (_with("tens_burst", burst=7), "burst"),
    (_with("tens_burst", **{"burst.rate_hz": _DEL}), "burst"),
    (_with("tens_burst", **{"burst.extra": 1}), "burst"),
    (_with("tens_burst", **{"burst.pulses": 1}), "burst.pulses"),
    (_with("tens_burst", **{"burst.pulses": 21}), "burst.pulses"),
    (_with("tens_burst", **{"burst.pulses": 7.5}), "burst.pulses"),
    (_with("tens_burst", **{"burst.pulses": "7"}), "burst.pulses"),
    (_with("tens_burst", **{"burst.rate_hz": 0.4}), "burst.rate_hz"),
    (_with("tens_burst", **{"burst.rate_hz": 11}), "burst.rate_hz"),
    # 20 pulses at 100 Hz take 0.2 s: no room in a 10 Hz burst period
    (_with("tens_burst", burst={"pulses": 20, "rate_hz": 10}), "burst"),
    (_with("tens_burst", burst={"pulses": 10, "rate_hz": 10}), "burst"),  # exactly full
    (_with("tens_modulated", sweep="fast"), "sweep"),
    (_with("tens_modulated", **{"sweep.shape": _DEL}), "sweep"),
    (_with("tens_modulated", **{"sweep.param": "gap_us"}), "sweep.param"),
    (_with("tens_modulated", **{"sweep.shape": "square"}), "sweep.shape"),
    (_with("tens_modulated", **{"sweep.min": 10}), "sweep.min"),
    (_with("tens_modulated", **{"sweep.max": 190}), "sweep.max"),  # below min
    (_with("tens_modulated", **{"sweep.max": 600}), "sweep.max"),
    (_with("tens_modulated", **{"sweep.max": "330"}), "sweep.max"),
    (_with("tens_modulated", **{"sweep.period_s": 0.1}), "sweep.period_s"),
    (_with("tens_modulated", **{"sweep.period_s": 61}), "sweep.period_s"),
    (_with("tens_modulated", sweep=dict(SWEEP, param="rate_hz", min=0, max=100)), "sweep.min"),
    (_with("tens_modulated", sweep=dict(SWEEP, param="rate_hz", min=50, max=151)), "sweep.max"),
    (_with("ems_strength", cycle=[5, 10, 1, 1]), "cycle"),
    (_with("ems_strength", **{"cycle.off_s": _DEL}), "cycle"),
    (_with("ems_strength", **{"cycle.on_s": 0.5}), "cycle.on_s"),
    (_with("ems_strength", **{"cycle.on_s": 61}), "cycle.on_s"),
    (_with("ems_strength", **{"cycle.off_s": -1}), "cycle.off_s"),
    (_with("ems_strength", **{"cycle.ramp_up_s": 11}), "cycle.ramp_up_s"),
    (_with("ems_strength", **{"cycle.ramp_down_s": "1"}), "cycle.ramp_down_s"),
    # ramps (3 s + 2.5 s) longer than the 5 s on-time
    (_with("ems_strength", cycle=dict(CYCLE, ramp_up_s=3, ramp_down_s=2.5)), "cycle"),
    (_with("tens_burst", sweep=dict(SWEEP)), "sweep"),
    (_with("tens_modulated", cycle=dict(CYCLE)), "cycle"),
    (_with("tens_burst", cycle=dict(CYCLE)), "cycle"),
]


@pytest.mark.req("FR-1")
@pytest.mark.req("SR-3")
@pytest.mark.parametrize(
    ("p", "key"), BAD, ids=["%d-%s" % (i, k) for i, (_p, k) in enumerate(BAD)]
)
def test_bad_program_names_the_key(p, key):
    with pytest.raises(ProgramError) as e:
        programs.validate(p)
    assert e.value.key == key
    assert str(e.value).startswith(key + ": ")
    assert len(str(e.value)) > len(key) + 4  # says what is wrong, too


@pytest.mark.req("FR-1")
@pytest.mark.req("SR-3")
def test_two_shapes_message():
    with pytest.raises(ProgramError, match="at most one of burst, sweep, cycle"):
        programs.validate(_with("tens_burst", sweep=dict(SWEEP)))


@pytest.mark.req("SR-3")
def test_session_limit_is_the_boards():
    p = _with("tens_conventional", session_min=61)
    programs.validate(p)  # within the default 120 min
    with pytest.raises(ProgramError, match="^session_min: "):
        programs.validate(p, max_session_min=60)


# Random mutations of good programs: `validate` either accepts (returning the same, unchanged
# object) or raises ProgramError; never another exception, never a silent fix.
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 1000),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "tens", "ems", "phase_us", "rate_hz", "triangle", "sine", "x"]),
    st.lists(st.integers(0, 500), max_size=3),
    st.dictionaries(st.sampled_from(["pulses", "rate_hz", "on_s", "min", "max"]), st.integers()),
)
_top_keys = st.sampled_from(
    ["id", "name", "kind", "rate_hz", "phase_us", "gap_us", "session_min", "burst", "sweep",
     "cycle", "extra"]
)  # fmt: skip
_sub_keys = st.sampled_from(
    ["pulses", "rate_hz", "param", "min", "max", "period_s", "shape", "on_s", "off_s",
     "ramp_up_s", "ramp_down_s", "extra"]
)  # fmt: skip
_mutation = st.one_of(
    st.tuples(st.just("del"), _top_keys, st.none()),
    st.tuples(st.just("set"), _top_keys, _values),
    st.tuples(st.just("sub_del"), _sub_keys, st.none()),
    st.tuples(st.just("sub_set"), _sub_keys, _values),
    st.tuples(st.just("scale"), _top_keys, st.floats(-2, 3)),
    st.tuples(st.just("sub_scale"), _sub_keys, st.floats(-2, 3)),
)


def _mutate(p: dict, m) -> None:
    op, key, v = m
    nested = [d for d in (p.get("burst"), p.get("sweep"), p.get("cycle")) if isinstance(d, dict)]
    if op == "del":
        p.pop(key, None)
    elif op == "set":
        p[key] = v
    elif op == "scale":
        if isinstance(p.get(key), int | float) and not isinstance(p.get(key), bool):
            p[key] = p[key] * v
    else:
        for d in nested:
            if op == "sub_del":
                d.pop(key, None)
            elif op == "sub_set":
                d[key] = v
            elif isinstance(d.get(key), int | float) and not isinstance(d.get(key), bool):
                d[key] = d[key] * v


@pytest.mark.req("FR-1")
@pytest.mark.req("SR-3")
@settings(max_examples=1500, deadline=None, derandomize=True)
@given(pid=st.sampled_from(PROGRAM_IDS), muts=st.lists(_mutation, min_size=1, max_size=3))
def test_mutated_programs_validate_or_raise_program_error(pid, muts):
    p = prog(pid)
    for m in muts:
        _mutate(p, m)
    before = copy.deepcopy(p)
    try:
        out = programs.validate(p)
    except ProgramError as e:
        assert isinstance(e.key, str) and str(e).startswith(e.key + ": ")
        return
    assert out is p
    assert repr(p) == repr(before)  # nothing clipped or filled in
    # what was accepted really is inside the documented ranges
    assert pulse.RATE_MIN_HZ <= p["rate_hz"] <= pulse.RATE_MAX_HZ
    assert pulse.PHASE_MIN_US <= p["phase_us"] <= pulse.PHASE_MAX_US
    assert pulse.GAP_MIN_US <= p["gap_us"] <= pulse.GAP_MAX_US
    assert sum(k in p for k in ("burst", "sweep", "cycle")) <= 1


@pytest.mark.req("SR-3")
def test_a_program_the_engine_cannot_play_is_refused_by_validation():
    """A sweep needing 800 pulses per period exceeds the plan bound: refused when loaded, with
    a ProgramError naming the sweep, rather than accepted and failing later."""
    p = _with("tens_modulated", sweep=dict(SWEEP, period_s=10))
    with pytest.raises(programs.ProgramError) as e:
        programs.validate(p)
    assert e.value.key == "sweep"


# ---- SR-3: caps at every step ----------------------------------------------------------------
def expected_figures(board: dict, p: dict, peak_ma: float) -> dict:
    """SR-3 figures recomputed from DESIGN.md for a program at a peak current (worst case)."""
    phase_us, rate = p["phase_us"], p["rate_hz"]
    sw = p.get("sweep")
    if sw and sw["param"] == "phase_us":
        phase_us = max(phase_us, sw["max"])
    if sw and sw["param"] == "rate_hz":
        rate = max(rate, sw["max"])
    if "burst" in p:
        rate = p["burst"]["pulses"] * p["burst"]["rate_hz"]  # pulses per second on average
    area = board["limits"]["min_electrode_area_cm2"]
    # rms of a biphasic train: two phases of width w per period 1/f
    rms_ma = peak_ma * math.sqrt(2 * phase_us * 1e-6 * rate)
    i500 = min(peak_ma, board["analog"]["compliance_v"] / REF_OHM * 1000)
    rms500 = i500 * math.sqrt(2 * phase_us * 1e-6 * rate)
    return {
        "max_peak_ma": peak_ma,
        "max_charge_per_phase_uc": peak_ma * phase_us / 1000,
        "max_rms_ma_per_cm2": rms_ma / area,
        "max_power_w_per_cm2": (rms500 / 1000) ** 2 * REF_OHM / area,
    }


def assert_step_verdicts(board: dict, p: dict) -> set:
    """Every step 0..steps: accepted within every limit, or refused naming the first limit it
    exceeds; max_step is the last accepted step. Returns the limit keys that refused."""
    lim = board["limits"]
    steps = board["intensity"]["steps"]
    accepted, refused = [], set()
    for step in range(0, steps + 1):
        peak = step * board["intensity"]["step_ma"]
        fig = expected_figures(board, p, peak)
        # (a figure exactly at a cap is allowed; float noise at the boundary either way)
        over = [k for k in LIMIT_ORDER if fig[k] > lim[k] * (1 + 1e-9)]
        at_or_over = [k for k in LIMIT_ORDER if fig[k] > lim[k] * (1 - 1e-9)]
        try:
            limits.check(board, p, step)
        except LimitError as e:
            assert e.key in at_or_over, "step %d refused (%s), within that limit" % (step, e)
            earlier = LIMIT_ORDER[: LIMIT_ORDER.index(e.key)]
            assert not set(earlier) & set(over), (step, e.key, over)  # the first one exceeded
            assert str(e).startswith(e.key + ": ") and "cap" in str(e)
            refused.add(e.key)
            continue
        assert not over, "step %d accepted over %s" % (step, over)
        accepted.append(step)
    # accepted steps are 0..max_step with no holes: raising the intensity never comes back
    ms = limits.max_step(board, p)
    assert accepted == list(range(0, ms + 1)), (accepted, ms)
    if ms < steps:
        with pytest.raises(LimitError):
            limits.check(board, p, ms + 1)
    return refused


@pytest.mark.req("SR-3")
@pytest.mark.parametrize("pid", PROGRAM_IDS)
@pytest.mark.parametrize("board_name", BOARDS)
def test_every_step_within_caps_or_refused(board_name, pid):
    board = load_board(board_name)
    assert_step_verdicts(board, programs.by_id(pid))
    # the figures the firmware reports agree with the independent ones
    ms = limits.max_step(board, programs.by_id(pid))
    peak = limits.step_ma(board, ms)
    got = limits.figures(board, programs.by_id(pid), peak)
    exp = expected_figures(board, programs.by_id(pid), peak)
    assert got["peak_ma"] == pytest.approx(min(peak, board["analog"]["compliance_v"] * 2))
    assert got["charge_per_phase_uc"] == pytest.approx(exp["max_charge_per_phase_uc"])
    assert got["rms_ma_per_cm2"] == pytest.approx(exp["max_rms_ma_per_cm2"])
    assert got["power_w_per_cm2"] == pytest.approx(exp["max_power_w_per_cm2"])


def _tight(board_name: str, **lim) -> dict:
    b = copy.deepcopy(load_board(board_name))
    b["limits"].update(lim)
    return b


@pytest.mark.req("SR-3")
@pytest.mark.parametrize("board_name", BOARDS)
def test_each_limit_can_refuse_and_is_named(board_name):
    """Boards with one limit tightened: every kind of cap is the one that refuses, by name."""
    seen = set()
    for lim in (
        {"max_peak_ma": 20.0},
        {"max_charge_per_phase_uc": 5.0},
        {"max_rms_ma_per_cm2": 0.3},
        {"max_power_w_per_cm2": 0.0003},
    ):
        board = _tight(board_name, **lim)
        for p in programs.PROGRAMS:
            seen |= assert_step_verdicts(board, p)
    assert seen == set(LIMIT_ORDER)


@st.composite
def valid_programs(draw):
    rate = draw(st.integers(1, 150))
    phase = draw(st.integers(20, 500))
    gap = draw(st.integers(1, 200))
    p = base(rate_hz=rate, phase_us=phase, gap_us=gap)
    shape = draw(st.sampled_from(["none", "burst", "sweep_phase", "sweep_rate", "cycle"]))
    if shape == "burst":
        br = draw(st.sampled_from([0.5, 1, 2, 3, 5, 10]))
        top = min(20, math.ceil(rate / br) - 1)
        if top >= 2:
            p["burst"] = {"pulses": draw(st.integers(2, top)), "rate_hz": br}
    elif shape == "sweep_phase":
        hi = draw(st.integers(phase, 500))
        p["sweep"] = {"param": "phase_us", "min": phase, "max": hi, "period_s": 1.0,
                      "shape": draw(st.sampled_from(["triangle", "sine"]))}  # fmt: skip
    elif shape == "sweep_rate":
        hi = draw(st.integers(rate, 150))
        p["sweep"] = {"param": "rate_hz", "min": rate, "max": hi, "period_s": 1.0,
                      "shape": "triangle"}  # fmt: skip
    elif shape == "cycle":
        p["cycle"] = dict(CYCLE)
    return programs.validate(p)


@pytest.mark.req("SR-3")
@settings(max_examples=150, deadline=None, derandomize=True)
@given(p=valid_programs(), board_name=st.sampled_from(BOARDS))
def test_random_programs_within_caps_or_refused(p, board_name):
    assert_step_verdicts(load_board(board_name), p)


def _measure_at_pins(board_name: str, p: dict, ma: float, seconds: float = 3.2):
    rig = FirmwareRig(board_name, load_ohm={1: REF_OHM, 2: REF_OHM})
    rig.boost(True)
    ch = rig.channel(0)
    plan = modulation.plan(p)
    ch.start(plan, int(ma * 1000))
    rig.run_for(seconds)
    ch.stop()
    rig.run_for(0.01)
    return rig, plan


@pytest.mark.req("SR-3")
@pytest.mark.parametrize("pid", PROGRAM_IDS)
@pytest.mark.parametrize("board_name", BOARDS)
def test_max_step_at_the_pins_within_caps(board_name, pid):
    """The proof at the pins: the program at its highest allowed step, into 500 ohm: charge per
    phase, rms current density and power density measured by the board model (the peak current
    has its own test below)."""
    board = load_board(board_name)
    p = programs.by_id(pid)
    ma = limits.step_ma(board, limits.max_step(board, p))
    rig, plan = _measure_at_pins(board_name, p, ma)
    lim = board["limits"]
    cm = rig.model.channels[0]
    assert rig.model.violations == []
    assert cm.pulses >= 4
    # the current really was delivered (the check is not vacuous) ...
    assert cm.max_peak_ma == pytest.approx(ma, abs=0.15)
    # ... and the charge per phase stayed within the cap
    assert cm.max_phase_charge_c * 1e6 <= lim["max_charge_per_phase_uc"]
    # rms current density and power density over whole plan cycles
    log = cm.pulse_log
    n = len(plan)
    cycles = len(log) // n
    assert cycles >= 1
    window_s = cycles * sum(e[0] for e in plan) / 1e9
    i2t = sum(
        (q.peak_a_ma / 1000) ** 2 * q.width_a_s + (q.peak_b_ma / 1000) ** 2 * q.width_b_s
        for q in log[: cycles * n]
    )
    rms_ma = math.sqrt(i2t / window_s) * 1000
    area = lim["min_electrode_area_cm2"]
    assert rms_ma / area <= lim["max_rms_ma_per_cm2"]
    assert (rms_ma / 1000) ** 2 * REF_OHM / area <= lim["max_power_w_per_cm2"]


@pytest.mark.req("SR-3")
@pytest.mark.parametrize("pid", PROGRAM_IDS)
@pytest.mark.parametrize("board_name", ["pico", "wearable_v1"])
def test_max_step_peak_at_the_pins_within_cap(board_name, pid):
    board = load_board(board_name)
    p = programs.by_id(pid)
    ma = limits.step_ma(board, limits.max_step(board, p))
    rig, _plan = _measure_at_pins(board_name, p, ma, 0.6)
    cm = rig.model.channels[0]
    assert cm.pulses >= 1
    assert cm.max_peak_ma <= board["limits"]["max_peak_ma"], cm.max_peak_ma


@pytest.mark.req("SR-3")
@pytest.mark.parametrize("board_name", BOARDS)
def test_over_limit_requests_refused(board_name):
    board = load_board(board_name)
    steps = board["intensity"]["steps"]
    p = programs.by_id("tens_conventional")
    ms = limits.max_step(board, p)
    assert ms == steps  # every built-in program reaches the top step on both boards
    with pytest.raises(LimitError, match="^step: %d outside 0..%d" % (ms + 1, steps)):
        limits.check(board, p, ms + 1)
    with pytest.raises(LimitError, match="^step: -1 outside 0..%d" % steps):
        limits.check(board, p, -1)

    # A custom program with the longest phase: charge per phase binds.
    wide = programs.validate(base(rate_hz=150, phase_us=500, gap_us=200))
    cap = board["limits"]["max_charge_per_phase_uc"]
    ms_wide = limits.max_step(board, wide)
    assert limits.step_ma(board, ms_wide) * 500 / 1000 <= cap
    if ms_wide < steps:
        with pytest.raises(LimitError) as e:
            limits.check(board, wide, ms_wide + 1)
        assert e.value.key == "max_charge_per_phase_uc"
        assert "uC per phase above the" in str(e.value)
    # and at the pins it stays within that cap
    rig, _plan = _measure_at_pins(board_name, wide, limits.step_ma(board, ms_wide), 0.2)
    assert rig.model.channels[0].max_phase_charge_c * 1e6 <= cap


@pytest.mark.req("SR-3")
def test_wearable_refuses_wide_phase_at_high_current():
    board = load_board("wearable_v1")
    wide = programs.validate(base(rate_hz=150, phase_us=500, gap_us=200))
    assert limits.max_step(board, wide) == 40  # 40 mA x 500 us = 20 uC, the cap
    with pytest.raises(LimitError, match=r"^max_charge_per_phase_uc: 25\.00 uC per phase above"):
        limits.check(board, wide, 50)


@pytest.mark.req("SR-3")
@pytest.mark.parametrize("step", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("board_name", BOARDS)
def test_non_finite_step_refused(board_name, step):
    board = load_board(board_name)
    with pytest.raises(LimitError, match="^step: "):
        limits.check(board, programs.by_id("tens_conventional"), step)


# ---- modulation ------------------------------------------------------------------------------
@pytest.mark.req("FR-3")
def test_builtin_burst_plan():
    p = programs.by_id("tens_burst")
    plan = modulation.plan(p)
    n = p["burst"]["pulses"]
    assert len(plan) == n
    assert [e[0] for e in plan[:-1]] == [round(1e9 / p["rate_hz"])] * (n - 1)
    assert sum(e[0] for e in plan) == round(1e9 / p["burst"]["rate_hz"])
    assert {(e[1], e[2]) for e in plan} == {(p["phase_us"], p["gap_us"])}


@pytest.mark.req("FR-3")
@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    rate=st.integers(2, 150),
    br=st.sampled_from([0.5, 1, 1.5, 2, 3, 4, 7, 10]),
    data=st.data(),
)
def test_burst_plan_pulses_at_burst_rate(rate, br, data):
    top = min(20, math.ceil(rate / br) - 1)
    if top < 2:
        return
    n = data.draw(st.integers(2, top))
    p = programs.validate(base(rate_hz=rate, burst={"pulses": n, "rate_hz": br}))
    plan = modulation.plan(p)
    assert len(plan) == n  # N pulses per burst
    period = plan[0][0]
    assert abs(period - 1e9 / rate) <= 0.5  # the pulse rate, to the nearest nanosecond
    assert all(e[0] == period for e in plan[:-1])  # ... for every pulse inside the burst
    assert abs(sum(e[0] for e in plan) - 1e9 / br) <= 0.5  # one burst per burst period
    assert plan[-1][0] >= period  # the pause is never shorter than a pulse period
    for e in plan:
        pulse.cycles(e[0], e[1], e[2], 125_000_000)


def _unimodal_up_down(values):
    top = values.index(max(values))
    assert all(a <= b for a, b in zip(values[:top], values[1 : top + 1], strict=True))
    assert all(a >= b for a, b in zip(values[top:], values[top + 1 :], strict=False))
    return top


@pytest.mark.req("FR-3")
def test_builtin_sweep_plan_min_max_min():
    p = programs.by_id("tens_modulated")
    sw = p["sweep"]
    plan = modulation.plan(p)
    widths = [e[1] for e in plan]
    assert widths[0] == sw["min"]
    assert max(widths) == sw["max"] and min(widths) == sw["min"]
    top = _unimodal_up_down(widths)
    assert top == len(plan) // 2  # the maximum half way through the period
    assert widths[-1] - sw["min"] <= (sw["max"] - sw["min"]) * 2 / len(plan) + 1
    assert sum(e[0] for e in plan) == sw["period_s"] * 1e9  # one sweep per period_s
    assert {e[0] for e in plan} == {round(1e9 / p["rate_hz"])}


@pytest.mark.req("FR-3")
@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    rate=st.integers(5, 150),
    lo=st.integers(20, 500),
    span=st.integers(0, 480),
    period_s=st.sampled_from([0.2, 0.5, 1.0, 2.0]),
    shape=st.sampled_from(["triangle", "sine"]),
    param=st.sampled_from(["phase_us", "rate_hz"]),
)
def test_sweep_plan_goes_min_max_min(rate, lo, span, period_s, shape, param):
    if param == "phase_us":
        sw = {"param": param, "min": lo, "max": min(500, lo + span)}
        p = base(rate_hz=rate, phase_us=lo)
    else:
        r_lo = max(1, min(150, lo // 4))
        sw = {"param": param, "min": r_lo, "max": min(150, r_lo + span // 4)}
        p = base(rate_hz=r_lo, phase_us=100)
    sw.update(period_s=period_s, shape=shape)
    p["sweep"] = sw
    programs.validate(p)
    try:
        plan = modulation.plan(p)
    except modulation.PlanError:
        assert param == "phase_us" and rate * period_s > 400  # covered by the test above
        return
    total = sum(e[0] for e in plan)
    assert period_s * 1e9 <= total < period_s * 1e9 + plan[-1][0]  # one sweep period
    if param == "phase_us":
        vals = [e[1] for e in plan]
    else:
        vals = [1e9 / e[0] for e in plan]  # the rate each entry plays
    assert vals[0] == pytest.approx(sw["min"], rel=1e-3)
    assert all(sw["min"] - 1 <= v <= sw["max"] + 1 for v in vals)
    _unimodal_up_down(vals)
    if sw["max"] > sw["min"]:
        # the peak (plateau) is centred half way through the sweep period
        tops = [i for i, v in enumerate(vals) if v == max(vals)]
        t_first = sum(e[0] for e in plan[: tops[0]])
        t_last = sum(e[0] for e in plan[: tops[-1]])
        assert abs((t_first + t_last) / 2 - period_s * 1e9 / 2) <= max(e[0] for e in plan)
    for e in plan:
        pulse.cycles(e[0], e[1], e[2], 125_000_000)


@pytest.mark.req("FR-3")
def test_ems_envelope_cycle():
    p = programs.by_id("ems_strength")
    c = p["cycle"]
    on, off, up, down = c["on_s"], c["off_s"], c["ramp_up_s"], c["ramp_down_s"]
    env = modulation.envelope
    # whole milliseconds, 1/4096 steps: what the control loop works with (envelope_q12)
    q = 1 / modulation.Q12 + 0.001 / min(up, down)
    assert env(p, 0.0) == 0.0
    assert env(p, up / 2) == pytest.approx(0.5, abs=q)
    assert env(p, up) == 1.0
    assert env(p, on - down / 2) == pytest.approx(0.5, abs=q)
    assert env(p, on) == 0.0
    ts = [i * 0.01 for i in range(int(2 * (on + off) / 0.01))]
    for t in ts:
        x = t % (on + off)
        e = env(p, t)
        assert 0.0 <= e <= 1.0
        if x < up:
            assert e == pytest.approx(x / up, abs=q), t  # linear ramp up over ramp_up_s
        elif x <= on - down:
            assert e == 1.0, t  # hold
        elif x < on:
            assert e == pytest.approx((on - x) / down, abs=q), t  # linear ramp down
        else:
            assert e == 0.0, t  # rest during off_s
    # continuous: no step bigger than the steeper ramp allows
    for t0, t1 in zip(ts, ts[1:], strict=False):
        assert abs(env(p, t1) - env(p, t0)) <= (t1 - t0) / min(up, down) + 2 * q


@pytest.mark.req("FR-3")
@pytest.mark.parametrize("pid", [p for p in PROGRAM_IDS if "cycle" not in programs.by_id(p)])
def test_envelope_is_flat_without_cycle(pid):
    p = programs.by_id(pid)
    assert all(modulation.envelope(p, t * 0.37) == 1.0 for t in range(100))


@pytest.mark.req("FR-3")
def test_envelope_without_ramps_and_soft_start():
    p = base(kind="ems", rate_hz=50, phase_us=300, cycle=dict(CYCLE, ramp_up_s=0, ramp_down_s=0))
    programs.validate(p)
    assert modulation.envelope(p, 0.0) == 1.0
    assert modulation.envelope(p, 4.99) == 1.0
    assert modulation.envelope(p, 5.0) == 0.0
    assert modulation.envelope(p, 15.0) == 1.0

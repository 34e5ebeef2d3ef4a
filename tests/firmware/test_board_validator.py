"""Board definitions: the shipped boards validate, and every kind of bad board is rejected with a
BoardError that names the offending key (SR-3: invalid configs are rejected, never clipped).

The validator under test is firmware/stim/board.py itself, the file that runs on the device,
loaded the way the host tools load it.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_tools import boards
from host_tools.boards import BoardError, load_board

pytestmark = pytest.mark.req("FR-4")

fw = boards.validator  # the firmware module, loaded from firmware/stim/board.py
ROOT = Path(__file__).resolve().parents[2]
BOARD_PY = ROOT / "firmware" / "stim" / "board.py"
PICO_RAW = json.loads((boards.BOARDS_DIR / "pico.json").read_text())

OPTIONAL_TOP = {"description", "battery", "console"}
OPTIONAL_PINS = {"buzzer", "haptic", "charge_detect"}  # only when the board file has them
REQUIRED_TOP = [
    "name",
    "hardware",
    "sysclk_hz",
    "channels",
    "buttons",
    "status_led",
    "boost_en",
    "boost_adc",
    "battery_adc",
    "analog",
    "intensity",
    "limits",
]


def good() -> dict:
    return copy.deepcopy(PICO_RAW)


def _split(path: str) -> list:
    """'channels[1].phase_b' -> ['channels', 1, 'phase_b']."""
    parts: list = []
    for part in path.split("."):
        name, *idx = part.replace("]", "").split("[")
        if name:
            parts.append(name)
        parts.extend(int(i) for i in idx)
    return parts


def mutate(obj: dict, path: str, value=None, *, delete: bool = False) -> dict:
    parts = _split(path)
    parent = obj
    for p in parts[:-1]:
        parent = parent[p]
    if delete:
        del parent[parts[-1]]
    else:
        parent[parts[-1]] = value
    return obj


def rejected(obj, key: str, *fragments: str) -> BoardError:
    """validate(obj) must raise BoardError for `key`, and say so in the message."""
    with pytest.raises(BoardError) as info:
        fw.validate(obj)
    e = info.value
    assert isinstance(e, ValueError)
    assert e.key == key, str(e)
    assert str(e).startswith(key + ": "), str(e)
    for f in fragments:
        assert f in str(e), (f, str(e))
    return e


def bad(path: str, value, key: str | None = None, *fragments: str) -> BoardError:
    return rejected(mutate(good(), path, value), key or path, *fragments)


# ---- the shipped boards --------------------------------------------------------------------


def test_shipped_boards_are_listed():
    names = boards.board_names()
    assert {"pico", "wearable_v1"} <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize("name", boards.board_names())
def test_shipped_board_validates(name):
    path = boards.BOARDS_DIR / (name + ".json")
    b = load_board(name)
    assert b["name"] == name  # the file name and the board's own name agree
    assert b["description"]
    assert load_board(path) == b  # by path as well as by name
    assert fw.validate(json.loads(path.read_text())) == b
    assert fw.load(str(path)) == b
    # The simulator writes the normalised dict back as /board.json: it must validate unchanged.
    assert fw.parse(json.dumps(b)) == b
    assert fw.validate(b) == b


def test_pico_wiring_matches_the_design():
    b = load_board("pico")
    assert b["sysclk_hz"] == 125_000_000
    assert b["channels"] == [
        {"phase_a": 2, "phase_b": 3, "level_pwm": 6, "sense_adc": 26, "led": 14},
        {"phase_a": 4, "phase_b": 5, "level_pwm": 8, "sense_adc": 27, "led": 15},
    ]
    assert b["buttons"] == {"power": 10, "mode": 11, "plus": 12, "minus": 13}
    assert b["status_led"] == {"r": 16, "g": 17, "b": 18}
    assert (b["boost_en"], b["boost_adc"], b["battery_adc"]) == (22, 28, 29)
    assert b["analog"]["battery_divider"] == 3.0  # GP29 reads VSYS/3 on a Pico
    assert b["intensity"] == {"steps": 40, "step_ma": 1.5}


def test_wearable_has_a_nonlinear_calibration():
    b = load_board("wearable_v1")
    cal = b["analog"]["level_calibration"]
    assert len(cal) >= 3
    fs = b["analog"]["level_full_scale_ma"]
    assert any(abs(ma - duty * fs) > 0.5 for duty, ma in cal)
    assert b["limits"]["min_electrode_area_cm2"] == 9.0
    assert b["intensity"]["steps"] * b["intensity"]["step_ma"] <= b["limits"]["max_peak_ma"]


def test_normalisation_fills_defaults_and_coerces_numbers():
    raw = good()
    del raw["description"], raw["battery"]
    for k in ("adc_vref_v", "level_pwm_hz", "level_calibration", "boost_rise_ms"):
        del raw["analog"][k]
    for k in ("max_rms_ma_per_cm2", "max_power_w_per_cm2", "default_session_min"):
        del raw["limits"][k]
    raw["analog"]["level_full_scale_ma"] = 100  # a JSON int where a number is expected
    raw["analog"]["sense_divider"] = 30
    before = copy.deepcopy(raw)

    b = fw.validate(raw)

    assert raw == before  # the input is not touched: validate returns a new dict
    assert b["description"] == ""
    assert b["battery"] == {"full_v": 4.2, "warn_v": 3.5, "cutoff_v": 3.3, "hysteresis_v": 0.05}
    an = b["analog"]
    assert an["adc_vref_v"] == 3.3
    assert an["level_pwm_hz"] == 100_000 and type(an["level_pwm_hz"]) is int
    assert an["boost_rise_ms"] == 2.0
    assert an["level_calibration"] == [[0.0, 0.0], [1.0, 100.0]]
    assert type(an["level_full_scale_ma"]) is float and type(an["sense_divider"]) is float
    lim = b["limits"]
    assert (lim["max_rms_ma_per_cm2"], lim["max_power_w_per_cm2"]) == (2.0, 0.25)
    assert lim["default_session_min"] == 30
    assert set(b) - OPTIONAL_PINS == set(REQUIRED_TOP) | OPTIONAL_TOP
    b["channels"][0]["led"] = 0
    assert raw["channels"][0]["led"] == 14


def test_default_session_fits_a_short_max_session():
    raw = good()
    del raw["limits"]["default_session_min"]
    raw["limits"]["max_session_min"] = 20
    assert fw.validate(raw)["limits"]["default_session_min"] == 20


# ---- files and JSON ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["{bad", "", '{"name": "pico",}', "[1, 2", b"\xff\xfe{"])
def test_json_syntax_error(text):
    with pytest.raises(BoardError) as info:
        fw.parse(text)
    assert info.value.key == "<json>"
    assert "not valid JSON" in str(info.value)


def test_json_syntax_error_in_a_file_names_the_file(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"name": "pico", ')
    with pytest.raises(BoardError) as info:
        load_board(p)
    assert info.value.key == "<json>"
    assert str(p) in str(info.value) and "not valid JSON" in str(info.value)


def test_top_level_must_be_an_object():
    with pytest.raises(BoardError) as info:
        fw.parse("[1, 2, 3]")
    assert info.value.key == "<board>" and "object" in str(info.value)


def test_missing_file(tmp_path):
    p = tmp_path / "nope.json"
    for call in (lambda: fw.load(str(p)), lambda: load_board(p)):
        with pytest.raises(BoardError) as info:
            call()
        assert info.value.key == "<file>"
        assert str(p) in str(info.value)


def test_unknown_board_name_lists_the_known_ones():
    with pytest.raises(BoardError) as info:
        load_board("no_such_board")
    assert info.value.key == "<file>"
    assert "no_such_board" in str(info.value) and "pico" in str(info.value)


def test_board_path():
    assert boards.board_path("pico") == boards.BOARDS_DIR / "pico.json"
    assert boards.board_path("some/dir/x.json") == Path("some/dir/x.json")
    assert boards.board_path(Path("x")) == Path("x")


def test_board_error_is_shared_with_the_firmware_module():
    assert boards.BoardError is fw.BoardError
    assert issubclass(BoardError, ValueError)
    e = BoardError("analog.sense_divider", "must be > 1")
    assert e.key == "analog.sense_divider"
    assert str(e) == "analog.sense_divider: must be > 1"


# ---- missing, unknown and mistyped keys ----------------------------------------------------


@pytest.mark.parametrize("key", REQUIRED_TOP)
def test_missing_required_top_level_key(key):
    rejected(mutate(good(), key, delete=True), key, "missing")


@pytest.mark.parametrize(
    "path",
    [
        "channels[1].led",
        "channels[0].phase_b",
        "buttons.plus",
        "status_led.g",
        "analog.level_full_scale_ma",
        "analog.sense_divider",
        "analog.sense_hold_tau_ms",
        "analog.compliance_v",
        "analog.boost_divider",
        "analog.battery_divider",
        "intensity.steps",
        "intensity.step_ma",
        "limits.max_peak_ma",
        "limits.max_charge_per_phase_uc",
        "limits.min_electrode_area_cm2",
        "limits.max_session_min",
    ],
)
def test_missing_required_key_in_a_section(path):
    rejected(mutate(good(), path, delete=True), path, "missing")


@pytest.mark.parametrize(
    "path",
    [
        "bogus",
        "analog.sense_divder",  # a typo must not silently fall back to a default
        "channels[1].phase_c",
        "buttons.reset",
        "status_led.w",
        "intensity.max",
        "limits.max_peak_a",
        "battery.warn",
    ],
)
def test_unknown_key(path):
    rejected(mutate(good(), path, 1), path, "unknown key")


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("name", 5, "string"),
        ("name", "Pico Board", "a-z"),
        ("name", "", "non-empty"),
        ("description", ["x"], "string"),
        ("sysclk_hz", "125000000", "integer"),
        ("sysclk_hz", 125e6, "integer"),
        ("channels", {"phase_a": 2}, "list"),
        ("channels[0]", [2, 3, 6, 26, 14], "object"),
        ("buttons", [10, 11, 12, 13], "object"),
        ("status_led", None, "object"),
        ("analog", "default", "object"),
        ("channels[0].led", "14", "GPIO"),
        ("channels[0].led", 14.0, "GPIO"),
        ("boost_en", None, "GPIO"),
        ("analog.sense_divider", "30", "number"),
        ("analog.compliance_v", None, "number"),
        ("analog.level_pwm_hz", 100000.5, "integer"),
        ("analog.level_calibration", "linear", "list"),
        ("analog.level_calibration[1]", [1.0], "[duty, ma] pair"),
        ("analog.level_calibration[1][1]", "100", "number"),
        ("intensity.steps", 40.0, "integer"),
        ("limits.max_session_min", 60.5, "integer"),
        ("limits.max_peak_ma", [60], "number"),
        ("battery", [4.2, 3.5, 3.3], "object"),
    ],
)
def test_wrong_type(path, value, expected):
    bad(path, value, None, expected)


@pytest.mark.parametrize(
    "path", ["channels[0].phase_a", "channels[1].led", "buttons.power", "status_led.r"]
)
@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_a_gpio(path, value):
    bad(path, value, None, "GPIO", "true" if value else "false")


def test_bool_is_not_a_number():
    bad("analog.sense_divider", True, None, "number")
    bad("intensity.steps", True, None, "integer")


# ---- pins ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, 30, 100, 2**70])
@pytest.mark.parametrize("path", ["channels[0].led", "buttons.minus", "status_led.b"])
def test_gpio_out_of_range(path, value):
    bad(path, value, None, "0..29")


@pytest.mark.req("SR-8")
@pytest.mark.parametrize(
    "path, value",
    [("boost_en", 23), ("boost_en", 25), ("channels[1].level_pwm", 24)],
)
def test_energy_outputs_must_be_pins_safe_off_covers(path, value):
    bad(path, value, None, "0..22")


@pytest.mark.req("SR-5")
@pytest.mark.parametrize("phase_b", [4, 1, 2, 7])
def test_phase_b_not_consecutive(phase_b):
    bad("channels[0].phase_b", phase_b, None, "phase_a + 1 = 3")


def test_phase_pair_at_the_top_of_the_output_range():
    raw = good()
    raw["channels"][1].update(phase_a=22, phase_b=23)
    rejected(raw, "channels[1].phase_b", "0..22")


@pytest.mark.parametrize(
    "path, value, first",
    [
        ("channels[1].led", 14, "channels[0].led"),
        ("channels[1].phase_a", 3, "channels[0].phase_b"),  # overlapping bridge pairs
        ("buttons.power", 2, "channels[0].phase_a"),
        ("status_led.r", 10, "buttons.power"),
        ("boost_en", 6, "channels[0].level_pwm"),
        ("channels[1].sense_adc", 26, "channels[0].sense_adc"),
        ("battery_adc", 28, "boost_adc"),  # ADC pins are distinct
        ("boost_adc", 27, "channels[1].sense_adc"),
        ("status_led.b", 29, None),  # reported at battery_adc, the later key
    ],
)
def test_duplicate_pin(path, value, first):
    raw = mutate(good(), path, value)
    if first is None:
        rejected(raw, "battery_adc", "status_led.b", "already used")
    else:
        rejected(raw, path, first, "already used")


def test_level_pwm_pins_must_not_share_a_pwm_output():
    # GPIO 6 and 22 are both PWM slice 3 channel A: one duty, so two channels could not differ.
    raw = good()
    raw["channels"][1]["level_pwm"] = 22
    raw["boost_en"] = 21
    rejected(raw, "channels[1].level_pwm", "channels[0].level_pwm", "3A")


@pytest.mark.parametrize(
    "path, value",
    [
        ("channels[0].sense_adc", 25),
        ("channels[1].sense_adc", 0),
        ("boost_adc", 5),
        ("battery_adc", 30),
    ],
)
def test_adc_pin_outside_26_to_29(path, value):
    bad(path, value, None, "ADC", "26..29")


def test_adc_channel_and_pwm_slice():
    assert [fw.adc_channel(g) for g in (26, 27, 28, 29)] == [0, 1, 2, 3]
    assert fw.pwm_slice(0) == (0, 0)
    assert fw.pwm_slice(3) == (1, 1)
    assert fw.pwm_slice(6) == fw.pwm_slice(22) == (3, 0)
    assert fw.pwm_slice(29) == (6, 1)
    for g in (25, 30, True, "26"):
        with pytest.raises(BoardError):
            fw.adc_channel(g)
    for g in (-1, 30, None):
        with pytest.raises(BoardError):
            fw.pwm_slice(g)


# ---- channels ------------------------------------------------------------------------------


def test_too_many_channels():
    """Two at most: a third channel is refused as a count, before its pins are looked at (its
    SENSE would need one of the ADC inputs the boost and the battery read)."""
    raw = good()
    raw["channels"].append(
        {"phase_a": 6, "phase_b": 7, "level_pwm": 9, "sense_adc": 28, "led": 19}
    )
    rejected(raw, "channels", "1..2", "3")


def test_empty_channel_list():
    bad("channels", [], None, "1..2", "0")


def test_a_single_channel_is_fine():
    raw = good()
    del raw["channels"][1]
    assert len(fw.validate(raw)["channels"]) == 1


# ---- analog --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cal, key, expected",
    [
        ([[0, 0], [0.6, 50], [0.5, 60], [1, 100]], "analog.level_calibration[2]", "rise"),
        ([[0, 0], [0.5, 60], [0.7, 50], [1, 100]], "analog.level_calibration[2]", "rise"),
        ([[0, 0], [0.5, 50], [0.5, 60], [1, 100]], "analog.level_calibration[2]", "rise"),
        ([[0.1, 0], [0.5, 50], [1, 100]], "analog.level_calibration[0]", "duty 0"),
        ([[0, 0], [1.2, 100]], "analog.level_calibration[1][0]", "0..1"),
        ([[0, -1], [1, 100]], "analog.level_calibration[0][1]", ">= 0"),
        ([[0, 0]], "analog.level_calibration", "2..32"),
        ([[i / 40, i * 2.5] for i in range(41)], "analog.level_calibration", "2..32"),
    ],
)
def test_non_monotonic_or_malformed_calibration(cal, key, expected):
    bad("analog.level_calibration", cal, key, expected)


@pytest.mark.parametrize(
    "cal, key",
    [
        ([[0, 0], [1, 90]], "analog.level_calibration[1]"),
        ([[0, 0], [0.5, 50], [0.9, 100]], "analog.level_calibration[2]"),
        ([[0, 0], [1, 100.001]], "analog.level_calibration[1]"),
    ],
)
def test_calibration_not_ending_at_full_scale(cal, key):
    bad("analog.level_calibration", cal, key, "level_full_scale_ma", "[1.0, 100]")


def test_calibration_end_tolerates_float_rounding():
    raw = mutate(good(), "analog.level_calibration", [[0, 0], [1, 100.0000001]])
    assert fw.validate(raw)["analog"]["level_calibration"][-1][0] == 1.0


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("analog.adc_vref_v", 5.0, "1..3.6"),
        ("analog.level_pwm_hz", 5000, "10000..1000000"),
        ("analog.level_full_scale_ma", 0, "> 0"),
        ("analog.level_full_scale_ma", 250, "<= 200"),
        ("analog.sense_divider", 1.0, "> 1"),
        ("analog.sense_hold_tau_ms", 0, "> 0"),
        ("analog.compliance_v", 151, "<= 150"),
        ("analog.boost_divider", 0.5, "> 1"),
        ("analog.boost_rise_ms", -2, "> 0"),
        ("analog.battery_divider", 0.9, ">= 1"),
        ("sysclk_hz", 300_000_000, "48000000..250000000"),
    ],
)
def test_analog_out_of_range(path, value, expected):
    bad(path, value, None, expected)


# ---- intensity and limits (SR-2, SR-3) -----------------------------------------------------


@pytest.mark.req("SR-2")
@pytest.mark.parametrize("step_ma", [2.01, 2.5, 10])
def test_step_above_2_ma(step_ma):
    raw = mutate(good(), "intensity.steps", 10)
    rejected(mutate(raw, "intensity.step_ma", step_ma), "intensity.step_ma", "<= 2", "SR-2")


@pytest.mark.req("SR-3")
def test_steps_times_step_above_full_scale():
    raw = mutate(good(), "intensity.steps", 100)  # 100 * 1.5 mA = 150 mA > 100 mA
    rejected(raw, "intensity.step_ma", "150", "level_full_scale_ma")


def test_steps_out_of_range():
    bad("intensity.steps", 0, None, "1..100")
    bad("intensity.steps", 101, None, "1..100")


@pytest.mark.req("SR-3")
@pytest.mark.parametrize("value", [100.5, 150])
def test_max_peak_above_full_scale(value):
    bad("limits.max_peak_ma", value, None, "<= 100", "level_full_scale_ma")


@pytest.mark.req("SR-3")
@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("limits.max_peak_ma", 0, "> 0"),
        ("limits.max_charge_per_phase_uc", 0, "> 0"),
        ("limits.min_electrode_area_cm2", -16, "> 0"),
        ("limits.max_rms_ma_per_cm2", 2.5, "<= 2"),
        ("limits.max_power_w_per_cm2", 0.3, "<= 0.25"),
        ("limits.max_session_min", 121, "1..120"),
        ("limits.max_session_min", 0, "1..120"),
        ("limits.default_session_min", 61, "1..60"),
    ],
)
def test_limits_out_of_range(path, value, expected):
    bad(path, value, None, expected)


@pytest.mark.parametrize(
    "path",
    [
        "analog.adc_vref_v",
        "analog.sense_divider",
        "analog.level_full_scale_ma",
        "analog.level_calibration[1][1]",
        "intensity.step_ma",
        "limits.max_peak_ma",
        "limits.max_charge_per_phase_uc",
        "limits.min_electrode_area_cm2",
        "battery.cutoff_v",
    ],
)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_rejected(path, value):
    bad(path, value, None, "finite")


def test_nan_literal_in_json_text():
    text = json.dumps(good()).replace('"sense_divider": 30.0', '"sense_divider": NaN')
    assert "NaN" in text
    with pytest.raises(BoardError) as info:
        fw.parse(text)
    assert info.value.key == "analog.sense_divider"


# ---- battery (SR-10) -----------------------------------------------------------------------


@pytest.mark.req("SR-10")
@pytest.mark.parametrize(
    "values, key, expected",
    [
        ({"cutoff_v": 3.5}, "battery.cutoff_v", "below battery.warn_v"),
        ({"cutoff_v": 3.6}, "battery.cutoff_v", "below battery.warn_v"),
        ({"warn_v": 4.2}, "battery.warn_v", "below battery.full_v"),
        ({"warn_v": 4.3, "cutoff_v": 3.0}, "battery.warn_v", "below battery.full_v"),
        ({"full_v": 4.4}, "battery.full_v", "2.5..4.35"),
        ({"cutoff_v": 2.4}, "battery.cutoff_v", "2.5..4.35"),
        ({"hysteresis_v": 0}, "battery.hysteresis_v", "> 0"),
        ({"hysteresis_v": 0.6}, "battery.hysteresis_v", "<= 0.5"),
    ],
)
def test_battery_thresholds(values, key, expected):
    raw = good()
    raw["battery"].update(values)
    rejected(raw, key, expected)


def test_battery_section_is_optional_but_checked_with_partial_values():
    raw = good()
    raw["battery"] = {"warn_v": 3.2}  # below the default cut-off of 3.3 V
    rejected(raw, "battery.cutoff_v", "below battery.warn_v")


# ---- random damage never escapes as anything but BoardError --------------------------------


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


GOOD_PATHS = [p for p in _paths(PICO_RAW) if p]
garbage = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
mutation = st.tuples(
    st.sampled_from(["delete", "replace", "add"]), st.sampled_from(GOOD_PATHS), garbage
)


def _apply(obj, op, path, value):
    parent = obj
    for p in path[:-1]:
        if not isinstance(parent, dict | list):
            return
        try:
            parent = parent[p]
        except (KeyError, IndexError, TypeError):
            return  # an earlier mutation removed this path
    last = path[-1]
    if isinstance(parent, dict):
        if op == "delete":
            parent.pop(last, None)
        elif op == "add":
            parent[str(last) + "_x"] = value
        else:
            parent[last] = value
    elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        if op == "delete":
            del parent[last]
        elif op == "add":
            parent.append(value)
        else:
            parent[last] = value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=3))
def test_random_damage_raises_only_board_error(mutations):
    raw = good()
    for op, path, value in mutations:
        _apply(raw, op, path, value)
    for check in (lambda: fw.validate(raw), lambda: fw.parse(json.dumps(raw))):
        try:
            b = check()
        except BoardError as e:
            assert e.key and str(e).startswith(e.key + ": ")
            continue
        # Some damage is harmless (e.g. an equal value, a deleted optional key): then the result
        # must be a complete, self-consistent board.
        assert fw.validate(b) == b
        assert set(b) - OPTIONAL_PINS == set(REQUIRED_TOP) | OPTIONAL_TOP


# ---- MicroPython fidelity ------------------------------------------------------------------


def test_board_py_compiles_with_mpy_cross(tmp_path):
    from host_tools.dev import mpybuild

    try:
        exe = mpybuild.mpy_cross()
    except mpybuild.BuildError as e:
        pytest.skip(str(e))
    out = tmp_path / "board.mpy"
    r = subprocess.run([exe, str(BOARD_PY), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0


def test_board_py_imports_nothing_but_json():
    # It runs on the device before anything else is trusted: no `machine`, nothing CPython-only.
    import ast

    tree = ast.parse(BOARD_PY.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)
    assert names == {"json"}


@pytest.mark.req("SR-3", "FR-26")
def test_a_buzzer_never_shares_a_level_pwm_slice_or_a_pin():
    """The buzzer's tone sets its PWM slice's frequency: on a LEVEL PWM's slice it would change
    the current calibration (SR-3), so such a board file is refused."""
    raw = copy.deepcopy(load_board("pico"))
    level = raw["channels"][0]["level_pwm"]  # GPIO 6: slice 3 A
    raw["buzzer"] = level + 1  # GPIO 7: slice 3 B
    with pytest.raises(BoardError) as e:
        fw.validate(raw)
    assert e.value.key == "buzzer" and "slice 3" in str(e.value)
    raw["buzzer"] = raw["status_led"]["r"]  # GPIO 16: slice 0, but a taken pin
    with pytest.raises(BoardError, match="one pin, one job"):
        fw.validate(raw)
    del raw["buzzer"]
    raw["haptic"] = 23  # not an output GPIO
    with pytest.raises(BoardError):
        fw.validate(raw)


@pytest.mark.req("FR-4")
def test_hardware_names_what_micropython_reports_on_the_board():
    assert boards.load_board("pico")["hardware"] == "Raspberry Pi Pico with RP2040"
    assert boards.load_board("wearable_v1")["hardware"] == "Wearable TENS v1 with RP2040"
    for bad in ("", 7, None, ["Raspberry Pi Pico"], "x" * 65, "Pico\twith RP2040", "Pico é"):
        raw = good()
        raw["hardware"] = bad
        with pytest.raises(fw.BoardError) as e:
            fw.validate(raw)
        assert e.value.key == "hardware", bad
    raw = good()
    raw["hardware"] = "x" * 64
    assert fw.validate(raw)["hardware"] == "x" * 64


@pytest.mark.req("SR-17", "FR-4")
def test_the_charger_signal_is_checked_like_every_pin():
    raw = json.loads((boards.BOARDS_DIR / "wearable_v1.json").read_text())
    assert fw.validate(raw)["charge_detect"] == {"pin": 18, "active": 0}
    for bad, key in (
        ({"pin": 18, "active": 2}, "charge_detect.active"),
        ({"pin": 18, "active": True}, "charge_detect.active"),
        ({"pin": 10, "active": 0}, "charge_detect.pin"),  # a bridge pin already
        ({"pin": 18}, "charge_detect.active"),
        ({"pin": 18, "active": 0, "level": 1}, "charge_detect.level"),
        (18, "charge_detect"),
    ):
        with pytest.raises(BoardError) as e:
            fw.validate({**raw, "charge_detect": bad})
        assert e.value.key == key, bad


# ---- the power model's keys (host_tools/sim/power.py) ---------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [("battery.capacity_mah", 0), ("battery.capacity_mah", 2.5e5), ("battery.capacity_mah", 500.5),
     ("analog.boost_efficiency", 0.0), ("analog.boost_efficiency", 1.2),
     ("analog.boost_efficiency", "high")],
)  # fmt: skip
def test_the_power_models_keys_are_checked(path, value):
    bad(path, value)


def test_the_power_models_keys_are_checked_but_not_kept_on_the_unit():
    """Only the host's power model reads them (from the file): the unit's RAM keeps none."""
    b = good()
    b["battery"]["capacity_mah"] = 800
    b["analog"]["boost_efficiency"] = 0.7
    v = boards.validate(b)
    assert "capacity_mah" not in v["battery"] and "boost_efficiency" not in v["analog"]

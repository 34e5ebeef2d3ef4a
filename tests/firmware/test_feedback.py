"""What the wearer feels or hears (stim/feedback.py, played by the unit): at the buzzer pin of
the pico board (a PWM tone) and the motor pin of the wearable, on the simulated chip. Each
pattern is told apart by its rhythm alone; faults always play; patterns never delay a stop."""

from __future__ import annotations

import ast
import itertools
import json
import re
from pathlib import Path

import pytest

from host_tools import fwcore
from host_tools.boards import load_board
from host_tools.testing.feedback_pins import Feedback
from host_tools.testing.status_led import WHITE, runs, status_colours

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware" / "stim"
ON_S = 0.5
START_S = 2.5
fb = fwcore.load("stim.feedback")


def private_consts(path: Path, prefix: str = "_") -> dict[str, int]:
    out = {}
    for node in ast.parse(path.read_text()).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.startswith(prefix)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", "") == "const"
        ):
            out[node.targets[0].id[len(prefix) :]] = node.value.args[0].value  # type: ignore[attr-defined]
    return out


def play(*events) -> str:
    """The player's output, one character per 10 ms tick, for a sequence of (event, count)."""
    p = fb.Player()
    for ev in events:
        p.play(*ev) if isinstance(ev, tuple) else p.play(ev)
    out = []
    for _ in range(2000):
        out.append(str(min(p.tick(), 1)))
        if p._ev < 0 and not p._qn:
            break
    return "".join(out).rstrip("0")


def rhythm(bits: str) -> tuple[int, ...]:
    """Lengths of the on runs and the gaps between them, in ticks."""
    return tuple(len(m.group(0)) for m in re.finditer(r"1+|0+", bits))


# ---- the vocabulary ------------------------------------------------------------------------
@pytest.mark.req("FR-26")
def test_every_pattern_has_a_rhythm_of_its_own():
    events = private_consts(FIRMWARE / "feedback.py")
    events.pop("TICK_MS")
    events = {k: v for k, v in events.items() if not k.startswith(("URGENT", "EVENTS", "QUEUE"))}
    shapes = {name: rhythm(play(ev)) for name, ev in events.items()}
    assert len(set(shapes.values())) == len(shapes), shapes


@pytest.mark.req("FR-26")
def test_a_counted_pattern_plays_its_count():
    assert rhythm(play((fb._COUNT, 3))) == (12, 20, 12, 20, 12)
    assert rhythm(play((fb._TENS, 2), (fb._UNITS, 3))) == (30, 20, 30, 20, 6, 20, 6, 20, 6)


@pytest.mark.req("FR-26")
def test_a_full_queue_drops_a_confirmation_but_never_a_fault():
    p = fb.Player()
    for _ in range(8):
        p.play(fb._STEP_UP)
    p.play(fb._STEP_DOWN)  # dropped: the queue is full
    p.play(fb._OPEN)  # a fault takes the last place
    played = []
    for _ in range(3000):
        p.tick()
        if p._ev >= 0 and (not played or played[-1] != p._ev):
            played.append(p._ev)
    assert fb._OPEN in played and fb._STEP_DOWN not in played


@pytest.mark.req("FR-26")
def test_the_players_keep_the_feedback_modules_numbers():
    """stim.unit and stim.wearer play the patterns by number (private constants cost no heap):
    each `_FB_<NAME>` must be stim.feedback's `_<NAME>`."""
    events = private_consts(FIRMWARE / "feedback.py")
    for mod in ("unit.py", "wearer.py"):
        used = private_consts(FIRMWARE / mod, "_FB_")
        assert used and all(events[k] == v for k, v in used.items()), (mod, used)


@pytest.mark.req("FR-26")
def test_each_electrode_fault_has_its_pattern():
    """stim.unit plays the fault code's pattern from a bytes literal indexed by the code."""
    events = private_consts(FIRMWARE / "feedback.py")
    tree = ast.parse((FIRMWARE / "unit.py").read_text())
    table = next(
        n.value.value  # type: ignore[attr-defined]
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_FAULT_PATTERN"
    )
    el = fwcore.load("stim.electrode")
    want = {el.OPEN: "OPEN", el.SHORT: "SHORT", el.SENSE: "FAULT", el.BOOST: "FAULT",
            el.LIFT: "FAULT", el.LIMIT: "LIMIT"}  # fmt: skip
    assert len(table) == len(el.NAMES)
    assert all(table[code] == events[name] for code, name in want.items())


# ---- at the pins ---------------------------------------------------------------------------
def approx_ms(*ms):
    """Pulse and gap lengths as the LED task plays them: 10 ms ticks, give or take one when a
    control cycle runs long."""
    return tuple(pytest.approx(x, abs=10) for x in ms)


def unit_on(make_unit, board="pico", settings=None, **kw):
    files = None
    if settings is not None:
        files = {"/board.json": json.dumps(load_board(board)), "/settings.json": settings}
    unit = make_unit(board, load_ohm={1: 1000.0, 2: 1000.0}, files=files, **kw)
    rec = Feedback(unit)
    unit.press("power", at=ON_S, hold_s=1.7)
    return unit, rec


@pytest.mark.req("FR-26")
def test_the_pico_plays_on_its_buzzer_and_the_wearable_on_its_motor(make_unit):
    for board in ("pico", "wearable_v1"):
        unit, rec = unit_on(make_unit, board)
        unit.run_until(3.0)
        assert rec.rhythm(1.0, 3.0)[:1] == (500,), board  # power on: one half-second


@pytest.mark.req("FR-26")
@pytest.mark.parametrize(
    ("board", "setting", "felt"),
    [
        ("pico", "both", True), ("pico", "tone", True),  # its buzzer
        ("pico", "haptic", False), ("pico", "off", False),
        ("wearable_v1", "both", True), ("wearable_v1", "haptic", True),  # its motor
        ("wearable_v1", "tone", False), ("wearable_v1", "off", False),
    ],
)  # fmt: skip
def test_the_feedback_setting_picks_the_buzzer_or_the_motor(make_unit, board, setting, felt):
    """The power-on pattern (not a fault) plays on the outputs the setting names: on the
    pico's buzzer for "tone" and "both", on the wearable's motor for "haptic" and "both", on
    neither for "off"."""
    cfg = json.dumps({"program": "tens_conventional", "session_min": 30, "channels": "both",
                      "feedback": setting})  # fmt: skip
    unit, rec = unit_on(make_unit, board, settings=cfg)
    unit.run_until(3.0)
    assert rec.rhythm(1.0, 3.0)[:1] == ((500,) if felt else ())


@pytest.mark.req("FR-26")
def test_a_step_up_and_a_session_start_are_felt(make_unit):
    unit, rec = unit_on(make_unit)
    unit.press("plus", at=START_S)  # starts the session: the start pattern
    unit.press("plus", at=START_S + 3.0)  # step 2: one tick
    unit.run_until(START_S + 4.0)
    assert rec.rhythm(START_S, START_S + 1.5)[:5] == approx_ms(60, 80, 60, 80, 300)
    assert rec.rhythm(START_S + 3.0, START_S + 4.0)[:1] == (pytest.approx(40, abs=10),)


@pytest.mark.req("SR-6", "FR-26")
def test_an_open_electrode_plays_its_pattern_even_with_feedback_off(make_unit):
    from host_tools.sim.board_model import OPEN_OHM

    off = json.dumps({"program": "tens_conventional", "session_min": 30, "channels": "both",
                      "feedback": "off"})  # fmt: skip
    unit, rec = unit_on(make_unit, settings=off)
    unit.press("plus", at=START_S)
    unit.press("plus", at=START_S + 3.0)
    t = START_S + 5.0
    unit.at(t, unit.model.set_load, 1, OPEN_OHM)
    unit.run_until(t + 1.0)
    assert rec.rhythm(0.0, t) == ()  # power on, start, step: silent with feedback off
    assert rec.rhythm(t, t + 1.0)[:9] == (50, 50, 50, 50, 50, 50, 50, 50, 50)  # open: 5 quick


@pytest.mark.req("SR-7", "FR-26")
def test_a_pattern_playing_never_delays_a_stop(make_unit):
    unit, rec = unit_on(make_unit)
    for i in range(4):
        unit.press("plus", at=START_S + 0.3 * i)
    t = START_S + 3.5
    unit.press("plus", at=t)  # a step-up tick plays...
    unit.press("power", at=t + 0.02, hold_s=0.2)  # ...as POWER goes down
    unit.run_until(t + 0.5)
    for ch in (1, 2):
        late = [p for p in unit.model.channels[ch - 1].pulse_log if p.end_s > t + 0.02 + 0.020]
        assert not late


@pytest.mark.req("FR-7")
def test_a_press_that_plays_nothing_still_flashes_the_status_led_white(make_unit):
    """A short POWER press on an idle unit has nothing to pause and plays no pattern; the
    status LED still acknowledges it with one white flash of 60 ms (stim.wearer _ACK_MS)
    after the release, so a wearer who looks sees that the press was taken."""
    unit, rec = unit_on(make_unit)
    unit.press("power", at=5.0, hold_s=0.1)
    seen = status_colours(unit, 4.9, 5.5, dt=0.005)
    assert rec.rhythm(4.9, 5.5) == ()
    assert runs(seen, WHITE) == 1 and 60 <= 5 * seen.count(WHITE) <= 75


@pytest.mark.req("FR-27", "FR-7")
def test_a_pattern_also_shows_as_white_flashes_on_the_status_led(make_unit):
    """MODE twice from idle: programs 2 and 3 as counted pulses on the buzzer, and the same
    rhythm as white flashes on the status LED (sampled every 10 ms), for whoever looks at the
    unit rather than feels it."""
    unit, rec = unit_on(make_unit)
    t = START_S + 1.0
    unit.press("mode", at=t)
    unit.press("mode", at=t + 3.0)
    seen = status_colours(unit, t - 0.1, t + 5.9)
    white = ["1" if c == WHITE else "0" for c in seen]
    flashes = tuple(len(list(g)) * 10 for _, g in itertools.groupby("".join(white).strip("0")))
    heard = rec.rhythm(t - 0.1, t + 6.0)
    assert heard[:3] == (110, 200, 120)  # program 2: two counts (the first with the press's)
    assert heard[4:] == (110, 200, 120, 200, 120)  # program 3: three
    assert len(flashes) == len(heard)
    assert all(abs(a - b) <= 10 for a, b in zip(flashes, heard, strict=True))


@pytest.mark.req("FR-27")
def test_the_status_chord_tells_and_changes_nothing(make_unit):
    """MODE and MINUS held together 1 s: program 1, both channels, step 3 (three short),
    then the minutes left (30 min session: six five-minute pulses)."""
    unit, rec = unit_on(make_unit)
    for i in range(3):
        unit.press("plus", at=START_S + 0.3 * i)
    t = START_S + 4.0
    unit.press("mode", at=t, hold_s=1.3)
    unit.press("minus", at=t + 0.05, hold_s=1.25)
    unit.run_until(t + 8.0)
    r = rec.rhythm(t, t + 8.0)
    assert r[:3] == (120, 200, 600)  # program 1 (one count), both channels (very long)
    assert r[3:9] == (200, 60, 200, 60, 200, 60)  # step 3: three short
    assert r[9:].count(120) == 6  # 30 minutes: six five-minute counts
    assert [x["gesture"] for x in unit.logs("button")][-1] == "status"
    assert not [x for x in unit.logs("intensity") if x["sim_t"] > t]  # no step changed
    assert not [x for x in unit.logs("program") if x["sim_t"] > t]
    assert not [x for x in unit.logs("channels") if x["sim_t"] > t]


@pytest.mark.req("FR-27")
def test_minus_while_idle_chooses_the_session_length(make_unit):
    unit, rec = unit_on(make_unit)
    for i in range(3):
        unit.press("minus", at=START_S + 1.0 * i)
    unit.press("plus", at=START_S + 3.5)
    unit.run_until(START_S + 4.5)
    lengths = [x["min"] for x in unit.logs("session_length")]
    assert lengths == [10, 20, 30]  # from the default 30: 10, 20, 30 (the program's cap)
    assert rec.rhythm(START_S, START_S + 0.5) == (120,)  # 10 minutes: one count
    start = unit.logs("session")[-1]
    assert start["state"] == "start" and start["length_s"] == 30 * 60
    assert json.loads(unit.fs.read("/settings.json"))["session_min"] == 30


@pytest.mark.req("FR-28")
def test_an_idle_unit_switches_itself_off_after_its_minutes(make_unit):
    short = json.dumps({"program": "tens_conventional", "session_min": 30, "channels": "both",
                        "auto_off_min": 1})  # fmt: skip
    unit, rec = unit_on(make_unit, settings=short)
    unit.press("mode", at=30.0)  # a press: the minute counts from here
    unit.run_until(85.0)
    assert not [x for x in unit.logs("power") if not x["on"]]  # 55 s after it: still on
    unit.run_until(95.0)
    off = [x for x in unit.logs("power") if not x["on"]]
    assert len(off) == 1 and 90.0 <= off[0]["sim_t"] <= 91.5
    assert unit.logs("auto_off")[0]["idle_min"] == 1
    assert rec.rhythm(90.0, 93.0) == (500, 100, 500)  # the power-off pattern


@pytest.mark.req("FR-28")
def test_no_auto_off_while_a_session_runs(make_unit):
    short = json.dumps({"program": "tens_conventional", "session_min": 30, "channels": "both",
                        "auto_off_min": 1})  # fmt: skip
    unit, _rec = unit_on(make_unit, settings=short)
    unit.press("plus", at=START_S)
    unit.run_until(START_S + 120.0)
    assert not [x for x in unit.logs("power") if not x["on"]]

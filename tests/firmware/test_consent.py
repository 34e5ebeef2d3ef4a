"""SR-15: a host starts or raises output only after the wearer allowed it with a press on the
unit, per power-on. The whole firmware runs on the simulated pico; what counts is the current
the load receives, the buzzer and status LED pins, and the reply lines.
"""

from __future__ import annotations

import json

import pytest

from host_tools.boards import load_board
from host_tools.sim.board_model import OPEN_OHM
from host_tools.testing.feedback_pins import Feedback
from host_tools.testing.hostproto import (
    KEEPALIVE_S,
    READY_S,
    err,
    keep_alive,
    ok,
    pulses,
    send,
    unit_on,
)
from host_tools.testing.status_led import BLUE, OFF, runs, status_colours

pytestmark = pytest.mark.req("SR-15")

ASK_S = 15.0  # the wearer's time to answer (stim/unit.py _ASK_MS)
# "a host asks": short, medium, long (stim/feedback.py), in ms as the LED task plays it
HOST_ASKS_MS = (60, 100, 150, 100, 400)


def asked(unit):
    """`pair` sent; the reply says the unit asks its wearer."""
    rep = ok(unit, "pair")
    assert rep["asking"] == "press PLUS on the unit" and rep["s"] == 15
    return rep


def consent(unit):
    st = ok(unit, "status")
    return st["consent"], st["asking"]


def test_without_consent_a_host_cannot_start_or_raise_but_can_lower_stop_and_read(make_unit):
    unit = unit_on(make_unit, paired=False)
    t0 = unit.chip.t_s
    assert err(unit, "start")["code"] == "consent"
    assert "press" in err(unit, "start ems_relax")["msg"]
    unit.run_for(1.0)
    assert not pulses(unit, 1, t0) and not pulses(unit, 2, t0)  # nothing reached the load
    for line in ("ping", "status", "settings", "history", "stop"):
        ok(unit, line)
    # The wearer starts a session with PLUS: the host may lower it, never raise it.
    unit.press("plus")
    unit.run_for(3.0)
    assert ok(unit, "status")["steps"] == [1, 1]
    assert err(unit, "intensity 1 2")["code"] == "consent"
    unit.run_for(0.5)
    assert ok(unit, "status")["steps"] == [1, 1]
    assert ok(unit, "intensity 1 0")["step"] == 0
    t1 = unit.chip.t_s + 0.05
    unit.run_for(0.5)
    assert not pulses(unit, 1, t1) and pulses(unit, 2, t1)


def test_accepted_with_plus_the_host_starts_a_session(make_unit):
    unit = unit_on(make_unit, paired=False)
    rec = Feedback(unit)
    keep_alive(unit, unit.chip.t_s + 1.0)  # the power-on pattern is over
    t0 = unit.chip.t_s
    asked(unit)
    # The question is felt (heard on the pico's buzzer; white flashes on the status LED while
    # it plays), then shows on the status LED as a blue double flash every second.
    seen = status_colours(unit, t0 + 2.0, t0 + 4.0)
    assert set(seen) == {BLUE, OFF} and runs(seen, BLUE) == 4
    assert rec.rhythm(t0, t0 + 1.5)[:5] == tuple(pytest.approx(x, abs=10) for x in HOST_ASKS_MS)
    assert consent(unit) == (False, 1)
    t1 = unit.chip.t_s
    unit.press("plus")
    keep_alive(unit, t1 + 1.0, every_s=0.5)
    assert consent(unit) == (True, 0)
    assert not pulses(unit, 1, t0) and not pulses(unit, 2, t0)  # the answer started nothing
    states = [e["state"] for e in unit.logs("consent")]
    assert states == ["asked", "accepted"]
    ok(unit, "start ems_relax")
    keep_alive(unit, unit.chip.t_s + 2.5, every_s=0.5)
    assert pulses(unit, 1, unit.chip.t_s - 0.5) and pulses(unit, 2, unit.chip.t_s - 0.5)


def test_refused_with_minus_nothing_starts_and_the_press_does_nothing_else(make_unit):
    unit = unit_on(make_unit, paired=False)
    length0 = ok(unit, "settings")["session_min"]
    asked(unit)
    unit.press("minus")
    keep_alive(unit, unit.chip.t_s + 1.0, every_s=0.5)
    assert consent(unit) == (False, 0)
    assert ok(unit, "settings")["session_min"] == length0  # MINUS answered, chose no length
    assert err(unit, "start")["code"] == "consent"
    t = unit.chip.t_s
    unit.run_for(1.0)
    assert not pulses(unit, 1, t) and not pulses(unit, 2, t)
    assert unit.logs("consent")[-1]["state"] == "refused"


def test_no_answer_within_15_s_is_a_refusal(make_unit):
    unit = unit_on(make_unit, paired=False)
    t0 = unit.chip.t_s
    asked(unit)
    keep_alive(unit, t0 + ASK_S - 0.5, every_s=1.0)
    assert consent(unit) == (False, 1)  # still asking
    keep_alive(unit, t0 + ASK_S + 0.5, every_s=1.0)
    assert consent(unit) == (False, 0)
    last = unit.logs("consent")[-1]
    assert last["state"] == "refused" and last["reason"] == "timeout"
    # A PLUS now is a PLUS: it starts the wearer's own session, it grants nothing.
    unit.press("plus")
    unit.run_for(0.5)
    assert consent(unit) == (False, 0)
    assert err(unit, "intensity 1 2")["code"] == "consent"


def test_a_power_press_ends_consent_and_stops_the_host_session(make_unit):
    unit = unit_on(make_unit)  # paired
    ok(unit, "start")
    keep_alive(unit, unit.chip.t_s + 2.5, every_s=0.5)
    t = unit.chip.t_s
    assert pulses(unit, 1, t - 0.5)
    unit.press("power", at=t + 0.01, hold_s=0.15)
    keep_alive(unit, t + 1.0, every_s=0.3)
    assert not [p for p in pulses(unit, 1) if p.end_s > t + 0.03]
    assert consent(unit) == (False, 0)
    assert unit.logs("consent")[-1] == {**unit.logs("consent")[-1], "state": "ended"}
    assert unit.logs("consent")[-1]["reason"] == "power"
    unit.press("power", hold_s=0.15)  # the wearer resumes: the host still may not raise
    keep_alive(unit, unit.chip.t_s + 2.5, every_s=0.5)
    assert err(unit, "intensity 1 2")["code"] == "consent"


def test_keep_alive_loss_ends_consent(make_unit):
    unit = unit_on(make_unit)  # paired, no session
    assert consent(unit) == (True, 0)
    unit.run_for(KEEPALIVE_S + 0.5)  # the host goes quiet
    assert consent(unit) == (False, 0)
    assert unit.logs("consent")[-1]["reason"] == "keepalive"
    assert err(unit, "start")["code"] == "consent"


def test_an_electrode_fault_ends_consent(make_unit):
    unit = unit_on(make_unit)
    ok(unit, "start")
    keep_alive(unit, unit.chip.t_s + 2.5, every_s=0.5)
    t = unit.chip.t_s
    unit.at(t + 0.1, unit.model.set_load, 1, OPEN_OHM)
    keep_alive(unit, t + 1.5, every_s=0.5)
    st = ok(unit, "status")
    assert st["faults"][0] == "open" and st["consent"] is False
    assert unit.logs("consent")[-1]["reason"] == "fault"
    assert err(unit, "intensity 2 2")["code"] == "consent"


def test_consent_is_per_power_on_and_never_stored(make_unit):
    unit = unit_on(make_unit)
    assert consent(unit) == (True, 0)
    t = unit.chip.t_s
    unit.press("power", at=t + 0.1, hold_s=1.7)  # off
    unit.press("power", at=t + 2.5, hold_s=1.7)  # on again
    keep_alive(unit, t + 4.8, every_s=0.5)
    assert ok(unit, "status")["state"] == "idle"
    assert consent(unit) == (False, 0)
    assert not [p for p, data in unit.fs.files.items() if b"consent" in data]  # not on flash
    assert err(unit, "start")["code"] == "consent"


def test_a_locked_or_switched_off_unit_cannot_be_asked(make_unit):
    unit = make_unit("pico", load_ohm={1: 1000.0, 2: 1000.0})
    unit.run_until(1.0)
    assert err(unit, "pair")["code"] == "state"  # off: PLUS would not answer
    unit.press("power", hold_s=1.7)
    unit.run_until(READY_S + 0.5)
    t = unit.chip.t_s
    unit.press("plus", at=t, hold_s=3.3)  # the lock chord: PLUS and MINUS held together
    unit.press("minus", at=t + 0.02, hold_s=3.28)
    unit.run_for(3.6)
    assert ok(unit, "status")["locked"] is True
    assert err(unit, "pair")["code"] == "locked"
    assert [e for e in unit.logs("consent")] == []


def test_a_question_plays_even_with_feedback_off(make_unit):
    board = load_board("pico")
    off = json.dumps({"program": "tens_conventional", "session_min": 30, "channels": "both",
                      "feedback": "off"})  # fmt: skip
    unit = make_unit(board, load_ohm={1: 1000.0, 2: 1000.0},
                     files={"/board.json": json.dumps(board), "/settings.json": off})  # fmt: skip
    rec = Feedback(unit)
    unit.press("power", at=0.5, hold_s=1.7)
    unit.run_until(READY_S)
    assert rec.rhythm(0.0, READY_S) == ()  # power on: silent, as the setting says
    t0 = unit.chip.t_s
    send(unit, "pair")
    unit.run_for(1.5)
    assert rec.rhythm(t0, t0 + 1.5)[:5] == tuple(pytest.approx(x, abs=10) for x in HOST_ASKS_MS)


# ---- on MicroPython's own VM -------------------------------------------------------------------
def test_consent_on_micropython_itself():
    """The same rules on the real VM (WebAssembly build, host_tools/mpvm): the firmware's host
    link, unit and wearer as main.run builds them; host lines through HostLink.handle, the
    wearer's PLUS through Wearer.on_gesture."""
    from host_tools import mpvm
    from host_tools.mpvm import memory

    code = [
        memory._SETUP,
        memory._HELPERS,
        """
exec(open("/boot.py").read())
from stim import main as _main, gestures as _g
_b = _main.load_board("/board.json")[0]
_sim.board_inputs(_b, machine)
_a = _main.build(_b)
_u = _a.unit
_u.switch(time.ticks_ms())
def _say(line):
    return [json.loads(r) for r in _a.host.handle(line)][-1]
_out = {"start": _say("start"), "pair": _say("pair"), "asking": _u.asking}
_a.wearer.on_gesture(_g.PLUS, 2, time.ticks_ms())
_out["consent"] = _u.consent
_out["start2"] = _say("start")
_out["running"] = _u.state()
_a.wearer.on_gesture(_g.POWER_DOWN, 0, time.ticks_ms())
_out["after_power"] = _u.consent
_out["raise"] = _say("intensity 1 2")
print(json.dumps(_out))
""",
    ]
    r = mpvm.run(code, mpvm.sim_files() + mpvm.firmware_files(mpvm.FIRMWARE_DIR)).check()
    out = next(x for x in r.records() if "start" in x)
    assert out["start"]["code"] == "consent" and out["pair"]["r"] == "ok"
    assert out["asking"] == 1 and out["consent"] is True
    assert out["start2"]["r"] == "ok" and out["running"] == 2
    assert out["after_power"] is False and out["raise"]["code"] in ("consent", "state")

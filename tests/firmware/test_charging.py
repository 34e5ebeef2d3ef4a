"""SR-17: no stimulation while the unit charges. The wearable's charger signal (board key
`charge_detect`) on the simulated chip: a session ramps down and ends when the charger is
plugged in, none starts while it is (a press gets the refused pattern, the host's `start` gets
`charging`), and all works again once it is unplugged. Observed at the load, the motor pin and
the history file."""

from __future__ import annotations

import json

import pytest

from host_tools.boards import load_board
from host_tools.testing.feedback_pins import Feedback
from host_tools.testing.hostproto import err, keep_alive, ok, pulses, unit_on

pytestmark = pytest.mark.req("SR-17")

RAMP_DOWN_S = 2.0
SEEN_S = 1.0  # the charger is read with the battery, every second
CHARGING_MS = (500, 300, 60)  # very long, short (stim/feedback.py), as the LED task plays it
REFUSED_MS = (30, 30, 30, 30, 30)


def peak(unit, t0, t1):
    got = pulses(unit, 1, t0, t1) + pulses(unit, 2, t0, t1)
    return max((max(p.peak_a_ma, p.peak_b_ma) for p in got), default=0.0)


def test_plugging_the_charger_ramps_a_session_down_and_ends_it(make_unit):
    unit = unit_on(make_unit, "wearable_v1", paired=False)
    rec = Feedback(unit)
    unit.press("plus")
    for i in range(3):
        unit.press("plus", at=unit.chip.t_s + 3.0 + 0.6 * i)
    unit.run_for(5.5)
    t = unit.chip.t_s
    full = peak(unit, t - 0.5, t)
    assert full > 3.5  # step 4 of the wearable's 1.0 mA
    unit.at(t + 0.1, unit.model.set_charger, True)
    unit.run_until(t + 0.1 + SEEN_S + RAMP_DOWN_S + 0.3)
    seen = unit.logs("charging")
    assert [e["on"] for e in seen] == [True]
    t_seen = seen[0]["sim_t"]
    assert t + 0.1 <= t_seen <= t + 0.1 + SEEN_S + 0.05
    # Ramps down from there (never above where it was), then nothing.
    assert peak(unit, t_seen, t_seen + 1.0) <= full + 0.2
    assert peak(unit, t_seen + 1.1, t_seen + 2.0) < full * 0.6
    assert not pulses(unit, 1, t_seen + RAMP_DOWN_S + 0.1)
    assert not pulses(unit, 2, t_seen + RAMP_DOWN_S + 0.1)
    assert rec.rhythm(t_seen, t_seen + 1.5)[:3] == tuple(
        pytest.approx(x, abs=10) for x in CHARGING_MS
    )
    unit.run_for(0.5)
    hist = [json.loads(x) for x in unit.fs.files["/history.jsonl"].decode().splitlines()]
    assert hist[-1]["end"] == "charging"


def test_nothing_starts_while_charging_and_all_works_once_unplugged(make_unit):
    unit = unit_on(make_unit, "wearable_v1")  # paired: the host may start, but for the charger
    rec = Feedback(unit)
    unit.model.set_charger(True)
    keep_alive(unit, unit.chip.t_s + 4.0, every_s=0.5)  # seen, and the patterns have played
    t = unit.chip.t_s
    unit.press("plus", at=t)
    keep_alive(unit, t + 1.5, every_s=0.5)
    assert not pulses(unit, 1, t) and not pulses(unit, 2, t)
    assert rec.rhythm(t, t + 0.6)[:5] == tuple(pytest.approx(x, abs=10) for x in REFUSED_MS)
    e = err(unit, "start")
    assert e["code"] == "charging" and "unplug" in e["msg"]
    assert ok(unit, "status")["state"] == "idle"
    unit.model.set_charger(False)
    keep_alive(unit, unit.chip.t_s + 1.5, every_s=0.5)
    ok(unit, "start")
    keep_alive(unit, unit.chip.t_s + 2.5, every_s=0.5)
    assert pulses(unit, 1, unit.chip.t_s - 0.5)
    assert [e["on"] for e in unit.logs("charging")] == [True, False]


def test_a_board_without_the_signal_has_no_lockout(make_unit):
    assert "charge_detect" not in load_board("pico")
    unit = unit_on(make_unit, "pico", paired=False)
    unit.model.set_charger(True)  # a pico's USB is always connected: nothing to lock out
    unit.press("plus")
    unit.run_for(2.5)
    assert pulses(unit, 1, unit.chip.t_s - 0.5)
    assert not unit.logs("charging")

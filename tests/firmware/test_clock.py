"""The unit's clock and the history's dates (issue 21, item 2), on the simulated pico.

The host sets the clock with `time` (stim.hw.set_clock: machine.RTC); each history record
says whether the clock was set when its session began (`clock`). The rp2 port starts the clock
at 2021-01-01 at every power-up and hard reset and keeps it through a soft reset
(ports/rp2/main.c), as the simulated chip does: so a record made after a power cycle, before
a host set the clock again, is marked unset. Observed at the console (replies) and the flash
(/history.jsonl), never in the firmware's variables.
"""

from __future__ import annotations

import calendar
import json

import pytest

from host_tools.boards import load_board

pytestmark = pytest.mark.req("FR-8", "FR-23")

ON_S = 0.5
POWER_ON_S = calendar.timegm((2021, 1, 1, 0, 0, 0))  # the port's clock at power-up
SET = (2026, 8, 24, 13, 5, 9)
SET_S = calendar.timegm(SET)


def send(unit, line, wait_s=1.0):
    n = len(unit.console.replies)
    unit.send(line if isinstance(line, bytes) else line + "\n")
    t_end = unit.chip.t_s + wait_s
    while unit.chip.t_s < t_end:
        unit.run_for(0.01)
        got = unit.console.replies[n:]
        if got and got[-1]["r"] in ("ok", "err"):
            return got
    return unit.console.replies[n:]


def ok(unit, line):
    got = send(unit, line)
    assert got and got[-1]["r"] == "ok", (line, got)
    return got[-1]


def switch_on(unit):
    unit.press("power", at=unit.chip.t_s + ON_S, hold_s=1.7)
    unit.run_for(ON_S + 2.0)


def session(unit, seconds=3.0):
    """A short session the wearer starts with PLUS and stops with MINUS: one history record."""
    unit.press("plus", at=unit.chip.t_s + 0.1)
    unit.run_for(seconds)
    unit.press("minus", at=unit.chip.t_s + 0.1)
    unit.run_for(1.0)


def records(unit):
    text = unit.fs.files.get("/history.jsonl", b"")
    text = text.decode() if isinstance(text, bytes) else text
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def fresh(make_unit, files=None):
    b = load_board("pico")
    unit = make_unit(b, load_ohm={1: 1000.0, 2: 1000.0}, files=files)
    switch_on(unit)
    return unit


def test_a_power_up_clock_is_2021_and_records_made_on_it_are_unset(make_unit):
    unit = fresh(make_unit)
    assert POWER_ON_S <= ok(unit, "history")["now"] <= POWER_ON_S + 10
    session(unit)
    (rec,) = records(unit)
    assert rec["clock"] is False
    assert POWER_ON_S <= rec["start"] <= POWER_ON_S + 10


def test_time_sets_the_clock_and_later_records_are_dated(make_unit):
    unit = fresh(make_unit)
    t0 = unit.chip.t_s
    rep = ok(unit, "@c1 time %d %d %d %d %d %d" % SET)
    assert (rep["cmd"], rep["id"]) == ("time", "c1")
    now = ok(unit, "history")["now"]
    assert SET_S <= now <= SET_S + 1 + int(unit.chip.t_s - t0)
    session(unit)
    (rec,) = records(unit)
    assert rec["clock"] is True
    assert SET_S <= rec["start"] <= SET_S + 5


def test_a_bad_time_changes_nothing(make_unit):
    unit = fresh(make_unit)
    before = ok(unit, "history")["now"]
    for line in ("time 2024 1 1 0 0 0", "time 2026 2 29 0 0 0", "time 2026 1 1 0 0"):
        (rep,) = send(unit, line)
        assert rep["r"] == "err" and rep["code"] in ("range", "bad_args"), line
    assert ok(unit, "history")["now"] - before <= 2  # still the power-up clock


def test_time_during_a_session_sets_the_clock_without_stopping_it(make_unit):
    unit = fresh(make_unit)
    unit.press("plus", at=unit.chip.t_s + 0.1)
    unit.run_for(3.0)
    assert ok(unit, "status")["state"] == "running"
    ok(unit, "time %d %d %d %d %d %d" % SET)
    assert ok(unit, "status")["state"] == "running"
    assert "/history.jsonl" not in unit.fs.files  # no flash write during output (SR-14)
    unit.press("minus", at=unit.chip.t_s + 0.1)
    unit.run_for(1.0)
    (rec,) = records(unit)
    assert rec["clock"] is False  # the session began before the clock was set


def test_a_soft_reset_keeps_the_clock_a_power_cycle_does_not(make_unit):
    unit = fresh(make_unit)
    ok(unit, "time %d %d %d %d %d %d" % SET)
    session(unit)
    # Ctrl-D: boot.py and main.py run again, the clock runs on (ports/rp2/main.c)
    unit.soft_reset()
    unit.run_for(1.0)
    switch_on(unit)
    assert ok(unit, "history")["now"] >= SET_S
    session(unit)
    assert [r["clock"] for r in records(unit)] == [True, True]
    # The battery out and in again: a new chip on the same flash, its clock at 2021 again
    files = dict(unit.fs.files)
    unit.close()
    again = fresh(make_unit, files=files)
    assert ok(again, "history")["now"] < SET_S
    session(again)
    recs = records(again)
    assert [r["clock"] for r in recs] == [True, True, False]
    assert recs[2]["start"] < recs[0]["start"]  # why an unset clock's record cannot be dated
    # Until a host sets it again
    ok(again, "time %d %d %d %d %d %d" % SET)
    session(again)
    assert [r["clock"] for r in records(again)] == [True, True, False, True]


def test_a_line_with_a_bad_byte_is_answered_with_its_id(make_unit):
    unit = fresh(make_unit)
    (rep,) = send(unit, b"@h7 stat\x01us\n")
    assert (rep["r"], rep["id"], rep["code"], rep["cmd"]) == ("err", "h7", "bad_bytes", None)
    (rep,) = send(unit, b"@h8 " + b"x" * 200 + b"\n")
    assert (rep["id"], rep["code"]) == ("h8", "too_long")
    (rep,) = send(unit, b"\x02@h9 status\n")  # the id after the bad byte: not readable
    assert "id" not in rep and rep["code"] == "bad_bytes"

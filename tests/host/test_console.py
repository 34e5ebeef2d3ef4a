"""`stimctl console` against the simulated unit (its USB console through
host_tools/testing/unit_serial.py): typed lines go out as host commands on the one connection,
replies come back beside the log events they caused, in the order the unit sent them."""

from __future__ import annotations

import io
import json
import queue
from types import SimpleNamespace

import pytest
from rich.console import Console as RichConsole

from host_tools import cli
from host_tools.boards import load_board
from host_tools.console import run_console
from host_tools.testing.unit_serial import UnitDeviceIO

pytestmark = pytest.mark.req("FR-23")


class Typed:
    """Lines typed at the prompt at given simulated times (None: Ctrl-D)."""

    def __init__(self, unit, script):
        self.unit = unit
        self.script = list(script)

    def get_nowait(self):
        if self.script and self.unit.chip.t_s >= self.script[0][0]:
            return self.script.pop(0)[1]
        raise queue.Empty


def unit_on(make_unit):
    files = {"/board.json": json.dumps(load_board("pico"))}
    unit = make_unit("pico", load_ohm={1: 1000.0, 2: 1000.0}, files=files)
    unit.answer_hosts("plus")  # a wearer who lets the laptop control the unit (SR-15)
    unit.press("power", at=0.5, hold_s=1.7)
    unit.run_until(2.5)
    return unit


def console(unit, script, **kw):
    buf = io.StringIO()
    out = RichConsole(file=buf, width=300, highlight=False, color_system=None)
    args = SimpleNamespace(port=None, save=kw.get("save"), level=None, event=None)
    rc = run_console(args, UnitDeviceIO(unit), Typed(unit, script), out)
    return rc, buf.getvalue().splitlines()


def at(lines, text):
    """Index of the first output line containing text."""
    return next(i for i, x in enumerate(lines) if text in x)


def test_commands_and_the_events_they_cause_appear_together(make_unit, tmp_path):
    unit = unit_on(make_unit)
    save = tmp_path / "s.jsonl"
    rc, out = console(
        unit,
        [
            (3.0, "status"),
            (3.2, "pair"),  # the wearer answers with PLUS a second later (SR-15)
            (4.5, "start ems_relax"),
            (5.0, "intensity 1 2"),
            (9.0, "stop"),
            (10.0, "quit"),
        ],
        save=str(save),
    )
    assert rc == 0
    assert "console on /dev/ttyACM0, its clock set to the laptop's" in out[0]
    assert "state=idle" in out[at(out, "< ok status")]
    # start: the echo, then the log events it caused, then its reply
    i_cmd, i_ok = at(out, "> start ems_relax"), at(out, "< ok start")
    between = out[i_cmd + 1 : i_ok]
    assert any("host" in x and "cmd=start" in x for x in between), out
    assert any("session" in x and "state=start" in x for x in between), out
    i_int = at(out, "> intensity 1 2")
    assert i_int < at(out, "< ok intensity") < at(out, "> stop") < at(out, "< ok stop")
    # 5.5 s of host session without a typed command: the console kept it alive (silently)
    assert not any("keep-alive lost" in x for x in out)
    assert not any("ping" in x for x in out)
    assert any("session" in x and "reason=host" in x for x in out[at(out, "> stop") :])
    saved = [json.loads(x) for x in save.read_text().splitlines()]
    assert any(r["ev"] == "session" and r.get("state") == "start" for r in saved)


def test_every_kind_of_refusal_is_reported_as_what_it_is(make_unit):
    unit = unit_on(make_unit)
    rc, out = console(
        unit,
        [
            (3.0, "intensity 1 5"),
            (3.2, "stat\x01us"),
            (3.4, "x" * 130),
            (3.6, "frobnicate"),
            (3.8, "help"),
            (4.0, None),
        ],
    )
    assert rc == 0
    assert "unit refused `intensity 1 5`" in out[at(out, "< unit refused `intensity")]
    assert "(state)" in out[at(out, "< unit refused `intensity")]
    # a line the unit could not read: its reply carries the id, so it is matched, not lost
    assert "(bad_bytes)" in out[at(out, "< unit refused `stat")]
    assert "refused by stimctl, not by the unit" in out[at(out, "! not sent")]
    assert "(unknown)" in out[at(out, "< unit refused `frobnicate`")]
    assert "host commands" in out[at(out, "console: help, quit")]
    assert not any("no reply" in x for x in out)


def test_leaving_stops_the_session_the_console_kept_alive(make_unit):
    unit = unit_on(make_unit)
    rc, out = console(unit, [(3.0, "pair"), (4.5, "start"), (7.0, None)])
    assert rc == 0
    assert "stopped the session this console kept alive" in out[-1]
    st = [r for r in unit.logs("session") if r.get("state") == "end"]
    assert st and st[-1]["reason"] == "host"


def test_a_unit_that_does_not_answer_is_named(make_unit, monkeypatch, capsys):
    unit = unit_on(make_unit)
    unit.interrupt()  # Ctrl-C: the firmware stops, the REPL does not answer host commands
    unit.run_for(0.5)
    monkeypatch.setattr(cli, "_dio", lambda: UnitDeviceIO(unit))
    assert cli.main(["console"]) == 2
    assert "no reply to host commands" in capsys.readouterr().err

"""`stimctl send` and `stimctl history` against the simulated unit (its USB console through
host_tools/testing/unit_serial.py behind cli._dio()), and the history table and adherence plot from
a synthetic history."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from host_tools import cli, history
from host_tools.boards import load_board
from host_tools.link import CommandError, NotSent, UnitLink
from host_tools.testing.unit_serial import UnitSerial

pytestmark = pytest.mark.req("FR-23")

UNIT_NOW = 1_741_982_400  # 2025-03-14 20:00 UTC: a clock a host has set (time.time())
DAY = 86400


def synthetic(days=14, skip=(3, 4, 9)):
    """One session a day for `days` days before the unit's power-up, none on the `skip` days
    (counted back from the last)."""
    recs = []
    for i in range(days):
        if days - 1 - i in skip:
            continue
        recs.append(
            {
                "start": UNIT_NOW - (days - 1 - i) * DAY - 3600,
                "clock": True,
                "program": "tens_burst" if i % 2 else "ems_relax",
                "max_step": [5 + i % 3, 4],
                "faults": ["2:open"] if i == 5 else [],
                "min": 30.0 if i % 4 else 12.5,
                "end": "timer" if i % 4 else "stopped",
            }
        )
    return recs


def unit_with(make_unit, recs=None, on=True):
    files = {"/board.json": json.dumps(load_board("pico"))}
    if recs is not None:
        files["/history.jsonl"] = "".join(json.dumps(r) + "\n" for r in recs)
    unit = make_unit("pico", load_ohm={1: 1000.0, 2: 1000.0}, files=files)
    unit.answer_hosts("plus")  # a wearer who lets the laptop control the unit (SR-15)
    if on:
        unit.press("power", at=0.5, hold_s=1.7)
    unit.run_until(2.5)
    return unit


# ---- the client -------------------------------------------------------------------------------
@pytest.mark.req("SR-12")
def test_the_client_pairs_replies_by_id_and_passes_other_lines_on(make_unit):
    unit = unit_with(make_unit)
    seen = []
    link = UnitLink(UnitSerial(unit, timeout=0.1), "/dev/ttyACM0", on_line=seen.append)
    unit.send("status\n")  # someone else's request: its reply is not ours
    rep = link.command("status")
    assert rep["r"] == "ok" and rep["state"] == "idle" and rep["id"].startswith("h")
    assert any(x.startswith('{"r":"ok","cmd":"status"') and '"id"' not in x for x in seen)
    with pytest.raises(CommandError) as e:
        link.command("intensity 1 7")
    assert e.value.code == "state"
    with pytest.raises(NotSent, match="refused by stimctl, not by the unit"):
        link.command("x" * 200)  # refused before it is sent
    assert link.pair()  # the wearer pressed PLUS (SR-15)
    link.command("start")
    unit.run_for(0.5)
    assert any(json.loads(x).get("ev") == "session" for x in seen if x.startswith('{"t":'))


def test_the_client_says_what_to_do_when_the_firmware_does_not_answer(make_unit):
    from host_tools.device import DeviceError

    unit = unit_with(make_unit)
    unit.send(b"\x03")  # Ctrl-C: the firmware stops, the REPL does not speak the protocol
    unit.run_for(0.2)
    link = UnitLink(UnitSerial(unit, timeout=0.1), "/dev/ttyACM0", timeout_s=1.0)
    with pytest.raises(DeviceError) as e:
        link.command("status")
    assert e.value.kind == "no_reply" and "/dev/ttyACM0" in str(e.value)
    assert "stimctl logs" in e.value.hint and "safe mode" in e.value.hint


# ---- stimctl send -----------------------------------------------------------------------------
@pytest.mark.req("SR-12")
def test_stimctl_send_prints_the_reply(make_unit, dio_for, capsys):
    unit = unit_with(make_unit)
    dio_for(unit)
    assert cli.main(["send", "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok status  state=idle") and "steps=[0, 0]" in out
    assert cli.main(["send", "--json", "settings"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["r"] == "ok" and rep["program"] == "tens_conventional"
    assert cli.main(["send", "intensity", "1", "9"]) == 1
    err = capsys.readouterr().err
    assert "unit refused `intensity 1 9`" in err and "(state)" in err


@pytest.mark.req("SR-12")
def test_stimctl_send_hold_keeps_a_host_session_alive_then_stops_it(make_unit, dio_for, capsys):
    unit = unit_with(make_unit)
    dio_for(unit)
    t0 = unit.chip.t_s
    assert cli.main(["send", "--hold", "6", "start", "ems_relax"]) == 0
    out = capsys.readouterr().out
    assert "ok start" in out and "session" in out  # the reply, then the log while held
    t_end = unit.chip.t_s
    assert t_end - t0 >= 6.0
    # Output ran throughout (longer than the 3 s keep-alive), then the stop ended it.
    ch1 = unit.model.channels[0].pulse_log
    assert [p for p in ch1 if p.t_a > t0 + 5.0 and p.peak_a_ma > 1.0]
    unit.run_for(0.5)
    assert not [p for p in ch1 if p.t_a > t_end + 0.05]
    assert [e["reason"] for e in unit.logs("session") if e["state"] == "end"] == ["host"]


def test_stimctl_send_names_the_missing_board(monkeypatch, capsys):
    from host_tools.testing.fake_transport import FakeDeviceIO

    monkeypatch.setattr(cli, "_dio", lambda: FakeDeviceIO([]))
    assert cli.main(["send", "status"]) == 2
    assert "no RP2040 board found" in capsys.readouterr().err


# ---- stimctl history --------------------------------------------------------------------------
def test_stimctl_history_shows_a_session_run_on_the_unit(make_unit, dio_for, capsys):
    unit = unit_with(make_unit)
    d = dio_for(unit)
    link = UnitLink(d.serial(d.port, 0.1), d.port)
    assert link.pair()  # the wearer pressed PLUS (SR-15)
    link.command("start tens_burst")
    for _ in range(4):
        unit.run_for(0.5)
        link.command("ping")
    link.command("stop")
    assert cli.main(["history"]) == 0
    out = capsys.readouterr().out
    assert "session history (1)" in out and "tens_burst" in out and "host" in out
    assert cli.main(["history", "--json"]) == 0
    (rec,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rec["program"] == "tens_burst" and rec["end"] == "host" and rec["max_step"] == [1, 1]


def test_stimctl_history_with_nothing_recorded(make_unit, dio_for, capsys):
    dio_for(unit_with(make_unit, on=False))  # the protocol answers while the unit is off too
    assert cli.main(["history"]) == 0
    assert "no sessions recorded" in capsys.readouterr().out


def test_stimctl_history_table_and_adherence_plot_from_a_synthetic_history(
    make_unit, dio_for, capsys, tmp_path
):
    recs = synthetic()
    dio_for(unit_with(make_unit, recs))
    out_png = tmp_path / "adherence.png"
    assert cli.main(["history", "--plot", str(out_png)]) == 0
    out = capsys.readouterr().out
    assert "session history (%d)" % len(recs) in out
    assert "ems_relax" in out and "tens_burst" in out and "2:open" in out
    assert "wrote %s" % out_png in out
    assert out_png.stat().st_size > 10_000 and out_png.read_bytes()[:4] == b"\x89PNG"


def test_adherence_counts_every_day_including_the_missed_ones():
    recs = synthetic(days=14, skip=(3, 4, 9))
    rows = history.sessions(recs, UTC)
    assert [s.when.date() for s in rows if s.when][-1] == date(2025, 3, 14)
    days = history.per_day(rows)
    assert len(days) == 14 and days[0][0] == date(2025, 3, 1)
    missed = [d for d, m, n in days if n == 0]
    assert missed == [date(2025, 3, 5), date(2025, 3, 10), date(2025, 3, 11)]
    assert sum(m for _, m, _ in days) == pytest.approx(sum(r["min"] for r in recs))
    assert rows[0].highest_step == 5 and [s.faults for s in rows if s.faults] == [["2:open"]]


@pytest.mark.req("FR-8")
def test_only_records_made_on_a_set_clock_are_dated():
    power_up = 1_609_459_200  # 2021-01-01: the unit's clock after a power cycle
    recs = [
        {"start": UNIT_NOW, "clock": True, "program": "ems_relax", "min": 3},
        {"start": power_up + 600, "clock": False, "program": "tens_burst", "min": 5},
        {"start": power_up + 900, "program": "tens_burst", "min": 5},  # older firmware: no flag
        {"start": UNIT_NOW + 2 * DAY, "clock": True, "program": "ems_relax", "min": 7},
        {"start": power_up + 60, "clock": False, "program": "tens_burst", "min": 2},
    ]
    rows = history.sessions(recs, UTC)
    assert [r.when and r.when.strftime("%Y-%m-%d %H:%M") for r in rows] == [
        "2025-03-14 20:00",
        None,
        None,
        "2025-03-16 20:00",
        None,
    ]
    assert [history.date_text(r) for r in rows[1:3]] == [
        "unknown date (before 2025-03-16 20:00)"
    ] * 2
    assert history.date_text(rows[4]) == "unknown date"  # nothing dated after it
    days = history.per_day(rows)  # adherence: the dated sessions only
    assert [(d, m) for d, m, _ in days] == [
        (date(2025, 3, 14), 3),
        (date(2025, 3, 15), 0),
        (date(2025, 3, 16), 7),
    ]
    undated = [{"start": power_up + 5, "clock": False, "program": "ems_relax", "min": 3}]
    assert history.per_day(history.sessions(undated)) == []
    with pytest.raises(ValueError):
        history.plot(history.sessions(undated), "/nonexistent/x.png")


@pytest.mark.req("FR-8")
def test_stimctl_history_across_power_cycles_dates_only_what_a_set_clock_recorded(
    make_unit, dio_for, capsys
):
    """A session on a fresh unit (clock at 2021), then stimctl connects (sets the clock) and
    another session runs: the table dates the second only."""
    unit = unit_with(make_unit)
    unit.press("plus", at=unit.chip.t_s + 0.1)
    unit.run_for(3.0)
    unit.press("minus", at=unit.chip.t_s + 0.1)
    unit.run_for(1.0)
    d = dio_for(unit)
    link = UnitLink(d.serial(d.port, 0.1), d.port)
    before = datetime.now(UTC).replace(microsecond=0)
    assert link.pair()  # the wearer pressed PLUS (SR-15)
    link.command("start tens_burst")  # the link set the unit's clock first
    for _ in range(3):
        unit.run_for(0.5)
        link.command("ping")
    link.command("stop")
    link.close()
    assert cli.main(["history", "--json"]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["clock"] for r in recs] == [False, True]
    assert recs[0]["start"] < 1_609_459_200 + 60
    assert before.timestamp() - 1 <= recs[1]["start"] <= before.timestamp() + 30
    assert cli.main(["history"]) == 0
    out = capsys.readouterr().out
    assert "unknown" in out and "without a date" in out  # the table wraps at 80 columns
    assert datetime.fromtimestamp(recs[1]["start"]).strftime("%Y-%m-%d") in out

"""`stimctl logs`: parsing, filtering, readable output, reconnection after unplugging, JSON
Lines saving and the intensity/load plot."""

from __future__ import annotations

import argparse
import io
import json

import pytest
from rich.console import Console

from host_tools import cli, logstream
from host_tools.device import DeviceError
from host_tools.testing.fake_transport import FakeBoard, FakeDeviceIO, FakeSerial

pytestmark = pytest.mark.req("FR-12")

BOOT = '{"t":0.012,"lvl":"info","ev":"boot","cause":"power_on"}'
LINES = [
    "MicroPython v1.29.0 on 2026-08-24; Raspberry Pi Pico with RP2040",
    BOOT,
    '{"t":0.050,"lvl":"info","ev":"app_start","board":"pico","channels":2}',
    '{"t":1.000,"lvl":"debug","ev":"tick"}',
    '{"t":2.500,"lvl":"info","ev":"intensity","ch":1,"step":1,"ma":2.5}',
    '{"t":3.000,"lvl":"warn","ev":"refused","ch":1,"step":9,"limit":"peak","msg":"over"}',
    '{"t":3.100,"lvl":"info","ev":"load","ch":1,"ohm":1200}',
    "Traceback (most recent call last):",
]


def args(**kw):
    base = dict(port=None, json=False, save=None, level=None, event=None, raw=False)
    base.update(kw)
    return argparse.Namespace(**base)


def run(dio, stop_after: int, console=None, on_sleep=None, max_sleeps: int = 50, **kw):
    """Stream until `stop_after` lines were handled (or more than `max_sleeps` sleeps);
    sleep() calls are counted, not slept, and `on_sleep(n)` sees the count."""
    out = io.StringIO()
    con = console or Console(file=out, width=200, color_system=None)
    seen = {"lines": 0, "sleeps": 0}
    orig = logstream.parse

    def counting_parse(line):
        seen["lines"] += 1
        return orig(line)

    def sleep(_s):
        seen["sleeps"] += 1
        if on_sleep is not None:
            on_sleep(seen["sleeps"])

    logstream.parse = counting_parse
    try:
        rc = logstream.run_logs(
            args(**kw),
            dio,
            console=con,
            stop=lambda: seen["lines"] >= stop_after or seen["sleeps"] > max_sleeps,
            sleep=sleep,
        )
    finally:
        logstream.parse = orig
    return rc, out.getvalue(), seen


@pytest.mark.req("FR-9")
def test_parse_only_log_lines():
    assert logstream.parse(BOOT)["ev"] == "boot"
    assert logstream.parse("MicroPython v1.29.0") is None
    assert logstream.parse('{"t":1,"lvl":"info"') is None  # cut line
    assert logstream.parse('{"t":[1]}') == {"t": [1]}
    assert logstream.parse('{"x":1}') is None


def test_filter_by_level_and_events():
    recs = [json.loads(x) for x in LINES if x.startswith("{")]
    f = logstream.Filter("info", ["intensity,load", "boot"])
    assert [r["ev"] for r in recs if f(r)] == ["boot", "intensity", "load"]
    assert [r["ev"] for r in recs if logstream.Filter("warn")(r)] == ["refused"]


def test_readable_output_and_raw_lines():
    dio = FakeDeviceIO([FakeBoard()])
    dio.serial_script = [FakeSerial(LINES, disconnect_at_end=False)]
    rc, out, _ = run(dio, len(LINES))
    assert rc == 0
    assert "INTENSITY" not in out and "intensity" in out
    line = next(x for x in out.splitlines() if "intensity" in x)
    assert "2.500" in line and "INFO" in line and "ch=1" in line and "ma=2.5" in line
    assert "MicroPython v1.29.0" not in out  # not a log line: only with --raw
    dio.serial_script = [FakeSerial(LINES, disconnect_at_end=False)]
    _, out, _ = run(dio, len(LINES), raw=True)
    assert "MicroPython v1.29.0" in out and "Traceback" in out


def test_json_output_is_json_lines_filtered():
    dio = FakeDeviceIO([FakeBoard()])
    dio.serial_script = [FakeSerial(LINES, disconnect_at_end=False)]
    _, out, _ = run(dio, len(LINES), json=True, level="warn")
    recs = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [r["ev"] for r in recs] == ["refused"]


def test_survives_unplug_and_replug_and_saves_every_record(tmp_path):
    b = FakeBoard()
    dio = FakeDeviceIO([b])

    def unplug(_s):
        b.attached = False

    first = FakeSerial(LINES[:4], disconnect_at_end=True, on_close=unplug)
    second = FakeSerial(LINES[4:], disconnect_at_end=False)
    dio.serial_script = [first, second]

    def replug(n_sleeps):  # the board comes back after three polls
        if n_sleeps == 3:
            b.attached = True

    save = tmp_path / "log.jsonl"
    rc, text, _ = run(
        dio, len(LINES), on_sleep=replug, max_sleeps=20, save=str(save), level="warn"
    )
    assert rc == 0
    assert "disconnected" in text and "waiting for it to come back" in text
    assert text.count("connected to /dev/ttyACM0") == 2
    assert dio.serial_opens == ["/dev/ttyACM0", "/dev/ttyACM0"]
    saved = [json.loads(x) for x in save.read_text().splitlines()]
    # Every record is saved (the level filter is for the screen), with the laptop's time.
    assert [r["ev"] for r in saved] == [
        "boot",
        "app_start",
        "tick",
        "intensity",
        "refused",
        "load",
    ]
    assert all("host_t" in r for r in saved)


def test_named_port_is_waited_for_too():
    b = FakeBoard(port="/dev/ttyACM3")
    b.attached = False
    dio = FakeDeviceIO([b])
    dio.serial_script = [FakeSerial([BOOT], disconnect_at_end=False)]
    calls = {"n": 0}

    def sleep(_s):
        calls["n"] += 1
        b.attached = calls["n"] >= 2

    out = io.StringIO()
    rc = logstream.run_logs(
        args(port="/dev/ttyACM3"),
        dio,
        console=Console(file=out, width=200, color_system=None),
        stop=lambda: "boot" in out.getvalue() and "cause=" in out.getvalue(),
        sleep=sleep,
    )
    assert rc == 0 and "waiting for the board on /dev/ttyACM3" in out.getvalue()


def test_errors_that_waiting_cannot_cure_are_reported():
    import errno

    dio = FakeDeviceIO([FakeBoard()])
    dio.open_errors["/dev/ttyACM0"] = OSError(errno.EACCES, "Permission denied")
    rc, out, _ = run(dio, 1)
    assert rc == 2
    two = FakeDeviceIO([FakeBoard(port="/dev/ttyACM0"), FakeBoard(port="/dev/ttyACM1")])
    with pytest.raises(DeviceError) as ei:
        logstream.stream(two, None, lambda line: None)
    assert ei.value.kind == "several_devices"


def test_a_line_split_by_the_read_timeout_is_joined():
    dio = FakeDeviceIO([FakeBoard()])
    got = []
    dio.serial_script = [FakeSerial([b'{"t":1.0,"lvl":"in', b"", b'fo","ev":"x"}\r\n'], False)]
    logstream.stream(dio, None, got.append, stop=lambda: len(got) == 1)
    assert got == ['{"t":1.0,"lvl":"info","ev":"x"}']


# ---- plot ----------------------------------------------------------------------------------
def _log(tmp_path, lines):
    p = tmp_path / "session.jsonl"
    p.write_text("\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines) + "\n")
    return p


def test_series_intensity_load_stops_and_restarts(tmp_path):
    recs = [
        {"t": 0.0, "ev": "boot"},
        {"t": 1.0, "ev": "intensity", "ch": 1, "step": 1, "ma": 2.0},
        {"t": 1.5, "ev": "intensity", "ch": 2, "step": 3},
        {"t": 2.0, "ev": "refused", "ch": 1, "step": 9, "ma": 99.0},
        {"t": 2.5, "ev": "load", "ch": 1, "ohm": 1500},
        {"t": 3.0, "ev": "load", "ch": 1, "ohm": None},
        {"t": 4.0, "ev": "stop", "ch": 1},
        {"t": 0.1, "ev": "boot"},  # the unit restarted: its clock too
        {"t": 0.5, "ev": "intensity", "ch": 1, "step": 1, "ma": 1.0},
        "not json",
        {"no_t": 1},
    ]
    s = logstream.series(logstream.read_records(_log(tmp_path, recs)))
    unit, pts = s["intensity"][1]
    assert unit == "ma"
    assert pts == [(1.0, 2.0), (4.0, 0.0), (4.1, 0.0), (4.5, 1.0)]
    assert s["intensity"][2][0] == "step"
    assert s["restarts"] == [4.0]
    load = s["load"][1]
    assert load[0] == (2.5, 1500.0) and load[1][1] != load[1][1]  # null: a gap (nan)
    assert s["end"] == 4.5


def test_plot_writes_a_png(tmp_path):
    recs = [json.loads(x) for x in LINES if x.startswith("{")]
    p = _log(tmp_path, recs)
    out = tmp_path / "o.png"
    rc = cli.main(["logs", "--plot", str(p), "-o", str(out)])
    assert rc == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_of_a_log_without_intensity_or_load_says_so(tmp_path, capsys):
    p = _log(tmp_path, [{"t": 0.0, "ev": "boot"}])
    assert cli.main(["logs", "--plot", str(p)]) == 1
    assert "no intensity" in capsys.readouterr().err
    assert cli.main(["logs", "--plot", str(tmp_path / "missing.jsonl")]) == 1


# Issue 21: a lift at 7 s was drawn as a 4-second ramp from 1 kohm to 13.5 kohm, a 981-988 ohm
# wobble filled the axis, faults were not marked.
LIFT_LOG = [
    {"t": 0.0, "lvl": "info", "ev": "boot", "cause": "power_on"},
    {"t": 1.0, "lvl": "info", "ev": "check", "ch": 1, "result": "ok", "ohm": 981},
    {"t": 1.0, "lvl": "info", "ev": "intensity", "ch": 1, "step": 4, "ma": 6.0},
    {"t": 3.0, "lvl": "info", "ev": "load", "ch": 1, "ohm": 988},
    {
        "t": 7.0,
        "lvl": "warn",
        "ev": "electrode",
        "ch": 1,
        "fault": "open",
        "ohm": 13500,
        "step": 4,
    },
    {"t": 7.0, "lvl": "info", "ev": "intensity", "ch": 1, "step": 0, "ma": 0.0},
    {"t": 7.0, "lvl": "info", "ev": "stop", "ch": 1, "reason": "fault"},
    {"t": 11.0, "lvl": "info", "ev": "session", "state": "end", "reason": "fault"},
]


@pytest.mark.req("FR-12")
def test_the_log_plot_draws_steps_marks_faults_and_keeps_a_fixed_floor(tmp_path):
    s = logstream.series(logstream.read_records(_log(tmp_path, LIFT_LOG)))
    fig = logstream.log_figure(s, "lift")
    ax_i, ax_l = fig.axes[:2]
    (load,) = [ln for ln in ax_l.get_lines() if ln.get_label() == "ch 1"]
    assert load.get_drawstyle() == "steps-post"  # held until the next reading: no ramp
    xs, ys = list(load.get_xdata()), list(load.get_ydata())
    assert (xs[:3], ys[:3]) == ([1.0, 3.0, 7.0], [981.0, 988.0, 13500.0])
    assert ys[3] != ys[3]  # stopped at 7 s: nothing measured after (a gap, not 13.5 kohm held)
    # the wobble stays flat: the axis starts at zero and reaches past the highest reading
    assert ax_l.get_ylim()[0] == 0 and ax_l.get_ylim()[1] >= 13500
    assert ax_i.get_ylim()[0] == 0
    (inten,) = [ln for ln in ax_i.get_lines() if ln.get_label() == "ch 1"]
    assert inten.get_drawstyle() == "steps-post"
    assert list(zip(inten.get_xdata(), inten.get_ydata(), strict=True))[:3] == [
        (1.0, 6.0),
        (7.0, 0.0),
        (7.0, 0.0),
    ]
    # the fault, the stop and the session end are marked where they happened, and named
    labels = {(t.get_text(), t.xy[0]) for t in ax_i.texts}
    assert labels == {("ch 1 open; ch 1 stop: fault", 7.0), ("session end: fault", 11.0)}
    marks = sorted({ln.get_xdata()[0] for ln in ax_l.get_lines() if ln.get_linestyle() == "--"})
    assert marks == [7.0, 11.0]


@pytest.mark.req("FR-12")
def test_a_small_wobble_is_drawn_on_an_axis_from_zero(tmp_path):
    recs = [{"t": float(t), "ev": "load", "ch": 1, "ohm": 981 + t % 8} for t in range(0, 60, 10)]
    fig = logstream.log_figure(logstream.series(recs), "wobble")
    lo, hi = fig.axes[1].get_ylim()
    assert lo == 0 and hi >= logstream.LOAD_FLOOR_OHM  # 981-988 ohm: under half the axis' height

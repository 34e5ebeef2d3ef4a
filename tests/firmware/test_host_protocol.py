"""The host command protocol at the simulated pins (SR-12, with SR-2, SR-3, SR-7, SR-13).

The whole firmware runs on the simulated pico; commands go in as bytes on the USB serial console
(SimulatedUnit.send: sys.stdin.buffer on the simulated port), replies come back as console
lines. What counts is the current the board model sees in the load, the settings and history
files on the simulated flash and the reply lines, never the firmware's variables.
"""

from __future__ import annotations

import contextlib
import json
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_tools.boards import load_board
from host_tools.sim.rig import FirmwareRig
from host_tools.testing.hostproto import (
    KEEPALIVE_S,
    ON_S,
    RAMP_DOWN_S,
    READY_S,
    STEP_MA,
    err,
    keep_alive,
    ok,
    pair,
    peak,
    pulses,
    send,
    unit_on,
)

_hostcmd = FirmwareRig("pico").import_module("stim.hostcmd")

pytestmark = pytest.mark.req("FR-23")


def host_session(unit, step=1, program=None):
    """Start a session from the host and raise channel 1 and 2 to `step`, one step per
    RISE_MS as the protocol allows, pinging meanwhile; returns when the soft start is over."""
    ok(unit, "start" + (" " + program if program else ""))
    for s in range(2, step + 1):
        unit.run_for(0.45)
        ok(unit, "intensity 1 %d" % s)
        ok(unit, "intensity 2 %d" % s)
    keep_alive(unit, unit.chip.t_s + 2.6)


# ---- each command -----------------------------------------------------------------------------
@pytest.mark.req("SR-12")
def test_status_and_ping_answer_and_change_nothing(make_unit):
    unit = make_unit("pico", load_ohm={1: 1000.0, 2: 1000.0})
    unit.press("power", at=ON_S, hold_s=1.7)
    unit.run_until(0.9)  # the app is up (about 0.75 s after reset, as from .mpy)
    st0 = ok(unit, "status")
    assert st0["state"] == "off" and st0["steps"] == [0, 0] and st0["host"] is False
    unit.run_until(READY_S)
    st1 = ok(unit, "@s1 status")
    assert st1["id"] == "s1" and st1["state"] == "idle"
    assert st1["program"] == "tens_conventional" and st1["keepalive_ms"] == 3000
    assert ok(unit, "ping")["cmd"] == "ping"
    unit.run_for(1.0)
    assert not pulses(unit, 1) and not pulses(unit, 2)


@pytest.mark.req("SR-12", "SR-2", "SR-1")
def test_start_checks_the_electrodes_then_soft_starts_at_the_load(make_unit):
    unit = unit_on(make_unit)
    t0 = unit.chip.t_s
    rep = ok(unit, "start ems_relax")
    assert rep["program"] == "ems_relax" and rep["length_s"] == 30 * 60
    keep_alive(unit, t0 + 3.0, every_s=0.5)
    seen = pulses(unit, 1, t0)
    # The electrode check's probe pulses (1 mA, 100 us) come first, then ems_relax's 250 us.
    probes = [p for p in seen if p.width_a_s < 150e-6]
    therapy = [p.peak_a_ma for p in seen if p.width_a_s > 200e-6]
    assert probes and probes[-1].t_a < min(p.t_a for p in seen if p.width_a_s > 200e-6)
    assert max(p.peak_a_ma for p in probes) <= 1.0 + 1e-6
    assert therapy[0] < 0.5 * STEP_MA  # the output ramps up from low (SR-2)...
    assert all(b >= a - 1e-3 for a, b in zip(therapy, therapy[1:], strict=False))
    assert 0.95 * STEP_MA <= therapy[-1] <= STEP_MA + 1e-6  # ...to step 1, never above it
    assert peak(unit, 1, t0) <= STEP_MA + 1e-6
    st = ok(unit, "status")
    assert st["state"] == "running" and st["steps"] == [1, 1] and st["host"] is True
    assert st["program"] == "ems_relax"


@pytest.mark.req("SR-12", "SR-2")
def test_intensity_rises_one_step_per_command_at_a_bounded_rate(make_unit):
    unit = unit_on(make_unit)
    host_session(unit)
    t = unit.chip.t_s
    e = err(unit, "intensity 1 5")
    assert e["code"] == "rise"
    ok(unit, "intensity 1 2")
    assert err(unit, "intensity 1 3")["code"] == "rate"  # 50 ms later: too soon
    unit.run_for(0.4)
    ok(unit, "intensity 1 3")
    keep_alive(unit, t + 3.0)
    assert 0.95 * 3 * STEP_MA <= peak(unit, 1, t + 2.5) <= 3 * STEP_MA + 1e-6
    assert peak(unit, 1, t) <= 3 * STEP_MA + 1e-6  # never the 5 steps asked for
    # Decreases take effect at once, any size.
    t_down = unit.chip.t_s
    ok(unit, "intensity 1 1")
    assert peak(unit, 1, t_down + 0.02, t_down + 0.5) <= STEP_MA + 1e-6
    ok(unit, "intensity 2 0")
    unit.run_for(0.2)
    assert not pulses(unit, 2, t_down + 0.07)


@pytest.mark.req("SR-12", "SR-2")
def test_a_start_is_each_channels_first_rise(make_unit):
    """`start` takes every channel to step 1: the next rise waits RISE_MS like any other."""
    unit = unit_on(make_unit)
    ok(unit, "start")
    assert err(unit, "intensity 1 2")["code"] == "rate"
    assert err(unit, "intensity 2 2")["code"] == "rate"
    unit.run_for(0.4)
    ok(unit, "intensity 1 2")
    ok(unit, "intensity 2 2")


@pytest.mark.req("SR-12", "SR-15")
def test_a_host_that_raises_the_wearers_session_must_then_keep_it_alive(make_unit):
    """The wearer's own session: the host may set a channel to the step it is at (or lower)
    without consent, and that leaves the session the wearer's. Once the host raises it, with
    the wearer's consent, it is the host's: a silent host lets it ramp to zero."""
    unit = unit_on(make_unit, paired=False)
    unit.press("plus")  # the wearer's own session, step 1
    unit.run_for(2.5)
    rep = ok(unit, "intensity 2 1")
    assert (rep["ch"], rep["step"]) == (2, 1)
    assert err(unit, "intensity 1 2")["code"] == "consent"
    unit.run_for(KEEPALIVE_S + RAMP_DOWN_S + 0.5)  # no command: still the wearer's session
    t = unit.chip.t_s
    assert peak(unit, 1, t - 0.5, t) >= 0.95 * STEP_MA and ok(unit, "status")["host"] is False
    pair(unit)
    rep = ok(unit, "intensity 1 2")
    assert (rep["ch"], rep["step"]) == (1, 2) and ok(unit, "status")["host"] is True
    t = unit.chip.t_s
    unit.run_for(KEEPALIVE_S + RAMP_DOWN_S + 0.5)
    assert not pulses(unit, 1, unit.chip.t_s - 0.3) and not pulses(unit, 2, unit.chip.t_s - 0.3)


@pytest.mark.req("SR-12")
def test_a_command_that_fails_inside_is_an_io_error_and_the_link_goes_on(make_unit):
    """Out of memory in the parser, or in a command's own work: `io`, the request id when it
    was read, and the next command is answered as ever."""
    unit = unit_on(make_unit)
    hostcmd = unit.runtime.modules["stim.hostcmd"]
    unit_cls = unit.runtime.modules["stim.unit"].Unit
    parse, status = hostcmd.parse, unit_cls.status

    def no_memory(*a):
        raise MemoryError

    hostcmd.parse = no_memory
    got = err(unit, "@p1 status")
    assert (got["code"], got["msg"], got["cmd"]) == ("io", "failed", None) and "id" not in got
    hostcmd.parse = parse
    unit_cls.status = no_memory
    got = err(unit, "@s1 status")
    assert (got["code"], got["msg"], got["id"]) == ("io", "failed", "s1")
    unit_cls.status = status
    assert ok(unit, "@s2 status")["state"] == "idle"
    assert [e["msg"] for e in unit.logs("host")][-2:] == ["command failed: MemoryError()"] * 2

    board = load_board("pico")
    board["limits"]["max_peak_ma"] = 6.0  # step 4 (6 mA) is the last one allowed
    unit = unit_on(make_unit, board)
    host_session(unit, step=4)
    t = unit.chip.t_s
    unit.run_for(0.5)
    e = err(unit, "intensity 1 5")
    assert (e["code"], e["limit"]) == ("limit", "max_peak_ma")
    e = err(unit, "intensity 1 41")
    assert (e["code"], e["limit"]) == ("limit", "step")
    keep_alive(unit, t + 2.0)
    assert ok(unit, "status")["steps"] == [4, 4]
    assert 0.95 * 4 * STEP_MA <= peak(unit, 1, t) <= 6.0 + 1e-6
    assert unit.model.channels[0].max_peak_ma <= 6.0 + 1e-6


@pytest.mark.req("SR-12")
def test_stop_ends_the_session_at_once_and_records_it(make_unit):
    unit = unit_on(make_unit)
    host_session(unit, step=2)
    t = unit.chip.t_s
    assert pulses(unit, 1, t - 0.5, t)
    unit.send("stop\n")
    unit.run_for(0.5)
    assert unit.console.replies[-1]["cmd"] == "stop" and unit.console.replies[-1]["r"] == "ok"
    for ch in (1, 2):
        assert not [p for p in pulses(unit, ch, t) if p.end_s > t + 0.020]
    assert ok(unit, "status")["state"] == "idle"
    hist = [json.loads(x) for x in unit.fs.files["/history.jsonl"].decode().splitlines()]
    assert hist[-1]["end"] == "host" and hist[-1]["max_step"] == [2, 2]
    assert [e["cmd"] for e in unit.logs("host")][-2:] == ["start", "stop"]  # the log says who
    assert [(e["ch"], e["reason"]) for e in unit.logs("stop")] == [(1, "stop"), (2, "stop")]
    assert ok(unit, "stop")["cmd"] == "stop"  # nothing to stop: still fine


@pytest.mark.req("SR-12", "SR-13")
def test_settings_get_and_set_persist_atomically(make_unit):
    unit = unit_on(make_unit)
    assert ok(unit, "settings")["session_min"] == 30
    rep = ok(unit, "set session_min=20 channels=1 program=tens_burst")
    assert (rep["session_min"], rep["channels"], rep["program"]) == (20, "1", "tens_burst")
    saved = json.loads(unit.fs.files["/settings.json"])
    assert saved == {"program": "tens_burst", "session_min": 20, "channels": "1",
                     "feedback": "both", "auto_off_min": 10}  # fmt: skip
    assert unit.logs("settings")[-1]["keys"] == ["session_min", "channels", "program"]
    assert not [p for p in unit.fs.files if p.endswith(".tmp")]
    assert ok(unit, "settings")["program"] == "tens_burst"
    st = ok(unit, "status")
    assert st["program"] == "tens_burst" and st["channels"] == "1"
    # The new settings take effect: a session of tens_burst on channel 1 only, 20 minutes.
    rep = ok(unit, "start")
    assert rep["program"] == "tens_burst" and rep["length_s"] == 20 * 60
    keep_alive(unit, unit.chip.t_s + 3.0)
    assert pulses(unit, 1) and not pulses(unit, 2)
    # Not while a session is on: refused, nothing written.
    before = unit.fs.files["/settings.json"]
    assert err(unit, "set session_min=10")["code"] == "state"
    assert unit.fs.files["/settings.json"] == before


@pytest.mark.req("SR-12")
def test_history_sends_every_stored_record(make_unit):
    unit = unit_on(make_unit)
    (empty,) = send(unit, "history")
    assert {k: empty[k] for k in ("r", "cmd", "n")} == {"r": "ok", "cmd": "history", "n": 0}
    assert empty["now"] == 1_609_459_202  # the unit's clock: 2021-01-01 at power-up, 2 s ago
    host_session(unit, step=2)
    ok(unit, "stop")
    ok(unit, "start tens_burst")
    keep_alive(unit, unit.chip.t_s + 3.0)
    ok(unit, "stop")
    got = send(unit, "@h history")
    stored = [json.loads(x) for x in unit.fs.files["/history.jsonl"].decode().splitlines()]
    assert [g["r"] for g in got] == ["rec", "rec", "ok"]
    assert [g["rec"] for g in got[:2]] == stored
    assert [g["i"] for g in got[:2]] == [0, 1]
    assert got[-1]["n"] == 2 and all(g["id"] == "h" for g in got)
    assert [r["program"] for r in stored] == ["tens_conventional", "tens_burst"]


@pytest.mark.req("SR-12", "SR-13")
def test_a_save_the_flash_cannot_hold_is_an_io_error_and_the_old_settings_stay(make_unit):
    """A full flash: `set` answers `io` with its command and id, the file on the flash is the
    one before, and the unit goes on with the settings it had (a session of them starts)."""
    unit = unit_on(make_unit)
    ok(unit, "set session_min=20")
    before = unit.fs.files["/settings.json"]
    unit.fs.capacity = unit.fs.used() + 5  # room for a few bytes only
    e = err(unit, "@f1 set session_min=40 program=tens_burst")
    assert (e["code"], e["cmd"], e["id"]) == ("io", "set", "f1")
    assert unit.fs.files["/settings.json"] == before
    got = ok(unit, "settings")
    assert (got["session_min"], got["program"]) == (20, "tens_conventional")
    rep = ok(unit, "start")
    assert (rep["program"], rep["length_s"]) == ("tens_conventional", 20 * 60)
    keep_alive(unit, unit.chip.t_s + 3.0)
    assert pulses(unit, 1, unit.chip.t_s - 0.5)


@pytest.mark.req("SR-12")
def test_a_history_the_flash_cannot_read_is_an_io_error_and_the_link_goes_on(make_unit):
    unit = unit_on(make_unit)
    unit.fs.dirs.add("/history.jsonl")  # opening it fails (EISDIR), as a damaged entry would
    e = err(unit, "@h2 history")
    assert (e["code"], e["cmd"], e["id"]) == ("io", "history", "h2")
    assert ok(unit, "status")["state"] == "idle"


@pytest.mark.req("SR-12", "SR-7")
def test_a_long_history_is_sent_a_line_per_scheduler_round_without_waiting(make_unit):
    """Each record line lets the other tasks run (the buttons are never held up) and the next
    follows as soon as the console takes it: 100 records in about a tenth of a second."""
    unit = unit_on(make_unit)
    recs = [{"start": 1_700_000_000 + 60 * i, "min": 3, "end": "done"} for i in range(100)]
    unit.fs.files["/history.jsonl"] = "".join(json.dumps(r) + "\n" for r in recs).encode()
    got = send(unit, "history", wait_s=2.0)
    assert [g["rec"] for g in got[:-1]] == recs and got[-1]["n"] == 100
    gaps = sorted(b["sim_t"] - a["sim_t"] for a, b in zip(got, got[1:], strict=False))
    # One line per 1 ms USB frame as the console sends it; a task that slept 1 ms between
    # lines would take nearly two.
    assert gaps[len(gaps) // 2] < 0.0015, "median %.2f ms between lines" % (1e3 * gaps[50])


def test_a_port_whose_asyncio_has_no_streams_says_host_commands_are_off(capsys):
    """The host task ends with a warning, instead of failing the firmware, on a MicroPython
    built without asyncio streams: the buttons and the therapy do not need the host."""
    rig = FirmwareRig("pico")
    host = rig.import_module("stim.host")
    asyncio = rig.runtime.modules["asyncio"]

    def no_streams(_s):
        raise AttributeError("StreamReader")

    asyncio.StreamReader = no_streams
    unit = types.SimpleNamespace(stim=types.SimpleNamespace(channels=[0, 0]))
    task = host.HostLink(unit, rig.board, stream=object()).run()
    with pytest.raises(StopIteration):
        task.send(None)
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]  # the log's print
    assert (line["ev"], line["lvl"]) == ("host", "warn") and "host commands are off" in line["msg"]


# ---- keep-alive (SR-12) and POWER (SR-7) ------------------------------------------------------
@pytest.mark.req("SR-12")
def test_lost_keep_alive_ramps_the_output_to_zero(make_unit):
    unit = unit_on(make_unit)
    host_session(unit, step=4)
    t_last = unit.chip.t_s
    ok(unit, "ping")  # the host's last word
    t_last = unit.chip.t_s - 0.05
    unit.run_until(t_last + KEEPALIVE_S + RAMP_DOWN_S + 1.0)
    full = 4 * STEP_MA
    # Full output until the keep-alive runs out...
    assert peak(unit, 1, t_last + KEEPALIVE_S - 0.5, t_last + KEEPALIVE_S - 0.05) >= 0.95 * full
    # ...then a ramp down (not a cliff) over about 2 s...
    t_lost = t_last + KEEPALIVE_S
    mid = peak(unit, 1, t_lost + 0.9, t_lost + 1.1)
    assert 0.25 * full < mid < 0.75 * full
    # ...and nothing after it.
    assert not pulses(unit, 1, t_lost + RAMP_DOWN_S + 0.1)
    assert not pulses(unit, 2, t_lost + RAMP_DOWN_S + 0.1)
    hist = json.loads(unit.fs.files["/history.jsonl"].decode().splitlines()[-1])
    assert hist["end"] == "keepalive"
    assert ok(unit, "status")["state"] == "idle"


@pytest.mark.req("SR-12")
def test_a_host_that_keeps_pinging_keeps_its_session(make_unit):
    unit = unit_on(make_unit)
    host_session(unit, step=2)
    t = unit.chip.t_s
    keep_alive(unit, t + 3 * KEEPALIVE_S, every_s=2.0)
    assert peak(unit, 1, t + 3 * KEEPALIVE_S - 0.5) >= 0.95 * 2 * STEP_MA
    assert ok(unit, "status")["state"] == "running"


@pytest.mark.req("SR-7", "SR-12")
def test_power_press_stops_a_host_session_within_20_ms_and_the_host_cannot_resume(make_unit):
    unit = unit_on(make_unit)
    host_session(unit, step=3)
    t = unit.chip.t_s + 0.0043
    assert pulses(unit, 1, t - 0.5, t)
    unit.press("power", at=t, hold_s=0.15)
    keep_alive(unit, t + 1.0, every_s=0.3)  # the host is still there and pinging
    for ch in (1, 2):
        late = [p for p in pulses(unit, ch) if p.end_s > t + 0.020]
        assert not late, "ch%d pulsing %.1f ms after the press" % (ch, (late[0].end_s - t) * 1e3)
    st = ok(unit, "status")
    assert st["state"] == "paused" and st["consent"] is False  # the press took it back (SR-15)
    assert err(unit, "intensity 1 1")["code"] == "state"
    assert err(unit, "start")["code"] == "state"
    keep_alive(unit, t + 3.0, every_s=0.3)
    assert not pulses(unit, 1, t + 0.02) and not pulses(unit, 2, t + 0.02)


@pytest.mark.req("SR-8", "SR-12")
def test_ctrl_c_on_the_console_still_interrupts_the_firmware(make_unit):
    unit = unit_on(make_unit)
    host_session(unit, step=2)
    t = unit.chip.t_s
    unit.send(b"stat\x03us\n")
    unit.run_for(0.5)
    assert unit.logs("interrupted") and unit.logs("outputs_off")
    assert not pulses(unit, 1, t + 0.02) and not pulses(unit, 2, t + 0.02)
    assert unit.state == "repl"


# ---- bad input changes nothing (SR-12) --------------------------------------------------------
BAD_LINES = [
    b"\xff\xfe\xfd\n",
    b"st\xc3\xa4tus\n",  # UTF-8, but not ASCII
    b"\x80intensity 1 40\n",
    b"intensity 1 40" + b" " * 200 + b"\n",
    b"x" * 5000 + b"\n",
    b"INTENSITY 1 4\n",
    b"intensity 1\n",
    b"intensity 3 4\n",
    b"intensity 1 4.0\n",
    b"intensity 1 -1\n",
    b"intensity 1 99999\n",
    b"intensity 1 41\n",
    b"intensity 1 5\n",
    b"start\n",
    b"start nope\n",
    b"stop now\n",
    b"set session_min=999\n",
    b"set channels=3\n",
    b"set program=ems_relax\n",  # a session is on
    b"set volume=11\n",
    b"@\n",
    b"@bad-id stop\n",
    b"\x1b[A\n",
    b"reboot\n",
    b'{"cmd": "stop"}\n',
]


@pytest.mark.req("SR-12")
def test_bad_input_gets_an_error_and_changes_nothing(make_unit):
    unit = unit_on(make_unit, settings_text='{"program":"tens_conventional","session_min":30,'
                   '"channels":"both"}')  # fmt: skip
    host_session(unit, step=3)
    files = dict(unit.fs.files)
    st0 = ok(unit, "status")
    t0 = unit.chip.t_s
    for line in BAD_LINES:
        got = send(unit, line)
        assert len(got) == 1 and got[0]["r"] == "err", (line, got)
        assert got[0]["code"] and got[0]["msg"]
    st1 = ok(unit, "status")
    for k in ("state", "program", "steps", "channels", "host"):
        assert st1[k] == st0[k], k
    assert unit.fs.files == files  # settings and history untouched
    full = 3 * STEP_MA
    later = [p.peak_a_ma for p in pulses(unit, 1, t0)] + [p.peak_a_ma for p in pulses(unit, 2, t0)]
    assert later and all(0.95 * full <= ma <= full + 1e-6 for ma in later)


@contextlib.contextmanager
def _each_round(unit, seen):
    """Calls seen() each time the console task goes back to the scheduler for more bytes
    (the awaited readinto of stim.host's stream reader), while the block runs."""
    stream = unit.runtime.modules["asyncio.stream"].Stream
    read = stream.readinto

    def counted(self, buf):
        seen()
        return read(self, buf)

    stream.readinto = counted
    try:
        yield
    finally:
        stream.readinto = read


@pytest.mark.req("SR-7", "SR-12")
def test_bytes_that_piled_up_are_taken_a_line_length_per_scheduler_round(make_unit):
    """Bytes that arrived while the CPU was busy (a flash erase masks interrupts for 45 ms, a
    long control cycle) are taken at most 120 per scheduler round (MAX_LINE, docs/protocol.md),
    so the buttons and the control loop get their turn between; and a whole 120 each round, so
    a line of 120 bytes is read in one."""
    unit = unit_on(make_unit)
    left = []  # bytes waiting when the console task goes back to the scheduler
    with _each_round(unit, lambda: left.append(len(unit.usb_rx))):
        unit.at(unit.chip.t_s + 0.01, unit.usb_rx.extend, b"x" * 500 + b"\n")
        unit.run_for(0.5)
    assert left == [381, 261, 141, 21, 0]
    assert ok(unit, "status")["state"] == "idle"


@pytest.mark.req("SR-7", "SR-12")
def test_the_console_task_never_waits_for_bytes_still_on_their_way(make_unit):
    """A line the host writes in two pieces 2 ms apart is taken piece by piece: the task reads
    what has arrived and goes back to the scheduler, instead of holding the CPU in a poll
    while it waits for the rest."""
    unit = unit_on(make_unit)
    link = unit.runtime.modules["stim.host"].HostLink
    feed = link.feed
    fed = [0]
    rounds = []  # bytes taken in each scheduler round

    def counted_feed(self, c):
        fed[0] += 1
        return feed(self, c)

    def round_over():
        rounds.append(fed[0])
        fed[0] = 0

    link.feed = counted_feed
    n = len(unit.console.replies)
    with _each_round(unit, round_over):
        unit.send("@l1 set x=1")
        unit.send(" y=2\n", at=unit.chip.t_s + 0.002)
        unit.run_for(0.3)
    link.feed = feed
    (got,) = unit.console.replies[n:]
    assert got["id"] == "l1" and got["code"] == "bad_args"
    assert rounds == [11, 5]


@pytest.mark.req("SR-12")
def test_bad_input_does_not_keep_a_host_session_alive(make_unit):
    unit = unit_on(make_unit)
    host_session(unit, step=2)
    ok(unit, "ping")
    t_last = unit.chip.t_s - 0.05
    t = t_last
    while t < t_last + KEEPALIVE_S + 1.0:
        t += 0.5
        unit.send(b"pong\n\xff\n", at=t)
    unit.run_until(t_last + KEEPALIVE_S + RAMP_DOWN_S + 0.5)
    assert [e["reason"] for e in unit.logs("session") if e["state"] == "ending"] == ["keepalive"]
    assert not pulses(unit, 1, t_last + KEEPALIVE_S + RAMP_DOWN_S + 0.1)


# ---- fuzz ---------------------------------------------------------------------------------------
_TOKENS = [
    "status", "stop", "start", "intensity", "settings", "set", "history", "ping", "@a", "@1x",
    "1", "2", "3", "0", "41", "-1", "1.5", "x", "tens_burst", "ems_strength", "session_min=0",
    "channels=9", "program=", "=", "@", "\t", "\x00", "\x7f", "\xe9",
]  # fmt: skip


def _parses(line: bytes) -> bool:
    """True if the line is a well-formed command (which the fuzz then leaves out: it may act)."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return False
    if any(not (32 <= ord(c) <= 126 or c == "\t") for c in text) or len(line) > 120:
        return False
    if not text.split():
        return True  # an empty line gets no reply at all
    try:
        _hostcmd.parse(text, load_board("pico"))
    except _hostcmd.HostError:
        return False
    return True


@pytest.mark.req("SR-12")
def test_fuzzed_command_lines_get_an_error_and_change_nothing(make_unit):
    """Random bytes and random token soup, each as one line, into a running session started
    with the buttons (so no keep-alive runs out while the fuzz goes on)."""
    unit = make_unit("pico", load_ohm={1: 1000.0, 2: 1000.0})
    unit.press("power", at=ON_S, hold_s=1.7)
    for i in range(3):
        unit.press("plus", at=READY_S + 0.3 * i)
    unit.run_until(READY_S + 0.6 + 2.6)
    files = dict(unit.fs.files)
    st0 = ok(unit, "status")
    t0 = unit.chip.t_s
    full = 3 * STEP_MA
    # Ctrl-C (0x03) interrupts the firmware by design while the console is open (SR-8,
    # tested on its own): not a command line.
    raw = st.binary(max_size=300).map(
        lambda b: b.replace(b"\n", b"").replace(b"\r", b"").replace(b"\x03", b"")
    )
    words = st.lists(st.sampled_from(_TOKENS), max_size=8)
    soup = words.map(lambda t: " ".join(t).encode("latin-1"))
    lines = st.one_of(raw, soup)

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(lines)
    def one(line):
        if _parses(line):
            return
        got = send(unit, line + b"\n")
        assert len(got) == 1 and got[0]["r"] == "err", (line, got, unit.console.lines[-4:])
        assert unit.state == "main"

    one()
    unit.run_for(0.3)
    st1 = ok(unit, "status")
    assert {k: st1[k] for k in ("state", "steps", "program", "host")} == {
        k: st0[k] for k in ("state", "steps", "program", "host")
    }
    assert unit.fs.files == files
    seen = [p.peak_a_ma for ch in (1, 2) for p in pulses(unit, ch, t0)]
    assert seen and all(0.95 * full <= ma <= full + 1e-6 for ma in seen)
    assert not unit.logs("crash")

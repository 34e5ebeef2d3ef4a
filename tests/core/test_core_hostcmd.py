"""The host command protocol's pure part (stim/hostcmd.py, SR-12), run by pytest and on
MicroPython's VM alike: line assembly, parsing, validation order, reply lines."""

import json

from coreenv import BOARD, hostcmd, programs, raises, req

STEPS = BOARD["intensity"]["steps"]
CFG = {"program": "tens_conventional", "session_min": 30, "channels": "both"}


def _feed(reader, data):
    """Every non-None result of feeding `data` byte by byte."""
    out = []
    for c in data:
        r = reader.feed(c)
        if r is not None:
            out.append(r if r != hostcmd.LINE else reader.text())
    return out


def _code(fn, *args, **kw):
    return raises(hostcmd.HostError, fn, *args, **kw).code


# ---- lines ------------------------------------------------------------------------------------
@req("FR-23")
@req("SR-12")
def test_lines_end_at_lf_or_cr_and_empty_lines_are_ignored():
    r = hostcmd.LineReader()
    assert _feed(r, b"status\r\n\n\nping\rstop\n") == ["status", "ping", "stop"]
    assert _feed(r, b"a\tb\n") == ["a b"]  # a tab is a space


@req("FR-23")
@req("SR-12")
def test_a_line_with_a_byte_outside_printable_ascii_is_refused_whole():
    r = hostcmd.LineReader()
    for bad in (0, 1, 8, 27, 31, 127, 128, 0xC3, 0xFF):
        got = _feed(r, b"sta" + bytes([bad]) + b"tus\n")
        assert got == [hostcmd.E_BYTES], bad
    assert _feed(r, b"status\n") == ["status"]  # the next line is read normally
    # The edges of printable ASCII, space (32) and tilde (126), are taken as they are.
    assert _feed(r, b"set  x=~\n") == ["set  x=~"]


@req("FR-23")
@req("SR-12")
def test_an_over_long_line_is_refused_and_the_next_one_read():
    r = hostcmd.LineReader()
    assert _feed(r, b"x" * 120 + b"\n") == ["x" * 120]  # docs/protocol.md: 120 bytes at most
    assert _feed(r, b"x" * 121 + b"\n") == [hostcmd.E_LONG]
    assert _feed(r, b"y" * 5000 + b"\x00\n") == [hostcmd.E_LONG]  # the first problem is named
    assert _feed(r, b"ping\n") == ["ping"]


@req("FR-23")
@req("SR-12")
def test_every_byte_value_is_taken_without_raising():
    r = hostcmd.LineReader()
    for c in range(256):
        r.feed(c)
    r.feed(10)
    assert _feed(r, b"ping\n") == ["ping"]


# ---- parsing ----------------------------------------------------------------------------------
@req("FR-23")
@req("SR-12")
def test_commands_parse_with_their_arguments_and_request_id():
    p = hostcmd.parse
    assert p("status", BOARD) == (None, "status", ())
    assert p("@a7 ping", BOARD) == ("a7", "ping", ())
    assert p("@Ab345678 ping", BOARD) == ("Ab345678", "ping", ())  # 8 letters or digits at most
    assert p("start", BOARD) == (None, "start", None)
    assert p("start ems_relax", BOARD) == (None, "start", "ems_relax")
    assert p("  intensity   2  05 ", BOARD) == (None, "intensity", (1, 5))
    assert p("set session_min=20 channels=1", BOARD) == (
        None,
        "set",
        {"session_min": "20", "channels": "1"},
    )


@req("FR-23")
@req("SR-12")
def test_bad_lines_are_refused_with_a_code_and_the_request_id():
    p = hostcmd.parse
    cases = [
        ("", hostcmd.E_UNKNOWN),
        ("STATUS", hostcmd.E_UNKNOWN),
        ("reboot", hostcmd.E_UNKNOWN),
        ("status now", hostcmd.E_ARGS),
        ("start a b", hostcmd.E_ARGS),
        ("start nope", hostcmd.E_RANGE),
        ("intensity 1", hostcmd.E_ARGS),
        ("intensity 0 1", hostcmd.E_RANGE),
        ("intensity %d 1" % (len(BOARD["channels"]) + 1), hostcmd.E_RANGE),
        ("intensity 1 -1", hostcmd.E_ARGS),
        ("intensity 1 +1", hostcmd.E_ARGS),
        ("intensity 1 1.5", hostcmd.E_ARGS),
        ("intensity 1 99999", hostcmd.E_ARGS),
        ("intensity one 1", hostcmd.E_ARGS),
        ("set", hostcmd.E_ARGS),
        ("set program", hostcmd.E_ARGS),
        ("set =x", hostcmd.E_ARGS),
        ("set volume=3", hostcmd.E_ARGS),
        ("set channels=1 channels=2", hostcmd.E_ARGS),
        ("@ status", hostcmd.E_ARGS),
        ("@toolongid9 status", hostcmd.E_ARGS),
        ("@123456789 status", hostcmd.E_ARGS),
        ("@a-b status", hostcmd.E_ARGS),
        ("@ok", hostcmd.E_UNKNOWN),
    ]
    for line, code in cases:
        assert _code(p, line, BOARD) == code, line
    e = raises(hostcmd.HostError, p, "@q1 intensity 1 x", BOARD)
    assert (e.rid, e.cmd, e.code) == ("q1", "intensity", hostcmd.E_ARGS)


# Each command's arguments as docs/protocol.md gives them, written out here (not read from
# hostcmd.COMMANDS) so a changed count in the firmware fails a test.
ARITY = {
    "ping": (0, 0), "status": (0, 0), "stop": (0, 0), "start": (0, 1), "intensity": (2, 2),
    "settings": (0, 0), "set": (1, 5), "history": (0, 0), "time": (6, 6), "pair": (0, 0),
    "maintenance": (0, 0), "program": (1, 7),
}  # fmt: skip


@req("FR-23")
@req("SR-12")
def test_every_command_refuses_one_argument_too_few_or_too_many():
    assert sorted(hostcmd.COMMANDS) == sorted(ARITY)
    for cmd, (least, most) in ARITY.items():
        counts = [most + 1] if least == 0 else [least - 1, most + 1]
        for n in counts:
            line = " ".join([cmd] + ["1"] * n)
            e = raises(hostcmd.HostError, hostcmd.parse, line, BOARD)
            want = "%d" % least if least == most else "%d to %d" % (least, most)
            assert (e.code, e.cmd) == (hostcmd.E_ARGS, cmd), line
            assert e.msg == "%s takes %s argument(s), got %d" % (cmd, want, n), line


@req("FR-23")
@req("SR-12")
def test_a_refused_word_is_named_in_the_reply_up_to_24_characters():
    """The reply names what was wrong, so a host's user can fix the line, but never echoes
    more than 24 characters of it back (a hostile host gets no long echo)."""
    p = hostcmd.parse
    w = "x" * 40
    cases = [
        ("reboot", "unknown command: reboot"),
        (w, "unknown command: " + w[:24]),
        ("start nope", "no program nope"),
        ("start " + w, "no program " + w[:24]),
        ("set volume", "set takes key=value, got volume"),
        ("set =5", "set takes key=value, got =5"),  # no key before the "="
        ("set v=5", "no setting v (%s)" % ", ".join(hostcmd.SETTING_KEYS)),  # a key of one
        ("set " + w, "set takes key=value, got " + w[:24]),
        ("set " + w + "=1", "no setting %s (%s)" % (w[:24], ", ".join(hostcmd.SETTING_KEYS))),
    ]
    for line, msg in cases:
        assert raises(hostcmd.HostError, p, line, BOARD).msg == msg, line


@req("FR-23")
@req("SR-12", "SR-13")
def test_settings_are_checked_as_the_settings_file_is():
    c = hostcmd.check_settings
    assert c(BOARD, CFG, {"session_min": "45"})["session_min"] == 45
    new = c(BOARD, CFG, {"program": "ems_relax", "channels": "2"})
    assert new == {"program": "ems_relax", "session_min": 30, "channels": "2",
                   "feedback": "both", "auto_off_min": 10}  # fmt: skip
    new = c(BOARD, CFG, {"feedback": "off", "auto_off_min": "45"})
    assert new["feedback"] == "off" and new["auto_off_min"] == 45
    assert CFG["program"] == "tens_conventional"  # the current settings are not touched
    top = BOARD["limits"]["max_session_min"]
    for raw in (
        {"session_min": "0"},
        {"session_min": str(top + 1)},
        {"session_min": "x"},
        {"channels": "3"},
        {"program": "nope"},
        {"feedback": "loud"},
        {"auto_off_min": "0"},
        {"auto_off_min": "61"},
    ):
        assert _code(c, BOARD, CFG, raw) in (hostcmd.E_RANGE, hostcmd.E_ARGS), raw


# ---- intensity --------------------------------------------------------------------------------
@req("FR-23")
@req("SR-12", "SR-2", "SR-3")
def test_intensity_rules_in_order_caps_state_lock_one_step_rate():
    p = programs.by_id("tens_conventional")
    ok = hostcmd.check_intensity
    slow = 400  # ms: docs/protocol.md, one rise per 400 ms per channel
    ok(BOARD, p, True, False, 3, 4, slow)  # one step up, not too soon
    ok(BOARD, p, True, False, 3, 0, 0)  # decreases at once, any size, any time
    ok(BOARD, p, True, True, 3, 2, 0)  # locked: lowering still works
    ok(BOARD, p, True, True, 3, 3, 0)  # the step it is at: no rise, so neither lock nor rate
    e = raises(hostcmd.HostError, ok, BOARD, p, True, False, STEPS, STEPS + 1, slow)
    assert (e.code, e.limit) == (hostcmd.E_LIMIT, "step")
    low = dict(BOARD, limits=dict(BOARD["limits"], max_peak_ma=6.0))
    e = raises(hostcmd.HostError, ok, low, p, True, False, 4, 5, slow)
    assert (e.code, e.limit) == (hostcmd.E_LIMIT, "max_peak_ma")
    assert _code(ok, BOARD, p, False, False, 0, 1, slow) == hostcmd.E_STATE
    assert _code(ok, BOARD, p, True, True, 3, 4, slow) == hostcmd.E_LOCKED
    assert _code(ok, BOARD, p, True, False, 3, 5, slow) == hostcmd.E_RISE
    assert _code(ok, BOARD, p, True, False, 0, 2, slow) == hostcmd.E_RISE
    assert _code(ok, BOARD, p, True, False, 3, 4, slow - 1) == hostcmd.E_RATE


# ---- replies ----------------------------------------------------------------------------------
@req("FR-23")
@req("SR-12")
def test_replies_are_one_json_object_starting_with_r():
    line = hostcmd.reply("ok", "status", "a1", {"steps": [1, 2], "x": 0.12345, "s": 'q"'})
    assert line.startswith('{"r":"ok","cmd":"status","id":"a1"')
    assert json.loads(line) == {
        "r": "ok",
        "cmd": "status",
        "id": "a1",
        "steps": [1, 2],
        "x": 0.123,
        "s": 'q"',
    }
    rec = hostcmd.reply("rec", "history", None, None, ',"i":0,"rec":{"min":3}')
    assert json.loads(rec) == {"r": "rec", "cmd": "history", "i": 0, "rec": {"min": 3}}
    e = raises(hostcmd.HostError, hostcmd.parse, "@z intensity 1 x", BOARD)
    err = json.loads(hostcmd.error_reply(e))
    assert (err["r"], err["cmd"], err["id"], err["code"]) == ("err", "intensity", "z", "bad_args")
    r = hostcmd.LineReader()
    for code, line in ((hostcmd.E_BYTES, b"sta\x01tus\n"), (hostcmd.E_LONG, b"x" * 200 + b"\n")):
        assert _feed(r, line) == [code]
        got = json.loads(hostcmd.line_error(code, r))
        assert (got["r"], got["cmd"], got["code"]) == ("err", None, code)
        assert "id" not in got
        want = "line longer than 120 bytes" if code == hostcmd.E_LONG else "only printable ASCII"
        assert got["msg"].startswith(want), got


def _line_error(data):
    r = hostcmd.LineReader()
    (code,) = _feed(r, data)
    return json.loads(hostcmd.line_error(code, r))


@req("FR-23")
@req("SR-12")
def test_a_refused_line_is_answered_with_its_id_when_the_id_was_read_whole():
    got = _line_error(b"@h1a stat\x01us\n")
    assert (got["id"], got["code"], got["cmd"]) == ("h1a", hostcmd.E_BYTES, None)
    got = _line_error(b"@k9 " + b"x" * 300 + b"\n")
    assert (got["id"], got["code"]) == ("k9", hostcmd.E_LONG)
    got = _line_error(b"@12345678 ping\xff\n")
    assert got["id"] == "12345678"  # the longest id
    assert _line_error(b"@z ping\xff\n")["id"] == "z"  # the shortest
    # Not readable: the bad byte inside the id or right after it, no id, or not an id at all
    for data in (
        b"@h\x011 status\n",
        b"@h1\x01 status\n",
        b"\x02@h1 status\n",
        b"stat\x01us\n",
        b"@123456789 ping\xff\n",
        b"@a-b ping\xff\n",
        b"@-ab ping\xff\n",
        b"@ ping\xff\n",
    ):
        assert "id" not in _line_error(data), data


@req("FR-23")
@req("SR-12")
def test_time_takes_a_real_utc_date_from_2025_to_2099():
    p = hostcmd.parse
    assert p("@t1 time 2026 8 24 13 5 9", BOARD) == ("t1", "time", [2026, 8, 24, 13, 5, 9])
    assert p("time 2028 2 29 0 0 0", BOARD)[2] == [2028, 2, 29, 0, 0, 0]  # a leap year
    assert p("time 2032 2 29 0 0 0", BOARD)[2] == [2032, 2, 29, 0, 0, 0]  # not 3 x k
    assert p("time 2099 12 31 23 59 59", BOARD)[2] == [2099, 12, 31, 23, 59, 59]
    assert p("time 2025 1 1 0 0 0", BOARD)[2] == [2025, 1, 1, 0, 0, 0]
    for bad in (
        "time 2024 12 31 23 59 59",  # before 2025: the port's clock at power-up is 2021
        "time 2100 1 1 0 0 0",
        "time 2026 0 1 0 0 0",
        "time 2026 13 1 0 0 0",
        "time 2026 2 29 0 0 0",  # not a leap year
        "time 2025 2 29 0 0 0",  # 3 x 675, not a leap year
        "time 2026 4 31 0 0 0",
        "time 2026 1 0 0 0 0",
        "time 2026 1 1 24 0 0",
        "time 2026 1 1 0 60 0",
        "time 2026 1 1 0 0 60",
    ):
        assert _code(p, bad, BOARD) == hostcmd.E_RANGE, bad
    for bad in ("time", "time 2026 1 1 0 0", "time 2026 1 1 0 0 0 0", "time 2026 1 1 0 0 -1"):
        assert _code(p, bad, BOARD) == hostcmd.E_ARGS, bad

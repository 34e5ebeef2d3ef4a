"""Host command protocol (SR-12): line assembly, parsing, validation and reply lines.

Pure module (no `machine`): the same code runs on the unit, in the simulator and in the pure-core
tests on MicroPython's VM. stim/host.py reads the console and applies what this module accepts;
docs/protocol.md is the reference for the host side.

A command is one line of printable ASCII (0x20-0x7E; a tab counts as a space), at most
MAX_LINE bytes, ended by LF or CR (CR LF gives an empty line, which is ignored):

    [@ID] COMMAND [ARG ...]

ID (1-8 letters or digits) is echoed in the reply so a host can pair replies with requests.
Every line gets exactly one final reply line, `{"r":"ok",...}` or `{"r":"err",...}`; `history`
sends one `{"r":"rec",...}` line per record before its final `ok`. Log lines start with
`{"t":`, replies with `{"r":`, so the two never mix up.

Nothing here changes the unit: a bad line raises HostError (code, message) and the caller
replies with it and changes nothing.
"""

import json

from micropython import const

from stim import limits, log, programs, settings

MAX_LINE = 120  # bytes of one command line, without its end
_MAX_TOKENS = const(8)
_MAX_ID = const(8)
_MAX_INT_DIGITS = const(4)
KEEPALIVE_MS = 3000  # SR-12: a host-controlled session without a valid command for this long
RISE_MS = 400  # SR-2: at most one step up per channel per RISE_MS, like PLUS held

LINE = 1  # LineReader.feed(): a complete, clean line is ready in text()

# Error codes (docs/protocol.md, "Errors").
E_BYTES = "bad_bytes"
E_LONG = "too_long"
E_UNKNOWN = "unknown"
E_ARGS = "bad_args"
E_RANGE = "range"
E_LIMIT = "limit"
E_STATE = "state"
E_LOCKED = "locked"
E_RISE = "rise"
E_RATE = "rate"
E_BATTERY = "battery"
E_IO = "io"
E_CONSENT = "consent"
E_CHARGING = "charging"

# command: (least, most) arguments
COMMANDS = {
    "ping": (0, 0),
    "status": (0, 0),
    "stop": (0, 0),
    "start": (0, 1),
    "intensity": (2, 2),
    "settings": (0, 0),
    "set": (1, 5),
    "history": (0, 0),
    "time": (6, 6),
    "pair": (0, 0),
    "maintenance": (0, 0),
    "program": (1, 7),
}
SETTING_KEYS = ("program", "session_min", "channels", "feedback", "auto_off_min")


class HostError(ValueError):
    """A refused command line: `code` for the host's code, the message for its user."""

    def __init__(self, code, msg, cmd=None, rid=None, limit=None):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.cmd = cmd
        self.rid = rid
        self.limit = limit


class LineReader:
    """Assembles console bytes into command lines in a fixed buffer: feeding a byte that does
    not end a line allocates nothing, so an idle or chattering link costs no heap."""

    def __init__(self, size=MAX_LINE):
        self.buf = bytearray(size)
        self.size = size
        self.n = 0
        self.len = 0
        self.bad = None  # the first problem of the line being read (E_BYTES or E_LONG)

    def feed(self, c):
        """One byte. Returns None (nothing yet, or an empty line), LINE (a clean line is
        ready: text()) or an error code (the line that just ended was bad: discarded)."""
        if c == 10 or c == 13:
            n = self.n
            bad = self.bad
            self.n = 0
            self.bad = None
            if bad is not None:
                self.len = n  # for line_error: the bytes before the problem
                return bad
            if n == 0:
                return None
            self.len = n
            return LINE
        if self.bad is not None:
            return None  # the rest of a bad line is skipped up to its end
        if c == 9:
            c = 32
        if c < 32 or c > 126:
            self.bad = E_BYTES
            return None
        if self.n >= self.size:
            self.bad = E_LONG
            return None
        self.buf[self.n] = c
        self.n += 1
        return None

    def text(self):
        return bytes(self.buf[: self.len]).decode()


def _is_alnum(s):
    for ch in s:
        if not ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9"):
            return False
    return True


def _uint(tok, what, cmd, rid):
    if not tok or len(tok) > _MAX_INT_DIGITS:
        msg = "%s: a whole number of 1-%d digits" % (what, _MAX_INT_DIGITS)
        raise HostError(E_ARGS, msg, cmd, rid)
    for ch in tok:
        if not "0" <= ch <= "9":
            raise HostError(E_ARGS, "%s: a whole number, got %s" % (what, tok), cmd, rid)
    return int(tok)


def parse(line, board):
    """(rid, cmd, args) for a clean line; HostError for anything wrong with its form or its
    fixed ranges. args: start (program id or None); intensity (channel index from 0, step);
    set (a dict of the raw key=value strings, checked by check_settings); others ()."""
    toks = line.split()
    rid = None
    if toks and toks[0][0] == "@":
        rid = toks[0][1:]
        if not 1 <= len(rid) <= _MAX_ID or not _is_alnum(rid):
            raise HostError(E_ARGS, "request id: @ then 1-%d letters or digits" % _MAX_ID)
        toks = toks[1:]
    if not toks:
        raise HostError(E_UNKNOWN, "no command", None, rid)
    cmd = toks[0]
    spec = COMMANDS.get(cmd)
    if spec is None:
        raise HostError(E_UNKNOWN, "unknown command: %s" % cmd[:24], None, rid)
    args = toks[1:]
    if not spec[0] <= len(args) <= spec[1]:
        if spec[0] == spec[1]:
            want = "%d" % spec[0]
        else:
            want = "%d to %d" % spec
        msg = "%s takes %s argument(s), got %d" % (cmd, want, len(args))
        raise HostError(E_ARGS, msg, cmd, rid)
    if cmd == "start":
        if not args:
            return rid, cmd, None
        try:
            programs.by_id(args[0])
        except programs.ProgramError:
            raise HostError(E_RANGE, "no program %s" % args[0][:24], cmd, rid) from None
        return rid, cmd, args[0]
    if cmd == "intensity":
        ch = _uint(args[0], "channel", cmd, rid)
        n = len(board["channels"])
        if not 1 <= ch <= n:
            raise HostError(E_RANGE, "channel %d outside 1..%d" % (ch, n), cmd, rid)
        step = _uint(args[1], "step", cmd, rid)
        return rid, cmd, (ch - 1, step)
    if cmd == "set":
        out = {}
        for a in args:
            i = a.find("=")
            if i <= 0:
                raise HostError(E_ARGS, "set takes key=value, got %s" % a[:24], cmd, rid)
            k = a[:i]
            if k not in SETTING_KEYS:
                msg = "no setting %s (%s)" % (k[:24], ", ".join(SETTING_KEYS))
                raise HostError(E_ARGS, msg, cmd, rid)
            if k in out:
                raise HostError(E_ARGS, "%s given twice" % k, cmd, rid)
            out[k] = a[i + 1 :]
        return rid, cmd, out
    if cmd == "time":
        # UTC from the host: year month day hours minutes seconds, a real date (the port's
        # RTC takes any numbers and rolls them over: February 30 would become March 2). The
        # bytes: days per month, February's leap day added (every fourth year up to 2099).
        # From 2025: the port starts its clock at 2021-01-01 at every power-up and hard reset,
        # so a clock in 2025 or later was set by a host (stim.unit, _CLOCK_YEAR_MIN). Literal
        # numbers: module constants would cost heap on the unit.
        v = [_uint(a, "time", cmd, rid) for a in args]
        y = v[0]
        mo = v[1]
        ok = 2025 <= y <= 2099 and 1 <= mo <= 12 and v[3] < 24
        if ok:
            days = b"\x1f\x1c\x1f\x1e\x1f\x1e\x1f\x1f\x1e\x1f\x1e\x1f"[mo - 1]
            ok = 1 <= v[2] <= days + (mo == 2 and y % 4 == 0) and v[4] < 60 and v[5] < 60
        if not ok:
            msg = "time: a UTC date and time, year 2025-2099"
            raise HostError(E_RANGE, msg, cmd, rid)
        return rid, cmd, v
    if cmd == "program":
        return rid, cmd, args  # the words as sent: stim.custom reads them
    return rid, cmd, ()


def check_settings(board, cfg, raw, cmd="set", rid=None):
    """The settings `cfg` with the key=value strings of `raw` applied, validated exactly as the
    settings file is (stim.settings.check); HostError naming the bad keys otherwise."""
    new = dict(cfg)
    for k in raw:
        v = raw[k]
        new[k] = _uint(v, k, cmd, rid) if k == "session_min" or k == "auto_off_min" else v
    out, problems = settings.check(board, new)
    if problems:
        raise HostError(E_RANGE, "bad value for %s" % ", ".join(problems), cmd, rid)
    return out


def check_intensity(board, program, running, locked, old, step, since_rise_ms, rid=None):
    """Refuse a step the host may not set now (HostError), in this order: over a cap of the
    program (SR-3, `limit` names it), no running session, a rise while locked, a rise of more
    than one step (SR-2), or a second rise within RISE_MS. Decreases are always allowed."""
    cmd = "intensity"
    try:
        limits.check(board, program, step)
    except limits.LimitError as e:
        raise HostError(E_LIMIT, str(e), cmd, rid, e.key) from None
    if not running:
        raise HostError(E_STATE, "no running session (start one first)", cmd, rid)
    if step <= old:
        return
    if locked:
        raise HostError(E_LOCKED, "the unit is locked: only lower or stop", cmd, rid)
    if step > old + 1:
        msg = "one step up per command (at %d, asked %d)" % (old, step)
        raise HostError(E_RISE, msg, cmd, rid)
    if since_rise_ms < RISE_MS:
        raise HostError(E_RATE, "one step up per %d ms per channel" % RISE_MS, cmd, rid)


def reply(kind, cmd, rid, fields=None, raw=""):
    """One reply line: `{"r":kind,"cmd":...` first (the host's marker), then `id`, the fields,
    and `raw` (ready JSON text starting with a comma) last."""
    parts = ['{"r":"%s","cmd":%s' % (kind, json.dumps(cmd))]
    if rid is not None:
        parts.append(',"id":%s' % json.dumps(rid))
    if fields:
        for k in fields:
            parts.append(',"%s":%s' % (k, log.json_value(fields[k])))
    parts.append(raw)
    parts.append("}")
    return "".join(parts)


def error_reply(e):
    fields = {"code": e.code, "msg": e.msg}
    if e.limit is not None:
        fields["limit"] = e.limit
    return reply("err", e.cmd, e.rid, fields)


def line_error(code, reader):
    """The reply to a line `reader` discarded (E_BYTES, E_LONG), with the line's @ID when the
    bytes before the problem held it whole (`@ID` and a space): the host can tell it is its own."""
    if code == E_LONG:
        msg = "line longer than %d bytes" % MAX_LINE
    else:
        msg = "only printable ASCII in a command line"
    t = reader.text()  # what was read of the line up to its first bad byte
    i = t.find(" ")
    rid = t[1:i] if t[:1] == "@" and 1 < i <= _MAX_ID + 1 and _is_alnum(t[1:i]) else None
    return reply("err", None, rid, {"code": code, "msg": msg})

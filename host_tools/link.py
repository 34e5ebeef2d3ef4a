"""The host side of the unit's command protocol on its USB serial console (docs/protocol.md).

    link = open_link(DeviceIO(), port)          # or UnitLink(any serial-like stream)
    link.command("status")                      # the final reply, a dict; CommandError if refused
    link.request("history")                     # every reply line: `rec` lines, then the `ok`

A request goes out as `@ID LINE\\n`; the firmware answers with lines starting `{"r":` that carry
the same `id`, the last one `ok` or `err`. Everything else on the console (log lines `{"t":...`,
replies to other requests) is handed to `on_line` and otherwise skipped.

Before its first request the link synchronises (`sync`): a line end closes whatever half line
the unit holds, then `time` (the laptop's clock, UTC: the unit dates its history by it) is sent
every half second until the unit answers. Right after `stimctl flash` the firmware is still
booting and drops what arrives before its console task runs: without this, the first command
after a flash got no reply (reproduced on the virtual board, every time). Once synchronised,
the link is the only writer and the unit answers lines in order, so an `err` reply without an
id and without a command (a line the unit could not read, from a firmware that does not echo
the id of such lines) answers the request in flight.

Lines the tool refuses itself (empty, too long, not ASCII, a Ctrl-C that would interrupt the
firmware) raise NotSent: nothing was sent, and the unit did not refuse anything.

The stream is anything with pyserial's write/readline/close (a real port from DeviceIO.serial, a
virtual board's pseudo-terminal, or host_tools/testing/unit_serial.py's simulated unit); if it
has a `clock()`, the reply timeout runs on that clock.

`stimctl send` (cli.py) is `send_main` below.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime

from .device import DeviceError, DeviceIO, fail, link_lost, pick_port
from .protocol import MAX_LINE, REPLY_PREFIX, json_line

REPLY_TIMEOUT_S = 2.0
KEEPALIVE_EVERY_S = 1.0  # well inside the firmware's 3 s keep-alive
SYNC_TIMEOUT_S = (
    5.0  # a Pico's firmware answers about 1 s after a reset, the virtual board's 0.5 s
)
SYNC_EVERY_S = 0.5
CONSENT_POLL_S = 0.5  # how often `pair` asks whether the wearer answered (and keeps alive)

NO_REPLY_HINT = (
    "check that the stimulator firmware is running on it: `stimctl logs` shows its log lines; "
    "a unit in safe mode (MODE held at boot) or left at the REPL does not answer, and "
    "`stimctl flash` installs the firmware"
)


class CommandError(Exception):
    """The unit refused a command: `code` (docs/protocol.md, "Errors") and its message."""

    def __init__(self, line: str, reply: dict):
        self.line = line
        self.reply = reply
        self.code = str(reply.get("code", "?"))
        self.msg = str(reply.get("msg", ""))
        super().__init__("unit refused `%s`: %s (%s)" % (line, self.msg, self.code))


class NotSent(ValueError):
    """A command line stimctl refused itself: nothing was sent to the unit."""

    def __init__(self, line: str, why: str):
        self.line = line
        super().__init__("not sent: `%s` %s (refused by stimctl, not by the unit)" % (line, why))


def _unread(rep: dict) -> bool:
    """An error reply to a line the unit could not read, without an id (older firmware, or an
    id the unit could not read)."""
    return rep.get("r") == "err" and rep.get("cmd") is None and "id" not in rep


def clock_line(now: datetime | None = None) -> str:
    """The `time` command for the laptop's clock, in UTC (docs/protocol.md)."""
    t = (now or datetime.now(UTC)).astimezone(UTC)
    return "time %d %d %d %d %d %d" % (t.year, t.month, t.day, t.hour, t.minute, t.second)


class UnitLink:
    """The host's end of the command protocol (the firmware's end is stim/host.py)."""

    def __init__(
        self,
        stream,
        port: str = "",
        *,
        timeout_s: float = REPLY_TIMEOUT_S,
        on_line=None,
    ):
        self.stream = stream
        self.port = port or "the unit"
        self.timeout_s = timeout_s
        self.on_line = on_line
        self.clock = getattr(stream, "clock", time.monotonic)
        self._ids = itertools.count(1)
        self._tag = "h%x" % (int(time.time() * 1000) % 0xFFFF)  # stale replies never match
        self._buf = b""  # a line the port's read timeout cut, until the rest arrives
        self.synced = False

    def _write(self, data: bytes) -> None:
        import serial

        try:
            self.stream.write(data)
        except (serial.SerialException, OSError) as e:
            raise link_lost(self.port, e, "while sending a command") from None

    def _readline(self) -> bytes:
        import serial

        try:
            return self.stream.readline()
        except (serial.SerialException, OSError) as e:
            raise link_lost(self.port, e, "while waiting for a reply") from None

    def read_line(self) -> str | None:
        """The next whole line from the unit (stripped), or None if none is complete yet."""
        self._buf += self._readline()
        if not self._buf.endswith(b"\n"):
            return None
        text = self._buf.decode("utf-8", errors="replace").strip()
        self._buf = b""
        return text

    def _rid(self) -> str:
        return "%s%x" % (self._tag, next(self._ids) % 0xFF)

    def sync(self) -> dict:
        """Wait until the unit answers, and set its clock (see the module's docstring). The
        unit's reply to `time`: `ok`, or `err` from firmware without the command (`unknown`)
        or a unit that refuses it; DeviceError no_reply if nothing answers."""
        rid = self._rid()
        self._write(b"\n")  # ends a half line the unit holds: its error reply is not ours
        deadline = self.clock() + SYNC_TIMEOUT_S
        resend = self.clock()
        while True:
            if self.clock() >= resend:
                self._write(("@%s %s\n" % (rid, clock_line())).encode("ascii"))
                resend = self.clock() + SYNC_EVERY_S
            text = self.read_line()
            if text is None:
                if self.clock() >= deadline:
                    raise DeviceError(
                        "no_reply",
                        "%s: no reply to host commands within %.0f s"
                        % (self.port, SYNC_TIMEOUT_S),
                        NO_REPLY_HINT,
                    )
                continue
            rep = json_line(text, REPLY_PREFIX)
            if rep is not None and rep.get("id") == rid and rep.get("r") in ("ok", "err"):
                self.synced = True
                return rep
            if self.on_line and text:
                self.on_line(text)

    def send(self, line: str) -> str:
        """Send one command line without waiting (synchronising first if needed); its id.
        NotSent for a line stimctl refuses itself."""
        line = " ".join(line.split())
        if not self.synced:
            self.sync()
        rid = self._rid()
        if not line:
            raise NotSent(line, "is empty")
        if len(line) + len(rid) + 2 > MAX_LINE:
            msg = "is %d bytes: a command line is at most %d with its id" % (
                len(line), MAX_LINE - len(rid) - 2)  # fmt: skip
            raise NotSent(line[:40] + "...", msg)
        if not line.isascii():
            raise NotSent(line, "has characters outside ASCII")
        if "\x03" in line:
            raise NotSent(
                line.replace("\x03", "^C"), "has a Ctrl-C, which would interrupt the firmware"
            )
        self._write(("@%s %s\n" % (rid, line)).encode("ascii"))
        return rid

    def match(self, rep: dict | None, rid: str) -> bool:
        """Whether the reply `rep` (a parsed reply line, or None) answers request `rid`."""
        if rep is None:
            return False
        return rep.get("id") == rid or (self.synced and _unread(rep))

    def request(self, line: str) -> list[dict]:
        """Send one command line; every reply line for it. CommandError if the unit refused
        it, NotSent if stimctl did."""
        line = " ".join(line.split())
        rid = self.send(line)
        got: list[dict] = []
        deadline = self.clock() + self.timeout_s
        while True:
            text = self.read_line()
            if text is None:
                if self.clock() >= deadline:
                    raise DeviceError(
                        "no_reply",
                        "%s: no reply to `%s` within %.0f s" % (self.port, line, self.timeout_s),
                        NO_REPLY_HINT,
                    )
                continue
            rep = json_line(text, REPLY_PREFIX)
            if rep is None or not self.match(rep, rid):
                if self.on_line and text:
                    self.on_line(text)
                continue
            got.append(rep)
            deadline = self.clock() + self.timeout_s  # a long reply keeps coming
            if rep["r"] == "err":
                raise CommandError(line, rep)
            if rep["r"] == "ok":
                return got

    def command(self, line: str) -> dict:
        return self.request(line)[-1]

    def wait(self, seconds: float) -> None:
        """Read (and hand on) the console's lines for `seconds` of the link's clock."""
        t = self.clock()
        while self.clock() - t < seconds:
            text = self.read_line()
            if text and self.on_line:
                self.on_line(text)

    def pair(self, say=lambda _text: None) -> bool:
        """SR-15: ask the unit's wearer for control (`pair`) and wait for the answer, keeping
        the link alive meanwhile; True once the wearer pressed PLUS. `say` tells the person at
        the laptop what the wearer must do."""
        rep = self.command("pair")
        if rep.get("consent"):
            return True
        say(
            "the unit asks its wearer: press PLUS on the unit within %s s to let this laptop "
            "control it (MINUS refuses)" % rep.get("s", 15)
        )
        while True:
            self.wait(CONSENT_POLL_S)
            st = self.command("status")  # also the keep-alive the consent needs
            if st.get("consent"):
                say("the wearer allowed it")
                return True
            if not st.get("asking"):
                say("the wearer did not allow it (MINUS, or no press within the time)")
                return False

    def close(self) -> None:
        try:
            self.stream.close()
        except Exception:  # noqa: BLE001 - the port may already be gone
            pass


def open_link(dio: DeviceIO, port: str | None, **kw) -> UnitLink:
    p = pick_port(dio, port)
    return UnitLink(dio.serial(p, timeout=0.2), p, **kw)


# ---- stimctl send ------------------------------------------------------------------------------
def _fields(rep: dict) -> str:
    skip = ("r", "cmd", "id")
    return "  ".join(
        "%s=%s" % (k, v if isinstance(v, str) else json.dumps(v))
        for k, v in rep.items()
        if k not in skip
    )


def send_main(args, dio: DeviceIO, *, sleep=time.sleep) -> int:
    """`stimctl send [--port P] [--json] [--hold [S]] COMMAND [ARG ...]`."""
    from rich.console import Console

    from .logstream import format_record, parse

    con = Console(highlight=False)
    line = " ".join(args.words)

    def on_line(text: str) -> None:
        if args.hold is not None:
            rec = parse(text)
            if rec is not None:
                con.print(format_record(rec))

    try:
        link = open_link(dio, args.port, on_line=on_line)
    except DeviceError as e:
        return fail(e, 2)
    try:
        try:
            try:
                got = link.request(line)
            except CommandError as e:
                # SR-15: a start or a rise needs the wearer's consent: ask, wait, then again.
                if e.code != "consent" or not link.pair(lambda s: con.print("[stimctl] " + s)):
                    raise
                got = link.request(line)
        except NotSent as e:
            return fail(e, 1)
        except CommandError as e:
            if args.json:
                print(json.dumps(e.reply, separators=(",", ":")))
            return fail(e, 1)
        for rep in got:
            if args.json:
                print(json.dumps(rep, separators=(",", ":")))
            elif rep["r"] == "rec":
                print(json.dumps(rep.get("rec"), separators=(",", ":")))
            else:
                print(("ok %s  %s" % (rep["cmd"], _fields(rep))).rstrip())
        if args.hold is not None:
            return _hold(link, args.hold, con, sleep)
        return 0
    except DeviceError as e:
        return fail(e, 2)
    finally:
        link.close()


def _hold(link: UnitLink, seconds: float, con, sleep) -> int:
    """Keep a host-started session alive (a ping every second) for `seconds` (0: until
    Ctrl-C), showing the log, then stop it."""
    con.print(
        "[stimctl] keeping the session alive%s; Ctrl-C stops it"
        % (" for %g s" % seconds if seconds else ""),
        style="italic blue",
    )
    start = link.clock()
    try:
        while not seconds or link.clock() - start < seconds:
            link.command("ping")
            t = link.clock()
            while link.clock() - t < KEEPALIVE_EVERY_S:
                text = link.read_line()  # log lines meanwhile
                if text is None:
                    sleep(0)
                elif text and link.on_line:
                    link.on_line(text)
    except KeyboardInterrupt:
        pass
    link.command("stop")
    con.print("[stimctl] stopped", style="italic blue")
    return 0

"""The host side of the unit's command protocol on its USB serial console (docs/protocol.md).

    link = open_link(DeviceIO(), port)          # or UnitLink(any serial-like stream)
    link.command("status")                      # the final reply, a dict; CommandError if refused
    link.request("history")                     # every reply line: `rec` lines, then the `ok`

A request goes out as `@ID LINE\\n`; the firmware answers with lines starting `{"r":` that carry
the same `id`, the last one `ok` or `err`. Everything else on the console (log lines `{"t":...`,
replies to other requests) is handed to `on_line` and otherwise skipped. The stream is anything
with pyserial's write/readline/close (a real port from DeviceIO.serial, a virtual board's
pseudo-terminal, or host_tools/testing/unit_serial.py's simulated unit); if it has a `clock()`, the
reply timeout runs on that clock.

`stimctl send` (cli.py) is `send_main` below.
"""

from __future__ import annotations

import itertools
import json
import time

from .device import DeviceError, DeviceIO, fail, link_lost, pick_port
from .protocol import MAX_LINE, REPLY_PREFIX, json_line

REPLY_TIMEOUT_S = 2.0
KEEPALIVE_EVERY_S = 1.0  # well inside the firmware's 3 s keep-alive

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

    def request(self, line: str) -> list[dict]:
        """Send one command line; every reply line for it. CommandError if it was refused."""
        line = " ".join(line.split())
        rid = "%s%x" % (self._tag, next(self._ids) % 0xFF)
        if not line or len(line) + len(rid) + 2 > MAX_LINE or not line.isascii():
            raise CommandError(line, {"code": "bad_args", "msg": "not a command line"})
        self._write(("@%s %s\n" % (rid, line)).encode("ascii"))
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
            if rep is None or rep.get("id") != rid:
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
            got = link.request(line)
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

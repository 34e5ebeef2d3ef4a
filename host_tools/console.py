"""`stimctl console`: the unit's log and a command prompt on one connection.

    stimctl console [--port P] [--level L] [--event E] [--save FILE]

A serial port has one owner, so `stimctl logs` and `stimctl send` cannot run together; the
console opens the port once and does both. The log streams as `stimctl logs` shows it (the same
--level/--event filters, --save appends every record). A line typed at the prompt goes out as
`stimctl send` sends it (a host command, docs/protocol.md; the link synchronises and sets the
unit's clock first, host_tools/link.py), echoed as `> LINE`; its reply comes into the stream
where the unit sent it, `< ok CMD fields` or `< unit refused ...`, so the log events the command
caused stand between the two. A line stimctl will not send says so (`! not sent ...`), and a
command the unit does not answer within 2 s is reported (`! no reply ...`). `help` lists the
commands, `quit` (or Ctrl-D, Ctrl-C) leaves.

A session the console starts or raises is host-controlled (SR-12): the console keeps it alive
with a silent `ping` every second until it ends (a `stop`, the session's end in the log, or a
lost keep-alive), and sends `stop` when it leaves. POWER on the unit always stops it.
"""

from __future__ import annotations

import json
import queue
import sys
import threading

from .device import DeviceError, DeviceIO, fail
from .link import KEEPALIVE_EVERY_S, CommandError, NotSent, UnitLink, open_link
from .logstream import Filter, Saver, format_record, parse
from .protocol import REPLY_PREFIX, json_line

HELP = (
    "host commands (docs/protocol.md): ping, status, start [PROGRAM], intensity CH STEP, stop, "
    "settings, set KEY=VALUE..., history, time Y M D h m s; console: help, quit"
)


class Console:
    """What the console shows and sends; the caller feeds it console lines and typed lines."""

    def __init__(self, link: UnitLink, out, keep: Filter | None = None, saver=None):
        self.link = link
        self.out = out
        self.keep = keep or Filter()
        self.saver = saver
        self.pending: dict[str, tuple[str, float, bool]] = {}  # id -> (line, deadline, quiet)
        self.hold = False  # a host-controlled session runs: keep it alive
        self.last_ping = 0.0

    def say(self, text: str, style: str = "") -> None:
        self.out.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    # ---- typed lines -----------------------------------------------------------------------
    def submit(self, line: str) -> bool:
        """One typed line; False when it asks to leave."""
        line = " ".join(line.split())
        if not line:
            return True
        if line in ("quit", "exit"):
            return False
        if line == "help":
            self.say(HELP, "italic blue")
            return True
        self._send(line, quiet=False)
        return True

    def _send(self, line: str, quiet: bool) -> None:
        try:
            rid = self.link.send(line)
        except NotSent as e:
            self.say("! %s" % e, "bold red")
            return
        if not quiet:
            shown = "".join(c if " " <= c <= "~" else "\\x%02x" % ord(c) for c in line)
            self.say("> %s" % shown, "bold")
        self.pending[rid] = (line, self.link.clock() + self.link.timeout_s, quiet)

    # ---- console lines ---------------------------------------------------------------------
    def on_text(self, text: str) -> None:
        rep = json_line(text, REPLY_PREFIX)
        if rep is not None:
            for rid in list(self.pending):
                if self.link.match(rep, rid):
                    self._reply(rid, rep)
                    return
            return  # a reply to someone else's line (or a late duplicate): not ours
        rec = parse(text)
        if rec is None:
            return
        if self.saver:
            self.saver.write(rec)
        ev = rec.get("ev")
        if (ev == "session" and rec.get("state") == "end") or (
            ev == "host" and rec.get("lvl") == "warn"
        ):
            self.hold = False  # the session is over, or its keep-alive was lost
        if self.keep(rec):
            self.out.print(format_record(rec))

    def _reply(self, rid: str, rep: dict) -> None:
        line, _, quiet = self.pending[rid]
        kind = rep.get("r")
        if kind in ("ok", "err"):
            del self.pending[rid]
        else:  # a `rec` line of a longer reply: more to come
            self.pending[rid] = (line, self.link.clock() + self.link.timeout_s, quiet)
        if kind == "ok":
            cmd = rep.get("cmd")
            if cmd in ("start", "intensity"):
                self.hold = True  # the host started or raised it: keep it alive (SR-12)
            elif cmd == "stop":
                self.hold = False
        if kind == "err":
            shown = "".join(c if " " <= c <= "~" else "\\x%02x" % ord(c) for c in line)
            self.say("< %s" % CommandError(shown, rep), "bold red")
        elif kind == "rec":
            self.say("< %s" % json.dumps(rep.get("rec"), separators=(",", ":")), "green")
        elif not quiet:
            fields = "  ".join(
                "%s=%s" % (k, v if isinstance(v, str) else json.dumps(v))
                for k, v in rep.items()
                if k not in ("r", "cmd", "id", "sim_t")
            )
            self.say(("< ok %s  %s" % (rep.get("cmd"), fields)).rstrip(), "green")

    # ---- time ------------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.link.clock()
        for rid, (line, deadline, _quiet) in list(self.pending.items()):
            if now >= deadline:
                del self.pending[rid]
                self.say(
                    "! no reply to `%s` within %.0f s" % (line, self.link.timeout_s), "bold red"
                )
        if self.hold and now - self.last_ping >= KEEPALIVE_EVERY_S:
            self.last_ping = now
            self._send("ping", quiet=True)


def _stdin_lines() -> queue.Queue:
    """Typed lines from a thread (the main loop must keep reading the port); None at the end."""
    q: queue.Queue = queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            q.put(line)
        q.put(None)

    threading.Thread(target=read, daemon=True, name="console-input").start()
    return q


def run_console(args, dio: DeviceIO, lines: queue.Queue | None = None, out=None) -> int:
    """`stimctl console`. `lines`: typed lines (None ends), stdin when not given."""
    from rich.console import Console as RichConsole

    out = out or RichConsole(highlight=False)
    saver = Saver(args.save) if args.save else None
    try:
        link = open_link(dio, args.port)
    except DeviceError as e:
        return fail(e, 2)
    con = Console(link, out, Filter(args.level, args.event), saver)
    link.on_line = con.on_text  # what arrives while the link synchronises is shown too
    try:
        rep = link.sync()
        if rep.get("r") == "ok":
            clock = "its clock set to the laptop's"
        else:
            clock = "its firmware does not take the clock (%s)" % rep.get("code")
        con.say(
            "[stimctl] console on %s, %s; type a command (help, quit)" % (link.port, clock),
            "italic blue",
        )
        typed = lines if lines is not None else _stdin_lines()
        going = True
        while going:
            text = link.read_line()
            if text:
                con.on_text(text)
            while going:
                try:
                    item = typed.get_nowait()
                except queue.Empty:
                    break
                going = item is not None and con.submit(item)
            con.tick()
        while con.pending:  # leaving: the replies still due first (each at most 2 s away)
            text = link.read_line()
            if text:
                con.on_text(text)
            con.tick()
    except KeyboardInterrupt:
        pass
    except DeviceError as e:
        return fail(e, 2)
    finally:
        try:
            if con.hold:
                link.request("stop")  # the console's session ends with it (SR-12)
                con.say("[stimctl] stopped the session this console kept alive", "italic blue")
        except (DeviceError, CommandError):
            pass
        link.close()
        if saver:
            saver.close()
    return 0

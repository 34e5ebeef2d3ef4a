"""The host link on the USB serial console (SR-12): reads command lines, applies the ones
stim.hostcmd accepts to the unit (stim.unit), prints one reply line for each (docs/protocol.md).

- The console is read through asyncio (a StreamReader on `sys.stdin.buffer`): while no byte
  arrives the task waits in the scheduler's poll and costs nothing. Ctrl-C is still taken by
  the USB driver before it reaches the stream, so the host can always interrupt the firmware.
- Bytes go into stim.hostcmd.LineReader's fixed buffer: a flood of bytes costs no heap until a
  line ends, and at most MAX_LINE bytes are taken per scheduler round so the buttons (SR-7) and
  the control loop keep their rhythm.
- SR-15: a host starts or raises output only with the wearer's consent: it sends `pair`, the
  unit asks with a pattern and the wearer presses PLUS (stim.unit). Lowering, `stop` and the
  commands that only read or configure never need it.
- A session the host started, or whose intensity the host raised, is host-controlled: unless a
  valid command arrives every KEEPALIVE_MS, the unit ramps the output to zero and ends it.
- Anything refused is answered with an error and changes nothing: not the output, not the
  settings file, not the keep-alive.
"""

import asyncio
import sys
import time

from micropython import const

from stim import hostcmd, log, session, settings

# What a host asks the wearer for: stim.unit's `asking`, same numbers (test_consent.py).
_ASK_CONTROL = const(1)
_ASK_MAINTENANCE = const(2)

_NO_CONSENT = "the wearer has not allowed host control: send pair, then the wearer presses PLUS"


def console_stream():
    """The USB serial console's byte stream, or None where the port has none."""
    try:
        return sys.stdin.buffer
    except AttributeError:
        return None


class HostLink:
    """Command lines from the host, applied to the unit (stim.unit) through its public calls."""

    def __init__(self, unit, board, stream=None, clock=None):
        self.unit = unit
        self.board = board
        self.stream = stream
        self.clock = clock  # stim.hw.set_clock: sets the unit's clock (machine.RTC)
        self.reader = hostcmd.LineReader()
        self.pending = None  # a custom program being sent (`program set`), or None
        now = time.ticks_ms()
        # When the host last raised each channel: at most one step per RISE_MS (SR-2).
        self.t_rise = [time.ticks_add(now, -hostcmd.RISE_MS)] * len(unit.stim.channels)

    # -- lines --------------------------------------------------------------------------
    def feed(self, c):
        """One console byte; the reply lines when it ends a line, else None."""
        got = self.reader.feed(c)
        if got is None:
            return None
        if got != hostcmd.LINE:
            return [hostcmd.line_error(got, self.reader)]
        return self.handle(self.reader.text())

    def handle(self, line):
        """The reply lines to one command line."""
        now = time.ticks_ms()
        rid = None
        try:
            rid, cmd, args = hostcmd.parse(line, self.board)
            out = getattr(self, "_" + cmd)(rid, args, now)
        except hostcmd.HostError as e:
            return [hostcmd.error_reply(e)]
        except Exception as e:  # noqa: BLE001 - a fault in one command must not end the link
            log.error("host", msg="command failed: %r" % e)
            return [hostcmd.error_reply(hostcmd.HostError(hostcmd.E_IO, "failed", None, rid))]
        self.unit.host_seen(now)  # only a valid command keeps a host session alive
        return out

    # -- commands -----------------------------------------------------------------------
    def _ping(self, rid, args, now):
        return [hostcmd.reply("ok", "ping", rid)]

    def _status(self, rid, args, now):
        return [hostcmd.reply("ok", "status", rid, self.unit.status(now))]

    def _stop(self, rid, args, now):
        # Output to zero at once, whatever the state, and the session (if any) ends.
        self.unit.stop(now, "host")
        log.info("host", cmd="stop")
        return [hostcmd.reply("ok", "stop", rid)]

    def _start(self, rid, pid, now):
        unit = self.unit
        why = unit.start_refusal()
        if why is not None:
            raise hostcmd.HostError(why[0], why[1], "start", rid)
        if not unit.consent:
            raise hostcmd.HostError(hostcmd.E_CONSENT, _NO_CONSENT, "start", rid)
        if pid is not None and pid != unit.stim.program["id"]:
            unit.select_program(pid, now)
        unit.host_takes_control()
        for i in range(len(self.t_rise)):
            self.t_rise[i] = now
        log.info("host", cmd="start", program=unit.stim.program["id"])
        unit.start(now)  # step 1 on the selected channels: check, then soft start
        fields = {"program": unit.stim.program["id"], "length_s": unit.session.length_s}
        return [hostcmd.reply("ok", "start", rid, fields)]

    def _intensity(self, rid, args, now):
        unit = self.unit
        ch, step = args
        old = unit.stim.ch[ch].step
        hostcmd.check_intensity(
            self.board,
            unit.stim.program,
            unit.state() == session.RUNNING,
            unit.locked,
            old,
            step,
            time.ticks_diff(now, self.t_rise[ch]),
            rid=rid,
        )
        if step > old:
            if not unit.consent:
                raise hostcmd.HostError(hostcmd.E_CONSENT, _NO_CONSENT, "intensity", rid)
            unit.host_takes_control()  # the host raised it: it must keep the link alive
            self.t_rise[ch] = now
        unit.set_step(ch, step, now)
        return [
            hostcmd.reply("ok", "intensity", rid, {"ch": ch + 1, "step": unit.stim.ch[ch].step})
        ]

    def _settings(self, rid, args, now):
        return [hostcmd.reply("ok", "settings", rid, self.unit.cfg)]

    def _set(self, rid, raw, now):
        unit = self.unit
        self._no_session("set", rid)
        new = hostcmd.check_settings(self.board, unit.cfg, raw, rid=rid)
        try:
            unit.replace_settings(new, now)  # atomic: the old file or the new one (SR-13)
        except OSError as e:
            raise hostcmd.HostError(hostcmd.E_IO, "could not save: %s" % e, "set", rid) from None
        log.info("settings", msg="set by host", keys=list(raw))
        return [hostcmd.reply("ok", "set", rid, unit.cfg)]

    def _time(self, rid, args, now):
        # The clock the history dates its records by; no flash write, so also during a session.
        if self.clock is None:
            raise hostcmd.HostError(hostcmd.E_STATE, "no clock on this unit", "time", rid)
        self.clock(args)
        return [hostcmd.reply("ok", "time", rid)]

    def _no_session(self, cmd, rid):
        """Refuse `cmd` while a session is on (running, paused or fading out)."""
        st = self.unit.state()
        if st in (session.RUNNING, session.PAUSED, session.ENDING):
            msg = "a session is on (%s): stop first" % session.NAMES[st]
            raise hostcmd.HostError(hostcmd.E_STATE, msg, cmd, rid)

    def _pair(self, rid, args, now):
        return self._ask(_ASK_CONTROL, "pair", rid, now)

    def _maintenance(self, rid, args, now):
        # SR-16: the firmware stops and the REPL opens only when the wearer accepts, and never
        # with a session on: maintenance never starts or keeps output.
        self._no_session("maintenance", rid)
        return self._ask(_ASK_MAINTENANCE, "maintenance", rid, now)

    def _ask(self, what, cmd, rid, now):
        """SR-15: a host asks the wearer; the reply says so, the answer comes as a `consent`
        log line (and in `status`)."""
        unit = self.unit
        st = unit.state()
        if st == session.OFF or st == session.FAULT:
            # The wearer answers with PLUS, which does nothing while off or in a fatal fault.
            msg = "the unit is %s: the wearer must hold POWER to switch it on" % session.NAMES[st]
            raise hostcmd.HostError(hostcmd.E_STATE, msg, cmd, rid)
        if unit.locked:
            raise hostcmd.HostError(hostcmd.E_LOCKED, "the unit is locked", cmd, rid)
        if what == _ASK_CONTROL and unit.consent:
            return [hostcmd.reply("ok", cmd, rid, {"consent": True})]
        unit.ask(what, now)
        return [hostcmd.reply("ok", cmd, rid, {"asking": "press PLUS on the unit", "s": 15})]

    def _program(self, rid, args, now):
        """Custom programs (stim.custom): `program set k=v ...`, `program add`, `program list`,
        `program remove ID`, `program clear` (drops a program half sent)."""
        import stim
        from stim import custom

        try:
            return [hostcmd.reply("ok", "program", rid, self._custom(custom, args, now))]
        except hostcmd.HostError as e:
            e.cmd, e.rid = "program", rid
            raise
        except custom.programs.ProgramError as e:
            raise hostcmd.HostError(hostcmd.E_RANGE, str(e), "program", rid) from None
        except OSError as e:
            raise hostcmd.HostError(
                hostcmd.E_IO, "could not save: %s" % e, "program", rid
            ) from None
        finally:
            stim.forget("custom")

    def _custom(self, custom, args, now):
        op = args[0]
        ps = custom.programs.installed()
        if op == "list":
            return {"custom": [p["id"] for p in ps], "max": custom.MAX}
        if op == "clear":
            self.pending = None
            return {}
        unit = self.unit
        st = unit.state()
        if st != session.IDLE and st != session.OFF:
            raise hostcmd.HostError(hostcmd.E_STATE, "a session is on: stop first", "program")
        if not unit.consent:  # SR-15: what the wearer can be given needs the wearer's yes
            raise hostcmd.HostError(hostcmd.E_CONSENT, _NO_CONSENT, "program")
        if op == "set":
            if self.pending is None:
                self.pending = {}
            custom.put(self.pending, args[1:])
            return {"keys": len(self.pending)}
        if op == "add" and len(args) == 1:
            p, self.pending = self.pending, None
            if p is None:
                raise hostcmd.HostError(hostcmd.E_ARGS, "nothing to add: program set first")
            custom.check(self.board, p, [q["id"] for q in ps])
            if len(ps) >= custom.MAX:
                raise hostcmd.HostError(hostcmd.E_RANGE, "%d installed already" % custom.MAX)
            custom.save_all(ps + [p])
            log.info("program_added", id=p["id"])
            return {"program": p["id"], "n": len(ps) + 1}
        if op == "remove" and len(args) == 2:
            left = [q for q in ps if q["id"] != args[1]]
            if len(left) == len(ps):
                raise hostcmd.HostError(hostcmd.E_RANGE, "no installed program %s" % args[1][:24])
            if unit.stim.program["id"] == args[1]:
                unit.select_program(custom.programs.PROGRAMS[0]["id"], now)
            custom.save_all(left)
            log.info("program_removed", id=args[1])
            return {"n": len(left)}
        raise hostcmd.HostError(hostcmd.E_ARGS, "program set|add|list|remove ID|clear")

    def _history(self, rid, args, now):
        try:
            lines = settings.read_history_lines()
        except OSError as e:
            msg = "could not read: %s" % e
            raise hostcmd.HostError(hostcmd.E_IO, msg, "history", rid) from None
        return _history_replies(rid, lines)

    # -- the task -----------------------------------------------------------------------
    async def run(self):
        import select

        s = self.stream
        try:
            reader = asyncio.StreamReader(s)
        except (AttributeError, ImportError):  # a port whose asyncio has no streams
            log.warn("host", msg="no console stream: host commands are off")
            return
        more = select.poll()  # what is already there is taken without a scheduler round
        more.register(s, select.POLLIN)
        b = bytearray(1)
        while True:
            await reader.readinto(b)  # parks in the scheduler's poll until a byte is there
            n = 0
            while True:
                out = self.feed(b[0])
                if out:
                    for line in out:
                        print(line)
                        await asyncio.sleep_ms(0)  # a long history never holds up the buttons
                n += 1
                if n >= hostcmd.MAX_LINE:
                    break  # a flood: let the other tasks run first
                ready = False
                for _ in more.ipoll(0):
                    ready = True
                if not ready:
                    break
                s.readinto(b)


def _history_replies(rid, lines):
    # One reply line at a time as the console task sends them: the records are not held in
    # memory a second time as replies (up to 100 of them).
    for i in range(len(lines)):
        yield hostcmd.reply("rec", "history", rid, None, ',"i":%d,"rec":%s' % (i, lines[i]))
    yield hostcmd.reply("ok", "history", rid, {"n": len(lines), "now": time.time()})

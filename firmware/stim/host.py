"""The host link on the USB serial console (SR-12): reads command lines, applies the ones
stim.hostcmd accepts to the app, prints one reply line for each (docs/protocol.md).

- The console is read through asyncio (a StreamReader on `sys.stdin.buffer`): while no byte
  arrives the task waits in the scheduler's poll and costs nothing. Ctrl-C is still taken by
  the USB driver before it reaches the stream, so the host can always interrupt the firmware.
- Bytes go into stim.hostcmd.LineReader's fixed buffer: a flood of bytes costs no heap until a
  line ends, and at most MAX_LINE bytes are taken per scheduler round so the buttons (SR-7) and
  the control loop keep their rhythm.
- A session the host started, or whose intensity the host raised, is host-controlled: unless a
  valid command arrives every KEEPALIVE_MS, the app ramps the output to zero and ends it.
- Anything refused is answered with an error and changes nothing: not the output, not the
  settings file, not the keep-alive.
"""

import asyncio
import sys
import time

from stim import battery, hostcmd, log, session, settings
from stim.stimulator import FAULT_NAMES


def console_stream():
    """The USB serial console's byte stream, or None where the port has none."""
    try:
        return sys.stdin.buffer
    except AttributeError:
        return None


class HostLink:
    def __init__(self, app, stream=None):
        self.app = app
        self.stream = stream
        self.reader = hostcmd.LineReader()
        self.active = False  # the session is host-controlled: the keep-alive is watched
        now = time.ticks_ms()
        self.seen_ms = now  # ticks_ms of the last valid command
        n = len(app.stim.channels)
        self.rise_ms = [time.ticks_add(now, -hostcmd.RISE_MS)] * n

    # -- keep-alive (called by the control loop: integers only, no heap) --------------------
    def lost(self, now):
        return self.active and time.ticks_diff(now, self.seen_ms) > hostcmd.KEEPALIVE_MS

    # -- lines --------------------------------------------------------------------------
    def feed(self, c):
        """One console byte; the reply lines when it ends a line, else None."""
        got = self.reader.feed(c)
        if got is None:
            return None
        if got != hostcmd.LINE:
            return [hostcmd.line_error(got)]
        return self.handle(self.reader.text())

    def handle(self, line):
        """The reply lines to one command line."""
        app = self.app
        now = time.ticks_ms()
        try:
            rid, cmd, args = hostcmd.parse(line, app.board)
            out = getattr(self, "_" + cmd)(rid, args, now)
        except hostcmd.HostError as e:
            return [hostcmd.error_reply(e)]
        self.seen_ms = now  # only a valid command keeps a host session alive
        return out

    # -- commands -----------------------------------------------------------------------
    def _ping(self, rid, args, now):
        return [hostcmd.reply("ok", "ping", rid)]

    def _status(self, rid, args, now):
        app = self.app
        stim = app.stim
        s = app.session
        fields = {
            "state": session.NAMES[s.state],
            "program": stim.program["id"],
            "steps": list(stim.steps),
            "max_step": stim.max_step,
            "faults": [FAULT_NAMES[f] for f in stim.fault],
            "channels": app.cfg["channels"],
            "locked": app.locked,
            "host": self.active,
            "remaining_s": s.remaining_s(now) if s.state != session.OFF else 0,
            "battery": battery.NAMES[app.battery.state],
            "keepalive_ms": hostcmd.KEEPALIVE_MS,
        }
        return [hostcmd.reply("ok", "status", rid, fields)]

    def _stop(self, rid, args, now):
        # Output to zero at once, whatever the state, and the session (if any) ends.
        app = self.app
        app.stim.pause()
        app.stim.forget_pause()
        if app.session.stopped(now, "host"):
            app._finish_session(now, "host")
        self.active = False
        log.info("host", cmd="stop")
        return [hostcmd.reply("ok", "stop", rid)]

    def _start(self, rid, pid, now):
        app = self.app
        st = app.session.state
        if st != session.IDLE:
            if st == session.OFF:
                msg = "the unit is off (hold POWER to switch it on)"
            else:
                msg = "not idle (%s): stop first" % session.NAMES[st]
            raise hostcmd.HostError(hostcmd.E_STATE, msg, "start", rid)
        if app.locked:
            raise hostcmd.HostError(hostcmd.E_LOCKED, "the unit is locked", "start", rid)
        if app.battery.state == battery.CUTOFF:
            raise hostcmd.HostError(hostcmd.E_BATTERY, "battery empty: charge it", "start", rid)
        if pid is not None and pid != app.stim.program["id"]:
            app._select_program(pid)
        self.active = True
        for i in range(len(self.rise_ms)):
            self.rise_ms[i] = now
        log.info("host", cmd="start", program=app.stim.program["id"])
        app._start_session(now)  # step 1 on the selected channels: check, then soft start
        return [
            hostcmd.reply(
                "ok",
                "start",
                rid,
                {"program": app.stim.program["id"], "length_s": app.session.length_s},
            )
        ]

    def _intensity(self, rid, args, now):
        app = self.app
        ch, step = args
        old = app.stim.steps[ch]
        hostcmd.check_intensity(
            app.board,
            app.stim.program,
            app.session.state == session.RUNNING,
            app.locked,
            old,
            step,
            time.ticks_diff(now, self.rise_ms[ch]),
            rid=rid,
        )
        if step > old:
            self.active = True  # the host raised it: from now on it must keep the link alive
            self.rise_ms[ch] = now
        app._set_step(ch, step)
        return [hostcmd.reply("ok", "intensity", rid, {"ch": ch + 1, "step": app.stim.steps[ch]})]

    def _settings(self, rid, args, now):
        return [hostcmd.reply("ok", "settings", rid, self.app.cfg)]

    def _set(self, rid, raw, now):
        app = self.app
        st = app.session.state
        if st in (session.RUNNING, session.PAUSED, session.ENDING):
            raise hostcmd.HostError(
                hostcmd.E_STATE, "a session is on (%s): stop first" % session.NAMES[st], "set", rid
            )
        new = hostcmd.check_settings(app.board, app.cfg, raw, rid=rid)
        try:
            settings.save(new)  # atomic: the old file or the new one, never half (SR-13)
        except OSError as e:
            raise hostcmd.HostError(hostcmd.E_IO, "could not save: %s" % e, "set", rid) from None
        if new["program"] != app.stim.program["id"]:
            app._select_program(new["program"], save=False)
        for k in new:
            app.cfg[k] = new[k]
        log.info("settings", msg="set by host", keys=list(raw))
        return [hostcmd.reply("ok", "set", rid, app.cfg)]

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

"""The unit: what the wearer's buttons (stim.wearer) and the host's commands (stim.host) both
do to it, and the coordination between the session, the stimulator, the battery and the flash.

Every call takes `now` (time.ticks_ms()). The unit owns:
- the session (stim.session) and its history record, ended one way whatever ends it;
- the settings in force (program, channel selection, session length) and when they are written:
  only while every output is off (SR-14);
- the lock, and whether a host controls the running session (its keep-alive, SR-12);
- the control cycle (tick): the stimulator's tick, the session timer (SR-9), a session every
  channel has left, the host's keep-alive, a boost that failed.

Refusals come back as a short reason (or are logged), never as a half-done change.
"""

import time

from micropython import const

from stim import battery, electrode, hostcmd, limits, log, programs, session, settings

KEEPALIVE_MS = hostcmd.KEEPALIVE_MS
_ENDED_SHOW_MS = const(30_000)  # the "session finished" pattern, until a press or this long
# The rp2 port starts its clock at 2021-01-01 00:00 at every power-up and hard reset
# (ports/rp2/main.c, before its soft-reset loop: a soft reset keeps it), and the host's `time`
# command accepts 2025-2099 only (stim.hostcmd), so a clock in 2025 or later was set by a host.
_CLOCK_YEAR_MIN = const(2025)
_SELECT = {"both": (0, 1, 2, 3), "1": (0,), "2": (1,)}


class Unit:
    def __init__(self, board, stim, cfg, now):
        self.stim = stim
        self.cfg = cfg
        self.battery = battery.BatteryMonitor(board["battery"])
        log.info("channels", selected=cfg["channels"])
        self.session = session.Session(cfg["session_min"] * 60)
        self.locked = False
        self.host_controlled = False  # the session's keep-alive is watched (SR-12)
        self._t_host = now  # the host's last valid command
        self.ended_until = 0  # ticks_ms until which the "session finished" pattern shows
        self._rec = None  # the running session's history record
        self._noted = bytearray(len(stim.channels))  # last fault code noted per channel
        self._unsaved = False  # settings changed, not yet on flash (SR-14)
        self._unwritten = None  # a finished session's record, not yet on flash
        settings.guard(stim.output_possible)

    # -- what it is doing ---------------------------------------------------------------
    def state(self):
        return self.session.state

    def program_id(self):
        return self.stim.program["id"]

    def step(self, ch):
        return self.stim.ch[ch].step

    def selected(self):
        """The channels (0-based) the wearer's PLUS and MINUS act on."""
        n = len(self.stim.channels)
        return [c for c in _SELECT[self.cfg["channels"]] if c < n]

    def status(self, now):
        """The unit's state as the host's `status` reply gives it (docs/protocol.md)."""
        s = self.session
        return {
            "state": session.NAMES[s.state],
            "program": self.stim.program["id"],
            "steps": [c.step for c in self.stim.ch],
            "max_step": self.stim.max_step(),
            "faults": [electrode.NAMES[c.fault] for c in self.stim.ch],
            "channels": self.cfg["channels"],
            "locked": self.locked,
            "host": self.host_controlled,
            "remaining_s": s.remaining_s(now) if s.state != session.OFF else 0,
            "battery": battery.NAMES[self.battery.state],
            "keepalive_ms": KEEPALIVE_MS,
        }

    def start_refusal(self):
        """Why a session cannot start now (a stim.hostcmd error code and a message), or None."""
        st = self.session.state
        if st == session.OFF:
            return hostcmd.E_STATE, "the unit is off (hold POWER to switch it on)"
        if st != session.IDLE:
            return hostcmd.E_STATE, "not idle (%s): stop first" % session.NAMES[st]
        if self.locked:
            return hostcmd.E_LOCKED, "the unit is locked"
        if self.battery.state == battery.CUTOFF:
            return hostcmd.E_BATTERY, "battery empty: charge it"
        return None

    # -- switching and sessions ---------------------------------------------------------
    def switch(self, now):
        """POWER held: off from any state (output stopped, session ended), on from off."""
        if self.session.state != session.OFF:
            self.stim.stop_all()
            self._finish(now, "power_off")
            self.session.power(now)
            self.locked = False
            self.stim.clear_faults()
            log.info("power", on=False)
        else:
            self.session.power(now)
            self.ended_until = 0
            log.info("power", on=True)

    def start(self, now):
        """A session on the selected channels: step 1 on each, checked, then a soft start."""
        if self.battery.state == battery.CUTOFF:
            log.warn("refused", msg="battery empty", limit="battery")
            return
        p = self.stim.program
        self.session.set_length(min(self.cfg["session_min"], p["session_min"]) * 60)
        self.session.start(now)
        self.stim.clear_faults()
        t = time.time()
        self._rec = {
            "start": t,
            # Set by a host since the last power-up: only such a record can be dated
            # (stimctl history).
            "clock": time.gmtime(t)[0] >= _CLOCK_YEAR_MIN,
            "program": p["id"],
            "max_step": [0] * len(self.stim.channels),
            "faults": [],
        }
        for i in range(len(self._noted)):
            self._noted[i] = 0
        log.info("session", state="start", program=p["id"], length_s=self.session.length_s)
        for ch in self.selected():
            self.set_step(ch, 1, now)

    def stop(self, now, reason):
        """Output to zero at once, whatever the state; the session (if any) ends."""
        self.stim.pause()
        self.stim.forget_pause()
        if self.session.stopped(now, reason):
            self._finish(now, reason)
        self.host_controlled = False

    def pause(self, now):
        """Output to zero at once (SR-7); the session pauses, or ends if it was fading out.
        False if nothing was running."""
        stim = self.stim
        if not (stim.running() or stim.fading()):
            return False
        stim.pause()
        if self.session.pause(now):
            log.info("session", state="paused")
        elif self.session.stopped(now, "stopped"):  # stopped while fading out
            self._finish(now, "stopped")
        return True

    def resume(self, now):
        if self.session.resume(now):
            self.stim.resume(now)
            log.info("session", state="resumed")

    def halt(self):
        """From the POWER button's hard interrupt: every output stops now (SR-7)."""
        self.stim.halt()

    def hold_all(self):
        """Ctrl-C: every channel held at a pulse boundary, nothing else (SR-4, SR-8)."""
        self.stim.hold_all()

    def _finish(self, now, reason):
        rec = self._rec
        self._rec = None
        self.host_controlled = False  # the keep-alive belongs to the session
        # A finished session has nothing to resume: steps a pause saved (a POWER press that
        # stopped the end-of-session fade) must not restart channels in the next one (SR-1).
        self.stim.forget_pause()
        if rec is None:
            return
        minutes = self.session.elapsed_ms(now) / 60000
        rec["min"] = round(minutes, 2)
        rec["end"] = reason
        log.info("session", state="end", reason=reason, min=rec["min"])
        if minutes > 0:
            self._unwritten = rec  # written once the output is off (SR-14)
            self._write_flash()

    def _fade_out(self, now):
        self.stim.fade_out(session.RAMP_DOWN_MS, now)
        self.stim.forget_pause()

    # -- intensity, program, channels ---------------------------------------------------
    def set_step(self, ch, step, now):
        """Channel ch (0-based) to a step; a step over a cap is refused and logged (SR-3)."""
        try:
            self.stim.set_step(ch, step, now)
        except limits.LimitError as e:
            log.warn("refused", ch=ch + 1, step=step, limit=e.key, msg=str(e))
            return
        rec = self._rec
        if rec is not None and step > rec["max_step"][ch]:
            rec["max_step"][ch] = step

    def step_selected(self, delta, now):
        """PLUS (+1) or MINUS (-1) on every selected channel of a running session."""
        if self.session.state != session.RUNNING:
            return
        for ch in self.selected():
            step = self.stim.ch[ch].step
            if delta > 0 or step > 0:
                self.set_step(ch, step + delta, now)

    def select_program(self, pid, now, save=True):
        self.stim.forget_pause()  # a new program starts from nothing (SR-1)
        self.stim.select_program(pid, now)
        self.cfg["program"] = pid
        if save:
            self._save()

    def next_program(self, now):
        """MODE: the session (if any) ends and the next program is chosen."""
        i = programs.index_of(self.stim.program["id"])
        if self.session.stopped(now, "program"):
            self._finish(now, "program")
        self.select_program(programs.PROGRAMS[(i + 1) % len(programs.PROGRAMS)]["id"], now)

    def next_channels(self):
        """MODE held: the next channel selection (both, 1, 2)."""
        sel = settings.SELECTIONS
        self.cfg["channels"] = sel[(sel.index(self.cfg["channels"]) + 1) % len(sel)]
        log.info("channels", selected=self.cfg["channels"])
        self._save()

    def toggle_lock(self):
        self.locked = not self.locked
        log.info("lock", locked=self.locked)

    def replace_settings(self, new, now):
        """The host's `set`: the new settings saved (atomic, SR-13; raises OSError) and in
        force. The caller has checked them and that no session is on."""
        settings.save(new)
        if new["program"] != self.stim.program["id"]:
            self.select_program(new["program"], now, save=False)
        for k in new:
            self.cfg[k] = new[k]

    # -- the host's keep-alive (SR-12) --------------------------------------------------
    def host_seen(self, now):
        """A valid host command arrived."""
        self._t_host = now

    def host_takes_control(self):
        """The host started the session or raised an intensity: it must keep the link alive."""
        self.host_controlled = True

    def _host_lost(self, now):
        return self.host_controlled and time.ticks_diff(now, self._t_host) > KEEPALIVE_MS

    # -- flash (SR-14) ------------------------------------------------------------------
    def _save(self):
        """Save the settings now, or once the output has stopped (SR-14): a change made
        during a session takes effect at once; a power cut before the save loses only it."""
        self._unsaved = True
        self._write_flash()

    def _write_flash(self):
        """Write what waits for the flash (settings, a session's record), only while every
        output is off (SR-14)."""
        if self.stim.output_possible():
            return
        if self._unsaved:
            self._unsaved = False
            try:
                settings.save(self.cfg)
            except OSError as e:
                log.warn("settings", msg="could not save: %s" % e)
        rec = self._unwritten
        if rec is not None:
            self._unwritten = None
            try:
                settings.append_history(rec)
            except OSError as e:
                log.warn("history", msg="could not save: %s" % e)

    # -- the control cycle --------------------------------------------------------------
    def tick(self, now, dt_ms):
        """One control cycle; also the unit of work the allocation benchmark measures."""
        stim = self.stim
        stim.tick(now, dt_ms)
        self._note_faults()  # before the session can end on them: the record names them all
        s = self.session
        ev = s.tick(now)
        if ev == "end":
            log.info("session", state="ending", reason="timer")
            stim.fade_out(session.RAMP_DOWN_MS, now)
        elif ev == "ended":
            stim.stop_all()
            self._finish(now, s.end_reason or "timer")
            self.ended_until = time.ticks_add(now, _ENDED_SHOW_MS)
        elif s.state == session.RUNNING and not stim.running() and not stim.any_step():
            # Every channel stopped by itself (electrode faults, MINUS down to 0).
            reason = "fault" if stim.any_fault() else "intensity"
            s.stopped(now, reason)
            self._finish(now, reason)
        elif self._host_lost(now):
            # SR-12: the host that controls this session went quiet: ramp the output to zero
            # and end the session, as at the end of its time.
            self.host_controlled = False
            log.warn("host", msg="keep-alive lost: output ramps to zero", timeout_ms=KEEPALIVE_MS)
            if s.end(now, "keepalive"):
                log.info("session", state="ending", reason="keepalive")
                self._fade_out(now)
        if s.state != session.OFF and s.state != session.FAULT and stim.any_fault(electrode.BOOST):
            # The high-voltage supply did not come up: a hardware fault no press can fix.
            # Output is already off; only switching off leaves this state.
            if s.state in (session.RUNNING, session.PAUSED, session.ENDING):
                self._finish(now, "fault")
            s.fatal(now)
            stim.pause()
            stim.forget_pause()
            log.error("fatal", reason="boost", msg="high-voltage supply failed: switch off")
        if self._unsaved or self._unwritten is not None:
            self._write_flash()  # SR-14: once every output is off

    def battery_reading(self, volts, dt_s, now):
        """A battery reading; at cut-off the output ramps down and the session ends (SR-10).
        The new battery state if it changed, else None."""
        new = self.battery.update(volts, dt_s)
        if new == battery.CUTOFF and self.session.end(now, "battery"):
            self._fade_out(now)
        return new

    def _note_faults(self):
        rec = self._rec
        if rec is None:
            return
        noted = self._noted
        chs = self.stim.ch
        for i in range(len(chs)):
            # Indexes, not enumerate() (a new object per call), and the name built only when a
            # channel's fault changes: a session's control loop must not allocate.
            f = chs[i].fault
            if f and f != noted[i]:
                noted[i] = f
                name = "%d:%s" % (i + 1, electrode.NAMES[f])
                if name not in rec["faults"]:
                    rec["faults"].append(name)

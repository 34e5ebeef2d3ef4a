"""The unit: what the wearer's buttons (stim.wearer) and the host's commands (stim.host) both
do to it, and the coordination between the session, the stimulator, the battery and the flash.

Every call takes `now` (time.ticks_ms()). The unit owns:
- the session (stim.session) and its history record, ended one way whatever ends it;
- the settings in force (program, channel selection, session length) and when they are written:
  only while every output is off (SR-14);
- the lock, and whether a host controls the running session (its keep-alive, SR-12);
- the wearer's consent to host control and to maintenance (SR-15): asked by the host, answered
  by a press, never stored;
- the control cycle (tick): the stimulator's tick, the session timer (SR-9), a session every
  channel has left, the host's keep-alive, a boost that failed.

Refusals come back as a short reason (or are logged), never as a half-done change.
"""

import time

from micropython import const

from stim import battery, electrode, hostcmd, limits, log, programs, session, settings

# Feedback patterns played here (stim.feedback's events, same numbers: test_feedback.py).
_FB_STEP_UP = const(0)
_FB_STEP_DOWN = const(1)
_FB_TOP = const(2)
_FB_BOTTOM = const(3)
_FB_COUNT = const(4)
_FB_BOTH = const(5)
_FB_LOCKED = const(6)
_FB_UNLOCKED = const(7)
_FB_START = const(8)
_FB_END = const(9)
_FB_OPEN = const(10)
_FB_SHORT = const(11)
_FB_LIMIT = const(12)
_FB_FAULT = const(13)
_FB_LOW_BATTERY = const(14)
_FB_CUTOFF = const(15)
_FB_CHARGING = const(16)
_FB_POWER_ON = const(17)
_FB_POWER_OFF = const(18)
_FB_REFUSED = const(19)
_FB_TENS = const(20)
_FB_UNITS = const(21)
_FB_HOST_ASKS = const(22)

# What a host asks the wearer for (SR-15, `asking`): control of the output, or maintenance
# (the firmware stops and the USB console opens, SR-16). stim.host uses the same numbers.
_ASK_CONTROL = const(1)
_ASK_MAINTENANCE = const(2)
_ASK_MS = const(15_000)  # the wearer's time to answer; no answer is a refusal

_ENDED_SHOW_MS = const(30_000)  # the "session finished" pattern, until a press or this long
# The rp2 port starts its clock at 2021-01-01 00:00 at every power-up and hard reset
# (ports/rp2/main.c, before its soft-reset loop: a soft reset keeps it), and the host's `time`
# command accepts 2025-2099 only (stim.hostcmd), so a clock in 2025 or later was set by a host.
_CLOCK_YEAR_MIN = const(2025)
# The pattern of each electrode fault code (stim.electrode: ok, open, short, sense, boost, lift).
# The pattern of each electrode fault code (ok, open, short, sense, boost, lift, limit): _FB_OPEN,
# _FB_SHORT, _FB_FAULT three times, _FB_LIMIT (a literal: no object built at import).
_FAULT_PATTERN = b"\x00\x0a\x0b\x0d\x0d\x0d\x0c"


def _what(ask):
    return "maintenance" if ask == _ASK_MAINTENANCE else "control"


class Unit:
    def __init__(self, board, stim, cfg, now, player, version=("unknown", "")):
        self.stim = stim
        self.version = version  # (git describe, commit) of this firmware
        self.player = player  # stim.feedback.Player: what the wearer feels or hears
        self.cfg = cfg
        self.battery = battery.BatteryMonitor(board["battery"])
        log.info("channels", selected=cfg["channels"])
        self.session = session.Session(cfg["session_min"] * 60)
        self.locked = False
        self.host_controlled = False  # the session's keep-alive is watched (SR-12)
        self.consent = False  # SR-15: the wearer let a host start and raise output
        self.asking = 0  # what a host asks the wearer for (1 control, 2 maintenance), 0: nothing
        self._ask_until = 0
        self.maintenance = False  # the wearer accepted maintenance: the app stops (stim.app)
        self.charging = False  # SR-17: the charger is connected: no output
        self._t_host = now  # the host's last valid command
        self._t_active = now  # the last press, host command or session end (auto-off)
        self.ended_until = 0  # ticks_ms until which the "session finished" pattern shows
        self._rec = None  # the running session's history record
        self._noted = bytearray(len(stim.channels))  # last fault code noted per channel
        self._unsaved = False  # settings changed, not yet on flash (SR-14)
        self._unwritten = None  # a finished session's record, not yet on flash
        settings.guard(stim.output_possible)

    # -- what it is doing ---------------------------------------------------------------
    def state(self):
        return self.session.state

    def may_sleep(self):
        """Switched off with nothing left to do until a press or a host: nothing asked, no
        pattern playing, nothing waiting for the flash (SR-14), no output possible (SR-8)."""
        return (
            self.session.state == session.OFF
            and not self.asking
            and not self.player.playing()
            and not self._unsaved
            and self._unwritten is None
            and not self.stim.output_possible()
        )

    def selected(self):
        """The channels (0-based) the wearer's PLUS and MINUS act on."""
        n = len(self.stim.channels)
        c = self.cfg["channels"]
        if c == "both":
            return list(range(n))
        return [int(c) - 1] if int(c) <= n else []

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
            "consent": self.consent,
            "asking": self.asking,
            "version": self.version[0],
            "commit": self.version[1],
            "remaining_s": s.remaining_s(now) if s.state != session.OFF else 0,
            "battery": battery.NAMES[self.battery.state],
            "keepalive_ms": hostcmd.KEEPALIVE_MS,
        }

    def touch(self, now):
        """A press or a host command: the unit is in use (auto-off counts from here)."""
        self._t_active = now

    def play_status(self, now):
        """The status gesture: program number, channel selection, the first selected channel's
        step (tens as long pulses, then units as short ones) and the minutes left in
        five-minute units, each as counted pulses (README, "Wearer's guide")."""
        p = self.player
        p.play(_FB_COUNT, programs.index_of(self.stim.program["id"]) + 1)
        self._signal_channels()
        step = self.stim.ch[self.selected()[0]].step
        if step >= 10:
            p.play(_FB_TENS, step // 10)
        if step % 10:
            p.play(_FB_UNITS, step % 10)
        elif step < 10:
            p.play(_FB_BOTTOM)  # step 0
        s = self.session
        if s.state != session.IDLE:
            p.play(_FB_COUNT, (s.remaining_s(now) + 299) // 300)

    def _signal_channels(self):
        c = self.cfg["channels"]
        if c == "both":
            self.player.play(_FB_BOTH)
        else:
            self.player.play(_FB_COUNT, int(c))

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
        if self.charging:
            return hostcmd.E_CHARGING, "charging: no stimulation until the charger is unplugged"
        return None

    # -- consent (SR-15) -----------------------------------------------------------------
    def ask(self, what, now):
        """A host asks the wearer for control (1) or maintenance (2): the question plays (and
        shows on the status LED) until PLUS accepts, MINUS refuses or _ASK_MS pass."""
        self.asking = what
        self._ask_until = time.ticks_add(now, _ASK_MS)
        log.info("consent", state="asked", what=_what(what), timeout_ms=_ASK_MS)
        self.player.play(_FB_HOST_ASKS)

    def answer(self, yes, why):
        """The wearer's answer (PLUS: yes; MINUS or the time running out: no)."""
        what = self.asking
        self.asking = 0
        if yes:
            if what == _ASK_MAINTENANCE:
                self.maintenance = True
            else:
                self.consent = True
        log.info("consent", state="accepted" if yes else "refused", what=_what(what), reason=why)
        self.player.play(_FB_UNLOCKED if yes else _FB_REFUSED)

    def end_consent(self, reason):
        """SR-15: consent (and a question not yet answered) ends at power-off, at a POWER
        press, at keep-alive loss and on a fault; a host must ask again."""
        if self.consent or self.asking:
            self.consent = False
            self.asking = 0
            log.info("consent", state="ended", reason=reason)

    # -- switching and sessions ---------------------------------------------------------
    def switch(self, now):
        """POWER held: off from any state (output stopped, session ended), on from off."""
        self.end_consent("power")
        if self.session.state != session.OFF:
            self.stim.stop_all()
            self._finish(now, "power_off")
            self.session.power(now)
            self.locked = False
            self.stim.clear_faults()
            log.info("power", on=False)
            self.player.play(_FB_POWER_OFF)
        else:
            self.session.power(now)
            self.ended_until = 0
            self._t_active = now
            log.info("power", on=True)
            self.player.play(_FB_POWER_ON)

    def start(self, now):
        """A session on the selected channels: step 1 on each, checked, then a soft start."""
        if self.charging:
            # SR-17: electrodes on the body and a mains charger never together.
            log.warn("refused", msg="charging", limit="charging")
            self.player.play(_FB_REFUSED)
            return
        if self.battery.state == battery.CUTOFF:
            log.warn("refused", msg="battery empty", limit="battery")
            self.player.play(_FB_CUTOFF)
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
            "fw": self.version[0],
            "max_step": [0] * len(self.stim.channels),
            "faults": [],
        }
        for i in range(len(self._noted)):
            self._noted[i] = 0
        log.info("session", state="start", program=p["id"], length_s=self.session.length_s)
        self.player.play(_FB_START)
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

    def _finish(self, now, reason):
        rec = self._rec
        self._rec = None
        self.host_controlled = False  # the keep-alive belongs to the session
        self._t_active = now
        # A finished session has nothing to resume: steps a pause saved (a POWER press that
        # stopped the end-of-session fade) must not restart channels in the next one (SR-1).
        self.stim.forget_pause()
        if rec is None:
            return
        minutes = self.session.elapsed_ms(now) / 60000
        rec["min"] = round(minutes, 2)
        rec["end"] = reason
        log.info("session", state="end", reason=reason, min=rec["min"])
        if reason != "power_off" and reason != "program" and reason != "fault":
            self.player.play(_FB_END)  # those three play their own pattern
        if minutes > 0:
            self._unwritten = rec  # written once the output is off (SR-14)
            self._write_flash()

    def _fade_out(self, now):
        self.stim.fade_out(session.RAMP_DOWN_MS, now)
        self.stim.forget_pause()

    # -- intensity, program, channels ---------------------------------------------------
    def set_step(self, ch, step, now):
        """Channel ch (0-based) to a step; a step over a cap is refused, logged and played as
        the top step (SR-3). True if it was set."""
        try:
            self.stim.set_step(ch, step, now)
        except limits.LimitError as e:
            log.warn("refused", ch=ch + 1, step=step, limit=e.key, msg=str(e))
            self.player.play(_FB_TOP)
            return False
        rec = self._rec
        if rec is not None and step > rec["max_step"][ch]:
            rec["max_step"][ch] = step
        return True

    def step_selected(self, delta, now):
        """PLUS (+1) or MINUS (-1) on every selected channel of a running session, played as
        a step up or down (the top or the bottom when reached). A PLUS while a selected
        channel stands stopped by an electrode fault restarts that channel only (from step 1,
        checked again): one press never raises a channel the wearer was not attending to, and
        a channel that runs keeps its step (SR-2)."""
        if self.session.state != session.RUNNING:
            return
        chs = self.stim.ch
        sel = self.selected()
        if delta > 0:
            restart = False
            for ch in sel:
                c = chs[ch]
                if c.fault and not c.step:
                    self.set_step(ch, 1, now)
                    restart = True
            if restart:
                self.player.play(_FB_STEP_UP)
                return
        moved = False
        refused = False
        for ch in sel:  # a channel refused (a cap, a hold) does not stop the others
            step = chs[ch].step
            if delta > 0 or step > 0:
                if self.set_step(ch, step + delta, now):
                    moved = True
                else:
                    refused = True
        if refused:
            return  # the refusal played the top step
        if not moved:
            self.player.play(_FB_BOTTOM)  # MINUS with every selected channel at 0
        elif delta > 0:
            try:  # one more step would be over a cap: this is the top
                limits.check(self.stim.board, self.stim.program, chs[sel[0]].step + 1)
                self.player.play(_FB_STEP_UP)
            except limits.LimitError:
                self.player.play(_FB_TOP)
        else:
            self.player.play(_FB_BOTTOM if not chs[sel[0]].step else _FB_STEP_DOWN)

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
        i = (i + 1) % len(programs.PROGRAMS)
        self.select_program(programs.PROGRAMS[i]["id"], now)
        self.player.play(_FB_COUNT, i + 1)  # its number, counted

    def next_channels(self):
        """MODE held: the next channel selection (both, 1, 2)."""
        sel = settings.SELECTIONS
        self.cfg["channels"] = sel[(sel.index(self.cfg["channels"]) + 1) % len(sel)]
        log.info("channels", selected=self.cfg["channels"])
        self._signal_channels()
        self._save()

    def next_length(self):
        """MINUS while idle: the next session length, in tens of minutes up to what the board
        and the program allow (then back to 10), played as that many pulses and saved."""
        cap = self.stim.program["session_min"]
        top = self.stim.board["limits"]["max_session_min"]
        if top < cap:
            cap = top
        m = (self.cfg["session_min"] // 10 + 1) * 10
        if m > cap:
            m = 10 if cap >= 10 else cap
        self.cfg["session_min"] = m
        log.info("session_length", min=m)
        self.player.play(_FB_COUNT, (m + 9) // 10)
        self._save()

    def toggle_lock(self):
        self.locked = not self.locked
        log.info("lock", locked=self.locked)
        self.player.play(_FB_LOCKED if self.locked else _FB_UNLOCKED)

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
        """A valid host command arrived (it also counts as use: auto-off)."""
        self._t_host = self._t_active = now

    def host_takes_control(self):
        """The host started the session or raised an intensity: it must keep the link alive."""
        self.host_controlled = True

    def _host_quiet(self, now):
        """No valid host command for KEEPALIVE_MS: a host-controlled session ends (SR-12) and
        the wearer's consent with it (SR-15)."""
        return time.ticks_diff(now, self._t_host) > hostcmd.KEEPALIVE_MS

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
    def tick(self, now):
        """One control cycle; also the unit of work the allocation benchmark measures."""
        stim = self.stim
        stim.tick(now)
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
        elif self.host_controlled and self._host_quiet(now):
            # SR-12: the host that controls this session went quiet: ramp the output to zero
            # and end the session, as at the end of its time.
            self.host_controlled = False
            self.end_consent("keepalive")
            log.warn(
                "host",
                msg="keep-alive lost: output ramps to zero",
                timeout_ms=hostcmd.KEEPALIVE_MS,
            )
            if s.end(now, "keepalive"):
                log.info("session", state="ending", reason="keepalive")
                self._fade_out(now)
        if s.state != session.OFF and s.state != session.FAULT and stim.any_fault(electrode.BOOST):
            # The high-voltage supply did not come up: a hardware fault no press can fix.
            # Output is already off; only switching off leaves this state.
            if s.state in (session.RUNNING, session.PAUSED, session.ENDING):
                self._finish(now, "fault")
            s.fatal(now)
            self.end_consent("fault")
            stim.pause()
            stim.forget_pause()
            log.error("fatal", reason="boost", msg="high-voltage supply failed: switch off")
        if (s.state == session.IDLE or s.state == session.FAULT) and time.ticks_diff(
            now, self._t_active
        ) >= self.cfg["auto_off_min"] * 60_000:
            # No session and no press for auto_off_min: the unit switches itself off, with the
            # power-off pattern, so a forgotten unit does not drain its battery.
            log.info("auto_off", idle_min=self.cfg["auto_off_min"])
            self.switch(now)
        if self.asking and time.ticks_diff(now, self._ask_until) >= 0:
            self.answer(False, "timeout")  # SR-15: no answer is a refusal
        elif self.consent and self._host_quiet(now):
            self.end_consent("keepalive")  # SR-15: the host that was allowed went quiet
        if self._unsaved or self._unwritten is not None:
            self._write_flash()  # SR-14: once every output is off

    def charger(self, on, now):
        """SR-17: the charger connected (on) or unplugged. Connected, a session ramps down and
        ends (recorded as `charging`) and none can start until it is unplugged."""
        if on == self.charging:
            return
        self.charging = on
        if on:
            log.warn("charging", on=True, msg="no stimulation while charging")
            self.player.play(_FB_CHARGING)
            if self.session.end(now, "charging"):
                self._fade_out(now)
        else:
            log.info("charging", on=False)

    def battery_reading(self, volts, dt_s, now):
        """A battery reading; at cut-off the output ramps down and the session ends (SR-10).
        The new battery state if it changed, else None."""
        new = self.battery.update(volts, dt_s)
        if new == battery.CUTOFF:
            self.player.play(_FB_CUTOFF)
            if self.session.end(now, "battery"):
                self._fade_out(now)
        elif new == battery.LOW:
            self.player.play(_FB_LOW_BATTERY)
        return new

    def _note_faults(self):
        """A channel's new electrode fault: its pattern plays, and the session's record
        names it (once)."""
        noted = self._noted
        chs = self.stim.ch
        for i in range(len(chs)):
            # Indexes, not enumerate() (a new object per call), and the name built only when a
            # channel's fault changes: a session's control loop must not allocate.
            f = chs[i].fault
            if f == noted[i]:
                continue
            noted[i] = f
            if not f:
                continue
            self.end_consent("fault")  # SR-15: after a fault the wearer decides again
            self.player.play(_FAULT_PATTERN[f] if f < len(_FAULT_PATTERN) else _FB_FAULT)
            rec = self._rec
            if rec is not None:
                name = "%d:%s" % (i + 1, electrode.NAMES[f])
                if name not in rec["faults"]:
                    rec["faults"].append(name)

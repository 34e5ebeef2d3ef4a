"""The app: the wearer's buttons and lights, sessions, battery and watchdog, wired to the
stimulator. One asyncio task per concern:

- `buttons`: samples the buttons every POLL_MS and acts on their gestures (stim.gestures);
- `control`: the stimulator's tick (checks, soft start, envelope, trips), the session timer and
  the battery's cut-off; its completed cycles are what feeds the watchdog;
- `leds`: status and channel LEDs (stim.leds);
- `battery`: reads the battery every second (stim.battery);
- `watchdog`: feeds `machine.WDT` only while every other task keeps completing cycles (SR-8);
- `host`: command lines from the USB serial console (stim.host, docs/protocol.md, SR-12); it
  waits for input, so it is not one of the tasks the watchdog checks.

The tasks only await sleeps, so they can run alongside anything else on the same asyncio loop
(the REPL of a board, or a host-command task).
"""

import asyncio
import time

from machine import WDT

from stim import (
    battery,
    electrode,
    gestures,
    hostcmd,
    leds,
    limits,
    log,
    programs,
    session,
    settings,
)
from stim.host import HostLink, console_stream
from stim.hw import Hardware
from stim.stimulator import FAULT_NAMES, IDLE, Stimulator

POLL_MS = gestures.POLL_MS
CONTROL_MS = 10
LED_MS = 10
BATTERY_MS = 1000
BATTERY_LOG_MS = 60_000
WDT_TIMEOUT_MS = 2000
WDT_FEED_MS = 500
ACK_MS = 60
ENDED_SHOW_MS = 30_000
KEEPALIVE_MS = hostcmd.KEEPALIVE_MS
_SELECT = {"both": (0, 1, 2, 3), "1": (0,), "2": (1,)}
_TASKS = 4  # tasks whose cycles the watchdog checks: buttons, control, leds, battery


class App:
    def __init__(self, board, console=None, held=None):
        self.board = board
        self.hw = Hardware(board)
        cfg, problems = settings.load(board)
        if problems == ["missing"]:
            log.info("settings", msg="no settings file: defaults")
        elif problems:
            log.warn("settings", msg="bad settings: defaults used", keys=problems)
        self.cfg = cfg
        # The saved program from the start: one `program` log line at boot, not two.
        self.stim = Stimulator(board, cfg["program"])
        self.gestures = gestures.Gestures(held)
        self._t_buttons = self._t_control = time.ticks_ms()
        self.battery = battery.BatteryMonitor(board["battery"])
        log.info("channels", selected=cfg["channels"])
        self.session = session.Session(cfg["session_min"] * 60)
        self.locked = False
        self._ack_until = 0
        self._ended_until = 0
        self._paused_by_press = False
        self._beats = [0] * _TASKS
        self._due = [time.ticks_ms()] * _TASKS  # when each task's present cycle began
        self._fed = [0] * _TASKS
        self._wdt = None
        self._rec = None  # the running session's history record
        self._halted = 0  # the POWER interrupt stopped the output; the buttons task follows up
        self._power_irq = self._on_power_irq  # bound once: an interrupt must not allocate
        self.hw.on_power_press(self._power_irq)
        self._unsaved = False  # settings changed, not yet on flash (SR-14)
        self._unwritten = None  # a finished session's record, not yet on flash
        settings.guard(self.stim.output_possible)
        self._noted = bytearray(len(self.stim.channels))  # last fault code noted per channel
        self.host = HostLink(self, console)

    # -- helpers ------------------------------------------------------------------------
    def _now(self):
        return time.ticks_ms()

    def _selected(self):
        n = len(self.stim.channels)
        return [c for c in _SELECT[self.cfg["channels"]] if c < n]

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

    def _select_program(self, pid, save=True):
        self.stim.forget_pause()  # a new program starts from nothing (SR-1)
        self.stim.select_program(pid)
        self.cfg["program"] = pid
        if save:
            self._save()

    def _ack(self):
        self._ack_until = time.ticks_add(self._now(), ACK_MS)

    # -- sessions -----------------------------------------------------------------------
    def _start_session(self, now):
        if self.battery.state == battery.CUTOFF:
            log.warn("refused", msg="battery empty", limit="battery")
            return
        p = self.stim.program
        self.session.set_length(min(self.cfg["session_min"], p["session_min"]) * 60)
        self.session.start(now)
        self.stim.clear_faults()
        self._rec = {
            "start": time.time(),
            "program": p["id"],
            "max_step": [0] * len(self.stim.channels),
            "faults": [],
        }
        for i in range(len(self._noted)):
            self._noted[i] = 0
        log.info("session", state="start", program=p["id"], length_s=self.session.length_s)
        for ch in self._selected():
            self._set_step(ch, 1)

    def _set_step(self, ch, step):
        try:
            self.stim.set_step(ch, step)
        except limits.LimitError as e:
            log.warn("refused", ch=ch + 1, step=step, limit=e.key, msg=str(e))
            return
        rec = self._rec
        if rec is not None and step > rec["max_step"][ch]:
            rec["max_step"][ch] = step

    def _finish_session(self, now, reason):
        rec = self._rec
        self._rec = None
        self.host.active = False  # the keep-alive belongs to the session
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

    # -- buttons ------------------------------------------------------------------------
    def _on_gesture(self, ev, b, now):
        st = self.session.state
        if ev == gestures.POWER_DOWN:
            # SR-7: output to zero on the first sample that sees POWER, in every state. The
            # release then decides: a short press leaves the session paused, a long one
            # switches the unit off.
            if self.stim.running() or self.stim.fading():
                self.stim.pause()
                self._paused_by_press = True
                if self.session.pause(now):
                    log.info("session", state="paused")
                elif self.session.stopped(now, "stopped"):  # stopped while fading out
                    self._finish_session(now, "stopped")
            return
        log.info("button", gesture=gestures.NAMES[ev], name=gestures.BUTTONS[b])
        if ev == gestures.STUCK:
            log.warn("button_stuck", name=gestures.BUTTONS[b], msg="ignored until released")
            return
        if ev == gestures.UNSTUCK:
            return
        if ev == gestures.POWER_LONG:
            self._power(now)
            return
        if st == session.OFF or st == session.FAULT:
            return  # off, or a fatal fault: only POWER held (off) does anything
        self._ack()
        if ev == gestures.POWER_SHORT:
            if self._paused_by_press:
                self._paused_by_press = False  # this press paused the session: it stays so
            elif st == session.PAUSED:
                if self.locked:
                    log.info("locked", gesture="power_short")
                    return
                self.session.resume(now)
                self.stim.resume()
                log.info("session", state="resumed")
            return
        if ev == gestures.LOCK:
            self.locked = not self.locked
            log.info("lock", locked=self.locked)
            return
        if self.locked:
            log.info("locked", gesture=gestures.NAMES[ev])
            return
        if ev == gestures.MODE_SHORT:
            i = programs.index_of(self.stim.program["id"])
            if self.session.stopped(now, "program"):
                self._finish_session(now, "program")
            self._select_program(programs.PROGRAMS[(i + 1) % len(programs.PROGRAMS)]["id"])
        elif ev == gestures.MODE_LONG:
            sel = settings.SELECTIONS
            self.cfg["channels"] = sel[(sel.index(self.cfg["channels"]) + 1) % len(sel)]
            log.info("channels", selected=self.cfg["channels"])
            self._save()
        elif ev == gestures.PLUS:
            if st == session.IDLE:
                self._start_session(now)
            elif st == session.RUNNING:
                for ch in self._selected():
                    self._set_step(ch, self.stim.steps[ch] + 1)
        elif ev == gestures.MINUS:
            if st == session.RUNNING:
                for ch in self._selected():
                    if self.stim.steps[ch] > 0:
                        self._set_step(ch, self.stim.steps[ch] - 1)

    def _power(self, now):
        if self.session.state != session.OFF:
            self.stim.stop_all()
            self._finish_session(now, "power_off")
            self.session.power(now)
            self.locked = False
            self.stim.clear_faults()
            log.info("power", on=False)
        else:
            self.session.power(now)
            self._ended_until = 0
            log.info("power", on=True)

    def _on_power_irq(self, pin):
        # SR-7: the press itself stops the output, whatever the control loop is doing at the
        # moment (a long electrode check, a log line, a collection): hard interrupt, no
        # allocation. The buttons task then pauses the session as POWER_DOWN does.
        self.stim.halt()
        self._halted = 1

    def buttons_cycle(self):
        """One sample of the buttons and whatever gestures it completes."""
        g = self.gestures
        now = self._now()
        dt = time.ticks_diff(now, self._t_buttons)
        self._t_buttons = now
        if self._halted:
            # The POWER interrupt saw a press (and stopped the output): the decoder counts it
            # as pressed even if no sample sees it, so the session pauses as for any press and
            # the release is a POWER_SHORT like any other (SR-7).
            self._halted = 0
            g.power_edge()
        ev = g.update(self.hw.buttons_down(), dt if 0 < dt < 1000 else POLL_MS)
        while ev:
            self._on_gesture(ev, g.button, self._now())
            ev = g.next_event()

    async def buttons(self):
        while True:
            self.buttons_cycle()
            self._beats[0] += 1
            await asyncio.sleep_ms(self._delay(0, POLL_MS))

    # -- control ------------------------------------------------------------------------
    def control_cycle(self):
        """One control cycle; also the unit of work the allocation benchmark measures."""
        now = self._now()
        dt = time.ticks_diff(now, self._t_control)
        self._t_control = now
        stim = self.stim
        stim.tick(dt if 0 < dt < 1000 else CONTROL_MS)  # the time that really passed
        self._note_faults()  # before the session can end on them: the record names them all
        s = self.session
        ev = s.tick(now)
        if ev == "end":
            log.info("session", state="ending", reason="timer")
            stim.fade_out(session.RAMP_DOWN_MS)
        elif ev == "ended":
            stim.stop_all()
            self._finish_session(now, s.end_reason or "timer")
            self._ended_until = time.ticks_add(now, ENDED_SHOW_MS)
        elif s.state == session.RUNNING and not stim.running() and not self._any_step():
            # Every channel stopped by itself (electrode faults, MINUS down to 0).
            reason = "fault" if self._any_fault() else "intensity"
            s.stopped(now, reason)
            self._finish_session(now, reason)
        elif self.host.lost(now):
            self._keepalive_lost(now)
        if s.state != session.OFF and s.state != session.FAULT and self._boost_failed():
            # The high-voltage supply did not come up: a hardware fault no press can fix.
            # Output is already off; only switching off leaves this state.
            if s.state in (session.RUNNING, session.PAUSED, session.ENDING):
                self._finish_session(now, "fault")
            s.fatal(now)
            stim.pause()
            stim.forget_pause()
            log.error("fatal", reason="boost", msg="high-voltage supply failed: switch off")
        if self._unsaved or self._unwritten is not None:
            self._write_flash()  # SR-14: once every output is off

    def _keepalive_lost(self, now):
        # SR-12: the host that controls this session went quiet: ramp the output to zero and
        # end the session, as at the end of its time.
        self.host.active = False
        log.warn("host", msg="keep-alive lost: output ramps to zero", timeout_ms=KEEPALIVE_MS)
        if self.session.end(now, "keepalive"):
            log.info("session", state="ending", reason="keepalive")
            self.stim.fade_out(session.RAMP_DOWN_MS)
            self.stim.forget_pause()

    def _boost_failed(self):
        for f in self.stim.fault:
            if f == electrode.BOOST:
                return True
        return False

    def _any_step(self):
        for st in self.stim.steps:
            if st:
                return True
        return False

    def _any_fault(self):
        for f in self.stim.fault:
            if f:
                return True
        return False

    def _note_faults(self):
        rec = self._rec
        if rec is None:
            return
        noted = self._noted
        fault = self.stim.fault
        for i in range(len(fault)):
            # Indexes, not enumerate() (a new object per call), and the name built only when a
            # channel's fault changes: a session's control loop must not allocate.
            f = fault[i]
            if f and f != noted[i]:
                noted[i] = f
                name = "%d:%s" % (i + 1, FAULT_NAMES[f])
                if name not in rec["faults"]:
                    rec["faults"].append(name)

    async def control(self):
        while True:
            self.control_cycle()
            self._beats[1] += 1
            await asyncio.sleep_ms(self._delay(1, CONTROL_MS))

    # -- battery ------------------------------------------------------------------------
    async def battery_task(self):
        t_log = 0
        while True:
            v = self.hw.battery_v()
            new = self.battery.update(v, BATTERY_MS / 1000)
            now = self._now()
            if new is not None:
                lvl = "warn" if new else "info"
                log.event("battery", lvl, v=v, state=battery.NAMES[new])
                if new == battery.CUTOFF and self.session.end(now, "battery"):
                    # SR-10: ramp the output down and stop; no new session until recharged.
                    self.stim.fade_out(session.RAMP_DOWN_MS)
                    self.stim.forget_pause()
            elif time.ticks_diff(now, t_log) >= BATTERY_LOG_MS:
                t_log = now
                log.info("battery", v=v, state=battery.NAMES[self.battery.state])
            self._beats[2] += 1
            await asyncio.sleep_ms(BATTERY_MS)

    # -- lights -------------------------------------------------------------------------
    def leds_cycle(self, tick):
        """Status and channel LEDs for this 10 ms tick."""
        hw = self.hw
        now = self._now()
        flags = 0
        if self.locked:
            flags |= leds.LOCKED
        b = self.battery.state
        if b == battery.LOW:
            flags |= leds.BATTERY_LOW
        elif b == battery.CUTOFF:
            flags |= leds.CUTOFF
        if self._ended_until and time.ticks_diff(self._ended_until, now) > 0:
            flags |= leds.ENDED
        if time.ticks_diff(self._ack_until, now) > 0:
            flags |= leds.ACK
        r, g, bl = leds.status(self.session.state, now, flags)
        hw.status_led(r, g, bl)
        on = self.session.state != session.OFF
        stim = self.stim
        for i in range(len(stim.channels)):
            active = stim.state[i] != IDLE
            level = leds.channel(stim.fault[i], stim.lift[i].warning, active, tick)
            hw.channel_led(i, level if on else 0)

    async def leds(self):
        tick = 0
        while True:
            tick += 1
            self.leds_cycle(tick)
            self._beats[3] += 1
            await asyncio.sleep_ms(self._delay(3, LED_MS))

    def _delay(self, task, period_ms):
        """How long task `task` sleeps to start its next cycle period_ms after its last one
        began, so it keeps its rate whatever its own work takes (a task that overran starts
        at once and does not catch up). Integers only: no allocation per cycle."""
        due = time.ticks_add(self._due[task], period_ms)
        now = time.ticks_ms()
        d = time.ticks_diff(due, now)
        if d < 0:
            due = now
            d = 0
        self._due[task] = due
        return d

    # -- watchdog (SR-8) ----------------------------------------------------------------
    def start_watchdog(self):
        """Arm the hardware watchdog (SR-8) before the tasks start: a hang at any time, with or
        without a session, resets the unit into the safe state. Only a deliberate way out to
        the REPL stops it again (stim.safe.watchdog_off)."""
        if self._wdt is None:
            self._wdt = WDT(timeout=WDT_TIMEOUT_MS)
            log.info("watchdog", timeout_ms=WDT_TIMEOUT_MS)

    def healthy(self):
        """Every task completed a cycle since the last feed."""
        for i in range(_TASKS):
            if self._beats[i] == self._fed[i]:
                return False
        return True

    async def watchdog(self):
        while True:
            await asyncio.sleep_ms(WDT_FEED_MS)
            if self._wdt is not None and self.healthy():
                self._wdt.feed()
            for i in range(_TASKS):
                self._fed[i] = self._beats[i]

    async def main(self):
        self.start_watchdog()
        asyncio.create_task(self.buttons())
        asyncio.create_task(self.control())
        asyncio.create_task(self.leds())
        asyncio.create_task(self.battery_task())
        if self.host.stream is not None:
            asyncio.create_task(self.host.run())
        await self.watchdog()


def run(board, held=None):
    log.info("app_start", board=board["name"], channels=len(board["channels"]))
    app = App(board, console_stream(), held)
    try:
        asyncio.run(app.main())
    except KeyboardInterrupt:
        # SR-8: no pulse cut in half, and nothing said or done before the pins are safe:
        # stim.main re-claims them, stops the watchdog, then logs.
        app.stim.hold_all()
        raise

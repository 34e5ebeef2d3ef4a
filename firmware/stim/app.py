"""The app: the unit's asyncio tasks, wired to what stim.main built and handed in.

- `cycle`, every 10 ms: the buttons (stim.wearer: a sample only when a button is down or on its
  way, else nothing to decode), the unit's control cycle (stim.unit: the stimulator's checks,
  soft start, envelope and trips, the session timer, the host's keep-alive; every 100 ms while
  every level stands), and the LEDs and feedback pattern (stim.leds, stim.feedback). One task
  for the three: each wake of the asyncio loop costs the CPU about as much as a sample.
  Switched off with nothing to do, it sleeps the chip between POWER presses (`_sleep`).
- `battery`: reads the battery and the charger every second (stim.battery through the unit);
- `watchdog`: feeds the hardware watchdog only while both tasks keep completing cycles (SR-8);
- `host`: command lines from the USB serial console (stim.host, docs/protocol.md, SR-12); it
  waits for input, so it is not one of the tasks the watchdog checks.

The tasks only await sleeps, so they can run alongside anything else on the same asyncio loop
(the REPL of a board, or a host-command task).
"""

import asyncio
import time

from micropython import const

from stim import battery, gestures, leds, log, session
from stim.stimulator import STOPPED

POLL_MS = gestures.POLL_MS
CONTROL_MS = POLL_MS  # while levels move: a control cycle on every pass
_CONTROL_STEADY_MS = const(100)  # levels standing: the lift watch and timers need no more
_SLEEP_MS = const(250)  # one lightsleep when off: well inside the watchdog's 2 s (SR-8)
_BATTERY_MS = const(1000)
_BATTERY_LOG_MS = const(60_000)
_WDT_TIMEOUT_MS = const(2000)
_WDT_FEED_MS = const(500)
_TASKS = const(2)  # tasks whose cycles the watchdog checks: cycle, battery


class App:
    def __init__(self, hw, unit, wearer, host, start_watchdog):
        self.hw = hw
        self.unit = unit
        self.wearer = wearer
        self.host = host
        self._start_watchdog = start_watchdog  # arms the hardware watchdog, returns it
        self._wdt = None
        now = time.ticks_ms()
        self._t_buttons = self._t_control = now
        self._beats = [0] * _TASKS
        self._due = [now] * _TASKS  # when each task's present cycle began
        self._fed = [0] * _TASKS
        # What the lights and feedback outputs show, as last written (stim.hw builds them off).
        self._fb_on = 0
        self._fb_off = 0  # the feedback outputs were off before the last cycle began
        self._status_c = 0
        self._ch_lit = 0  # bit i: channel i's LED
        hw.on_power_press(wearer.on_power_irq)

    # -- buttons ------------------------------------------------------------------------
    def buttons_cycle(self):
        """One sample of the buttons and whatever gestures it completes; nothing when no
        button is down or being decoded (the POWER press still stops the output from its
        interrupt, SR-7, and the next cycle samples it)."""
        now = time.ticks_ms()
        dt = time.ticks_diff(now, self._t_buttons)
        self._t_buttons = now
        bits = self.hw.buttons_down()
        if self.wearer.quiet(bits):
            return
        self.wearer.sample(bits, dt if 0 <= dt < 1000 else POLL_MS)

    # -- control ------------------------------------------------------------------------
    def control_cycle(self):
        """One control cycle; also the unit of work the allocation benchmark measures."""
        self.unit.tick(time.ticks_ms())

    async def cycle(self):
        tick = 0
        unit = self.unit
        while True:
            tick += 1
            self.buttons_cycle()
            # Timed by the passes' slots (_delay keeps them on a POLL_MS grid), not by the clock
            # read inside the cycle: the work before it varies by a millisecond or two, and a
            # cycle that read the clock late would skip the next pass (20 ms between steps of
            # a soft start).
            start = self._due[0]
            period = _CONTROL_STEADY_MS if unit.stim.steady() else CONTROL_MS
            if time.ticks_diff(start, self._t_control) >= period:
                self._t_control = start
                self.control_cycle()
            self.leds_cycle(tick)
            self._beats[0] += 1
            # Asleep only a cycle after the feedback was switched off: a PWM compare value takes
            # effect at the slice's next wrap, and lightsleep stops its clock (SR-8).
            if self._fb_off and unit.may_sleep() and self.wearer.quiet(self.hw.buttons_down()):
                self._sleep()
            self._fb_off = not self._fb_on
            await asyncio.sleep_ms(self._delay(0, POLL_MS))

    def _sleep(self):
        """Switched off with nothing to do: the chip sleeps until POWER goes down, a host
        sends a line, or _SLEEP_MS passes (then the tasks run one cycle and it sleeps again).
        Every output is off (may_sleep: SR-8). The next sample counts a hold from the wake,
        the instant of the press, so the gestures keep their timing (SR-11)."""
        t0 = time.ticks_ms()
        self.hw.sleep(_SLEEP_MS)
        now = time.ticks_ms()
        self._t_buttons = now
        if time.ticks_diff(now, t0) >= _SLEEP_MS:
            # Slept its time: the next cycle at once (tasks that came due run first), so the
            # chip is soon asleep again.
            self._due[0] = time.ticks_add(now, -POLL_MS)
        else:
            self._due[0] = now  # a press or a host woke it: a poll period for them to run

    # -- battery ------------------------------------------------------------------------
    async def battery_task(self):
        t_log = 0
        unit = self.unit
        while True:
            v = self.hw.battery_v()
            now = time.ticks_ms()
            # SR-17: the charger, at the battery's pace (a second): a session then fades out
            # over 2 s anyway, and the control cycle keeps its time for the pulses.
            unit.charger(self.hw.charging(), now)
            new = unit.battery_reading(v, _BATTERY_MS / 1000, now)
            if new is not None:
                lvl = "warn" if new else "info"
                log.event("battery", lvl, v=v, state=battery.NAMES[new])
            elif time.ticks_diff(now, t_log) >= _BATTERY_LOG_MS:
                t_log = now  # type: ignore[assignment]  # ticks are small ints on the port
                log.info("battery", v=v, state=battery.NAMES[unit.battery.state])
            self._beats[1] += 1
            await asyncio.sleep_ms(_BATTERY_MS)

    # -- lights -------------------------------------------------------------------------
    def leds_cycle(self, tick):
        """Status and channel LEDs for this 10 ms tick."""
        hw = self.hw
        unit = self.unit
        now = time.ticks_ms()
        flags = 0
        if unit.locked:
            flags |= leds.LOCKED
        b = unit.battery.state
        if b == battery.LOW:
            flags |= leds.BATTERY_LOW
        elif b == battery.CUTOFF:
            flags |= leds.CUTOFF
        if unit.ended_until and time.ticks_diff(unit.ended_until, now) > 0:
            flags |= leds.ENDED
        if unit.asking:
            flags |= leds.ASKING
        # The feedback pattern (stim.feedback) plays on the motor and the buzzer as the setting
        # says (faults whatever it says), and shows on the status LED as white flashes.
        fb = unit.player.tick()
        if fb:
            mode = unit.cfg["feedback"]
            urgent = fb == 2  # a fault or supply pattern: whatever the setting says
            hw.feedback(
                urgent or mode == "both" or mode == "tone",
                urgent or mode == "both" or mode == "haptic",
            )
            self._fb_on = 1
            flags |= leds.ACK
        elif self._fb_on:
            self._fb_on = 0
            hw.feedback(0, 0)
        if self.wearer.acknowledging(now):
            flags |= leds.ACK
        state = unit.state()
        # Only a change reaches the pins: most cycles the lights stay as they are.
        c = leds.status(state, now, flags)
        if c != self._status_c:
            self._status_c = c
            hw.status_led(c & 1, (c >> 1) & 1, (c >> 2) & 1)
        lit = 0
        if state != session.OFF:
            bit = 1
            for c in unit.stim.ch:  # no range(len()): each builtin costs a look-up
                if leds.channel(c.fault, c.lift.warning, c.state != STOPPED, tick):
                    lit |= bit
                bit <<= 1
        changed = lit ^ self._ch_lit
        if changed:
            self._ch_lit = lit
            i = 0
            while changed:
                if changed & 1:
                    hw.channel_led(i, lit >> i & 1)
                changed >>= 1
                i += 1

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
            self._wdt = self._start_watchdog(_WDT_TIMEOUT_MS)
            log.info("watchdog", timeout_ms=_WDT_TIMEOUT_MS)

    def healthy(self):
        """Every task completed a cycle since the last feed."""
        for i in range(_TASKS):
            if self._beats[i] == self._fed[i]:
                return False
        return True

    async def watchdog(self):
        # Returns (and so ends the app, stim.main) only when the wearer accepted maintenance.
        while not self.unit.maintenance:
            await asyncio.sleep_ms(_WDT_FEED_MS)
            if self._wdt is not None and self.healthy():
                self._wdt.feed()
            for i in range(_TASKS):
                self._fed[i] = self._beats[i]

    async def main(self):
        self.start_watchdog()
        asyncio.create_task(self.cycle())
        asyncio.create_task(self.battery_task())
        if self.host.stream is not None:
            asyncio.create_task(self.host.run())
        await self.watchdog()


def run(app):
    try:
        asyncio.run(app.main())
    except KeyboardInterrupt:
        # SR-8: no pulse cut in half, and nothing said or done before the pins are safe:
        # stim.main re-claims them, stops the watchdog, then logs.
        app.unit.stim.hold_all()
        raise

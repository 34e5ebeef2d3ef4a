"""The app: one asyncio task per concern, wired to the hardware layer.

This first version: POWER held 1.5 s turns the unit on or off; when on, PLUS starts the selected
program on both channels (soft start) and raises the intensity one step per press, MINUS lowers
it, MODE selects the next program (intensity back to 0), a short POWER press stops all output.
The full wearer interface (gestures, lock, pause, electrode checks, sessions) replaces it.
"""

import asyncio

from stim import electrode, limits, log, programs
from stim.hw import BUTTONS, Hardware
from stim.stimulator import IDLE, Stimulator

POLL_MS = 10
DEBOUNCE_MS = 30
POWER_HOLD_MS = 1500


def channel_led(stim, ch, tick):
    """A channel LED's level at a 10 ms tick: on while it runs, a distinct blink per fault."""
    fault = stim.fault[ch]
    phase = tick % 100  # one second
    if fault == electrode.OPEN:
        return 1 if (tick // 12) % 2 == 0 else 0  # fast blink, 4 per second
    if fault == electrode.SHORT:
        return 1 if phase < 10 or 20 <= phase < 30 else 0  # double flash every second
    if fault:
        return 1 if phase < 50 else 0  # slow blink: sense, boost or lift fault
    if stim.lift[ch].warning and stim.state[ch] != IDLE:
        return 0 if phase < 15 else 1  # on, dipping off once a second: electrode lifting
    return 1 if stim.state[ch] != IDLE else 0


class App:
    def __init__(self, board):
        self.hw = Hardware(board)
        self.stim = Stimulator(board)
        self.on = False
        self._stable = 0
        self._raw = 0
        self._raw_since = 0
        self._held_ms = [0, 0, 0, 0]
        self._power_toggled = False
        self._flash = 0  # status-LED acknowledgement ticks left

    def _pressed(self, name):
        log.info("button", name=name)
        stim = self.stim
        if name == "power":
            stim.stop_all()  # SR-7: a press stops all output
            return
        self._ack()
        if name == "mode":
            i = programs.index_of(stim.program["id"])
            stim.select_program(programs.PROGRAMS[(i + 1) % len(programs.PROGRAMS)]["id"])
            return
        delta = 1 if name == "plus" else -1
        for ch in range(len(stim.channels)):
            step = max(0, stim.steps[ch] + delta)
            try:
                stim.set_step(ch, step)
            except limits.LimitError as e:
                log.warn("refused", ch=ch + 1, step=step, limit=e.key, msg=str(e))

    def _ack(self):
        self._flash = 3  # three 10 ms ticks of white

    async def buttons(self):
        """Debounce by requiring a stable reading for DEBOUNCE_MS, then decode presses."""
        while True:
            raw = self.hw.buttons_down()
            if raw & 1 and self.stim.running():
                # SR-7: stopping is always safe, so POWER acts on the first sample that sees
                # it down, without waiting for the debounce (stop within 20 ms of the press).
                self.stim.stop_all()
            if raw != self._raw:
                self._raw = raw
                self._raw_since = 0
            elif self._raw_since < DEBOUNCE_MS:
                self._raw_since += POLL_MS
                if self._raw_since >= DEBOUNCE_MS and raw != self._stable:
                    for i in range(4):
                        bit = 1 << i
                        if raw & bit and not self._stable & bit:
                            self._held_ms[i] = 0
                            if self.on or BUTTONS[i] == "power":
                                self._pressed(BUTTONS[i])
                    self._stable = raw
            if self._stable & 1:
                self._held_ms[0] += POLL_MS
                if self._held_ms[0] >= POWER_HOLD_MS and not self._power_toggled:
                    self._power_toggled = True
                    self.on = not self.on
                    self.stim.stop_all()
                    self.stim.clear_faults()
                    log.info("power", on=self.on)
            else:
                self._power_toggled = False
            await asyncio.sleep_ms(POLL_MS)

    async def leds(self):
        tick = 0
        while True:
            tick += 1
            if self._flash:
                self._flash -= 1
                self.hw.status_led(1, 1, 1)
            elif self.on and self.stim.running():
                self.hw.status_led(0, 1, 0)  # running: steady green
            elif self.on:
                # Idle: green, blinking slowly (on 1 s, off 1 s): readable without colour.
                self.hw.status_led(0, 1 if (tick // 100) % 2 == 0 else 0, 0)
            else:
                self.hw.status_led(0, 0, 0)
            for i in range(len(self.stim.channels)):
                self.hw.channel_led(i, channel_led(self.stim, i, tick))
            await asyncio.sleep_ms(POLL_MS)

    async def battery(self):
        while True:
            log.info("battery", v=self.hw.battery_v())
            await asyncio.sleep_ms(60_000)

    async def main(self):
        asyncio.create_task(self.buttons())
        asyncio.create_task(self.leds())
        asyncio.create_task(self.stim.run())
        await self.battery()


def run(board):
    log.info("app_start", board=board["name"], channels=len(board["channels"]))
    asyncio.run(App(board).main())

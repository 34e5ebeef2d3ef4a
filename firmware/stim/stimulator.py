"""Therapy output for all channels: program, intensity steps, soft start, EMS envelope, boost.

The policy layer between the wearer interface (or a host command) and the pulse engine:
- intensity is a step 0..N per channel; every request is checked against the board's SR-3 caps
  for the current program and refused with a LimitError naming the limit, nothing changed;
- a channel starts (and restarts) from zero current and ramps up over RAMP_S (SR-2); a decrease
  takes effect before the next pulse;
- changing program stops every channel and sets its intensity to 0 (SR-1);
- the boost supply is on only while a channel is delivering output.
"""

import asyncio
import time

from machine import Pin

from stim import limits, log, modulation, programs
from stim.engine import Channel

RAMP_S = 2.0
TICK_MS = 20
_RAMP_MS = int(RAMP_S * 1000)
BOOST_SETTLE_MS = 20


class Stimulator:
    def __init__(self, board):
        self.board = board
        sysclk = board["sysclk_hz"]
        self.channels = [Channel(i, c, board, sysclk) for i, c in enumerate(board["channels"])]
        self.steps = [0] * len(self.channels)
        self._t_start = [time.ticks_ms()] * len(self.channels)
        self._full_ma = [0.0] * len(self.channels)  # each channel's step current, once ramped
        self._boost = Pin(board["boost_en"], Pin.OUT, value=0)
        self._t_program = time.ticks_ms()
        self.program = None
        self.select_program(programs.PROGRAMS[0]["id"])

    # -- program ------------------------------------------------------------------------
    def select_program(self, pid):
        p = programs.validate(programs.by_id(pid), self.board["limits"]["max_session_min"])
        self.stop_all()
        self.program = p
        self._plan = modulation.plan(p)
        self.max_step = limits.max_step(self.board, p)
        self._t_program = time.ticks_ms()
        log.info("program", id=p["id"], max_step=self.max_step)

    # -- intensity ----------------------------------------------------------------------
    def set_step(self, ch, step):
        """Set channel ch (0-based) to an intensity step; raises LimitError if over a cap."""
        limits.check(self.board, self.program, step)
        old = self.steps[ch]
        if step == old:
            return
        chan = self.channels[ch]
        self.steps[ch] = step
        self._full_ma[ch] = limits.step_ma(self.board, step)
        log.info("intensity", ch=ch + 1, step=step, ma=limits.step_ma(self.board, step))
        if step == 0:
            self._stop_channel(ch)
            return
        if not chan.running:
            self._boost_on()
            self._t_start[ch] = time.ticks_ms()
            chan.start(self._plan, 0.0)  # SR-2: every start ramps up from zero
            log.info("start", ch=ch + 1, program=self.program["id"])
        elif step < old:
            chan.set_level_ma(self._level_ma(ch))  # decreases take effect at once

    def _stop_channel(self, ch):
        self.channels[ch].stop()
        self.steps[ch] = 0
        log.info("stop", ch=ch + 1)
        if not self.running():
            self._boost.value(0)

    def stop_all(self):
        """Every channel to zero at its next pulse boundary (<= one pulse), boost off."""
        for i, chan in enumerate(self.channels):
            if chan.running:
                self._stop_channel(i)
            self.steps[i] = 0
        self._boost.value(0)

    def running(self):
        for chan in self.channels:
            if chan.running:
                return True
        return False

    def _boost_on(self):
        if not self._boost.value():
            self._boost.value(1)
            time.sleep_ms(BOOST_SETTLE_MS)

    def _level_ma(self, ch):
        now = time.ticks_ms()
        t_ch_ms = time.ticks_diff(now, self._t_start[ch])
        if t_ch_ms >= _RAMP_MS and not self.program.get("cycle"):
            # Ramped up, no envelope: the step's current as is. No float arithmetic, so the
            # steady control loop allocates nothing and never wakes the garbage collector.
            return self._full_ma[ch]
        t_ch = t_ch_ms / 1000
        t_prog = time.ticks_diff(now, self._t_program) / 1000
        factor = modulation.ramp(t_ch, RAMP_S) * modulation.envelope(self.program, t_prog)
        return limits.step_ma(self.board, self.steps[ch]) * factor

    def tick(self):
        """One amplitude update of every running channel (soft start, EMS envelope)."""
        for i in range(len(self.channels)):
            chan = self.channels[i]
            if chan.running:
                chan.set_level_ma(self._level_ma(i))

    async def run(self):
        """Amplitude task: tick() every TICK_MS, applied between pulses."""
        while True:
            self.tick()
            await asyncio.sleep_ms(TICK_MS)

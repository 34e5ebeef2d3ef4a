"""The simulated RP2040: a virtual clock, an event queue and the peripherals the firmware uses.

Time is an integer count of system-clock cycles since power-on (`Chip.now`). Nothing moves unless
something advances the clock: the firmware's `time.sleep*`, asyncio idling, or a test. Hardware
(PIO state machines, PWM counters, timers, the watchdog) and the board model are events on that
clock, so a run is exactly reproducible and a simulated hour costs what its events cost.

Interrupt handlers run inside `advance_to` on the thread that advanced the clock, at the virtual
instant their interrupt fired, as they would interrupt the firmware's sleep on the chip.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
from collections.abc import Callable

from . import port_math
from .cpu import Cpu
from .pio_core import PioBlock

NUM_GPIO = 30
ADC_FIRST_GPIO = 26

# GPIO functions (FUNCSEL) this model distinguishes.
F_NULL, F_SIO, F_PWM, F_PIO0, F_PIO1 = "null", "sio", "pwm", "pio0", "pio1"

# Pad pull state at reset: the RP2040 pads come out of reset with the pull-down enabled
# (PADS_BANK0 GPIOn.PDE = 1), so an unconfigured pin reads 0 until firmware changes it.
PULL_NONE, PULL_UP, PULL_DOWN = 0, 1, 2


RTC_POWER_ON_S = 1_609_459_200  # 2021-01-01 00:00 UTC: the port's clock at power-up and reset


class ChipReset(BaseException):
    """Unwinds firmware code when the chip resets under it (watchdog, machine.reset()).

    A BaseException so that `except Exception` in firmware cannot swallow it. Any hardware access
    from the old firmware instance after a reset raises it again, so `finally` blocks of a dead
    program cannot touch the new one's pins: on the chip they would never have run at all.
    """


class SimulationStall(RuntimeError):
    """The firmware stopped letting virtual time pass (an endless loop with no sleep)."""


class _Gpio:
    __slots__ = ("func", "sio_out", "sio_oe", "pio_out", "pio_oe", "pull", "ext", "level")

    def __init__(self):
        self.func = F_NULL
        self.sio_out = 0
        self.sio_oe = 0
        self.pio_out = [0, 0]
        self.pio_oe = [0, 0]
        self.pull = PULL_DOWN
        self.ext = None  # an external driver on the pad (button to ground), or None
        self.level = 0


class PwmSlice:
    """One PWM slice: shared TOP and divider, two compare channels (A=0, B=1).

    The compare registers are double-buffered: a new CC takes effect when the counter wraps
    (RP2040 datasheet 4.5.2.3), so `cc_at(t)` answers with what the output used at time t.
    """

    def __init__(self, chip: Chip, index: int):
        self.chip = chip
        self.index = index
        self.top = 0xFFFF
        self.div16 = 16
        self.enabled = False
        self.t_enabled = 0
        self.cc = [0, 0]
        self._pending: list[tuple[int, int] | None] = [None, None]  # (t_effective, cc)
        self.invert = [False, False]
        self.stuck = [0, 0]  # output level frozen when the slice was disabled
        self.freq_set = False  # machine_pwm.c slice_freq_set[]: cleared at boot and soft reset
        # Per channel ("u16", v) or ("ns", v): re-applied when the slice frequency changes.
        self.duty_mem: list = [None, None]

    def period_cycles(self) -> float:
        return (self.top + 1) * self.div16 / 16

    def set_cc(self, ch: int, cc: int) -> None:
        t = self.chip.now
        self._settle(ch, t)
        if not self.enabled:
            self.cc[ch] = cc
            return
        period = self.period_cycles()
        wraps_done = math.floor((t - self.t_enabled) / period) + 1
        t_eff = self.t_enabled + math.ceil(wraps_done * period)
        self._pending[ch] = (t_eff, cc)
        # Tell analog observers when the new compare value really reaches the pin.
        self.chip.schedule(t_eff, self.chip._pwm_changed, self.index)

    def _settle(self, ch: int, t: int) -> None:
        pend = self._pending[ch]
        if pend is not None and pend[0] <= t:
            self.cc[ch] = pend[1]
            self._pending[ch] = None

    def cc_at(self, ch: int, t: int) -> int:
        self._settle(ch, t)
        return self.cc[ch]

    def level_at(self, ch: int, t: int) -> int:
        """Instantaneous output of one channel (the counter compared against CC)."""
        if not self.enabled:
            return self.stuck[ch]
        counter = int((t - self.t_enabled) * 16 // self.div16) % (self.top + 1)
        high = 1 if counter < self.cc_at(ch, t) else 0
        return high ^ (1 if self.invert[ch] else 0)

    def duty_at(self, ch: int, t: int) -> float:
        """Average of the output over a PWM period: what an RC filter after the pin settles to."""
        if not self.enabled:
            return float(self.stuck[ch])
        duty = min(self.cc_at(ch, t), self.top + 1) / (self.top + 1)
        return 1.0 - duty if self.invert[ch] else duty

    def set_enabled(self, on: bool) -> None:
        t = self.chip.now
        if on and not self.enabled:
            self.t_enabled = t
        if not on and self.enabled:
            # A stopped slice freezes its outputs at whatever level the counter left them
            # (the port's deinit only clears the enable bit): a filtered LEVEL pin can stay at
            # full scale, which is why safe-off re-claims those pins as plain low outputs.
            for ch in (0, 1):
                self.stuck[ch] = self.level_at(ch, t)
        self.enabled = on
        self.chip._pwm_changed(self.index)


# The system clock the rp2 port sets at every power-up and hard reset: SYS_CLK_KHZ, 125 MHz on
# the RP2040 (ports/rp2/main.c calls set_sys_clock_khz before its soft-reset loop, so a soft
# reset keeps whatever machine.freq() set since).
PORT_BOOT_HZ = 125_000_000


class ClockMismatch(BaseException):
    """Firmware set up a peripheral timed by clk_sys (a PIO state machine, a PWM slice) while
    the chip ran at another clock than the one it is simulated at. A BaseException, as a chip
    reset is: the firmware's own handlers must not take it for one of its errors."""


class Chip:
    """The RP2040 and its clock. `board` hooks (ADC sources, pin observers) come from the model.

    The chip is simulated at `sysclk_hz` (the board's clock) throughout. With `boot_hz` given
    (SimulatedUnit: PORT_BOOT_HZ) it powers up reporting that clock, as the port does, until the
    firmware sets sysclk_hz with machine.freq(); a PIO state machine or a PWM slice set up
    before then would run at another rate on the board than here, so it raises ClockMismatch
    (clock_check). Without boot_hz (a rig of firmware modules) it starts at sysclk_hz."""

    def __init__(
        self,
        sysclk_hz: int = 125_000_000,
        cpu_scale: float = 1.0,
        fast_forward: bool | None = None,
        boot_hz: int | None = None,
    ):
        self.sysclk_hz = int(sysclk_hz)
        self.boot_hz = int(boot_hz) if boot_hz is not None else self.sysclk_hz
        self.freq_hz = self.boot_hz  # what machine.freq() reports
        # Steady PIO loops replayed rather than interpreted (pio_core.py, exact either way):
        # RP2SIM_FAST_FORWARD=0 turns it off, for the tests that compare the two.
        if fast_forward is None:
            fast_forward = os.environ.get("RP2SIM_FAST_FORWARD", "1") != "0"
        self.fast_forward = bool(fast_forward)
        self.now = 0
        self.generation = 0  # bumped on every reset; stale firmware objects check it
        self.reset_cause = port_math.PWRON_RESET
        self._heap: list = []
        self._seq = itertools.count()
        self.gpio = [_Gpio() for _ in range(NUM_GPIO)]
        self.pwm = [PwmSlice(self, i) for i in range(8)]
        self.pio = self._new_pio()
        # ADC inputs: channel -> callable(t) -> volts at the pin. The board model installs them.
        self.adc_sources: dict[int, Callable[[int], float]] = {}
        self.adc_vref_v = 3.3
        # One conversion takes 96 cycles of the 48 MHz ADC clock (RP2040 datasheet 4.9.2): the
        # CPU waits it out in adc_convert, and reads still sample 2 us apart when Python is free.
        self.adc_conversion_cycles = self.us_to_cycles(2)
        self._adc_free_at = 0
        # CS.AINSEL and RESULT: one register each, shared by every caller (adc_convert).
        self.adc_ainsel = 0
        self.adc_result_raw12 = 0
        self.temp_sensor_v = 0.706  # RP2040 datasheet 4.9.5: about 0.706 V at 27 C
        # Observers of pin level changes: callable(pin, level, t).
        self.pin_observers: list[Callable[[int, int, int], None]] = []
        # Observers of PWM/analog changes on a pin: callable(pin, t).
        self.analog_observers: list[Callable[[int, int], None]] = []
        # Pin interrupts: pin -> (trigger mask, handler(pin_number), hard)
        self.pin_irqs: dict[int, tuple[int, Callable, bool]] = {}
        # (block, sm) -> (handler, hard, trigger): StateMachine.irq() (see _fire_pio_irq)
        self.pio_irq_handlers: dict[tuple[int, int], tuple[Callable, bool, int]] = {}
        self.irq_serviced = 0  # counts interrupt handlers run; cpu.idle() returns when it moves
        # micropython.kbd_intr's character (3: Ctrl-C, -1: none). pyexec sets Ctrl-C before it
        # runs boot.py and main.py (shared/runtime/pyexec.c, parse_compile_execute).
        self.interrupt_char = 3
        self.wdt_deadline: int | None = None
        self.wdt_timeout_cycles = 0
        self.wdt_enabled = False
        self._wdt_held = 0  # cycles left when CTRL.ENABLE was cleared (the counter stops)
        self._wdt_event = None
        self.irq_disabled = 0
        # The date clock (machine.RTC, time.time()): the port starts it at 2021-01-01 00:00 UTC
        # at every power-up and hard reset, before its soft-reset loop (ports/rp2/main.c), so a
        # soft reset keeps it. It reads rtc_base_s at cycle rtc_base_cycle, counting on from there.
        self.rtc_base_s = RTC_POWER_ON_S
        self.rtc_base_cycle = 0
        # The processor: firmware Python costs time on this clock, interrupts preempt it.
        self.cpu = Cpu(self, cpu_scale)

    def _new_pio(self) -> list[PioBlock]:
        # replays made by the blocks a reset replaces (ff_calls: tests)
        self._ff_calls_before = getattr(self, "_ff_calls_before", 0) + sum(
            b.ff_calls for b in getattr(self, "pio", ())
        )
        blocks = [PioBlock(0, _PioIo(self)), PioBlock(1, _PioIo(self))]
        for b in blocks:
            b.fast_forward = self.fast_forward
        return blocks

    @property
    def ff_calls(self) -> int:
        """How often a replayed PIO loop ran instead of the interpreter, since power-on."""
        return self._ff_calls_before + sum(b.ff_calls for b in self.pio)

    # ---- time ---------------------------------------------------------------------------
    def cycles(self, seconds: float) -> int:
        return int(round(seconds * self.sysclk_hz))

    def us_to_cycles(self, us: int | float) -> int:
        return int(round(us * self.sysclk_hz / 1_000_000))

    def ticks_us(self) -> int:
        return self.now * 1_000_000 // self.sysclk_hz

    def ticks_ms(self) -> int:
        return self.now * 1000 // self.sysclk_hz

    @property
    def t_s(self) -> float:
        return self.now / self.sysclk_hz

    def rtc_s(self) -> int:
        """The date clock: whole seconds since 1970-01-01 UTC (the port's epoch)."""
        return self.rtc_base_s + (self.now - self.rtc_base_cycle) // self.sysclk_hz

    def rtc_set(self, seconds: int) -> None:
        self.rtc_base_s = int(seconds)
        self.rtc_base_cycle = self.now

    def schedule(self, t: int, fn: Callable, *args) -> list:
        """Run fn(*args) at cycle t (>= now). Returns a handle for `cancel`."""
        entry = [max(int(t), self.now), next(self._seq), fn, args, True]
        heapq.heappush(self._heap, entry)
        self.cpu.attention()  # the CPU's next statement looks at the clock again
        return entry

    @staticmethod
    def cancel(entry: list | None) -> None:
        if entry is not None:
            entry[4] = False

    def advance_to(self, t_end: int, stop_on_irq: bool = False) -> None:
        """Let the hardware run until cycle t_end, firing every event on the way in order."""
        t_end = int(t_end)
        irq_mark = self.irq_serviced
        heap = self._heap
        blocks = self.pio
        while True:
            th = heap[0][0] if heap else None
            tp = None
            tp2 = None  # the other block's next instruction: blocks run interleaved in time
            first = None
            for b in blocks:
                tb = b.next_event_time()
                if tb is None:
                    continue
                if tp is None or tb < tp:
                    tp2, tp, first = tp, tb, b
                elif tp2 is None or tb < tp2:
                    tp2 = tb
            if th is not None and (tp is None or th <= tp):
                if th > t_end:
                    break
                entry = heapq.heappop(heap)
                if not entry[4]:
                    continue
                # An interrupt handler run by an earlier event may have moved the clock on.
                if th > self.now:
                    self.now = th
                entry[2](*entry[3])
                if stop_on_irq and self.irq_serviced != irq_mark:
                    return
            elif tp is not None and tp <= t_end:
                limit = t_end if th is None else min(t_end, th - 1)
                if tp2 is not None:
                    limit = min(limit, tp2)
                self.now = max(self.now, tp)
                first.run_until(limit)
                if stop_on_irq and self.irq_serviced != irq_mark:
                    return
            else:
                break
        if t_end > self.now:
            self.now = t_end

    def next_event_time(self) -> int | None:
        heap = self._heap
        while heap and not heap[0][4]:
            heapq.heappop(heap)  # cancelled
        t = heap[0][0] if heap else None
        for b in self.pio:
            tb = b.next_event_time()
            if tb is not None and (t is None or tb < t):
                t = tb
        return t

    def running_clocked(self) -> list[str]:
        """What a machine.lightsleep() would freeze mid-flight: every enabled PIO state
        machine and every enabled PWM slice driving a pin with a non-zero compare value. The
        rp2 port gates their clocks during the sleep (sleep_en0 = 0), so a pulse being driven
        would hold its level: DC on the electrodes."""
        out = []
        for b in self.pio:
            for s in b.sms:
                if s.enabled:
                    out.append("PIO%d SM%d running" % (b.index, s.index))
        for sl in self.pwm:
            if not sl.enabled:
                continue
            for ch in (0, 1):
                # A compare value written since the last wrap is not in force yet (4.5.2.3):
                # a sleep now would freeze the old one.
                pend = sl._pending[ch]
                if sl.cc_at(ch, self.now) or (pend is not None and pend[1]):
                    pin = [
                        n
                        for n in range(NUM_GPIO)
                        if self.gpio[n].func == F_PWM and (n >> 1) & 7 == sl.index and n & 1 == ch
                    ]
                    if pin:
                        out.append("PWM%d%s driving GP%d" % (sl.index, "AB"[ch], pin[0]))
        return out

    # ---- interrupts ---------------------------------------------------------------------
    def dispatch_irq(self, handler: Callable, arg, hard: bool) -> None:
        """An interrupt fired: the CPU runs its handler now (hard) or queues it for the VM's
        scheduler (soft), unless interrupts are masked or a handler is running (cpu.py)."""
        self.cpu.interrupt(handler, arg, hard)

    def enable_irq(self) -> None:
        self.irq_disabled = 0
        self.cpu.unmask()

    # ---- GPIO ---------------------------------------------------------------------------
    def _recompute(self, n: int) -> None:
        g = self.gpio[n]
        t = self.now
        level = None
        if g.func == F_SIO and g.sio_oe:
            level = g.sio_out
        elif g.func == F_PWM:
            sl = self.pwm[(n >> 1) & 7]
            # A running slice toggles the pad at the PWM rate: observers read its filtered value
            # through analog_level() and see 0 here. A stopped slice holds its frozen level.
            level = 0 if sl.enabled else sl.level_at(n & 1, t)
        elif g.func in (F_PIO0, F_PIO1):
            b = 0 if g.func == F_PIO0 else 1
            if g.pio_oe[b]:
                level = g.pio_out[b]
        if level is None:
            if g.ext is not None:
                level = g.ext
            elif g.pull == PULL_UP:
                level = 1
            else:
                level = 0  # pull-down, or floating (the board's bridge inputs have pull-downs)
        elif g.ext is not None and g.ext != level:
            # An output fighting an external driver: the model lets the driver win on the pad.
            level = g.ext
        if level != g.level:
            g.level = level
            self._pin_edge(n, level, t)

    def _pin_edge(self, n: int, level: int, t: int) -> None:
        for obs in self.pin_observers:
            obs(n, level, t)
        irq = self.pin_irqs.get(n)
        if irq is not None:
            trigger, handler, hard = irq
            if (level == 0 and trigger & port_math.PIN_IRQ_FALLING) or (
                level == 1 and trigger & port_math.PIN_IRQ_RISING
            ):
                # As an event at this instant, so the handler never runs inside a PIO step.
                self.schedule(t, self.dispatch_irq, handler, n, hard)
        for b in self.pio:
            b.wake(t)

    def set_func(self, n: int, func: str) -> None:
        self.gpio[n].func = func
        self._recompute(n)
        self._analog_changed(n)

    def sio_write(self, n: int, value: int) -> None:
        self.gpio[n].sio_out = 1 if value else 0
        self._recompute(n)
        if self.gpio[n].func == F_SIO:
            self._analog_changed(n)

    def sio_dir(self, n: int, output: bool) -> None:
        self.gpio[n].sio_oe = 1 if output else 0
        self._recompute(n)
        self._analog_changed(n)

    def set_pull(self, n: int, pull: int) -> None:
        self.gpio[n].pull = pull
        self._recompute(n)

    def drive_external(self, n: int, level: int | None) -> None:
        """An external circuit drives the pad (a pressed button pulls to 0), or lets go (None)."""
        self.gpio[n].ext = level
        self._recompute(n)

    def level(self, n: int) -> int:
        return self.gpio[n].level

    def read_gpio(self, t: int | None = None) -> int:
        bits = 0
        for n, g in enumerate(self.gpio):
            if g.level:
                bits |= 1 << n
        return bits

    def analog_level(self, n: int, t: int | None = None) -> float:
        """The low-pass-filtered voltage fraction of a pin (0..1): the PWM duty, or 0/1."""
        t = self.now if t is None else t
        g = self.gpio[n]
        if g.func == F_PWM:
            sl = self.pwm[(n >> 1) & 7]
            return sl.duty_at(n & 1, t)
        return float(g.level)

    def _analog_changed(self, n: int) -> None:
        for obs in self.analog_observers:
            obs(n, self.now)

    def _pwm_changed(self, slice_index: int) -> None:
        for n in range(NUM_GPIO):
            if (n >> 1) & 7 == slice_index and self.gpio[n].func == F_PWM:
                self._recompute(n)
                self._analog_changed(n)

    # ---- ADC ----------------------------------------------------------------------------
    def adc_convert(self, channel: int) -> int:
        """machine_adc.c's read_u16 (adc_config_and_read_u16): adc_select_input(channel), then
        adc_read(): START_ONCE, wait for READY, return RESULT. AINSEL and RESULT are shared: a
        hard interrupt that fires while this read waits for its conversion runs first (its
        entry alone outlasts the 2 us conversion), and a handler that reads the ADC leaves
        AINSEL on its input and its own conversion in RESULT, which this read then returns:
        the other input's value, as on the chip. A read with interrupts masked is whole."""
        self.adc_ainsel = channel
        self.adc_result_raw12 = self.adc_read_raw12(channel)
        cpu = self.cpu
        cpu.work(cpu.scaled(self.adc_conversion_cycles))  # CPU time: a free CPU waits for nothing
        return self.adc_result_raw12

    def adc_read_raw12(self, channel: int) -> int:
        if channel == 4:
            v = self.temp_sensor_v
        else:
            src = self.adc_sources.get(channel)
            if src is None:
                # An unconnected ADC pin with the reset pull-down reads near 0 V.
                n = ADC_FIRST_GPIO + channel
                v = self.adc_vref_v if self.gpio[n].level else 0.0
            else:
                t = max(self.now, self._adc_free_at)
                self._adc_free_at = t + self.adc_conversion_cycles
                v = src(t)
        raw = int(v / self.adc_vref_v * 4096)
        return max(0, min(4095, raw))

    # ---- watchdog -----------------------------------------------------------------------
    # RP2040 datasheet 4.7 (WATCHDOG at 0x40058000): CTRL.ENABLE (bit 30) starts and stops the
    # counter, CTRL.TRIGGER (bit 31) resets at once; writing LOAD reloads it (a feed). The
    # pico-sdk's watchdog_enable() writes LOAD then sets ENABLE; watchdog_disable() clears
    # ENABLE (hw_clear_bits); nothing else stops it, and a soft reset does not touch it.
    def wdt_start(self, timeout_ms: int) -> None:
        self.wdt_timeout_cycles = self.us_to_cycles(timeout_ms * 1000)
        self.wdt_enabled = True
        self.wdt_feed()

    def wdt_feed(self) -> None:
        if not self.wdt_timeout_cycles or not self.wdt_enabled:
            return
        self._wdt_arm(self.wdt_timeout_cycles)

    def _wdt_arm(self, cycles: int) -> None:
        self.cancel(self._wdt_event)
        self.wdt_deadline = self.now + cycles
        self._wdt_event = self.schedule(self.wdt_deadline, self.hard_reset, port_math.WDT_RESET)

    def wdt_set_enabled(self, on: bool) -> None:
        if on == self.wdt_enabled:
            return
        if not on:
            self._wdt_held = max(0, (self.wdt_deadline or self.now) - self.now)
            self.cancel(self._wdt_event)
            self._wdt_event = None
            self.wdt_deadline = None
            self.wdt_enabled = False
        else:
            self.wdt_enabled = True
            if self.wdt_timeout_cycles:
                self._wdt_arm(self._wdt_held or self.wdt_timeout_cycles)

    def wdt_ctrl(self) -> int:
        """The CTRL register: ENABLE and the counter (TIME, 2 per microsecond on RP2040)."""
        if self.wdt_enabled and self.wdt_deadline is not None:
            left = self.wdt_deadline - self.now
        else:
            left = self._wdt_held
        ticks = min(0xFFFFFF, 2 * left * 1_000_000 // self.sysclk_hz)
        return (1 << 30 if self.wdt_enabled else 0) | ticks

    def clock_check(self, what: str) -> None:
        """Raise ClockMismatch if the chip does not run at the clock it is simulated at, so
        that `what` (timed by clk_sys) would run at another rate on the board."""
        if self.freq_hz != self.sysclk_hz:
            raise ClockMismatch(
                "%s set up at %d Hz, the clock the port boots at: the board runs at %d Hz only "
                "after machine.freq(%d), so its timing here would not be the board's"
                % (what, self.freq_hz, self.sysclk_hz, self.sysclk_hz)
            )

    # ---- reset --------------------------------------------------------------------------
    def hard_reset(self, cause: int) -> None:
        """Watchdog or machine.reset(): every peripheral back to its reset state, at once.

        On the chip the CPU stops mid-instruction and the pads return to inputs with pull-downs,
        so bridge and boost pins fall low immediately; no firmware code runs on the way.
        """
        self.generation += 1
        self.reset_cause = cause
        self.freq_hz = self.boot_hz  # main() sets SYS_CLK_KHZ again
        self.rtc_set(RTC_POWER_ON_S)  # main() runs again: the clock starts at 2021-01-01
        self._heap = [e for e in self._heap if getattr(e[2], "_survives_reset", False)]
        heapq.heapify(self._heap)
        self.pin_irqs.clear()
        self.pio_irq_handlers.clear()
        self.wdt_deadline = None
        self.wdt_timeout_cycles = 0
        self.wdt_enabled = False
        self._wdt_held = 0
        self._wdt_event = None
        self.irq_disabled = 0
        self.cpu.reset()
        for sl in self.pwm:
            sl.enabled = False
            sl.top, sl.div16, sl.cc, sl.stuck = 0xFFFF, 16, [0, 0], [0, 0]
            sl._pending = [None, None]
            sl.freq_set, sl.duty_mem, sl.invert = False, [None, None], [False, False]
        self.pio = self._new_pio()
        for n, g in enumerate(self.gpio):
            ext = g.ext
            g.__init__()
            g.ext = ext
            g.level = -1  # force observers to see the post-reset level
            self._recompute(n)
            self._analog_changed(n)
        raise ChipReset(cause)


class _PioIo:
    """Connects a PIO block's outputs, flags and inputs to the chip."""

    def __init__(self, chip: Chip):
        self.chip = chip

    def read_gpio(self, t: int) -> int:
        return self.chip.read_gpio(t)

    def pio_output(self, block: int, sm: int, values: int, mask: int, t: int) -> None:
        self._write(block, values, mask, t, "pio_out")

    def pio_pindirs(self, block: int, sm: int, values: int, mask: int, t: int) -> None:
        self._write(block, values, mask, t, "pio_oe")

    def _write(self, block: int, values: int, mask: int, t: int, attr: str) -> None:
        chip = self.chip
        saved = chip.now
        chip.now = t  # edges are stamped with the cycle of the instruction that made them
        gpio = chip.gpio
        while mask:
            low = mask & -mask  # lowest set bit: only the pins the write touches
            n = low.bit_length() - 1
            mask ^= low
            if n < NUM_GPIO:
                getattr(gpio[n], attr)[block] = values >> n & 1
                chip._recompute(n)
        chip.now = max(saved, t)

    def irq_changed(self, block: int, flags: int, t: int) -> None:
        chip = self.chip
        for sm in range(4):
            if flags >> sm & 1 and (block, sm) in chip.pio_irq_handlers:
                # One entry of the block's handler takes every flag raised at this instant.
                chip.schedule(t, _fire_pio_irq, chip, block)
                # Stop the block here so the handler sees the hardware as of this instant.
                chip.pio[block].yield_now = True
                return

    def fifo_changed(self, block: int, sm: int, t: int) -> None:
        pass


def _pio_flags_with_handler(chip: Chip, block: int) -> int:
    """The block's state-machine flags (0-3) that have a handler: INTS0 bits 8-11."""
    pio = chip.pio[block]
    ints = 0
    for i in range(4):
        if (block, i) in chip.pio_irq_handlers:
            ints |= pio.irq_flags & (1 << i)
    return ints


def _fire_pio_irq(chip: Chip, block: int) -> None:
    """PIOx_IRQ_0 asserted (a flag with a handler rose): the NVIC marks the interrupt pending,
    and the CPU enters its handler now, or when the running handler returns or interrupts are
    unmasked (cpu.py). The NVIC keeps one pending bit per interrupt line, so flags that rise
    again while the entry is pending are all taken by that one entry, which reads them when it
    runs: two pulses that end while interrupts are masked give one handler call, as on the
    chip."""
    if not _pio_flags_with_handler(chip, block):
        return
    for h, a, _hard in chip.cpu.hard_pending:
        if h is _pio_isr and a[1] == block:
            return  # already pending
    chip.dispatch_irq(_pio_isr, (chip, block), True)


def _pio_isr(arg: tuple[Chip, int]) -> None:
    """What rp2_pio.c pio_irq0() does once the CPU is in it. Every state-machine flag with a
    handler (INTE0 bit 8 + i) is acknowledged at once (`pio->irq = ints >> 8`: the flags are
    cleared before any handler runs, so a program waiting on its own irq is released then, even
    for soft handlers); then each state machine's handler runs, in index order, when
    `(ints >> (8 + i)) & trigger` is set: its own flag for the default trigger 1, another
    state machine's flag for any other trigger, as on the port. A hard handler runs inside this
    entry (mp_irq_handler calls it; an uncaught exception is printed and the next handler still
    runs); a soft one is scheduled. Flags of several state machines are taken by one entry."""
    chip, block = arg
    ints = _pio_flags_with_handler(chip, block)
    if not ints:
        return
    chip.pio[block].clear_irq(ints, chip.now)
    handlers = chip.pio_irq_handlers
    for i in range(4):
        entry = handlers.get((block, i))
        if entry is None or not (ints >> i) & entry[2]:
            continue
        call, hard, _trigger = entry
        if hard:
            try:
                call((block, i))
            except Exception as e:  # noqa: BLE001 - mp_irq_handler prints it and goes on
                chip.cpu._uncaught(e)
        else:
            chip.dispatch_irq(call, (block, i), False)  # queued: runs after this entry

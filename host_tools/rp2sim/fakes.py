"""The MicroPython modules the firmware imports (`machine`, `rp2`, `time`, `micropython`, `sys`,
`os`, `gc`), built for one simulated chip.

Each class reproduces the rp2 port's behaviour as far as the firmware can observe it; the
arithmetic lives in `port_math` (which names the C source it follows) and the non-arithmetic
behaviour is described in PORT_NOTES.md. Objects remember the chip generation they were made
in: after a reset, any use of them raises ChipReset, because the program that held them no longer
exists on the chip.
"""

from __future__ import annotations

import calendar as _calendar
import io as _pyio
import sys as _pysys
import time as _pytime
import types
from array import array

from . import pioasm, port_math
from .chip import (
    F_PIO0,
    F_PIO1,
    F_PWM,
    F_SIO,
    NUM_GPIO,
    PULL_DOWN,
    PULL_NONE,
    PULL_UP,
    Chip,
    ChipReset,
)
from .cpu import Cpu, native_cycles


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


class _Bound:
    """Base for peripheral objects: tied to one chip and one generation of firmware."""

    _chip: Chip
    _gen: int

    def _bind(self, chip: Chip) -> None:
        # The generation is that of the boot these modules were built for, so even objects
        # created through a dead program's module refuse to touch the chip after a reset.
        self._chip = chip
        self._gen = getattr(self, "_gen_for_class", chip.generation)

    def _live(self, cost: str | None = None) -> Chip:
        """The chip, if this object's program still runs on it. The CPU first pays what the
        Python before this call cost, so the access happens at the right instant; `cost` names
        what the native function itself takes (cpu.NATIVE_US)."""
        chip = self._chip
        if chip.generation != self._gen:
            raise ChipReset("stale object from before a reset")
        cpu = chip.cpu
        cpu.sync()
        cpu._nxt_ok = False  # cpu.invalidate(): the call may change what the peripherals do next
        if cost is not None:
            cpu._room -= native_cycles(cost)  # cpu.native(cost)
        return chip

    def _live_read(self, cost: str) -> Chip:
        """`_live` for a call that only reads (a pin level, an ADC conversion): it changes
        nothing the chip schedules, so the CPU's look-up of the next event stays valid."""
        chip = self._chip
        if chip.generation != self._gen:
            raise ChipReset("stale object from before a reset")
        cpu = chip.cpu
        cpu.sync()
        cpu._room -= native_cycles(cost)
        return chip


def _pin_number(pin) -> int:
    if isinstance(pin, Pin):
        return pin._id
    if isinstance(pin, bool) or not isinstance(pin, int | str):
        raise TypeError("expecting a Pin or int")
    if isinstance(pin, str):
        if pin == "LED":
            return 25
        if pin.startswith("GP") and pin[2:].isdigit():
            pin = int(pin[2:])
        else:
            raise ValueError("unknown named pin %r" % pin)
    if not 0 <= pin < NUM_GPIO:
        raise ValueError("invalid pin")
    return pin


class Pin(_Bound):
    IN = port_math.PIN_IN
    OUT = port_math.PIN_OUT
    OPEN_DRAIN = port_math.PIN_OPEN_DRAIN
    ALT = port_math.PIN_ALT
    PULL_UP = port_math.PIN_PULL_UP
    PULL_DOWN = port_math.PIN_PULL_DOWN
    IRQ_FALLING = port_math.PIN_IRQ_FALLING
    IRQ_RISING = port_math.PIN_IRQ_RISING
    ALT_PWM = 4
    ALT_PIO0 = 6
    ALT_PIO1 = 7

    _chip_for_class: Chip  # set per chip by build_modules (each chip has its own Pin class)

    def __init__(self, id, mode=-1, pull=-1, *, value=None, alt=-1):
        self._bind(self._chip_for_class)
        self._id = _pin_number(id)
        if mode != -1 or pull != -1 or value is not None:
            self.init(mode, pull, value=value, alt=alt)

    def init(self, mode=-1, pull=-1, *, value=None, alt=-1):
        chip = self._live("pin_init")
        n = self._id
        # The port writes the output value before switching the pad to an output, so
        # Pin(n, Pin.OUT, value=0) never glitches high (machine_pin.c, init helper).
        if value is not None:
            chip.sio_write(n, 1 if value else 0)
        if mode in (self.IN, self.OUT, self.OPEN_DRAIN):
            if chip.gpio[n].func != F_SIO:
                chip.set_func(n, F_SIO)
            chip.sio_dir(n, mode == self.OUT)
        elif mode == self.ALT:
            func = {self.ALT_PWM: F_PWM, self.ALT_PIO0: F_PIO0, self.ALT_PIO1: F_PIO1}.get(alt)
            if func is None:
                raise ValueError("alt function not modelled: %r" % alt)
            chip.set_func(n, func)
        elif mode != -1:
            raise ValueError("invalid pin mode")
        if pull != -1:
            chip.set_pull(
                n, {None: PULL_NONE, self.PULL_UP: PULL_UP, self.PULL_DOWN: PULL_DOWN}[pull]
            )
        return None

    def value(self, v=None):
        if v is None:
            return self._live_read("pin_read").level(self._id)
        chip = self._live("pin_write")
        chip.sio_write(self._id, 1 if v else 0)
        return None

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def high(self):
        self.value(1)

    def low(self):
        self.value(0)

    def toggle(self):
        chip = self._live("pin_write")
        chip.sio_write(self._id, 0 if chip.gpio[self._id].sio_out else 1)

    def irq(self, handler=None, trigger=None, hard=False):
        chip = self._live("sm_irq")
        if trigger is None:
            trigger = self.IRQ_FALLING | self.IRQ_RISING
        if handler is None:
            chip.pin_irqs.pop(self._id, None)
        else:
            gen = self._gen
            pin = self

            def call(_n, handler=handler):
                if chip.generation == gen:
                    handler(pin)

            chip.pin_irqs[self._id] = (trigger, call, hard)
        return None

    def __repr__(self):
        return "Pin(GPIO%d)" % self._id


class PWM(_Bound):
    """machine.PWM as machine_pwm.c: one object per slice channel, the slice starts only once its
    frequency and this channel's duty are both set, a frequency change re-applies both
    channels' remembered duties, and deinit() stops the whole slice with its pins frozen."""

    _chip_for_class: Chip

    # mp_machine_pwm_init_helper(): every argument is an int (MP_ARG_INT) whose default,
    # VALUE_NOT_SET (-1), means "left out", so passing -1 is the same as not passing it; a
    # duty_u16 and a duty_ns are both applied, in that order (the ns one stands). The port also
    # takes freq positionally; the stubs the firmware is checked against do not, nor does this.
    def __init__(self, dest, *, freq=-1, duty_u16=-1, duty_ns=-1, invert=-1):
        self._bind(self._chip_for_class)
        self._pin = _pin_number(dest)
        self._slice = self._chip.pwm[(self._pin >> 1) & 7]
        self._ch = self._pin & 1
        self._slice.duty_mem[self._ch] = None  # PWM() resets duty_type to NOT_SET
        self._slice.invert[self._ch] = False  # ... and invert to 0
        self.init(freq=freq, duty_u16=duty_u16, duty_ns=duty_ns, invert=invert)
        # The pin is handed to the PWM only after the slice is configured (machine_pwm.c).
        self._chip.set_func(self._pin, F_PWM)

    def init(self, *, freq=-1, duty_u16=-1, duty_ns=-1, invert=-1):
        self._live("pwm_init")
        freq, duty_u16, duty_ns, invert = (
            port_math.mp_obj_get_int(v) for v in (freq, duty_u16, duty_ns, invert)
        )
        if freq != -1:
            self._set_freq(freq)
        if duty_u16 != -1:
            self._slice.duty_mem[self._ch] = ("u16", port_math.pwm_duty_u16_clamp(duty_u16))
        if duty_ns != -1:
            self._slice.duty_mem[self._ch] = ("ns", duty_ns)
        if invert != -1:
            self._slice.invert[self._ch] = bool(invert)
        self._apply(self._ch)
        self._start()

    def _apply(self, ch):
        sl = self._slice
        mem = sl.duty_mem[ch]
        if mem is None or not sl.freq_set:
            return
        kind, v = mem
        if kind == "u16":
            cc = port_math.pwm_duty_u16_to_cc(v, sl.top)
        else:
            cc = port_math.pwm_duty_ns_to_cc(v, self._chip.sysclk_hz, sl.div16, sl.top)
        sl.set_cc(ch, cc)

    def _start(self):
        sl = self._slice
        if sl.freq_set and sl.duty_mem[self._ch] is not None:
            sl.set_enabled(True)
            self._chip._analog_changed(self._pin)

    def _set_freq(self, value):
        chip = self._chip
        chip.clock_check("PWM slice %d" % self._slice.index)
        sl = self._slice
        top, div16 = port_math.pwm_freq_to_top_div(chip.sysclk_hz, value)
        sl.top, sl.div16 = top, div16
        sl.freq_set = True
        for ch in (0, 1):
            self._apply(ch)
        chip._pwm_changed(sl.index)

    def freq(self, value=None):
        chip = self._live("pwm_duty")
        sl = self._slice
        if value is None:
            return port_math.pwm_get_freq(chip.sysclk_hz, sl.top, sl.div16) if sl.freq_set else 0
        self._set_freq(value)
        self._start()
        return None

    def duty_u16(self, value=None):
        chip = self._live("pwm_duty")
        sl = self._slice
        if value is None:
            if not sl.freq_set or sl.duty_mem[self._ch] is None:
                return 0
            return port_math.pwm_cc_to_duty_u16(sl.cc_at(self._ch, chip.now), sl.top)
        sl.duty_mem[self._ch] = ("u16", port_math.pwm_duty_u16_clamp(value))
        self._apply(self._ch)
        self._start()
        chip._analog_changed(self._pin)
        return None

    def duty_ns(self, value=None):
        chip = self._live("pwm_duty")
        sl = self._slice
        if value is None:
            if not sl.freq_set or sl.duty_mem[self._ch] is None:
                return 0
            return port_math.pwm_cc_to_duty_ns(
                sl.cc_at(self._ch, chip.now), chip.sysclk_hz, sl.div16
            )
        sl.duty_mem[self._ch] = ("ns", int(value))
        self._apply(self._ch)
        self._start()
        chip._analog_changed(self._pin)
        return None

    def deinit(self):
        self._live("pwm_duty")
        self._slice.set_enabled(False)

    def __repr__(self):
        return "<PWM slice=%d channel=%d>" % (self._slice.index, self._ch)


class ADC(_Bound):
    CORE_TEMP = 4
    _chip_for_class: Chip

    def __init__(self, id):
        self._bind(self._chip_for_class)
        self._live("adc_init")
        # machine_adc.c: ints 0..4 are channels and leave the GPIO alone; GPIO 26..29 (as an int
        # or a Pin) are configured for analog input (adc_gpio_init: function NULL, pulls off).
        if isinstance(id, int) and not isinstance(id, bool) and 0 <= id <= 4:
            self._channel = id
            return
        n = id._id if isinstance(id, Pin) else id
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < NUM_GPIO:
            raise ValueError("invalid pin")
        if not 26 <= n <= 29:
            raise ValueError("Pin doesn't have ADC capabilities")
        self._channel = n - 26
        self._chip.set_func(n, "null")
        self._chip.set_pull(n, PULL_NONE)

    def read_u16(self):
        chip = self._live_read("adc_read")
        return port_math.adc_raw12_to_u16(chip.adc_convert(self._channel))


_UNSET = object()  # an argument that was not passed


class Timer(_Bound):
    ONE_SHOT = port_math.TIMER_ONE_SHOT
    PERIODIC = port_math.TIMER_PERIODIC
    _chip_for_class: Chip

    def __init__(
        self,
        id=-1,
        *,
        mode=_UNSET,
        period=_UNSET,
        freq=_UNSET,
        tick_hz=_UNSET,
        callback=_UNSET,
        hard=_UNSET,
    ):
        self._bind(self._chip_for_class)
        port_math.timer_check_id(id)
        self._entry = None
        # machine_timer_make_new: any keyword argument initialises the timer; the ones not
        # given take init()'s defaults.
        given = {
            k: v
            for k, v in (
                ("mode", mode),
                ("period", period),
                ("freq", freq),
                ("tick_hz", tick_hz),
                ("callback", callback),
                ("hard", hard),
            )
            if v is not _UNSET
        }
        if given:
            self.init(**given)

    def init(self, *, mode=PERIODIC, period=-1, freq=-1, tick_hz=1000, callback=None, hard=False):
        chip = self._live("timer_init")
        self.deinit()
        delta_us = port_math.timer_delta_us(mode, period=period, freq=freq, tick_hz=tick_hz)
        self._mode, self._cb, self._hard = mode, callback, hard
        self._delta = chip.us_to_cycles(delta_us)
        self._target = chip.now + self._delta
        self._entry = chip.schedule(self._target, self._fire)

    def _fire(self):
        chip = self._chip
        if chip.generation != self._gen:
            return
        if self._mode == self.PERIODIC:
            # Re-armed from the previous target, not from now: periodic timers do not drift.
            self._target += self._delta
            self._entry = chip.schedule(self._target, self._fire)
        else:
            self._entry = None
        if self._cb is not None:
            chip.dispatch_irq(self._cb, self, self._hard)

    def deinit(self):
        self._live()
        Chip.cancel(self._entry)
        self._entry = None


class WDT(_Bound):
    _chip_for_class: Chip

    def __init__(self, id=0, timeout=5000):
        self._bind(self._chip_for_class)
        self._live("wdt")
        timeout = port_math.wdt_check(id, timeout)
        if timeout == 0:
            self._chip.hard_reset(port_math.WDT_RESET)  # 0 is accepted and resets at once
        self._chip.wdt_start(timeout)

    def feed(self):
        self._live("wdt").wdt_feed()


class RTC(_Bound):
    """The date clock (ports/rp2/machine_rtc.c over the pico-sdk's always-on timer; the same
    clock time.time() reads). The port's constructor takes no argument (mp_arg_check_num 0, 0;
    the stubs list an `id`). datetime() reads (year, month, mday, weekday (Monday 0), hours,
    minutes, seconds, 0), or sets the clock from such a tuple of exactly 8 items, ignoring the
    weekday and subseconds and rolling over out-of-range fields as timeutils_seconds_since_epoch
    does (February 30 is March 2). Power-up and hard reset: 2021-01-01 (Chip.rtc_s); a soft
    reset keeps it."""

    _chip_for_class: Chip

    def __init__(self, id=None):
        if id is not None:
            raise TypeError("function takes 0 positional arguments but 1 were given")
        self._bind(self._chip_for_class)

    def datetime(self, datetimetuple=None):
        chip = self._live()
        if datetimetuple is None:
            t = _pytime.gmtime(chip.rtc_s())  # tm_wday: Monday 0, as timeutils
            return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday, t.tm_hour, t.tm_min, t.tm_sec, 0)
        items = tuple(datetimetuple)
        if len(items) != 8:
            raise ValueError("requested length 8 but object has length %d" % len(items))
        y, mo, d, _wd, h, mi, sec, _sub = (int(v) for v in items)
        if not 1 <= mo <= 12:
            # the port indexes its days-before-month table with it unchecked
            raise ValueError("month %d: outside what the port's timeutils can take" % mo)
        # timeutils_seconds_since_epoch: day, hours, minutes, seconds added as given, unchecked
        first = _calendar.timegm((y, mo, 1, 0, 0, 0, 0, 0, 0))
        chip.rtc_set(first + (d - 1) * 86400 + h * 3600 + mi * 60 + sec)
        return None


class _Mem32:
    """`machine.mem32` for the registers the firmware uses: the PIO blocks' IRQ, IRQ_FORCE,
    SMn_ADDR and FLEVEL, the watchdog's CTRL and LOAD (RP2040 datasheet 2.1.2: each block
    also answers at +0x1000 XOR, +0x2000 SET and +0x3000 CLR), and the SIO's GPIO_IN (every
    pad's input level in one word, 2.3.1.7: what Pin.value() reads for one pin). Anything else
    is refused."""

    _PIO_BASES = {0x50200000: 0, 0x50300000: 1}
    _WATCHDOG = 0x40058000
    _SIO_GPIO_IN = 0xD0000004

    def __init__(self, chip: Chip, gen: int):
        self._chip, self._gen = chip, gen

    def _decode(self, addr: int):
        chip = self._chip
        if chip.generation != self._gen:
            raise ChipReset("stale")
        chip.cpu.sync()
        chip.cpu.invalidate()
        chip.cpu.native("mem32")
        off = addr & 0xFFF
        alias = addr & 0x3000
        base = addr & ~0x3FFF
        if base == self._WATCHDOG:
            return None, off, alias
        if base not in self._PIO_BASES:
            raise NotImplementedError("mem32 address 0x%08x is not modelled" % addr)
        return chip.pio[self._PIO_BASES[base]], off, alias

    def __getitem__(self, addr: int) -> int:
        chip = self._chip
        if addr == self._SIO_GPIO_IN and chip.generation == self._gen:
            chip.cpu.sync()
            chip.cpu.native("mem32")
            chip.cpu.settle()  # the pads as they are at this instant (PIO outputs included)
            return chip.read_gpio(chip.now) & 0x3FFFFFFF
        pio, off, _alias = self._decode(addr)
        if pio is None:
            if off == 0x000:  # CTRL
                return chip.wdt_ctrl()
            if off == 0x008:  # REASON: bit 0 timer, bit 1 force
                return 1 if chip.reset_cause == port_math.WDT_RESET else 0
            raise NotImplementedError("watchdog register offset 0x%03x is not modelled" % off)
        chip.cpu.settle()  # the PIO up to this instant
        if off == 0x030:  # IRQ
            return pio.irq_flags
        if 0x0D4 <= off < 0x0D4 + 4 * 0x18 and (off - 0x0D4) % 0x18 == 0:  # SMn_ADDR
            return pio.sm_pc((off - 0x0D4) // 0x18)  # also while a loop is replayed
        if off == 0x00C:  # FLEVEL
            v = 0
            for i, sm in enumerate(pio.sms):
                v |= (sm.tx_level() & 0xF) << (8 * i) | (sm.rx_level() & 0xF) << (8 * i + 4)
            return v
        raise NotImplementedError("PIO register offset 0x%03x is not modelled" % off)

    def __setitem__(self, addr: int, value: int) -> None:
        pio, off, alias = self._decode(addr)
        chip = self._chip
        value &= 0xFFFFFFFF
        if pio is None:
            self._watchdog(off, alias, value)
        elif off == 0x030 and alias in (0, 0x2000):  # IRQ: write 1 to clear
            pio.clear_irq(value & 0xFF, chip.now)
        elif off == 0x034 and alias in (0, 0x2000):  # IRQ_FORCE: write 1 to set
            pio.force_irq(value & 0xFF, chip.now)
        else:
            raise NotImplementedError("PIO register write at offset 0x%03x not modelled" % off)

    def _watchdog(self, off: int, alias: int, value: int) -> None:
        chip = self._chip
        if off == 0x004:  # LOAD: reload the counter (what WDT.feed() does)
            chip.wdt_feed()
            return
        if off != 0x000:
            raise NotImplementedError("watchdog register write at 0x%03x not modelled" % off)
        old = chip.wdt_ctrl()
        new = {0: value, 0x1000: old ^ value, 0x2000: old | value, 0x3000: old & ~value}[alias]
        if new & (1 << 31):  # TRIGGER
            chip.hard_reset(port_math.WDT_RESET)
        chip.wdt_set_enabled(bool(new & (1 << 30)))


# ---- rp2 --------------------------------------------------------------------------------


class PIO(_Bound, pioasm.PIO):
    """rp2.PIO: the constants come from the assembler's copy of the port's PIO class."""

    _chip_for_class: Chip

    def __init__(self, id):
        self._bind(self._chip_for_class)
        if id not in (0, 1):
            raise ValueError("invalid PIO")
        self._id = id

    def _block(self):
        return self._live().pio[self._id]

    def add_program(self, prog):
        _program_offset(self._live(), self._id, prog)

    def remove_program(self, prog=None):
        chip = self._live()
        if prog is None:
            return
        offset = prog[1 + self._id]
        if offset >= 0:
            chip.pio[self._id].remove_program(list(prog[0]), offset)
            prog[1 + self._id] = -1

    def state_machine(self, id, prog=None, *args, **kw):
        sm = StateMachine(self._id * 4 + id)
        if prog is not None:
            sm.init(prog, *args, **kw)
        return sm


def _program_offset(chip: Chip, block_index: int, prog) -> int:
    """Load a program once per PIO and keep its offset in the program list, as rp2_pio.c does
    (prog[_PROG_OFFSET_PIO0 + n] is -1 until the program is first loaded into PIO n)."""
    key = 1 + block_index
    if prog[key] < 0:
        prog[key] = chip.pio[block_index].add_program(list(prog[0]))
    return prog[key]


class StateMachine(_Bound):
    _chip_for_class: Chip

    def __init__(self, id, prog=None, freq=-1, **kw):
        self._bind(self._chip_for_class)
        if not 0 <= id < 8:
            raise ValueError("invalid StateMachine")
        self._id = id
        self._block_index = id // 4
        self._index = id % 4
        if prog is not None:
            self.init(prog, freq, **kw)

    def _sm(self, cost: str = "sm_small"):
        return self._live(cost).pio[self._block_index].sms[self._index]

    def init(
        self,
        prog,
        freq=-1,
        *,
        in_base=None,
        out_base=None,
        set_base=None,
        jmp_pin=None,
        sideset_base=None,
        in_shiftdir=None,
        out_shiftdir=None,
        push_thresh=None,
        pull_thresh=None,
    ):
        chip = self._live("sm_init")
        chip.clock_check("PIO%d state machine %d" % (self._block_index, self._index))
        block = chip.pio[self._block_index]
        sm = block.sms[self._index]
        sm.set_enabled(False, chip.now)
        offset = _program_offset(chip, self._block_index, prog)
        execctrl = prog[pioasm._PROG_EXECCTRL]
        shiftctrl = prog[pioasm._PROG_SHIFTCTRL]
        if in_shiftdir is not None:
            shiftctrl = (shiftctrl & ~(1 << 18)) | (in_shiftdir << 18)
        if out_shiftdir is not None:
            shiftctrl = (shiftctrl & ~(1 << 19)) | (out_shiftdir << 19)
        if push_thresh is not None:
            shiftctrl = (shiftctrl & ~(0x1F << 20)) | ((push_thresh & 0x1F) << 20)
        if pull_thresh is not None:
            shiftctrl = (shiftctrl & ~(0x1F << 25)) | ((pull_thresh & 0x1F) << 25)
        # rp2_pio.c asm_pio_get_pins: one pin may be given as a bare value, several as a tuple.
        out_init, set_init, side_init = (
            (v,) if isinstance(v, int) else v
            for v in (
                prog[pioasm._PROG_OUT_PINS],
                prog[pioasm._PROG_SET_PINS],
                prog[pioasm._PROG_SIDESET_PINS],
            )
        )
        side_en = bool(execctrl >> 30 & 1)
        sideset_count = (len(side_init) if side_init else 0) + (1 if side_en else 0)
        div_int, div_frac = port_math.sm_freq_to_clkdiv(chip.sysclk_hz, freq)
        bases = {
            "in": _pin_number(in_base) if in_base is not None else 0,
            "out": _pin_number(out_base) if out_base is not None else 0,
            "set": _pin_number(set_base) if set_base is not None else 0,
            "side": _pin_number(sideset_base) if sideset_base is not None else 0,
        }
        jmp = _pin_number(jmp_pin) if jmp_pin is not None else 0
        pull_thresh_v = shiftctrl >> 25 & 0x1F
        push_thresh_v = shiftctrl >> 20 & 0x1F
        sm.configure(
            wrap_target=offset + (execctrl >> 7 & 0x1F),
            wrap=offset + (execctrl >> 12 & 0x1F),
            sideset_count=sideset_count,
            sideset_opt=side_en,
            sideset_pindirs=bool(execctrl >> 29 & 1),
            set_base=bases["set"],
            sideset_base=bases["side"],
            set_count=len(set_init) if set_init else 0,
            out_base=bases["out"],
            out_count=len(out_init) if out_init else 0,
            in_base=bases["in"],
            jmp_pin=jmp,
            in_shift_right=bool(shiftctrl >> 18 & 1),
            out_shift_right=bool(shiftctrl >> 19 & 1),
            autopush=bool(shiftctrl >> 16 & 1),
            autopull=bool(shiftctrl >> 17 & 1),
            push_thresh=push_thresh_v or 32,
            pull_thresh=pull_thresh_v or 32,
            fifo_join=shiftctrl >> 30 & 3,
            status_sel=execctrl >> 4 & 1,
            status_n=execctrl & 0xF,
            clkdiv_int=div_int,
            clkdiv_frac=div_frac,
        )
        # Claim and initialise the pins the program declares (rp2_pio.c, state machine init
        # helper): each pin gets its initial value and direction, then the PIO function.
        func = F_PIO0 if self._block_index == 0 else F_PIO1
        io = block.io
        given = {"out": out_base, "set": set_base, "side": sideset_base}
        for base_key, inits in (("out", out_init), ("set", set_init), ("side", side_init)):
            if not inits or given[base_key] is None:
                continue
            for i, init in enumerate(inits):
                n = (bases[base_key] + i) % 32
                if n >= NUM_GPIO:
                    continue
                io.pio_output(self._block_index, self._index, (init & 1) << n, 1 << n, chip.now)
                io.pio_pindirs(
                    self._block_index, self._index, (init >> 1 & 1) << n, 1 << n, chip.now
                )
                chip.set_func(n, func)
        # pio_sm_init clears the FIFOs and leaves the SM disabled at `jmp offset`: active(1)
        # starts it.
        sm.tx_fifo.clear()
        sm.rx_fifo.clear()
        sm.pc = offset
        sm.restart(chip.now)
        return None

    def active(self, value=None):
        chip = self._live("sm_small")
        sm = chip.pio[self._block_index].sms[self._index]
        if value is None:
            return bool(sm.enabled)
        chip.cpu.settle()
        sm.set_enabled(bool(value), chip.now)
        return None

    def restart(self):
        chip = self._live("sm_exec")
        chip.pio[self._block_index].sms[self._index].restart(chip.now)

    def exec(self, instr):
        chip = self._live("sm_exec")
        sm = chip.pio[self._block_index].sms[self._index]
        if isinstance(instr, str):
            instr = pioasm.asm_pio_encode(instr, sm.sideset_count_for_exec())
        sm.exec_instr(instr, chip.now)

    def put(self, value, shift=0):
        chip = self._live("sm_put")
        sm = chip.pio[self._block_index].sms[self._index]
        if isinstance(value, memoryview):
            value = value.tolist()
        values = value if isinstance(value, array | bytes | bytearray | list | tuple) else [value]
        for v in values:
            word = (int(v) << shift) & 0xFFFFFFFF
            # A full TX FIFO blocks the CPU until the SM makes room (the port spins, running
            # scheduled callbacks meanwhile).
            spins = 0
            while not sm.put(word, chip.now):
                nxt = chip.next_event_time()
                if nxt is None or spins > 1_000_000:
                    raise RuntimeError("StateMachine.put blocks forever: the SM never pulls")
                chip.cpu.busy_wait(max(1, nxt - chip.now))
                chip.cpu.handle_pending()
                spins += 1
        return None

    def get(self, buf=None, shift=0):
        chip = self._live("sm_put")
        sm = chip.pio[self._block_index].sms[self._index]
        while True:
            v = sm.get(chip.now)
            if v is not None:
                return v >> shift
            nxt = chip.next_event_time()
            if nxt is None:
                raise RuntimeError("StateMachine.get blocks forever: the SM never pushes")
            chip.cpu.busy_wait(max(1, nxt - chip.now))
            chip.cpu.handle_pending()

    def tx_fifo(self):
        return self._sm().tx_level()

    def rx_fifo(self):
        return self._sm().rx_level()

    def irq(self, handler=None, trigger=1, hard=False):
        chip = self._live("sm_irq")
        key = (self._block_index, self._index)
        if handler is None:
            chip.pio_irq_handlers.pop(key, None)
            return None
        gen = self._gen

        def call(_arg, handler=handler, sm=self):
            if chip.generation == gen:
                handler(sm)

        # The trigger is kept as the port keeps it, an int tested against the block's
        # interrupt bits shifted down to this state machine (chip._fire_pio_irq).
        chip.pio_irq_handlers[key] = (call, hard, int(trigger))
        return None


# ---- time, micropython, sys, os, gc -----------------------------------------------------

TICKS_PERIOD = 1 << 30
TICKS_MAX = TICKS_PERIOD - 1
TICKS_HALFPERIOD = TICKS_PERIOD >> 1


def _ticks_diff(a, b):
    return ((a - b + TICKS_HALFPERIOD) & TICKS_MAX) - TICKS_HALFPERIOD


def _ticks_add(a, delta):
    return (a + delta) & TICKS_MAX


def _make_time(cpu: Cpu) -> types.ModuleType:
    chip = cpu.chip

    def sleep_ms(ms):
        # mp_hal_delay_ms: the CPU waits for events (WFE) and runs what is pending.
        cpu.sleep_cycles(chip.us_to_cycles(int(ms) * 1000))

    def sleep_us(us):
        # mp_hal_delay_us (ports/rp2/mphalport.c): beyond 1 ms the whole milliseconds are
        # slept as sleep_ms sleeps, then a tight busy loop up to the end; no callback runs in
        # the busy part.
        us = int(us)
        if us <= 0:
            return
        cpu.sync()
        end = chip.now + chip.us_to_cycles(us)
        if us > 1000:
            cpu.sleep_cycles(chip.us_to_cycles(us // 1000 * 1000))
        cpu.busy_wait(max(0, end - chip.now))

    def sleep(s):
        cpu.sleep_cycles(chip.cycles(float(s)))

    def ticks_ms():
        t = cpu.ticks_ms()
        cpu.native("ticks")
        return t & TICKS_MAX

    def ticks_us():
        t = cpu.ticks_us()
        cpu.native("ticks")
        return t & TICKS_MAX

    def ticks_cpu():
        cpu.sync()
        cpu.native("ticks")
        return chip.now & TICKS_MAX

    def time_s():
        # The date clock machine.RTC sets (Chip.rtc_s: 2021-01-01 at power-up and hard reset)
        cpu.sync()
        cpu.native("ticks")
        return chip.rtc_s()

    return _module(
        "time",
        ticks_ms=ticks_ms,
        ticks_us=ticks_us,
        ticks_cpu=ticks_cpu,
        ticks_diff=_ticks_diff,
        ticks_add=_ticks_add,
        sleep=sleep,
        sleep_ms=sleep_ms,
        sleep_us=sleep_us,
        time=time_s,
        time_ns=lambda: chip.rtc_s() * 10**9 + chip.now * 10**9 // chip.sysclk_hz % 10**9,
        gmtime=lambda secs=None: _gmtime(chip.rtc_s() if secs is None else secs),
        localtime=lambda secs=None: _gmtime(chip.rtc_s() if secs is None else secs),
    )


def _gmtime(secs):
    import time as _t

    tm = _t.gmtime(secs)
    return (
        tm.tm_year,
        tm.tm_mon,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_wday,
        tm.tm_yday,
    )


def _make_micropython(chip: Chip) -> types.ModuleType:
    state = {"heap_locked": 0}

    def schedule(fn, arg):
        # mp_sched_schedule: queued at once (also from a hard handler); False when full.
        return chip.cpu.schedule(fn, arg)

    def heap_lock():
        state["heap_locked"] += 1
        return state["heap_locked"] - 1

    def kbd_intr(c):
        # micropython.kbd_intr: the character the USB CDC receive callback turns into a
        # KeyboardInterrupt (shared/tinyusb/mp_usbd_cdc.c: `data_char == mp_interrupt_char`);
        # -1: none, every byte goes to stdin.
        chip.interrupt_char = int(c)

    def heap_unlock():
        state["heap_locked"] = max(0, state["heap_locked"] - 1)
        return state["heap_locked"]

    return _module(
        "micropython",
        const=lambda x: x,
        native=lambda f: f,
        viper=lambda f: f,
        schedule=schedule,
        heap_lock=heap_lock,
        heap_unlock=heap_unlock,
        heap_locked=lambda: state["heap_locked"],
        alloc_emergency_exception_buf=lambda n: None,
        mem_info=lambda *a: None,
        opt_level=lambda *a: 0,
        kbd_intr=kbd_intr,
    )


def _print_exception(exc, file=None):
    import traceback

    out = file if file is not None else _pysys.stdout
    out.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


_MP_STREAM_POLL = 3
_MP_STREAM_CLOSE = 4
_POLL_RD = 0x0001
_POLL_WR = 0x0004
_MP_EINVAL = 22


class _StdinBuffer:
    """`sys.stdin.buffer` of the rp2 port (shared/runtime/sys_stdio_mphal.c): raw bytes from the
    USB CDC receive buffer. read/readinto block until every byte asked for has arrived (the
    port's stdio_buffer_read loops on mp_hal_stdin_rx_chr); ioctl(MP_STREAM_POLL) reports
    readable while the buffer holds a byte and writable always (mp_hal_stdio_poll), so
    `select.poll` and asyncio wait on it as on the board. `rx` is the unit's receive buffer
    (SimulatedUnit.send fills it)."""

    def __init__(self, rx: bytearray, cpu: Cpu, console):
        self._rx = rx
        self._cpu = cpu
        self._console = console

    def _take(self, n: int) -> bytes:
        while len(self._rx) < n:
            self._cpu.idle(1000)  # mp_hal_stdin_rx_chr waits for the USB interrupt
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out

    def read(self, n: int = 1) -> bytes:
        return self._take(int(n))

    def readinto(self, buf) -> int:
        n = len(buf)
        buf[:n] = self._take(n)
        return n

    def write(self, b) -> int:
        self._console.write(bytes(b).decode("utf-8", errors="replace"))
        return len(b)

    def ioctl(self, req: int, arg: int) -> int:
        if req == _MP_STREAM_POLL:
            ret = arg & _POLL_WR
            if self._rx:
                ret |= arg & _POLL_RD
            return ret
        if req == _MP_STREAM_CLOSE:
            return 0
        raise OSError(_MP_EINVAL)


class _Stdin(_StdinBuffer):
    """`sys.stdin`: the same bytes as text, CR read as LF (the port's stdio_read)."""

    def __init__(self, rx: bytearray, cpu: Cpu, console):
        super().__init__(rx, cpu, console)
        self.buffer = _StdinBuffer(rx, cpu, console)

    def read(self, n: int = 1) -> str:  # type: ignore[override]
        return self._take(int(n)).replace(b"\r", b"\n").decode("utf-8", errors="replace")

    def readinto(self, buf) -> int:
        n = len(buf)
        buf[:n] = self._take(n).replace(b"\r", b"\n")
        return n


def _make_sys(console, cpu: Cpu | None = None, rx: bytearray | None = None) -> types.ModuleType:
    impl = types.SimpleNamespace(
        name="micropython", version=(1, 29, 0, ""), _machine="sim", _mpy=0
    )
    return _module(
        "sys",
        implementation=impl,
        platform="rp2",
        version="3.4.0; MicroPython v1.29.0 (simulated)",
        byteorder="little",
        maxsize=(1 << 31) - 1,
        print_exception=lambda exc, file=None: _print_exception(exc, file or console),
        stdout=console,
        stderr=console,
        stdin=_Stdin(rx, cpu, console) if cpu is not None and rx is not None else _pyio.StringIO(),
        exit=_pysys.exit,
        path=["", "/lib"],
        argv=[],
    )


def _make_gc(chip: Chip) -> types.ModuleType:
    def collect():
        # A full collection: 14.8-15.2 ms on the port with a session's heap in use
        # (CALIBRATION.md); interrupts keep running, callbacks wait.
        chip.cpu.sync()
        chip.cpu.work(chip.cpu.native_cycles_of("gc_collect"))
        return None

    return _module(
        "gc",
        collect=collect,
        enable=lambda: None,
        disable=lambda: None,
        isenabled=lambda: True,
        mem_free=lambda: 180_000,
        mem_alloc=lambda: 20_000,
        threshold=lambda *a: -1,
    )


def build_modules(
    chip: Chip, fs, console, rx: bytearray | None = None
) -> dict[str, types.ModuleType]:
    """The MicroPython-side modules for one boot of the chip (rebuilt after every reset)."""
    cpu = chip.cpu
    cpu.console = console

    def bound(cls):
        return type(
            cls.__name__,
            (cls,),
            {
                "_chip_for_class": chip,
                "_gen_for_class": chip.generation,
                "__module__": cls.__module__,
            },
        )

    gen = chip.generation
    PinC = bound(Pin)

    def disable_irq():
        chip.irq_disabled += 1
        return 1

    def enable_irq(state=1):
        chip.enable_irq()

    def freq(hz=None):
        if hz is None:
            return chip.freq_hz
        if int(hz) == chip.sysclk_hz:
            # set_sys_clock_khz (ports/rp2/modmachine.c): from the boot clock to the one the
            # chip is simulated at, or the PLL left as it is.
            cpu.native("timer_init")
            chip.freq_hz = chip.sysclk_hz
            return None
        # The simulated chip runs at the clock it was built with (a board's sysclk_hz): any
        # other (PLL re-lock, flash divider, every peripheral's clock) is not modelled.
        raise NotImplementedError("changing machine.freq() is not modelled")

    def lightsleep(time_ms=None):
        cpu.lightsleep(time_ms)

    def reset():
        # machine.reset() reboots through the watchdog, so reset_cause() reads WDT_RESET after it.
        chip.hard_reset(port_math.WDT_RESET)

    def soft_reset():
        raise SystemExit("soft reset")

    machine = _module(
        "machine",
        Pin=PinC,
        PWM=bound(PWM),
        ADC=bound(ADC),
        Timer=bound(Timer),
        WDT=bound(WDT),
        RTC=bound(RTC),
        mem32=_Mem32(chip, gen),
        freq=freq,
        reset=reset,
        soft_reset=soft_reset,
        reset_cause=lambda: chip.reset_cause,
        unique_id=lambda: b"\xe6\x61\x38\x52\x83\x5b\x2c\x2a",
        disable_irq=disable_irq,
        enable_irq=enable_irq,
        idle=lambda: cpu.idle(None),
        lightsleep=lightsleep,
        PWRON_RESET=port_math.PWRON_RESET,
        WDT_RESET=port_math.WDT_RESET,
    )
    PinC.__module__ = "machine"
    rp2 = _module(
        "rp2",
        PIO=bound(PIO),
        StateMachine=bound(StateMachine),
        asm_pio=pioasm.asm_pio,
        asm_pio_encode=pioasm.asm_pio_encode,
        PIOASMError=pioasm.PIOASMError,
    )
    os_mod = fs.os_module()
    return {
        "machine": machine,
        "rp2": rp2,
        "time": _make_time(cpu),
        "micropython": _make_micropython(chip),
        "sys": _make_sys(console, cpu, rx),
        "os": os_mod,
        "gc": _make_gc(chip),
        "_cpu": _module("_cpu", cpu=cpu),
    }

"""Simulated `machine` for the MicroPython VM: the parts of the rp2 port's module the firmware
uses, with the port's argument handling (names, keyword-only arguments, value ranges) and state
a test or a virtual board can read: pin levels and functions, PWM settings, ADC inputs.

Pins remember their level and who drives them ("sio", "pwm", "pio0", "pio1", "null"), as
the RP2040's GPIO function select does; a PWM or a state machine that stops leaves the pin
where it was. ADC inputs read `adc_u16[channel]` and a pin set in `external` reads that level
(a pressed button: 0), both set by the test or the virtual board.
"""

import _sim
from micropython import const

_NUM_GPIO = const(30)

levels = bytearray(_NUM_GPIO)  # level per GPIO: driven, or pulled for an undriven input
external = [None] * _NUM_GPIO  # what the outside world drives onto a pin (e.g. a button), if any
funcs = ["null"] * _NUM_GPIO  # GPIO function select
pulls = [None] * _NUM_GPIO
adc_u16 = [0] * 5  # what each ADC channel reads (channel 4: temperature sensor)
pwm_slices = [None] * 8  # [top, div16, freq_set] per slice once configured
pwm_duty = [None] * 16  # per slice channel: duty_u16 or None

PWRON_RESET = const(1)
WDT_RESET = const(3)
_reset_cause = PWRON_RESET


def _gpio(pin):
    if isinstance(pin, Pin):
        return pin._id
    if isinstance(pin, str):
        if pin == "LED":
            return 25
        if pin.startswith("GP") and pin[2:].isdigit():
            pin = int(pin[2:])
        else:
            raise ValueError("unknown named pin")
    if not isinstance(pin, int) or isinstance(pin, bool):
        raise TypeError("expecting a Pin or int")
    if not 0 <= pin < _NUM_GPIO:
        raise ValueError("invalid pin")
    return pin


class Pin:
    IN = const(0)
    OUT = const(1)
    OPEN_DRAIN = const(2)
    ALT = const(3)
    PULL_UP = const(1)
    PULL_DOWN = const(2)
    IRQ_FALLING = const(4)
    IRQ_RISING = const(8)
    ALT_PWM = const(4)
    ALT_PIO0 = const(6)
    ALT_PIO1 = const(7)

    def __new__(cls, id, *args, **kw):
        # The port returns its static object for the GPIO (machine_pin_obj_table): making a
        # Pin takes no heap on the device, so none here either (the objects exist beforehand).
        return _PINS[_gpio(id)]

    def __init__(self, id, mode=-1, pull=-1, *, value=None, alt=-1):
        self._id = _gpio(id)
        if mode != -1 or pull != -1 or value is not None or alt != -1:
            self.init(mode, pull, value=value, alt=alt)

    def init(self, mode=-1, pull=-1, *, value=None, alt=-1):
        n = self._id
        # The port writes the level before making the pad an output: no glitch.
        if value is not None:
            levels[n] = 1 if value else 0
        if mode in (Pin.IN, Pin.OUT, Pin.OPEN_DRAIN):
            funcs[n] = "sio"
        elif mode == Pin.ALT:
            funcs[n] = {Pin.ALT_PWM: "pwm", Pin.ALT_PIO0: "pio0", Pin.ALT_PIO1: "pio1"}[alt]
        elif mode != -1:
            raise ValueError("invalid pin mode")
        if pull != -1:
            pulls[n] = pull
            if mode == Pin.IN:
                levels[n] = 1 if pull == Pin.PULL_UP else 0

    def value(self, v=None):
        if v is None:
            x = external[self._id]
            return levels[self._id] if x is None else x
        levels[self._id] = 1 if v else 0

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        levels[self._id] = 1

    def off(self):
        levels[self._id] = 0

    def high(self):
        levels[self._id] = 1

    def low(self):
        levels[self._id] = 0

    def toggle(self):
        levels[self._id] ^= 1

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, hard=False):
        self._irq = (handler, trigger, hard)

    def __repr__(self):
        return "Pin(GPIO%d)" % self._id


def _static_pin(n):
    p = object.__new__(Pin)
    p._id = n
    return p


_PINS = [_static_pin(n) for n in range(_NUM_GPIO)]


class PWM:
    def __new__(cls, dest, **kw):
        # Static objects on the port too (one per slice channel), made beforehand here.
        pin = _gpio(dest)
        return _PWMS[((pin >> 1) & 7) * 2 + (pin & 1)]

    # As machine_pwm.c: -1 (VALUE_NOT_SET) is an argument left out; a duty_u16 and a duty_ns
    # are both applied, in that order.
    def __init__(self, dest, *, freq=-1, duty_u16=-1, duty_ns=-1, invert=-1):
        self._pin = _gpio(dest)
        self._slice = (self._pin >> 1) & 7
        self._ch = self._slice * 2 + (self._pin & 1)
        pwm_duty[self._ch] = None
        self.init(freq=freq, duty_u16=duty_u16, duty_ns=duty_ns, invert=invert)
        funcs[self._pin] = "pwm"

    def init(self, *, freq=-1, duty_u16=-1, duty_ns=-1, invert=-1):
        if freq != -1:
            self.freq(freq)
        if duty_u16 != -1:
            self.duty_u16(duty_u16)
        if duty_ns != -1:
            self.duty_ns(duty_ns)

    def freq(self, value=None):
        sl = pwm_slices[self._slice]
        if value is None:
            return sl[0] if sl else 0
        if not 8 <= value <= _sim.SYSCLK_HZ // 2:
            raise ValueError("freq too small" if value < 8 else "freq too large")
        pwm_slices[self._slice] = [value]

    def duty_u16(self, value=None):
        if value is None:
            d = pwm_duty[self._ch]
            return d if d is not None else 0
        pwm_duty[self._ch] = min(65535, max(0, value))

    def duty_ns(self, value=None):
        sl = pwm_slices[self._slice]
        if value is None:
            d = pwm_duty[self._ch]
            return 0 if d is None or not sl else d * 1_000_000_000 // (65535 * sl[0])
        pwm_duty[self._ch] = min(65535, value * 65535 * sl[0] // 1_000_000_000) if sl else 0

    def deinit(self):
        pwm_slices[self._slice] = None


def _static_pwm(ch):
    p = object.__new__(PWM)
    p._pin = p._slice = p._ch = ch
    return p


_PWMS = [_static_pwm(ch) for ch in range(16)]


class ADC:
    CORE_TEMP = const(4)

    def __init__(self, id):
        if isinstance(id, int) and not isinstance(id, bool) and 0 <= id <= 4:
            self._channel = id
            return
        n = _gpio(id)
        if not 26 <= n <= 29:
            raise ValueError("Pin doesn't have ADC capabilities")
        self._channel = n - 26
        funcs[n] = "null"
        pulls[n] = None

    def read_u16(self):
        return adc_u16[self._channel]


class Timer:
    ONE_SHOT = const(0)
    PERIODIC = const(1)

    def __init__(
        self, id=-1, *, mode=PERIODIC, period=-1, freq=-1, tick_hz=1000, callback=None, hard=False
    ):
        if id != -1:
            raise ValueError("Timer doesn't exist")
        self._due_us = 0
        if period != -1 or freq != -1:
            self.init(
                mode=mode, period=period, freq=freq, tick_hz=tick_hz, callback=callback, hard=hard
            )

    def init(self, *, mode=PERIODIC, period=-1, freq=-1, tick_hz=1000, callback=None, hard=False):
        self.deinit()
        if freq != -1:
            delta_us = 1_000_000 // freq
        elif period != -1:
            delta_us = period * 1_000_000 // tick_hz
        else:
            raise ValueError("period or freq required")
        if delta_us <= 0:
            raise ValueError("period too short")
        self._mode, self._cb, self._hard, self._delta_us = mode, callback, hard, delta_us
        self._due_us = _sim.total_us() + delta_us
        _sim.timers.append(self)

    def _fire(self):
        if self._mode == Timer.PERIODIC:
            self._due_us += self._delta_us  # from the last deadline: periodic timers never drift
        else:
            self.deinit()
        if self._cb is not None and not _sim.call_irq(self._cb, self, self._hard):
            self.deinit()

    def deinit(self):
        if self in _sim.timers:
            _sim.timers.remove(self)


class WDT:
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError("WDT doesn't exist")
        if not 0 <= timeout <= 8388:
            raise ValueError("timeout exceeds 8388")
        self.timeout_ms = timeout
        self.feed()

    def feed(self):
        self.fed_ms = _sim.ms


_SIO_GPIO_IN = const(0xD0000004)


class _Mem32:
    """machine.mem32 over a plain register file; rp2's StateMachine keeps the PC registers.
    SIO GPIO_IN reads every pad's input level, as Pin.value() does for one."""

    def __getitem__(self, addr):
        if addr == _SIO_GPIO_IN:
            v = 0
            for n in range(_NUM_GPIO):
                x = external[n]
                if levels[n] if x is None else x:
                    v |= 1 << n
            return v
        return _sim.pio_mem.get(addr, 0)

    def __setitem__(self, addr, value):
        _sim.pio_mem[addr] = value


mem32 = _Mem32()


class RTC:
    """The date clock (ports/rp2/machine_rtc.c): the always-on timer time.time() reads. The
    port's constructor takes no argument; datetime() reads (year, month, mday, weekday (Monday
    0), hours, minutes, seconds, 0), or sets from such an 8-tuple, ignoring weekday and
    subseconds and rolling over out-of-range fields as timeutils_seconds_since_epoch does."""

    def __init__(self, id=0):
        pass

    def datetime(self, datetimetuple=None):
        import time

        if datetimetuple is None:
            t = time.gmtime(time.time())
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        if len(datetimetuple) != 8:
            raise ValueError("requested length 8 but object has length %d" % len(datetimetuple))
        d = datetimetuple
        time._rtc_set(time.mktime((d[0], d[1], d[2], d[4], d[5], d[6], 0, 0)))


def freq(hz=None):
    if hz is None:
        return _sim.SYSCLK_HZ
    # The port re-locks the PLL (set_sys_clock_khz) or raises "cannot change frequency"; the
    # VM keeps no real clock, only the figure the other fakes compute dividers from.
    if not 48_000_000 <= hz <= 250_000_000 or hz % 1000:
        raise ValueError("cannot change frequency")
    _sim.SYSCLK_HZ = hz


def reset_cause():
    return _reset_cause


def unique_id():
    return b"\xe6\x61\x38\x52\x83\x5b\x2c\x2a"


def disable_irq():
    return 1


def enable_irq(state):
    pass


def idle():
    _sim.advance_us(1000)


def lightsleep(time_ms=None):
    """The clock moves on by the sleep, or until the host's bytes arrive on the virtual board
    (the port keeps the USB clock while a host has the device configured, and its interrupt
    ends the sleep). Pin interrupts do not end it here: nothing presses the VM's buttons."""
    if time_ms is None:
        raise ValueError("lightsleep() without a time (DORMANT) is not simulated")
    _sim.advance_us(time_ms * 1000, True)


def reset():
    raise SystemExit("machine.reset()")


def soft_reset():
    raise SystemExit("soft reset")

"""The arithmetic and constants of MicroPython's rp2 port, as pure functions.

Every function reproduces the C code it names line by line: unsigned 32-bit wrap-around where the
C uses `uint32_t`, 64-bit where it casts to `uint64_t`, truncating division, the same exception
types and messages. Behaviour that is not arithmetic (pin function switching, IRQ flag clearing,
deinit effects, reset causes, timer re-arming) is described in PORT_NOTES.md next to this file.

Sources read (micropython/micropython, newest version the reference index holds; 1.29 itself was
not available, see PORT_NOTES.md "Versions"):
  ports/rp2/machine_pwm.c @7663f86, machine_adc.c @d758616, machine_timer.c @3924219,
  machine_wdt.c (include-file version with WDT_TIMEOUT_MAX), machine_pin.c @ff23d9e,
  mphalport.h @048868c, rp2_pio.c (NUM_PIOS / gpio_base version), modmachine.c (MP_NORETURN
  version), mpconfigport.h @c3f7e72, extmod/machine_pwm.c, extmod/machine_wdt.c;
  pico-sdk hardware_watchdog/watchdog.c @8c6bb01, hardware/pio.h, pico_time/time.c, stdlib.c.

C behaviour that is undefined (division by zero, float -> integer conversion of a negative or
infinite value) has no Python equivalent on the device; these functions raise ZeroDivisionError or
ValueError there and say so, rather than inventing a result.
"""

from __future__ import annotations

import struct
from array import array
from fractions import Fraction

_U32 = 0xFFFF_FFFF
_U64 = 0xFFFF_FFFF_FFFF_FFFF


def _u32(x: int) -> int:
    return x & _U32


def _u64(x: int) -> int:
    return x & _U64


def _c_div(a: int, b: int) -> int:
    """C signed division: truncates toward zero."""
    if b == 0:
        raise ZeroDivisionError("division by zero (undefined behaviour in the C code)")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _udiv(a: int, b: int) -> int:
    """C unsigned division of already-wrapped operands."""
    if b == 0:
        raise ZeroDivisionError("division by zero (undefined behaviour in the C code)")
    return a // b


def mp_obj_get_int(x) -> int:
    """`mp_obj_get_int()` on a 32-bit port (mp_int_t is intptr_t, mpconfigport.h).

    Accepts int (and bool, which MicroPython converts to 0/1); anything else raises TypeError as
    MicroPython does ("can't convert float to int"); ints outside int32 raise OverflowError
    ("overflow converting long int to machine word", py/objint_mpz.c).
    """
    if isinstance(x, bool):
        return int(x)
    if not isinstance(x, int):
        raise TypeError(f"can't convert {type(x).__name__} to int")
    if not -(1 << 31) <= x < (1 << 31):
        raise OverflowError("overflow converting long int to machine word")
    return x


def mp_obj_get_int_truncated(x) -> int:
    """`mp_obj_get_int_truncated()`: low 32 bits of any int, as the uint32_t the caller stores."""
    if isinstance(x, bool):
        return int(x)
    if not isinstance(x, int):
        raise TypeError(f"can't convert {type(x).__name__} to int")
    return _u32(x)


def f32(x: float) -> float:
    """Round a Python float to IEEE single precision (MICROPY_FLOAT_IMPL_FLOAT on rp2)."""
    try:
        return struct.unpack("<f", struct.pack("<f", float(x)))[0]
    except OverflowError:
        return float("inf") if x > 0 else float("-inf")


# =============================================================================================
# machine.Pin  (ports/rp2/machine_pin.c, machine_pin.h, mphalport.h; pico-sdk hardware/gpio.h)
# =============================================================================================

# machine_pin.h: enum { MACHINE_PIN_MODE_IN = 0, _OUT = 1, _OPEN_DRAIN = 2, _ALT = 3, _ANALOG = 4 }
PIN_IN = 0
PIN_OUT = 1
PIN_OPEN_DRAIN = 2
PIN_ALT = 3
PIN_MODE_ANALOG = 4  # internal (external ADC pins only); not a Pin class constant

# machine_pin.c: "#define GPIO_PULL_UP (1)", "#define GPIO_PULL_DOWN (2)" -- "These can be or'd".
PIN_PULL_UP = 1
PIN_PULL_DOWN = 2

# pico-sdk enum gpio_irq_level; machine_pin.c exports only IRQ_RISING / IRQ_FALLING:
#   { MP_QSTR_IRQ_RISING, MP_ROM_INT(GPIO_IRQ_EDGE_RISE) }, { MP_QSTR_IRQ_FALLING, ...EDGE_FALL }
PIN_IRQ_LEVEL_LOW = 0x1  # usable as a raw trigger value, no Pin constant
PIN_IRQ_LEVEL_HIGH = 0x2  # idem
PIN_IRQ_FALLING = 0x4
PIN_IRQ_RISING = 0x8
PIN_IRQ_ALL = 0xF  # machine_pin.c "#define GPIO_IRQ_ALL (0xf)"
# machine_pin_irq(): { MP_QSTR_trigger, ..., {.u_int = MP_HAL_PIN_TRIGGER_FALL | ..._RISE} }
PIN_IRQ_DEFAULT_TRIGGER = PIN_IRQ_FALLING | PIN_IRQ_RISING

# RP2040 GPIO_FUNC_* (pico-sdk hardware/gpio.h) = the Pin.ALT_* constants of machine_pin.c.
GPIO_FUNC_XIP = 0
GPIO_FUNC_SPI = 1
GPIO_FUNC_UART = 2
GPIO_FUNC_I2C = 3
GPIO_FUNC_PWM = 4
GPIO_FUNC_SIO = 5
GPIO_FUNC_PIO0 = 6
GPIO_FUNC_PIO1 = 7
GPIO_FUNC_GPCK = 8
GPIO_FUNC_USB = 9
GPIO_FUNC_NULL = 0x1F
PIN_ALT_SPI = GPIO_FUNC_SPI
PIN_ALT_UART = GPIO_FUNC_UART
PIN_ALT_I2C = GPIO_FUNC_I2C
PIN_ALT_PWM = GPIO_FUNC_PWM
PIN_ALT_SIO = GPIO_FUNC_SIO
PIN_ALT_PIO0 = GPIO_FUNC_PIO0
PIN_ALT_PIO1 = GPIO_FUNC_PIO1
PIN_ALT_GPCK = GPIO_FUNC_GPCK
PIN_ALT_USB = GPIO_FUNC_USB

NUM_BANK0_GPIOS_RP2040 = 30


def pin_find(pin_id, num_gpios: int = NUM_BANK0_GPIOS_RP2040) -> int:
    """`machine_pin_find()` for an integer id (machine_pin.c).

        } else if (mp_obj_is_int(pin)) {
            int wanted_pin = mp_obj_get_int(pin);
            if (0 <= wanted_pin && wanted_pin < MP_ARRAY_SIZE(machine_pin_obj_table)) {
                return &machine_pin_obj_table[wanted_pin];
        ...
        mp_raise_ValueError("invalid pin");

    bool is not an int for `mp_obj_is_int`, so True/False also give "invalid pin". Named pins
    (strings) are board-specific and not modelled here.
    """
    if isinstance(pin_id, bool) or not isinstance(pin_id, int):
        raise ValueError("invalid pin")
    if 0 <= pin_id < num_gpios:
        return pin_id
    raise ValueError("invalid pin")


def pin_init_ops(mode=None, pull=None, value=None, alt=GPIO_FUNC_SIO, pin_afs=None):
    """Register operations of `Pin(n, mode, pull, *, value, alt)` / `Pin.init(...)`, in order.

    machine_pin.c machine_pin_obj_init_helper() with mphalport.h inlined:

        if (args[ARG_value].u_obj != mp_const_none) value = mp_obj_is_true(...);
        if (args[ARG_mode].u_obj != mp_const_none) {
            if (mode == MACHINE_PIN_MODE_IN)  mp_hal_pin_input(id);
                  -> gpio_set_dir(IN); od_mask &= ~bit; gpio_set_function(SIO)
            else if (mode == MACHINE_PIN_MODE_OUT) {
                if (value != -1) gpio_put(self->id, value);   // "set initial output value
                mp_hal_pin_output(id);                        //  before configuring mode"
                  -> gpio_set_dir(OUT); od_mask &= ~bit; gpio_set_function(SIO)
            } else if (mode == MACHINE_PIN_MODE_OPEN_DRAIN)
                mp_hal_pin_open_drain_with_value(id, value == -1 ? 1 : value);
                  -> v ? (gpio_set_dir(IN), gpio_put(0)) : (gpio_put(0), gpio_set_dir(OUT));
                     od_mask |= bit; gpio_set_function(SIO)
            else {  // any other mode value, incl. Pin.ALT
                if (machine_pin_find_alt(self, af) == NULL) -> ValueError("invalid pin af: %d")
                gpio_set_function(self->id, af); od_mask &= ~bit;
            }
        }
        // Configure pull (unconditionally because None means no-pull).
        gpio_set_pulls(self->id, pull & GPIO_PULL_UP, pull & GPIO_PULL_DOWN);

    Returns a list of tuples: ("put", v), ("dir", PIN_IN|PIN_OUT), ("od", bool),
    ("func", GPIO_FUNC_x), ("pulls", up: bool, down: bool). `pin_afs` is the set of alternate
    function numbers the pin's AF table lists (None = do not check). Note `Pin(n)` with no other
    argument does NOT call this at all (mp_pin_make_new: "if (n_args > 1 || n_kw > 0)").
    """
    ops: list[tuple] = []
    v = -1 if value is None else (1 if value else 0)
    if mode is not None:
        m = mp_obj_get_int(mode)
        if m == PIN_IN:
            ops += [("dir", PIN_IN), ("od", False), ("func", GPIO_FUNC_SIO)]
        elif m == PIN_OUT:
            if v != -1:
                ops.append(("put", v))
            ops += [("dir", PIN_OUT), ("od", False), ("func", GPIO_FUNC_SIO)]
        elif m == PIN_OPEN_DRAIN:
            if v == -1 or v:
                ops += [("dir", PIN_IN), ("put", 0)]
            else:
                ops += [("put", 0), ("dir", PIN_OUT)]
            ops += [("od", True), ("func", GPIO_FUNC_SIO)]
        else:
            af = _u32(mp_obj_get_int(alt))  # mp_uint_t af = args[ARG_alt].u_int
            # machine_pin_find_alt(self, af) takes a uint8_t fn
            if pin_afs is not None and (af & 0xFF) not in pin_afs:
                raise ValueError(f"invalid pin af: {mp_obj_get_int(alt)}")
            ops += [("func", af), ("od", False)]
    p = 0 if pull is None else mp_obj_get_int(pull)
    ops.append(("pulls", bool(p & PIN_PULL_UP), bool(p & PIN_PULL_DOWN)))
    return ops


def pin_irq_flags(raw_events: int, trigger: int) -> int:
    """What a pin's irq().flags() holds after the bank IRQ handler saw `raw_events` on it.

    machine_pin.c gpio_irq():
        gpio_acknowledge_irq(gpio, intr & 0xf);
        if (irq != NULL && (intr & irq->trigger)) {
            irq->flags = intr & irq->trigger;
            mp_irq_handler(&irq->base);
    0 means the handler is not called. `raw_events` is the 4-bit raw INTR nibble of the pin
    (latched edges since the last acknowledge plus the current level bits).
    """
    return raw_events & 0xF & trigger


# =============================================================================================
# machine.PWM  (ports/rp2/machine_pwm.c, included from extmod/machine_pwm.c)
# =============================================================================================

PWM_TOP_MAX = 65534  # "#define TOP_MAX 65534" -- "to be able to achieve 100% duty with 65535"
PWM_NUM_SLICES_RP2040 = 8


def pwm_gpio_to_slice_channel(gpio: int) -> tuple[int, int]:
    """pico-sdk pwm_gpio_to_slice_num / pwm_gpio_to_channel on RP2040:
    `(gpio >> 1u) & 7u` and `gpio & 1u`. GPIO n and n+16 share one slice channel, hence the same
    static machine_pwm_obj (machine_pwm.c: `&machine_pwm_obj[slice * 2 + channel]`)."""
    return (gpio >> 1) & 7, gpio & 1


def pwm_get_slice_hz(sysclk_hz: int, offset: int, div16: int) -> int:
    """machine_pwm.c get_slice_hz(): floor((16*F + offset) / div16).

    if (source_hz + offset / 16 > 268000000) {
        return (16 * (uint64_t)source_hz + offset) / div16;
    } else {
        return (16 * source_hz + offset) / div16;      // uint32_t arithmetic
    """
    src, offset, div16 = _u32(sysclk_hz), _u32(offset), _u32(div16)
    if _u32(src + offset // 16) > 268_000_000:
        return _u32(_udiv(16 * src + offset, div16))
    return _u32(_udiv(_u32(16 * src + offset), div16))


def pwm_get_slice_hz_round(sysclk_hz: int, div16: int) -> int:
    """machine_pwm.c get_slice_hz_round(): `return get_slice_hz(div16 / 2, div16);`"""
    div16 = _u32(div16)
    return pwm_get_slice_hz(sysclk_hz, div16 // 2, div16)


def pwm_get_slice_hz_ceil(sysclk_hz: int, div16: int) -> int:
    """machine_pwm.c get_slice_hz_ceil(): `return get_slice_hz(div16 - 1, div16);`"""
    div16 = _u32(div16)
    return pwm_get_slice_hz(sysclk_hz, _u32(div16 - 1), div16)


def pwm_freq_to_top_div(sysclk_hz: int, freq_hz) -> tuple[int, int]:
    """(TOP, DIV) written by `PWM.freq(f)` -- machine_pwm.c mp_machine_pwm_freq_set().

        if ((source_hz + freq / 2) / freq < TOP_MAX) {
            div16 = 16;
            top = (source_hz + freq / 2) / freq - 1;
        } else {
            div16 = get_slice_hz_ceil(TOP_MAX * freq);
            top = get_slice_hz_round(div16 * freq) - 1;
        }
        if (div16 < 16) mp_raise_ValueError("freq too large");
        else if (div16 >= 256 * 16) mp_raise_ValueError("freq too small");
        pwm_hw->slice[..].div = div16;  pwm_hw->slice[..].top = top;

    div16 is the 8.4 fixed-point divider (DIV register: INT in bits 11:4, FRAC in 3:0); TOP is
    returned as the 16-bit register keeps it. At 125 MHz the lowest accepted frequency is 8 Hz
    (7 Hz -> "freq too small"). There is no upper check that triggers in practice: freq above
    2*sysclk makes `top` -1, i.e. TOP=0xFFFF, div 1 (about 1907 Hz at 125 MHz) without error;
    a negative freq does the same. freq=0 divides by zero in C (ZeroDivisionError here).
    """
    freq = mp_obj_get_int(freq_hz)  # mp_int_t freq = mp_obj_get_int(args[1])
    src = _u32(sysclk_hz)
    if freq == 0:
        raise ZeroDivisionError("PWM freq 0: division by zero in mp_machine_pwm_freq_set (C UB)")
    ufreq = _u32(freq)
    q = _u32(src + _c_div(freq, 2)) // ufreq
    if q < PWM_TOP_MAX:
        div16 = 16
        top = _u32(q - 1)
    else:
        div16 = pwm_get_slice_hz_ceil(src, _u32(PWM_TOP_MAX * freq))
        top = _u32(pwm_get_slice_hz_round(src, _u32(div16 * ufreq)) - 1)
    if div16 < 16:
        raise ValueError("freq too large")
    elif div16 >= 256 * 16:
        raise ValueError("freq too small")
    return top & 0xFFFF, div16 & 0xFFF


def pwm_get_freq(sysclk_hz: int, top: int, div16: int) -> int:
    """`PWM.freq()` -- machine_pwm.c mp_machine_pwm_freq_get() once the slice frequency was set:

        uint32_t pwm_freq = get_slice_hz_round(div16 * (top + 1));

    (If no freq was ever set on the slice since boot / soft reset, `slice_freq_set[slice]` is
    false and the getter returns 0 without reading the registers.)
    """
    return pwm_get_slice_hz_round(sysclk_hz, _u32(div16 * (top + 1)))


def pwm_duty_u16_to_cc(duty_u16, top: int) -> int:
    """CC level written by `PWM.duty_u16(d)` -- mp_machine_pwm_duty_set_u16():

        if (duty_u16 > 65535) duty_u16 = 65535;            // clamped, no error
        uint32_t cc = (duty_u16 * (top + 1) + 65535 / 2) / 65535;
        pwm_set_chan_level(self->slice, self->channel, cc); // uint16_t level parameter

    Negative values are not rejected: they wrap as uint32_t (and the level to 16 bits). The value
    the port remembers for later re-application is the clamped duty_u16.
    """
    d = mp_obj_get_int(duty_u16)
    if d > 65535:
        d = 65535
    cc = _u32(_u32(_u32(d) * _u32(top + 1)) + 65535 // 2) // 65535
    return cc & 0xFFFF


def pwm_duty_u16_clamp(duty_u16) -> int:
    """The duty_u16 value the port stores in `self->duty` (after the > 65535 clamp)."""
    d = mp_obj_get_int(duty_u16)
    return 65535 if d > 65535 else d


def pwm_cc_to_duty_u16(cc: int, top: int) -> int:
    """`PWM.duty_u16()` -- mp_machine_pwm_duty_get_u16() (rounding, not flooring):

        return (cc * 65535 + (top + 1) / 2) / (top + 1);

    (Returns 0 instead if this channel's duty or the slice freq was never set.)
    """
    t1 = _u32(top + 1)
    return _u32(_u32(_u32(cc) * 65535) + t1 // 2) // t1


def pwm_duty_ns_to_cc(duty_ns, sysclk_hz: int, div16: int, top: int | None = None) -> int:
    """CC level written by `PWM.duty_ns(ns)` -- mp_machine_pwm_duty_set_ns():

        uint32_t slice_hz = get_slice_hz_round(pwm_hw->slice[self->slice].div);
        uint32_t cc = ((uint64_t)duty_ns * slice_hz + 500000000ULL) / 1000000000ULL;
        uint32_t top = pwm_hw->slice[self->slice].top;
        if (cc > (top + 1)) cc = top + 1;                    // clamped, no error
        pwm_set_chan_level(self->slice, self->channel, cc);

    Pass `top` to get the port's clamp (without it the unclamped value is returned). A negative
    duty_ns is sign-extended to uint64_t and the product wraps: -1 ns gives CC 0, -1000 ns a
    huge value that the clamp turns into 100 %. No error either way.
    """
    d = mp_obj_get_int(duty_ns)
    slice_hz = pwm_get_slice_hz_round(sysclk_hz, div16)
    cc = _u32(_u64(_u64(_u64(d) * slice_hz) + 500_000_000) // 1_000_000_000)
    if top is not None and cc > _u32(top + 1):
        cc = _u32(top + 1)
    return cc & 0xFFFF


def pwm_cc_to_duty_ns(cc: int, sysclk_hz: int, div16: int) -> int:
    """`PWM.duty_ns()` -- mp_machine_pwm_duty_get_ns():

        uint32_t slice_hz = get_slice_hz_round(pwm_hw->slice[self->slice].div);
        return ((uint64_t)cc * 1000000000ULL + slice_hz / 2) / slice_hz;

    (Returns 0 instead if this channel's duty or the slice freq was never set.)
    """
    slice_hz = pwm_get_slice_hz_round(sysclk_hz, div16)
    return _udiv(_u64(_u32(cc) * 1_000_000_000 + slice_hz // 2), slice_hz)


def pwm_output_high(counter: int, cc: int, invert: bool) -> bool:
    """Level of a channel output for a counter value (RP2040 PWM, trailing-edge mode, which
    the port never changes): high while counter < CC, inverted when `invert` (CSR A_INV/B_INV,
    written by pwm_set_output_polarity() in machine_pwm_start()). CC > TOP means always high."""
    return (counter < cc) != bool(invert)


# =============================================================================================
# machine.ADC  (ports/rp2/machine_adc.c)
# =============================================================================================

ADC_CHANNEL_TEMPSENSOR = 4  # "#define ADC_CHANNEL_TEMPSENSOR (4)"; ADC.CORE_TEMP = 4
ADC_FIRST_GPIO = 26  # ADC_IS_VALID_GPIO(gpio) ((gpio) >= 26 && (gpio) <= 29)
ADC_LAST_GPIO = 29


def adc_raw12_to_u16(raw12: int) -> int:
    """`ADC.read_u16()` -- machine_adc.c adc_config_and_read_u16():

        const uint32_t bits = 12;
        // Scale raw reading to 16 bit value using a Taylor expansion (for 8 <= bits <= 16)
        return raw << (16 - bits) | raw >> (2 * bits - 16);    // returned as uint16_t

    i.e. (raw << 4) | (raw >> 8): 0 -> 0, 2048 -> 32776, 4095 -> 65535.
    """
    if not 0 <= raw12 <= 0xFFF:
        raise ValueError(f"adc_read() returns 12 bits; got {raw12!r}")
    return ((raw12 << 4) | (raw12 >> 8)) & 0xFFFF


def adc_channel_for(source, *, is_pin: bool = False, num_gpios: int = NUM_BANK0_GPIOS_RP2040):
    """`ADC(source)` -> (channel, gpio_to_init_or_None) -- machine_adc.c mp_machine_adc_make_new():

        if (mp_obj_is_int(source)) {
            channel = mp_obj_get_int(source);
            if (!(channel >= 0 && channel <= ADC_CHANNEL_TEMPSENSOR))
                channel = -1;        // "Not a valid ADC channel, fallback to searching for a pin."
        }
        if (channel == -1) {
            pin = machine_pin_find(source);              // may raise ValueError("invalid pin")
            if (!ADC_IS_VALID_GPIO(pin->id))
                mp_raise_ValueError("Pin doesn't have ADC capabilities");
        }
        ... if (pin) { adc_gpio_init(pin->id); channel = pin->id - 26; }
            else if (channel == 4) adc_set_temp_sensor_enabled(1);

    So ADC(0..3) selects the channel WITHOUT touching GPIO 26..29 (gpio None here), while
    ADC(26..29) and ADC(Pin(26..29)) run adc_gpio_init() on the pin. ADC(4) enables the
    temperature sensor. `is_pin=True` means `source` is the id of a Pin object.
    """
    if is_pin:
        gpio = source
    else:
        if isinstance(source, int) and not isinstance(source, bool):
            ch = mp_obj_get_int(source)
            if 0 <= ch <= ADC_CHANNEL_TEMPSENSOR:
                return ch, None
        gpio = pin_find(source, num_gpios)
    if not ADC_FIRST_GPIO <= gpio <= ADC_LAST_GPIO:
        raise ValueError("Pin doesn't have ADC capabilities")
    return gpio - ADC_FIRST_GPIO, gpio


# =============================================================================================
# machine.Timer  (ports/rp2/machine_timer.c; pico-sdk pico_time/time.c)
# =============================================================================================

TIMER_ONE_SHOT = 0  # "#define TIMER_MODE_ONE_SHOT (0)"
TIMER_PERIODIC = 1  # "#define TIMER_MODE_PERIODIC (1)"
TIMER_DEFAULT_PERIOD = -1  # {.u_int = 0xffffffff} stored in a 32-bit mp_int_t
TIMER_DEFAULT_TICK_HZ = 1000


def timer_delta_us(
    mode=TIMER_PERIODIC, period=TIMER_DEFAULT_PERIOD, freq=None, tick_hz=TIMER_DEFAULT_TICK_HZ
) -> int:
    """Alarm interval of `Timer(mode=, period=, freq=, tick_hz=)` -- machine_timer_init_helper():

        if (args[ARG_freq].u_obj != mp_const_none) {
            self->delta_us = (uint64_t)(MICROPY_FLOAT_CONST(1000000.0)
                                        / mp_obj_get_float(args[ARG_freq].u_obj));
        } else {
            self->delta_us = (uint64_t)args[ARG_period].u_int * 1000000 / args[ARG_tick_hz].u_int;
        }
        if (self->delta_us < 1) self->delta_us = 1;

    rp2 floats are single precision (MICROPY_FLOAT_IMPL_FLOAT), so the freq path divides in
    float32 and truncates. freq wins over period. `mode` does not affect the interval (any value
    other than 0 behaves as PERIODIC in alarm_callback). `freq=None` or `freq=-1` both mean "not
    given" here (the documented signature uses -1); the port itself would divide by an explicit
    -1. freq <= 0 (or so small that 1e6/freq >= 2**64) is undefined in C: ValueError here.
    period default 0xffffffff is -1 as mp_int_t and is sign-extended by the (uint64_t) cast;
    tick_hz=0 divides by zero in C (ZeroDivisionError here). Nothing in the port raises for
    these values on the device.
    """
    del mode  # no effect on the interval
    if freq is not None and not (
        isinstance(freq, int) and not isinstance(freq, bool) and freq == -1
    ):
        if not isinstance(freq, int | float):
            raise TypeError(f"can't convert {type(freq).__name__} to float")
        q = f32(f32(1_000_000.0) / f32(freq)) if f32(freq) != 0 else float("inf")
        if not q >= 0 or q >= 2.0**64:
            raise ValueError(
                "Timer freq must be > 0 and not tiny (float->uint64_t is undefined in C)"
            )
        delta = int(q)
    else:
        p = mp_obj_get_int(period)
        t = mp_obj_get_int(tick_hz)
        if t == 0:
            raise ZeroDivisionError("Timer tick_hz=0: division by zero (C UB)")
        delta = _u64(_u64(p) * 1_000_000) // _u64(t)
    return 1 if delta < 1 else delta


def timer_next_target_us(previous_target_us: int, delta_us: int) -> int:
    """When a PERIODIC Timer fires next. machine_timer.c alarm_callback() returns
    `-self->delta_us`; pico-sdk time.c alarm_pool_alarm_callback():

        if (repeat < 0 && pool->alarm_in_progress)
            add_alarm_under_lock(pool, delayed_by_us(target, (uint64_t)-repeat), ..., true, NULL);

    i.e. previous *target* + delta (not now + delta): no drift; late targets fire at once
    (create_if_past=true) until caught up. The first target is now + delta
    (alarm_pool_add_alarm_in_us).
    """
    return previous_target_us + delta_us


def timer_repr(mode: int, delta_us: int) -> str:
    """machine_timer_print() (stored version, before `hard=` was added):
    "Timer(mode=%q, tick_hz=1000000, period=%u)" with the >0xffffffff branch printing ms+"000"."""
    m = "ONE_SHOT" if mode == TIMER_ONE_SHOT else "PERIODIC"
    if delta_us <= 0xFFFFFFFF:
        p = str(delta_us)
    else:
        p = f"{_u32(delta_us // 1000)}000"
    return f"Timer(mode={m}, tick_hz=1000000, period={p})"


def timer_check_id(timer_id=-1) -> None:
    """machine_timer_make_new(): only the virtual timer -1 exists.
    `if (id != -1) mp_raise_ValueError(MP_ERROR_TEXT("Timer doesn't exist"));`"""
    if mp_obj_get_int(timer_id) != -1:
        raise ValueError("Timer doesn't exist")


# =============================================================================================
# machine.WDT  (ports/rp2/machine_wdt.c, extmod/machine_wdt.c; pico-sdk watchdog.c)
# =============================================================================================

WDT_MAX_TIMEOUT_MS = 8388  # "#define WDT_TIMEOUT_MAX 8388" -- "0xffffff / 2 / 1000"
WDT_MIN_TIMEOUT_MS = 0  # no lower check; 0 is accepted and reboots at once (see wdt_load_value)
WDT_TIMEOUT_ERROR = "timeout exceeds 8388"  # "timeout exceeds " MP_STRINGIFY(WDT_TIMEOUT_MAX)
WDT_DEFAULT_TIMEOUT_MS = 5000  # extmod: { MP_QSTR_timeout, MP_ARG_INT, {.u_int = 5000} }


def wdt_check(wdt_id=0, timeout_ms=WDT_DEFAULT_TIMEOUT_MS) -> int:
    """`WDT(id=0, timeout=5000)` argument checks -- mp_machine_wdt_make_new_instance():

        if (id != 0) mp_raise_msg_varg(&mp_type_ValueError, "WDT(%d) doesn't exist", id);
        uint32_t timeout = timeout_ms;
        if (timeout > WDT_TIMEOUT_MAX) mp_raise_ValueError("timeout exceeds 8388");
        watchdog_enable(timeout, false);

    Returns the timeout passed to watchdog_enable(). Negative timeouts wrap to a huge uint32_t
    and get the same "timeout exceeds" error.
    """
    i = mp_obj_get_int(wdt_id)
    if i != 0:
        raise ValueError(f"WDT({i}) doesn't exist")
    t = _u32(mp_obj_get_int(timeout_ms))
    if t > WDT_MAX_TIMEOUT_MS:
        raise ValueError(WDT_TIMEOUT_ERROR)
    return t


def wdt_load_value(timeout_ms: int) -> int | None:
    """pico-sdk _watchdog_enable() on RP2040 (WATCHDOG_XFACTOR 2, erratum RP2040-E1):

        if (!delay_ms) { hw_set_bits(&watchdog_hw->ctrl, WATCHDOG_CTRL_TRIGGER_BITS); }
        else { load_value = delay_ms * (1000 * WATCHDOG_XFACTOR);
               if (load_value > WATCHDOG_LOAD_BITS) load_value = WATCHDOG_LOAD_BITS; ...

    Returns the LOAD value (the counter drops 2 per microsecond, so the reset comes timeout_ms
    after the last feed), or None for timeout 0, which triggers a watchdog reset immediately.
    WDT.feed() is watchdog_update(): reload LOAD with this value.
    """
    if timeout_ms == 0:
        return None
    return min(_u32(timeout_ms * 2000), 0xFFFFFF)


# =============================================================================================
# machine.reset_cause(), machine.freq()  (ports/rp2/modmachine.c)
# =============================================================================================

PWRON_RESET = 1  # "#define RP2_RESET_PWRON (1)"
WDT_RESET = 3  # "#define RP2_RESET_WDT (3)"
# The only reset constants the rp2 machine module exports (MICROPY_PY_MACHINE_EXTRA_GLOBALS):
RP2_MACHINE_RESET_CONSTANTS = {"PWRON_RESET": PWRON_RESET, "WDT_RESET": WDT_RESET}
# machine.reset() is `watchdog_reboot(0, SRAM_END, 0)`: a watchdog FORCE reset, so the next boot
# reports WDT_RESET.
RESET_CAUSE_AFTER_MACHINE_RESET = WDT_RESET
# NOT defined on rp2 (machine.HARD_RESET / machine.SOFT_RESET raise AttributeError on the
# device). Values are those of the ports that do define them (stm32, mimxrt, ...); kept only so
# existing simulator code that imports these names keeps working. Do not export them.
HARD_RESET = 2
SOFT_RESET = 5


def reset_cause(watchdog_reason: int) -> int:
    """mp_machine_reset_cause():

        if (watchdog_caused_reboot()) reset_cause = RP2_RESET_WDT; else RP2_RESET_PWRON;

    with pico-sdk on RP2040 `return watchdog_hw->reason;` (REASON bit0 TIMER, bit1 FORCE; both
    zero after power-on or a RUN-pin reset). Watchdog timeout and machine.reset() (FORCE) both
    give WDT_RESET; a soft reset does not reset the chip, so the value is unchanged by it.
    """
    return WDT_RESET if watchdog_reason & 0x3 else PWRON_RESET


XOSC_KHZ = 12_000
PLL_COMMON_REFDIV = 1
PICO_PLL_VCO_MIN_FREQ_KHZ = 750_000  # pico-sdk hardware/pll.h defaults
PICO_PLL_VCO_MAX_FREQ_KHZ = 1_600_000


def check_sys_clock_khz(freq_khz: int) -> tuple[int, int, int] | None:
    """pico-sdk check_sys_clock_khz() -> (vco_hz, postdiv1, postdiv2) or None:

    for (uint fbdiv = 320; fbdiv >= 16; fbdiv--) {
        uint vco_khz = fbdiv * reference_freq_khz;
        if (vco_khz < PICO_PLL_VCO_MIN_FREQ_KHZ || vco_khz > ..._MAX_FREQ_KHZ) continue;
        for (uint postdiv1 = 7; postdiv1 >= 1; postdiv1--)
            for (uint postdiv2 = postdiv1; postdiv2 >= 1; postdiv2--) {
                uint out = vco_khz / (postdiv1 * postdiv2);
                if (out == freq_khz && !(vco_khz % (postdiv1 * postdiv2))) -> found
    """
    fk = _u32(freq_khz)
    ref = XOSC_KHZ // PLL_COMMON_REFDIV
    for fbdiv in range(320, 15, -1):
        vco = fbdiv * ref
        if vco < PICO_PLL_VCO_MIN_FREQ_KHZ or vco > PICO_PLL_VCO_MAX_FREQ_KHZ:
            continue
        for pd1 in range(7, 0, -1):
            for pd2 in range(pd1, 0, -1):
                if vco // (pd1 * pd2) == fk and vco % (pd1 * pd2) == 0:
                    return vco * 1000, pd1, pd2
    return None


def machine_freq_set(freq_hz) -> int:
    """`machine.freq(hz)` -- mp_machine_set_freq(): returns the new clk_sys in Hz.

        mp_int_t freq = mp_obj_get_int(args[0]);
        if (!set_sys_clock_khz(freq / 1000, false))
            mp_raise_ValueError(MP_ERROR_TEXT("cannot change frequency"));

    The request is truncated to whole kHz and must be exactly reachable by the PLL.
    """
    f = mp_obj_get_int(freq_hz)
    found = check_sys_clock_khz(_u32(_c_div(f, 1000)))
    if found is None:
        raise ValueError("cannot change frequency")
    vco_hz, pd1, pd2 = found
    return vco_hz // (pd1 * pd2)


def machine_freq_check_peri(freq_hz: int, freq_peri_hz) -> None:
    """Second argument of machine.freq(): `if (freq_peri != (USB_CLK_KHZ * KHZ)) { if
    (freq_peri == freq) ... else mp_raise_ValueError("peripheral freq must be 48_000_000 or the
    same as the MCU freq"); }`"""
    p = mp_obj_get_int(freq_peri_hz)
    if p != 48_000_000 and p != freq_hz:
        raise ValueError("peripheral freq must be 48_000_000 or the same as the MCU freq")


# =============================================================================================
# rp2.PIO / rp2.StateMachine  (ports/rp2/rp2_pio.c; pico-sdk hardware/pio.h, pio.c)
# =============================================================================================

PIO_IN_LOW, PIO_IN_HIGH, PIO_OUT_LOW, PIO_OUT_HIGH = 0, 1, 2, 3
PIO_SHIFT_LEFT, PIO_SHIFT_RIGHT = 0, 1
PIO_JOIN_NONE, PIO_JOIN_TX, PIO_JOIN_RX = 0, 1, 2
PIO_IRQ_SM0, PIO_IRQ_SM1, PIO_IRQ_SM2, PIO_IRQ_SM3 = 0x100, 0x200, 0x400, 0x800
PIO_IRQ_DEFAULT_TRIGGER = 0xF00  # PIO.irq(trigger=IRQ_SM0|IRQ_SM1|IRQ_SM2|IRQ_SM3)
SM_IRQ_DEFAULT_TRIGGER = 1  # StateMachine.irq(trigger=1)
# pio_irq0(): `pio->irq = ints >> 8;` before any handler runs -- the port clears the flag.
PIO_IRQ_HANDLER_CLEARS_FLAG = True
# rp2_state_machine_init_helper(): asm_pio_init_gpio() for out, then set, then sideset.
PIO_PIN_INIT_ORDER = ("out", "set", "sideset")


def sm_freq_to_clkdiv(sysclk_hz: int, freq=-1) -> tuple[int, int]:
    """(div_int, div_frac) for `StateMachine(id, prog, freq)` -- rp2_state_machine_init_helper():

        if (args[ARG_freq].u_int < 0) {          // Default: run at CPU frequency.
            clkdiv_int = 1; clkdiv_frac = 0;
        } else if (args[ARG_freq].u_int == 0) {  // Special case of 0: set clkdiv to 0.
            clkdiv_int = 0; clkdiv_frac = 0;
        } else {
            uint64_t div = (uint64_t)clock_get_hz(clk_sys) * 256ULL / (uint64_t)freq;
            if (!(div >= 1 * 256 && div <= 65536 * 256))
                mp_raise_ValueError(MP_ERROR_TEXT("freq out of range"));
            clkdiv_int = div / 256;       // uint16_t
            clkdiv_frac = div & 0xff;     // uint8_t
        }
        sm_config_set_clkdiv_int_frac(&config, clkdiv_int, clkdiv_frac);
            // pico-sdk: clkdiv = frac << PIO_SM0_CLKDIV_FRAC_LSB | int << ..._INT_LSB

    The divider is floored, so the SM runs at or slightly above the requested rate. Accepted:
    sysclk/65536 <= freq <= sysclk, i.e. 1908..125_000_000 Hz at 125 MHz. div_int 0 means 65536
    to the hardware (freq=0, or div exactly 65536*256 which wraps the uint16_t to 0).
    """
    f = mp_obj_get_int(freq)
    if f < 0:
        return 1, 0
    if f == 0:
        return 0, 0
    div = (_u32(sysclk_hz) * 256) // f
    if not 256 <= div <= 65536 * 256:
        raise ValueError("freq out of range")
    return (div // 256) & 0xFFFF, div & 0xFF


def sm_clkdiv_freq(sysclk_hz: int, div_int: int, div_frac: int) -> Fraction:
    """Average SM clock for a CLKDIV setting: sysclk * 256 / (int*256 + frac), int 0 = 65536."""
    i = div_int if div_int else 65536
    return Fraction(sysclk_hz * 256, i * 256 + div_frac)


def asm_pio_pin_config(prog_pins) -> tuple[int, int, int]:
    """(count, pindirs, pinvals) from an @asm_pio out_init/set_init/sideset_init value --
    rp2_pio.c asm_pio_get_pins():

        if (mp_obj_is_integer(prog_pins)) {       // A single pin
            config->count = 1;
            config->pindirs = value >> 1; config->pinvals = value & 1;
        } else {                                  // An array of pins
            config->count = count;
            for (i) { config->pindirs |= (value >> 1) << i; config->pinvals |= (value & 1) << i; }
    (PIO.OUT_HIGH = 3 -> output driven high; IN_LOW = 0 -> input.) None -> (0, 0, 0).
    """
    if prog_pins is None:
        return 0, 0, 0
    if isinstance(prog_pins, int):
        v = mp_obj_get_int(prog_pins)
        return 1, _u32(v >> 1), _u32(v & 1)
    dirs = vals = 0
    items = list(prog_pins)
    for i, item in enumerate(items):
        v = mp_obj_get_int(item)
        dirs |= _u32((v >> 1) << i)
        vals |= _u32((v & 1) << i)
    return len(items), _u32(dirs), _u32(vals)


def asm_pio_init_gpio_plan(
    base: int, count: int, pindirs: int, pinvals: int, pio_index: int = 0, gpio_base: int = 0
):
    """What asm_pio_init_gpio() does for one of out/set/sideset (only when the program gave an
    *_init AND the StateMachine got the matching *_base):

        uint32_t pinmask = ((1 << config->count) - 1) << (config->base - gpio_base);
        pio_sm_set_pins_with_mask(pio, sm, config->pinvals << (base - gpio_base), pinmask);
        pio_sm_set_pindirs_with_mask(pio, sm, config->pindirs << (base - gpio_base), pinmask);
        for (i < count) gpio_set_function(config->base + i, GPIO_FUNC_PIO0 + pio_get_index(pio));

    Returns (pinmask, pin_values, pin_dirs, [(gpio, func), ...]) in execution order: values,
    then directions (both via `set pins`/`set pindirs` executed on the SM, so they only reach
    the pad once the function is PIO), then the function switch pin by pin.
    """
    shift = base - gpio_base
    pinmask = _u32(((1 << count) - 1) << shift)
    values = _u32(pinvals << shift) & pinmask
    dirs = _u32(pindirs << shift) & pinmask
    funcs = [(base + i, GPIO_FUNC_PIO0 + pio_index) for i in range(count)]
    return pinmask, values, dirs, funcs


def _arm_lsl(value: int, shift: int) -> int:
    amt = _u32(shift) & 0xFF  # ARMv6-M LSLS/LSRS (register) use Rm[7:0]
    return 0 if amt >= 32 else _u32(value << amt)


def _arm_lsr(value: int, shift: int) -> int:
    amt = _u32(shift) & 0xFF
    return 0 if amt >= 32 else _u32(value) >> amt


def sm_put_words(value, shift=0) -> list[int]:
    """Words `StateMachine.put(value, shift=0)` pushes into the TX FIFO, in order --
    rp2_state_machine_put():

        uint32_t shift = mp_obj_get_int(args[2]);
        if (!mp_get_buffer(args[1], &bufinfo, MP_BUFFER_READ)) {
            data = mp_obj_get_int_truncated(args[1]); ... typecode = 'I'; }
        while (src < src_top) {
            if (typecode == 'B' || typecode == BYTEARRAY_TYPECODE) value = *(uint8_t *)src ...
            else if (typecode == 'H') ... else if (typecode == 'I') ...
            else mp_raise_ValueError(MP_ERROR_TEXT("unsupported buffer type"));
            while (pio_sm_is_tx_fifo_full(..)) mp_event_handle_nowait();   // blocks
            pio_sm_put(self->pio, self->sm, value << shift);

    Only unsigned buffers (bytes/bytearray/'B', 'H', 'I') are accepted; signed ones and 'L'/'Q'
    raise ValueError -- after the words before it were already pushed (none, for a typed array).
    A shift >= 32 is C UB; ARMv6-M register shifts give 0 (and use only the low byte of shift).
    """
    sh = mp_obj_get_int(shift)
    if isinstance(value, str):  # str exposes its UTF-8 bytes through the buffer protocol
        items = list(value.encode())
    elif isinstance(value, bytes | bytearray | memoryview):
        items = list(bytes(value))
    elif isinstance(value, array):
        if value.typecode not in ("B", "H", "I") or (
            value.typecode == "I" and value.itemsize != 4
        ):
            raise ValueError("unsupported buffer type")
        items = [int(v) for v in value]
    else:
        items = [mp_obj_get_int_truncated(value)]
    return [_arm_lsl(v, sh) for v in items]


def sm_get_value(word: int, shift=0) -> int:
    """`StateMachine.get(None, shift)`: `pio_sm_get(self->pio, self->sm) >> shift` (uint32_t;
    blocks while the RX FIFO is empty, running scheduled callbacks via mp_event_handle_nowait).
    With a buffer each word is stored truncated to the element size; buffer typecodes are
    lower-cased (bytearray -> 'b'), and anything but b/h/i raises ValueError("unsupported buffer
    type") only AFTER the first word has been popped from the FIFO."""
    return _arm_lsr(word, mp_obj_get_int(shift))


def pio_irq0_dispatch(
    ints0: int, pio_trigger: int | None = None, sm_triggers=(None, None, None, None)
):
    """One run of rp2_pio.c pio_irq0() for a PIO whose INTS0 register reads `ints0`.

        uint32_t ints = pio->ints0;
        pio->irq = ints >> 8;           // Acknowledge SM0-3 IRQs if they are enabled on this IRQ0.
        if (irq != NULL && (ints & irq->trigger)) { irq->flags = ints & irq->trigger; handler }
        for (i < 4) if (sm_irq[i] != NULL && ((ints >> (8 + i)) & sm_irq[i]->trigger)) {
            sm_irq[i]->flags = 1; handler }

    Returns (cleared_irq_flags, pio_flags_or_0, [sm indices whose handler runs]). `pio_trigger`
    / `sm_triggers[i]` are None when that irq object was never created. A StateMachine i handler
    runs for PIO IRQ flag i (raised by `irq(i)` from ANY SM of that PIO, or `irq(rel(0))` from
    SM i); the flag is cleared by the port before the (hard or scheduled soft) handler runs.
    """
    cleared = (ints0 >> 8) & 0xFF
    pio_flags = 0
    if pio_trigger is not None and ints0 & pio_trigger:
        pio_flags = ints0 & pio_trigger
    fired = [
        i for i in range(4) if sm_triggers[i] is not None and (ints0 >> (8 + i)) & sm_triggers[i]
    ]
    return cleared, pio_flags, fired

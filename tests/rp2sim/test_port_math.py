"""Concrete numbers for host_tools.rp2sim.port_math, each worked out from the rp2 port's C code.

Every expected value below was derived by hand from the C lines quoted in the docstring of the
function under test (and in PORT_NOTES.md), at the RP2040 default clk_sys of 125 MHz.
"""

from __future__ import annotations

from array import array

import pytest

from host_tools.rp2sim import port_math as pm

pytestmark = pytest.mark.req("FR-17")

SYS = 125_000_000


# ---- PWM: frequency -----------------------------------------------------------------------


def test_pwm_100khz_uses_div1_and_top_1249():
    """machine_pwm.c mp_machine_pwm_freq_set(): (125e6 + 50000) / 100000 = 1250 < TOP_MAX, so
    div16 = 16 (DIV 1.0) and top = 1250 - 1; freq_get: (16*F + 10000) / (16*1250) = 100000."""
    assert pm.pwm_freq_to_top_div(SYS, 100_000) == (1249, 16)
    assert pm.pwm_get_freq(SYS, 1249, 16) == 100_000


def test_pwm_8hz_is_the_lowest_frequency_at_125mhz():
    """mp_machine_pwm_freq_set() else-branch: div16 = ceil(16*F / (65534*8)) = ceil(3814.7) =
    3815 < 4096; top = round(2e9 / (3815*8)) - 1 = 65531 - 1. freq_get floors
    (2e9 + 125000382) / 250000765 to 8."""
    assert pm.pwm_freq_to_top_div(SYS, 8) == (65530, 3815)
    assert pm.pwm_get_freq(SYS, 65530, 3815) == 8


def test_pwm_7hz_and_1hz_are_too_small():
    """mp_machine_pwm_freq_set(): 7 Hz gives div16 = ceil(2e9 / 458738) = 4360 >= 256*16, so
    mp_raise_ValueError("freq too small"); 1 Hz likewise."""
    for f in (7, 1):
        with pytest.raises(ValueError, match="^freq too small$"):
            pm.pwm_freq_to_top_div(SYS, f)


def test_pwm_low_frequencies_get_fractional_dividers():
    """mp_machine_pwm_freq_set(): 1 kHz -> div16 = ceil(2e9/65534000) = 31 (DIV 1+15/16),
    top = floor((2e9 + 15500)/31000) - 1 = 64515; 50 Hz -> div16 611, top 65465; 1907 Hz is just
    past the div-1 limit ((125e6+953)/1907 = 65548 >= 65534) -> div16 17, top 61691."""
    assert pm.pwm_freq_to_top_div(SYS, 1000) == (64515, 31)
    assert pm.pwm_get_freq(SYS, 64515, 31) == 1000
    assert pm.pwm_freq_to_top_div(SYS, 50) == (65465, 611)
    assert pm.pwm_freq_to_top_div(SYS, 1907) == (61691, 17)
    assert pm.pwm_freq_to_top_div(SYS, 1908) == (65513, 16)


def test_pwm_high_frequencies_never_raise_freq_too_large():
    """mp_machine_pwm_freq_set(): the div-1 branch cannot give div16 < 16. freq = sysclk gives
    top 0; freq > 2*sysclk rounds (source_hz + freq/2)/freq to 0, so top = 0 - 1 wraps and the
    16-bit TOP register holds 0xFFFF (about 1907 Hz) -- no error. A negative freq does the same."""
    assert pm.pwm_freq_to_top_div(SYS, SYS) == (0, 16)
    assert pm.pwm_freq_to_top_div(SYS, 300_000_000) == (0xFFFF, 16)
    assert pm.pwm_freq_to_top_div(SYS, -1) == (0xFFFF, 16)
    assert pm.pwm_get_freq(SYS, 0xFFFF, 16) == 1907


def test_pwm_freq_zero_is_a_c_division_by_zero():
    """mp_machine_pwm_freq_set(): `(source_hz + freq / 2) / freq` with freq 0 is undefined in C;
    the model refuses it instead of inventing a result."""
    with pytest.raises(ZeroDivisionError):
        pm.pwm_freq_to_top_div(SYS, 0)


def test_pwm_freq_argument_must_fit_mp_int():
    """extmod/machine_pwm.c machine_pwm_freq(): `mp_obj_get_int(args[1])` -- a float is a
    TypeError and an int beyond 32 bits an OverflowError."""
    with pytest.raises(TypeError):
        pm.pwm_freq_to_top_div(SYS, 1000.0)
    with pytest.raises(OverflowError):
        pm.pwm_freq_to_top_div(SYS, 1 << 31)


def test_pwm_slice_hz_64bit_branch_matches_32bit_branch():
    """machine_pwm.c get_slice_hz(): above source_hz + offset/16 > 268000000 the 64-bit numerator
    is used; at 270 MHz and DIV 1 the slice clock is still exactly 270 MHz."""
    assert pm.pwm_get_slice_hz_round(270_000_000, 16) == 270_000_000
    assert pm.pwm_get_slice_hz_round(SYS, 16) == SYS


# ---- PWM: duty ----------------------------------------------------------------------------


def test_pwm_duty_u16_half_round_trips_at_100khz():
    """mp_machine_pwm_duty_set_u16(): cc = (32768*1250 + 32767) / 65535 = 625; duty_get_u16:
    (625*65535 + 625) / 1250 = 32768."""
    assert pm.pwm_duty_u16_to_cc(32768, 1249) == 625
    assert pm.pwm_cc_to_duty_u16(625, 1249) == 32768


def test_pwm_duty_u16_full_scale_and_clamp():
    """mp_machine_pwm_duty_set_u16(): 65535 -> cc = TOP+1 = 1250 (100 %); values above 65535 are
    clamped to 65535 (no error); 0 -> 0. duty_get: (1250*65535 + 625)/1250 = 65535."""
    assert pm.pwm_duty_u16_to_cc(65535, 1249) == 1250
    assert pm.pwm_cc_to_duty_u16(1250, 1249) == 65535
    assert pm.pwm_duty_u16_to_cc(70_000, 1249) == 1250
    assert pm.pwm_duty_u16_clamp(70_000) == 65535
    assert pm.pwm_duty_u16_to_cc(0, 1249) == 0
    assert pm.pwm_duty_u16_to_cc(1, 1249) == 0
    assert pm.pwm_cc_to_duty_u16(0, 1249) == 0


def test_pwm_duty_u16_negative_wraps_as_uint32():
    """mp_machine_pwm_duty_set_u16(): `duty_u16 * (top + 1)` is uint32_t arithmetic, so -1
    becomes (2**32 - 1250 + 32767) mod 2**32 / 65535 = 31517 / 65535 = 0. No error is raised."""
    assert pm.pwm_duty_u16_to_cc(-1, 1249) == 0


def test_pwm_duty_u16_at_top_ffff_wraps_to_zero():
    """mp_machine_pwm_duty_set_u16() with TOP 0xFFFF (only reachable via freq > 2*sysclk):
    (65535*65536 + 32767)/65535 = 65536, which pwm_set_chan_level's uint16_t makes 0."""
    assert pm.pwm_duty_u16_to_cc(65535, 0xFFFF) == 0


def test_pwm_duty_ns_at_100khz():
    """mp_machine_pwm_duty_set_ns(): slice_hz = (16*F + 8)/16 = 125 MHz; 5000 ns ->
    (5000*125e6 + 5e8)/1e9 = 625; duty_get_ns: (625e9 + 62.5e6)/125e6 = 5000. 20000 ns exceeds the
    10 us period: cc 2500 is clamped to TOP+1 = 1250 (no error)."""
    assert pm.pwm_duty_ns_to_cc(5000, SYS, 16, top=1249) == 625
    assert pm.pwm_cc_to_duty_ns(625, SYS, 16) == 5000
    assert pm.pwm_duty_ns_to_cc(20_000, SYS, 16, top=1249) == 1250
    assert pm.pwm_duty_ns_to_cc(20_000, SYS, 16) == 2500  # unclamped when top is not given


def test_pwm_duty_ns_with_fractional_divider():
    """mp_machine_pwm_duty_set_ns() at 8 Hz (div16 3815): slice_hz = floor((2e9+1907)/3815) =
    524246; 1 ms -> (1e6*524246 + 5e8)/1e9 = 524; back: (524e9 + 262123)/524246 = 999531 ns."""
    assert pm.pwm_get_slice_hz_round(SYS, 3815) == 524_246
    assert pm.pwm_duty_ns_to_cc(1_000_000, SYS, 3815, top=65530) == 524
    assert pm.pwm_cc_to_duty_ns(524, SYS, 3815) == 999_531


def test_pwm_duty_ns_negative_wraps_through_uint64():
    """mp_machine_pwm_duty_set_ns(): `(uint64_t)duty_ns` sign-extends. -1 ns: (2**64 - 125e6 +
    5e8) mod 2**64 / 1e9 = 0. -1000 ns: truncated to uint32 1266874889 > TOP+1 -> 1250."""
    assert pm.pwm_duty_ns_to_cc(-1, SYS, 16, top=1249) == 0
    assert pm.pwm_duty_ns_to_cc(-1000, SYS, 16, top=1249) == 1250


def test_pwm_gpio_to_slice_channel():
    """pico-sdk pwm_gpio_to_slice_num() `(gpio >> 1u) & 7u` and pwm_gpio_to_channel()
    `gpio & 1u`: GPIO 0 and GPIO 16 both drive slice 0 channel A."""
    assert pm.pwm_gpio_to_slice_channel(0) == (0, 0)
    assert pm.pwm_gpio_to_slice_channel(16) == (0, 0)
    assert pm.pwm_gpio_to_slice_channel(15) == (7, 1)


def test_pwm_output_level_and_invert():
    """RP2040 PWM trailing-edge output: high while counter < CC; invert (CSR A_INV, set by
    pwm_set_output_polarity() in machine_pwm_start()) flips it, so duty 0 with invert is high."""
    assert pm.pwm_output_high(0, 625, False) is True
    assert pm.pwm_output_high(625, 625, False) is False
    assert pm.pwm_output_high(0, 0, True) is True


# ---- ADC ----------------------------------------------------------------------------------


def test_adc_read_u16_scaling():
    """machine_adc.c adc_config_and_read_u16(): `raw << 4 | raw >> 8`: 0 -> 0, 4095 -> 65520|15
    = 65535, 2048 -> 32768|8 = 32776, 1 -> 16."""
    assert pm.adc_raw12_to_u16(0) == 0
    assert pm.adc_raw12_to_u16(4095) == 65535
    assert pm.adc_raw12_to_u16(2048) == 32776
    assert pm.adc_raw12_to_u16(1) == 16
    with pytest.raises(ValueError):
        pm.adc_raw12_to_u16(4096)


def test_adc_channel_selection():
    """machine_adc.c mp_machine_adc_make_new(): ints 0..4 are channels and leave the GPIO alone;
    other ints fall back to machine_pin_find(): 26..29 map to channels 0..3 with adc_gpio_init;
    Pin(26..29) likewise; channel 4 is the temperature sensor."""
    assert pm.adc_channel_for(0) == (0, None)
    assert pm.adc_channel_for(3) == (3, None)
    assert pm.adc_channel_for(4) == (4, None)
    assert pm.adc_channel_for(26) == (0, 26)
    assert pm.adc_channel_for(29) == (3, 29)
    assert pm.adc_channel_for(28, is_pin=True) == (2, 28)


def test_adc_errors():
    """machine_adc.c: a pin outside 26..29 -> ValueError("Pin doesn't have ADC capabilities");
    machine_pin_find() on an int outside 0..29 (or a bool) -> ValueError("invalid pin")."""
    for src in (5, 25):
        with pytest.raises(ValueError, match="^Pin doesn't have ADC capabilities$"):
            pm.adc_channel_for(src)
    with pytest.raises(ValueError, match="^Pin doesn't have ADC capabilities$"):
        pm.adc_channel_for(0, is_pin=True)
    for src in (30, -1, True):
        with pytest.raises(ValueError, match="^invalid pin$"):
            pm.adc_channel_for(src)


# ---- Timer --------------------------------------------------------------------------------


def test_timer_freq_100_is_10000us():
    """machine_timer.c init_helper(): delta_us = (uint64_t)(1000000.0f / 100.0f) = 10000."""
    assert pm.timer_delta_us(pm.TIMER_PERIODIC, freq=100) == 10_000


def test_timer_period_and_tick_hz():
    """init_helper(): delta_us = (uint64_t)period * 1000000 / tick_hz: period 100 (ms) ->
    100000 us; period 5 at tick_hz 1 MHz -> 5 us; period 0 -> 0 -> clamped to 1."""
    assert pm.timer_delta_us(pm.TIMER_PERIODIC, period=100) == 100_000
    assert pm.timer_delta_us(pm.TIMER_ONE_SHOT, period=5, tick_hz=1_000_000) == 5
    assert pm.timer_delta_us(pm.TIMER_PERIODIC, period=0) == 1


def test_timer_freq_wins_and_rounds_in_float32():
    """init_helper(): freq beats period; the division is single-precision (rp2
    MICROPY_FLOAT_IMPL_FLOAT) and truncated: 3 Hz -> 333333.34f -> 333333; 2 MHz -> 0.5 -> 0 ->
    clamped to 1; 0.001 Hz -> 1e6/0.001f = 999999952.5 rounds to the float 999999936."""
    assert pm.timer_delta_us(period=5, freq=100) == 10_000
    assert pm.timer_delta_us(freq=3) == 333_333
    assert pm.timer_delta_us(freq=2_000_000) == 1
    assert pm.timer_delta_us(freq=0.001) == 999_999_936


def test_timer_default_period_wraps():
    """init_helper(): period defaults to 0xffffffff, which is -1 as a 32-bit mp_int_t; the
    (uint64_t) cast sign-extends, so (2**64 - 1) * 1e6 mod 2**64 / 1000 = 18446744073708551."""
    assert pm.timer_delta_us() == 18_446_744_073_708_551
    assert pm.timer_delta_us(period=-1) == 18_446_744_073_708_551


def test_timer_undefined_inputs_are_refused():
    """init_helper(): freq <= 0 converts a negative/infinite float to uint64_t and tick_hz=0
    divides by zero -- undefined in C, so the model raises instead of guessing."""
    with pytest.raises(ValueError):
        pm.timer_delta_us(freq=0)
    with pytest.raises(ValueError):
        pm.timer_delta_us(freq=-5)
    with pytest.raises(ZeroDivisionError):
        pm.timer_delta_us(period=10, tick_hz=0)


def test_timer_periodic_rearm_has_no_drift():
    """alarm_callback() returns -delta_us; pico-sdk alarm_pool_alarm_callback() re-adds the alarm
    at `delayed_by_us(target, -repeat)`: previous target + delta, independent of latency."""
    t = 1_000
    for _ in range(3):
        t = pm.timer_next_target_us(t, 10_000)
    assert t == 31_000


def test_timer_repr_and_id():
    """machine_timer_print(): "Timer(mode=%q, tick_hz=1000000, period=%u)"; make_new: any id
    but -1 -> ValueError("Timer doesn't exist")."""
    assert pm.timer_repr(pm.TIMER_PERIODIC, 10_000) == (
        "Timer(mode=PERIODIC, tick_hz=1000000, period=10000)"
    )
    pm.timer_check_id(-1)
    with pytest.raises(ValueError, match="^Timer doesn't exist$"):
        pm.timer_check_id(0)


# ---- WDT ----------------------------------------------------------------------------------


def test_wdt_timeout_range():
    """machine_wdt.c mp_machine_wdt_make_new_instance(): `uint32_t timeout = timeout_ms; if
    (timeout > WDT_TIMEOUT_MAX) mp_raise_ValueError("timeout exceeds 8388")`: 8388 is accepted,
    8389 and (wrapped) -1 are not."""
    assert pm.wdt_check(0, 8388) == 8388
    for t in (8389, -1):
        with pytest.raises(ValueError, match="^timeout exceeds 8388$"):
            pm.wdt_check(0, t)
    assert pm.WDT_TIMEOUT_ERROR == "timeout exceeds 8388"


def test_wdt_id_must_be_zero():
    """mp_machine_wdt_make_new_instance(): `mp_raise_msg_varg(&mp_type_ValueError,
    "WDT(%d) doesn't exist", id)`."""
    with pytest.raises(ValueError, match=r"^WDT\(1\) doesn't exist$"):
        pm.wdt_check(1, 1000)


def test_wdt_load_value_rp2040():
    """pico-sdk _watchdog_enable(): load = delay_ms * 1000 * 2 on RP2040 (erratum E1): 8388 ms ->
    16776000 <= 0xffffff; delay 0 sets CTRL.TRIGGER (immediate reset) -> None."""
    assert pm.wdt_load_value(8388) == 16_776_000
    assert pm.wdt_load_value(1000) == 2_000_000
    assert pm.wdt_load_value(0) is None
    assert pm.wdt_check(0, 0) == 0  # accepted by the port, reboots at once


# ---- reset cause, machine.freq ------------------------------------------------------------


def test_reset_cause_constants():
    """modmachine.c: RP2_RESET_PWRON (1), RP2_RESET_WDT (3) are the only reset constants."""
    assert pm.PWRON_RESET == 1
    assert pm.WDT_RESET == 3
    assert pm.RP2_MACHINE_RESET_CONSTANTS == {"PWRON_RESET": 1, "WDT_RESET": 3}


def test_reset_cause_from_watchdog_reason():
    """mp_machine_reset_cause(): watchdog_caused_reboot() (RP2040: `return watchdog_hw->reason`)
    -> WDT_RESET for a timeout (TIMER bit) and for machine.reset() (watchdog_reboot -> FORCE
    bit); REASON 0 after power-on -> PWRON_RESET."""
    assert pm.reset_cause(0) == pm.PWRON_RESET
    assert pm.reset_cause(0b01) == pm.WDT_RESET
    assert pm.reset_cause(0b10) == pm.WDT_RESET
    assert pm.RESET_CAUSE_AFTER_MACHINE_RESET == pm.WDT_RESET


def test_machine_freq_setter():
    """mp_machine_set_freq(): set_sys_clock_khz(freq / 1000, false) else
    ValueError("cannot change frequency"); pico-sdk check_sys_clock_khz() needs an exact
    VCO(750..1600 MHz)/pd1/pd2 match: 125/133/200/48 MHz are reachable, 1 MHz is not, and
    125_000_500 is truncated to 125000 kHz."""
    for f in (125_000_000, 133_000_000, 200_000_000, 48_000_000):
        assert pm.machine_freq_set(f) == f
    assert pm.machine_freq_set(125_000_500) == 125_000_000
    assert pm.check_sys_clock_khz(125_000) == (1_500_000_000, 6, 2)
    with pytest.raises(ValueError, match="^cannot change frequency$"):
        pm.machine_freq_set(1_000_000)
    with pytest.raises(ValueError, match="^peripheral freq must be"):
        pm.machine_freq_check_peri(125_000_000, 100_000_000)
    pm.machine_freq_check_peri(125_000_000, 48_000_000)
    pm.machine_freq_check_peri(125_000_000, 125_000_000)


# ---- Pin ----------------------------------------------------------------------------------


def test_pin_constants():
    """machine_pin.h / machine_pin.c / pico-sdk gpio.h values on RP2040."""
    assert (pm.PIN_IN, pm.PIN_OUT, pm.PIN_OPEN_DRAIN, pm.PIN_ALT) == (0, 1, 2, 3)
    assert (pm.PIN_PULL_UP, pm.PIN_PULL_DOWN) == (1, 2)
    assert (pm.PIN_IRQ_FALLING, pm.PIN_IRQ_RISING) == (4, 8)
    assert pm.PIN_IRQ_DEFAULT_TRIGGER == 12
    assert (pm.PIN_ALT_PWM, pm.PIN_ALT_SIO, pm.PIN_ALT_PIO0, pm.PIN_ALT_PIO1) == (4, 5, 6, 7)
    assert (pm.PIN_ALT_SPI, pm.PIN_ALT_UART, pm.PIN_ALT_I2C) == (1, 2, 3)
    assert (pm.PIN_ALT_GPCK, pm.PIN_ALT_USB) == (8, 9)


def test_pin_out_with_value_sets_latch_before_driver():
    """machine_pin_obj_init_helper(): "set initial output value before configuring mode":
    gpio_put() first, then mp_hal_pin_output() = gpio_set_dir(OUT), od_mask clear,
    gpio_set_function(SIO); pulls last (none)."""
    assert pm.pin_init_ops(pm.PIN_OUT, value=0) == [
        ("put", 0),
        ("dir", pm.PIN_OUT),
        ("od", False),
        ("func", pm.GPIO_FUNC_SIO),
        ("pulls", False, False),
    ]


def test_pin_in_with_pull_up_takes_the_pin_back_to_sio():
    """mp_hal_pin_input(): gpio_set_dir(IN), od_mask clear, gpio_set_function(SIO) -- a pin
    owned by PWM/PIO switches to SIO; then gpio_set_pulls(up)."""
    assert pm.pin_init_ops(pm.PIN_IN, pm.PIN_PULL_UP) == [
        ("dir", pm.PIN_IN),
        ("od", False),
        ("func", pm.GPIO_FUNC_SIO),
        ("pulls", True, False),
    ]


def test_pin_without_mode_only_rewrites_pulls():
    """machine_pin_obj_init_helper(): with mode None nothing but the pull is touched, and the
    pull is written unconditionally ("None means no-pull"): Pin(n, value=1) does not set the
    latch and clears any pull. (Pin(n) alone does not call the helper at all.)"""
    assert pm.pin_init_ops(None, value=1) == [("pulls", False, False)]
    assert pm.pin_init_ops(None, pm.PIN_PULL_DOWN) == [("pulls", False, True)]


def test_pin_open_drain_and_alt():
    """mp_hal_pin_open_drain_with_value(): value None/1 -> dir IN then put 0; value 0 -> put 0
    then dir OUT; od_mask set; SIO. ALT: machine_pin_find_alt() else ValueError("invalid pin
    af: %d"), then gpio_set_function(af)."""
    assert pm.pin_init_ops(pm.PIN_OPEN_DRAIN)[:2] == [("dir", pm.PIN_IN), ("put", 0)]
    assert pm.pin_init_ops(pm.PIN_OPEN_DRAIN, value=0)[:3] == [
        ("put", 0),
        ("dir", pm.PIN_OUT),
        ("od", True),
    ]
    assert pm.pin_init_ops(pm.PIN_ALT, alt=pm.PIN_ALT_PWM, pin_afs={4, 5})[0] == ("func", 4)
    with pytest.raises(ValueError, match="^invalid pin af: 9$"):
        pm.pin_init_ops(pm.PIN_ALT, alt=9, pin_afs={4, 5})


def test_pin_find():
    """machine_pin_find(): ints 0..29 on RP2040, else ValueError("invalid pin")."""
    assert pm.pin_find(29) == 29
    for bad in (30, -1, False):
        with pytest.raises(ValueError, match="^invalid pin$"):
            pm.pin_find(bad)


def test_pin_irq_flags():
    """machine_pin.c gpio_irq(): flags = intr & trigger; handler only if nonzero."""
    both = pm.PIN_IRQ_RISING | pm.PIN_IRQ_FALLING
    assert pm.pin_irq_flags(pm.PIN_IRQ_RISING, pm.PIN_IRQ_FALLING) == 0
    assert pm.pin_irq_flags(both, pm.PIN_IRQ_RISING) == pm.PIN_IRQ_RISING
    assert pm.pin_irq_flags(both | pm.PIN_IRQ_LEVEL_HIGH, both) == both


# ---- PIO ----------------------------------------------------------------------------------


def test_sm_clkdiv_1mhz_at_125mhz():
    """rp2_state_machine_init_helper(): div = 125e6 * 256 / 1e6 = 32000 -> int 125, frac 0."""
    assert pm.sm_freq_to_clkdiv(SYS, 1_000_000) == (125, 0)


def test_sm_clkdiv_fractional_and_truncated():
    """div = F*256/freq truncated: 2 MHz -> 16000 = 62.5 -> (62, 128); 3 MHz -> 10666 ->
    (41, 170). The divider is floored, so the SM runs at or above the requested rate:
    32e9 / 10666 = 3000187.5 Hz."""
    assert pm.sm_freq_to_clkdiv(SYS, 2_000_000) == (62, 128)
    assert pm.sm_freq_to_clkdiv(SYS, 3_000_000) == (41, 170)
    assert pm.sm_freq_to_clkdiv(SYS, 10_000_000) == (12, 128)
    assert int(pm.sm_clkdiv_freq(SYS, 41, 170)) == 3_000_187


def test_sm_clkdiv_defaults_and_range():
    """freq < 0 (default -1) -> (1, 0) = full speed; 0 -> (0, 0) = divide by 65536; accepted
    range 256 <= div <= 65536*256: 125 MHz ok, 125000001 and 1907 Hz -> ValueError("freq out of
    range"); 1908 Hz -> div 16771488 -> (65513, 160)."""
    assert pm.sm_freq_to_clkdiv(SYS, -1) == (1, 0)
    assert pm.sm_freq_to_clkdiv(SYS, 0) == (0, 0)
    assert pm.sm_freq_to_clkdiv(SYS, SYS) == (1, 0)
    assert pm.sm_freq_to_clkdiv(SYS, 1908) == (65513, 160)
    for f in (SYS + 1, 1907):
        with pytest.raises(ValueError, match="^freq out of range$"):
            pm.sm_freq_to_clkdiv(SYS, f)
    assert pm.sm_clkdiv_freq(SYS, 0, 0) == pm.sm_clkdiv_freq(SYS, 65535, 256)


def test_asm_pio_pin_config_and_gpio_plan():
    """rp2_pio.c asm_pio_get_pins(): an int init gives count 1, dir = v>>1, val = v&1; a tuple
    gives one bit per pin. asm_pio_init_gpio(): values, then dirs, then gpio_set_function to
    GPIO_FUNC_PIO0 + index for each pin in order."""
    assert pm.asm_pio_pin_config(pm.PIO_OUT_HIGH) == (1, 1, 1)
    assert pm.asm_pio_pin_config((pm.PIO_OUT_LOW, pm.PIO_OUT_HIGH, pm.PIO_IN_LOW)) == (3, 3, 2)
    assert pm.asm_pio_pin_config(None) == (0, 0, 0)
    mask, vals, dirs, funcs = pm.asm_pio_init_gpio_plan(10, 2, 0b11, 0b10, pio_index=1)
    assert (mask, vals, dirs) == (0b11 << 10, 0b10 << 10, 0b11 << 10)
    assert funcs == [(10, pm.GPIO_FUNC_PIO1), (11, pm.GPIO_FUNC_PIO1)]
    assert pm.PIO_PIN_INIT_ORDER == ("out", "set", "sideset")


def test_sm_put_words():
    """rp2_state_machine_put(): ints truncated to uint32 then `value << shift`; bytes/'B',
    'H', 'I' buffers one word per element; signed typecodes -> ValueError("unsupported buffer
    type")."""
    assert pm.sm_put_words(-1) == [0xFFFFFFFF]
    assert pm.sm_put_words(1, 31) == [0x80000000]
    assert pm.sm_put_words(b"\x01\x02", 8) == [0x100, 0x200]
    assert pm.sm_put_words(array("H", [0xFFFF]), 16) == [0xFFFF0000]
    assert pm.sm_put_words(array("I", [7])) == [7]
    for tc in ("b", "h", "i"):
        with pytest.raises(ValueError, match="^unsupported buffer type$"):
            pm.sm_put_words(array(tc, [1]))


def test_sm_get_shift():
    """rp2_state_machine_get(): `pio_sm_get(..) >> shift` on a uint32_t."""
    assert pm.sm_get_value(0xFFFF0000, 16) == 0xFFFF
    assert pm.sm_get_value(0x80000000) == 0x80000000


def test_pio_irq0_dispatch_clears_flags_and_picks_handlers():
    """rp2_pio.c pio_irq0(): `pio->irq = ints >> 8` clears the pending enabled SM flags before
    any handler; StateMachine i's handler runs when `(ints >> (8+i)) & trigger`; PIO.irq's when
    `ints & trigger` (flags = ints & trigger)."""
    ints = 0x100 | 0x400  # IRQ flags 0 and 2 pending and enabled
    cleared, pio_flags, fired = pm.pio_irq0_dispatch(ints, None, (1, 1, None, None))
    assert cleared == 0b101
    assert pio_flags == 0
    assert fired == [0]  # SM2 has no irq object; SM1's flag is not set
    cleared, pio_flags, fired = pm.pio_irq0_dispatch(ints, pm.PIO_IRQ_DEFAULT_TRIGGER, (1,) * 4)
    assert pio_flags == 0x500
    assert fired == [0, 2]
    assert pm.PIO_IRQ_HANDLER_CLEARS_FLAG is True

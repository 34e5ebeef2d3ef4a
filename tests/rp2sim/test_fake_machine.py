"""The fake `machine`, `time` and `micropython` modules behave like the MicroPython rp2 port.

Each test names the port behaviour it pins down (see host_tools/rp2sim/PORT_NOTES.md for the C
source each follows). The modules are exercised as firmware would use them, on a bare chip.
"""

from __future__ import annotations

import pytest

from host_tools.rp2sim import port_math
from host_tools.rp2sim.chip import PORT_BOOT_HZ, Chip, ChipReset, ClockMismatch
from host_tools.rp2sim.fakes import build_modules
from host_tools.rp2sim.vfs import FlashFs

pytestmark = pytest.mark.req("FR-17")


class _Console:
    def __init__(self):
        self.out = []

    def write(self, s):
        self.out.append(s)
        return len(s)


@pytest.fixture
def chip():
    # These tests check the peripherals' registers and events, driven from the test itself:
    # the calls cost no CPU time here (the CPU model has its own tests: test_cpu_model.py).
    return Chip(125_000_000, cpu_scale=0)


@pytest.fixture
def mods(chip):
    return build_modules(chip, FlashFs(), _Console())


def edges(chip, pin):
    seen = []
    chip.pin_observers.append(lambda n, level, t: n == pin and seen.append((t, level)))
    return seen


# ---- Pin ---------------------------------------------------------------------------------


def test_pin_out_with_value_zero_never_glitches_high(chip, mods):
    """machine_pin.c: gpio_put(value) before gpio_set_dir(OUT) -> no glitch."""
    m = mods["machine"]
    chip.sio_write(5, 1)  # an old latch value of 1 left by a previous program
    seen = edges(chip, 5)
    m.Pin(5, m.Pin.OUT, value=0)
    assert seen == []  # stayed low the whole time (reset pull-down, then driven 0)
    assert chip.level(5) == 0


def test_pin_reset_state_is_pulled_down_and_pull_up_reads_high(chip, mods):
    m = mods["machine"]
    assert m.Pin(10).value() == 0  # RP2040 pads come out of reset with the pull-down on
    p = m.Pin(10, m.Pin.IN, m.Pin.PULL_UP)
    assert p.value() == 1
    chip.drive_external(10, 0)  # a button to ground
    assert p.value() == 0


def test_pin_without_mode_changes_nothing(chip, mods):
    """mp_pin_make_new: Pin(n) alone runs no init, so a PWM pin stays a PWM pin."""
    m = mods["machine"]
    m.PWM(m.Pin(6), freq=1000, duty_u16=32768)
    m.Pin(6)
    assert chip.gpio[6].func == "pwm"
    m.Pin(6, m.Pin.OUT, value=0)  # mode OUT takes the pin back (function SIO)
    assert chip.gpio[6].func == "sio" and chip.analog_level(6) == 0.0


def test_pin_irq_falling_fires_at_the_instant_of_the_edge(chip, mods):
    m = mods["machine"]
    hits = []
    p = m.Pin(12, m.Pin.IN, m.Pin.PULL_UP)
    p.irq(lambda pin: hits.append((chip.now, pin.value())), m.Pin.IRQ_FALLING)
    t_press = chip.cycles(0.25)
    chip.schedule(t_press, chip.drive_external, 12, 0)
    chip.schedule(t_press + 1000, chip.drive_external, 12, None)
    chip.advance_to(chip.cycles(1))
    assert hits == [(t_press, 0)]  # falling only, exactly when the pin fell


# ---- PWM ---------------------------------------------------------------------------------


def test_pwm_top_div_as_the_port_computes_them(chip, mods):
    m = mods["machine"]
    pwm = m.PWM(m.Pin(6), freq=100_000, duty_u16=16384)
    sl = chip.pwm[3]
    assert (sl.top, sl.div16) == port_math.pwm_freq_to_top_div(125_000_000, 100_000)
    assert pwm.freq() == port_math.pwm_get_freq(125_000_000, sl.top, sl.div16)
    assert chip.analog_level(6) == pytest.approx(sl.cc[0] / (sl.top + 1))
    assert pwm.duty_u16() == port_math.pwm_cc_to_duty_u16(sl.cc[0], sl.top)


def test_pwm_refuses_below_its_8hz_floor(chip, mods):
    m = mods["machine"]
    m.PWM(m.Pin(6), freq=8, duty_u16=100)
    with pytest.raises(ValueError, match="freq too small"):
        m.PWM(m.Pin(8), freq=7, duty_u16=100)


def test_pwm_waits_for_freq_and_duty_before_starting(chip, mods):
    """machine_pwm_start: the slice runs only once its freq and this channel's duty are set."""
    m = mods["machine"]
    pwm = m.PWM(m.Pin(6))
    assert not chip.pwm[3].enabled and pwm.freq() == 0 and pwm.duty_u16() == 0
    pwm.freq(1000)
    assert not chip.pwm[3].enabled
    pwm.duty_u16(65535)
    assert chip.pwm[3].enabled and chip.analog_level(6) == 1.0


def test_pwm_compare_is_double_buffered_until_the_wrap(chip, mods):
    m = mods["machine"]
    pwm = m.PWM(m.Pin(6), freq=100_000, duty_u16=0)
    chip.advance_to(chip.now + 300)  # somewhere inside a 10 us period
    pwm.duty_u16(65535)
    assert chip.analog_level(6) == 0.0  # not yet: the old CC holds until the counter wraps
    chip.advance_to(chip.now + 1250)
    assert chip.analog_level(6) == 1.0


def test_pwm_freq_change_keeps_both_channels_duty_fractions(chip, mods):
    m = mods["machine"]
    a = m.PWM(m.Pin(6), freq=100_000, duty_u16=32768)
    m.PWM(m.Pin(7), freq=100_000, duty_u16=16384)
    a.freq(50_000)
    chip.advance_to(chip.now + chip.us_to_cycles(100))
    assert chip.analog_level(6) == pytest.approx(0.5, abs=1e-3)
    assert chip.analog_level(7) == pytest.approx(0.25, abs=1e-3)


@pytest.mark.parametrize("t_us, expect", [(2, 1), (7, 0)])
def test_pwm_deinit_freezes_the_pin_where_the_counter_left_it(chip, mods, t_us, expect):
    """deinit() only clears the slice enable: the pin keeps its level, possibly high."""
    m = mods["machine"]
    pwm = m.PWM(m.Pin(6), freq=100_000, duty_u16=32768)  # high for the first 5 us of 10
    chip.advance_to(chip.pwm[3].t_enabled + chip.us_to_cycles(t_us))
    pwm.deinit()
    assert chip.gpio[6].func == "pwm"
    assert chip.analog_level(6) == float(expect)
    chip.advance_to(chip.now + chip.cycles(1))
    assert chip.analog_level(6) == float(expect)


def test_pwm_minus_one_is_an_argument_left_out(chip, mods):
    """mp_machine_pwm_init_helper: every argument defaults to VALUE_NOT_SET (-1), so -1 sets
    nothing: no duty, so the slice does not start; an init() with -1 keeps what was set."""
    m = mods["machine"]
    pwm = m.PWM(m.Pin(6), freq=1000, duty_u16=-1, duty_ns=-1, invert=-1)
    assert not chip.pwm[3].enabled and chip.analog_level(6) == 0.0
    pwm.duty_u16(65535)
    pwm.init(freq=-1, duty_u16=-1, duty_ns=-1, invert=-1)
    sl = chip.pwm[3]
    assert sl.enabled and pwm.duty_u16() == 65535 and not sl.invert[0]
    assert (sl.top, sl.div16) == port_math.pwm_freq_to_top_div(125_000_000, 1000)


def test_pwm_a_duty_ns_given_with_a_duty_u16_stands(chip, mods):
    """duty_u16 then duty_ns are applied in turn: the second stands."""
    m = mods["machine"]
    pwm = m.PWM(m.Pin(6), freq=100_000, duty_u16=65535, duty_ns=2500)  # 2.5 us of the 10 us period
    chip.advance_to(chip.now + chip.us_to_cycles(100))
    assert pwm.freq() == port_math.pwm_get_freq(125_000_000, chip.pwm[3].top, chip.pwm[3].div16)
    assert pwm.duty_ns() == pytest.approx(2500, abs=10)  # read back from the compare level
    assert chip.analog_level(6) == pytest.approx(0.25, abs=1e-3)
    with pytest.raises(TypeError):
        m.PWM(m.Pin(8), freq=1000, duty_u16=None)  # MP_ARG_INT: None is no int


def test_pwm_duty_over_range_is_clamped_not_refused(chip, mods):
    m = mods["machine"]
    pwm = m.PWM(m.Pin(6), freq=1000, duty_u16=70000)
    assert pwm.duty_u16() == 65535


# ---- ADC ---------------------------------------------------------------------------------


@pytest.mark.parametrize("volts", [0.0, 0.4, 1.65, 3.2999, 3.3, 5.0])
def test_adc_scales_12_bits_to_u16_like_the_port(chip, mods, volts):
    m = mods["machine"]
    chip.adc_sources[0] = lambda t: volts
    raw12 = max(0, min(4095, int(volts / 3.3 * 4096)))
    assert m.ADC(26).read_u16() == port_math.adc_raw12_to_u16(raw12)
    assert m.ADC(m.Pin(26)).read_u16() == port_math.adc_raw12_to_u16(raw12)


def test_adc_rejects_pins_without_adc(chip, mods):
    m = mods["machine"]
    with pytest.raises(ValueError, match="ADC capabilities"):
        m.ADC(m.Pin(5))
    with pytest.raises(ValueError, match="invalid pin"):
        m.ADC(40)


# ---- Timer -------------------------------------------------------------------------------


def test_periodic_timer_does_not_drift(chip, mods):
    """machine_timer.c: a periodic alarm re-arms at previous target + delta, not at now + delta."""
    m = mods["machine"]
    fired = []
    m.Timer(mode=m.Timer.PERIODIC, freq=300, callback=lambda t: fired.append(chip.ticks_us()))
    chip.advance_to(chip.cycles(10.0) + 1)
    assert len(fired) == 3000
    delta = port_math.timer_delta_us(port_math.TIMER_PERIODIC, freq=300)
    assert fired[-1] == 3000 * delta  # 3333 us per tick, the port's integer interval


def test_one_shot_timer_and_deinit(chip, mods):
    m = mods["machine"]
    fired = []
    m.Timer(mode=m.Timer.ONE_SHOT, period=50, callback=lambda t: fired.append(chip.ticks_ms()))
    t2 = m.Timer(mode=m.Timer.PERIODIC, period=10, callback=lambda t: fired.append(-1))
    t2.deinit()
    chip.advance_to(chip.cycles(1))
    assert fired == [50]


def test_only_the_virtual_timer_exists(mods):
    with pytest.raises(ValueError, match="doesn't exist"):
        mods["machine"].Timer(0)


# ---- WDT and reset -----------------------------------------------------------------------


def test_watchdog_resets_the_chip_when_not_fed(chip, mods):
    m = mods["machine"]
    m.Pin(2, m.Pin.OUT, value=1)
    wdt = m.WDT(timeout=100)
    chip.advance_to(chip.cycles(0.09))
    wdt.feed()
    chip.advance_to(chip.cycles(0.18))  # fed at 90 ms: still alive at 180 ms
    assert chip.generation == 0 and chip.level(2) == 1
    with pytest.raises(ChipReset):
        chip.advance_to(chip.cycles(0.2))
    assert chip.reset_cause == m.WDT_RESET
    assert chip.level(2) == 0  # pads back to reset state: input with pull-down
    with pytest.raises(ChipReset):  # objects of the dead program cannot touch the new one
        m.Pin(2).value(1)


def test_watchdog_timeout_range(mods):
    m = mods["machine"]
    m.WDT(timeout=8388)
    with pytest.raises(ValueError, match="timeout exceeds 8388"):
        m.WDT(timeout=8389)


def test_machine_reset_reads_back_as_watchdog_reset(chip, mods):
    m = mods["machine"]
    with pytest.raises(ChipReset):
        m.reset()
    assert chip.reset_cause == port_math.WDT_RESET
    assert not hasattr(m, "HARD_RESET")  # rp2 exports PWRON_RESET and WDT_RESET only


# ---- time, micropython ---------------------------------------------------------------------


def test_time_sleeps_advance_the_virtual_clock(chip, mods):
    t = mods["time"]
    t0 = t.ticks_us()
    t.sleep_ms(15)
    t.sleep_us(7)
    t.sleep(0.5)
    assert t.ticks_diff(t.ticks_us(), t0) == 515_007
    assert chip.now == chip.cycles(0.515007)


def test_ticks_wrap_like_micropython(mods):
    t = mods["time"]
    period = 1 << 30
    assert t.ticks_add(period - 1, 2) == 1
    assert t.ticks_diff(1, period - 1) == 2
    assert t.ticks_diff(period - 1, 1) == -2


def test_micropython_schedule_runs_at_the_next_boundary(chip, mods):
    mp = mods["micropython"]
    ran = []
    mp.schedule(lambda arg: ran.append((arg, chip.now)), 7)
    assert ran == []
    mods["time"].sleep_us(1)  # mp_hal_delay_us: a busy loop, no callback runs in it
    assert ran == []
    mods["time"].sleep_ms(1)  # mp_event_wait_ms: pending callbacks run first
    assert ran == [(7, chip.us_to_cycles(1))]
    assert mp.const(5) == 5


# ---- machine.RTC (ports/rp2/machine_rtc.c over the always-on timer; ports/rp2/main.c) ------
@pytest.mark.req("FR-17")
def test_rtc_starts_at_2021_reads_and_sets_the_8_tuple_and_time_follows(chip, mods):
    import calendar

    machine, time = mods["machine"], mods["time"]
    rtc = machine.RTC()
    # main.c starts the clock at 2021-01-01 00:00 (a Friday: weekday 4, Monday being 0)
    assert rtc.datetime() == (2021, 1, 1, 4, 0, 0, 0, 0)
    assert time.time() == calendar.timegm((2021, 1, 1, 0, 0, 0))
    chip.advance_to(chip.now + chip.cycles(61.5))
    assert rtc.datetime() == (2021, 1, 1, 4, 0, 1, 1, 0)
    # Set: the weekday and subseconds given are ignored, the weekday read is computed
    assert rtc.datetime((2026, 8, 24, 6, 13, 5, 9, 999)) is None
    assert rtc.datetime() == (2026, 8, 24, 0, 13, 5, 9, 0)  # a Monday
    assert time.time() == calendar.timegm((2026, 8, 24, 13, 5, 9))
    assert time.gmtime()[:6] == (2026, 8, 24, 13, 5, 9)
    # timeutils_seconds_since_epoch takes the fields unchecked: February 30 is March 2
    rtc.datetime((2026, 2, 30, 0, 25, 0, 0, 0))
    assert rtc.datetime()[:3] == (2026, 3, 3) and rtc.datetime()[4] == 1
    with pytest.raises(ValueError):
        rtc.datetime((2026, 8, 24, 13, 5, 9))  # exactly 8 items
    with pytest.raises(TypeError):
        machine.RTC(0)  # the port's constructor takes no argument


@pytest.mark.req("FR-17")
def test_rtc_survives_a_soft_reset_not_a_hard_reset(chip):
    mods = build_modules(chip, FlashFs(), _Console())
    mods["machine"].RTC().datetime((2026, 8, 24, 0, 13, 5, 9, 0))
    # A soft reset rebuilds the modules on the same chip: the clock runs on
    again = build_modules(chip, FlashFs(), _Console())
    assert again["machine"].RTC().datetime()[:3] == (2026, 8, 24)
    # A hard reset (watchdog, machine.reset()) runs main() again: 2021-01-01
    with pytest.raises(ChipReset):
        chip.hard_reset(port_math.WDT_RESET)
    after = build_modules(chip, FlashFs(), _Console())
    assert after["machine"].RTC().datetime()[:3] == (2021, 1, 1)


def test_the_chip_boots_at_the_ports_clock_until_the_firmware_sets_the_boards():
    """ports/rp2/main.c sets SYS_CLK_KHZ (125 MHz on the RP2040) at power-up and hard reset,
    before its soft-reset loop. A chip simulated at a board's 100 MHz reports 125 MHz until
    machine.freq(100 MHz); a PIO state machine or PWM slice set up before then would run at
    another rate on the board than here, so the simulated chip refuses it. A soft reset keeps
    the clock, a hard reset brings back the boot clock."""
    chip = Chip(100_000_000, cpu_scale=0, boot_hz=PORT_BOOT_HZ)
    m = build_modules(chip, FlashFs(), _Console())["machine"]
    assert m.freq() == 125_000_000
    with pytest.raises(ClockMismatch, match="PWM slice 1 set up at 125000000 Hz"):
        m.PWM(m.Pin(2), freq=1000, duty_u16=0)
    rp2 = build_modules(chip, FlashFs(), _Console())["rp2"]
    prog = _flagger(rp2)
    with pytest.raises(ClockMismatch, match="PIO0 state machine 0"):
        rp2.StateMachine(0, prog)
    m.freq(100_000_000)
    assert m.freq() == 100_000_000
    m.PWM(m.Pin(2), freq=1000, duty_u16=0)
    rp2.StateMachine(0, prog)
    again = build_modules(chip, FlashFs(), _Console())["machine"]  # a soft reset
    assert again.freq() == 100_000_000
    with pytest.raises(ChipReset):
        chip.hard_reset(port_math.WDT_RESET)
    after = build_modules(chip, FlashFs(), _Console())["machine"]
    assert after.freq() == 125_000_000
    with pytest.raises(NotImplementedError):
        after.freq(133_000_000)  # any other clock is not modelled


# ---- rp2.StateMachine.irq (ports/rp2/rp2_pio.c: rp2_state_machine_irq, pio_irq0) ---------


def _flagger(rp2):
    @rp2.asm_pio()
    def flag_every_40_cycles():
        irq(rel(0))  # noqa: F821 - asm_pio supplies the instruction names
        nop()[31]  # noqa: F821
        nop()[6]  # noqa: F821

    return flag_every_40_cycles


@pytest.mark.parametrize(("trigger", "runs_on"), [(1, "own"), (2, "next")])
def test_state_machine_irq_trigger_reads_the_flags_as_the_port_does(chip, mods, trigger, runs_on):
    """pio_irq0: a state machine's handler runs when `(ints >> (8 + i)) & trigger` is set, ints
    being the block's flags that have a handler (INTE0), acknowledged together first. The
    default trigger 1 is its own flag; 2 is the next state machine's, not its own. SM1 runs at
    a third of SM0's rate, so whose flag woke SM0's handler shows in how often it ran."""
    rp2 = mods["rp2"]
    prog = _flagger(rp2)
    seen = {0: 0, 1: 0}
    sm0 = rp2.StateMachine(0, prog, freq=125_000_000)
    sm1 = rp2.StateMachine(1, prog, freq=125_000_000 // 3)
    sm0.irq(lambda sm: seen.__setitem__(0, seen[0] + 1), trigger, True)
    sm1.irq(lambda sm: seen.__setitem__(1, seen[1] + 1), 1, True)
    sm0.active(1)
    sm1.active(1)
    chip.advance_to(40 * 3 * 100)
    own, other = 300, 100  # SM0's flags, SM1's flags in the same time
    assert seen[1] == pytest.approx(other, abs=1)
    want = {"own": own, "next": other}[runs_on]
    assert seen[0] == pytest.approx(want, abs=1)
    assert chip.pio[0].irq_flags & 0b11 == 0  # every flag with a handler acknowledged

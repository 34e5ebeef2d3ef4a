"""Thin hardware layer: the board's buttons, LEDs, boost supply, battery ADC, watchdog and reset
cause, as plain objects built from the validated board dict and handed to the logic.

With `engine` (a channel's PIO state machine, LEVEL PWM and SENSE ADC) and `safe` (the safe
state, SR-8), the only firmware modules that import `machine` or `rp2`
(tests/firmware/test_layers.py reads the sources to keep it so). Pin numbers come from the
board dict, so the same code runs on every board in boards/.
"""

import time
from array import array

from machine import (
    ADC,
    PWM,
    PWRON_RESET,
    RTC,
    WDT,
    WDT_RESET,
    Pin,
    disable_irq,
    enable_irq,
    freq,
    lightsleep,
    mem32,
    reset_cause,
)
from micropython import const

from stim.gestures import BUTTONS

_TONE_HZ = const(2700)  # a piezo's loudest: most small piezo discs resonate near 2.7 kHz
_TONE_DUTY = const(32768)  # a square wave
_GPIO_IN = const(0xD0000004)  # SIO GPIO_IN: every pad's level in one read (datasheet 2.3.1.7)


def use_clock(hz):
    """Run the chip at the board's system clock (`sysclk_hz`): the PIO and PWM dividers are
    worked out from it (stim.pulse, stim.level), and the clock sets what the processor draws
    from the battery. machine.freq() re-locks the system PLL (ports/rp2/modmachine.c,
    set_sys_clock_khz); at the clock already running nothing changes."""
    if freq() != hz:
        freq(hz)


def reset_cause_name():
    """Why the chip last reset: "power_on", "watchdog" or "other". After a soft reset the port
    reports the last hardware cause (ports/rp2/modmachine.c keeps it)."""
    c = reset_cause()
    return "power_on" if c == PWRON_RESET else "watchdog" if c == WDT_RESET else "other"


_early = array("i", [0, 0])  # POWER's first press after watch_power(): ticks_ms, and 1 if seen


def _on_power_early(pin):
    # Hard IRQ while the app is still starting: note the instant once, allocate nothing.
    if not _early[1]:
        _early[0] = time.ticks_ms()  # type: ignore[call-overload]  # a small int on the port
        _early[1] = 1


def watch_power(board):
    """From boot on, note when POWER goes down, before the app can sample it: a wearer who
    presses POWER while the unit starts has the hold counted from the press (power_down_ms)."""
    Pin(board["buttons"]["power"], Pin.IN, Pin.PULL_UP).irq(
        _on_power_early, Pin.IRQ_FALLING, hard=True
    )


def power_down_ms():
    """How long ago POWER went down since watch_power() (at least 1), or 0 if it did not."""
    if not _early[1]:
        return 0
    d = time.ticks_diff(time.ticks_ms(), _early[0])
    return d if d > 0 else 1


def buttons_held(board):
    """Bit n set for each button (BUTTONS order) held down now, read once at boot. Active low."""
    bits = 0
    for i in range(4):
        pin = Pin(board["buttons"][BUTTONS[i]], Pin.IN, Pin.PULL_UP)
        if pin.value() == 0:
            bits |= 1 << i
    return bits


def read_adc(adc):
    """adc.read_u16() with interrupts masked for its conversion (a few microseconds): the ADC's
    input select and result register are shared, and a pulse-done interrupt reading SENSE in
    the read's wait would hand this read its own conversion, another input's value (a
    channel's SENSE for the boost or the battery). SR-6, SR-10: the boost check and the
    battery cut-off judge their own input."""
    s = disable_irq()
    v = adc.read_u16()
    enable_irq(s)
    return v


class Hardware:
    """The wearer's side of the board: buttons, status and channel LEDs, battery voltage."""

    def __init__(self, board):
        an = board["analog"]
        self._battery_v_per_count = an["adc_vref_v"] * an["battery_divider"] / 65535
        # The buttons are read from SIO GPIO_IN (buttons_down); their Pin objects only set the
        # pull-ups, and POWER's carries its interrupt.
        self._button_gp = [board["buttons"][name] for name in BUTTONS]
        m = 0
        for n in self._button_gp:
            pin = Pin(n, Pin.IN, Pin.PULL_UP)
            if not m:
                self._power = pin
            m |= 1 << n
        self._button_mask = m
        led = board["status_led"]
        self._status = [Pin(led[c], Pin.OUT, value=0) for c in ("r", "g", "b")]
        self._ch_leds = [Pin(ch["led"], Pin.OUT, value=0) for ch in board["channels"]]
        self._battery = ADC(board["battery_adc"])
        # Feedback outputs (stim.feedback), when the board has them; off (low) when built.
        b = board.get("buzzer")
        self._buzzer = None if b is None else PWM(Pin(b), freq=_TONE_HZ, duty_u16=0)
        h = board.get("haptic")
        self._haptic = None if h is None else Pin(h, Pin.OUT, value=0)
        self._fb = 0  # bit 0: tone on, bit 1: motor on
        # The charger's signal (SR-17), pulled to its idle level: no charger reads as none.
        cd = board.get("charge_detect")
        self._charge = None
        if cd is not None:
            pull = Pin.PULL_DOWN if cd["active"] else Pin.PULL_UP
            self._charge = Pin(cd["pin"], Pin.IN, pull)
            self._charge_active = cd["active"]

    def on_power_press(self, handler):
        """Run handler(pin) from a hard interrupt on the POWER button's press (falling edge):
        the stop comes from the press itself, not from the next poll of the loop (SR-7)."""
        self._power.irq(handler, Pin.IRQ_FALLING, hard=True)

    def sleep(self, ms):
        """Sleep up to ms with the clocks stopped (machine.lightsleep: ports/rp2/modmachine.c
        runs the chip from the 12 MHz crystal with only the timer clocked). A press of POWER
        ends it at once: its pin has a hard handler (on_power_press), and a pin interrupt with
        a handler wakes a timed lightsleep (micropython issue #7035); so do bytes from a host
        that has the USB device configured (its clock is kept). PIO and PWM stop where they
        are, so the caller sleeps only with every output off (SR-8). The watchdog keeps
        counting: ms must stay well below its timeout."""
        lightsleep(ms)

    def charging(self):
        """True while the charger says it charges (False on a board without its signal)."""
        c = self._charge
        return c is not None and c.value() == self._charge_active

    def buttons_down(self):
        """Bit n set while button BUTTONS[n] is pressed (active low). One read of every pad:
        with all four up, as nearly always, that is the whole cost (it runs every 10 ms)."""
        v = mem32[_GPIO_IN]
        m = self._button_mask
        if v & m == m:
            return 0
        bits = 0
        gp = self._button_gp
        for i in range(4):  # no enumerate(): the steady loop allocates nothing
            if not (v >> gp[i]) & 1:
                bits |= 1 << i
        return bits

    def status_led(self, r, g, b):
        self._status[0].value(r)
        self._status[1].value(g)
        self._status[2].value(b)

    def channel_led(self, index, on):
        self._ch_leds[index].value(on)

    def feedback(self, tone, motor):
        """The buzzer's tone and the motor on or off (pins that are absent are skipped); only
        a change touches the hardware."""
        bits = (1 if tone else 0) | (2 if motor else 0)
        if bits == self._fb:
            return
        self._fb = bits
        if self._buzzer is not None:
            self._buzzer.duty_u16(_TONE_DUTY if tone else 0)
        if self._haptic is not None:
            self._haptic.value(1 if motor else 0)

    def battery_v(self):
        return read_adc(self._battery) * self._battery_v_per_count


class Boost:
    """The high-voltage supply of the output stage: its enable pin and its voltage (through the
    boost divider on an ADC input). Off when built: a low enable is the safe state (SR-8)."""

    def __init__(self, board):
        an = board["analog"]
        self._pin = Pin(board["boost_en"], Pin.OUT, value=0)
        self._adc = ADC(board["boost_adc"])
        self._v_per_count = an["adc_vref_v"] * an["boost_divider"] / 65535
        self.nominal_v = an["compliance_v"]

    def on(self):
        self._pin.value(1)

    def off(self):
        self._pin.value(0)

    def is_on(self):
        return self._pin.value() == 1

    def volts(self):
        return read_adc(self._adc) * self._v_per_count


def start_watchdog(timeout_ms):
    """Arm the hardware watchdog (SR-8); the object returned has feed(). machine.WDT cannot
    stop it again: a deliberate way out to the REPL does that (stim.safe.watchdog_off)."""
    return WDT(timeout=timeout_ms)


def set_clock(dt):
    """Set the unit's clock (the host's `time`: [year, month, day, hours, minutes, seconds],
    UTC, checked by stim.hostcmd). machine.RTC takes (year, month, day, weekday, hours, minutes,
    seconds, subseconds) and ignores the weekday and subseconds (ports/rp2/machine_rtc.c);
    time.time() reads the same clock. A soft reset keeps it, a power cycle or a hard reset
    starts it again at 2021-01-01 (ports/rp2/main.c)."""
    RTC().datetime((dt[0], dt[1], dt[2], 0, dt[3], dt[4], dt[5], 0))

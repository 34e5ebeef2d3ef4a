"""Thin hardware layer: the board's buttons, LEDs, boost supply, battery ADC, watchdog and reset
cause, as plain objects built from the validated board dict and handed to the logic.

With `engine` (a channel's PIO state machine, LEVEL PWM and SENSE ADC) and `safe` (the safe
state, SR-8), the only firmware modules that import `machine` or `rp2`
(tests/firmware/test_layers.py reads the sources to keep it so). Pin numbers come from the
board dict, so the same code runs on every board in boards/.
"""

from machine import ADC, PWRON_RESET, RTC, WDT, WDT_RESET, Pin, reset_cause

from stim.gestures import BUTTONS

_CAUSES = {PWRON_RESET: "power_on", WDT_RESET: "watchdog"}


def reset_cause_name():
    """Why the chip last reset: "power_on", "watchdog" or "other". After a soft reset the port
    reports the last hardware cause (ports/rp2/modmachine.c keeps it)."""
    return _CAUSES.get(reset_cause(), "other")


def buttons_held(board):
    """Bit n set for each button (BUTTONS order) held down now, read once at boot. Active low."""
    bits = 0
    for i in range(4):
        pin = Pin(board["buttons"][BUTTONS[i]], Pin.IN, Pin.PULL_UP)
        if pin.value() == 0:
            bits |= 1 << i
    return bits


class Hardware:
    """The wearer's side of the board: buttons, status and channel LEDs, battery voltage."""

    def __init__(self, board):
        an = board["analog"]
        self._battery_v_per_count = an["adc_vref_v"] * an["battery_divider"] / 65535
        self._buttons = [Pin(board["buttons"][name], Pin.IN, Pin.PULL_UP) for name in BUTTONS]
        led = board["status_led"]
        self._status = [Pin(led[c], Pin.OUT, value=0) for c in ("r", "g", "b")]
        self._ch_leds = [Pin(ch["led"], Pin.OUT, value=0) for ch in board["channels"]]
        self._battery = ADC(board["battery_adc"])

    def on_power_press(self, handler):
        """Run handler(pin) from a hard interrupt on the POWER button's press (falling edge):
        the stop comes from the press itself, not from the next poll of the loop (SR-7)."""
        self._buttons[0].irq(handler, Pin.IRQ_FALLING, hard=True)

    def buttons_down(self):
        """Bit n set while button BUTTONS[n] is pressed (active low)."""
        bits = 0
        buttons = self._buttons
        for i in range(4):  # no enumerate(): the steady loop allocates nothing
            if not buttons[i].value():
                bits |= 1 << i
        return bits

    def status_led(self, r, g, b):
        self._status[0].value(r)
        self._status[1].value(g)
        self._status[2].value(b)

    def channel_led(self, index, on):
        self._ch_leds[index].value(on)

    def battery_v(self):
        return self._battery.read_u16() * self._battery_v_per_count


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
        return self._adc.read_u16() * self._v_per_count


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

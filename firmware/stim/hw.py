"""Thin hardware layer: the board's buttons, LEDs, boost and ADC inputs as plain methods.

The only firmware module besides `safe` that imports `machine`. Pin numbers come from the
validated board dict, so the same code runs on every board in boards/.
"""

from machine import ADC, Pin

BUTTONS = ("power", "mode", "plus", "minus")


class Hardware:
    def __init__(self, board):
        self.board = board
        an = board["analog"]
        self._vref = an["adc_vref_v"]
        self._battery_div = an["battery_divider"]
        self._boost_div = an["boost_divider"]
        self._buttons = [Pin(board["buttons"][name], Pin.IN, Pin.PULL_UP) for name in BUTTONS]
        led = board["status_led"]
        self._status = [Pin(led[c], Pin.OUT, value=0) for c in ("r", "g", "b")]
        self._ch_leds = [Pin(ch["led"], Pin.OUT, value=0) for ch in board["channels"]]
        self._battery = ADC(board["battery_adc"])
        self._boost_adc = ADC(board["boost_adc"])

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

    def adc_volts(self, adc):
        return adc.read_u16() * self._vref / 65535

    def battery_v(self):
        return self.adc_volts(self._battery) * self._battery_div

    def boost_v(self):
        return self.adc_volts(self._boost_adc) * self._boost_div

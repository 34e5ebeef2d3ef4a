"""LEVEL calibration in integers: a current in microamps <-> the LEVEL PWM duty (u16).

Pure module. The board's calibration table (duty fraction, mA) is piecewise linear; the slopes
are turned into fixed-point integers once, so a level change in the control loop or in an
interrupt handler costs small-int arithmetic only and allocates nothing on the device (every
intermediate value stays below 2**30, MicroPython's small-int range on the RP2040).
"""

_SMALL = 1 << 29  # keep every product well inside a small int


def _shift_for(ratios, span):
    """The largest fixed-point shift s (<= 16) with span * ratio * 2**s below _SMALL."""
    s = 16
    while s > 0 and span * max(ratios) * (1 << s) >= _SMALL:
        s -= 1
    return s


class Level:
    """One board's LEVEL stage: duty_for_ua() and ua_for_duty(), integers only."""

    def __init__(self, board, sysclk_hz):
        an = board["analog"]
        cal = an["level_calibration"]
        self.duty = [int(round(d * 65535)) for d, _m in cal]  # u16 duty at each point
        self.ua = [int(round(m * 1000)) for _d, m in cal]  # microamps at each point
        hz = an["level_pwm_hz"]
        # One PWM compare step, in u16: the port rounds a duty to the nearest step.
        self.lsb = 65535 * hz // sysclk_hz + 1
        top1 = (sysclk_hz + hz // 2) // hz  # compare steps per period at divider 1
        self.top1 = top1 if top1 <= 65536 else 0
        seg = range(1, len(cal))
        du = [self.ua[i] - self.ua[i - 1] for i in seg]
        dd = [self.duty[i] - self.duty[i - 1] for i in seg]
        n = len(du)
        # duty per uA and uA per duty on each segment, as fixed-point slopes
        self.sd = _shift_for([dd[i] / du[i] for i in range(n)], max(self.ua))
        self.kd = [(dd[i] << self.sd) // du[i] for i in range(n)]
        self.su = _shift_for([du[i] / dd[i] for i in range(n)], 65535)
        self.ku = [(du[i] << self.su) // dd[i] for i in range(n)]

    def duty_for_ua(self, ua):
        """LEVEL duty (u16) for a current, rounded down, and by one more compare step because
        the port rounds the u16 duty to the nearest compare value: the current never exceeds
        the request (SR-3), at the price of at most two compare steps below it."""
        u = self.ua
        if ua <= u[0]:
            return 0
        for i in range(1, len(u)):
            if ua <= u[i]:
                d = self.duty[i - 1] + ((ua - u[i - 1]) * self.kd[i - 1] >> self.sd)
                d -= self.lsb
                return d if d > 0 else 0
        return 65535

    def ua_for_duty(self, duty):
        """The current the source pushes at a LEVEL duty: after the port's rounding of the duty
        to a compare value (machine_pwm.c), through the calibration table."""
        if self.top1:
            cc = (duty * self.top1 + 32767) // 65535
            duty = cc * 65535 // self.top1
        d = self.duty
        for i in range(1, len(d)):
            if duty <= d[i]:
                # to the nearest microamp: a floor would put a compare step's exact current
                # (0.8 mA at 10/1250 on the pico) just under the judging threshold
                x = (duty - d[i - 1]) * self.ku[i - 1] + (1 << self.su >> 1)
                return self.ua[i - 1] + (x >> self.su)
        return self.ua[-1]

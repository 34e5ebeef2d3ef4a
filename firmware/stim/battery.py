"""Battery state from its voltage (SR-10). Pure module (no `machine`).

The reading is smoothed (the voltage sags under each pulse train), then compared with the
board's warning and cut-off thresholds with hysteresis: a state is left only when the voltage
has come back above its threshold plus the hysteresis, so a battery near a threshold does not
flicker between states.
"""

OK = 0
LOW = 1
CUTOFF = 2
NAMES = ("ok", "low", "cutoff")

SMOOTH_S = 2.0


class BatteryMonitor:
    def __init__(self, cfg):
        self.warn_v = cfg["warn_v"]
        self.cutoff_v = cfg["cutoff_v"]
        self.hyst_v = cfg["hysteresis_v"]
        self.state = OK
        self.v = None

    def update(self, volts, dt_s):
        """Feed one reading; returns the new state if it changed, else None."""
        if self.v is None or self.v < self.warn_v + self.hyst_v <= volts:
            # The first reading, or one back above the warning band (a charge): taken as it
            # is, so a charged battery is not reported low on its way up (smoothing is for
            # the sag under pulses, which only pulls readings down).
            self.v = volts
        else:
            self.v += (volts - self.v) * dt_s / (SMOOTH_S + dt_s)
        v = self.v
        st = self.state
        if v < self.cutoff_v:
            new = CUTOFF
        elif v < self.warn_v:
            new = LOW if st != CUTOFF or v >= self.cutoff_v + self.hyst_v else CUTOFF
        elif st != OK and v < self.warn_v + self.hyst_v:
            new = st if st == LOW else LOW
        else:
            new = OK
        if new != st:
            self.state = new
            return new
        return None

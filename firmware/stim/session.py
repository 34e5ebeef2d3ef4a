"""Session state machine. Pure module (no `machine`): states, transitions and the session timer.

    OFF --power--> IDLE --start--> RUNNING --pause--> PAUSED --resume--> RUNNING
    RUNNING --(delivered time reaches the length, SR-9)--> ENDING --(RAMP_DOWN_MS)--> IDLE
    RUNNING/PAUSED --stopped (no channel left: faults, MINUS to 0)--> IDLE
    any on-state --fatal--> FAULT (output off; only POWER off leaves it)
    any state --power--> OFF

Each method returns True when it changed the state, False when the event does not apply in the
current state (and nothing changed). The timer counts delivered time only: a pause stops it.
The app maps wearer gestures and hardware findings to these events and applies the output side
(start, pause, ramp down) to the stimulator.
"""

from micropython import const

OFF = 0
IDLE = 1
RUNNING = 2
PAUSED = 3
ENDING = 4
FAULT = 5
NAMES = ("off", "idle", "running", "paused", "ending", "fault")

RAMP_DOWN_MS = 2000  # session end and battery cut-off: the output fades over this
# time.ticks_ms() wraps every 2**30 ms (~12.4 days); both are small ints on MicroPython.
TICKS_MAX = 0x3FFFFFFF
_TICKS_HALF = const(0x20000000)


class Session:
    def __init__(self, length_s):
        self.state = OFF
        self.length_s = length_s
        self.delivered_ms = 0
        self._t_run = 0  # when RUNNING last began (ms)
        self._t_end = 0  # when ENDING began (ms)
        self.end_reason = None

    def _ms(self, now, then):
        # `now` is time.ticks_ms(), which wraps: a plain difference across the wrap is
        # negative and would stop the session timer for good (SR-9). As time.ticks_diff.
        d = (now - then) & TICKS_MAX
        return d if d < _TICKS_HALF else 0  # "before then": nothing delivered

    def set_length(self, length_s):
        self.length_s = length_s

    def power(self, now):
        """POWER held: on from OFF, off from anything else."""
        if self.state == OFF:
            self.state = IDLE
            return True
        self._stop_timer(now)
        self.state = OFF
        return True

    def start(self, now):
        if self.state != IDLE:
            return False
        self.state = RUNNING
        self.delivered_ms = 0
        self._t_run = now
        self.end_reason = None
        return True

    def pause(self, now):
        if self.state != RUNNING:
            return False
        self._stop_timer(now)
        self.state = PAUSED
        return True

    def resume(self, now):
        if self.state != PAUSED:
            return False
        self.state = RUNNING
        self._t_run = now
        return True

    def stopped(self, now, reason):
        """Every channel stopped by itself (faults, intensity 0): back to IDLE."""
        if self.state not in (RUNNING, PAUSED, ENDING):
            return False
        self._stop_timer(now)
        self.state = IDLE
        self.end_reason = reason
        return True

    def end(self, now, reason):
        """Begin the ramp down (timer, battery cut-off)."""
        if self.state not in (RUNNING, PAUSED):
            return False
        self._stop_timer(now)
        self.state = ENDING
        self._t_end = now
        self.end_reason = reason
        return True

    def fatal(self, now):
        if self.state == OFF or self.state == FAULT:
            return False
        self._stop_timer(now)
        self.state = FAULT
        return True

    def _stop_timer(self, now):
        if self.state == RUNNING:
            self.delivered_ms += self._ms(now, self._t_run)
            self._t_run = now

    def elapsed_ms(self, now):
        """Delivered time of this session so far."""
        if self.state == RUNNING:
            return self.delivered_ms + self._ms(now, self._t_run)
        return self.delivered_ms

    def remaining_s(self, now):
        r = self.length_s - self.elapsed_ms(now) // 1000
        return r if r > 0 else 0

    def tick(self, now):
        """Time-driven transitions. Returns "end" when the session timer runs out (SR-9) and
        "ended" when the ramp down is over; None otherwise."""
        if self.state == RUNNING and self.elapsed_ms(now) >= self.length_s * 1000:
            self.end(now, "timer")
            return "end"
        if self.state == ENDING and self._ms(now, self._t_end) >= RAMP_DOWN_MS:
            self.state = IDLE
            return "ended"
        return None

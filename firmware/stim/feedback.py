"""What the wearer feels or hears: the unit sits on the lower back, out of sight, so every
confirmation and every fault also plays on a vibration motor (`haptic`) and/or a piezo
(`buzzer`), when the board has them. Pure module (no `machine`): the vocabulary and a player
the LED task steps every TICK_MS; stim.hw drives the outputs.

Each pattern is told apart by its rhythm alone (count and length of pulses), never by pitch or
colour (README, "Wearer's guide"). A pattern is a run of on/off times in TICK_MS units,
alternating, starting with "on"; a counted pattern (a program's number, a step count)
repeats its unit that many times. Faults always play; the rest follow the `feedback` setting
(both, haptic, tone, off). Integers and preallocated buffers only: playing allocates nothing.
"""

from micropython import const

_TICK_MS = const(10)

# Events (small ints), in the order of their patterns in _PATTERNS. Private constants cost no
# heap on MicroPython: the modules that play them (stim.unit, stim.wearer) keep the same numbers
# as `_FB_<NAME>`, and tests/firmware/test_feedback.py checks that they agree.
_STEP_UP = const(0)
_STEP_DOWN = const(1)
_TOP = const(2)
_BOTTOM = const(3)
_COUNT = const(4)  # counted medium pulses: a program's number, a channel, minutes, a length
_BOTH = const(5)  # both channels: one very long
_LOCKED = const(6)
_UNLOCKED = const(7)
_START = const(8)
_END = const(9)
_OPEN = const(10)
_SHORT = const(11)
_LIMIT = const(12)
_FAULT = const(13)  # any other electrode or supply fault
_LOW_BATTERY = const(14)
_CUTOFF = const(15)
_CHARGING = const(16)
_POWER_ON = const(17)
_POWER_OFF = const(18)
_REFUSED = const(19)
_TENS = const(20)  # counted: tens of a step (status)
_UNITS = const(21)  # counted: units of a step (status)
_HOST_ASKS = const(22)  # a host asks for control or maintenance (SR-15): always plays
_URGENT_FROM = const(10)  # _OPEN.._CHARGING: faults and the supply; they always play
_URGENT_TO = const(16)

# The patterns, in event order, each ended by a zero: on, off, on, off, ... in TICK_MS units
# (10 ms); the last off is the pause before the next pattern. One bytes object, read in place.
_PATTERNS = (
    b"\x04\x0c\x00"  # step up: one tick
    b"\x0f\x0c\x00"  # step down: one longer buzz
    b"\x04\x06\x04\x06\x04\x14\x00"  # top step: three quick ticks
    b"\x28\x14\x00"  # bottom (step 0): one long buzz
    b"\x0c\x14\x00"  # counted: N medium pulses (program, channel, minutes, length)
    b"\x3c\x14\x00"  # both channels: one very long
    b"\x1e\x0a\x06\x14\x00"  # locked: long, short
    b"\x06\x0a\x1e\x14\x00"  # unlocked: short, long
    b"\x06\x08\x06\x08\x1e\x14\x00"  # session start: short, short, long
    b"\x1e\x08\x06\x08\x06\x14\x00"  # session end: long, short, short
    b"\x05\x05\x05\x05\x05\x05\x05\x05\x05\x14\x00"  # open electrode: five quick
    b"\x06\x06\x06\x1e\x06\x06\x06\x14\x00"  # short: two double pulses
    b"\x1e\x14\x1e\x14\x00"  # compliance limit: two long
    b"\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x14\x00"  # other fault: four medium
    b"\x14\x1e\x14\x1e\x00"  # battery low: two slow
    b"\x14\x1e\x14\x1e\x14\x1e\x00"  # battery empty: three slow
    b"\x32\x1e\x06\x14\x00"  # charging: very long, short
    b"\x32\x14\x00"  # power on: one half-second
    b"\x32\x0a\x32\x14\x00"  # power off: two half-seconds
    b"\x03\x03\x03\x03\x03\x14\x00"  # refused: three very fast
    b"\x1e\x14\x00"  # status, tens of a step: long pulses, counted
    b"\x06\x14\x00"  # status, units of a step: short pulses, counted
    b"\x06\x0a\x0f\x0a\x28\x28\x00"  # a host asks: short, medium, long (a question)
)
_EVENTS = const(23)
_AT = bytearray(_EVENTS)  # where each event's pattern starts in _PATTERNS
_n = 0
for _k in range(len(_PATTERNS)):
    if _k == 0 or _PATTERNS[_k - 1] == 0:
        _AT[_n] = _k
        _n += 1
del _n, _k

_QUEUE = const(8)


class Player:
    """Plays queued patterns one after the other; tick() says whether the output is on."""

    def __init__(self):
        self._q = bytearray(2 * _QUEUE)  # (event, count) pairs, a ring
        self._qh = 0
        self._qn = 0
        self._ev = -1  # the event playing, -1: none
        self._reps = 0  # repeats of its pattern still to play after this one
        self._i = 0  # the segment of the pattern in progress
        self._left = 0  # ticks left in it

    def play(self, ev, count=1):
        """Queue a pattern (count > 1: a counted one). A full queue drops the newest unless it
        is urgent: a fault or a supply pattern then replaces the last queued one."""
        if count < 1:
            count = 1
        if self._qn == _QUEUE:
            if not _URGENT_FROM <= ev <= _URGENT_TO and ev != _HOST_ASKS:
                return
            self._qn -= 1
        i = 2 * ((self._qh + self._qn) % _QUEUE)
        self._q[i] = ev
        self._q[i + 1] = count if count < 255 else 255
        self._qn += 1

    def playing(self):
        return self._ev >= 0 or self._qn > 0

    def tick(self):
        """One TICK_MS step: 0 while the output is off; on, 2 for a fault or supply pattern
        (it plays whatever the setting says), 1 for any other."""
        if self._ev < 0:
            if not self._qn:
                return 0
            i = 2 * self._qh
            self._ev = self._q[i]
            self._reps = self._q[i + 1] - 1
            self._qh = (self._qh + 1) % _QUEUE
            self._qn -= 1
            self._i = 0
            self._left = _PATTERNS[_AT[self._ev]]
        at = _AT[self._ev]
        on = 0
        if not self._i & 1:
            ev = self._ev
            # SR-15: the wearer must notice a host asking, whatever the feedback setting says.
            on = 2 if _URGENT_FROM <= ev <= _URGENT_TO or ev == _HOST_ASKS else 1
        self._left -= 1
        if self._left <= 0:
            self._i += 1
            if not _PATTERNS[at + self._i]:  # the pattern's end
                if self._reps > 0:
                    self._reps -= 1
                    self._i = 0
                else:
                    self._ev = -1
                    return on
            self._left = _PATTERNS[at + self._i]
        return on

"""Button gestures: from raw button samples to wearer intentions. Pure module (no `machine`).

Fed one sample of the four buttons (a bit mask, bit n = BUTTONS[n] down) every POLL_MS, it
debounces them and decodes:

- POWER: `POWER_DOWN` on the very first sample that sees it down, before any debounce, so the
  output can stop at once (SR-7); then `POWER_SHORT` on a release before POWER_LONG_MS, or
  `POWER_LONG` (on/off) once, when it has been held POWER_LONG_MS.
- MODE: `MODE_SHORT` on release before MODE_LONG_MS (next program); `MODE_LONG` once at
  MODE_LONG_MS (next channel selection: both, 1, 2).
- PLUS, MINUS: `PLUS`/`MINUS` on the press, then while held, one more every REPEAT_MS after
  REPEAT_DELAY_MS, at most REPEAT_MAX times per hold (SR-2: a bounded rate and amount).
- PLUS and MINUS held together for LOCK_MS: `LOCK` (toggle the lock), and no step from either.
- MODE and MINUS held together for _STATUS_MS: `STATUS` (the unit tells what runs), and neither
  a program or channel change from MODE nor a step or repeat from MINUS once both are down.
- Any button held longer than STUCK_MS (far beyond every gesture): `STUCK` once; the button is
  then ignored until it has been seen released, and can never raise intensity (SR-11). A
  button already down at reset is treated the same way: it never made a press. (`held`: the
  buttons down when the firmware first looked, before the app was ready; a button pressed
  after that but before the first sample is a press like any other.)

`update()` returns at most one event per sample (an int, 0 for none); events that arise in the
same sample wait in a small queue. `button` tells which button a STUCK or UNSTUCK is about.
Integers and preallocated lists only: nothing is allocated per sample.
"""

from micropython import const

POLL_MS = const(10)
DEBOUNCE_MS = const(30)
POWER_LONG_MS = const(1500)
MODE_LONG_MS = const(1000)
REPEAT_DELAY_MS = const(600)
REPEAT_MS = const(400)  # 2.5 steps per second while held
REPEAT_MAX = const(8)
LOCK_MS = const(3000)
_STATUS_MS = const(1000)
STUCK_MS = const(20_000)

BUTTONS = ("power", "mode", "plus", "minus")
# Button indexes (bit n of a sample, BUTTONS[n]); the events below are named for gestures.
B_POWER = const(0)
B_MODE = const(1)
B_PLUS = const(2)
B_MINUS = const(3)

NONE = const(0)
POWER_DOWN = const(1)
POWER_SHORT = const(2)
POWER_LONG = const(3)
MODE_SHORT = const(4)
MODE_LONG = const(5)
PLUS = const(6)
MINUS = const(7)
LOCK = const(8)
STUCK = const(9)
UNSTUCK = const(10)
STATUS = const(11)
NAMES = (
    "none",
    "power_down",
    "power_short",
    "power_long",
    "mode_short",
    "mode_long",
    "plus",
    "minus",
    "lock",
    "stuck",
    "unstuck",
    "status",
)

_QUEUE = const(8)


class Gestures:
    def __init__(self, held=None, power_ms=0):
        self._held = held  # buttons down at reset; None: those down at the first sample
        # POWER went down this long before the first sample, after reset (0: it did not): a
        # press made while the app was starting, its hold counted from its edge.
        self._power_ms = power_ms
        self._stable = 0  # debounced state
        self._raw = 0
        self._raw_ms = 0  # how long the raw state has been unchanged
        self._held_ms = [0, 0, 0, 0]  # how long each debounced button has been down
        self._fired = [0, 0, 0, 0]  # long/repeat events already given for this hold
        self._ignored = 0  # buttons not to decode until released (stuck, or down at start)
        self._stuck = 0
        # 1 while PLUS+MINUS are held together (lock in progress), 2 once LOCK fired; 3 while
        # MODE+MINUS are (status in progress), 4 once STATUS fired
        self._chord = 0
        self._chord_ms = 0
        self._q = [0] * _QUEUE
        self._qb = [0] * _QUEUE
        self._qh = 0
        self._qn = 0
        self._first = True
        self.button = 0  # the button of the event just returned

    def stuck(self):
        """Bit mask of the buttons now treated as stuck."""
        return self._stuck

    def _emit(self, ev, b):
        if self._qn < _QUEUE:
            i = (self._qh + self._qn) % _QUEUE
            self._q[i] = ev
            self._qb[i] = b
            self._qn += 1

    def update(self, bits, dt_ms=POLL_MS):
        """One sample of the buttons, dt_ms after the previous one (about POLL_MS; the time
        that really passed, so a slow loop does not stretch the gestures). Returns an event
        or 0."""
        if self._first:
            self._first = False
            # Down at power-up: not a press. Wait for a release before decoding it.
            held = bits if self._held is None else bits & self._held
            self._ignored = held
            self._stable = held
            self._raw = held
            if self._power_ms and bits & 1 and not held & 1:
                self.power_edge()
                self._held_ms[B_POWER] = self._power_ms
        if bits & 1 and not self._raw & 1 and not self._ignored & 1:
            self._emit(POWER_DOWN, B_POWER)  # SR-7: no debounce before a stop
        if bits != self._raw:
            self._raw = bits
            self._raw_ms = 0
        elif self._raw_ms < DEBOUNCE_MS:
            self._raw_ms += dt_ms
            if self._raw_ms >= DEBOUNCE_MS and bits != self._stable:
                self._debounced(bits)
        self._hold(dt_ms)
        return self.next_event()

    def power_edge(self):
        """POWER went down: its interrupt saw the edge, perhaps between two samples. From now
        on it counts as pressed (POWER_DOWN now, POWER_SHORT or POWER_LONG to follow), as if a
        sample had seen it; a button ignored (stuck, or down at power-up) stays ignored.
        Before the first sample nothing is decoded yet: that sample takes POWER as it finds
        it (down since before the app started: power_ms), so one press is one POWER_DOWN."""
        if self._first or self._ignored & 1 or self._raw & 1:
            return
        self._emit(POWER_DOWN, B_POWER)  # SR-7
        self._raw |= 1
        if not self._stable & 1:
            self._stable |= 1
            self._held_ms[B_POWER] = 0
            self._fired[B_POWER] = 0
        # POWER is taken as debounced; another button whose change was still being debounced
        # starts over, as on any change of the raw state (else it would wait for the next).
        self._raw_ms = DEBOUNCE_MS if self._raw == self._stable else 0

    def idle(self, bits):
        """No button down (`bits`, a sample) or on its way, stuck ones aside, and no event
        waiting: a sample now would change nothing, so the loop may skip it."""
        return (
            not (bits | self._raw | self._stable) & ~self._stuck
            and not self._qn
            and not self._first
        )

    def next_event(self):
        """The next queued event (0 if none), without a new sample."""
        if not self._qn:
            self.button = 0
            return NONE
        ev = self._q[self._qh]
        self.button = self._qb[self._qh]
        self._qh = (self._qh + 1) % _QUEUE
        self._qn -= 1
        return ev

    def _debounced(self, bits):
        old = self._stable
        self._stable = bits
        for b in range(4):
            m = 1 << b
            if bits & m and not old & m:
                self._held_ms[b] = 0
                self._fired[b] = 0
                if not self._ignored & m:
                    self._pressed(b)
            elif old & m and not bits & m:
                if self._ignored & m:
                    self._ignored &= ~m
                    if self._stuck & m:
                        self._stuck &= ~m
                        self._emit(UNSTUCK, b)
                else:
                    self._released(b)
        if self._chord:
            need = 12 if self._chord < 3 else 10  # PLUS+MINUS (lock), MODE+MINUS (status)
            if bits & need != need:
                self._chord = 0

    def _pressed(self, b):
        if b == B_MODE or b == B_MINUS:
            other = B_MINUS if b == B_MODE else B_MODE
            if self._stable & (1 << other) and not self._ignored & (1 << other):
                # The status chord: MODE changes nothing when released or held, MINUS steps
                # no further (its own press, if it came first, already stepped down).
                self._chord = 3
                self._chord_ms = 0
                self._fired[B_MODE] = 1
                self._fired[B_MINUS] = REPEAT_MAX
                return
        if b == B_PLUS or b == B_MINUS:
            other = B_MINUS if b == B_PLUS else B_PLUS
            if self._stable & (1 << other) and not self._ignored & (1 << other):
                # Second button of the lock chord: no step from it, and no repeat from either
                # for the rest of their holds (else the one still held after the chord would
                # catch up on the missed repeats at the sample rate: SR-2).
                self._chord = 1
                self._chord_ms = 0
                self._fired[B_PLUS] = REPEAT_MAX
                self._fired[B_MINUS] = REPEAT_MAX
                return
            self._emit(PLUS if b == B_PLUS else MINUS, b)

    def _released(self, b):
        if self._fired[b]:
            return  # the hold already said what it meant
        if b == B_POWER:
            self._emit(POWER_SHORT, b)
        elif b == B_MODE:
            self._emit(MODE_SHORT, b)

    def _hold(self, dt):
        st = self._stable
        for b in range(4):
            m = 1 << b
            if not st & m:
                continue
            self._held_ms[b] += dt
            held = self._held_ms[b]
            if held >= STUCK_MS and not self._stuck & m:
                self._stuck |= m
                self._ignored |= m
                self._emit(STUCK, b)
                continue
            if self._ignored & m:
                continue
            if b == B_POWER:
                if held >= POWER_LONG_MS and not self._fired[b]:
                    self._fired[b] = 1
                    self._emit(POWER_LONG, b)
            elif b == B_MODE:
                if held >= MODE_LONG_MS and not self._fired[b]:
                    self._fired[b] = 1
                    self._emit(MODE_LONG, b)
            elif not self._chord:
                n = self._fired[b]
                if n < REPEAT_MAX and held >= REPEAT_DELAY_MS + n * REPEAT_MS:
                    self._fired[b] = n + 1
                    self._emit(PLUS if b == B_PLUS else MINUS, b)
        if self._chord:
            self._chord_ms += dt
            if self._chord_ms >= LOCK_MS and self._chord == 1:
                self._chord = 2  # fired: once per chord
                self._emit(LOCK, B_PLUS)
            elif self._chord_ms >= _STATUS_MS and self._chord == 3:
                self._chord = 4
                self._emit(STATUS, B_MODE)

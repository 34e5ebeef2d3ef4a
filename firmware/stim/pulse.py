"""Pulse timing: from (rate, phase width, gap) to the words the PIO pulse program consumes.

Pure module (no `machine`): the same code computes the words on the device and predicts the
waveform in tests. The program (stim/engine.py) makes one biphasic pulse per period:

    PHASE_A high for W cycles, both low for G cycles, PHASE_B high for W cycles, then rest,

with both phases timed by the same register value, so they are equal by construction (SR-4),
and only one `set` instruction ever drives the pin pair, so A and B are never high together
(SR-5). Cycle counts are state-machine clock cycles; the state machine runs at the system
clock divided by an integer, chosen so that the longest phase fits the 16-bit phase field.

Exact cycle formulas of the program (derived instruction by instruction in engine.py):
    phase width   W = w_field + 2
    gap           G = g_field + 5
    period        P = 2 W + G + r_field + 14
"""

from micropython import const

PHASE_MIN_US = const(20)
PHASE_MAX_US = const(500)
GAP_MIN_US = const(1)
GAP_MAX_US = const(200)
RATE_MIN_HZ = 1
RATE_MAX_HZ = 150
PERIOD_MIN_NS = 1_000_000_000 // RATE_MAX_HZ
PERIOD_MAX_NS = 2_000_000_000  # a burst's pause: the slowest burst rate of a valid program

_W_EXTRA = const(2)
_G_EXTRA = const(5)
_P_EXTRA = const(14)
_FIELD_MAX = const(0xFFFF)
_REST_MAX = const(0x7FFFFFFF)
TOGGLE = const(0x80000000)


class PulseError(ValueError):
    pass


def sm_divider(sysclk_hz):
    """Smallest integer divider that fits the longest phase and gap into 16-bit fields."""
    div = 1
    while (PHASE_MAX_US * sysclk_hz) // (1_000_000 * div) > _FIELD_MAX + _W_EXTRA or (
        GAP_MAX_US * sysclk_hz
    ) // (1_000_000 * div) > _FIELD_MAX + _G_EXTRA:
        div += 1
    return div


def us_to_cycles(us, sm_hz):
    # Round to the nearest cycle, in integers: no float error for whole microseconds.
    return (int(us * 1000) * sm_hz + 500_000_000) // 1_000_000_000


def check(rate_hz, phase_us, gap_us):
    """Raise PulseError naming the parameter if a pulse cannot be produced as asked."""
    if not RATE_MIN_HZ <= rate_hz <= RATE_MAX_HZ:
        raise PulseError("rate_hz %s outside %d..%d" % (rate_hz, RATE_MIN_HZ, RATE_MAX_HZ))
    if not PHASE_MIN_US <= phase_us <= PHASE_MAX_US:
        raise PulseError("phase_us %s outside %d..%d" % (phase_us, PHASE_MIN_US, PHASE_MAX_US))
    if not GAP_MIN_US <= gap_us <= GAP_MAX_US:
        raise PulseError("gap_us %s outside %d..%d" % (gap_us, GAP_MIN_US, GAP_MAX_US))
    # The whole pulse must fit in the period with room to rest (duty at most 50 %).
    if (2 * phase_us + gap_us) * 2 * rate_hz > 1_000_000:
        raise PulseError(
            "pulse of 2x%s us + %s us gap does not fit %s Hz" % (phase_us, gap_us, rate_hz)
        )


def cycles(period_ns, phase_us, gap_us, sm_hz):
    """(W, G, P) in state-machine cycles for one plan entry (modulation.plan); P rounded to the
    nearest cycle. The period comes in nanoseconds, so a rate's period is kept to well under
    one part per million (whole microseconds were 50 ppm off at 150 Hz). A burst's pause is a
    long period, up to PERIOD_MAX_NS; the shortest is that of RATE_MAX_HZ."""
    if not PHASE_MIN_US <= phase_us <= PHASE_MAX_US:
        raise PulseError("phase_us %s outside %d..%d" % (phase_us, PHASE_MIN_US, PHASE_MAX_US))
    if not GAP_MIN_US <= gap_us <= GAP_MAX_US:
        raise PulseError("gap_us %s outside %d..%d" % (gap_us, GAP_MIN_US, GAP_MAX_US))
    # The longest pulse (2 x 500 us + 200 us) fills under a fifth of the shortest period.
    if not PERIOD_MIN_NS <= period_ns <= PERIOD_MAX_NS:
        raise PulseError("period_ns %s outside %d..%d" % (period_ns, PERIOD_MIN_NS, PERIOD_MAX_NS))
    p = (period_ns * sm_hz + 500_000_000) // 1_000_000_000
    return us_to_cycles(phase_us, sm_hz), us_to_cycles(gap_us, sm_hz), p


def period_ns(rate_hz):
    """The period of a pulse rate, in whole nanoseconds."""
    return int(1_000_000_000 / rate_hz + 0.5)


def words(w, g, p, toggle):
    """The (rest, shape) FIFO words for W, G, P cycles. `toggle` (0/1) must alternate between
    successive updates: the program treats a rest word equal to the current one as "no news"."""
    r = p - 2 * w - g - _P_EXTRA
    if w - _W_EXTRA < 0 or w - _W_EXTRA > _FIELD_MAX:
        raise PulseError("phase of %d cycles outside the program's range" % w)
    if g - _G_EXTRA < 0 or g - _G_EXTRA > _FIELD_MAX:
        raise PulseError("gap of %d cycles outside the program's range" % g)
    if r < 0 or r > _REST_MAX:
        raise PulseError("period of %d cycles too short or too long" % p)
    rest = r | (TOGGLE if toggle else 0)
    shape = (w - _W_EXTRA) | ((g - _G_EXTRA) << 16)
    return rest, shape


def period_of(rest_word, shape_word):
    """Inverse of `words`: (W, G, P) cycles that a pair of words produces."""
    w = (shape_word & _FIELD_MAX) + _W_EXTRA
    g = (shape_word >> 16) + _G_EXTRA
    r = rest_word & _REST_MAX
    return w, g, 2 * w + g + r + _P_EXTRA

"""Electrode checks (SR-6): what a channel's SENSE reading says about its load.

Pure module: thresholds, classification and the partial-lift watch. The pulse engine reads
SENSE in its pulse-done interrupt and compares it with integer thresholds computed here; the
stimulator runs the pre-start probe and the slower checks with the functions below.

How SENSE works (DESIGN.md): a peak-hold follows the electrode voltage V = I * Z during each
phase and decays with the board's time constant afterwards; the ADC reads it through the sense
divider. Right after a pulse the reading is the pulse's own peak, or the residue of the previous
one if that was higher. Hence:
- open: V reaches the compliance voltage (the current source cannot push the set current), or
  V / I says more than OPEN_OHM. At the compliance limit a lifted electrode (no current) and a
  high skin load at a high current (the source cannot reach the set current) read the same:
  the pulse engine stops the channel either way, and the stimulator tells them apart (`limit`:
  the load it had been taking at a lower current explains the limit, and a probe at 1 mA finds
  skin, not an open; see stim.stimulator);
- short: V / I below SHORT_OHM, or no fresh peak at all where the previous pulse left one
  (a load that fell by more than the hold's decay in one period);
- sense fault: a reading the hardware cannot produce (above the boost voltage: ADC stuck at the
  top rail), or a reading that does not move when pulses arrive (stuck anywhere).
Nothing is judged below MIN_JUDGE_MA: at that current the reading is too close to the noise,
and the output is too weak to hurt (like commercial units).
"""

import math

from micropython import const

# Good skin contact is 500 ohm to 8 kohm (DESIGN.md); these bounds sit well outside it.
OPEN_OHM = 20_000.0
SHORT_OHM = 100.0
# V at this fraction of the measured boost voltage means the source is at its compliance limit.
COMPLIANCE_FRACTION = 0.9
# Judge above this current; stop judging below the lower figure (hysteresis).
MIN_JUDGE_MA = 0.8
RELEASE_JUDGE_MA = 0.6
MIN_JUDGE_UA = 800
RELEASE_JUDGE_UA = 600
# Pre-start probe: a few weak, short pulses, below sensation (0.1 uC per phase).
PROBE_MA = 1.0
PROBE_UA = 1000
PROBE_PLAN = [(20_000_000, 100, 50)]  # (period_ns, phase_us, gap_us): 50 Hz, 100 us
PROBE_PULSES = 8
# The boost must reach this fraction of its nominal voltage before a start.
BOOST_OK_FRACTION = 0.8
# An idle SENSE (no pulse for a while) above this fraction of the boost is a stuck input.
IDLE_MAX_FRACTION = 0.1
# Partial lift: load over the session's own baseline (lowest smoothed load so far), in tenths.
_LIFT_WARN_X10 = const(20)  # 2.0x: reduce the channel's intensity
_LIFT_CLEAR_X10 = const(16)  # 1.6x: hysteresis, the warning ends below this
_LIFT_STOP_X10 = const(30)  # 3.0x: stop at once
LIFT_STOP_MS = 5000  # stop if the warning lasts this long after the reduction
_SMOOTH_MS = const(500)  # time constant of the smoothed load

# Fault codes shared with the engine's interrupt handler (small ints, no allocation). BOOST and
# LIFT are found by the stimulator (the supply did not come up; a partial lift that lasted), as
# is LIMIT, a condition rather than a fault: the source at its compliance limit into a real
# skin load, the channel held at the highest step that load takes.
OK = 0
OPEN = 1
SHORT = 2
SENSE = 3
BOOST = 4
LIFT = 5
LIMIT = 6
NAMES = ("ok", "open", "short", "sense", "boost", "lift", "limit")

DECAY_ONE = 4096  # fixed-point 1.0 for the interrupt handler's decay factors


class Scale:
    """SENSE ADC counts (read_u16) <-> electrode volts, for one board."""

    def __init__(self, board):
        an = board["analog"]
        vpc = an["adc_vref_v"] * an["sense_divider"] / 65535
        self.volts_per_count = vpc
        self.tau_us = an["sense_hold_tau_ms"] * 1000
        self.compliance_v = an["compliance_v"]
        # The same limits in integers, for a level given in microamps (counts_ua): counts per
        # microamp at OPEN_OHM (Q8) and at SHORT_OHM (Q16), and ohm = counts * ohm_k // ua.
        # Every product stays a small int up to 100 mA.
        self.open_q8 = int(OPEN_OHM * 256 / (1e6 * vpc))
        self.short_q16 = int(SHORT_OHM * 65536 / (1e6 * vpc))
        self.ohm_k = int(vpc * 1e6 * 4096)

    def volts(self, counts):
        return counts * self.volts_per_count

    def counts(self, volts):
        c = int(volts / self.volts_per_count)
        return 0 if c < 0 else (65535 if c > 65535 else c)

    def decay_q12(self, period_us):
        """Fraction of a held peak left after period_us, in 1/4096."""
        return int(DECAY_ONE * math.exp(-period_us / self.tau_us))


def thresholds(scale, level_ma, boost_v):
    """(open_counts, short_counts, rail_counts) for a pulse at level_ma with the boost at
    boost_v: a reading at or above open_counts is open, at or below short_counts is short,
    at or above rail_counts is impossible (sense fault)."""
    amps = level_ma / 1000
    open_v = min(OPEN_OHM * amps, COMPLIANCE_FRACTION * boost_v)
    # The electrode can never exceed the compliance voltage: 20 % above it is a broken input.
    rail = min(scale.counts(1.2 * max(boost_v, scale.compliance_v)), 65000)
    return scale.counts(open_v), scale.counts(SHORT_OHM * amps), rail


def open_counts(scale, ua, sat_c):
    """The open limit for a pulse of ua microamps, no higher than sat_c (the compliance
    limit): thresholds() in integers, for the control loop and the pulse engine, which must
    not allocate (hence one figure per call: a tuple would be a new object)."""
    o = (ua * scale.open_q8) >> 8
    return o if o < sat_c else sat_c


def short_counts(scale, ua):
    """The short limit for a pulse of ua microamps (thresholds() in integers)."""
    return (ua * scale.short_q16) >> 16


def ohm_factor_ua(scale, ua):
    """ohm = (counts * factor) >> 12 for a pulse of ua microamps; 0 below the judging current
    (load_ohm in integers, worked out when the level changes: the steady loop needs no float)."""
    if ua < RELEASE_JUDGE_UA:
        return 0
    return scale.ohm_k // ua


def load_ohm(scale, counts, level_ma):
    """Load estimate from a post-pulse reading; None when nothing can be judged."""
    if level_ma < RELEASE_JUDGE_MA:
        return None
    return scale.volts(counts) / (level_ma / 1000)


def judge(m, fresh, ref, prev_c, rail_c, open_c, short_c):
    """Fault code for a SENSE reading m (ADC counts) taken right after a pulse, against the
    limits for that pulse's current (open_counts, short_counts; rail_c: what no electrode can
    produce). fresh: m is a new peak, above what the previous pulse left in the hold; ref: the
    previous reading prev_c is a fair reference (a fresh peak, at the same or a lower current,
    on time). Integers only, no allocation: the pulse-done interrupt calls it every pulse."""
    if m >= rail_c:
        return SENSE
    if m >= open_c:
        return OPEN
    if m <= short_c:
        return SHORT
    if not fresh and ref and prev_c > 4 * short_c:
        # No fresh peak where the previous pulse, at the same or a lower current, made one:
        # the load fell by more than the hold's decay in one period. That is a short, even
        # while the residue still reads above SHORT_OHM.
        return SHORT
    return OK


def probe_verdict(scale, idle, samples, level_ma, boost_v):
    """Classify a load from the pre-start probe: (code, ohm or None).

    idle: SENSE before the first probe pulse; samples: readings right after probe pulses."""
    open_c, short_c, rail = thresholds(scale, level_ma, boost_v)
    s = sorted(samples)
    if not s:
        return SENSE, None
    mid = s[len(s) // 2]
    ohm = load_ohm(scale, mid, level_ma)
    if s[-1] >= rail or idle >= rail:
        return SENSE, None
    if idle > scale.counts(IDLE_MAX_FRACTION * boost_v):
        return SENSE, None  # the peak-hold cannot still hold a charge: stuck input
    if mid >= open_c:
        return OPEN, ohm
    if mid <= short_c:
        return SHORT, ohm
    # Pulses must lift the reading clearly above its idle value, or the input is not
    # following the electrode (stuck at a mid-scale value that happens to look plausible).
    if mid - idle < max(16, mid // 4):
        return SENSE, None
    return OK, ohm


class LiftWatch:
    """Partial-lift detection for one channel: the smoothed load against the session's
    baseline, in whole ohms and milliseconds (integers only: it runs in the steady loop).
    update() returns None, "reduce", "clear" or "stop"."""

    def __init__(self):
        self.reset(0)

    def reset(self, baseline_ohm):
        self.baseline_ohm = int(baseline_ohm)
        self.smooth_ohm = self.baseline_ohm
        self.warning = False
        self.warn_ms = 0

    def update(self, ohm, dt_ms):
        if self.smooth_ohm <= 0:
            self.smooth_ohm = ohm
        else:
            self.smooth_ohm += (ohm - self.smooth_ohm) * dt_ms // (_SMOOTH_MS + dt_ms)
        sm = self.smooth_ohm
        if self.baseline_ohm <= 0 or sm < self.baseline_ohm:
            # Skin impedance falls as gel and sweat settle in: track the lowest value.
            self.baseline_ohm = sm
        base = self.baseline_ohm
        if base <= 0:
            return None
        if sm * 10 >= base * _LIFT_STOP_X10:
            return "stop"
        if self.warning:
            if sm * 10 < base * _LIFT_CLEAR_X10:
                self.warning = False
                return "clear"
            self.warn_ms += dt_ms
            if self.warn_ms >= LIFT_STOP_MS:
                return "stop"
            return None
        if sm * 10 >= base * _LIFT_WARN_X10:
            self.warning = True
            self.warn_ms = 0
            return "reduce"
        return None

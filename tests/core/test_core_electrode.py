"""The pulse judgement (stim/electrode.py judge), run by pytest and on MicroPython's VM alike:
the same integers the pulse-done interrupt compares, on both interpreters."""

import math

from coreenv import BOARD, electrode, req

RAIL, OPEN, SHORT = 60000, 30000, 400  # counts: impossible, open and short limits


def judge(m, fresh=True, ref=False, prev=0):
    return electrode.judge(m, fresh, ref, prev, RAIL, OPEN, SHORT)


@req("SR-6")
def test_each_limit_is_inclusive_and_names_its_fault():
    assert judge(RAIL) == electrode.SENSE
    assert judge(RAIL - 1) == electrode.OPEN
    assert judge(OPEN) == electrode.OPEN
    assert judge(OPEN - 1) == electrode.OK
    assert judge(SHORT + 1) == electrode.OK
    assert judge(SHORT) == electrode.SHORT
    assert judge(0) == electrode.SHORT


@req("SR-6")
def test_a_missing_fresh_peak_is_a_short_only_against_a_fair_reference():
    residue = 5000  # above the short limit: what a falling load leaves in the hold
    strong = 4 * SHORT + 1  # the previous reading, well above what a short gives
    assert judge(residue, fresh=False, ref=True, prev=strong) == electrode.SHORT
    assert judge(residue, fresh=False, ref=True, prev=4 * SHORT) == electrode.OK
    assert judge(residue, fresh=False, ref=False, prev=strong) == electrode.OK
    assert judge(residue, fresh=True, ref=True, prev=strong) == electrode.OK


def test_the_judgement_is_a_small_int_for_every_reading():
    for m in range(0, 65536, 997):
        assert judge(m) in (electrode.OK, electrode.OPEN, electrode.SHORT, electrode.SENSE)


# ---- the probe and the slower checks: each threshold exactly on its boundary ------------------
SCALE = electrode.Scale(BOARD)
PROBE_MA = electrode.PROBE_MA
BOOST_V = BOARD["analog"]["compliance_v"]


def probe(idle, samples, level_ma=PROBE_MA):
    return electrode.probe_verdict(SCALE, idle, samples, level_ma, BOOST_V)[0]


def limits_at_probe():
    return electrode.thresholds(SCALE, PROBE_MA, BOOST_V)


@req("SR-6")
def test_probe_rail_and_open_and_short_limits_are_inclusive():
    open_c, short_c, rail = limits_at_probe()
    good = (open_c + short_c) // 2  # a plausible skin reading at the probe current
    assert probe(0, [good] * 8) == electrode.OK
    # one reading at the rail, wherever it falls among the eight, is a sense fault
    assert probe(0, [good] * 7 + [rail]) == electrode.SENSE
    assert probe(0, [good] * 7 + [rail - 1]) == electrode.OK
    assert probe(rail, [good] * 8) == electrode.SENSE
    # the median (the fifth of eight sorted readings) against the open and short limits
    assert probe(0, [good] * 3 + [open_c] * 5) == electrode.OPEN
    assert probe(0, [good] * 4 + [open_c] * 4) == electrode.OPEN
    assert probe(0, [good] * 5 + [open_c] * 3) == electrode.OK
    assert probe(0, [good] * 3 + [open_c - 1] * 5) == electrode.OK
    assert probe(0, [short_c] * 5 + [good] * 3) == electrode.SHORT
    assert probe(0, [short_c] * 4 + [good] * 4) == electrode.OK
    assert probe(0, [short_c + 1] * 5 + [good] * 3) != electrode.SHORT
    assert probe(0, []) == electrode.SENSE  # no reading at all: nothing to trust


@req("SR-6")
def test_probe_idle_limit_is_exclusive():
    # An idle SENSE above a tenth of the boost cannot be a decayed hold: a stuck input.
    open_c, short_c, rail = limits_at_probe()
    idle_max = SCALE.counts(electrode.IDLE_MAX_FRACTION * BOOST_V)
    high = open_c - 1  # the pulses lift the reading clearly above either idle value
    assert probe(idle_max, [high] * 8) == electrode.OK
    assert probe(idle_max + 1, [high] * 8) == electrode.SENSE


@req("SR-6")
def test_probe_pulses_must_lift_the_reading_by_a_quarter_or_16_counts():
    open_c, short_c, rail = limits_at_probe()
    idle_max = SCALE.counts(electrode.IDLE_MAX_FRACTION * BOOST_V)
    mid = min(open_c - 1, idle_max)  # large: a quarter of it is the margin
    need = max(16, mid // 4)
    assert need == mid // 4
    assert probe(mid - need, [mid] * 8) == electrode.OK
    assert probe(mid - need + 1, [mid] * 8) == electrode.SENSE
    # small readings (a weak probe): 16 counts is the margin
    weak_ma = 0.7
    short_weak = electrode.thresholds(SCALE, weak_ma, BOOST_V)[1]
    small = short_weak + 4
    assert small // 4 < 16
    assert probe(small - 16, [small] * 8, weak_ma) == electrode.OK
    assert probe(small - 15, [small] * 8, weak_ma) == electrode.SENSE


def test_rail_is_a_fifth_above_the_higher_of_boost_and_compliance_and_at_most_65000():
    comp = SCALE.compliance_v
    assert electrode.thresholds(SCALE, 1.0, comp)[2] == SCALE.counts(1.2 * comp)
    assert electrode.thresholds(SCALE, 1.0, comp / 2)[2] == SCALE.counts(1.2 * comp)
    assert electrode.thresholds(SCALE, 1.0, comp * 1.1)[2] == min(
        SCALE.counts(1.2 * comp * 1.1), 65000
    )
    assert electrode.thresholds(SCALE, 1.0, 1000.0)[2] == 65000


def test_a_voltage_outside_the_adc_range_is_the_nearest_code_a_reading_can_take():
    """A limit in counts is compared with u16 readings: a voltage above the SENSE full scale
    (a boost reading can be: its divider differs) is 65535, the top code a reading reaches,
    not 65536, which no reading could ever meet; a negative one is 0."""
    vpc = SCALE.volts_per_count
    assert SCALE.counts(65535.5 * vpc) == 65535
    for over in (65536.5, 65537.5, 1.5 * 65535):  # the first codes past the top, and far past
        assert SCALE.counts(over * vpc) == 65535
    for under in (-0.5, -1.5, -2.5, -1000.0):
        assert SCALE.counts(under * vpc) == 0


def test_judging_starts_at_its_release_current_exactly():
    assert electrode.ohm_factor_ua(SCALE, electrode.RELEASE_JUDGE_UA) == (
        SCALE.ohm_k // electrode.RELEASE_JUDGE_UA
    )
    assert electrode.ohm_factor_ua(SCALE, electrode.RELEASE_JUDGE_UA - 1) == 0
    assert electrode.load_ohm(SCALE, 1000, electrode.RELEASE_JUDGE_MA) is not None
    assert electrode.load_ohm(SCALE, 1000, electrode.RELEASE_JUDGE_MA - 0.001) is None
    # the figures written out (the constants' own check): 600 uA judged, 599 uA not
    assert electrode.ohm_factor_ua(SCALE, 600) == SCALE.ohm_k // 600
    assert electrode.ohm_factor_ua(SCALE, 599) == 0


def test_open_limit_is_the_compliance_limit_when_that_is_lower():
    ua = 10_000
    o = (ua * SCALE.open_q8) >> 8
    assert electrode.open_counts(SCALE, ua, o + 1) == o
    assert electrode.open_counts(SCALE, ua, o) == o
    assert electrode.open_counts(SCALE, ua, o - 1) == o - 1


def lift(baseline, ohm, ms=0, warned=False):
    w = electrode.LiftWatch()
    w.reset(baseline)
    w.smooth_ohm = ohm  # the smoothed load has settled there
    w.warning = warned
    w.warn_ms = ms
    return w


@req("SR-6")
def test_partial_lift_thresholds_are_exact():
    base = 1000
    # stop at 3.0x the baseline, warn (reduce) at 2.0x, the warning ends below 1.6x
    assert lift(base, 3000).update(3000, 0) == "stop"
    assert lift(base, 2999).update(2999, 0) == "reduce"
    assert lift(base, 2000).update(2000, 0) == "reduce"
    assert lift(base, 1999).update(1999, 0) is None
    assert lift(base, 1600, warned=True).update(1600, 0) is None
    assert lift(base, 1599, warned=True).update(1599, 0) == "clear"
    # a warning that lasts 5 s (README, "While it runs") stops the channel, not a millisecond
    # earlier
    stop_ms = 5000
    assert lift(base, 2500, ms=stop_ms - 10, warned=True).update(2500, 10) == "stop"
    assert lift(base, 2500, ms=stop_ms - 11, warned=True).update(2500, 10) is None


@req("SR-6")
def test_the_first_load_reading_is_taken_as_it_is_not_smoothed_from_zero():
    # A watch with no reading yet: the first one is the baseline itself, so a steady load is
    # never mistaken for a lift from a near-zero smoothed start.
    w = electrode.LiftWatch()
    assert w.update(1000, 10) is None
    assert w.smooth_ohm == 1000 and w.baseline_ohm == 1000
    for _ in range(200):
        assert w.update(1000, 10) is None


def test_a_zero_load_is_no_lift():
    # 0 ohm is a short's business (the pulse judgement), not a partial lift's
    w = electrode.LiftWatch()
    for _ in range(10):
        assert w.update(0, 10) is None


@req("SR-6")
def test_the_holds_decay_is_in_q12_as_the_engine_reads_it():
    """The pulse engine's handler takes the hold's residue as (reading * decay) >> 12, so the
    decay factor is in 1/4096: a period of zero keeps the whole reading, one time constant
    keeps 1/e of it."""
    tau_us = round(BOARD["analog"]["sense_hold_tau_ms"] * 1000)
    assert SCALE.decay_q12(0) == 4096
    assert SCALE.decay_q12(tau_us) == int(4096 * math.exp(-1))
    assert SCALE.decay_q12(10 * tau_us) == int(4096 * math.exp(-10))


@req("SR-6")
def test_the_adcs_full_scale_is_its_reference_times_the_divider():
    """read_u16() gives 65535 at the ADC's reference voltage (the rp2 port scales the 12-bit
    reading up so), so that reading is the reference times the SENSE divider at the
    electrode, and half of it half that."""
    an = BOARD["analog"]
    full_v = an["adc_vref_v"] * an["sense_divider"]
    assert abs(SCALE.volts(65535) - full_v) < 1e-9 * full_v
    assert abs(SCALE.volts(65535 / 2) - full_v / 2) < 1e-9 * full_v


@req("SR-6")
def test_a_second_warning_is_timed_from_its_own_reduction():
    """A partial lift warned, cleared, then warned again: the second warning stops the channel
    5 s after its own reduction, to the millisecond, not sooner for the time the first ran."""
    w = lift(1000, 2500)
    assert w.update(2500, 10) == "reduce"
    assert w.update(2500, 3000) is None  # 3 s of the first warning
    assert w.update(1000, 10_000) == "clear"
    assert w.update(2500, 100_000) == "reduce"
    assert w.update(2500, 4999) is None
    assert w.update(2500, 1) == "stop"


@req("SR-6")
def test_a_reading_of_1_ohm_is_a_reading_like_any_other():
    """Only a load of 0 or less means "no reading yet": 1 ohm is smoothed from and is the
    baseline, so a load that then rises twenty-fold is a lift."""
    w = electrode.LiftWatch()
    assert w.update(1, 10) is None
    assert (w.smooth_ohm, w.baseline_ohm) == (1, 1)
    assert w.update(1000, 10) == "stop"
    assert (w.smooth_ohm, w.baseline_ohm) == (1 + 999 * 10 // 510, 1)

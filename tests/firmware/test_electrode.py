"""Electrode checks (SR-6, SR-1), observed at the simulated load and pins.

The board model changes the load (lift, short, partial lift), breaks the sense input (stuck at
a rail or at a mid-scale value), adds noise and spikes, or keeps the boost down; the tests look
at which pulses the channel's bridge and current source still drive into the load, at the other
channel, and at the channel LEDs. The pure classification functions are tested first.
"""

from __future__ import annotations

import pytest

from host_tools import fwcore

ON_S = 0.5
START_S = 3.0
RUN_S = 6.0  # by now both channels run at their step (probe + 2 s soft start)
DRIVE_MIN_MA = 0.05  # a pulse with less drive than this is not output
# ADC noise for the noisy-load tests: 5 mV rms at the pin is about 6 LSB of the 12-bit ADC,
# several times what an RP2040 ADC with a decoupled reference shows.
NOISE_V = 0.005


electrode = fwcore.load("stim.electrode")  # the pure core, without the simulated chip


# ---- pure core ---------------------------------------------------------------------------
BOARD = {"analog": {"adc_vref_v": 3.3, "sense_divider": 30.0, "sense_hold_tau_ms": 5.0,
                    "compliance_v": 80.0}}  # fmt: skip


def counts_for(ohm, ma, scale):
    return scale.counts(min(ohm * ma / 1000, 80.0))


@pytest.mark.req("SR-6")
@pytest.mark.parametrize(
    ("ohm", "want"),
    [(500, "ok"), (1000, "ok"), (8000, "ok"), (1e9, "open"), (50_000, "open"), (1.0, "short"),
     (60.0, "short")],
)  # fmt: skip
def test_probe_classifies_the_load_from_its_reading(ohm, want):
    scale = electrode.Scale(BOARD)
    c = counts_for(ohm, electrode.PROBE_MA, scale)
    code, est = electrode.probe_verdict(scale, 0, [c] * 8, electrode.PROBE_MA, 80.0)
    assert electrode.NAMES[code] == want
    if want == "ok":
        assert est == pytest.approx(ohm, rel=0.02)


@pytest.mark.req("SR-6")
def test_probe_calls_a_stuck_sense_input_a_fault_never_ok():
    scale = electrode.Scale(BOARD)
    ma = electrode.PROBE_MA
    top = scale.counts(3.3 * 30)
    assert electrode.probe_verdict(scale, top, [top] * 8, ma, 80.0)[0] == electrode.SENSE
    mid = scale.counts(30.0)  # stuck at 1 V on the ADC pin: 30 V at the electrode
    assert electrode.probe_verdict(scale, mid, [mid] * 8, ma, 80.0)[0] == electrode.SENSE
    low = counts_for(1000, ma, scale)  # stuck at exactly what a good load would read
    assert electrode.probe_verdict(scale, low, [low] * 8, ma, 80.0)[0] == electrode.SENSE
    assert electrode.probe_verdict(scale, 0, [0] * 8, ma, 80.0)[0] == electrode.SHORT


@pytest.mark.req("SR-6")
@pytest.mark.parametrize("at", [0, 3, 7])
def test_one_probe_reading_at_the_rail_is_a_sense_fault(at):
    """A good load's readings but one of the eight at the ADC rail: no electrode can give that
    reading, so the input is broken, whichever pulse it came after."""
    scale = electrode.Scale(BOARD)
    ma = electrode.PROBE_MA
    good = counts_for(1000, ma, scale)
    rail = electrode.thresholds(scale, ma, 80.0)[2]
    samples = [good] * 8
    samples[at] = rail
    assert electrode.probe_verdict(scale, 0, samples, ma, 80.0)[0] == electrode.SENSE
    samples[at] = rail - 1  # just below: a reading a load could give, judged by the rest
    assert electrode.probe_verdict(scale, 0, samples, ma, 80.0)[0] == electrode.OK


@pytest.mark.req("SR-6")
def test_a_load_is_judged_only_above_the_minimum_current():
    scale = electrode.Scale(BOARD)
    assert electrode.load_ohm(scale, 1000, electrode.RELEASE_JUDGE_MA / 2) is None
    assert electrode.load_ohm(scale, 1000, electrode.MIN_JUDGE_MA) > 0


@pytest.mark.req("SR-6")
def test_open_threshold_follows_the_compliance_limit_at_high_current():
    scale = electrode.Scale(BOARD)
    o_low, s_low, _ = electrode.thresholds(scale, 1.0, 80.0)
    o_high, s_high, _ = electrode.thresholds(scale, 60.0, 80.0)
    assert scale.volts(o_low) == pytest.approx(20.0, rel=0.01)  # 20 kohm at 1 mA
    assert scale.volts(o_high) == pytest.approx(72.0, rel=0.01)  # 90 % of the boost
    assert s_low < s_high < o_high


@pytest.mark.req("SR-6")
def test_lift_watch_reduces_then_stops_with_hysteresis():
    w = electrode.LiftWatch()
    w.reset(1000)
    acts = [w.update(1000, 10) for _ in range(100)]
    assert set(acts) == {None}
    acts = [w.update(2500, 10) for _ in range(200)]
    assert acts.count("reduce") == 1 and "stop" not in acts
    acts = [w.update(1700, 10) for _ in range(200)]  # between clear and warn: still warning
    assert "clear" not in acts and w.warning
    acts = [w.update(1000, 10) for _ in range(200)]
    assert acts.count("clear") == 1 and not w.warning
    acts = [w.update(2500, 10) for _ in range(electrode.LIFT_STOP_MS // 10 + 300)]
    assert acts.count("reduce") == 1 and acts[-1] == "stop"
    w.reset(1000)
    acts = [w.update(4000, 10) for _ in range(100)]
    assert "stop" in acts[:60]  # far above the baseline: no waiting


@pytest.mark.req("SR-6")
def test_lift_watch_baseline_follows_the_skin_settling_down():
    w = electrode.LiftWatch()
    w.reset(2000)
    for _ in range(500):
        w.update(900, 10)
    assert abs(w.baseline_ohm - 900) <= 60  # integer smoothing settles within a few %
    assert "reduce" in [w.update(2000, 10) for _ in range(200)]


@pytest.mark.req("SR-6")
def test_integer_load_factor_matches_the_float_estimate():
    """The load in ohms from a reading: the float estimate is the reading's volts (the ADC's
    full scale is its reference times the divider) over the pulse's current; the integer one
    the interrupt handler works out is never above it and below it by no more than its
    roundings down lose (the factor's, 1 in f, and the final shift's, 1 ohm)."""
    scale = electrode.Scale(BOARD)
    an = BOARD["analog"]
    for ma in (0.8, 1.5, 15.0, 60.0):
        f = electrode.ohm_factor_ua(scale, int(ma * 1000))
        for counts in (100, 5000, 40000, 65535):
            exact = counts * an["adc_vref_v"] * an["sense_divider"] / 65535 / (ma / 1000)
            assert electrode.load_ohm(scale, counts, ma) == pytest.approx(exact, rel=1e-9)
            est = (counts * f) >> 12
            assert exact * (1 - 1 / f) - 1 <= est <= exact, (ma, counts, est, exact)
            assert counts * f < 2**30  # a MicroPython small int: no allocation
    assert electrode.ohm_factor_ua(scale, 100) == 0


@pytest.mark.req("SR-6")
@pytest.mark.parametrize("ua", [800, 1500, 3000, 15_000, 60_000])
def test_the_integer_limits_are_the_float_ones(ua):
    """open_counts and short_counts, the limits the control loop and the pulse engine work out
    without floats, are thresholds()' to a count or two (with the boost high enough that the
    compliance limit plays no part), a short of SHORT_OHM and an open of OPEN_OHM alike."""
    scale = electrode.Scale(BOARD)
    open_f, short_f, _ = electrode.thresholds(scale, ua / 1000, 10_000.0)
    if open_f < 65535:
        assert abs(electrode.open_counts(scale, ua, 65535) - open_f) <= 0.0005 * open_f + 1
    assert abs(electrode.short_counts(scale, ua) - short_f) <= 0.0005 * short_f + 1
    assert short_f > 10  # a short's limit is a real reading, not zero


# ---- at the simulated pins ---------------------------------------------------------------
def started(make_unit, *, mode_presses=0, steps=10, load_ohm=None, **kw):
    """Unit on, program chosen, `steps` PLUS presses from START_S (both channels)."""
    unit = make_unit("pico", load_ohm=load_ohm or {1: 1000.0, 2: 1000.0}, **kw)
    unit.press("power", at=ON_S, hold_s=1.7)
    t = START_S - 0.3 * mode_presses
    for i in range(mode_presses):
        unit.press("mode", at=t + 0.3 * i)
    for i in range(steps):
        unit.press("plus", at=START_S + 0.25 * i)
    return unit


def at_ma(peak_ma, want_ma):
    """A measured peak at a requested current: never above it, at most ~2 PWM steps below."""
    return want_ma - 0.2 <= peak_ma <= want_ma + 1e-9


def driven(unit, ch, t0=0.0, t1=1e9):
    """Pulses the channel drove (bridge pulsing, current source set) that ended after t0."""
    return unit.model.driven(ch, t0, t1, DRIVE_MIN_MA)


def led_levels(unit, ch, t0, t1):
    return unit.pin_trace(unit.board["channels"][ch - 1]["led"], t0, t1)


def faults(unit):
    return [(e["ch"], e["fault"]) for e in unit.logs("electrode")]


@pytest.mark.req("SR-6", "SR-2")
@pytest.mark.parametrize(("ohm", "fault"), [(1e9, "open"), (1.0, "short")])
def test_a_channel_with_bad_electrodes_does_not_start(make_unit, ohm, fault):
    unit = started(make_unit, steps=3, load_ohm={1: ohm, 2: 1000.0})
    unit.run_until(RUN_S)
    probe = driven(unit, 1)
    assert len(probe) == 3  # three PLUS presses, three tries: each first probe pulse finds it
    assert max(p.drive_ma for p in probe) <= electrode.PROBE_MA
    assert max(p.peak_a_ma for p in probe) <= electrode.PROBE_MA  # below sensation
    assert not driven(unit, 1, t0=START_S + 0.6)  # after the third press's probe
    # the other channel starts, and stays at step 1: the next two presses each retried the
    # faulted channel alone (one press, one channel: SR-2)
    ch2 = driven(unit, 2, t0=RUN_S - 0.5)
    assert ch2 and all(at_ma(p.peak_a_ma, 1.5) for p in ch2)
    ev = unit.logs("electrode")
    assert len(ev) == 3  # one refusal per PLUS press
    assert ev[0]["ch"] == 1 and ev[0]["fault"] == fault and "ohm" in ev[0]
    if fault == "short":
        assert ev[0]["ohm"] < electrode.SHORT_OHM
    assert unit.model.violations == []


@pytest.mark.req("SR-6", "SR-1")
@pytest.mark.parametrize("ch", [1, 2])
def test_the_electrode_check_is_eight_weak_short_balanced_pulses_at_the_load(make_unit, ch):
    """Before the first therapy pulse each channel is probed, seen at the load: 8 biphasic
    pulses 20 ms apart (50 Hz), 100 us a phase with 50 us between, at most 1 mA (0.1 uC a
    phase: below sensation), each balanced; the soft start comes after them."""
    tick_s = 8e-9  # one system-clock cycle: the PIO times every edge to it
    unit = started(make_unit, steps=1)
    unit.run_until(RUN_S)
    pulses = driven(unit, ch)
    probe = pulses[:8]
    assert [round((b.t_a - a.t_a) / tick_s) for a, b in zip(probe, probe[1:], strict=False)] == [
        round(0.020 / tick_s)
    ] * 7
    for p in probe:
        assert abs(p.width_a_s - 100e-6) <= tick_s and abs(p.width_b_s - 100e-6) <= tick_s
        assert abs(p.gap_s - 50e-6) <= 2 * tick_s
        assert 0.8 <= p.peak_a_ma <= electrode.PROBE_MA + 1e-9
        assert p.charge_a_c <= 0.1e-6 + 1e-12 and abs(p.net_charge_c) < 1e-12
    # then the therapy's soft start, after the electrode check has judged the 8 readings
    assert pulses[8].t_a - probe[-1].t_a > 0.025


@pytest.mark.req("FR-7")
@pytest.mark.req("SR-6")
def test_the_led_says_which_channel_and_why(make_unit):
    unit = started(make_unit, steps=2, load_ohm={1: 1e9, 2: 1.0})
    unit.run_until(4.0)
    open_led = led_levels(unit, 1, 4.0, 6.0)
    unit2 = started(make_unit, steps=2, load_ohm={1: 1.0, 2: 1e9})
    unit2.run_until(4.0)
    short_led = led_levels(unit2, 1, 4.0, 6.0)
    good = started(make_unit, steps=2)
    good.run_until(4.0)
    ok_led = led_levels(good, 1, 4.0, 5.0)
    assert set(ok_led) == {1}  # running: steady
    # open: fast blink (4 per second); short: two flashes per second. Told apart by count.
    rises = [
        sum(1 for a, b in zip(x, x[1:], strict=False) if b > a) for x in (open_led, short_led)
    ]
    assert rises[0] >= 7 and 3 <= rises[1] <= 4
    assert open_led != short_led


def lift_case(make_unit, mode_presses, t_change, new_ohm, steps=10):
    unit = started(make_unit, mode_presses=mode_presses, steps=steps)
    unit.at(t_change, unit.model.set_load, 1, new_ohm)
    unit.run_until(t_change + 1.5)
    return unit


@pytest.mark.req("SR-6", "SR-1")
@pytest.mark.parametrize("new_ohm", [1e9, 1.0], ids=["open", "short"])
@pytest.mark.parametrize(
    ("mode_presses", "period_s", "offsets"),
    [(0, 0.010, [0.0, 0.0021, 0.0049, 0.0077, 0.0099]), (1, 0.5, [0.0, 0.13, 0.37, 0.49])],
    ids=["100Hz", "2Hz"],
)
def test_open_or_short_stops_the_channel_within_one_pulse_period(
    make_unit, new_ohm, mode_presses, period_s, offsets
):
    for off in offsets:
        t_change = RUN_S + off
        unit = lift_case(make_unit, mode_presses, t_change, new_ohm)
        after = driven(unit, 1, t0=t_change)
        starts = [p for p in after if p.t_a >= t_change]
        assert len(starts) <= 1, "more than one pulse started after the change"
        pulse_s = max((p.end_s - p.t_a for p in after), default=0.0)
        if after:
            assert after[-1].end_s - t_change <= period_s + pulse_s
            if period_s <= 0.020:
                assert after[-1].end_s - t_change <= 0.020
        assert not driven(unit, 1, t0=t_change + period_s + 0.01)
        # SR-1: the intensity is 0 after the fault, so re-contact brings no output
        unit.model.set_load(1, 1000.0)
        unit.run_for(3.0)
        assert not driven(unit, 1, t0=t_change + period_s + 0.01)
        assert faults(unit) == [(1, "open" if new_ohm > 1e6 else "short")]
        # the other channel carries on at its step
        ch2 = driven(unit, 2, t0=t_change - 0.5)
        assert ch2 and ch2[-1].t_a > t_change + 3.0
        assert all(at_ma(p.peak_a_ma, 15.0) for p in ch2)
        assert unit.model.violations == []
        unit.close()


@pytest.mark.req("SR-6", "SR-2")
@pytest.mark.parametrize("t_change", [START_S + 1.2, START_S + 1.6])
def test_a_short_during_the_soft_start_stops_the_channel_at_the_next_pulse(make_unit, t_change):
    """The electrodes short while channel 1 soft-starts (100 Hz, the level rising every
    control cycle, often within one LEVEL compare step): the next pulse finds no fresh peak
    where the one before made one, a short, though the hold's residue still reads above the
    short limit. The channel stops there, within one pulse period, as it does at a standing
    level."""
    unit = lift_case(make_unit, 0, t_change, 1.0, steps=4)
    after = driven(unit, 1, t0=t_change)
    assert len([p for p in after if p.t_a >= t_change]) <= 1
    assert not driven(unit, 1, t0=t_change + 0.02)
    assert faults(unit) == [(1, "short")]


def pulse_train(make_unit, mode_presses):
    """A first run at step 10 of the program `mode_presses` away: channel 1's pulse starts
    from RUN_S for 1.2 s, and the index of a train's first pulse, the one after the longest
    gap (between bursts, or the slowest point of a sweep). An identical second run then
    changes the load at an instant chosen on this grid."""
    unit = started(make_unit, mode_presses=mode_presses, steps=10)
    unit.run_until(RUN_S + 1.2)
    starts = [p.t_a for p in driven(unit, 1, t0=RUN_S)]
    return starts, max(range(1, len(starts)), key=lambda k: starts[k] - starts[k - 1])


@pytest.mark.req("SR-6")
@pytest.mark.parametrize(
    ("mode_presses", "pulse_k"),
    # TENS burst (7 pulses at 100 Hz, twice a second): a short after its 1st, 3rd and 6th
    # pulse; TENS modulated (80 Hz, its width sweeping): two points part-way through the sweep
    [(2, 1), (2, 3), (2, 6), (3, 20), (3, 45)],
)
def test_a_short_part_way_through_a_burst_or_a_sweep_stops_at_the_next_pulse(
    make_unit, mode_presses, pulse_k
):
    """Each pulse is judged against its own plan entry (the interval since the previous one,
    the hold's decay over it): wherever in the train the short comes, the next pulse's
    reading stops the channel. A first run finds the train's pulses; an identical second run
    shorts the load just after pulse k."""
    starts, k0 = pulse_train(make_unit, mode_presses)
    assert len(starts) > k0 + pulse_k
    t_change = starts[k0 + pulse_k - 1] + 0.001  # just after pulse k of the train
    unit2 = started(make_unit, mode_presses=mode_presses, steps=10)
    unit2.at(t_change, unit2.model.set_load, 1, 1.0)
    unit2.run_until(t_change + 1.0)
    assert len(driven(unit2, 1, t0=t_change)) <= 1, "more than one pulse after the short"
    assert faults(unit2) == [(1, "short")]


@pytest.mark.req("SR-6")
def test_a_load_that_falls_between_two_bursts_is_judged_against_the_long_gap(make_unit):
    """The first pulse of a burst follows the long gap between bursts, over which the hold
    has decayed to nothing: a load that fell to 300 ohm meanwhile (well above a short) reads
    as a fresh peak, not as the residue of a short, and the channel runs on. Judged with the
    decay of the burst's own 10 ms interval, the lower reading would look like a short's."""
    starts, k0 = pulse_train(make_unit, 2)  # TENS burst, 15 mA
    t_change = starts[k0] - 0.1  # in the gap, 100 ms before a burst
    unit2 = started(make_unit, mode_presses=2, steps=10)
    unit2.at(t_change, unit2.model.set_load, 1, 300.0)
    unit2.run_until(t_change + 1.5)
    assert faults(unit2) == []
    after = driven(unit2, 1, t0=t_change)
    assert len(after) >= 14 and all(at_ma(p.peak_a_ma, 15.0) for p in after)  # two bursts


@pytest.mark.req("SR-6", "SR-1", "SR-2")
def test_after_recontact_the_wearer_raises_intensity_again_from_zero(make_unit):
    unit = lift_case(make_unit, 0, RUN_S + 0.003, 1e9)
    unit.model.set_load(1, 1000.0)
    t = unit.chip.t_s + 1.0
    unit.press("plus", at=t)  # one step, both channels: channel 1 checks and starts again
    unit.run_until(t + 4.0)
    again = driven(unit, 1, t0=t)
    assert again
    peaks = [p.peak_a_ma for p in again]
    assert max(peaks) <= 1.5 + 1e-9  # one step, never the 15 mA it had before
    assert at_ma(peaks[-1], 1.5)
    assert [e["result"] for e in unit.logs("check") if e["ch"] == 1] == ["ok", "ok"]


@pytest.mark.req("SR-6")
def test_partial_lift_first_reduces_then_stops_the_channel(make_unit):
    t_lift = RUN_S
    unit = lift_case(make_unit, 0, t_lift, 2500.0)  # pad half off: load 2.5 x its baseline
    unit.run_until(t_lift + 1.0)
    reduced = driven(unit, 1, t0=t_lift + 0.8, t1=t_lift + 1.0)
    assert reduced and all(at_ma(p.peak_a_ma, 7.5) for p in reduced)
    assert [e["action"] for e in unit.logs("electrode_lift")] == ["reduce"]
    stop_s = electrode.LIFT_STOP_MS / 1000
    unit.run_until(t_lift + stop_s + 1.5)
    assert not driven(unit, 1, t0=t_lift + stop_s + 1.0)
    assert faults(unit) == [(1, "lift")]
    assert driven(unit, 2, t0=t_lift + stop_s + 1.0)


@pytest.mark.req("SR-6")
@pytest.mark.parametrize("mode_presses", [0, 1, 2], ids=["100Hz", "2Hz", "burst"])
def test_a_partial_lift_stops_the_channel_after_the_same_time_at_every_pulse_rate(
    make_unit, mode_presses
):
    """The lift rule's 5 s (and its smoothing) run in real time: at 2 Hz, or in bursts twice a
    second, a reading stands for the half second since the one before, not for one control
    cycle, so a pad left half off stops the channel as soon as at 100 Hz (H-1)."""
    t_lift = RUN_S
    unit = lift_case(make_unit, mode_presses, t_lift, 2500.0)
    stop_s = electrode.LIFT_STOP_MS / 1000
    unit.run_until(t_lift + stop_s + 2.5)
    assert [e["action"] for e in unit.logs("electrode_lift")] == ["reduce"]
    assert faults(unit) == [(1, "lift")]
    assert driven(unit, 1, t0=t_lift + stop_s - 1.0, t1=t_lift + stop_s)  # warned, not stopped
    assert not driven(unit, 1, t0=t_lift + stop_s + 1.5)  # two half-second readings, then off
    assert driven(unit, 2, t0=t_lift + stop_s + 1.5)


@pytest.mark.req("SR-6", "SR-2")
def test_a_partial_lift_halves_the_current_by_the_next_pulse_but_one(make_unit):
    """The reduction is a decrease (SR-2): it reaches the load by the next pulse but one after
    the watch decides, not at the next control cycle (100 ms later while levels stand)."""
    unit = lift_case(make_unit, 0, RUN_S, 2500.0)
    (reduce,) = unit.logs("electrode_lift")
    t_r = reduce["sim_t"]
    after = driven(unit, 1, t0=t_r + 0.021, t1=t_r + 0.5)
    assert len(after) > 40 and all(at_ma(p.peak_a_ma, 7.5) for p in after)


@pytest.mark.req("SR-6")
def test_at_2hz_one_reading_of_a_lifted_pad_moves_the_smoothed_load_half_way(make_unit):
    """The watch takes each reading once, for the half second it stands for at 2 Hz, with its
    500 ms time constant: one reading at 2.9x the baseline brings the smoothed load half way,
    short of the 2x warning, and the second confirms it. The two pulses after the lift keep
    the wearer's step; the third has half of it."""
    t_lift = RUN_S + 0.25
    unit = started(make_unit, mode_presses=1, steps=10)
    unit.at(t_lift, unit.model.set_load, 1, 2900.0)
    unit.run_until(t_lift + 1.6)
    peaks = [p.peak_a_ma for p in driven(unit, 1, t0=t_lift)]
    assert len(peaks) >= 3
    assert at_ma(peaks[0], 15.0) and at_ma(peaks[1], 15.0)
    assert all(at_ma(p, 7.5) for p in peaks[2:])


def last_start(unit, ch):
    """When channel ch last started (its soft start's beginning), from the `start` log line."""
    return [e["sim_t"] for e in unit.logs("start") if e["ch"] == ch][-1]


def resumed_lift(make_unit, pause_s, lift_after_s):
    """At 2 Hz and step 2, POWER short at pause_s (pause) and a second later (resume:
    electrode check, soft start back to the step); the pad on channel 1 lifts to 2.9x
    lift_after_s after the resumed run's start. (peak of each pulse, seconds after the lift)."""
    unit = started(make_unit, mode_presses=1, steps=2)
    unit.press("power", at=pause_s, hold_s=0.15)
    unit.press("power", at=pause_s + 1.0, hold_s=0.15)
    unit.run_until(pause_s + 1.0 + 1.0)
    t_start = last_start(unit, 1)
    assert t_start > pause_s
    t_lift = t_start + lift_after_s
    unit.at(t_lift, unit.model.set_load, 1, 2900.0)
    unit.run_until(t_lift + 3.0)
    return [(round(p.t_a - t_lift, 4), round(p.peak_a_ma, 2)) for p in driven(unit, 1, t_lift)]


@pytest.mark.req("SR-6")
@pytest.mark.parametrize("lift_after_s", [0.25, 0.75, 1.25])
def test_a_resumed_run_answers_a_lift_the_same_however_long_the_run_before_it(
    make_unit, lift_after_s
):
    """The watch counts a resumed run's readings from zero again: a run paused after two
    readings, or after a dozen, resumes the same way, and a pad that lifts early in the
    resumed soft start is reduced at the same pulse, with the same currents after it."""
    short = resumed_lift(make_unit, START_S + 1.0, lift_after_s)  # two readings, then pause
    long = resumed_lift(make_unit, START_S + 6.0, lift_after_s)
    assert len(short) >= 5 and short == long


def open_in_soft_start(make_unit, resumed):
    """At 2 Hz, skin at 9 kOhm, step 4 (6 mA); in the first run, or in one resumed after a
    pause, the load rises to 25 kOhm a quarter second after the start (the electrode check
    passed): an open at the soft start's currents, well under the compliance limit, and under
    3x the session's baseline (not a far lift). (driven pulses from the change up to the
    fault, the faults logged since the start)."""
    unit = started(make_unit, mode_presses=1, steps=4, load_ohm={1: 9000.0, 2: 1000.0})
    if resumed:
        unit.press("power", at=8.0, hold_s=0.15)
        unit.press("power", at=9.0, hold_s=0.15)
        unit.run_until(9.6)
    else:
        unit.run_until(START_S + 0.4)
    t_start = last_start(unit, 1)
    assert t_start > (9.0 if resumed else START_S)
    unit.at(t_start + 0.25, unit.model.set_load, 1, 25_000.0)
    unit.run_until(t_start + 3.0)
    logged = [e for e in unit.logs("electrode") if e["sim_t"] > t_start]
    t_end = logged[0]["sim_t"] if logged else t_start + 3.0
    return driven(unit, 1, t0=t_start + 0.25, t1=t_end), [e["fault"] for e in logged]


@pytest.mark.req("SR-6", "SR-1")
@pytest.mark.parametrize("resumed", [False, True], ids=["first_run", "resumed"])
def test_an_open_in_the_soft_start_stops_the_channel_at_the_first_pulse(make_unit, resumed):
    """Every start follows a stop (the electrode check's probe, or the run before a pause):
    a decrease to zero. The allowance for a hold settling after a decrease (only the
    compliance limit counts as open for a few pulses) must not carry into the start, nor
    apply when the hold has long emptied: at 2 Hz it let the first judged pulses of every run
    into an open (two of a first run, four of a resumed one, at 1-3 mA into 25 kOhm) before
    the trip. The first pulse after the change stops the channel, with its fault."""
    into, logged = open_in_soft_start(make_unit, resumed)
    assert logged[:1] == ["open"]
    assert len(into) == 1, [(round(p.t_a, 3), p.drive_ma) for p in into]


@pytest.mark.req("SR-6")
def test_a_partial_lift_at_the_first_step_keeps_it_until_the_lift_stops_the_channel(make_unit):
    """Halving cannot go below one step: at step 1 the reduction keeps the channel at its
    1.5 mA (not a silent drop to nothing with no fault shown), and the lift rule stops it with
    its fault when the pad stays half off."""
    t_lift = RUN_S
    unit = lift_case(make_unit, 0, t_lift, 2500.0, steps=1)
    unit.run_until(t_lift + 1.0)
    assert [(e["action"], e["step"]) for e in unit.logs("electrode_lift")] == [("reduce", 1)]
    kept = driven(unit, 1, t0=t_lift + 0.8, t1=t_lift + 1.0)
    assert kept and all(at_ma(p.peak_a_ma, 1.5) for p in kept)
    stop_s = electrode.LIFT_STOP_MS / 1000
    unit.run_until(t_lift + stop_s + 1.5)
    assert faults(unit) == [(1, "lift")]
    assert not driven(unit, 1, t0=t_lift + stop_s + 1.0)


@pytest.mark.req("SR-6", "SR-2")
def test_a_partial_lift_pressed_back_clears_and_keeps_the_reduced_step(make_unit):
    """The pad half off: the step is halved and the lift watched. Pressed back on before the
    lift time runs out, the warning clears (logged, for the channel it concerns) and the
    channel carries on at the reduced step: only the wearer raises it again (SR-2)."""
    t_lift = RUN_S
    unit = lift_case(make_unit, 0, t_lift, 2500.0)
    unit.at(t_lift + 1.0, unit.model.set_load, 1, 1000.0)
    stop_s = electrode.LIFT_STOP_MS / 1000
    unit.run_until(t_lift + stop_s + 2.0)
    lifts = unit.logs("electrode_lift")
    assert [(e["action"], e["ch"]) for e in lifts] == [("reduce", 1), ("clear", 1)]
    assert t_lift + 1.0 < lifts[1]["sim_t"] < t_lift + stop_s
    assert faults(unit) == []
    late = driven(unit, 1, t0=t_lift + stop_s + 1.0)
    assert late and all(at_ma(p.peak_a_ma, 7.5) for p in late)


@pytest.mark.req("SR-6")
def test_a_far_lift_stops_without_waiting(make_unit):
    unit = lift_case(make_unit, 0, RUN_S, 4000.0)  # 4 x baseline, still below OPEN_OHM
    assert not driven(unit, 1, t0=RUN_S + 1.0)
    assert faults(unit) == [(1, "lift")]


@pytest.mark.req("SR-6")
def test_a_slowly_settling_load_is_not_a_lift(make_unit):
    unit = started(make_unit, steps=10)
    for i in range(20):  # skin impedance falling from 1000 to 700 ohm over 20 s
        unit.at(RUN_S + i, unit.model.set_load, 1, 1000.0 - 15.0 * i)
    unit.run_until(RUN_S + 25)
    assert faults(unit) == [] and not unit.logs("electrode_lift")
    assert driven(unit, 1, t0=RUN_S + 24.5)


@pytest.mark.req("SR-6")
@pytest.mark.parametrize(
    ("adc_v", "fault"), [(3.3, "sense"), (0.0, "short"), (1.0, "sense"), (0.03, "sense")]
)
def test_a_stuck_sense_input_is_a_fault_not_ok(make_unit, adc_v, fault):
    unit = started(make_unit, steps=3)
    unit.model.adc_faults[0] = adc_v  # channel 1's SENSE reads adc_v whatever the load
    unit.run_until(RUN_S)
    # each PLUS press tries again (3 presses), and each try stops at the probe
    assert len(driven(unit, 1)) <= 3 * (electrode.PROBE_PULSES + 1)
    assert all(p.drive_ma <= electrode.PROBE_MA for p in driven(unit, 1))
    assert faults(unit) == [(1, fault)] * 3


@pytest.mark.req("SR-6")
@pytest.mark.parametrize(
    ("adc_v", "fault"),
    # 3.25 V: above what the boost's compliance (80 V, 1.2 x: 3.2 V at the pin) can give, below
    # the ADC's full scale
    [(3.3, "sense"), (3.25, "sense"), (0.0, "short")],
)
def test_a_sense_input_that_sticks_while_running_stops_the_channel(make_unit, adc_v, fault):
    unit = started(make_unit, steps=10)
    unit.at(RUN_S, unit.model.adc_faults.__setitem__, 0, adc_v)
    unit.run_until(RUN_S + 1.0)
    assert not driven(unit, 1, t0=RUN_S + 0.011)
    assert faults(unit) == [(1, fault)]


@pytest.mark.req("SR-6")
def test_a_boost_that_never_comes_up_stops_both_channels_before_any_pulse(make_unit):
    unit = started(make_unit, steps=3)
    unit.model.boost_fault = True
    unit.run_until(RUN_S)
    assert not driven(unit, 1) and not driven(unit, 2)
    assert set(faults(unit)) == {(1, "boost"), (2, "boost")}
    assert unit.pin(unit.board["boost_en"]) == 0


@pytest.mark.req("SR-6")
def test_a_weak_boost_stops_both_channels_and_its_log_gives_the_volts_it_reached(make_unit):
    """The boost comes up to 61.37 V of the board's 80 (under the 80 % it must reach): no
    pulse, fault `boost` on both channels, and each log line gives the volts the boost ADC
    read, to a tenth of a volt (the ADC's step through the divider is about 25 mV)."""
    unit = started(make_unit, steps=3)
    unit.model.compliance_v = 61.37
    unit.run_until(RUN_S)
    assert not driven(unit, 1) and not driven(unit, 2)
    lines = [e for e in unit.logs("electrode") if e["fault"] == "boost"]
    assert {e["ch"] for e in lines} == {1, 2}
    for e in lines:
        v = e["boost_v"]
        assert abs(v - 61.37) < 0.1 and round(v, 1) == v, e


@pytest.mark.req("SR-6")
@pytest.mark.parametrize(("raw12", "starts"), [(2457, True), (2456, False)])
def test_a_boost_reading_exactly_80_percent_is_up(make_unit, raw12, starts):
    """wearable_v1 (3.0 V reference, 1:40 divider, 90 V boost): ADC code 2457 reads exactly
    72.0 V, 80 % of the boost (read_u16 = 39321, x 120 / 65535: exactly 72.0 in double and
    in the port's single precision alike), and is up; one code below is not. The boost ADC is
    held at the middle of the code."""
    unit = make_unit("wearable_v1", load_ohm={1: 1000.0, 2: 1000.0})
    adc = unit.board["boost_adc"] - 26
    unit.model.adc_faults[adc] = unit.model.adc_code_v(raw12)
    unit.press("power", at=ON_S, hold_s=1.7)
    unit.press("plus", at=START_S)
    unit.run_until(START_S + 1.5)
    assert bool(driven(unit, 1, t0=START_S + 1.0)) is starts
    assert ((1, "boost") in faults(unit)) is not starts


@pytest.mark.req("SR-6")
@pytest.mark.parametrize("lift_ms", [0, 50])
@pytest.mark.parametrize("alone", [False, True], ids=["ch2_of_two", "ch1_alone"])
def test_a_trip_is_taken_up_on_the_next_control_cycle_while_levels_stand(
    make_unit, alone, lift_ms
):
    """With the levels standing the control cycle runs every 100 ms; a trip is taken up on
    the next 10 ms cycle all the same (the fault logged, shown, the intensity to 0): a tripped
    channel is never steady. The pulses stop in the interrupt of the pulse that found the
    open (SR-6); this is the wearer's and the log's side of it. Channel 2 of two, and
    channel 1 alone (and with two, channel 1 goes on); the lift at two instants 50 ms apart,
    so that one of them lies at least 25 ms from the slow cycle's grid."""
    if alone:
        unit = make_unit("pico", load_ohm={1: 1000.0, 2: 1000.0})
        unit.press("power", at=ON_S, hold_s=1.7)
        unit.press("mode", at=START_S, hold_s=1.2)  # both -> channel 1 only
        for i in range(3):
            unit.press("plus", at=START_S + 1.6 + 0.25 * i)
        ch, t = 1, START_S + 6.0
    else:
        unit = started(make_unit, steps=3)
        ch, t = 2, RUN_S + 1.0
    t += lift_ms / 1000
    unit.run_until(t)
    assert driven(unit, ch, t0=t - 0.1) and not faults(unit), "not running: bad scenario"
    unit.at(t, unit.model.set_load, ch, 1e9)
    unit.run_until(t + 0.3)
    assert faults(unit) == [(ch, "open")]
    tripped_s = driven(unit, ch)[-1].t_a  # the pulse that found the open
    logged_s = unit.logs("electrode")[0]["sim_t"]
    assert 0 < logged_s - tripped_s <= 0.02, (tripped_s, logged_s)
    if not alone:  # the trip gated channel 2's state machine, not channel 1's
        assert driven(unit, 1, t0=t + 0.25)


@pytest.mark.req("FR-6")
def test_a_running_channel_logs_its_load_every_10_s_from_its_start(make_unit):
    """The trend of each running channel's load: a `load` line 10 s after the channel
    started, then every 10 s, whatever the unit did before the start, with the load the
    channel measures (1 and 1.5 kohm here, each within the smoothing's few percent)."""
    unit = started(make_unit, steps=3, load_ohm={1: 1000.0, 2: 1500.0})
    unit.run_until(START_S + 25.0)
    for ch, ohm in ((1, 1000.0), (2, 1500.0)):
        t_start = [e["sim_t"] for e in unit.logs("start") if e["ch"] == ch]
        lines = [e for e in unit.logs("load") if e["ch"] == ch]
        assert len(t_start) == 1 and len(lines) == 2, (t_start, lines)
        assert [round(e["sim_t"] - t_start[0], 1) for e in lines] == [10.0, 20.0]
        assert all(e["ohm"] == pytest.approx(ohm, rel=0.05) for e in lines), lines


class _OneConversionSpiked:
    """Channel 1's adc_spikes: after each of its pulses, one of the three conversions the
    pulse-done interrupt makes reads a spike (the first, second or third in turn, up and down
    alternately); every other conversion reads the peak-hold as it is."""

    def __init__(self, size_v: float):
        self.size_v = size_v
        self.after_pulse: int | None = None  # conversions made since the last pulse ended
        self.pulses = 0
        self.spiked = 0

    def on_pulse(self, ev: dict) -> None:
        if ev.get("kind") == "pulse" and ev["ch"] == 1:
            self.after_pulse = 0
            self.pulses += 1

    def __iter__(self):  # the board model reads the list once per conversion
        n = self.after_pulse
        if n is None:
            return iter(())
        self.after_pulse = n + 1
        if n != self.pulses % 3:
            return iter(())
        self.spiked += 1
        sign = 1.0 if self.pulses % 2 else -1.0
        return iter([(0, 1 << 62, sign * self.size_v)])


@pytest.mark.req("SR-6")
def test_single_conversion_spikes_do_not_stop_a_good_channel(make_unit):
    """A spike on one ADC conversion right after each pulse, on the first, second or third of
    the three the interrupt makes, up and down alternately, big enough to read as open or
    short on its own (3 V at the ADC): the median of three rejects it."""
    unit = started(make_unit, steps=10)
    spikes = _OneConversionSpiked(3.0)
    unit.model.adc_spikes[0] = spikes  # type: ignore[assignment]
    unit.model.listeners.append(spikes.on_pulse)
    unit.run_until(RUN_S + 2.0)
    assert spikes.spiked > 150 and spikes.spiked >= spikes.pulses - 1  # one per pulse
    assert faults(unit) == []
    assert driven(unit, 1, t0=RUN_S + 1.9)


@pytest.mark.req("SR-6")
def test_a_noisy_good_load_runs_without_a_stop(make_unit):
    unit = started(make_unit, steps=10)
    unit.model.adc_noise_v = NOISE_V
    unit.run_until(RUN_S + 20.0)
    assert faults(unit) == [] and not unit.logs("electrode_lift")
    assert driven(unit, 1, t0=RUN_S + 19.9)


@pytest.mark.req("SR-6")
def test_noise_never_hides_an_open_electrode(make_unit):
    for i, off in enumerate([0.0011, 0.0043, 0.0087]):
        unit = started(make_unit, steps=4 + i, seed=i)
        unit.model.adc_noise_v = NOISE_V
        unit.at(RUN_S + off, unit.model.set_load, 1, 1e9)
        unit.run_until(RUN_S + 0.5)
        assert not driven(unit, 1, t0=RUN_S + off + 0.011)
        assert faults(unit) == [(1, "open")]
        unit.close()


@pytest.mark.req("FR-9")
@pytest.mark.req("SR-6")
def test_the_load_trend_is_logged_per_running_channel(make_unit):
    unit = started(make_unit, steps=10, load_ohm={1: 1000.0, 2: 1800.0})
    unit.run_until(START_S + 25.0)
    loads = unit.logs("load")
    by_ch = {
        1: [e["ohm"] for e in loads if e["ch"] == 1],
        2: [e["ohm"] for e in loads if e["ch"] == 2],
    }
    assert len(by_ch[1]) >= 2 and len(by_ch[2]) >= 2
    assert all(abs(o - 1000) < 50 for o in by_ch[1])
    assert all(abs(o - 1800) < 90 for o in by_ch[2])


@pytest.mark.req("SR-6")
def test_fault_benchmark_measures_at_the_load(tmp_path):
    from host_tools.dev import bench_fault

    r = bench_fault.reaction(0, 0.010, 1.0, offsets=2)
    # a short seen after the next pulse: more than nothing, at most a period plus a pulse
    assert 0 < r["worst_ms"] <= r["period_ms"] + r["pulse_ms"] + 1e-6
    assert r["pulses_started_after_change"] == 1
    assert r["last_current_worst_ms"] == r["worst_ms"]  # for a short, drive = current
    o = bench_fault.reaction(0, 0.010, 1e9, offsets=2)
    assert o["last_current_worst_ms"] < 0.3  # an open takes no current after the lift
    assert bench_fault.missed_opens(2)["missed"] == []


# ---- the source at its compliance limit (`limit`, not `open`) -----------------------------
# At the top steps into a high skin load the current source reaches its compliance voltage:
# the SENSE reads at the limit, as for a lifted electrode. The load the channel had been
# taking and a 1 mA probe tell them apart: the channel is held at the highest step the load
# takes instead of stopped. Expected figures from the board files (stim/stimulator.py: hold
# at 7/8 of the limit voltage, which is COMPLIANCE_FRACTION of the boost).
THERAPY_MA = electrode.PROBE_MA + 0.2  # driven above this: therapy, not a probe pulse


def limit_v(board):
    return electrode.COMPLIANCE_FRACTION * board["analog"]["compliance_v"]


def to_the_top(make_unit, board, ohm, *, presses=None):
    """Both channels started and PLUS pressed once per 0.25 s up to the board's top step;
    channel 1 into `ohm`, channel 2 into 1 kΩ. Returns the unit and the time of the last press."""
    unit = make_unit(board, load_ohm={1: ohm, 2: 1000.0})
    unit.press("power", at=1.0, hold_s=1.7)  # the wearable's app is ready later than the pico's
    n = presses or unit.board["intensity"]["steps"]
    for i in range(n):
        unit.press("plus", at=START_S + 0.25 * i)
    t_last = START_S + 0.25 * (n - 1)
    unit.run_until(t_last + 3.0)  # the last press, a re-check and its soft start are over
    return unit, t_last


def limit_events(unit, ch=1):
    return [e for e in unit.logs("electrode") if e["ch"] == ch]


@pytest.mark.req("SR-6", "SR-3", "SR-2")
@pytest.mark.parametrize("board", ["pico", "wearable_v1"])
@pytest.mark.parametrize("ohm", [2000.0, 5000.0, 10_000.0])
def test_at_the_compliance_limit_the_channel_is_held_at_the_step_the_load_takes(
    make_unit, board, ohm
):
    unit, t_last = to_the_top(make_unit, board, ohm)
    b = unit.board
    step_ma = b["intensity"]["step_ma"]
    comp_v = b["analog"]["compliance_v"]
    # One `limit`, nothing classified open: the load, measured by the probe, and the held step.
    ev = limit_events(unit)
    assert [e["fault"] for e in ev] == ["limit"], ev
    assert ev[0]["ohm"] == pytest.approx(ohm, rel=0.05)
    held = ev[0]["step"]
    assert held * step_ma * ohm / 1000 < limit_v(b)  # under the limit voltage...
    assert (held + 2) * step_ma * ohm / 1000 >= 7 / 8 * limit_v(b)  # ...by the margin only
    # At the load: the channel keeps running at the held step, current flowing, the electrode
    # voltage at or under the compliance voltage (SR-3: never above the step it holds).
    now = unit.chip.t_s
    pulses = driven(unit, 1, t0=now - 1.0)
    assert len(pulses) >= 90  # 100 Hz: it runs
    for p in pulses:
        assert p.peak_ma > 0 and at_ma(p.peak_ma, held * step_ma)
        assert p.peak_ma * ohm / 1000 <= comp_v + 1e-9
        assert p.drive_ma <= held * step_ma + 1e-9
    # Every PLUS after the hold is refused with `limit`; the step stays where it is held.
    refused = [e for e in unit.logs("refused") if e["ch"] == 1]
    assert refused and all(e["limit"] == "limit" and e["step"] > held for e in refused)
    t_limit = ev[0]["sim_t"]
    presses_after = sum(1 for i in range(60) if t_limit < START_S + 0.25 * i <= t_last)
    assert len(refused) >= presses_after - 1  # one press may land during the re-check
    # Channel 2, into 1 kΩ, went on to the top step.
    ch2 = driven(unit, 2, t0=now - 0.5)
    top = b["intensity"]["steps"] * step_ma
    assert ch2 and all(at_ma(p.peak_ma, min(top, b["limits"]["max_peak_ma"])) for p in ch2)
    assert unit.model.violations == []


@pytest.mark.req("SR-6", "SR-3")
def test_the_compliance_limit_is_that_of_the_boost_measured_not_the_boards_nominal(make_unit):
    """The pico's boost comes up at 68 V, not its nominal 80 (still over the 80 % it must
    reach). The check hands the engine the volts it measured, so a 5 kOhm load is held at the
    step it takes under 90 % of 68 V. With the nominal 80 V the pulses would run into the
    boost's 68 V unseen (their reading never reaching 90 % of 80 V), at less current than
    their step."""
    comp_v, ohm = 68.0, 5000.0
    unit = make_unit("pico", load_ohm={1: ohm, 2: 1000.0})
    unit.model.compliance_v = comp_v
    unit.press("power", at=1.0, hold_s=1.7)
    for i in range(14):  # to 21 mA: 105 V into 5 kOhm
        unit.press("plus", at=START_S + 0.25 * i)
    unit.run_until(START_S + 0.25 * 13 + 3.0)
    ev = limit_events(unit)
    assert [e["fault"] for e in ev] == ["limit"], ev
    step_ma = unit.board["intensity"]["step_ma"]
    held = ev[0]["step"]
    assert held * step_ma * ohm / 1000 < electrode.COMPLIANCE_FRACTION * comp_v
    pulses = driven(unit, 1, t0=unit.chip.t_s - 1.0)
    assert len(pulses) >= 90
    for p in pulses:
        assert at_ma(p.peak_ma, held * step_ma) and p.peak_ma * ohm / 1000 < comp_v


@pytest.mark.req("SR-6", "SR-2")
def test_a_channel_held_at_the_limit_goes_down_and_back_up_to_the_held_step(make_unit):
    """The hold refuses only what the load cannot take: after MINUS the wearer may come back
    up to the held step (8 here: 12 mA into 5 kOhm), never past it."""
    unit, _ = to_the_top(make_unit, "pico", 5000.0, presses=14)
    held = limit_events(unit)[0]["step"]
    assert held == 8
    t = unit.chip.t_s + 0.5
    unit.press("minus", at=t)
    unit.press("plus", at=t + 1.5)
    unit.press("plus", at=t + 3.0)  # past the hold: refused
    unit.run_until(t + 5.0)
    down = driven(unit, 1, t0=t + 1.0, t1=t + 1.5)
    assert down and all(at_ma(p.peak_ma, 7 * 1.5) for p in down)
    back = driven(unit, 1, t0=t + 2.5)
    assert back and all(at_ma(p.peak_ma, 8 * 1.5) for p in back)
    refused = [e for e in unit.logs("refused") if e["ch"] == 1 and e["sim_t"] > t]
    assert [(e["limit"], e["step"]) for e in refused] == [("limit", 9)]


@pytest.mark.req("SR-6", "SR-2", "SR-1")
def test_the_hold_restarts_through_a_probe_and_a_soft_start(make_unit):
    unit, _ = to_the_top(make_unit, "pico", 5000.0, presses=14)
    t_limit = limit_events(unit)[0]["sim_t"]
    before = [p for p in driven(unit, 1, t1=t_limit) if p.drive_ma > THERAPY_MA]
    t_trip = before[-1].end_s  # the pulse that read the compliance limit
    assert before[-1].peak_ma * 5000 / 1000 >= 0.9 * 80.0  # at the compliance limit
    after = driven(unit, 1, t0=t_trip + 1e-6)
    probes = [p for p in after if p.t_a < t_limit]
    # nothing more of the therapy until the probe has found skin (no lift can be fed)
    assert len(probes) == electrode.PROBE_PULSES
    assert all(p.drive_ma <= THERAPY_MA for p in probes)
    # then a soft start from zero up to the held step (8: 12 mA) over 2 s
    ramp = [p for p in after if p.t_a >= t_limit]
    assert ramp[0].drive_ma < 1.0
    assert all(b.drive_ma >= a.drive_ma - 1e-9 for a, b in zip(ramp, ramp[1:], strict=False))
    t_full = next(p.t_a for p in ramp if at_ma(p.peak_ma, 12.0))
    assert 1.9 <= t_full - t_limit <= 2.2
    assert unit.logs("stop") == [] or all(e["ch"] != 1 for e in unit.logs("stop"))


@pytest.mark.req("SR-6", "SR-1")
@pytest.mark.parametrize(
    ("board", "ohm", "mode_presses", "period_s", "offsets"),
    [
        ("pico", 5000.0, 0, 0.010, [0.0, 0.0037, 0.0081]),
        ("wearable_v1", 2000.0, 0, 0.010, [0.0, 0.0052]),
        ("pico", 2000.0, 1, 0.5, [0.0, 0.31]),
    ],
    ids=["pico-5k-100Hz", "wearable-2k-100Hz", "pico-2k-2Hz"],
)
def test_a_lift_while_held_at_the_limit_stops_within_one_pulse(
    make_unit, board, ohm, mode_presses, period_s, offsets
):
    for off in offsets:
        unit = make_unit(board, load_ohm={1: ohm, 2: 1000.0})
        unit.press("power", at=1.0, hold_s=1.7)
        for i in range(mode_presses):
            unit.press("mode", at=START_S - 0.3 * (i + 1))
        n = 45 if board == "wearable_v1" else 28
        for i in range(n):
            unit.press("plus", at=START_S + 0.1 + 0.25 * i)
        t_held = START_S + 0.25 * n + 3.0
        unit.run_until(t_held)
        assert [e["fault"] for e in limit_events(unit)] == ["limit"]
        assert driven(unit, 1, t0=t_held - 0.6)  # held and running
        t_change = t_held + off
        unit.at(t_change, unit.model.set_load, 1, 1e9)
        unit.run_until(t_change + 1.5)
        after = [p for p in driven(unit, 1, t0=t_change) if p.drive_ma > THERAPY_MA]
        assert len([p for p in after if p.t_a >= t_change]) <= 1
        pulse_s = max((p.end_s - p.t_a for p in after), default=0.0)
        if after:
            assert after[-1].end_s - t_change <= period_s + pulse_s
        # classified open (after a probe that found no load), intensity 0 (SR-1)
        assert [e["fault"] for e in limit_events(unit)] == ["limit", "open"]
        unit.model.set_load(1, ohm)
        unit.run_for(2.0)
        assert not [p for p in driven(unit, 1, t0=t_change + period_s + 0.01)
                    if p.drive_ma > THERAPY_MA]  # fmt: skip
        assert unit.model.violations == []
        unit.close()


@pytest.mark.req("SR-6")
def test_a_lift_warning_goes_on_through_a_hold_at_the_compliance_limit(make_unit):
    """A pad half off (2.25x the skin's 2 kohm): the step is halved and the lift watched. The
    wearer raises it again, into the compliance limit: the channel is held there, and the lift
    warning goes on through the hold, so the channel stops with `lift` about 5 s after the
    reduction, not 5 s after the hold restarted (with its step halved once more)."""
    unit = started(make_unit, steps=10, load_ohm={1: 2000.0, 2: 2000.0})
    t_lift = RUN_S
    unit.at(t_lift, unit.model.set_load, 1, 4500.0)
    for k in range(7):
        unit.press("plus", at=t_lift + 1.5 + 0.25 * k)
    stop_s = electrode.LIFT_STOP_MS / 1000
    unit.run_until(t_lift + stop_s + 4.0)
    assert [e["action"] for e in unit.logs("electrode_lift")] == ["reduce"]
    assert faults(unit) == [(1, "limit"), (1, "lift")]
    t_r = unit.logs("electrode_lift")[0]["sim_t"]
    assert driven(unit, 1, t0=t_r + stop_s - 1.0, t1=t_r + stop_s - 0.5)  # held, running
    assert not driven(unit, 1, t0=t_r + stop_s + 1.0)
    assert driven(unit, 2, t0=t_r + stop_s + 1.0)


@pytest.mark.req("SR-6")
def test_a_load_that_jumps_to_the_limit_at_the_same_current_is_open(make_unit):
    # 30 mA into 1 kΩ (30 V, far below the limit), then the pad half off: 4 kΩ would need
    # 120 V. The load it had been taking does not explain the limit: an open, at once.
    unit = started(make_unit, steps=20)
    unit.at(RUN_S + 2.0, unit.model.set_load, 1, 4000.0)
    unit.run_until(RUN_S + 3.5)
    assert faults(unit) == [(1, "open")]
    assert not [p for p in driven(unit, 1, t0=RUN_S + 2.02)]  # no probe either


@pytest.mark.req("SR-6", "SR-3")
@pytest.mark.parametrize(("ohm", "held"), [(1915.0, True), (1675.0, False)])
def test_a_jump_to_the_limit_is_skin_only_if_the_load_was_within_3_4_of_it(make_unit, ohm, held):
    """30 mA, then the load jumps to 3 kohm (90 V needed, the boost gives 80). Whether the
    limit is the skin's (held: a probe, then the step the load takes) or an open (stopped at
    once) depends on how near the limit the load it had been taking ran: at 3/4 of the 72 V
    limit or more, skin. 1915 ohm ran at 80 % of it (57 V), 1675 ohm at 70 % (50 V)."""
    unit = started(make_unit, steps=20, load_ohm={1: ohm, 2: 1000.0})
    unit.at(RUN_S + 2.0, unit.model.set_load, 1, 3000.0)
    unit.run_until(RUN_S + 4.0)
    if held:
        assert faults(unit) == [(1, "limit")]
        peaks = [p.peak_ma for p in driven(unit, 1, t0=RUN_S + 3.8)]
        assert peaks and all(p * 3.0 < limit_v(unit.board) for p in peaks)
    else:
        assert faults(unit) == [(1, "open")]
        assert not driven(unit, 1, t0=RUN_S + 2.02)


@pytest.mark.req("SR-6", "SR-3")
def test_skin_that_creeps_up_to_the_limit_is_held_not_stopped(make_unit):
    # 30 mA into 2 kΩ (60 V); the skin dries and its load creeps up by a tenth a second: at
    # the same current it reaches the limit (72 V) at 2.4 kΩ. A rise the partial-lift watch lets
    # pass (under 1.6x its baseline), so the source's limit, not an open.
    unit = started(make_unit, steps=20, load_ohm={1: 2000.0, 2: 1000.0})
    for i in range(3):  # 2.2, 2.4, 2.6 kΩ
        unit.at(RUN_S + 2.0 + i, unit.model.set_load, 1, 2000.0 * (1 + 0.1 * (i + 1)))
    unit.run_until(RUN_S + 11.0)
    ev = limit_events(unit)
    assert [e["fault"] for e in ev] == ["limit"], ev
    held = ev[0]["step"]
    ohm = ev[0]["ohm"]
    assert held < 20 and held * 1.5 * ohm / 1000 < 72.0
    late = driven(unit, 1, t0=RUN_S + 10.5)
    assert late and all(p.peak_ma > 0 and p.peak_ma * 2600 / 1000 <= 80.0 for p in late)


@pytest.mark.req("FR-7", "SR-6")
def test_the_led_shows_a_held_channel_distinctly(make_unit):
    unit, _ = to_the_top(make_unit, "pico", 5000.0, presses=14)
    t = unit.chip.t_s
    held = led_levels(unit, 1, t, t + 2.0)
    running = led_levels(unit, 2, t, t + 2.0)
    assert set(running) == {1}  # channel 2 runs: steady
    dips = sum(1 for a, b in zip(held, held[1:], strict=False) if b < a)
    # mostly on (it runs), two short dips a second: not the lifting dip (one a second), not
    # a fault's blink (mostly off or half off)
    assert 3 <= dips <= 5 and sum(held) >= 0.75 * len(held)

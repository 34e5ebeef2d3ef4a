"""Pulse timing words (stim/pulse.py), run by pytest and on MicroPython's VM alike."""

from coreenv import pulse, raises, req

SM_HZ = 125_000_000


@req("FR-2")
def test_divider_fits_the_longest_phase_and_gap_in_16_bits():
    for sysclk_hz in (48_000_000, 125_000_000, 133_000_000, 200_000_000):
        div = pulse.sm_divider(sysclk_hz)
        sm_hz = sysclk_hz // div
        assert pulse.us_to_cycles(pulse.PHASE_MAX_US, sm_hz) - 2 <= 0xFFFF
        if div > 1:  # and the divider is the smallest that fits
            assert pulse.us_to_cycles(pulse.PHASE_MAX_US, sysclk_hz // (div - 1)) - 2 > 0xFFFF


@req("FR-2")
def test_us_to_cycles_rounds_to_the_nearest_cycle_in_integers():
    assert pulse.us_to_cycles(100, SM_HZ) == 12_500
    assert pulse.us_to_cycles(1, 1_000_000) == 1
    assert pulse.us_to_cycles(0.5, SM_HZ) == 63  # 62.5 cycles rounds half up
    assert isinstance(pulse.us_to_cycles(250, SM_HZ), int)


@req("SR-4")
def test_words_round_trip_to_the_same_cycles():
    for rate_hz in (1, 2, 8, 50, 80, 100, 150):
        for phase_us in (20, 100, 250, 500):
            for gap_us in (1, 20, 200):
                try:
                    pulse.check(rate_hz, phase_us, gap_us)
                except pulse.PulseError:
                    continue
                w, g, p = pulse.cycles(pulse.period_ns(rate_hz), phase_us, gap_us, SM_HZ)
                for toggle in (0, 1):
                    rest, shape = pulse.words(w, g, p, toggle)
                    assert 0 <= rest <= 0xFFFFFFFF and 0 <= shape <= 0xFFFFFFFF
                    assert bool(rest & pulse.TOGGLE) == bool(toggle)
                    assert pulse.period_of(rest, shape) == (w, g, p)


@req("FR-2")
def test_period_is_the_rate_to_the_nearest_cycle():
    assert pulse.cycles(pulse.period_ns(100), 100, 20, SM_HZ) == (12_500, 2_500, 1_250_000)
    assert pulse.cycles(pulse.period_ns(3), 100, 20, SM_HZ)[2] == 41_666_667
    # 150 Hz: 6,666,667 ns, 833,333 cycles: 0.45 ppm off (whole microseconds gave 50 ppm)
    p = pulse.cycles(pulse.period_ns(150), 100, 20, SM_HZ)[2]
    assert p == 833_333
    assert abs(p * 150 - SM_HZ) * 1_000_000 // SM_HZ < 1


@req("SR-3")
def test_check_names_the_parameter_out_of_range():
    assert "rate_hz" in str(raises(pulse.PulseError, pulse.check, 151, 100, 20))
    assert "phase_us" in str(raises(pulse.PulseError, pulse.check, 100, 501, 20))
    assert "gap_us" in str(raises(pulse.PulseError, pulse.check, 100, 100, 0))
    assert isinstance(raises(pulse.PulseError, pulse.check, 0, 100, 20), ValueError)


@req("FR-2")
def test_burst_pause_given_as_period():
    assert pulse.cycles(440_000_000, 200, 20, SM_HZ)[2] == 440_000 * 125
    raises(pulse.PulseError, pulse.cycles, 3_000_000_000, 200, 20, SM_HZ)
    raises(pulse.PulseError, pulse.cycles, 6_000_000, 200, 20, SM_HZ)  # faster than 150 Hz


@req("FR-2")
def test_words_refuse_what_the_program_cannot_count():
    raises(pulse.PulseError, pulse.words, 1, 100, 10_000, 0)  # phase below 2 cycles
    raises(pulse.PulseError, pulse.words, 100, 4, 10_000, 0)  # gap below 5 cycles
    raises(pulse.PulseError, pulse.words, 1000, 100, 500, 0)  # period shorter than the pulse

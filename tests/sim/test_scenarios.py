"""The scenario library (scenarios/*.json) run headless, with assertions on each trace.

Every assertion reads the trace only: output records measured at the simulated pins and load
model, LED pin changes, the firmware's console lines, and the violation detector's findings.
Each scenario runs once per test session (cached); together they simulate a few minutes.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from host_tools.sim import patterns, scenario
from host_tools.sim.trace import TIMING_REL

pytestmark = pytest.mark.req("FR-24")

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
STEP_MA = 1.5
STEP4_MA = 5.92  # step 4 (6 mA) after the LEVEL duty is rounded down (never above the request)


@functools.cache
def run(name: str) -> scenario.RunResult:
    return scenario.run(scenario.load(SCENARIOS / (name + ".json")), keep=True)


def outputs(res, ch: int, t0: float = 0.0, t1: float = 1e9) -> list[dict]:
    return [r for r in res.of("output", ch=ch) if t0 <= r["t"] < t1]


def logs(res, ev: str | None = None) -> list[dict]:
    out = []
    for r in res.of("log"):
        if r["line"].startswith('{"t":'):
            rec = json.loads(r["line"])
            rec["sim_t"] = r["t"]
            if ev is None or rec["ev"] == ev:
                out.append(rec)
    return out


def peak_max(res, ch: int, t0: float = 0.0, t1: float = 1e9) -> float:
    return max((r["peak_ma"] for r in outputs(res, ch, t0, t1)), default=0.0)


def level_at(res, ch: int, t: float) -> dict | None:
    """The output record in force at t (the last one at or before it)."""
    recs = outputs(res, ch, 0.0, t + 1e-9)
    return recs[-1] if recs else None


def zero_at(res, ch: int, t: float) -> bool:
    rec = level_at(res, ch, t)
    return rec is None or rec["drive_ma"] == 0.0


def clean(res) -> None:
    assert res.violations == 0, res.of("violation")
    for s in res.summary:
        # zero by construction; a float residue of nanoamps into an open load is not charge
        assert abs(s["net_charge_nc"]) < 1e-6 and s["violations"] == {}


def ordered(res) -> bool:
    ts = [r["t"] for r in res.records]
    return ts == sorted(ts)


# ---- the six programs ----------------------------------------------------------------------
PROGRAMS = {
    # name: (rate_hz, rate_min_hz or None, phase_us, phase_min_us or None)
    "tens_conventional": (100.0, None, 100.0, None),
    "tens_acupuncture": (2.0, None, 200.0, None),
    "tens_burst": (100.0, 2.273, 200.0, None),
    "tens_modulated": (80.0, None, 330.0, 200.0),
    "ems_relax": (8.0, None, 250.0, None),
    "ems_strength": (50.0, None, 300.0, None),
}


@pytest.mark.req("SR-4", "SR-5", "SR-3")
@pytest.mark.parametrize("prog", list(PROGRAMS))
def test_each_program_delivers_its_pulses_balanced(prog):
    res = run("program_" + prog)
    clean(res)
    assert ordered(res)
    rate, rate_min, phase, phase_min = PROGRAMS[prog]
    assert [e["id"] for e in logs(res, "program")][-1] == prog
    for ch in (1, 2):
        recs = [r for r in outputs(res, ch) if r["drive_ma"] > 0 and r["rate_hz"]]
        therapy = [r for r in recs if r["drive_ma"] > 1.2]
        assert therapy, "no therapy output on ch%d" % ch
        last = therapy[-1]
        # A varying train's range is recorded when it grows by more than the trace's
        # TIMING_REL (2 %): its ends are exact to that.
        tol = TIMING_REL if (rate_min or phase_min) else 1e-3
        assert last["rate_hz"] == pytest.approx(rate, rel=max(tol, 1e-3))
        assert last["phase_us"] == pytest.approx(phase, rel=tol)
        assert last["gap_us"] == pytest.approx(20.0, abs=0.1)
        assert last.get("rate_min_hz") == (pytest.approx(rate_min, rel=tol) if rate_min else None)
        assert last.get("phase_min_us") == (
            pytest.approx(phase_min, rel=tol) if phase_min else None
        )
        assert peak_max(res, ch) == pytest.approx(STEP4_MA, abs=0.01)
        # Modulated programs stay readable: a few dozen output records (per contraction for
        # EMS strength: two here), not one per pulse.
        assert len(outputs(res, ch)) < (80 if prog == "ems_strength" else 40)


@pytest.mark.req("SR-2")
def test_ems_strength_contracts_and_rests_with_ramps():
    res = run("program_ems_strength")
    recs = outputs(res, 1)
    zeros = [r["t"] for r in recs if r["drive_ma"] == 0.0 and r["t"] > 4.0]
    starts = [
        b["t"] for a, b in zip(recs, recs[1:], strict=False) if a["drive_ma"] == 0 < b["drive_ma"]
    ]
    assert len(zeros) >= 2 and len(starts) >= 1
    # One contraction is 5 s on (ramps included), then 10 s of rest with no drive at all.
    rest = starts[-1] - zeros[0]
    assert 9.5 < rest < 10.5
    ramp_up = [r["peak_ma"] for r in outputs(res, 1, starts[-1], starts[-1] + 1.5)]
    assert ramp_up == sorted(ramp_up) and ramp_up[0] < 0.2 * STEP4_MA


@pytest.mark.req("SR-1")
def test_mode_cycles_the_programs_and_each_starts_from_zero():
    res = run("programs_mode_cycle")
    clean(res)
    ids = [e["id"] for e in logs(res, "program")]
    assert ids[-6:] == list(PROGRAMS)[:1] + list(PROGRAMS)[1:6]
    assert [e["selected"] for e in logs(res, "channels")] == ["both", "1"]  # boot, then set
    assert not outputs(res, 2)  # channel 1 only
    # MODE stopped channel 1 at once; ems_strength then rose from zero to step 1 only.
    t_mode = 7.0  # MODE acts on its release (hold 0.1 s, then debounce)
    assert zero_at(res, 1, t_mode + 0.2)
    after = outputs(res, 1, 9.5)
    assert after and max(r["peak_ma"] for r in after) <= STEP_MA
    assert [r["rate_hz"] for r in after if r["drive_ma"] > 1.2][-1] == pytest.approx(50.0)


# ---- safety requirements -------------------------------------------------------------------
@pytest.mark.req("SR-1")
def test_zero_start_after_power_up_program_change_fault_and_power_cycle():
    res = run("sr01_zero_start")
    clean(res)
    assert not outputs(res, 1, 0.0, 4.0) and not outputs(res, 2, 0.0, 4.0)  # on, idle: nothing
    assert peak_max(res, 1, 4.0, 8.0) == pytest.approx(STEP4_MA, abs=0.01)
    assert zero_at(res, 1, 8.2) and zero_at(res, 2, 8.2)  # MODE (on release): stopped at once
    assert peak_max(res, 1, 9.0, 12.5) <= STEP_MA  # new program: from zero, to step 1
    lift = outputs(res, 1, 12.5, 13.5)
    assert lift[0]["peak_ma"] == 0.0 and lift[-1]["drive_ma"] == 0.0
    assert not outputs(res, 1, 13.5, 16.0)  # re-attached: nothing until PLUS
    assert [e["on"] for e in logs(res, "power")] == [True, False, True]
    assert not outputs(res, 1, 16.1, 21.0) and not outputs(res, 2, 16.1, 21.0)
    assert 0 < peak_max(res, 1, 21.0) <= STEP_MA and 0 < peak_max(res, 2, 21.0) <= STEP_MA


@pytest.mark.req("SR-2", "SR-11")
def test_gentle_rise_bounded_repeats_and_immediate_decrease():
    res = run("sr02_gentle_rise")
    clean(res)
    first = [r for r in outputs(res, 1, 2.5, 5.5) if r["drive_ma"] > 1.05]  # past the probe
    peaks = [r["peak_ma"] for r in outputs(res, 1, 2.5, 5.5) if r["rate_hz"] == 100.0]
    assert peaks == sorted(peaks) and peaks[0] < 0.3 * STEP_MA  # soft start from near zero
    assert first and max(peaks) <= STEP_MA
    steps = [e["step"] for e in logs(res, "intensity") if e["ch"] == 1]
    assert max(steps) == 1 + 1 + 8  # the start, the press, at most 8 repeats
    t_up = [e["sim_t"] for e in logs(res, "intensity") if e["ch"] == 1 and e["step"] > 1]
    assert min(b - a for a, b in zip(t_up, t_up[1:], strict=False)) >= 0.39
    assert peak_max(res, 1, 5.5, 12.5) <= 10 * STEP_MA
    # MINUS: the very next pulse is weaker
    before = level_at(res, 1, 12.5)
    after = outputs(res, 1, 12.5, 12.6)
    assert before and after and after[0]["peak_ma"] < before["peak_ma"] - 1.0
    assert after[0]["t"] < 12.5 + 0.1 + 0.03  # release + one debounce + one period
    # resume: probe, then a soft start from near zero again
    resumed = [r for r in outputs(res, 1, 15.0) if r["rate_hz"] == 100.0]
    assert resumed[0]["peak_ma"] < 0.5 and resumed[-1]["peak_ma"] > 8 * STEP_MA


@pytest.mark.req("SR-3")
def test_caps_hold_at_the_top_step_and_presses_beyond_are_refused():
    res = run("sr03_caps")
    clean(res)  # the detector checks peak, charge per phase, rms and power density
    limits = scenario.load(SCENARIOS / "sr03_caps.json").board["limits"]
    for s in res.summary:
        assert 59.0 < s["max_peak_ma"] <= limits["max_peak_ma"]
        assert s["max_phase_charge_uc"] <= limits["max_charge_per_phase_uc"]
    refused = logs(res, "refused")
    assert refused and {e["step"] for e in refused} == {41}


@pytest.mark.req("SR-6", "SR-1")
def test_lift_and_short_stop_the_channel_within_one_pulse():
    res = run("sr06_lift_and_short")
    clean(res)
    # The lift (7.0081 s) and the short (8.0052 s) fall between pulses (channel 1's start at
    # x.xx31 s, channel 2's at x.xx84 s with this firmware's boot time): a load that changes
    # during a pulse leaves that one pulse unbalanced, which clean() would rightly report.
    lift = outputs(res, 1, 7.0081, 10.0)
    # The first pulse after the lift reaches nothing (peak 0) while the source still drives;
    # the firmware's zero follows at the end of that very pulse.
    assert lift[0]["peak_ma"] == 0.0 and lift[0]["drive_ma"] > 5.0
    assert lift[0]["t"] - 7.0081 <= 0.0101
    assert lift[1]["drive_ma"] == 0.0 and lift[1]["t"] - lift[0]["t"] < 0.001
    short = outputs(res, 2, 8.0052, 10.0)
    assert short[-1]["drive_ma"] == 0.0 and short[-1]["t"] - 8.0052 <= 0.0202
    faults = {(e["ch"], e["fault"]) for e in logs(res, "electrode")}
    assert faults == {(1, "open"), (2, "short")}
    assert not outputs(res, 1, 10.0) and not outputs(res, 2, 10.0)  # re-attached: stays 0
    leds = [r for r in res.of("led", name="ch1") if 7.02 < r["t"] < 10.0]
    assert len(leds) >= 8  # fast blink: open


@pytest.mark.req("SR-6")
def test_pre_start_check_refuses_an_open_electrode():
    res = run("sr06_check_refuses")
    clean(res)
    ch1 = outputs(res, 1, 0.0, 6.0)
    assert max((r["drive_ma"] for r in ch1), default=0.0) <= 1.0  # only probe pulses
    assert peak_max(res, 1, 0.0, 6.0) == 0.0
    assert any(e["ch"] == 1 and e["fault"] == "open" for e in logs(res, "electrode"))
    # channel 2 runs at step 1: the second PLUS went to channel 1 (a faulted channel restarts
    # alone: one press, one channel, SR-2), whose check refused it again
    assert 1.0 < peak_max(res, 2, 2.5, 6.0) < 2.0
    assert [e["ch"] for e in logs(res, "check") if 2.6 < e["sim_t"] < 6.0] == [2]
    again = [r for r in outputs(res, 1, 7.0) if r["rate_hz"] == 100.0]
    assert again and again[0]["peak_ma"] < 0.5  # checked, then from zero
    assert [e["ch"] for e in logs(res, "check") if e["sim_t"] > 7.0] == [1]


@pytest.mark.req("SR-6")
def test_partial_lift_halves_the_intensity_then_stops_the_channel():
    res = run("sr06_partial_lift")
    clean(res)
    full = level_at(res, 1, 6.9)["drive_ma"]
    reduce = [e for e in logs(res, "electrode_lift") if e["action"] == "reduce"]
    assert [(e["ch"], e["step"]) for e in reduce] == [(1, 3)]
    t_red = reduce[0]["sim_t"]
    assert 7.0 < t_red < 8.5
    halved = outputs(res, 1, t_red, t_red + 0.05)
    assert halved and halved[0]["drive_ma"] <= full / 2 + 0.01  # the very next pulse
    stop = [e for e in logs(res, "electrode") if e["fault"] == "lift"]
    assert [e["ch"] for e in stop] == [1] and 10.0 < stop[0]["sim_t"] < 11.0
    assert outputs(res, 1, 10.0)[-1]["drive_ma"] == 0.0
    assert not outputs(res, 1, stop[0]["sim_t"] + 0.001)
    assert level_at(res, 2, 13.9)["drive_ma"] == full  # channel 2 unaffected


@pytest.mark.req("SR-6", "SR-3")
def test_a_compliance_limit_holds_the_channel_and_a_lift_still_stops_it():
    res = run("sr06_compliance_limit")
    clean(res)
    ev = [(e["ch"], e["fault"], e["step"]) for e in logs(res, "electrode")]
    assert ev == [(1, "limit", 8), (1, "open", 8)]
    refused = [e for e in logs(res, "refused") if e["ch"] == 1]
    assert refused and all(e["limit"] == "limit" for e in refused)
    held = level_at(res, 1, 10.9)  # output records come at each change: the one in force
    assert held["drive_ma"] == pytest.approx(8 * STEP_MA, abs=0.1)
    assert 0 < held["peak_ma"] <= 80.0 / 5000 * 1000  # current flows, under the compliance
    assert zero_at(res, 1, 11.02)  # lifted: nothing more after one pulse
    assert level_at(res, 2, 13.9)["drive_ma"] == pytest.approx(14 * STEP_MA, abs=0.2)


@pytest.mark.req("SR-6", "SR-7")
def test_boost_failure_is_fatal_and_a_stuck_sense_input_refuses_its_channel():
    res = run("sr06_sense_and_boost_faults")
    clean(res)
    assert not outputs(res, 1, 0.0, 7.0) and not outputs(res, 2, 0.0, 7.0)
    assert [e["reason"] for e in logs(res, "fatal")] == ["boost"]
    red = [r for r in res.of("led", name="status_r") if 3.0 < r["t"] < 5.0 and r["state"]]
    assert len(red) >= 8  # fast red blink (5 per second)
    assert [e["on"] for e in logs(res, "power")] == [True, False, True]
    sense = [e for e in logs(res, "electrode") if e["fault"] == "sense"]
    assert sense and {e["ch"] for e in sense} == {1}
    assert not outputs(res, 1)  # never a pulse on channel 1
    # channel 2 at step 1: the second PLUS retried channel 1 alone (one press, one channel)
    assert 1.0 < peak_max(res, 2, 10.5) < 2.0


@pytest.mark.req("SR-7", "SR-11")
def test_power_stops_output_within_20_ms_running_ramping_and_locked():
    res = run("sr07_stop")
    clean(res)
    for t_press in (6.5031, 8.4037, 19.0077):
        for ch in (1, 2):
            assert level_at(res, ch, t_press - 0.011)["drive_ma"] > 0, (t_press, ch)
            stop = outputs(res, ch, t_press - 0.011, t_press + 0.5)
            assert stop[-1]["drive_ma"] == 0.0
            assert stop[-1]["t"] - t_press <= 0.020
    assert [e["locked"] for e in logs(res, "lock")] == [True]
    assert peak_max(res, 1, 17.4, 19.0) <= level_at(res, 1, 17.4)["peak_ma"]  # PLUS ignored


def _between_pulses(res, t: float) -> float:
    """The first instant from t, in steps of 0.1 ms, at least 1.5 ms from every pulse start of
    either channel (a pulse and the 0.3 ms of Python before a soft reset's all_off fit)."""
    starts = [p.t_a for ch in (1, 2) for p in res.model.driven(ch, t - 0.01, t + 0.02)]
    assert starts, "no pulses near %g s" % t
    for k in range(100):
        c = round(t + k * 1e-4, 6)
        if all(abs(s - c) > 0.0015 for s in starts):
            return c
    raise AssertionError("no gap between the pulses near %g s" % t)


@functools.cache
def run_between_pulses(name: str) -> tuple[scenario.RunResult, tuple[float, ...]]:
    """A scenario with each of its Ctrl-C, soft reset and power cycle events moved to the
    first instant between two pulses of both channels, found by a first run up to it:
    wherever this firmware's CPU time puts the pulse grid. (A reset inside a pulse cuts it,
    SR-8 coming first, and the charge account reports the part pulse as SR-4.)"""
    doc = json.loads((SCENARIOS / (name + ".json")).read_text())
    times = []
    for ev in doc["events"]:
        if ev.get("ctrl_c") or ev.get("soft_reset") or ev.get("power_cycle"):
            earlier = [e for e in doc["events"] if e["t"] < ev["t"]]
            probe = dict(doc, duration_s=ev["t"] + 0.02, events=earlier)
            ev["t"] = _between_pulses(
                scenario.run(scenario.parse(json.dumps(probe)), record_pulses=True), ev["t"]
            )
            times.append(ev["t"])
    return scenario.run(scenario.parse(json.dumps(doc)), keep=True), tuple(times)


@pytest.mark.req("SR-8")
def test_ctrl_c_turns_the_outputs_off_at_once():
    res, (t_c,) = run_between_pulses("sr08_ctrl_c")
    clean(res)
    for ch in (1, 2):
        stop = outputs(res, ch, 6.9)
        assert stop and stop[-1]["drive_ma"] == 0.0 and stop[-1]["t"] - t_c <= 0.0105
    assert [e["ev"] for e in logs(res)][-2:] == ["interrupted", "outputs_off"]


@pytest.mark.req("SR-8", "SR-1")
def test_soft_reset_and_power_cycle_leave_the_outputs_off():
    res, times = run_between_pulses("sr08_soft_reset")
    clean(res)
    for t in times:
        for ch in (1, 2):
            # the soft reset: the firmware's own way out (all_off, about 0.3 ms of Python);
            # the power cycle: at once
            assert zero_at(res, ch, t + 0.001)
            assert not outputs(res, ch, t + 0.001, t + 1.5)
    # boot.py stops the watchdog the first session's app had armed, so the soft reset brings
    # no watchdog reset (README, "Boot and exit"); then the battery is pulled at 16 s.
    causes = [e["cause"] for e in logs(res, "boot")]
    assert causes == ["power_on", "power_on", "power_on"]
    assert 0 < peak_max(res, 1, 12.5, 16.0) <= 2 * STEP_MA  # from zero, two steps


@pytest.mark.req("SR-9")
def test_session_ends_by_itself_with_a_fade():
    res = run("sr09_session_limit")
    clean(res)
    start = [e for e in logs(res, "session") if e["state"] == "start"][0]["sim_t"]
    end = [e for e in logs(res, "session") if e["state"] == "end"][0]
    assert end["reason"] == "timer"
    fade = outputs(res, 1, start + 59.9, start + 62.5)
    assert fade[-1]["drive_ma"] == 0.0 and fade[-1]["t"] <= start + 62.1
    assert not outputs(res, 1, start + 62.5) and not outputs(res, 2, start + 62.5)


@pytest.mark.req("SR-10")
def test_low_battery_warns_and_cut_off_fades_and_blocks_a_start():
    res = run("sr10_battery")
    clean(res)
    states = [(e["state"], e["sim_t"]) for e in logs(res, "battery")]
    assert [s for s, _ in states][:2] == ["low", "cutoff"]
    t_cut = states[1][1]
    assert 14.0 < t_cut < 22.0
    assert level_at(res, 1, t_cut - 0.01)["peak_ma"] > 5.0  # low: output continued
    fade = outputs(res, 1, t_cut, t_cut + 2.5)
    assert fade[-1]["drive_ma"] == 0.0 and fade[-1]["t"] <= t_cut + 2.1
    assert [r["peak_ma"] for r in fade[:-1]] == sorted(r["peak_ma"] for r in fade[:-1])[::-1]
    assert not outputs(res, 1, t_cut + 2.5) and not outputs(res, 2, t_cut + 2.5)
    assert logs(res, "refused")[-1]["limit"] == "battery"
    assert any(r["state"] for r in res.of("led", name="status_r") if r["t"] > 7.0)  # amber/red


@pytest.mark.req("SR-17")
def test_the_charger_fades_a_session_out_and_blocks_a_start_until_unplugged():
    res = run("sr17_charging")
    clean(res)
    assert [e["on"] for e in logs(res, "charging")] == [True, False]
    t_in = logs(res, "charging")[0]["sim_t"]
    assert 7.0 <= t_in < 8.05  # seen within a battery reading (every second)
    assert level_at(res, 1, 6.9)["peak_ma"] > 3.5  # step 4 of 1.0 mA on the wearable
    fade = outputs(res, 1, t_in, t_in + 2.5)
    assert fade[-1]["drive_ma"] == 0.0 and fade[-1]["t"] <= t_in + 2.1
    assert not outputs(res, 1, t_in + 2.5, 13.0) and not outputs(res, 2, t_in + 2.5, 13.0)
    assert logs(res, "refused")[-1]["limit"] == "charging"
    end = [e for e in logs(res, "session") if e["state"] == "end"][0]
    assert end["reason"] == "charging"
    assert outputs(res, 1, 14.0)  # unplugged: PLUS starts a session again


@pytest.mark.req("SR-11")
def test_held_and_stuck_buttons_never_raise_intensity():
    res = run("sr11_buttons")
    clean(res)
    assert not [e for e in logs(res, "intensity") if e["sim_t"] < 4.0]
    steps = [e["step"] for e in logs(res, "intensity") if e["ch"] == 1]
    assert max(steps) <= 1 + 1 + 8
    assert not [e for e in logs(res, "button") if e["name"] == "minus"]  # down at power-up
    assert [e["name"] for e in logs(res, "button_stuck")] == ["plus"]
    assert peak_max(res, 1, 12.0) <= peak_max(res, 1, 7.0, 12.0)
    assert not [e for e in logs(res, "intensity") if e["sim_t"] > 12.0]


@pytest.mark.req("SR-13")
def test_corrupt_settings_give_defaults_and_the_choice_survives_a_power_cycle():
    res = run("sr13_bad_settings")
    clean(res)
    warn = logs(res, "settings")
    assert warn[0]["lvl"] == "warn"
    assert outputs(res, 1, 2.5, 5.5) and outputs(res, 2, 2.5, 5.5)  # defaults: both channels
    assert [r["rate_hz"] for r in outputs(res, 1, 2.5, 5.5) if r["rate_hz"]][-1] == 100.0
    assert [e["cause"] for e in logs(res, "boot")] == ["power_on", "power_on"]
    assert [e["id"] for e in logs(res, "program")][-1] == "tens_acupuncture"
    assert [r["rate_hz"] for r in outputs(res, 1, 9.0) if r["rate_hz"]][-1] == 2.0


def replies(res) -> dict:
    """The unit's replies to host commands, by request id (a line whose id the unit could not
    read is filed under its error code)."""
    out = {}
    for r in res.of("reply"):
        rep = json.loads(r["line"])
        rep["sim_t"] = r["t"]
        out[rep.get("id") or rep["code"]] = rep
    return out


@pytest.mark.req("SR-12", "SR-2", "SR-3")
def test_host_link_refuses_bad_lines_and_a_lost_keep_alive_ramps_to_zero():
    res = run("sr12_host_link")
    clean(res)
    assert len(res.of("host")) == 12  # every line the host sent is in the trace
    rep = replies(res)
    assert [rep[k]["r"] for k in ("a1", "s1", "p1", "i2", "i3", "p2", "q1")] == ["ok"] * 7
    codes = {k: rep[k]["code"] for k in ("r5", "c1", "u1", "b1", "l1")}
    # b1 and l1: lines the unit could not read, answered with their id (read before the problem)
    assert codes == {
        "r5": "rise",
        "c1": "limit",
        "u1": "unknown",
        "b1": "bad_bytes",
        "l1": "too_long",
    }
    # The host's start went through the electrode check (weak probe pulses) and the soft start.
    first = outputs(res, 1, 3.0, 4.0)
    assert first[0]["drive_ma"] < 1.0 and first[1]["drive_ma"] == 0.0
    ramp = [r["peak_ma"] for r in outputs(res, 1, 3.2, 5.0)]
    assert ramp == sorted(ramp) and ramp[0] < 0.2 * STEP_MA
    # Step 3 reached one step per command; the refused lines (6.0 to 7.2 s) changed nothing.
    held = outputs(res, 1, 5.9, 12.0)
    assert held == [] and 2 * STEP_MA < level_at(res, 1, 11.9)["peak_ma"] <= 3 * STEP_MA
    assert level_at(res, 2, 11.9)["peak_ma"] <= STEP_MA  # channel 2 stayed at step 1
    # Nothing valid after 9.0 s: the keep-alive (3 s) runs out and output ramps to zero in 2 s.
    warn = logs(res, "host")[-1]
    assert warn["lvl"] == "warn" and 11.9 < warn["sim_t"] < 12.2
    assert not zero_at(res, 1, 12.5) and zero_at(res, 1, 14.2) and zero_at(res, 2, 14.2)
    assert outputs(res, 1, 14.2) == []


@pytest.mark.req("SR-2", "SR-6")
def test_the_plus_that_restarts_a_lifted_channel_raises_no_other():
    res = run("sr02_one_press_one_channel")
    clean(res)
    before = level_at(res, 2, 7.9)["peak_ma"]
    assert before == pytest.approx(6 * 1.5, abs=0.2)
    assert outputs(res, 2, 9.0, 12.9) == []  # channel 2 never changed: no output record
    assert level_at(res, 2, 12.9)["peak_ma"] == before
    assert [(e["ch"], e["step"]) for e in logs(res, "intensity") if 8.9 < e["sim_t"] < 12.9] == [
        (1, 1)
    ]
    assert level_at(res, 1, 12.9)["peak_ma"] == pytest.approx(1.5, abs=0.2)
    assert level_at(res, 2, 15.9)["peak_ma"] == pytest.approx(7 * 1.5, abs=0.2)  # both +1
    assert level_at(res, 1, 15.9)["peak_ma"] == pytest.approx(2 * 1.5, abs=0.2)


@pytest.mark.req("FR-28")
def test_an_idle_unit_switches_itself_off_a_minute_after_its_session():
    res = run("fr28_auto_off")
    clean(res)
    power = [(e["on"], e["sim_t"]) for e in logs(res, "power")]
    assert [on for on, _t in power] == [True, False]
    ended = [e["sim_t"] for e in logs(res, "session") if e["state"] == "end"]
    assert ended and power[1][1] - ended[0] == pytest.approx(60.0, abs=0.5)
    assert len(logs(res, "auto_off")) == 1


def felt(res, t0: float, t1: float) -> list[tuple[float, int]]:
    """(start s, length ms) of each buzz or motor pulse that began between t0 and t1."""
    out, on = [], None
    for r in res.of("feedback"):
        if r["state"]:
            on = r["t"]
        elif on is not None:
            if t0 <= on < t1:
                out.append((on, round((r["t"] - on) * 1000)))
            on = None
    return out


def lengths(res, t0: float, t1: float) -> list[int]:
    return [ms for _t, ms in felt(res, t0, t1)]


@pytest.mark.req("FR-26")
def test_the_wearer_feels_each_confirmation_by_its_rhythm():
    res = run("fr26_feedback")
    clean(res)
    assert all(r["name"] == "haptic" for r in res.of("feedback"))  # the wearable's motor
    near = functools.partial(pytest.approx, abs=15)
    assert lengths(res, 1.5, 3.0) == [near(500)]  # power on
    assert lengths(res, 3.5, 5.0) == [near(60), near(60), near(300)]  # session start
    assert lengths(res, 6.5, 7.5) == [near(40)]  # step up
    assert lengths(res, 8.0, 9.0) == [near(150)]  # step down
    assert lengths(res, 10.0, 11.0) == [near(50)] * 5  # open electrode
    assert lengths(res, 13.5, 16.0) == [near(500), near(500)]  # power off
    assert patterns.name_of(lengths(res, 3.5, 5.0)) == "session start"
    assert patterns.name_of(lengths(res, 10.0, 11.0)) == "open electrode"


@pytest.mark.req("FR-27")
def test_the_session_length_and_the_status_are_told_on_the_unit():
    res = run("fr27_status_and_length")
    clean(res)
    assert [e["min"] for e in logs(res, "session_length")] == [10, 20]
    near = functools.partial(pytest.approx, abs=15)
    assert lengths(res, 3.5, 5.0) == [near(120)]  # 10 minutes: one medium pulse
    assert lengths(res, 5.5, 7.0) == [near(120)] * 2  # 20 minutes
    assert lengths(res, 8.0, 9.5) == [near(120)] * 2  # program 2
    # The chord: program 2 (two medium), both channels (very long), step 0 (long).
    assert lengths(res, 11.0, 14.0) == [near(120), near(120), near(600), near(400)]
    assert [e["id"] for e in logs(res, "program")][-1] == "tens_acupuncture"
    assert not outputs(res, 1) and not outputs(res, 2)  # nothing started


@pytest.mark.req("FR-30")
def test_an_installed_program_follows_the_built_ins_and_starts_as_they_do():
    res = run("fr30_custom_program")
    clean(res)
    assert [e for e in logs(res, "programs") if e.get("custom") == ["gentle_mod"]]
    assert [e["id"] for e in logs(res, "program")][-1] == "gentle_mod"
    start = [e for e in logs(res, "session") if e["state"] == "start"][0]
    assert start["program"] == "gentle_mod" and start["length_s"] == 20 * 60
    first = outputs(res, 1, 7.0, 7.5)
    assert first and first[0]["drive_ma"] < 1.0  # the electrode check's weak probe first
    late = outputs(res, 1, 9.0, 12.0)
    assert late and all(r["rate_hz"] == pytest.approx(60, rel=0.01) for r in late if r["rate_hz"])
    assert max(r["phase_us"] for r in late) <= 251


# ---- the library itself --------------------------------------------------------------------
def test_every_scenario_file_is_valid_and_documented():
    readme = (SCENARIOS / "README.md").read_text()
    files = sorted(SCENARIOS.glob("*.json"))
    assert len(files) >= 21
    for f in files:
        s = scenario.load(f)
        assert s.description, f.name
        assert f.name in readme, "%s is not in scenarios/README.md" % f.name

"""The wearer's unit at the simulated pins: buttons, sessions, lock, battery, watchdog, settings
(SR-1, SR-2, SR-7, SR-8, SR-9, SR-10, SR-11, SR-13).

Every scenario runs the whole firmware (boot.py, main.py, the app) on the simulated pico and
presses the buttons as pin levels; what counts is the current the board model sees in the load,
the LED pins and the files on the simulated flash.
"""

from __future__ import annotations

import json

import pytest

from host_tools.dev import bench_stop
from host_tools.testing.status_led import AMBER, GREEN, OFF, RED, runs, status_colours

ON_S = 0.5  # POWER held from here for 1.7 s: the unit is on at 2.0 s
START_S = 2.5  # first PLUS press: session starts (electrode check, soft start)
STEP_MA = 1.5


def unit_on(make_unit, *, steps=0, load_ohm=None, battery_v=3.9, settings=None, **kw):
    files = None
    if settings is not None:
        from host_tools.boards import load_board

        files = {"/board.json": json.dumps(load_board("pico")), "/settings.json": settings}
    unit = make_unit(
        "pico", load_ohm=load_ohm or {1: 1000.0, 2: 1000.0}, battery_v=battery_v, files=files, **kw
    )
    unit.press("power", at=ON_S, hold_s=1.7)
    for i in range(steps):
        unit.press("plus", at=START_S + 0.3 * i)
    return unit


def ready_s(steps):
    """When a unit from unit_on(steps=...) is at its step: last press + check + soft start."""
    return START_S + 0.3 * (steps - 1) + 2.6


def pulses(unit, ch=1, t0=0.0, t1=1e9, min_ma=0.05):
    return [
        p
        for p in unit.model.channels[ch - 1].pulse_log
        if t0 <= p.t_a < t1 and max(p.peak_a_ma, p.peak_b_ma, p.drive_ma) >= min_ma
    ]


def peak(unit, ch=1, t0=0.0, t1=1e9):
    return max((p.peak_a_ma for p in pulses(unit, ch, t0, t1)), default=0.0)


def assert_stopped_within(unit, t_press, limit_s=0.020):
    for ch in (1, 2):
        late = [p for p in pulses(unit, ch) if p.end_s > t_press + limit_s]
        assert not late, "ch%d still pulsing %.1f ms after the press" % (
            ch,
            (late[0].end_s - t_press) * 1000,
        )


# ---- SR-7: POWER stops everything, in every state -----------------------------------------
@pytest.mark.req("SR-7")
@pytest.mark.parametrize("state", list(bench_stop.STATES))
@pytest.mark.parametrize("offset_ms", [0.0, 4.3, 8.9])
def test_power_press_stops_all_output_within_20_ms_in_every_state(state, offset_ms):
    unit, t_press = bench_stop.STATES[state](offset_ms / 1000)
    try:
        unit.press("power", at=t_press, hold_s=0.15)
        unit.run_until(t_press + 1.0)
        before = pulses(unit, 1, t_press - 0.5, t_press) + pulses(unit, 2, t_press - 0.5, t_press)
        assert before, "no output before the press: bad scenario"
        assert_stopped_within(unit, t_press)
        assert unit.model.violations == []
    finally:
        unit.close()


# ---- pause, resume, on/off -----------------------------------------------------------------
@pytest.mark.req("FR-5")
@pytest.mark.req("SR-7", "SR-2")
def test_short_power_press_pauses_and_the_next_resumes_from_zero(make_unit):
    unit = unit_on(make_unit, steps=4)
    t = ready_s(4)
    unit.press("power", at=t)
    unit.run_until(t + 3.0)
    assert not pulses(unit, 1, t0=t + 0.02)  # paused: nothing, for as long as it stays paused
    unit.press("power", at=t + 3.0)
    unit.run_until(t + 6.5)
    again = [p.peak_a_ma for p in pulses(unit, 1, t0=t + 3.0)]
    therapy = [ma for ma in again if ma > 1.0]
    assert again[0] <= 1.0  # electrode check probe first
    assert therapy and therapy[0] < 0.5 * 4 * STEP_MA  # ramps up from low
    assert 4 * STEP_MA - 0.2 <= again[-1] <= 4 * STEP_MA  # back to the step it had
    states = [e["state"] for e in unit.logs("session")]
    assert states[:3] == ["start", "paused", "resumed"]
    logged = unit.logs("intensity")
    resumed = [(e["ch"], e["step"], e["ma"]) for e in logged if e["sim_t"] > t + 3.0]
    assert resumed == [(1, 4, 4 * STEP_MA), (2, 4, 4 * STEP_MA)]  # the log says what came back


@pytest.mark.req("FR-5")
@pytest.mark.req("SR-1")
def test_power_off_stops_and_power_on_starts_from_zero(make_unit):
    unit = unit_on(make_unit, steps=4)
    t = ready_s(4)
    unit.press("power", at=t, hold_s=1.7)  # off
    unit.run_until(t + 2.5)
    assert not pulses(unit, 1, t0=t + 0.02)
    led = unit.board["status_led"]
    assert all(unit.pin(led[c]) == 0 for c in "rgb")
    unit.press("power", at=t + 3.0, hold_s=1.7)  # on again
    unit.press("plus", at=t + 5.5)
    unit.run_until(t + 9.0)
    assert 0 < peak(unit, 1, t0=t + 5.5) <= STEP_MA  # one step, not the four it had
    assert [e["on"] for e in unit.logs("power")] == [True, False, True]


# ---- SR-2, SR-11: buttons ------------------------------------------------------------------
@pytest.mark.req("SR-2", "SR-11")
def test_holding_plus_repeats_at_a_bounded_rate_then_is_treated_as_stuck(make_unit):
    unit = unit_on(make_unit, steps=1)
    t = ready_s(1)
    unit.press("plus", at=t, hold_s=40.0)
    unit.run_until(t + 45.0)
    steps = [e["step"] for e in unit.logs("intensity") if e["ch"] == 1]
    # 1 from the start, then the press and at most 8 repeats: never more, however long held
    assert max(steps) <= 1 + 1 + 8
    times = [e["sim_t"] for e in unit.logs("intensity") if e["ch"] == 1 and e["step"] > 1]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps and min(gaps) >= 0.39  # 2.5 steps per second at most
    assert peak(unit, 1, t0=t) <= max(steps) * STEP_MA
    assert [e["name"] for e in unit.logs("button_stuck")] == ["plus"]
    last_step_t = times[-1]
    assert last_step_t < t + 5.0  # nothing after the repeats, for the remaining 35 s


@pytest.mark.req("SR-11")
def test_a_button_held_from_power_up_never_starts_output(make_unit):
    unit = make_unit("pico")
    unit.press("plus", at=0.0, hold_s=60.0)  # stuck from the moment the battery goes in
    unit.press("power", at=ON_S, hold_s=1.7)
    unit.run_until(40.0)
    assert not pulses(unit, 1) and not pulses(unit, 2)
    assert [e["name"] for e in unit.logs("button_stuck")] == ["plus"]


@pytest.mark.req("FR-5")
@pytest.mark.req("SR-11", "SR-7")
def test_lock_blocks_changes_but_not_stop(make_unit):
    unit = unit_on(make_unit, steps=3)
    t = ready_s(3)
    unit.press("plus", at=t, hold_s=3.3)
    unit.press("minus", at=t + 0.02, hold_s=3.28)  # together: within one debounce time
    for i in range(4):
        unit.press("plus", at=t + 4.0 + 0.3 * i)
    unit.press("mode", at=t + 5.5)
    unit.run_until(t + 6.5)
    assert [e["locked"] for e in unit.logs("lock")] == [True]
    level = [p.peak_a_ma for p in pulses(unit, 1, t0=t + 4.0, t1=t + 6.5)]
    assert level and max(level) <= 3 * STEP_MA  # no step up while locked
    assert not [e for e in unit.logs("program") if e["sim_t"] > t]  # MODE ignored too
    unit.press("power", at=t + 6.5)  # stop still works
    unit.run_until(t + 7.0)
    assert_stopped_within(unit, t + 6.5)
    led = unit.board["status_led"]["b"]
    assert 1 in unit.pin_trace(led, t + 7.0, t + 11.0)  # the blue "locked" blip


@pytest.mark.req("FR-5")
@pytest.mark.req("SR-2")
def test_channel_selection_gesture_steps_one_channel(make_unit):
    unit = unit_on(make_unit, steps=2)
    t = ready_s(2)
    unit.press("mode", at=t, hold_s=1.2)  # both -> channel 1 only
    for i in range(3):
        unit.press("plus", at=t + 1.6 + 0.3 * i)
    unit.run_until(t + 3.5)
    # the selection at boot, then the change
    assert [e["selected"] for e in unit.logs("channels")] == ["both", "1"]
    assert 5 * STEP_MA - 0.2 <= peak(unit, 1, t0=t + 3.0) <= 5 * STEP_MA
    assert 2 * STEP_MA - 0.2 <= peak(unit, 2, t0=t + 3.0) <= 2 * STEP_MA


# ---- SR-9: session length ------------------------------------------------------------------
SHORT_SESSION = json.dumps({"program": "tens_conventional", "session_min": 1, "channels": "both"})


@pytest.mark.req("FR-6", "FR-8")
@pytest.mark.req("SR-9", "SR-13")
def test_session_ends_by_itself_with_a_2_s_ramp_down_and_a_history_record(make_unit):
    unit = unit_on(make_unit, steps=6, settings=SHORT_SESSION)
    unit.run_until(START_S + 70.0)
    start = [e for e in unit.logs("session") if e["state"] == "start"][0]["sim_t"]
    # 60 s delivered (from the first press), then 2 s of fading, then nothing
    fade = [p.peak_a_ma for p in pulses(unit, 1, t0=start + 60.0, t1=start + 62.5)]
    assert fade and fade[0] > 4.0 and fade[-1] < 1.0
    assert all(b <= a + 1e-9 for a, b in zip(fade, fade[1:], strict=False))
    assert not pulses(unit, 1, t0=start + 62.5) and not pulses(unit, 2, t0=start + 62.5)
    hist = [json.loads(x) for x in unit.fs.read("/history.jsonl").decode().splitlines()]
    assert len(hist) == 1 and hist[0]["end"] == "timer" and hist[0]["max_step"] == [6, 6]
    assert 0.9 <= hist[0]["min"] <= 1.1
    assert "intensity" not in json.loads(unit.fs.read("/settings.json"))


@pytest.mark.req("SR-1", "SR-7")
def test_a_press_that_stops_the_end_of_session_fade_leaves_nothing_to_resume(make_unit):
    """POWER during the end-of-session fade stops it (and ends the session); the steps it had
    must not come back in a later session: channel 2, deselected since, stays silent there."""
    unit = unit_on(make_unit, steps=3, settings=SHORT_SESSION)
    unit.run_until(START_S + 60.5)
    start = [e for e in unit.logs("session") if e["state"] == "start"][0]["sim_t"]
    t = start + 61.0  # in the 2 s fade
    unit.run_until(t)
    assert pulses(unit, 2, t0=t - 0.5, t1=t), "no fade on channel 2: bad scenario"
    unit.press("power", at=t, hold_s=0.15)
    unit.press("mode", at=t + 1.0, hold_s=1.2)  # both -> channel 1 only
    unit.press("plus", at=t + 3.0)  # a new session on channel 1 at step 1
    unit.press("power", at=t + 6.0, hold_s=0.15)  # pause
    unit.press("power", at=t + 7.0, hold_s=0.15)  # resume
    unit.run_until(t + 11.0)
    assert [e["selected"] for e in unit.logs("channels")][-1] == "1"
    assert pulses(unit, 1, t0=t + 8.0), "channel 1 did not resume: bad scenario"
    assert not pulses(unit, 2, t0=t + 0.1)


@pytest.mark.req("SR-7")
def test_power_stops_an_end_of_session_fade_whose_channels_all_tripped(make_unit):
    """In the 2 s fade at a session's end both electrodes come off: both channels stop at
    the open, the fade is still under way. POWER then stops it: the session ends stopped, at
    the press, not as a session that ran its time."""
    unit = unit_on(make_unit, steps=1, settings=SHORT_SESSION)
    unit.run_until(START_S + 60.2)
    start = [e for e in unit.logs("session") if e["state"] == "start"][0]["sim_t"]
    t = start + 60.4  # in the fade
    for ch in (1, 2):
        unit.at(t, unit.model.set_load, ch, 1e9)
    unit.press("power", at=t + 0.4, hold_s=0.15)
    unit.run_until(t + 3.0)
    assert [e["fault"] for e in unit.logs("electrode")][-2:] == ["open", "open"]
    end = [e for e in unit.logs("session") if e["state"] == "end"]
    assert end and end[-1]["reason"] == "stopped", end


@pytest.mark.req("FR-6")
@pytest.mark.parametrize("lift_ms", [0, 50])
def test_a_fade_whose_channels_all_tripped_ends_the_session_on_time(make_unit, lift_ms):
    """Both electrodes come off in the 2 s fade at a session's end: both channels stop, and
    the session still ends when its fade does, within a 10 ms control cycle. A fade is never
    steady, even with no channel left in it, so the cycle keeps its fast rate (at 100 ms the
    end would come up to 100 ms late; the lift at two instants 50 ms apart puts one of them
    at least 25 ms from that slow grid)."""
    unit = unit_on(make_unit, steps=1, settings=SHORT_SESSION)
    start = START_S + 60.0
    unit.run_until(start + 0.2)
    ending = [e for e in unit.logs("session") if e["state"] == "ending"]
    assert ending, "no fade: bad scenario"
    t_fade = ending[0]["sim_t"]
    t = t_fade + 0.4 + lift_ms / 1000
    for ch in (1, 2):
        unit.at(t, unit.model.set_load, ch, 1e9)
    unit.run_until(t_fade + 2.5)
    assert [e["fault"] for e in unit.logs("electrode")][-2:] == ["open", "open"]
    end = [e for e in unit.logs("session") if e["state"] == "end"]
    assert len(end) == 1 and end[0]["reason"] == "timer", end
    assert 2.0 <= end[0]["sim_t"] - t_fade <= 2.02, (t_fade, end[0]["sim_t"])


@pytest.mark.req("SR-1", "SR-7")
def test_pausing_twice_never_starts_a_channel_the_wearer_left_at_zero(make_unit):
    """Channel 1 alone selected: its session runs at step 1, channel 2 stays at 0. Each
    resume brings back what each channel had when paused, and nothing for a channel that had
    nothing, however many times the wearer pauses and resumes."""
    unit = unit_on(make_unit)
    unit.press("mode", at=START_S, hold_s=1.2)  # both -> channel 1 only
    t = START_S + 2.0
    unit.press("plus", at=t)  # a session on channel 1 at step 1
    for k in range(2):
        unit.press("power", at=t + 4.0 + 3.0 * k, hold_s=0.15)  # pause
        unit.press("power", at=t + 5.0 + 3.0 * k, hold_s=0.15)  # resume
    unit.run_until(t + 13.0)
    assert [e["selected"] for e in unit.logs("channels")][-1] == "1"
    assert len([e for e in unit.logs("session") if e["state"] == "paused"]) == 2
    assert pulses(unit, 1, t0=t + 11.0), "channel 1 did not resume: bad scenario"
    assert not pulses(unit, 2), "channel 2 was never raised, yet it pulsed"


@pytest.mark.req("FR-6", "FR-8", "SR-6")
def test_the_history_record_names_each_channels_electrode_fault_once(make_unit):
    """Channel 1 lifted, then channel 2 shorted: each stops, the session ends by itself (no
    channel left) and its history record lists both faults, each once, in order."""
    from host_tools.sim.board_model import OPEN_OHM, SHORT_OHM

    unit = unit_on(make_unit, steps=2)
    t = ready_s(2)
    unit.at(t, unit.model.set_load, 1, OPEN_OHM)
    unit.at(t + 2.0, unit.model.set_load, 2, SHORT_OHM)
    unit.run_until(t + 4.0)
    assert not pulses(unit, 1, t0=t + 0.1) and not pulses(unit, 2, t0=t + 2.1)
    hist = [json.loads(x) for x in unit.fs.read("/history.jsonl").decode().splitlines()]
    assert len(hist) == 1 and hist[0]["end"] == "fault"
    assert hist[0]["faults"] == ["1:open", "2:short"]


def _lifted_put_back_and_raised(make_unit, steps):
    """Both channels at `steps`; at t (returned), channel 1's electrode lifted (fault open),
    put back 0.5 s later, PLUS at t + 1.0; run to t + 4.0."""
    from host_tools.sim.board_model import OPEN_OHM

    unit = unit_on(make_unit, steps=steps)
    t = ready_s(steps)
    unit.at(t, unit.model.set_load, 1, OPEN_OHM)
    unit.at(t + 0.5, unit.model.set_load, 1, 1000.0)
    unit.press("plus", at=t + 1.0)
    unit.run_until(t + 4.0)
    return unit, t


@pytest.mark.req("SR-2", "SR-6")
def test_the_plus_that_restarts_a_faulted_channel_raises_no_other(make_unit):
    """Both channels at step 6 (the selection on both); channel 1's electrode lifted and put
    back; PLUS: channel 1 is checked again and soft-starts from zero, channel 2 keeps exactly
    the current it had, pulse for pulse, at the load. The next PLUS raises both by one."""
    unit, t = _lifted_put_back_and_raised(make_unit, steps=6)
    before = peak(unit, 2, t - 0.5, t)
    after = [p.peak_a_ma for p in pulses(unit, 2, t + 1.0, t + 4.0)]
    assert before == pytest.approx(6 * STEP_MA, rel=0.05)
    assert after and max(after) == pytest.approx(before, abs=0.01)  # channel 2 untouched
    assert peak(unit, 1, t + 3.8, t + 4.0) == pytest.approx(STEP_MA, rel=0.1)  # restarted, 1
    steps = [(r["ch"], r["step"]) for r in unit.logs("intensity") if r["sim_t"] > t + 1.0]
    assert steps == [(1, 1)]
    unit.press("plus", at=t + 4.0)
    unit.run_until(t + 7.0)
    assert peak(unit, 2, t + 6.8, t + 7.0) == pytest.approx(7 * STEP_MA, rel=0.05)
    assert peak(unit, 1, t + 6.8, t + 7.0) == pytest.approx(2 * STEP_MA, rel=0.1)


@pytest.mark.req("FR-6", "SR-6")
def test_a_faulted_channel_that_restarts_no_longer_shows_its_fault(make_unit):
    """Channel 1's electrode lifted (fault `open`) and put back; PLUS checks it again and it
    runs: from that check on it has no fault. MINUS then takes both channels to zero: the
    session ends as the wearer ended it (`intensity`), not as a fault, and its record still
    names the open it had."""
    unit, t = _lifted_put_back_and_raised(make_unit, steps=1)
    assert pulses(unit, 1, t + 3.8, t + 4.0), "channel 1 did not restart: bad scenario"
    unit.press("minus", at=t + 4.0)
    unit.press("minus", at=t + 4.3)
    unit.run_until(t + 5.0)
    assert not pulses(unit, 1, t0=t + 4.5) and not pulses(unit, 2, t0=t + 4.5)
    end = [e for e in unit.logs("session") if e["state"] == "end"]
    assert len(end) == 1 and end[0]["reason"] == "intensity", end
    hist = [json.loads(x) for x in unit.fs.read("/history.jsonl").decode().splitlines()]
    assert hist[-1]["end"] == "intensity" and hist[-1]["faults"] == ["1:open"]


# ---- SR-10: battery ------------------------------------------------------------------------
@pytest.mark.req("SR-10")
def test_battery_cut_off_ramps_down_and_stops_and_no_session_starts(make_unit):
    unit = unit_on(make_unit, steps=6)
    t = ready_s(6)
    unit.at(t, unit.model.set_battery, 3.45)  # below warn: a warning, output continues
    unit.at(t + 10.0, unit.model.set_battery, 3.1)  # below cut-off
    unit.press("plus", at=t + 20.0)  # refused while the battery is empty
    unit.run_until(t + 23.0)
    ev = unit.logs("battery")
    assert ("low", "warn") in [(e["state"], e["lvl"]) for e in ev]
    assert pulses(unit, 1, t0=t + 9.0, t1=t + 10.0)
    cut = [e for e in ev if e["state"] == "cutoff"][0]["sim_t"]
    assert t + 10.0 < cut < t + 18.0  # smoothed: seconds, not one sample
    fade = [p.peak_a_ma for p in pulses(unit, 1, t0=cut, t1=cut + 2.1)]
    assert fade and fade[-1] < 0.5 * fade[0]  # ramps down
    assert not pulses(unit, 1, t0=cut + 2.1) and not pulses(unit, 2, t0=cut + 2.1)
    assert unit.logs("refused")[-1]["limit"] == "battery"


def battery_state_at(unit, state, within_s=20.0):
    """Run the unit until the battery is logged in `state`, a second at a time (the battery
    is read once a second); when it was."""
    t_end = unit.chip.t_s + within_s
    while unit.chip.t_s < t_end:
        unit.run_for(1.0)
        seen = [e["sim_t"] for e in unit.logs("battery") if e["state"] == state]
        if seen:
            return seen[0]
    raise AssertionError("battery never %s" % state)


@pytest.mark.req("SR-10")
def test_a_low_and_an_empty_battery_show_on_the_status_led(make_unit):
    """At the status LED's pins of a running unit: steady green with a good battery; low, an
    amber blip of 300 ms in every 4 s beside the green (stim.leds); empty (cut off), three
    short red flashes every 2 s and no green, once the warning's and the cut-off's feedback
    patterns (white flashes) are over."""
    unit = unit_on(make_unit, steps=2)
    t = ready_s(2)
    assert set(status_colours(unit, t, t + 4.0)) == {GREEN}
    unit.at(t + 4.0, unit.model.set_battery, 3.45)
    low = battery_state_at(unit, "low")
    seen = status_colours(unit, low + 2.0, low + 6.0)
    assert runs(seen, AMBER) == 1 and 28 <= seen.count(AMBER) <= 31
    assert set(seen) == {GREEN, AMBER, OFF}
    unit.at(low + 6.0, unit.model.set_battery, 3.1)
    cut = battery_state_at(unit, "cutoff")
    seen = status_colours(unit, cut + 4.0, cut + 6.0)
    assert set(seen) == {RED, OFF} and runs(seen, RED) == 3


@pytest.mark.req("SR-10")
def test_a_charged_battery_is_not_reported_low_on_its_way_up(make_unit):
    """Emptied to cut-off, then charged to 3.8 V: the unit reports it ok, with no `low`
    warning on the way up (the reading above the warning band is taken as it is)."""
    unit = unit_on(make_unit, battery_v=3.1)
    unit.run_until(12.0)
    assert unit.logs("battery")[-1]["state"] == "cutoff"
    n = len(unit.logs("battery"))
    unit.at(12.0, unit.model.set_battery, 3.8)
    unit.run_until(20.0)
    after = [(e["state"], e["lvl"]) for e in unit.logs("battery")[n:]]
    assert after == [("ok", "info")]
    unit.press("plus", at=20.5)  # and a session starts again
    unit.run_until(21.5)
    assert unit.logs("session")[-1]["state"] == "start"


# ---- SR-8: watchdog --------------------------------------------------------------------------
@pytest.mark.req("SR-8")
def test_a_hung_control_task_is_reset_by_the_watchdog_into_the_safe_state(make_unit, fw_copy):
    app = fw_copy / "stim" / "app.py"
    text = app.read_text()
    old = "                self.control_cycle()\n"
    assert old in text
    app.write_text(
        text.replace(
            old,
            old + "                if self.unit.session.elapsed_ms(time.ticks_ms()) > 3000:\n"
            "                    await asyncio.sleep_ms(10**8)  # hangs: no cycle completes\n",
        )
    )
    unit = make_unit("pico", firmware_dir=fw_copy, load_ohm={1: 1000.0, 2: 1000.0})
    unit.press("power", at=ON_S, hold_s=1.7)
    unit.press("plus", at=START_S)
    unit.run_until(START_S + 10.0)
    boots = unit.logs("boot")
    assert [b["cause"] for b in boots] == ["power_on", "watchdog"]
    t_reset = boots[1]["sim_t"]
    assert START_S + 3.0 < t_reset < START_S + 3.0 + 2.0 + 0.6  # timeout 2 s + feed period
    assert not pulses(unit, 1, t0=t_reset) and not pulses(unit, 2, t0=t_reset)
    assert unit.pin(unit.board["boost_en"]) == 0


# ---- SR-13, SR-1: settings ---------------------------------------------------------------------
@pytest.mark.req("FR-8")
@pytest.mark.req("SR-13", "SR-1")
def test_settings_restore_program_and_selection_but_never_intensity(make_unit):
    cfg = json.dumps({"program": "tens_acupuncture", "session_min": 20, "channels": "2"})
    unit = unit_on(make_unit, steps=1, settings=cfg)
    unit.run_until(START_S + 4.0)
    assert not pulses(unit, 1)  # channel 2 only
    ch2 = pulses(unit, 2, t0=START_S + 0.5)
    assert ch2 and max(p.peak_a_ma for p in ch2) <= STEP_MA  # step 1, from zero
    gaps = [b.t_a - a.t_a for a, b in zip(ch2, ch2[1:], strict=False)]
    assert gaps and all(abs(g - 0.5) < 0.01 for g in gaps)  # 2 Hz: tens_acupuncture


@pytest.mark.req("SR-13")
@pytest.mark.parametrize(
    "text",
    ['{"program": "tens_burst", "session_min": 9999, "channels": "both"}', '{"program": ',
     "\x00\xff garbage", '{"program": "nope", "session_min": 30, "channels": "3"}'],
    ids=["out_of_range", "truncated", "garbage", "bad_values"],
)  # fmt: skip
def test_a_bad_settings_file_gives_defaults_and_a_warning(make_unit, text):
    unit = unit_on(make_unit, steps=1, settings=text)
    unit.run_until(START_S + 3.0)
    warn = unit.logs("settings")
    assert warn and warn[0]["lvl"] == "warn"
    assert pulses(unit, 1) and pulses(unit, 2)  # defaults: both channels, and it runs
    assert 0 < peak(unit, 1) <= STEP_MA


@pytest.mark.req("SR-13")
def test_no_settings_file_gives_defaults_and_says_so_without_a_warning(make_unit):
    # A first power-up: no settings file is not a fault, but the log says where the settings
    # came from, as it does for a bad file.
    unit = unit_on(make_unit, steps=1)
    unit.run_until(START_S + 3.0)
    said = unit.logs("settings")
    assert [(e["lvl"], e["msg"]) for e in said] == [("info", "no settings file: defaults")]
    assert pulses(unit, 1) and pulses(unit, 2)  # defaults: both channels, and it runs


@pytest.mark.req("FR-8")
@pytest.mark.req("SR-13")
def test_program_choice_is_saved_atomically_and_survives_a_reset(make_unit):
    unit = unit_on(make_unit)
    unit.press("mode", at=2.5)
    unit.run_until(3.5)
    saved = json.loads(unit.fs.read("/settings.json"))
    assert saved["program"] == "tens_acupuncture"
    assert "settings.json.tmp" not in unit.fs.os_module().listdir("/")
    unit.soft_reset(at=4.0)
    unit.press("power", at=4.5, hold_s=1.7)
    unit.press("plus", at=6.5)
    unit.run_until(9.0)
    assert [e["id"] for e in unit.logs("program")][-1] == "tens_acupuncture"


@pytest.mark.req("FR-6", "FR-7")
@pytest.mark.req("SR-6", "SR-7")
def test_a_boost_that_never_comes_up_is_a_fatal_fault_until_switched_off(make_unit):
    unit = unit_on(make_unit)
    unit.model.boost_fault = True
    unit.press("plus", at=START_S)
    for i in range(3):
        unit.press("plus", at=START_S + 1.0 + 0.3 * i)  # ignored: nothing can start
    unit.run_until(START_S + 3.0)
    assert [e["reason"] for e in unit.logs("fatal")] == ["boost"]
    assert not pulses(unit, 1) and not pulses(unit, 2)
    assert unit.pin(unit.board["boost_en"]) == 0
    red = unit.pin_trace(unit.board["status_led"]["r"], START_S + 3.0, START_S + 4.0)
    assert sum(1 for a, b in zip(red, red[1:], strict=False) if b > a) >= 4  # fast red blink
    unit.press("power", at=START_S + 4.0, hold_s=1.7)  # off: the fault clears
    unit.run_until(START_S + 6.0)
    assert [e["on"] for e in unit.logs("power")] == [True, False]

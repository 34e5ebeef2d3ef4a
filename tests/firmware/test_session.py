"""Session state machine (firmware/stim/session.py): every state against every event.

The transition table below is the specification: for each state and each event, the state it
leads to, or None when the event is refused. A refused event returns False and changes nothing
(state, timer, end reason); an accepted one returns True. Then the timer: it counts RUNNING time
only, and the session ends by itself when the delivered time reaches its length (SR-9), ramps
down for RAMP_DOWN_MS and is back in IDLE.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_tools.sim.rig import FirmwareRig

pytestmark = pytest.mark.req("FR-6")

S = FirmwareRig("pico").import_module("stim.session")
OFF, IDLE, RUNNING, PAUSED, ENDING, FAULT = S.OFF, S.IDLE, S.RUNNING, S.PAUSED, S.ENDING, S.FAULT
STATES = (OFF, IDLE, RUNNING, PAUSED, ENDING, FAULT)
LENGTH_S = 60
T0 = 10_000  # when each prepared state was reached (ms)


def in_state(state: int):
    """A session brought to `state` through real transitions, at time T0, with 5 s delivered
    for RUNNING/PAUSED/ENDING."""
    s = S.Session(LENGTH_S)
    if state == OFF:
        return s
    assert s.power(0)
    if state == IDLE:
        return s
    if state == FAULT:
        assert s.fatal(T0)
        return s
    assert s.start(T0 - 5000)
    if state == RUNNING:
        return s
    if state == PAUSED:
        assert s.pause(T0)
        return s
    if state == ENDING:
        assert s.end(T0, "timer")
        return s
    raise AssertionError(state)


def snapshot(s):
    return (s.state, s.delivered_ms, s._t_run, s._t_end, s.end_reason, s.length_s)


NOW = T0 + 1000
CALLS = {
    "power": lambda s, now: s.power(now),
    "start": lambda s, now: s.start(now),
    "pause": lambda s, now: s.pause(now),
    "resume": lambda s, now: s.resume(now),
    "stopped": lambda s, now: s.stopped(now, "faults"),
    "end": lambda s, now: s.end(now, "battery"),
    "fatal": lambda s, now: s.fatal(now),
}
EVENTS = {name: (lambda s, _f=f: _f(s, NOW)) for name, f in CALLS.items()}

# state -> event -> next state (None: refused, returns False, nothing changes)
TABLE = {
    OFF: dict(power=IDLE, start=None, pause=None, resume=None, stopped=None, end=None,
              fatal=None),
    IDLE: dict(power=OFF, start=RUNNING, pause=None, resume=None, stopped=None, end=None,
               fatal=FAULT),
    RUNNING: dict(power=OFF, start=None, pause=PAUSED, resume=None, stopped=IDLE, end=ENDING,
                  fatal=FAULT),
    PAUSED: dict(power=OFF, start=None, pause=None, resume=RUNNING, stopped=IDLE, end=ENDING,
                 fatal=FAULT),
    ENDING: dict(power=OFF, start=None, pause=None, resume=None, stopped=IDLE, end=None,
                 fatal=FAULT),
    FAULT: dict(power=OFF, start=None, pause=None, resume=None, stopped=None, end=None,
                fatal=None),
}  # fmt: skip


def test_names():
    assert [S.NAMES[x] for x in STATES] == ["off", "idle", "running", "paused", "ending", "fault"]
    assert len(set(STATES)) == 6


def test_prepared_states():
    for st_ in STATES:
        assert in_state(st_).state == st_


@pytest.mark.req("SR-9", "SR-7")
@pytest.mark.parametrize("state", STATES, ids=lambda x: S.NAMES[x])
@pytest.mark.parametrize("event", list(EVENTS))
def test_transition_table(state, event):
    s = in_state(state)
    before = snapshot(s)
    expected = TABLE[state][event]
    r = EVENTS[event](s)
    if expected is None:
        assert r is False
        assert snapshot(s) == before, "a refused event changed the session"
    else:
        assert r is True
        assert s.state == expected


@pytest.mark.req("SR-7")
@pytest.mark.parametrize("state", STATES[1:], ids=lambda x: S.NAMES[x])
def test_power_turns_off_from_every_on_state(state):
    s = in_state(state)
    assert s.power(NOW) is True and s.state == OFF
    assert s.power(NOW + 1) is True and s.state == IDLE  # and on again


@pytest.mark.parametrize("state", STATES, ids=lambda x: S.NAMES[x])
@pytest.mark.parametrize("dt", [0, 1, 999, 1000, 60_000, 10_000_000])
def test_tick_table(state, dt):
    """tick at various times: only RUNNING (timer out) and ENDING (ramp over) move."""
    s = in_state(state)
    before = snapshot(s)
    r = s.tick(T0 + dt)
    if state == RUNNING and 5000 + dt >= LENGTH_S * 1000:
        assert r == "end" and s.state == ENDING and s.end_reason == "timer"
    elif state == ENDING and dt >= S.RAMP_DOWN_MS:
        assert r == "ended" and s.state == IDLE
    else:
        assert r is None
        assert snapshot(s) == before


def test_start_resets_timer_and_reason():
    s = in_state(IDLE)
    s.start(0)
    s.tick(LENGTH_S * 1000)
    s.tick(LENGTH_S * 1000 + S.RAMP_DOWN_MS)
    assert s.state == IDLE and s.end_reason == "timer" and s.elapsed_ms(10**7) == LENGTH_S * 1000
    assert s.start(10**7)
    assert s.delivered_ms == 0 and s.end_reason is None and s.remaining_s(10**7) == LENGTH_S


def test_end_reasons():
    s = in_state(RUNNING)
    s.stopped(NOW, "program")
    assert s.end_reason == "program"
    s = in_state(PAUSED)
    s.end(NOW, "battery")
    assert s.end_reason == "battery" and s.state == ENDING
    s.stopped(NOW + 10, "stopped")
    assert s.state == IDLE and s.end_reason == "stopped"


# ---- timer --------------------------------------------------------------------------------
@pytest.mark.req("SR-9")
def test_timer_counts_running_time_only():
    s = S.Session(LENGTH_S)
    s.power(0)
    s.start(1000)
    assert s.elapsed_ms(1000) == 0
    assert s.elapsed_ms(11_000) == 10_000
    s.pause(11_000)
    assert s.elapsed_ms(500_000) == 10_000  # paused: frozen, however long
    assert s.tick(500_000) is None and s.state == PAUSED
    s.resume(500_000)
    assert s.elapsed_ms(520_000) == 30_000
    assert s.remaining_s(520_000) == LENGTH_S - 30
    s.pause(520_000)
    s.resume(600_000)
    # 30 s delivered, 30 s to go: it ends at exactly 630_000
    assert s.tick(629_999) is None and s.state == RUNNING
    assert s.remaining_s(629_999) == 1
    assert s.tick(630_000) == "end"
    assert s.state == ENDING and s.elapsed_ms(630_000) == LENGTH_S * 1000
    assert s.remaining_s(630_000) == 0
    # ramp down: the delivered time no longer grows
    assert s.tick(630_000 + S.RAMP_DOWN_MS - 1) is None and s.state == ENDING
    assert s.elapsed_ms(700_000) == LENGTH_S * 1000
    assert s.tick(630_000 + S.RAMP_DOWN_MS) == "ended"
    assert s.state == IDLE
    assert s.tick(10**8) is None and s.state == IDLE


@pytest.mark.req("SR-9")
@pytest.mark.parametrize("length_s", [1, 60, 30 * 60, 120 * 60])
def test_session_ends_by_itself_at_its_length(length_s):
    s = S.Session(length_s)
    s.power(0)
    s.start(0)
    got = [(t, r) for t in range(0, length_s * 1000 + 5000, 10) if (r := s.tick(t))]
    t_end = length_s * 1000
    assert got == [(t_end, "end"), (t_end + S.RAMP_DOWN_MS, "ended")]
    assert s.state == IDLE


@pytest.mark.req("SR-9")
def test_set_length_takes_effect_on_running_session():
    s = S.Session(30 * 60)
    s.power(0)
    s.start(0)
    s.set_length(60)
    assert s.remaining_s(10_000) == 50
    assert s.tick(60_000) == "end"


@pytest.mark.req("SR-9")
def test_end_when_delivered_already_past_length():
    s = S.Session(60)
    s.power(0)
    s.start(0)
    s.pause(50_000)
    s.set_length(30)  # shortened below what was already delivered
    s.resume(60_000)
    assert s.remaining_s(60_000) == 0
    assert s.tick(60_000) == "end"


def test_clock_going_backwards_counts_nothing():
    s = S.Session(60)
    s.power(0)
    s.start(10_000)
    assert s.elapsed_ms(5_000) == 0
    s.pause(5_000)
    assert s.delivered_ms == 0


def test_fatal_stops_timer_and_only_power_leaves_fault():
    s = in_state(RUNNING)  # 5 s delivered by T0
    s.fatal(T0 + 2000)
    assert s.elapsed_ms(T0 + 100_000) == 7000
    for name, ev in EVENTS.items():
        if name != "power":
            assert ev(s) is False and s.state == FAULT
    assert s.tick(10**8) is None and s.state == FAULT
    assert s.power(NOW) and s.state == OFF


@pytest.mark.parametrize("state", STATES, ids=lambda x: S.NAMES[x])
def test_remaining_s(state):
    s = in_state(state)
    rem = s.remaining_s(T0)
    if state in (RUNNING, PAUSED, ENDING):
        assert rem == LENGTH_S - 5
    else:
        assert rem == LENGTH_S
    assert s.remaining_s(T0 + 10**8) == (0 if state == RUNNING else rem)


# ---- a random walk agrees with the table -------------------------------------------------------
@pytest.mark.req("SR-9")
@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(list(EVENTS) + ["tick"]), st.integers(0, 20_000)),
        max_size=60,
    )
)
def test_random_walk_follows_table_and_timer(steps):
    s = S.Session(LENGTH_S)
    now = 0
    run_ms = 0  # independent account of RUNNING time
    for name, dt in steps:
        if s.state == RUNNING:
            run_ms += min(dt, max(0, LENGTH_S * 1000 - run_ms))  # tick ends it at the length
        prev = s.state
        # time passes with ticks every 10 ms (as the app's control loop does)
        for t in range(now + 10, now + dt + 1, 10):
            s.tick(t)
        if prev == RUNNING and s.state != RUNNING:
            assert s.state in (ENDING, IDLE) and s.end_reason == "timer"
        now += dt
        if name == "tick":
            continue
        before = snapshot(s)
        expected = TABLE[s.state][name]
        if name == "start" and expected is not None:
            run_ms = 0
        r = CALLS[name](s, now)
        if expected is None:
            assert r is False and snapshot(s) == before
        else:
            assert r is True and s.state == expected
        assert 0 <= s.elapsed_ms(now) < LENGTH_S * 1000 + 10  # ticks every 10 ms
    if s.state in (RUNNING, PAUSED, ENDING):
        assert s.elapsed_ms(now) == pytest.approx(run_ms, abs=10)


# ---- the clock is time.ticks_ms(): it wraps -------------------------------------------------
TICKS_PERIOD = 1 << 30  # MicroPython's ticks_ms period


def ticks(t: int) -> int:
    return t % TICKS_PERIOD


@pytest.mark.req("SR-9")
@pytest.mark.parametrize("before_wrap_ms", [1, 10_000, 59_999, 60_000, 70_000])
def test_session_ends_across_ticks_wrap(before_wrap_ms):
    """A session whose 60 s cross the ticks_ms wrap still ends at 60 s and ramps down."""
    s = S.Session(60)
    s.power(0)
    t0 = TICKS_PERIOD - before_wrap_ms
    s.start(ticks(t0))
    got = []
    for t in range(t0, t0 + 70_000, 10):
        r = s.tick(ticks(t))
        if r:
            got.append((t - t0, r))
        if t - t0 == 30_000:
            assert s.remaining_s(ticks(t)) == 30
            assert s.elapsed_ms(ticks(t)) == 30_000
    assert got == [(60_000, "end"), (60_000 + S.RAMP_DOWN_MS, "ended")]
    assert s.state == IDLE


@pytest.mark.req("SR-9")
def test_pause_and_resume_across_ticks_wrap():
    s = S.Session(60)
    s.power(0)
    t0 = TICKS_PERIOD - 20_000
    s.start(ticks(t0))
    s.pause(ticks(t0 + 10_000))
    s.resume(ticks(t0 + 40_000))  # after the wrap
    assert s.elapsed_ms(ticks(t0 + 50_000)) == 20_000
    assert s.tick(ticks(t0 + 89_990)) is None
    assert s.tick(ticks(t0 + 90_000)) == "end"


@pytest.mark.req("SR-9")
@pytest.mark.parametrize("ahead_ms", [TICKS_PERIOD // 2 - 1, TICKS_PERIOD // 2])
def test_the_timer_reads_ticks_as_time_ticks_diff_does_on_the_half_period(ahead_ms):
    """time.ticks_diff(a, b) on MicroPython lies in [-period/2, period/2 - 1]: a reading half
    a period after the start is "before" it (negative), one tick less is that far after. The
    timer counts the one and nothing for the other."""
    s = S.Session(10**9)
    s.power(0)
    s.start(0)
    want = ahead_ms if ahead_ms < TICKS_PERIOD // 2 else 0
    assert s.elapsed_ms(ticks(ahead_ms)) == want


@pytest.mark.req("SR-9")
@pytest.mark.parametrize("way_out", ["pause", "stopped", "end", "fatal", "power"])
def test_every_way_out_of_running_stops_the_timer_with_the_time_delivered(way_out):
    """The timer counts RUNNING time only: 10 s run, then any way out (switched off too)
    leaves 10 s delivered, however long after it is read."""
    s = S.Session(LENGTH_S)
    s.power(0)
    s.start(1000)
    if way_out in ("stopped", "end"):
        assert getattr(s, way_out)(11_000, "why")
    else:
        assert getattr(s, way_out)(11_000)
    assert s.state != RUNNING
    assert s.elapsed_ms(500_000) == 10_000

"""Battery monitor (firmware/stim/battery.py, SR-10) and status LED patterns (stim/leds.py).

Battery: OK -> LOW below the warning threshold, back to OK only above warning + hysteresis;
CUTOFF below the cut-off, left only above cut-off + hysteresis; the reading is smoothed so a
one-sample sag under a pulse train does not cut the output.

LEDs: every state, and every overlay on it, has its own rhythm. The patterns are sampled over
a whole 4 s cycle every 10 ms (as the app's LED task does) and compared as on/off only, with
the colour thrown away, and up to a shift in time: a wearer who cannot tell the colours apart
must still be able to tell every situation apart ("not colour alone").
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_tools.boards import load_board
from host_tools.sim.rig import FirmwareRig

_RIG = FirmwareRig("pico")
battery = _RIG.import_module("stim.battery")
leds = _RIG.import_module("stim.leds")
session = _RIG.import_module("stim.session")

BOARDS = ("pico", "wearable_v1")
DT = 1.0  # the app reads the battery every BATTERY_MS = 1000 ms


def cfg(board="pico"):
    return load_board(board)["battery"]


def settle(mon, v, seconds=30.0, dt=DT):
    """Feed a steady voltage until the smoothed value has converged; returns the changes."""
    changes = []
    for _ in range(int(seconds / dt)):
        r = mon.update(v, dt)
        if r is not None:
            changes.append(r)
    return changes


# ---- battery -------------------------------------------------------------------------------
@pytest.mark.req("SR-10")
def test_battery_first_reading_is_taken_as_is():
    c = cfg()
    m = battery.BatteryMonitor(c)
    assert m.state == battery.OK and m.v is None
    assert m.update(4.0, DT) is None and m.v == 4.0
    m2 = battery.BatteryMonitor(c)
    assert m2.update(c["warn_v"] - 0.01, DT) == battery.LOW
    m3 = battery.BatteryMonitor(c)
    assert m3.update(c["cutoff_v"] - 0.01, DT) == battery.CUTOFF


@pytest.mark.req("SR-10")
@pytest.mark.parametrize("board", BOARDS)
def test_low_warning_with_hysteresis(board):
    c = cfg(board)
    w, h = c["warn_v"], c["hysteresis_v"]
    m = battery.BatteryMonitor(c)
    assert settle(m, 4.0) == []
    assert settle(m, w + 0.001) == []  # just above: still OK
    assert settle(m, w - 0.01) == [battery.LOW]
    # recovering into the hysteresis band is not enough
    assert settle(m, w + 0.001) == []
    assert settle(m, w + h - 0.005) == []
    assert m.state == battery.LOW
    assert settle(m, w + h + 0.01) == [battery.OK]
    # and down again
    assert settle(m, w - 0.01) == [battery.LOW]


@pytest.mark.req("SR-10")
@pytest.mark.parametrize("board", BOARDS)
def test_cutoff_with_hysteresis(board):
    c = cfg(board)
    w, co, h = c["warn_v"], c["cutoff_v"], c["hysteresis_v"]
    m = battery.BatteryMonitor(c)
    settle(m, 4.0)
    got = settle(m, co - 0.02, 60)
    assert got == [battery.LOW, battery.CUTOFF]  # passes through LOW on the way down
    assert m.state == battery.CUTOFF
    # the voltage recovers when the load stops: into the band, still CUTOFF
    assert settle(m, co + 0.001) == []
    assert settle(m, co + h - 0.005) == []
    assert m.state == battery.CUTOFF
    # above cut-off + hysteresis: LOW (still below the warning)
    assert settle(m, co + h + 0.01) == [battery.LOW]
    assert settle(m, co - 0.02) == [battery.CUTOFF]
    # a charged battery: back to OK at once, no low warning on the way up (the reading above
    # the warning band is taken as it is; smoothing only evens out the sag under pulses)
    assert settle(m, w + h + 0.1) == [battery.OK]


@pytest.mark.req("SR-10")
def test_cutoff_left_for_ok_only_above_warning_plus_hysteresis():
    c = cfg()
    w, co, h = c["warn_v"], c["cutoff_v"], c["hysteresis_v"]
    m = battery.BatteryMonitor(c)
    m.update(co - 0.1, DT)
    assert m.state == battery.CUTOFF
    # a jump into the warning band from cut-off is LOW, not OK
    settle(m, w + h / 2)
    assert m.state == battery.LOW


@pytest.mark.req("SR-10")
@pytest.mark.parametrize("board", BOARDS)
def test_one_sample_sag_does_not_cut_off(board):
    c = cfg(board)
    m = battery.BatteryMonitor(c)
    settle(m, c["warn_v"] + 0.3)
    # One reading taken during a pulse train, well below the cut-off.
    sag = c["cutoff_v"] - 0.3
    assert m.update(sag, DT) is None
    assert m.state == battery.OK
    assert settle(m, c["warn_v"] + 0.3, 5) == []
    # but a sustained low voltage does cut off
    changes = settle(m, c["cutoff_v"] - 0.1, 20)
    assert changes[-1] == battery.CUTOFF


@pytest.mark.req("SR-10")
def test_sustained_cutoff_reached_within_a_bounded_time():
    c = cfg()
    m = battery.BatteryMonitor(c)
    settle(m, c["warn_v"] + 0.05)
    t = 0
    while m.state != battery.CUTOFF:
        m.update(c["cutoff_v"] - 0.05, DT)
        t += 1
        assert t < 30, "battery cut-off not reached in 30 s of a voltage below it"


@pytest.mark.req("SR-10")
@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.floats(2.8, 4.3), min_size=1, max_size=200))
def test_battery_state_agrees_with_thresholds(volts):
    c = cfg()
    w, co, h = c["warn_v"], c["cutoff_v"], c["hysteresis_v"]
    m = battery.BatteryMonitor(c)
    prev = m.state
    for v in volts:
        r = m.update(v, DT)
        s = m.v  # smoothed value
        assert (r is None) == (m.state == prev)
        assert r in (None, battery.OK, battery.LOW, battery.CUTOFF)
        if s < co:
            assert m.state == battery.CUTOFF
        if m.state == battery.OK:
            assert s >= w
            if prev != battery.OK:
                assert s >= w + h
        if prev == battery.CUTOFF and m.state != battery.CUTOFF:
            assert s >= co + h
        if prev == battery.LOW and m.state == battery.OK:
            assert s >= w + h
        if m.state == battery.LOW:
            assert s >= co and s < w + h
        prev = m.state


# ---- every battery threshold exactly on its boundary (SR-10) ---------------------------------
def held_at_on(board, state, v):
    """A monitor in `state` whose smoothed voltage is exactly v, fed v again (dt 0: the
    smoothing leaves v as it is). Returns the state after that reading."""
    mon = battery.BatteryMonitor(cfg(board))
    mon.state, mon.v = state, v
    mon.update(v, 0.0)
    return mon.state


@pytest.mark.req("SR-10")
@pytest.mark.parametrize("board", BOARDS)
def test_battery_thresholds_exactly_on_each_boundary(board):
    c = cfg(board)
    warn, cut, hyst = c["warn_v"], c["cutoff_v"], c["hysteresis_v"]
    below = lambda v: v - 1e-6  # noqa: E731
    OK, LOW, CUTOFF = battery.OK, battery.LOW, battery.CUTOFF

    def held_at(state, v):
        return held_at_on(board, state, v)

    # the cut-off itself is not below it; the warning level itself is not low
    assert held_at(OK, cut) == LOW and held_at(OK, below(cut)) == CUTOFF
    assert held_at(OK, warn) == OK and held_at(OK, below(warn)) == LOW
    # CUTOFF is left at cut-off + hysteresis exactly, not below
    assert held_at(CUTOFF, cut + hyst) == LOW
    assert held_at(CUTOFF, below(cut + hyst)) == CUTOFF
    # LOW (or CUTOFF) back to OK at warning + hysteresis exactly, not below
    assert held_at(LOW, warn + hyst) == OK and held_at(LOW, below(warn + hyst)) == LOW
    assert held_at(CUTOFF, warn + hyst) == OK
    assert held_at(CUTOFF, below(warn + hyst)) == LOW


@pytest.mark.req("SR-10")
def test_a_reading_exactly_at_warning_plus_hysteresis_is_taken_as_a_charge():
    c = cfg()
    mon = battery.BatteryMonitor(c)
    mon.update(c["cutoff_v"] + 0.01, DT)  # the first reading: low
    assert mon.state == battery.LOW
    back = c["warn_v"] + c["hysteresis_v"]
    assert mon.update(back, DT) == battery.OK  # taken as it is, not smoothed from the low one
    assert mon.v == back


def test_battery_state_names_are_the_logs_and_the_protocols():
    assert battery.NAMES[battery.OK] == "ok"
    assert battery.NAMES[battery.LOW] == "low"
    assert battery.NAMES[battery.CUTOFF] == "cutoff"
    assert len(battery.NAMES) == 3


# ---- LEDs ----------------------------------------------------------------------------------
ON_STATES = (session.IDLE, session.RUNNING, session.PAUSED, session.ENDING)
OVERLAYS = (0, leds.LOCKED, leds.BATTERY_LOW, leds.LOCKED | leds.BATTERY_LOW)
SAMPLE_MS = 10


def trace(state, flags, t0=0):
    return [leds.status(state, t0 + t, flags) for t in range(0, leds.CYCLE_MS, SAMPLE_MS)]


def on_off(tr):
    return tuple(1 if c != leds.OFF else 0 for c in tr)


def canon(bits):
    """The pattern up to a shift in time: the least rotation."""
    n = len(bits)
    return min(bits[i:] + bits[:i] for i in range(n))


def situations():
    """Every situation the wearer should be able to tell apart, with its (state, flags)."""
    out = {"off": (session.OFF, 0), "fault": (session.FAULT, 0), "cutoff": (session.IDLE,
           leds.CUTOFF)}  # fmt: skip
    for s, o in itertools.product(ON_STATES, OVERLAYS):
        out["%s%s%s" % (session.NAMES[s], "+locked" if o & leds.LOCKED else "",
                        "+low" if o & leds.BATTERY_LOW else "")] = (s, o)  # fmt: skip
    for o in OVERLAYS:
        out["ended%s%s" % ("+locked" if o & leds.LOCKED else "",
                           "+low" if o & leds.BATTERY_LOW else "")] = (session.IDLE,
                                                                      leds.ENDED | o)  # fmt: skip
    return out


@pytest.mark.req("FR-7")
def test_leds_every_situation_has_its_own_rhythm_not_colour_alone():
    sits = situations()
    patterns = {name: canon(on_off(trace(*sf))) for name, sf in sits.items()}
    by_pattern: dict[tuple, list[str]] = {}
    for name, p in patterns.items():
        by_pattern.setdefault(p, []).append(name)
    same = [names for names in by_pattern.values() if len(names) > 1]
    assert same == [], "indistinguishable without colour: %s" % same


@pytest.mark.req("FR-7")
def test_leds_patterns_repeat_every_cycle():
    for state, flags in situations().values():
        assert trace(state, flags) == trace(state, flags, t0=leds.CYCLE_MS * 7)


@pytest.mark.req("FR-7")
def test_leds_colour_patterns_distinct_too():
    sits = situations()
    pats = {name: tuple(trace(*sf)) for name, sf in sits.items()}
    assert len(set(pats.values())) == len(pats)


@pytest.mark.req("FR-7")
def test_leds_off_is_dark_whatever_the_flags():
    for flags in range(32):
        assert set(trace(session.OFF, flags)) == {leds.OFF}


@pytest.mark.req("FR-7")
def test_leds_fault_blinks_red_whatever_the_flags():
    for flags in range(32):
        tr = trace(session.FAULT, flags)
        assert set(tr) == {leds.RED, leds.OFF}
        bits = on_off(tr)
        # a fast blink: several on/off changes per second
        changes = sum(1 for a, b in zip(bits, bits[1:], strict=False) if a != b)
        assert changes >= 2 * 4 * 4


@pytest.mark.req("FR-7")
@pytest.mark.parametrize("state", ON_STATES, ids=lambda s: session.NAMES[s])
def test_leds_ack_is_white(state):
    for flags in (leds.ACK, leds.ACK | leds.LOCKED | leds.BATTERY_LOW, leds.ACK | leds.ENDED):
        assert set(trace(state, flags)) == {leds.WHITE}


@pytest.mark.req("FR-7")
def test_leds_ack_not_shown_when_off_or_faulted():
    assert set(trace(session.OFF, leds.ACK)) == {leds.OFF}
    assert leds.WHITE not in trace(session.FAULT, leds.ACK)


@pytest.mark.req("FR-7")
@pytest.mark.req("SR-10")
@pytest.mark.parametrize("state", ON_STATES, ids=lambda s: session.NAMES[s])
def test_leds_cutoff_same_red_flashes_in_every_on_state(state):
    tr = trace(state, leds.CUTOFF | leds.LOCKED)
    assert set(tr) == {leds.RED, leds.OFF}
    assert tr == trace(session.IDLE, leds.CUTOFF)


@pytest.mark.req("FR-7")
@pytest.mark.req("SR-10")
@pytest.mark.parametrize("state", ON_STATES, ids=lambda s: session.NAMES[s])
def test_leds_battery_low_and_lock_overlays_show_their_colour(state):
    assert leds.AMBER in trace(state, leds.BATTERY_LOW)
    assert leds.BLUE in trace(state, leds.LOCKED)
    both = trace(state, leds.BATTERY_LOW | leds.LOCKED)
    assert leds.AMBER in both and leds.BLUE in both
    # the state underneath is still shown in the rest of the cycle
    assert leds.GREEN in both


@pytest.mark.req("FR-7")
def test_leds_state_colours():
    assert set(trace(session.RUNNING, 0)) == {leds.GREEN}  # steady
    for s in (session.IDLE, session.PAUSED, session.ENDING):
        assert set(trace(s, 0)) == {leds.GREEN, leds.OFF}

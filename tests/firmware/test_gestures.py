"""Button gestures (firmware/stim/gestures.py): raw button samples in, wearer intentions out.

The decoder is fed one bit mask of the four buttons every POLL_MS, as the app's `buttons` task
does, and every event of a sample is drained (`update()`, then `next_event()` until 0), as
`App.buttons_cycle` does. Times below are the sample times in ms (sample i is at i * POLL_MS).

- SR-7: POWER_DOWN comes in the very sample whose raw mask first shows POWER down, before any
  debounce, in every situation (other buttons held, another button stuck, the lock chord).
- SR-2: one PLUS per press; holding PLUS repeats no faster than REPEAT_MS and at most
  REPEAT_MAX times per hold, also around the lock chord.
- SR-11: bounces shorter than the debounce give nothing; a button held beyond STUCK_MS is
  reported STUCK once, is ignored until released (UNSTUCK), and never yields a PLUS; a button
  down at the first sample never made a press; the lock chord gives LOCK and no step.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_tools.sim.rig import FirmwareRig

pytestmark = pytest.mark.req("FR-5")

G = FirmwareRig("pico").import_module("stim.gestures")

P = 1 << G.B_POWER
M = 1 << G.B_MODE
UP = 1 << G.B_PLUS
DN = 1 << G.B_MINUS
T = G.POLL_MS
STATUS_MS = 1000  # FR-27: MODE and MINUS held together 1 s (the firmware's _STATUS_MS)


class Driver:
    """Feeds masks to one Gestures, draining every event of each sample like the app."""

    def __init__(self, poll_ms: int = T, g=None):
        self.g = G.Gestures() if g is None else g  # a decoder built as stim.main builds it
        self.poll_ms = poll_ms  # the app polls every POLL_MS; a finer poll times to the ms
        self.t = 0  # time of the next sample (ms)
        self.events: list[tuple[int, int, int]] = []  # (t_ms, event, button)
        self.per_sample: list[int] = []  # number of events drained at each sample
        self.first_returns: list[int] = []  # what update() itself returned, per sample

    def sample(self, mask: int) -> list[tuple[int, int]]:
        got = []
        ev = self.g.update(mask, self.poll_ms)
        self.first_returns.append(ev)
        while ev:
            got.append((ev, self.g.button))
            self.events.append((self.t, ev, self.g.button))
            ev = self.g.next_event()
        self.per_sample.append(len(got))
        self.t += self.poll_ms
        return got

    def hold(self, mask: int, ms: int) -> list[tuple[int, int]]:
        got = []
        for _ in range(ms // self.poll_ms):
            got += self.sample(mask)
        return got

    def named(self, ev: int) -> list[tuple[int, int, int]]:
        return [e for e in self.events if e[1] == ev]

    def kinds(self) -> list[int]:
        return [e[1] for e in self.events]


def idle_driver(ms: int = 100, poll_ms: int = T) -> Driver:
    d = Driver(poll_ms)
    d.hold(0, ms)
    return d


def press(d: Driver, mask: int, ms: int, then_release: int = 100):
    got = d.hold(mask, ms)
    got += d.hold(0, then_release)
    return got


# ---- constants --------------------------------------------------------------------------------
def test_timing_constants_are_consistent():
    # Every gesture completes long before a button counts as stuck; repeats are slower than taps.
    assert DEBOUNCE_SAMPLES >= 2
    longest_gesture = max(G.POWER_LONG_MS, G.MODE_LONG_MS, G.LOCK_MS,
                          G.REPEAT_DELAY_MS + G.REPEAT_MAX * G.REPEAT_MS)  # fmt: skip
    assert G.STUCK_MS >= 4 * longest_gesture
    assert G.REPEAT_MS >= 200
    assert len(G.NAMES) == G.STATUS + 1
    assert G.NAMES[G.POWER_DOWN] == "power_down" and G.NAMES[G.PLUS] == "plus"


DEBOUNCE_SAMPLES = G.DEBOUNCE_MS // G.POLL_MS


# ---- debouncing ----------------------------------------------------------------------------
@pytest.mark.req("SR-11")
@pytest.mark.parametrize("mask", [M, UP, DN, UP | DN, M | UP])
@pytest.mark.parametrize("bounce_ms", [10, 20, 30])
def test_bounce_shorter_than_debounce_gives_nothing(mask, bounce_ms):
    d = idle_driver()
    for _ in range(20):
        d.hold(mask, bounce_ms)
        d.hold(0, 10)
    d.hold(0, 200)
    assert d.events == []


@pytest.mark.req("SR-11")
def test_bouncy_press_gives_one_event_after_it_settles():
    d = idle_driver()
    # Contact bounce: 10 ms on / 10 ms off for 60 ms, then a firm 200 ms press and a bouncy
    # release: exactly one PLUS, 30 ms after the contact settled.
    for _ in range(3):
        d.hold(UP, 10)
        d.hold(0, 10)
    settle = d.t
    d.hold(UP, 200)
    for _ in range(3):
        d.hold(0, 10)
        d.hold(UP, 10)
    d.hold(0, 300)
    assert [(e[1], e[2]) for e in d.events] == [(G.PLUS, G.B_PLUS)]
    assert d.events[0][0] == settle + G.DEBOUNCE_MS


@pytest.mark.req("SR-11")
def test_debounced_press_needs_the_mask_stable_for_debounce_ms():
    d = idle_driver()
    t0 = d.t
    d.hold(M, 400)
    d.hold(0, 200)
    assert [e[1] for e in d.events] == [G.MODE_SHORT]
    # Released at t0 + 400; seen released DEBOUNCE_MS later.
    assert d.events[0][0] == t0 + 400 + G.DEBOUNCE_MS


# ---- POWER -----------------------------------------------------------------------------------
@pytest.mark.req("SR-7")
def test_power_down_on_the_very_first_sample_of_the_press():
    d = idle_driver()
    t0 = d.t
    got = d.sample(P)
    assert got == [(G.POWER_DOWN, G.B_POWER)]
    assert d.events[0][0] == t0
    assert d.first_returns[-1] == G.POWER_DOWN  # update() itself returns it, no queue wait


@pytest.mark.req("SR-7")
def test_power_down_on_every_raw_edge_even_a_bounce():
    d = idle_driver()
    for _ in range(3):
        assert d.sample(P) == [(G.POWER_DOWN, G.B_POWER)]
        d.sample(0)
    d.hold(0, 200)
    assert len(d.named(G.POWER_DOWN)) == 3
    assert d.named(G.POWER_SHORT) == []  # the bounces never settled into a press


@pytest.mark.req("SR-7")
@pytest.mark.parametrize("held", [0, M, UP, DN, UP | DN, M | UP | DN])
def test_power_down_first_while_other_buttons_are_held(held):
    d = idle_driver()
    d.hold(held, 700)  # repeats, MODE_LONG in progress ...
    got = d.sample(held | P)
    assert got[0] == (G.POWER_DOWN, G.B_POWER)


@pytest.mark.req("SR-7")
def test_power_down_during_lock_chord_and_after_lock():
    d = idle_driver()
    d.hold(UP | DN, G.LOCK_MS + 200)
    assert len(d.named(G.LOCK)) == 1
    assert d.sample(UP | DN | P)[0] == (G.POWER_DOWN, G.B_POWER)


@pytest.mark.req("SR-7")
def test_power_down_while_another_button_is_stuck():
    d = idle_driver()
    d.hold(M, G.STUCK_MS + 100)
    assert len(d.named(G.STUCK)) == 1
    assert d.sample(M | P)[0] == (G.POWER_DOWN, G.B_POWER)


@pytest.mark.parametrize("ms", [100, 500, 1000, 1400, G.POWER_LONG_MS - 2 * T - G.DEBOUNCE_MS])
def test_power_short_below_long_threshold(ms):
    d = idle_driver()
    press(d, P, ms, 300)
    assert d.kinds() == [G.POWER_DOWN, G.POWER_SHORT]
    assert d.events[1][2] == G.B_POWER


@pytest.mark.parametrize("ms", [G.POWER_LONG_MS + G.DEBOUNCE_MS + 20, 2000, 5000, 15000])
def test_power_long_exactly_once_and_no_short(ms):
    d = idle_driver()
    press(d, P, ms, 300)
    assert d.kinds() == [G.POWER_DOWN, G.POWER_LONG]


def test_power_long_fires_while_still_held_at_1_5_s_of_debounced_hold():
    d = idle_driver()
    t0 = d.t
    d.hold(P, 3000)
    (t_long, _, b) = d.named(G.POWER_LONG)[0]
    assert b == G.B_POWER
    # Debounced DEBOUNCE_MS after the press, then POWER_LONG_MS of debounced hold.
    assert t_long - t0 == pytest.approx(G.DEBOUNCE_MS + G.POWER_LONG_MS, abs=T)


def test_power_threshold_boundary():
    """Around the 1.5 s threshold every hold gives exactly one of SHORT / LONG."""
    for ms in range(G.POWER_LONG_MS - 100, G.POWER_LONG_MS + 150, T):
        d = idle_driver()
        press(d, P, ms, 300)
        k = d.kinds()
        assert k[0] == G.POWER_DOWN
        assert (k.count(G.POWER_SHORT), k.count(G.POWER_LONG)) in ((1, 0), (0, 1)), ms
    # and the switch from one to the other happens once, at the threshold (+ debounce)
    kinds = []
    for ms in range(G.POWER_LONG_MS - 100, G.POWER_LONG_MS + 150, T):
        d = idle_driver()
        press(d, P, ms, 300)
        kinds.append(G.POWER_LONG in d.kinds())
    assert kinds == sorted(kinds) and kinds[0] is False and kinds[-1] is True


# ---- MODE ------------------------------------------------------------------------------------
@pytest.mark.parametrize("ms", [50, 300, 900])
def test_mode_short(ms):
    d = idle_driver()
    press(d, M, ms, 300)
    assert [(e[1], e[2]) for e in d.events] == [(G.MODE_SHORT, G.B_MODE)]


@pytest.mark.parametrize("ms", [1100, 3000, 10000])
def test_mode_long_once_no_short(ms):
    d = idle_driver()
    t0 = d.t
    press(d, M, ms, 300)
    assert [(e[1], e[2]) for e in d.events] == [(G.MODE_LONG, G.B_MODE)]
    assert d.events[0][0] - t0 == pytest.approx(G.DEBOUNCE_MS + G.MODE_LONG_MS, abs=T)


def test_mode_boundary_switches_once():
    kinds = []
    for ms in range(G.MODE_LONG_MS - 60, G.MODE_LONG_MS + 100, T):
        d = idle_driver()
        press(d, M, ms, 300)
        k = d.kinds()
        assert k in ([G.MODE_SHORT], [G.MODE_LONG]), ms
        kinds.append(k == [G.MODE_LONG])
    assert kinds == sorted(kinds) and not kinds[0] and kinds[-1]


# ---- PLUS / MINUS ------------------------------------------------------------------------------
@pytest.mark.req("SR-2")
@pytest.mark.parametrize("btn,ev", [(UP, G.PLUS), (DN, G.MINUS)])
def test_one_step_per_short_press(btn, ev):
    d = idle_driver()
    for _ in range(5):
        press(d, btn, 200, 200)
    assert d.kinds() == [ev] * 5
    # each comes DEBOUNCE_MS after its press
    assert all(e[2] == (G.B_PLUS if ev == G.PLUS else G.B_MINUS) for e in d.events)


@pytest.mark.req("SR-2")
def test_hold_to_repeat_delay_and_rate():
    d = idle_driver()
    t0 = d.t
    d.hold(UP, 3000)
    times = [e[0] for e in d.named(G.PLUS)]
    assert times[0] == t0 + G.DEBOUNCE_MS
    assert times[1] - times[0] >= G.REPEAT_DELAY_MS - T
    gaps = [b - a for a, b in zip(times[1:], times[2:], strict=False)]
    assert gaps and all(g == G.REPEAT_MS for g in gaps)


@pytest.mark.req("SR-2", "SR-11")
@pytest.mark.parametrize("btn,ev", [(UP, G.PLUS), (DN, G.MINUS)])
def test_hold_20s_bounded_count_and_spacing(btn, ev):
    d = idle_driver()
    d.hold(btn, 20_000)
    steps = d.named(ev)
    assert 1 <= len(steps) <= 1 + G.REPEAT_MAX
    assert len(steps) == 1 + G.REPEAT_MAX  # the repeat runs to its bound, not beyond
    times = [e[0] for e in steps]
    assert all(b - a >= G.REPEAT_MS for a, b in zip(times, times[1:], strict=False))
    # any 1 s window holds at most 1 + 1000/REPEAT_MS steps
    for t in times:
        assert sum(1 for u in times if t <= u < t + 1000) <= 1 + 1000 // G.REPEAT_MS


@pytest.mark.req("SR-11", "SR-2")
def test_stuck_plus_gives_no_more_than_the_bounded_repeat_and_nothing_after():
    d = idle_driver()
    d.hold(UP, G.STUCK_MS + 30_000)
    stuck = d.named(G.STUCK)
    assert [(e[1], e[2]) for e in stuck] == [(G.STUCK, G.B_PLUS)]
    plus = d.named(G.PLUS)
    assert len(plus) <= 1 + G.REPEAT_MAX
    assert all(e[0] < stuck[0][0] for e in plus)
    assert d.g.stuck() == UP
    d.hold(0, 200)
    assert [(e[1], e[2]) for e in d.events[-1:]] == [(G.UNSTUCK, G.B_PLUS)]
    assert d.g.stuck() == 0
    # and after the release it works normally again
    n = len(d.named(G.PLUS))
    press(d, UP, 100)
    assert len(d.named(G.PLUS)) == n + 1


@pytest.mark.req("SR-11")
@pytest.mark.parametrize("btn", [P, M, UP, DN])
def test_stuck_once_at_stuck_ms_then_unstuck_after_release(btn):
    b = btn.bit_length() - 1
    d = idle_driver()
    t0 = d.t
    d.hold(btn, G.STUCK_MS + 5000)
    stuck = d.named(G.STUCK)
    assert len(stuck) == 1 and stuck[0][2] == b
    assert stuck[0][0] - t0 == pytest.approx(G.DEBOUNCE_MS + G.STUCK_MS, abs=T)
    assert d.named(G.UNSTUCK) == []
    before = len(d.events)
    d.hold(0, 300)
    assert [(e[1], e[2]) for e in d.events[before:]] == [(G.UNSTUCK, b)]
    # no SHORT on the release of a stuck button
    assert d.named(G.POWER_SHORT) == [] and d.named(G.MODE_SHORT) == []


# Every hold-timed event is timed by one rule, to the sample: the sample that debounces a press
# already counts one poll of hold (the button has been down at least that long), so a hold of
# X ms is reached on the sample at debounce + X - poll. The checks above allow a poll either
# way; these pin the rule, for each button and each chord, at the app's poll and at a 1 ms poll
# (update() is given the time that really passed, so the rule must hold to the millisecond).
@pytest.mark.req("SR-2", "SR-11")
@pytest.mark.parametrize(
    "mask,ev,hold_ms",
    [
        pytest.param(P, G.POWER_LONG, G.POWER_LONG_MS, id="power_long"),
        pytest.param(M, G.MODE_LONG, G.MODE_LONG_MS, id="mode_long"),
        # the first repeat (the press itself stepped on the debounce)
        pytest.param(UP, G.PLUS, G.REPEAT_DELAY_MS, id="plus_repeat"),
        pytest.param(DN, G.MINUS, G.REPEAT_DELAY_MS, id="minus_repeat"),
        pytest.param(UP | DN, G.LOCK, G.LOCK_MS, id="lock"),
        pytest.param(M | DN, G.STATUS, STATUS_MS, id="status"),
        pytest.param(P, G.STUCK, G.STUCK_MS, id="power_stuck"),
        pytest.param(M, G.STUCK, G.STUCK_MS, id="mode_stuck"),
        pytest.param(UP, G.STUCK, G.STUCK_MS, id="plus_stuck"),
        pytest.param(DN, G.STUCK, G.STUCK_MS, id="minus_stuck"),
    ],
)
@pytest.mark.parametrize("poll_ms", [T, 1])
def test_every_hold_fires_on_the_sample_its_threshold_is_reached(mask, ev, hold_ms, poll_ms):
    d = idle_driver(poll_ms=poll_ms)
    t_debounced = d.t + G.DEBOUNCE_MS
    d.hold(mask, hold_ms + 500)
    held = [e[0] for e in d.named(ev) if e[0] != t_debounced]  # not PLUS/MINUS's own press
    assert held[0] == t_debounced + hold_ms - poll_ms


@pytest.mark.req("SR-11")
@pytest.mark.parametrize("btn", [P, M, UP, DN])
@pytest.mark.parametrize("poll_ms", [T, 1])
def test_a_button_down_at_power_up_is_stuck_on_the_sample_stuck_ms_is_reached(btn, poll_ms):
    """Down at the first sample: that sample counts one poll of hold, as for a debounced press,
    so STUCK comes on the sample at STUCK_MS - poll, whichever button it is."""
    d = Driver(poll_ms)
    d.hold(btn, G.STUCK_MS + 500)
    assert [(e[0], e[1], e[2]) for e in d.events] == [
        (G.STUCK_MS - poll_ms, G.STUCK, btn.bit_length() - 1)
    ]


@pytest.mark.req("SR-11", "FR-27")
@pytest.mark.parametrize("first,then", [(UP | DN, M | DN), (M | DN, UP | DN), (UP | DN, UP | DN)],
                         ids=["lock_then_status", "status_then_lock", "lock_twice"])  # fmt: skip
def test_each_chord_is_timed_from_its_own_start(first, then):
    """A chord held past its time, released, then another: the second is timed from its own
    debounce, not from what is left of the first."""
    d = idle_driver()
    d.hold(first, G.LOCK_MS + 500)
    d.hold(0, 200)
    n = len(d.events)
    t_debounced = d.t + G.DEBOUNCE_MS
    d.hold(then, G.LOCK_MS + 500)
    ev, hold_ms = (G.LOCK, G.LOCK_MS) if then == UP | DN else (G.STATUS, STATUS_MS)
    assert [(e[0], e[1]) for e in d.events[n:]] == [(t_debounced + hold_ms - T, ev)]


@pytest.mark.req("SR-11")
@pytest.mark.parametrize("btn", [UP, DN, M, P, UP | DN])
def test_button_down_at_first_sample_never_makes_a_press(btn):
    d = Driver()
    d.hold(btn, 10_000)
    d.hold(0, 300)
    assert d.events == []
    # after the release, the next press is a normal one
    press(d, UP, 100)
    assert d.kinds() == [G.PLUS]


@pytest.mark.req("SR-11")
def test_button_down_at_first_sample_and_stuck():
    d = Driver()
    d.hold(UP, G.STUCK_MS + 1000)
    assert [(e[1], e[2]) for e in d.events] == [(G.STUCK, G.B_PLUS)]
    d.hold(0, 200)
    assert [(e[1], e[2]) for e in d.events] == [(G.STUCK, G.B_PLUS), (G.UNSTUCK, G.B_PLUS)]


@pytest.mark.req("SR-7", "SR-11")
def test_power_down_at_first_sample_is_not_a_press_but_the_next_one_is():
    d = Driver()
    d.hold(P, 2000)
    assert d.events == []  # neither POWER_DOWN nor POWER_LONG: it was down at power-up
    d.hold(0, 100)
    assert d.events == []
    assert d.sample(P) == [(G.POWER_DOWN, G.B_POWER)]


@pytest.mark.req("SR-11")
def test_other_buttons_keep_working_while_one_is_stuck():
    d = idle_driver()
    d.hold(M, G.STUCK_MS + 100)
    assert d.g.stuck() == M
    n = len(d.events)
    press(d, M | UP, 100, 0)
    d.hold(M, 100)
    press(d, M | DN, 100, 0)
    d.hold(M, 100)
    press(d, M | P, 200, 0)
    d.hold(M, 100)
    press(d, M | P, 2000, 0)
    d.hold(M, 100)
    d.hold(M | UP, 800)  # repeats still work too
    d.hold(M, 100)
    got = [e[1] for e in d.events[n:]]
    assert got[:7] == [G.PLUS, G.MINUS, G.POWER_DOWN, G.POWER_SHORT, G.POWER_DOWN,
                       G.POWER_LONG, G.PLUS]  # fmt: skip
    assert got[7:] == [G.PLUS]  # one repeat in 800 ms of hold (600 ms delay)
    assert G.MODE_SHORT not in got and G.MODE_LONG not in got


# ---- lock chord ------------------------------------------------------------------------------
@pytest.mark.req("SR-11")
def test_lock_chord_together_gives_one_lock_and_no_step():
    d = idle_driver()
    t0 = d.t
    d.hold(UP | DN, 8000)
    d.hold(0, 300)
    assert [(e[1]) for e in d.events] == [G.LOCK]
    assert d.events[0][0] - t0 == pytest.approx(G.DEBOUNCE_MS + G.LOCK_MS, abs=T)


@pytest.mark.req("SR-11", "SR-2")
@pytest.mark.parametrize("first,second,ev", [(UP, DN, G.PLUS), (DN, UP, G.MINUS)])
@pytest.mark.parametrize("lead_ms", [100, 400, 1500])
def test_lock_chord_second_button_gives_no_step(first, second, ev, lead_ms):
    d = idle_driver()
    d.hold(first, lead_ms)
    n_first = len(d.events)  # the first button's own press (and its repeats) so far
    d.hold(first | second, G.LOCK_MS + 500)
    d.hold(0, 300)
    after = [e[1] for e in d.events[n_first:]]
    assert after == [G.LOCK]
    assert all(e[1] == ev for e in d.events[:n_first])


@pytest.mark.req("SR-11")
def test_lock_chord_released_early_gives_no_lock():
    d = idle_driver()
    d.hold(UP | DN, G.LOCK_MS - 500)
    d.hold(0, G.LOCK_MS)
    assert d.events == []


@pytest.mark.req("FR-27", "SR-2")
@pytest.mark.parametrize("first,lead_ms", [(M, 0), (M, 300), (DN, 0), (DN, 300)])
def test_status_chord_gives_status_and_no_program_channel_or_step(first, lead_ms):
    """MODE and MINUS held together 1 s: STATUS, once; MODE makes no program or channel change
    (not on release, not held), MINUS no step once both are down and no repeat."""
    d = idle_driver()
    d.hold(first, lead_ms) if lead_ms else None
    n_first = len(d.events)  # MINUS pressed first steps down once: its own press
    d.hold(M | DN, 3000)
    d.hold(0, 300)
    after = [e[1] for e in d.events[n_first:]]
    assert after == [G.STATUS]
    assert all(e[1] == G.MINUS for e in d.events[:n_first])


@pytest.mark.req("FR-27")
def test_status_chord_released_early_gives_nothing():
    """Released before its second: nothing then, and nothing later either (the chord ended
    with the release, its time does not run on)."""
    d = idle_driver()
    d.hold(M | DN, 700)
    d.hold(0, 2 * STATUS_MS)
    assert d.events == []


@pytest.mark.req("SR-11")
@pytest.mark.parametrize("keep", [UP, DN])
def test_the_lock_chord_ends_when_either_button_is_released(keep):
    """PLUS and MINUS together 1 s, then one of them released: the other one held on alone,
    however long, never locks or unlocks the unit."""
    d = idle_driver()
    d.hold(UP | DN, 1000)
    d.hold(keep, G.LOCK_MS + 1000)
    d.hold(0, 300)
    assert G.LOCK not in d.kinds()


@pytest.mark.req("SR-11")
def test_two_chords_give_two_locks():
    d = idle_driver()
    for _ in range(2):
        d.hold(UP | DN, G.LOCK_MS + 200)
        d.hold(0, 300)
    assert d.kinds() == [G.LOCK, G.LOCK]


@pytest.mark.req("SR-2", "SR-11")
@pytest.mark.parametrize(
    "keep,other,ev",
    [(UP, DN, G.PLUS), (DN, UP, G.MINUS), (DN, M, G.MINUS)],
    ids=["lock_plus_kept", "lock_minus_kept", "status_minus_kept"],
)
@pytest.mark.parametrize("chord_ms", [500, G.LOCK_MS + 500])
def test_no_step_burst_when_one_chord_button_is_released_first(keep, other, ev, chord_ms):
    """After the chord (a LOCK or a STATUS, or one given up), the button still held must not
    catch up on the repeats it missed during the chord: no burst of steps at the sample
    rate."""
    d = idle_driver()
    d.hold(keep | other, chord_ms)
    n = len(d.events)
    d.hold(keep, 6000)
    d.hold(0, 300)
    steps = [e[0] for e in d.events[n:] if e[1] == ev]
    assert all(b - a >= G.REPEAT_MS for a, b in zip(steps, steps[1:], strict=False)), steps
    assert steps == []  # "no step from either" for the rest of that hold


@pytest.mark.req("SR-2")
@pytest.mark.parametrize("chord", [UP | DN, M | DN], ids=["after_lock", "after_status"])
@pytest.mark.parametrize("btn", [UP, DN], ids=["plus", "minus"])
def test_after_a_chord_a_new_hold_steps_and_repeats_as_ever(chord, btn):
    """A chord, everything released, then PLUS (or MINUS) held: its press and its repeats come
    exactly as on a decoder that never saw a chord."""
    d = idle_driver()
    d.hold(chord, G.LOCK_MS + 200)
    d.hold(0, 300)
    n, t0 = len(d.events), d.t
    d.hold(btn, 2000)
    fresh = idle_driver()
    t0_fresh = fresh.t
    fresh.hold(btn, 2000)
    assert len(fresh.events) > 2  # the press and its repeats
    assert [(e[0] - t0, e[1]) for e in d.events[n:]] == [
        (e[0] - t0_fresh, e[1]) for e in fresh.events
    ]


@pytest.mark.req("SR-11", "FR-27")
@pytest.mark.parametrize(
    "held,btn,ev",
    [(UP, DN, G.MINUS), (DN, UP, G.PLUS), (M, DN, G.MINUS)],
    ids=["plus_held_minus_pressed", "minus_held_plus_pressed", "mode_held_minus_pressed"],
)
def test_a_button_held_since_power_up_makes_no_chord_with_a_press(held, btn, ev):
    """A button down since power-up is ignored until released, so it is in no chord: the
    other button of the chord pressed and held past the lock time steps and repeats as it
    would alone, and there is no LOCK (SR-11) or STATUS."""
    d = Driver()
    d.hold(held, 500)
    d.hold(held | btn, G.LOCK_MS + 500)
    kinds = d.kinds()
    assert G.LOCK not in kinds and G.STATUS not in kinds
    assert kinds.count(ev) == 1 + G.REPEAT_MAX, kinds


# ---- queue -----------------------------------------------------------------------------------
def test_several_events_in_one_sample_are_queued_in_order():
    d = idle_driver()
    d.hold(P | M, 500)
    d.hold(0, G.DEBOUNCE_MS)  # the change sample and DEBOUNCE_MS - T more: not yet
    g = d.g
    # The sample that debounces the release of both gives POWER_SHORT and MODE_SHORT; update()
    # returns the first, next_event() the second, then 0.
    ev = g.update(0)
    assert (ev, g.button) == (G.POWER_SHORT, G.B_POWER)
    assert (g.next_event(), g.button) == (G.MODE_SHORT, G.B_MODE)
    assert (g.next_event(), g.button) == (G.NONE, 0)


def test_undrained_events_come_out_one_per_sample():
    # A caller that never drains with next_event() still gets every event, one per update(),
    # in order: POWER_DOWN on the press sample, then POWER_SHORT and MODE_SHORT.
    g = G.Gestures()
    g.update(0)
    assert g.update(P | M) == G.POWER_DOWN
    for _ in range(49):
        assert g.update(P | M) == G.NONE
    out = [g.update(0) for _ in range(10)]
    assert [e for e in out if e] == [G.POWER_SHORT, G.MODE_SHORT]
    assert out.index(G.MODE_SHORT) == out.index(G.POWER_SHORT) + 1


def test_all_buttons_released_at_once_events_and_buttons():
    d = idle_driver()
    d.hold(P | M | UP, 300)  # PLUS+POWER+MODE; a POWER_DOWN and a PLUS on the way
    d.hold(0, 200)
    got = [(e[1], e[2]) for e in d.events]
    assert got == [(G.POWER_DOWN, G.B_POWER), (G.PLUS, G.B_PLUS), (G.POWER_SHORT, G.B_POWER),
                   (G.MODE_SHORT, G.B_MODE)]  # fmt: skip


def test_next_event_without_sample_is_none():
    g = G.Gestures()
    assert g.next_event() == G.NONE and g.button == 0


# ---- properties ------------------------------------------------------------------------------
def _oracle(masks: list[int]):
    """Independent model of the debounce (the whole mask must be unchanged for DEBOUNCE_MS):
    returns, per sample, the debounced PLUS state, and the list of debounced PLUS holds as
    (press sample, release sample or None), leaving out a PLUS down at the first sample."""
    stable = masks[0]
    raw = masks[0]
    run = 0
    holds = []
    ignored_first = bool(masks[0] & UP)
    start = None
    for i, m in enumerate(masks):
        if m != raw:
            raw = m
            run = 0
        elif run < G.DEBOUNCE_MS:
            run += G.POLL_MS
            if run >= G.DEBOUNCE_MS and m != stable:
                was, now = stable & UP, m & UP
                stable = m
                if now and not was:
                    start = i
                elif was and not now:
                    if ignored_first:
                        ignored_first = False
                    else:
                        holds.append((start, i))
                    start = None
    if start is not None and not ignored_first:
        holds.append((start, None))
    return holds


segments = st.lists(
    st.tuples(
        st.integers(0, 15),
        st.one_of(
            st.integers(1, 6),  # bounces
            st.integers(1, 200),  # taps and short holds
            st.sampled_from([100, 250, 400, 1000, 2100]),  # long holds, stuck
        ),
    ),
    min_size=1,
    max_size=40,
)


def _expand(segs):
    masks = []
    for mask, n in segs:
        masks += [mask] * n
    return masks


@pytest.mark.req("SR-2", "SR-11")
@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(segs=segments)
def test_property_plus_bounded_per_hold(segs):
    masks = _expand(segs) + [0] * 10
    d = Driver()
    for m in masks:
        d.sample(m)
    plus = [e[0] // T for e in d.named(G.PLUS)]  # sample indices
    holds = _oracle(masks)
    # Total: at most 1 + REPEAT_MAX per debounced press.
    assert len(plus) <= len(holds) * (1 + G.REPEAT_MAX)
    # Each PLUS belongs to a debounced hold of PLUS; within it: spacing, window and count.
    for a, b in holds:
        end = len(masks) if b is None else b
        mine = [i for i in plus if a <= i < end]
        assert len(mine) <= 1 + G.REPEAT_MAX
        ms = [i * T for i in mine]
        assert all(y - x >= G.REPEAT_MS for x, y in zip(ms, ms[1:], strict=False)), ms
        for x in ms:
            assert sum(1 for y in ms if x <= y < x + 1000) <= 1 + 1000 // G.REPEAT_MS
        # never after STUCK_MS of hold
        assert all(i - a < G.STUCK_MS // T for i in mine)
    covered = sum(sum(1 for i in plus if a <= i < (len(masks) if b is None else b))
                  for a, b in holds)  # fmt: skip
    assert covered == len(plus), "a PLUS outside any debounced PLUS hold"
    # at most as many events in a sample as the queue holds, and the queue never overflowed:
    # every raw POWER press edge gave its POWER_DOWN (checked below), and nothing piled up
    assert max(d.per_sample) <= 6


@pytest.mark.req("SR-7")
@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(segs=segments)
def test_property_power_down_on_every_raw_power_edge(segs):
    masks = _expand(segs) + [0] * 10
    d = Driver()
    got_at = []
    for m in masks:
        got_at.append([ev for ev, _ in d.sample(m)])
    # POWER_DOWN never comes without a raw press edge ...
    edges = [i for i in range(1, len(masks)) if masks[i] & P and not masks[i - 1] & P]
    downs = [i for i, evs in enumerate(got_at) if G.POWER_DOWN in evs]
    assert set(downs) <= set(edges)
    assert all(got_at[i].count(G.POWER_DOWN) == 1 for i in downs)
    # ... and every raw press edge gives it in that very sample, unless POWER has been ignored
    # since it was down at the first sample or stuck (no debounced release since). The
    # debounced release is when the mask, with POWER up, stayed unchanged DEBOUNCE_MS.
    ignored = bool(masks[0] & P)
    raw, run, stable, held = masks[0], 0, masks[0], 0
    for i, m in enumerate(masks):
        if i and m & P and not masks[i - 1] & P and not ignored:
            assert G.POWER_DOWN in got_at[i], i
        if m != raw:
            raw, run = m, 0
        elif run < G.DEBOUNCE_MS:
            run += T
            if run >= G.DEBOUNCE_MS and m != stable:
                if stable & P and not m & P:
                    ignored = False
                if m & P and not stable & P:
                    held = 0
                stable = m
        if stable & P:
            held += T
            if held >= G.STUCK_MS:
                ignored = True


def test_no_allocation_of_state_per_sample():
    # The queue and per-button lists are preallocated and keep their size.
    d = idle_driver()
    q, qb, h = d.g._q, d.g._qb, d.g._held_ms
    d.hold(P | M | UP | DN, 4000)
    d.hold(0, 100)
    assert d.g._q is q and d.g._qb is qb and d.g._held_ms is h
    assert len(q) == 8 and len(h) == 4


# ---- the POWER button's interrupt (stim/wearer.py) --------------------------------------------
@pytest.mark.req("SR-7", "SR-11")
def test_a_power_edge_no_sample_saw_counts_as_a_press():
    """The interrupt saw POWER go down between two samples: POWER_DOWN at once, and the
    release that the samples do see is its POWER_SHORT (so the press that paused the session
    does not also resume it)."""
    d = idle_driver()
    d.g.power_edge()
    got = d.sample(0)  # already released at the sample
    assert (G.POWER_DOWN, G.B_POWER) in got
    d.hold(0, 100)
    assert d.kinds().count(G.POWER_SHORT) == 1 and d.kinds().count(G.POWER_DOWN) == 1


@pytest.mark.req("SR-7", "SR-11")
def test_a_power_edge_then_a_hold_is_one_press():
    d = idle_driver()
    d.g.power_edge()
    d.hold(1 << G.B_POWER, G.POWER_LONG_MS + 100)
    d.hold(0, 100)
    assert d.kinds().count(G.POWER_DOWN) == 1
    assert d.kinds().count(G.POWER_LONG) == 1 and G.POWER_SHORT not in d.kinds()


@pytest.mark.req("SR-11")
def test_a_power_edge_of_a_button_held_at_power_up_is_ignored():
    d = Driver()
    d.sample(1 << G.B_POWER)  # down at the first sample: ignored until released
    d.g.power_edge()
    d.hold(1 << G.B_POWER, 500)
    assert G.POWER_DOWN not in d.kinds()


@pytest.mark.req("SR-7", "SR-11")
@pytest.mark.parametrize("power_ms", [0, 5], ids=["no_edge_at_start", "down_since_start"])
@pytest.mark.parametrize("hold_ms", [200, G.POWER_LONG_MS + 200], ids=["short", "long"])
def test_a_power_edge_before_the_first_sample_is_one_press(power_ms, hold_ms):
    """The interrupt saw POWER go down while the app was starting, before the buttons' first
    sample (which the wearer's sample() passes on just before that sample, as stim.main
    builds it: no button down at reset): one POWER_DOWN for the press, not one from the edge
    and another from the first sample, then its SHORT or LONG."""
    d = Driver(g=G.Gestures(held=0, power_ms=power_ms))
    d.g.power_edge()
    d.hold(P, hold_ms)
    d.hold(0, 200)
    want = G.POWER_LONG if hold_ms > G.POWER_LONG_MS else G.POWER_SHORT
    assert d.kinds() == [G.POWER_DOWN, want]
    assert d.events[0][0] == 0  # SR-7: on the first sample, undebounced


@pytest.mark.req("SR-7", "SR-2")
@pytest.mark.parametrize("btn,ev", [(UP, G.PLUS), (DN, G.MINUS), (M, G.MODE_SHORT)])
@pytest.mark.parametrize("into", [0, 2], ids=["after_its_first_sample", "two_samples_later"])
@pytest.mark.parametrize("poll_ms", [T, 1])
def test_a_power_edge_in_another_buttons_debounce_leaves_that_press_to_be_decoded(
    btn, ev, into, poll_ms
):
    """PLUS (or MINUS, MODE) goes down, and before its debounce is over the interrupt sees
    POWER go down: POWER_DOWN at once, and the other press is still decoded, its debounce
    starting over at the edge as for any change of the raw state (to the ms, wherever the
    edge falls in it), not held back until POWER is released."""
    d = idle_driver(poll_ms=poll_ms)
    d.sample(btn)
    d.hold(btn, into * poll_ms)
    d.g.power_edge()
    t_edge = d.t
    d.hold(btn | P, 300)
    n_held = len(d.events)
    d.hold(P, 200)
    d.hold(0, 200)
    kinds = d.kinds()
    assert kinds[0] == G.POWER_DOWN and kinds.count(ev) == 1, kinds
    if ev != G.MODE_SHORT:  # a step is decoded on its press, while both are down
        want = [t_edge + G.DEBOUNCE_MS - poll_ms]
        assert [e[0] for e in d.events[:n_held] if e[1] == ev] == want


@pytest.mark.req("SR-11")
@pytest.mark.parametrize("held", [0, M, UP | DN], ids=["none", "mode", "plus_minus"])
def test_a_press_made_while_the_app_starts_counts_its_hold_from_its_edge(held):
    """POWER went down power_ms before the first sample (stim.main passes
    hw.power_down_ms()): POWER_DOWN on that sample and its hold counted from the edge, so
    POWER_LONG comes power_ms sooner than for a press the first sample saw; buttons down
    since reset (ignored until released) change nothing about it."""
    power_ms = 1000
    d = Driver(g=G.Gestures(held=held, power_ms=power_ms))
    d.hold(P | held, 1000)
    assert [(e[0], e[1]) for e in d.events] == [
        (0, G.POWER_DOWN),
        (G.POWER_LONG_MS - power_ms - T, G.POWER_LONG),
    ]


@pytest.mark.req("SR-11")
@pytest.mark.parametrize("how", ["stuck", "down_at_power_up"])
def test_an_ignored_power_button_that_chatters_gives_nothing(how):
    """A POWER button ignored (stuck, or down at power-up) that bounces open for one sample
    now and then: no POWER_DOWN from its raw edges, whether a sample or the interrupt sees
    them, and nothing else, until it is released."""
    d = idle_driver() if how == "stuck" else Driver()
    d.hold(P, G.STUCK_MS + 100 if how == "stuck" else 500)
    n = len(d.events)
    for i in range(6):
        d.sample(0)  # one sample open: shorter than the debounce
        if i % 2:
            d.g.power_edge()  # the interrupt sees it close again before the next sample
        d.hold(P, 200)
    assert d.events[n:] == []


@pytest.mark.req("SR-7")
def test_a_power_edge_after_a_sample_saw_the_press_is_the_same_press():
    """A sample saw POWER down (POWER_DOWN), then the interrupt reports an edge of the same
    press (a bounce between two samples): no second POWER_DOWN, and one POWER_SHORT."""
    d = idle_driver()
    assert d.sample(P) == [(G.POWER_DOWN, G.B_POWER)]
    d.g.power_edge()
    d.hold(P, 200)
    d.hold(0, 200)
    assert d.kinds() == [G.POWER_DOWN, G.POWER_SHORT]


@pytest.mark.req("SR-7")
@pytest.mark.parametrize("poll_ms", [T, 1])
def test_a_power_edge_times_the_hold_from_the_edge_to_the_ms(poll_ms):
    """The interrupt saw POWER go down between two samples: its hold counts from there as a
    debounced press's does (the next sample counts one poll of hold), so POWER_LONG comes on
    the sample POWER_LONG_MS - poll after the edge, to the ms at a 1 ms poll."""
    d = idle_driver(poll_ms=poll_ms)
    t_edge = d.t
    d.g.power_edge()
    d.hold(P, G.POWER_LONG_MS + 200)
    assert [(e[0], e[1]) for e in d.events] == [
        (t_edge, G.POWER_DOWN),
        (t_edge + G.POWER_LONG_MS - poll_ms, G.POWER_LONG),
    ]


@pytest.mark.req("SR-7", "SR-11")
@pytest.mark.parametrize("before_ms", [500, G.POWER_LONG_MS + 200], ids=["before_long", "after"])
def test_a_bounce_the_interrupt_catches_in_a_held_power_is_the_same_press(before_ms):
    """POWER held, open for one sample (shorter than the debounce), and the interrupt sees it
    close again: a POWER_DOWN for the raw edge (SR-7), but it is the same press: POWER_LONG
    once, POWER_LONG_MS after the press was debounced, and no POWER_SHORT at the release
    after a POWER_LONG."""
    d = idle_driver()
    t_debounced = d.t + G.DEBOUNCE_MS
    d.hold(P, before_ms)
    d.sample(0)
    t_edge = d.t
    d.g.power_edge()
    d.hold(P, 2 * G.POWER_LONG_MS - before_ms)
    d.hold(0, 200)
    t_long = t_debounced + G.POWER_LONG_MS - T
    want = [
        (t_debounced - G.DEBOUNCE_MS, G.POWER_DOWN),
        (t_edge, G.POWER_DOWN),
        (t_long, G.POWER_LONG),
    ]
    assert [(e[0], e[1]) for e in d.events] == sorted(want)


@pytest.mark.req("SR-11")
def test_power_down_at_reset_and_pressed_again_while_the_app_starts_stays_ignored():
    """POWER down at reset, let go and pressed again before the first sample (the interrupt
    saw that edge: power_ms): no sample saw it released, so it is still the button down since
    reset: no POWER_DOWN, no POWER_LONG, and STUCK on the sample at STUCK_MS - poll as for any
    button down at power-up, the edge not counted into its hold."""
    d = Driver(g=G.Gestures(held=P, power_ms=1000))
    d.hold(P, G.STUCK_MS + 500)
    assert [(e[0], e[1]) for e in d.events] == [(G.STUCK_MS - T, G.STUCK)]

"""The first app and the stimulator at the simulated load: soft start (SR-2), intensity back to
zero on a program change (SR-1) and POWER stopping all output within 20 ms (SR-7).

Currents are the board model's measurement of what reached the load, not the firmware's
settings."""

from __future__ import annotations

import json

import pytest

from host_tools.boards import load_board
from host_tools.sim.rig import FirmwareRig

ON_S = 0.5  # POWER held from here for 1.7 s switches the unit on
START_S = 3.0  # first PLUS press


def on_and_started(make_unit, steps=1):
    unit = make_unit("pico")
    unit.press("power", at=ON_S, hold_s=1.7)
    for i in range(steps):
        unit.press("plus", at=START_S + 0.3 * i)
    return unit


def peaks(unit, ch=1, t0=0.0, t1=1e9):
    return [p.peak_a_ma for p in unit.model.channels[ch - 1].pulse_log if t0 <= p.t_a < t1]


def therapy_start_s(unit, ch=1, after=0.0):
    """When the 100 Hz therapy train begins, after the 50 Hz electrode-check probe pulses."""
    ts = [p.t_a for p in unit.model.channels[ch - 1].pulse_log if p.t_a >= after]
    i = 1
    while i < len(ts) and abs(ts[i] - ts[i - 1] - 0.020) < 0.001:
        i += 1  # still the probe train
    assert 1 < i < len(ts), "no probe train followed by therapy pulses"
    return ts[i]


@pytest.mark.req("SR-2")
def test_start_ramps_up_from_zero_to_the_step_current(make_unit):
    unit = on_and_started(make_unit, steps=1)
    unit.run_until(START_S + 3.0)
    step_ma = unit.board["intensity"]["step_ma"]
    t0 = therapy_start_s(unit)
    probe = peaks(unit, t1=t0)
    assert probe and max(probe) <= 1.0  # SR-6 check first: weak probe pulses only
    assert t0 - START_S < 0.4
    first = peaks(unit, t0=t0, t1=t0 + 0.2)
    assert first and first[0] < 0.2 * step_ma  # the first pulses are far below the step
    ramp = peaks(unit, t0=t0, t1=t0 + 2.0)
    assert all(b >= a - 1e-9 for a, b in zip(ramp, ramp[1:], strict=False))  # never jumps back
    late = peaks(unit, t0=t0 + 2.1)
    assert late and all(p == pytest.approx(step_ma, abs=0.1) and p <= step_ma for p in late)


@pytest.mark.req("SR-2")
def test_each_plus_press_raises_the_current_by_at_most_one_step(make_unit):
    unit = on_and_started(make_unit, steps=1)
    step_ma = unit.board["intensity"]["step_ma"]
    for i in range(4):
        unit.press("plus", at=START_S + 3.0 + 0.5 * i)
    unit.run_until(START_S + 6.0)
    settled = peaks(unit, t0=START_S + 2.5)
    rises = [b - a for a, b in zip(settled, settled[1:], strict=False)]
    # The LEVEL duty rounds down by up to one PWM compare step, so a measured rise can exceed
    # the step by that much (full scale / (TOP + 1): 0.08 mA on the pico), never more.
    an = unit.board["analog"]
    lsb_ma = an["level_full_scale_ma"] * an["level_pwm_hz"] / unit.board["sysclk_hz"]
    assert max(rises) <= step_ma + lsb_ma + 1e-6
    assert settled[-1] == pytest.approx(5 * step_ma, abs=0.1)


@pytest.mark.req("SR-1")
def test_program_change_stops_output_and_next_start_ramps_from_zero(make_unit):
    unit = on_and_started(make_unit, steps=3)
    unit.press("mode", at=6.0)
    unit.run_until(7.0)
    period_s = 0.01  # tens_conventional, 100 Hz
    last = unit.model.last_current_s(1)
    # MODE acts on release (a long hold selects channels): debounced release + one pulse
    assert last is not None and last < 6.1 + 0.05 + period_s
    assert not peaks(unit, t0=6.2)
    unit.press("plus", at=7.0)
    unit.run_until(8.0)
    again = peaks(unit, t0=therapy_start_s(unit, after=7.0))
    assert again and again[0] < 0.2 * unit.board["intensity"]["step_ma"]


@pytest.mark.req("SR-7")
@pytest.mark.parametrize("offset_ms", [0.0, 3.3, 7.7])
def test_power_press_stops_all_output_within_20_ms(make_unit, offset_ms):
    unit = on_and_started(make_unit, steps=3)
    t_press = 6.0 + offset_ms / 1000
    unit.press("power", at=t_press)
    unit.run_until(t_press + 0.5)
    for ch in (1, 2):
        last = unit.model.last_current_s(ch)
        assert last is not None and last <= t_press + 0.020
        assert not unit.model.output_active(ch)
    assert unit.pin(unit.board["boost_en"]) == 0


def _ems_unit(make_unit):
    board = load_board("pico")
    files = {
        "/board.json": json.dumps(board),
        "/settings.json": json.dumps({"program": "ems_strength"}),
    }
    unit = make_unit(board, files=files, load_ohm={1: 1000.0, 2: 1000.0})
    unit.press("power", at=ON_S, hold_s=1.7)
    unit.press("plus", at=START_S)
    unit.press("plus", at=START_S + 0.3)
    return unit


def _work_starts(unit, t0):
    """When each work phase begins at the load: the first pulse with current after a rest."""
    out, rest = [], False
    for p in unit.model.channels[0].pulse_log:
        if p.t_a < t0:
            continue
        if p.peak_a_ma < 0.05:
            rest = True
        elif rest:
            out.append(p.t_a)
            rest = False
    return out


@pytest.mark.req("FR-3")
@pytest.mark.req("SR-2")
def test_ems_plateau_and_rest_hold_their_level_and_follow_a_step_change(make_unit):
    # The flat parts of the EMS cycle (plateau, rest) set the level once and then leave it
    # (the control loop does no float work there); a PLUS in a plateau and a MINUS in a rest
    # must still take effect at the load, and every plateau sits at its step's current.
    unit = _ems_unit(make_unit)
    unit.run_until(START_S + 17.0)  # the cycle counts from the first PLUS
    cyc = FirmwareRig("pico").import_module("stim.programs").by_id("ems_strength")["cycle"]
    c = {"on": cyc["on_s"], "up": cyc["ramp_up_s"], "down": cyc["ramp_down_s"]}
    period_s = cyc["on_s"] + cyc["off_s"]
    w0 = _work_starts(unit, START_S + 6.0)[0]  # the work phase after the first rest
    assert w0 < START_S + 17.0 - 0.5
    unit.press("plus", at=w0 + 2.5)  # mid-plateau: 2 -> 3 steps
    unit.press("minus", at=w0 + 2 * period_s - 5.0)  # mid-rest before the third cycle: back to 2
    unit.run_until(w0 + 3 * period_s)
    step_ma = unit.board["intensity"]["step_ma"]
    an = unit.board["analog"]
    lsb_ma = an["level_full_scale_ma"] * an["level_pwm_hz"] / unit.board["sysclk_hz"]

    def plateau_at(step, t_from, t_to):
        # One level all through, at the step's current: never above it (SR-3), and at most
        # the duty's two compare steps of rounding down below it.
        got = peaks(unit, t0=w0 + t_from, t1=w0 + t_to)
        assert got and max(got) == min(got), (t_from, sorted(set(got)))
        assert step * step_ma - 2 * lsb_ma - 1e-6 <= got[0] <= step * step_ma, (t_from, got[0])
        return True

    flat = c["up"] + 0.1, c["on"] - c["down"] - 0.1
    assert plateau_at(2, flat[0], 2.5)
    assert plateau_at(3, 2.8, flat[1])  # PLUS took effect within the plateau
    assert plateau_at(3, period_s + flat[0], period_s + flat[1])
    assert plateau_at(
        2, 2 * period_s + flat[0], 2 * period_s + flat[1]
    )  # MINUS in the rest before it
    for k, step in enumerate((3, 3, 2)):  # every ramp down: about half the step half way down
        mid = w0 + period_s * k + c["on"] - c["down"] / 2
        got = peaks(unit, t0=mid - 0.03, t1=mid + 0.03)
        assert got and all(0.3 <= ma / (step * step_ma) <= 0.7 for ma in got), (k, got)
    for k in range(3):  # every rest: no current at the load
        t_rest = w0 + period_s * k + c["on"]
        rest = peaks(unit, t0=t_rest + 0.05, t1=w0 + period_s * (k + 1) - 0.05)
        assert max(rest, default=0.0) < 0.05


# ---- the Stimulator on its own --------------------------------------------------------------
class _Driven:
    """The firmware's Stimulator on a simulated board, ticked every 10 ms as the control
    loop ticks it (App._delay: each cycle due 10 ms after the last one began, whatever the
    work took, and given the time that really passed), without the unit around it (whatever
    the unit asks of it, the Stimulator must keep its own promises)."""

    def __init__(self, load_ohm: float = 1000.0, board: str | dict = "pico"):
        self.rig = rig = FirmwareRig(board, load_ohm={1: load_ohm, 2: load_ohm})
        hw = rig.import_module("stim.hw")
        st = rig.import_module("stim.stimulator")
        self.time = rig.modules["time"]
        chans = [rig.channel(i) for i in range(len(rig.board["channels"]))]
        self.stim = st.Stimulator(rig.board, chans, hw.Boost(rig.board), None, self.now())
        self._due_s = self.now() / 1000

    def now(self) -> int:
        return self.time.ticks_ms()

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.01)):
            self._due_s += 0.01
            if self._due_s > self.rig.t_s:
                self.rig.run_for(self._due_s - self.rig.t_s)
            self.stim.tick(self.now())

    def start(self, step: int, seconds: float) -> None:
        """Channel 1 to `step`, run `seconds`: its ramp is over and it delivers."""
        t0 = self.rig.t_s
        self.stim.set_step(0, step, self.now())
        self.run(seconds)
        assert self.rig.model.driven(1, t0 + seconds - 0.5), "channel 1 never reached its step"

    def pause_and_resume(self) -> float:
        """pause(), then resume() at once, then 1.5 s (a resumed channel's check and soft start
        would be under way); returns the instant of the resume."""
        self.stim.pause()
        t_resume = self.rig.t_s
        self.stim.resume(self.now())
        self.run(1.5)
        return t_resume

    def peaks_ma(self, last_s: float = 0.5) -> list[float]:
        """Channel 1's pulse peaks at the load over the last `last_s` seconds."""
        return [p.peak_a_ma for p in self.rig.model.driven(1, self.rig.t_s - last_s)]

    def edges(self, pin: int) -> list[tuple[int, int]]:
        """(cycle, level) of every change of `pin` from now on, as the chip drives it."""
        seen: list[tuple[int, int]] = []

        def on_pin(n: int, level: int, t: int) -> None:
            if n == pin:
                seen.append((t, level))

        self.rig.chip.pin_observers.append(on_pin)
        return seen

    def zero_then_pause_and_resume(self) -> float:
        """Channel 1 set to 0 (as MINUS takes it there), then pause_and_resume(); returns the
        instant of the resume."""
        self.stim.set_step(0, 0, self.now())
        self.run(0.2)
        return self.pause_and_resume()


@pytest.mark.req("SR-1")
def test_a_step_set_after_a_pause_replaces_what_the_pause_saved():
    """Paused at step 3, then set to 1 and back to 0 by hand: the channel was left at zero,
    so neither a later pause nor its resume may bring step 3 (or anything) back."""
    d = _Driven()
    d.start(3, 3.0)
    d.stim.pause()
    d.stim.set_step(0, 1, d.now())
    d.run(1.0)
    t_resume = d.zero_then_pause_and_resume()
    assert d.rig.model.driven(1, t_resume + 0.05) == []


@pytest.mark.req("SR-1")
def test_after_stop_all_no_pause_and_resume_starts_anything():
    """stop_all() leaves every channel at zero: a pause taken after it saves nothing, and its
    resume starts no channel, on either channel."""
    d = _Driven()
    d.start(2, 2.5)
    d.stim.stop_all()
    d.run(0.2)
    t_resume = d.pause_and_resume()
    assert d.rig.model.driven(1, t_resume + 0.05) == []
    assert d.rig.model.driven(2, t_resume + 0.05) == []


@pytest.mark.req("SR-6", "SR-3")
def test_a_limit_holds_only_while_the_channel_runs():
    """A channel held below the step that reached the compliance limit (4 kohm here) refuses
    a higher step while it runs; set to 0 it forgets the hold, and a higher step is taken
    again: the channel is checked and starts."""
    d = _Driven(load_ohm=4000.0)
    electrode = d.rig.import_module("stim.electrode")
    limits = d.rig.import_module("stim.limits")
    d.start(1, 3.0)
    n = 1
    while d.stim.ch[0].fault != electrode.LIMIT and n < d.rig.board["intensity"]["steps"]:
        n += 1
        d.stim.set_step(0, n, d.now())
        d.run(0.3)
    d.run(1.0)  # the re-check: held below n, running again
    assert d.stim.ch[0].fault == electrode.LIMIT and d.rig.model.driven(1, d.rig.t_s - 0.1)
    with pytest.raises(limits.LimitError):
        d.stim.set_step(0, n, d.now())
    d.stim.set_step(0, 0, d.now())
    d.run(0.2)
    t = d.rig.t_s
    d.stim.set_step(0, n, d.now())  # taken: no LimitError
    d.run(0.5)
    assert d.rig.model.driven(1, t), "no electrode check after the hold was forgotten"


@pytest.mark.req("SR-6", "SR-3")
def test_a_load_that_cannot_take_step_1_within_the_limit_stops_the_channel_for_the_session():
    """A board with a low compliance (20 V) and an 11 kohm load: step 2 reaches the limit, and
    the probe finds that not even step 1 would stay under 7/8 of it. The channel stops with
    the limit fault, and refuses every step but 0 until the fault is cleared (a new session)."""
    board = load_board("pico")
    board["analog"]["compliance_v"] = 20.0
    d = _Driven(load_ohm=11_000.0, board=board)
    electrode = d.rig.import_module("stim.electrode")
    limits = d.rig.import_module("stim.limits")
    d.start(1, 3.0)
    d.stim.set_step(0, 2, d.now())
    d.run(1.5)
    c = d.stim.ch[0]
    assert (c.fault, c.step) == (electrode.LIMIT, 0)
    # Stopped at the pins: no pulse at all, not even one at zero current (its state machine
    # is not left running at step 0).
    assert not [p for p in d.rig.model.channels[0].pulse_log if p.t_a > d.rig.t_s - 0.5]
    d.stim.set_step(0, 0, d.now())  # 0 is always allowed
    with pytest.raises(limits.LimitError):
        d.stim.set_step(0, 1, d.now())
    d.stim.clear_faults()
    d.stim.set_step(0, 1, d.now())


@pytest.mark.req("SR-6", "SR-3")
def test_a_load_that_takes_step_1_but_not_step_2_within_the_limit_is_held_at_step_1():
    """The 20 V board and an 8 kohm load: step 2 (3 mA, 24 V) reaches the limit, step 1
    (12 V) stays under 7/8 of it. The channel is held at step 1 and runs there."""
    board = load_board("pico")
    board["analog"]["compliance_v"] = 20.0
    d = _Driven(load_ohm=8000.0, board=board)
    d.start(1, 3.0)
    d.stim.set_step(0, 2, d.now())
    d.run(3.0)
    peaks = d.peaks_ma()
    assert len(peaks) >= 45 and all(1.3 <= ma <= 1.5 for ma in peaks), peaks[:3]


def _until_limit_hold(d: _Driven, electrode) -> None:
    """Run until channel 1 has reached the compliance limit and waits for its probe."""
    for _ in range(100):
        d.run(0.01)
        if d.stim.ch[0].fault == electrode.LIMIT:
            return
    raise AssertionError("channel 1 never reached the limit: bad scenario")


@pytest.mark.req("SR-6", "SR-3")
def test_a_limit_hold_is_below_the_step_that_reached_it_even_if_the_load_then_drops():
    """5 kohm on the pico: step 10 (15 mA, 75 V) reaches 90 % of the 80 V boost. Before the
    probe the load falls to 4 kohm, at which 7/8 of the limit would allow step 10 itself. The
    channel is held one step below the step that reached the limit all the same: step 9,
    13.5 mA at the load, never 10."""
    d = _Driven(load_ohm=5000.0)
    electrode = d.rig.import_module("stim.electrode")
    d.start(9, 3.0)
    d.stim.set_step(0, 10, d.now())
    _until_limit_hold(d, electrode)
    d.rig.model.set_load(1, 4000.0)
    d.run(3.0)
    assert d.stim.ch[0].step == 9
    peaks = d.peaks_ma()
    assert len(peaks) >= 45 and all(13.3 <= ma <= 13.5 for ma in peaks), peaks[:3]


@pytest.mark.req("SR-6")
def test_a_restart_on_new_electrodes_measures_the_load_afresh():
    """Channel 1 ran into 500 ohm, was taken to 0, and starts again into 1600 ohm (new pads,
    placed elsewhere): the lift watch starts from the load its probe measured, so the higher
    load is no lift (3.2 x the old one) and the channel runs at its step, not reduced, not
    stopped."""
    d = _Driven(load_ohm=500.0)
    d.start(3, 3.0)
    d.run(2.0)
    d.stim.set_step(0, 0, d.now())
    d.run(0.2)
    d.rig.model.set_load(1, 1600.0)
    d.stim.set_step(0, 3, d.now())
    d.run(6.0)
    peaks = d.peaks_ma()
    assert len(peaks) >= 45 and all(4.3 <= ma <= 4.5 for ma in peaks), peaks[:3]


@pytest.mark.req("SR-10", "SR-8")
def test_a_fade_stops_every_channel_and_the_boost_when_its_time_is_up():
    """fade_out(2000) (a session's end, the battery's cut-off): the output fades to zero and
    at 2 s, on the control cycle that reaches it, every channel stops and the boost goes off:
    no pulse at all after that (not even at zero current), BOOST_EN low."""
    d = _Driven(load_ohm=500.0)
    d.start(4, 3.0)
    boost_en = d.edges(d.rig.board["boost_en"])
    t_fade = d.rig.t_s
    d.stim.fade_out(2000, d.now())
    d.run(2.5)
    falls = [t for t, level in boost_en if not level]
    assert len(falls) == 1
    off_s = falls[0] / d.rig.board["sysclk_hz"] - t_fade
    assert 2.0 <= off_s <= 2.003, off_s
    assert not [p for p in d.rig.model.channels[0].pulse_log if p.t_a > t_fade + off_s]


def _ems_phases_from(d: _Driven, ch: int, t0: float, step: int) -> None:
    """Channel ch's EMS strength cycle at the load, counted from t0: current in the first
    second (the work phase's ramp, under the soft start), the step's plateau from 2.3 s (both
    ramps over) to 3.9 s, nothing from 5.1 s (the ramp down over) to 14.9 s, and the next work
    phase from 15 s."""
    m = d.rig.model
    step_ma = d.rig.board["intensity"]["step_ma"]
    assert m.driven(ch, t0, t0 + 1.0), "nothing at the load in the first second"
    plateau = m.driven(ch, t0 + 2.3, t0 + 3.9)
    assert plateau and min(p.peak_a_ma for p in plateau) > step * step_ma - 0.2
    assert m.driven(ch, t0 + 5.1, t0 + 14.9) == [], "current in the rest"
    assert m.driven(ch, t0 + 15.0, t0 + 15.5), "no next work phase"


@pytest.mark.req("FR-3", "SR-2")
@pytest.mark.parametrize("idle_s", [0.0, 6.0, 13.5])
def test_an_ems_session_begins_with_its_work_phase_however_long_after_the_selection(idle_s):
    """EMS strength selected, then nothing for idle_s (6 s and 13.5 s: mid-rest and the rest's
    last second of a cycle that counted from the selection). The start is what the wearer
    feels: its work phase ramps up at once, rests 5 s after the start, works again at 15 s."""
    d = _Driven(load_ohm=1000.0)
    d.stim.select_program("ems_strength", d.now())
    d.run(idle_s)
    t0 = d.rig.t_s
    d.stim.set_step(0, 4, d.now())
    d.run(15.6)
    _ems_phases_from(d, 1, t0, 4)


@pytest.mark.req("FR-3", "SR-2")
def test_an_ems_resume_begins_with_a_work_phase():
    """Paused 3 s into a work phase and resumed 4 s later (where the first start's cycle is in
    its rest): the resumed session starts over with a work phase, as a first start does."""
    d = _Driven(load_ohm=1000.0)
    d.stim.select_program("ems_strength", d.now())
    d.stim.set_step(0, 4, d.now())
    d.run(3.0)
    d.stim.pause()
    d.run(4.0)
    t_resume = d.rig.t_s
    d.stim.resume(d.now())
    d.run(15.6)
    _ems_phases_from(d, 1, t_resume, 4)


@pytest.mark.req("FR-3")
def test_a_second_channel_joins_the_running_ems_cycle():
    """Channel 2 started in channel 1's rest follows channel 1's cycle (both sides of the back
    contract together): nothing at its load until channel 1's next work phase, then the same
    plateau at the same time."""
    d = _Driven(load_ohm=1000.0)
    d.stim.select_program("ems_strength", d.now())
    t0 = d.rig.t_s
    d.stim.set_step(0, 4, d.now())
    d.run(6.0)
    d.stim.set_step(1, 4, d.now())
    d.run(15.0)
    m = d.rig.model
    assert m.driven(2, t0 + 6.5, t0 + 14.9) == []  # its check's probe over, the rest goes on
    step_ma = d.rig.board["intensity"]["step_ma"]
    for ch in (1, 2):
        plateau = m.driven(ch, t0 + 17.3, t0 + 18.9)
        assert plateau and min(p.peak_a_ma for p in plateau) > 4 * step_ma - 0.2, ch


@pytest.mark.req("FR-3", "SR-2")
def test_a_square_ems_cycle_delivers_nothing_in_its_rests():
    """An installed EMS program whose cycle has no ramps (ramp_up_s and ramp_down_s 0: a
    square on/off, which stim.progcheck allows): its plateau runs to the very end of the work
    phase, and every rest, from the control cycle at its first millisecond on, has no current
    at the load, however the plateau's flat level was held."""
    d = _Driven(load_ohm=1000.0)
    programs = d.rig.import_module("stim.programs")
    square = dict(programs.by_id("ems_strength"), id="ems_square", rate_hz=100)
    square["cycle"] = {"on_s": 1.0, "off_s": 2.0, "ramp_up_s": 0.0, "ramp_down_s": 0.0}
    programs.install([square])
    d.stim.select_program("ems_square", d.now())
    t_start_ms = d.now()  # the program's work/rest cycle counts from the start asked here
    d.stim.set_step(0, 4, t_start_ms)
    d._due_s = t_start_ms / 1000  # control cycles every 10 ms from it: one on each rest's first ms
    d.run(12.0)
    step_ma = d.rig.board["intensity"]["step_ma"]
    for k in range(1, 4):  # the cycles after the soft start
        t_work = (t_start_ms + 3000 * k) / 1000
        work = d.rig.model.driven(1, t_work + 0.1, t_work + 0.9)
        assert work and min(p.peak_a_ma for p in work) > 4 * step_ma - 0.2
        rest = d.rig.model.driven(1, t_work + 1.002, t_work + 2.99)
        assert rest == [], (k, rest[:1])
        # The pulses go on in the rest (the state machine is not stopped), at exactly zero.
        pulses = d.rig.model.driven(1, t_work + 1.002, t_work + 2.99, min_ma=0.0)
        assert pulses and max(p.peak_a_ma for p in pulses) == 0.0, (k, pulses[:1])


@pytest.mark.req("SR-1", "SR-2")
def test_a_stop_during_a_fade_ends_the_fade_too():
    """A fade-out (session end, battery cut-off) cut short by stop_all (POWER, a program
    change) is over: a channel started right after it soft-starts to its full step and keeps
    running, neither scaled down nor stopped when the old fade would have ended."""
    d = _Driven(load_ohm=500.0)
    step_ma = d.rig.board["intensity"]["step_ma"]
    d.start(4, 3.0)
    d.stim.fade_out(2000, d.now())
    d.run(0.5)
    d.stim.stop_all()
    assert not d.stim.fading()
    d.stim.set_step(0, 2, d.now())
    d.run(3.5)  # past the old fade's end, and past the new soft start
    late = d.rig.model.driven(1, d.rig.t_s - 0.5)
    assert late and min(p.drive_ma for p in late) >= 2 * step_ma - 0.2, late[-3:]


@pytest.mark.req("SR-1", "SR-7")
def test_stop_all_while_the_boost_settles_for_a_check_starts_nothing_later():
    """stop_all() in the first 20 ms of an electrode check (the boost settling, no state
    machine running yet) stops that check too: no probe pulse, no therapy, boost off, and no
    fault to show (a check left running would fail on the boost it turned off)."""
    d = _Driven()
    t = d.rig.t_s
    d.stim.set_step(0, 2, d.now())
    d.run(0.01)
    d.stim.stop_all()
    d.run(1.0)
    assert d.rig.model.driven(1, t) == [] and not d.stim.running()
    assert d.rig.machine.Pin(d.rig.board["boost_en"]).value() == 0
    assert not d.stim.any_fault()  # a check that was stopped, not one that failed (boost)


@pytest.mark.req("SR-4", "SR-8")
def test_hold_all_lets_a_pulse_under_way_end_whole_before_the_pins_are_taken():
    """The Ctrl-C way out (stim.app.run): hold_all() returns once no channel is inside a
    pulse, so stim.main's all_off() right after cuts none: the pulse that was 30 us into its
    first phase ends with both phases whole, and no pulse follows."""
    d = _Driven(load_ohm=500.0)
    safe = d.rig.import_module("stim.safe")
    # 200 us phases: a pulse outlasts all_off's re-claiming of the pins, so a cut would show.
    d.stim.select_program("tens_acupuncture", d.now())
    d.start(2, 3.0)
    last = d.rig.model.channels[0].pulse_log[-1]
    period_s = 0.5  # 2 Hz
    nxt = last.t_a + period_s * (1 + int((d.rig.t_s - last.t_a) / period_s))
    d.rig.run_for(nxt + 30e-6 - d.rig.t_s)
    d.stim.hold_all()
    safe.all_off(d.rig.board)
    d.rig.run_for(0.05)
    cut = d.rig.model.channels[0].pulse_log[-1]
    assert cut.t_a == pytest.approx(nxt, abs=2e-6), "not the pulse under way"
    assert cut.width_a_s == pytest.approx(last.width_a_s, rel=0.01)
    assert cut.width_b_s == pytest.approx(cut.width_a_s, rel=0.01)  # balanced (SR-4)
    assert d.rig.model.driven(1, nxt + period_s / 2) == []


@pytest.mark.req("SR-6")
def test_the_check_probes_on_the_first_cycle_once_the_boost_has_had_its_20_ms():
    """A start switches the boost on; the electrode check waits its 20 ms to settle (a
    reading before then says nothing of the electrodes) and probes on the control cycle that
    reaches them, not one later: the first probe pulse comes 20 ms after the cycle that switched
    BOOST_EN on began (the wait is counted in whole ticks_ms from that cycle's clock), plus the
    start's own Python (settle_us and the state machine's start). BOOST_EN rose in that cycle's
    Python, so at least 17 ms before; the boost itself rises in 2 ms (boost_rise_ms)."""
    d = _Driven()
    boost_en = d.edges(d.rig.board["boost_en"])
    t_set_ms = d.now()  # the cycle's clock, whole ms: a control cycle falls every 10 ms from it
    d.stim.set_step(0, 2, t_set_ms)
    d.run(0.1)
    rises = [t / d.rig.board["sysclk_hz"] for t, level in boost_en if level]
    assert len(rises) == 1 and rises[0] - t_set_ms / 1000 <= 0.0035  # in that cycle's Python
    # the probe's first pulse: on the cycle 20 ms on, after the start's own Python
    after_s = d.rig.model.channels[0].pulse_log[0].t_a - t_set_ms / 1000
    assert 0.020 <= after_s <= 0.0225, after_s
    assert d.rig.model.channels[0].pulse_log[0].t_a - rises[0] >= 0.017  # the boost has settled


@pytest.mark.req("SR-6")
def test_a_probe_whose_readings_never_come_fails_sense_1_s_after_it_began(capsys):
    """A channel whose pulse-done interrupt never runs (an engine fault: no SENSE reading
    ever arrives) cannot probe for ever: 1 s after its first probe pulse (the first control
    cycle past 1000 ms) it fails with `sense`, and its pulses stop."""
    d = _Driven()
    d.stim.channels[0]._irq_handler = lambda sm: None  # the handler lost: no readings
    capsys.readouterr()
    t0_s = d.rig.t_s
    d.stim.set_step(0, 2, d.now())
    d.run(1.5)
    pulses = d.rig.model.channels[0].pulse_log
    logged = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    # The log's clock (ms since the log module started) read against the simulated one.
    t0_log = [e["t"] for e in logged if e["ev"] == "intensity"][0]
    fault = [e for e in logged if e["ev"] == "electrode"]
    assert [e["fault"] for e in fault] == ["sense"]
    fault_s = t0_s + fault[0]["t"] - t0_log
    assert 1.005 <= fault_s - pulses[0].t_a <= 1.015, (fault_s, pulses[0].t_a)
    assert len(pulses) >= 45 and pulses[-1].t_a < fault_s  # 50 Hz probe pulses, then none


class _NextConversion(dict):
    """The board model's adc_faults, holding channel `once` for its next conversion only."""

    def __init__(self, faults: dict[int, float], once: int):
        super().__init__(faults)
        self.once = once

    def __getitem__(self, ch: int) -> float:
        v = dict.__getitem__(self, ch)
        if ch == self.once:
            del self[ch]
        return v


@pytest.mark.req("SR-6")
@pytest.mark.parametrize(("idle_raw12", "probes"), [(330, True), (331, False)])
def test_an_idle_sense_reading_exactly_at_its_limit_lets_the_probe_run(idle_raw12, probes):
    """Before its probe a channel's SENSE must read no more than 10 % of the boost at idle
    (more: a leak or a stuck input, fault `sense` with no pulse at all). The pico's boost ADC
    held at code 3300 (79.78 V) puts that limit at read_u16 5281, which ADC code 330 reads
    exactly: the probe then runs (and its verdict, reading its pulses against that idle,
    still finds the input wrong); at code 331 no probe pulse reaches the load. The idle
    reading is the SENSE's first conversion after the start; the probe's are the board's."""
    d = _Driven()
    m = d.rig.model
    boost, sense = d.rig.board["boost_adc"] - 26, d.rig.board["channels"][0]["sense_adc"] - 26
    code_v = {boost: m.adc_code_v(3300), sense: m.adc_code_v(idle_raw12)}
    m.adc_faults = _NextConversion(code_v, once=sense)
    d.stim.set_step(0, 2, d.now())
    d.run(0.3)
    assert bool(d.rig.model.driven(1, 0.0)) is probes
    assert d.stim.ch[0].fault == d.rig.import_module("stim.electrode").SENSE


@pytest.mark.req("SR-6", "SR-3")
def test_a_reading_exactly_at_90_percent_of_the_boost_is_the_limit_not_an_open():
    """The pico's boost ADC held at code 2670 (64.55 V, over the 80 % it must reach): 90 % of
    it is read_u16 38457, which SENSE code 2403 reads exactly. Channel 1 runs at step 7 into
    5 kohm (52 V); one pulse then reads exactly that limit: it trips (the engine's open limit
    at this current is the compliance one), and with the load it had been taking near the
    limit, the stimulator takes it for the skin's limit: a probe, then the step the load
    takes (6), not a stop as an open."""
    d = _Driven(load_ohm=5000.0)
    m = d.rig.model
    boost, sense = d.rig.board["boost_adc"] - 26, d.rig.board["channels"][0]["sense_adc"] - 26
    m.adc_faults = {boost: m.adc_code_v(2670)}
    d.start(7, 3.0)
    m.adc_faults[sense] = m.adc_code_v(2403)
    d.run(0.02)
    del d.rig.model.adc_faults[sense]
    d.run(3.0)
    electrode = d.rig.import_module("stim.electrode")
    assert (d.stim.ch[0].fault, d.stim.ch[0].step) == (electrode.LIMIT, 6)
    peaks = d.peaks_ma()
    assert len(peaks) >= 45 and all(8.8 <= ma <= 9.0 for ma in peaks), peaks[:3]


@pytest.mark.req("SR-6", "SR-3")
@pytest.mark.parametrize(("smooth_ohm", "skin"), [(2750, True), (2749, False)])
def test_a_load_that_needed_exactly_6_8_of_the_limit_makes_a_limit_trip_the_skins(
    smooth_ohm, skin
):
    """A reading at the compliance limit is the skin's limit (a probe, then a held step) only
    if the load it had been taking needed at least 6/8 of the limit voltage at the tripping
    current; else it is an open (a stop, no pulse more). The pico's boost ADC held at code
    3276 reads exactly 79.2 V: a limit of 71.28 V, whose 6/8 are 53.46 V, which step 13
    (19.44 mA) into exactly 2750 ohm needs, to the microvolt. The load watch's smoothed load
    stands at 2750 ohm (set here: under a steady 2770 ohm it walks down one ohm a reading from
    above and stands still within 50 ohm below), or one ohm less."""
    d = _Driven(load_ohm=2770.0)
    m = d.rig.model
    electrode = d.rig.import_module("stim.electrode")
    boost, sense = d.rig.board["boost_adc"] - 26, d.rig.board["channels"][0]["sense_adc"] - 26
    m.adc_faults = {boost: m.adc_code_v(3276)}
    d.start(13, 3.0)
    chan = d.stim.channels[0]
    assert chan.boost_v == 79.2 and chan.delivered == 19_440  # the scenario's exact figures
    d.stim.ch[0].lift.smooth_ohm = smooth_ohm
    limit_c = chan.scale.counts(electrode.COMPLIANCE_FRACTION * chan.boost_v)
    m.adc_faults[sense] = m.adc_code_v((limit_c >> 4) + 2)  # a reading over the limit
    d.run(0.02)
    del m.adc_faults[sense]
    t_trip = d.rig.t_s
    d.run(1.0)
    assert bool(d.rig.model.driven(1, t_trip)) is skin
    assert d.stim.ch[0].fault == (electrode.LIMIT if skin else electrode.OPEN)


@pytest.mark.req("SR-6")
def test_an_ems_rest_counts_at_most_a_second_of_a_partial_lifts_5_s():
    """A partial lift (the load up to 2.4x its baseline: a warning, the step halved) stops the
    channel once the warning has lasted 5 s of readings. Each reading stands for the time
    since the one before, but for at most 1 s: an EMS rest (10 s with nothing judged) adds a
    second, not ten. EMS strength, lifted 3 s into its first work phase: warned within a
    second, 1.3 s of warning by the rest; the next work phase (from 15 s) runs for more than
    2 s before the stop, which comes before 18.5 s."""
    d = _Driven(load_ohm=1000.0)
    d.stim.select_program("ems_strength", d.now())
    t_start_ms = d.now()  # the cycle counts from the start asked here
    d._due_s = t_start_ms / 1000
    d.stim.set_step(0, 10, t_start_ms)
    d.run(3.0)
    d.rig.model.set_load(1, 2400.0)
    d.run(16.0)
    t0 = t_start_ms / 1000
    assert d.rig.model.driven(1, t0 + 4.0, t0 + 4.5), "the first work phase ended early"
    assert d.rig.model.driven(1, t0 + 16.8, t0 + 17.0), "stopped early in the next work phase"
    assert d.rig.model.driven(1, t0 + 18.5) == [], "the partial lift never stopped the channel"
    assert d.stim.ch[0].fault == d.rig.import_module("stim.electrode").LIFT


@pytest.mark.req("SR-6")
def test_the_probe_drives_exactly_its_eight_pulses():
    """The electrode check's probe: eight pulses at 1 mA asked (0.88 mA after the pico's LEVEL
    rounding), 50 a second, whose readings are its verdict; the verdict comes on the control
    cycle after the eighth, before a ninth, and the channel then starts from zero."""
    d = _Driven(load_ohm=1000.0)
    st = d.rig.import_module("stim.stimulator")
    electrode = d.rig.import_module("stim.electrode")
    log = d.rig.model.channels[0].pulse_log
    d.stim.set_step(0, 2, d.now())
    for _ in range(100):
        d.run(0.01)
        if d.stim.ch[0].state == st.DELIVERING:
            break
    probe = [p for p in log if p.peak_a_ma > 0.5]  # the soft start's first pulses are weaker
    assert log[: len(probe)] == probe and len(probe) == electrode.PROBE_PULSES
    assert all(0.85 <= p.peak_a_ma <= 1.0 for p in probe)
    assert all(0.0199 <= b.t_a - a.t_a <= 0.0201 for a, b in zip(probe, probe[1:], strict=False))


@pytest.mark.req("SR-6")
def test_the_probe_reads_the_load_as_the_median_of_its_eight_readings():
    """The probe's load is the median (the upper middle) of its eight readings, and the
    partial-lift watch starts from it as the session's baseline. Four at 1 kohm, then four at
    2.2 kohm (the pad settling during the probe) read 2.2 kohm: the channel, raised to step 6
    (9 mA) and staying on 2.2 kohm, is no partial lift and keeps its 9 mA. Taken for 1 kohm,
    the load would be 2.2 times its baseline: a lift warning, the step halved."""
    d = _Driven(load_ohm=1000.0)
    log = d.rig.model.channels[0].pulse_log
    d.stim.set_step(0, 6, d.now())
    for _ in range(100):  # the probe pulses 50 times a second, the cycles 100 times
        d.run(0.01)
        if len(log) >= 4:
            break
    assert len(log) == 4
    d.rig.model.set_load(1, 2200.0)
    d.run(4.0)
    assert d.stim.ch[0].fault == 0 and d.stim.ch[0].step == 6
    peaks = d.peaks_ma()
    assert len(peaks) >= 45 and all(8.8 <= ma <= 9.0 for ma in peaks), peaks[:3]


@pytest.mark.req("SR-14")
def test_output_counts_as_possible_while_a_channel_runs_even_with_the_boost_off():
    """output_possible() (what keeps the flash from being written, SR-14) asks the channels
    too, not only the boost: with the boost switched off under a running channel (a supply
    fault), its state machine is still armed, so output is still possible."""
    d = _Driven()
    d.start(2, 3.0)
    d.stim._boost.off()
    assert d.stim.output_possible()
    d.stim.stop_all()
    assert not d.stim.output_possible()


@pytest.mark.req("SR-1")
def test_a_resume_uses_up_what_the_pause_saved():
    """After a resume nothing is left saved: a channel lowered to 0 later and paused again
    stays at zero on the next resume."""
    d = _Driven()
    d.start(3, 3.0)
    d.pause_and_resume()
    d.run(2.0)
    t_resume = d.zero_then_pause_and_resume()
    assert d.rig.model.driven(1, t_resume + 0.05) == []


@pytest.mark.req("SR-2")
def test_the_soft_start_is_linear_over_exactly_two_seconds():
    """The current asked of the channel over its soft start: step x t / 2000 ms, the whole
    step at 2 s and not a millisecond before (docs: a start ramps up from zero over 2 s). At
    the load the LEVEL's compare steps (80 uA on the pico) hide a millisecond either way."""
    d = _Driven(load_ohm=500.0)
    d.start(40, 0.5)  # checked, delivering, early in its ramp
    t0 = d.stim.ch[0].t_start
    step_ua = 40 * 1500
    level = [d.stim._level_ua(0, t0 + ms) for ms in (0, 1, 500, 1000, 1999, 2000, 2500)]
    assert level == [0, step_ua // 2000, step_ua // 4, step_ua // 2, step_ua * 1999 // 2000,
                     step_ua, step_ua]  # fmt: skip


@pytest.mark.req("SR-2")
def test_a_decrease_reaches_the_load_without_waiting_for_a_control_cycle():
    """A lower step is set on the channel at once (stim.engine puts it in force before the
    next pulse, or the one after when a pulse is under way): with no control cycle after it,
    the pulses 20 ms later already have the lower current."""
    d = _Driven(load_ohm=500.0)
    step_ma = d.rig.board["intensity"]["step_ma"]
    d.start(4, 3.0)
    d.rig.run_for(0.004)  # between two control cycles
    t = d.rig.t_s
    d.stim.set_step(0, 2, d.now())
    d.rig.run_for(0.040)  # no tick meanwhile
    late = d.rig.model.driven(1, t + 0.020)
    assert late and max(p.drive_ma for p in late) <= 2 * step_ma + 1e-9, late


@pytest.mark.req("SR-6", "SR-2")
def test_a_decrease_during_the_electrode_check_leaves_its_probe_pulses_weak():
    """Steps asked for while the electrodes are still being checked change nothing at the
    load: the check's probe pulses stay at 1 mA, and the step soft-starts after the check."""
    d = _Driven(load_ohm=1000.0)
    t = d.rig.t_s
    d.stim.set_step(0, 4, d.now())
    d.run(0.06)  # boost settled, the probe pulses under way
    d.stim.set_step(0, 3, d.now())
    d.run(0.25)
    probes = d.rig.model.driven(1, t, d.rig.t_s)
    assert len(probes) >= 8 and max(p.drive_ma for p in probes[:8]) <= 1.0 + 1e-9, probes[:8]


@pytest.mark.req("SR-3")
def test_every_step_drives_at_most_its_current():
    """Channel 1 taken up one step at a time to the top, as PLUS would take it: at every step,
    once settled, each pulse the current source drives is at most n x step_ma (SR-3: never
    above the step), and at most two LEVEL compare steps under it (the duty is rounded down
    so the port's rounding to a compare value cannot take it over). Into 500 ohm the load
    takes the whole current at every step, far from the compliance limit."""
    d = _Driven(load_ohm=500.0)
    board = d.rig.board
    step_ma = board["intensity"]["step_ma"]
    # one PWM compare step of LEVEL, in mA (a linear calibration from 0 mA)
    cal = board["analog"]["level_calibration"]
    compare_ma = cal[-1][1] / cal[-1][0] * board["analog"]["level_pwm_hz"] / board["sysclk_hz"]
    d.start(1, 3.0)
    for n in range(1, board["intensity"]["steps"] + 1):
        d.stim.set_step(0, n, d.now())
        d.run(0.3)
        pulses = d.rig.model.driven(1, d.rig.t_s - 0.1)
        assert pulses, n
        for p in pulses:
            assert n * step_ma - 2 * compare_ma <= p.drive_ma <= n * step_ma + 1e-9, (n, p)
    assert d.rig.model.violations == []


@pytest.mark.req("SR-6")
def test_the_limit_re_check_probes_on_the_first_tick_after_the_wait():
    """A channel taken up into 4 kohm until it reaches the compliance limit: its output stops
    and, once the peak-hold has decayed from the compliance voltage (50 ms: ten of the pico's
    5 ms hold time constants), the re-check's probe pulses begin, on the first control tick
    after the wait, not one earlier (the idle reading would still be high) nor one later (the
    wearer's stimulation stays off for the re-check)."""
    d = _Driven(load_ohm=4000.0)
    electrode = d.rig.import_module("stim.electrode")
    d.start(1, 3.0)
    tick_s = None  # the control tick that saw the limit trip
    for n in range(2, d.rig.board["intensity"]["steps"] + 1):
        d.stim.set_step(0, n, d.now())
        for _ in range(30):
            d.run(0.01)
            if d.stim.ch[0].fault == electrode.LIMIT:
                tick_s = d.now() / 1000
                break
        if tick_s is not None:
            break
    assert tick_s is not None, "the load never reached the compliance limit"
    d.run(0.3)
    after = [p.t_a - tick_s for p in d.rig.model.channels[0].pulse_log if p.t_a >= tick_s]
    assert after, "no re-check after the limit"
    assert 0.050 <= after[0] < 0.060, after[:3]

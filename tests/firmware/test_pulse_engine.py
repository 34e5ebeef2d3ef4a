"""The pulse engine (firmware/stim/engine.py) measured at the bridge pins of the simulated board.

Everything here is observed the way a probe on the board would see it: a pin observer on the
PHASE_A/PHASE_B pair records every edge in system-clock cycles, an analog observer on the LEVEL
pin records when a new amplitude really reaches the current source (after the PWM's double
buffering), and the board model turns the pins into load currents and charge. The firmware's
own variables (pulse counters, `running`, `level_ua`) are never trusted. The firmware's Python
costs its time on the port (the simulated chip's CPU model), so the pulse-done interrupt runs as
late as it would on the chip.

SR-4 (charge balance): every pulse is A phase, gap, B phase, with equal widths to the cycle and
equal amplitudes, so its net charge is zero and the running account stays at zero.
SR-5 (no shoot-through): PHASE_A and PHASE_B are never high at the same instant.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from host_tools.boards import load_board
from host_tools.rp2sim import port_math
from host_tools.rp2sim.chip import F_SIO
from host_tools.sim.rig import FirmwareRig

pytestmark = pytest.mark.req("SR-4", "SR-5", "FR-2")

BOARDS = ("pico", "wearable_v1")
LOAD_OHM = 1000.0  # 80 V / 1 kohm = 80 mA: never compliance-limited at the levels used here
RUN_S = 3.2
LEVEL_MA = 20.0
LEVEL_UA = 20_000
# engine.hold() polls the state machine's program counter every 20 us; each poll costs the
# CPU about 40 us more on the port (the read, the check, the sleep's call).
POLL_US = 80
# What the rest of Channel.stop() costs the CPU on the port (re-claiming the pins, LEVEL to 0,
# the state machine off): about 0.4 ms of MicroPython.
STOP_CPU_US = 600

# Pure firmware modules, loaded once through the simulated runtime (they import `micropython`).
_PURE = FirmwareRig("pico")
pulse = _PURE.import_module("stim.pulse")
programs = _PURE.import_module("stim.programs")
modulation = _PURE.import_module("stim.modulation")
PROGRAM_IDS = [p["id"] for p in programs.PROGRAMS]


# ---- observation at the pins ----------------------------------------------------------------
class PairTrace:
    """Edges of one channel's bridge pair and the LEVEL amplitude, in system-clock cycles."""

    def __init__(self, rig: FirmwareRig, index: int = 0):
        cfg = rig.board["channels"][index]
        self.chip = rig.chip
        self.a, self.b, self.lvl = cfg["phase_a"], cfg["phase_b"], cfg["level_pwm"]
        self.states = [(rig.chip.now, rig.chip.level(self.a), rig.chip.level(self.b))]
        self.both_high: list[int] = []
        self.level_changes: list[tuple[int, float]] = []
        self._last_level = rig.chip.analog_level(self.lvl)
        rig.chip.pin_observers.append(self._pin)
        rig.chip.analog_observers.append(self._analog)

    def _pin(self, pin: int, level: int, t: int) -> None:
        if pin != self.a and pin != self.b:
            return
        a, b = self.chip.level(self.a), self.chip.level(self.b)
        if a and b:
            self.both_high.append(t)
        if (a, b) != self.states[-1][1:]:
            self.states.append((t, a, b))

    def _analog(self, pin: int, t: int) -> None:
        if pin != self.lvl:
            return
        v = self.chip.analog_level(self.lvl, t)
        if v != self._last_level:
            self._last_level = v
            self.level_changes.append((t, v))

    def parse(self):
        """(pulses, anomalies, in_progress): pulses as (a_rise, a_fall, b_rise, b_fall).

        The only legal sequence of (A, B) states is 00 -> 10 -> 00 -> 01 -> 00; anything else
        (a lone phase, B before A, A straight to B, both high) is an anomaly."""
        pulses, bad = [], []
        expect = ((1, 0), (0, 0), (0, 1), (0, 0))
        step, cur = 0, []
        for t, a, b in self.states[1:]:
            if (a, b) == expect[step]:
                cur.append(t)
                step += 1
                if step == 4:
                    pulses.append(tuple(cur))
                    step, cur = 0, []
            else:
                bad.append((t, (a, b), step))
                step, cur = (1, [t]) if (a, b) == (1, 0) else (0, [])
        return pulses, bad, step != 0


def cyc(us: float, f: int) -> int:
    """System-clock cycles of a whole-microsecond duration (exact on both boards)."""
    n, rem = divmod(int(us) * f, 1_000_000)
    assert rem == 0 and us == int(us), (us, f)
    return n


def cyc_ns(ns: int, f: int) -> int:
    """System-clock cycles of a plan period in nanoseconds, to the nearest cycle (as
    stim.pulse.cycles rounds it)."""
    return (ns * f + 500_000_000) // 1_000_000_000


def make_rig(board) -> FirmwareRig:
    rig = FirmwareRig(board, load_ohm={1: LOAD_OHM, 2: LOAD_OHM})
    rig.boost(True)
    return rig


def assert_clean(rig: FirmwareRig, trace: PairTrace, ch: int = 0) -> list:
    """SR-4/SR-5 at the pins for a finished run; returns the complete pulses."""
    pulses, bad, in_progress = trace.parse()
    cm = rig.model.channels[ch]
    assert trace.both_high == [], "SR-5: PHASE_A and PHASE_B high together"
    assert cm.shoot_through == []
    assert bad == [], "illegal bridge sequence (lone/truncated phase): %r" % bad[:3]
    assert not in_progress, "a pulse was left unfinished"
    assert cm.single_phase == [], "board model saw a lone phase"
    assert rig.model.violations == []
    assert len(cm.pulse_log) == len(pulses)
    for p in cm.pulse_log:
        assert p.charge_a_c == p.charge_b_c, "SR-4: pulse not balanced"
        assert p.peak_a_ma == p.peak_b_ma, "SR-4: phase amplitudes differ"
    for a0, a1, b0, b1 in pulses:
        assert a1 - a0 == b1 - b0, "SR-4: phase widths differ"
    assert abs(cm.net_charge_c) < 1e-15, "SR-4: running net charge %g C" % cm.net_charge_c
    return pulses


def check_plan_train(pulses, plan, f, *, exact=True, start=0):
    """Pulse k plays plan[(start + k) % n]: widths, gaps and periods as the plan says."""
    n = len(plan)
    for k, (a0, a1, b0, b1) in enumerate(pulses):
        period_ns, phase_us, gap_us = plan[(start + k) % n]
        w, g = a1 - a0, b0 - a1
        assert b1 - b0 == w, (k, "phase B differs from phase A")
        if exact:
            assert w == cyc(phase_us, f), (k, w, phase_us)
            assert g == cyc(gap_us, f), (k, g, gap_us)
        else:  # a divided state-machine clock: within one system-clock tick
            assert abs(w - phase_us * f / 1e6) <= 1, (k, w, phase_us)
            assert abs(g - gap_us * f / 1e6) <= 1, (k, g, gap_us)
        if k + 1 < len(pulses):
            p = pulses[k + 1][0] - a0
            if exact:
                assert p == cyc_ns(period_ns, f), (k, p, period_ns)
            else:
                assert abs(p - period_ns * f / 1e9) <= 1, (k, p, period_ns)


def planned_count(plan, seconds: float) -> int:
    """How many pulses the plan starts in `seconds` from its first pulse."""
    n, t = 0, 0.0
    while t < seconds:
        n += 1
        t += plan[(n - 1) % len(plan)][0] / 1e9
    return n


def ppm(measured_s: float, nominal_s: float) -> float:
    return abs(measured_s / nominal_s - 1) * 1e6


def run_until(rig: FirmwareRig, done, step_s: float = 0.0002, limit_s: float = 2.0) -> None:
    """Move simulated time on in steps of step_s until done() is true; fail after limit_s, so
    that a train that stopped fails the test at once instead of waiting for ever."""
    t_end = rig.t_s + limit_s
    while not done():
        assert rig.t_s < t_end, "still waiting after %g s" % limit_s
        rig.run_for(step_s)


def masked_until(rig: FirmwareRig, t_cycle: int) -> None:
    """The CPU busy with interrupts masked, as in a flash erase, until system-clock cycle
    t_cycle: a pulse-done interrupt raised meanwhile runs only after it."""
    machine = rig.import_module("machine")
    state = machine.disable_irq()
    rig.chip.cpu.work(t_cycle - rig.chip.now)
    machine.enable_irq(state)


# ---- every built-in program on both boards -------------------------------------------------
def _variant(name: str, sysclk_hz: int) -> dict:
    b = copy.deepcopy(load_board("pico"))
    b["name"] = name
    b["sysclk_hz"] = sysclk_hz
    return b


@pytest.mark.req("FR-3")
@pytest.mark.parametrize("pid", PROGRAM_IDS)
@pytest.mark.parametrize("board", BOARDS)
def test_program_train_at_the_pins(board, pid):
    rig = make_rig(board)
    f = rig.board["sysclk_hz"]
    prog = programs.by_id(pid)
    plan = modulation.plan(programs.validate(prog))
    trace = PairTrace(rig)
    ch = rig.channel(0)
    ch.start(plan, LEVEL_UA)
    rig.run_for(RUN_S)
    ch.stop()
    rig.run_for(0.01)
    pulses = assert_clean(rig, trace)
    check_plan_train(pulses, plan, f)
    assert abs(len(pulses) - planned_count(plan, RUN_S)) <= 1

    # Rate against the program's nominal figures (<= 100 ppm).
    starts = [p[0] / f for p in pulses]
    if "burst" in prog:
        n = prog["burst"]["pulses"]
        for k in range(len(starts) - n):
            assert ppm(starts[k + n] - starts[k], 1 / prog["burst"]["rate_hz"]) <= 100
        inner = [starts[k + 1] - starts[k] for k in range(len(starts) - 1) if (k + 1) % n]
        assert inner and all(ppm(d, 1 / prog["rate_hz"]) <= 100 for d in inner)
    else:
        for d in (b - a for a, b in zip(starts, starts[1:], strict=False)):
            assert ppm(d, 1 / prog["rate_hz"]) <= 1  # plan periods in ns: under 1 ppm
    if "sweep" in prog:
        n, sw = len(plan), prog["sweep"]
        assert ppm(starts[n] - starts[0], sw["period_s"]) <= 100
        widths = [(p[1] - p[0]) * 1e6 / f for p in pulses]
        assert min(widths) == sw["min"] and max(widths) == sw["max"]

    # Every pulse delivered the set current into the load, A and B alike.
    for p in rig.model.channels[0].pulse_log:
        assert p.peak_a_ma == pytest.approx(LEVEL_MA, abs=0.15)


@pytest.mark.req("FR-3")
@pytest.mark.parametrize("pid", PROGRAM_IDS)
@pytest.mark.parametrize("sysclk_hz", [200_000_000, 133_000_000])
def test_program_train_other_clocks(sysclk_hz, pid):
    """Dividers come from the clock, not from an assumed 125 MHz: at 200 MHz (divider 2, whole
    microseconds still whole cycles) and 133 MHz (66.5 MHz state machine) the widths stay within
    one system-clock tick, A equals B exactly, and the rate within 100 ppm."""
    board = _variant("clk%d" % sysclk_hz, sysclk_hz)
    rig = make_rig(board)
    plan = modulation.plan(programs.by_id(pid))
    trace = PairTrace(rig)
    assert pulse.sm_divider(sysclk_hz) == 2
    ch = rig.channel(0)
    ch.start(plan, LEVEL_UA)
    rig.run_for(RUN_S)
    ch.stop()
    rig.run_for(0.01)
    pulses = assert_clean(rig, trace)
    check_plan_train(pulses, plan, sysclk_hz, exact=sysclk_hz == 200_000_000)
    assert len(pulses) >= 4


# ---- random plans, level changes, plan changes, stop ---------------------------------------
@st.composite
def pulse_params(draw):
    rate = draw(st.integers(pulse.RATE_MIN_HZ, pulse.RATE_MAX_HZ))
    phase = draw(st.integers(pulse.PHASE_MIN_US, pulse.PHASE_MAX_US))
    gap = draw(st.integers(pulse.GAP_MIN_US, pulse.GAP_MAX_US))
    try:
        pulse.check(rate, phase, gap)
    except pulse.PulseError:
        assume(False)
    return rate, phase, gap


def plan_of(params) -> list:
    rate, phase, gap = params
    return modulation.plan(
        {"id": "x", "name": "x", "kind": "tens", "rate_hz": rate, "phase_us": phase,
         "gap_us": gap, "session_min": 30}
    )  # fmt: skip


levels = st.floats(0.0, 50.0).map(lambda x: round(x, 1))
# When to act: after a free delay, or at a fraction (0..1.2) of the way through the next pulse
# (A phase, gap, B phase), so that changes and stops really do land inside pulses.
instants = st.one_of(
    st.tuples(st.just("free"), st.floats(0.0, 0.3)),
    st.tuples(st.just("pulse"), st.floats(0.0, 1.2)),
)
actions = st.lists(
    st.tuples(
        instants,
        st.one_of(
            st.tuples(st.just("level"), levels),
            st.tuples(st.just("plan"), pulse_params()),
            st.tuples(st.just("program"), st.sampled_from(PROGRAM_IDS)),
        ),
    ),
    max_size=5,
)


class Driver:
    """Moves simulated time to an instant chosen relative to the pulses seen at the pins."""

    def __init__(self, rig: FirmwareRig, trace: PairTrace):
        self.rig, self.trace = rig, trace
        self.f = rig.board["sysclk_hz"]
        self.plan = None
        self.plan_changed_at = 0  # cycle of the last start()

    def rises(self) -> list[int]:
        return [t for t, a, b in self.trace.states if (a, b) == (1, 0)]

    def wait(self, when) -> None:
        kind, x = when
        if kind == "free":
            self.rig.run_for(x)
            return
        chip, f = self.rig.chip, self.f
        rises = self.rises()
        n0 = len(rises)
        if rises and rises[-1] > self.plan_changed_at:
            # No restart since the last pulse, and periods never shrink: the next pulse
            # cannot come before the plan's shortest period.
            lower = rises[-1] + cyc_ns(min(e[0] for e in self.plan), f) - cyc(100, f)
            if lower > chip.now:
                chip.advance_to(lower)
        step = cyc(10, f)  # shorter than the shortest phase: we stop inside phase A
        for _ in range(300_000):
            if len(self.rises()) > n0:
                break
            chip.advance_to(chip.now + step)
        else:
            raise AssertionError("no pulse came")
        t_rise = self.rises()[n0]
        length = max(2 * w + g for _p, w, g in self.plan)
        target = t_rise + int(x * cyc(length, f))
        if target > chip.now:
            chip.advance_to(target)


@settings(
    max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(
    board=st.sampled_from(BOARDS),
    params=pulse_params(),
    level0=levels,
    first=instants,
    acts=actions,
    stop_at=instants,
)
def test_random_changes_keep_every_pulse_whole(board, params, level0, first, acts, stop_at):
    """Random plan, then random LEVEL changes, restarts with a new plan and a stop, each at a
    random instant (often inside a pulse): every pulse is whole, balanced and at a level that
    was asked for and already due; a LEVEL change never lands inside a pulse and never
    stretches a period (it is put in force at once while the channel rests, else by the
    pulse-done interrupt)."""
    rig = make_rig(board)
    f = rig.board["sysclk_hz"]
    # LEVEL PWM quantisation: the engine rounds the duty down by one compare step (1/(TOP+1))
    # and the port rounds it to the nearest step, so up to two steps on the steepest segment
    # of the calibration table.
    an = rig.board["analog"]
    cal = an["level_calibration"]
    slope = max((m1 - m0) / (d1 - d0) for (d0, m0), (d1, m1) in zip(cal, cal[1:], strict=False))
    q_ma = 2 * slope * an["level_pwm_hz"] / f + 0.002
    trace = PairTrace(rig)
    drv = Driver(rig, trace)
    ch = rig.channel(0)
    plan = plan_of(params)
    drv.plan, drv.plan_changed_at = plan, rig.chip.now
    ch.start(plan, int(level0 * 1000))
    # Each config: (t_call_start, t_call_end, kind, plan, level); a level is due from the end
    # of the first pulse after its call.
    configs = [(rig.chip.now, rig.chip.now, "start", plan, level0)]
    drv.wait(first)
    level = level0
    for when, (kind, value) in acts:
        if kind == "level":
            ma = value
            t0 = rig.chip.now
            ch.set_level_ua(int(ma * 1000))
            if ma != level:
                level = ma
                configs.append((t0, rig.chip.now, kind, plan, level))
        else:
            new = plan_of(value) if kind == "plan" else modulation.plan(programs.by_id(value))
            t0 = rig.chip.now
            ch.stop()
            ch.start(new, int(level * 1000))
            plan = new
            drv.plan, drv.plan_changed_at = plan, rig.chip.now
            configs.append((t0, rig.chip.now, kind, plan, level))
        drv.wait(when)
    drv.wait(stop_at)
    t_stop0 = rig.chip.now
    ch.stop()
    t_stop1 = rig.chip.now
    n_states = len(trace.states)
    longest = max(e[0] for c in configs for e in c[3])
    rig.run_for(1.2 * longest / 1e9 + 0.001)

    # After stop(): pins low, LEVEL at zero, no edge and no current any more.
    assert len(trace.states) == n_states, "bridge pins moved after stop()"
    assert rig.chip.level(trace.a) == 0 and rig.chip.level(trace.b) == 0
    assert rig.chip.analog_level(trace.lvl) == 0.0
    assert not rig.model.output_active(1)
    last = rig.model.channels[0].last_current_t
    assert last is None or last <= t_stop1
    # stop() returns within one pulse (2 phases + gap), plus the hold's polling and its own
    # Python; the last pulse ended within one pulse of the call.
    worst_pulse = max(2 * w + g for _p, w, g in plan)
    assert t_stop1 - t_stop0 <= cyc(worst_pulse + POLL_US + STOP_CPU_US, f)

    pulses = assert_clean(rig, trace)
    log = rig.model.channels[0].pulse_log
    assert all(b1 <= t_stop1 for *_x, b1 in pulses)

    # Each pulse belongs to the plan epoch (start or restart) in force when it started.
    epochs = [i for i, c in enumerate(configs) if c[2] != "level"]

    def epoch_of(a0):
        e = epochs[0]
        for i in epochs:
            if a0 >= configs[i][1]:
                e = i
        return e

    counts: dict[int, int] = {}
    for i, ((a0, a1, b0, b1), rec) in enumerate(zip(pulses, log, strict=True)):
        e = epoch_of(a0)
        k = counts.get(e, 0)
        counts[e] = k + 1
        pl = configs[e][3]
        period_ns, phase_us, gap_us = pl[k % len(pl)]
        assert a1 - a0 == cyc(phase_us, f) == b1 - b0, (i, configs[e][2])
        assert b0 - a1 == cyc(gap_us, f)
        # A level change never stretches (or shrinks) a period: only a restart moves pulses.
        if i + 1 < len(pulses) and epoch_of(pulses[i + 1][0]) == e:
            assert pulses[i + 1][0] - a0 == cyc_ns(period_ns, f), (i, "period changed")
        # Amplitude: the same in A and B, and one asked for: the newest level already due
        # (asked for before the end of the previous pulse), or one asked for after it.
        assert rec.peak_a_ma == rec.peak_b_ma
        prev_end = pulses[i - 1][3] if i and epoch_of(pulses[i - 1][0]) == e else configs[e][1]
        asked = [c for c in configs if c[1] <= a0]
        due = [j for j, c in enumerate(asked) if c[1] <= prev_end]
        allowed = [c[4] for c in asked[(due[-1] if due else 0) :]]
        assert any(abs(rec.peak_a_ma - lv) <= q_ma for lv in allowed), (
            i,
            rec.peak_a_ma,
            allowed,
        )

    # A new LEVEL reaches the current source only between pulses, never inside one.
    for t, _v in trace.level_changes:
        for a0, _a1, _b0, b1 in pulses:
            assert not (a0 <= t <= b1), "LEVEL changed inside a pulse at cycle %d" % t


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    board=st.sampled_from(BOARDS),
    params=pulse_params(),
    skip=st.integers(0, 3),
    stop_at=instants,
)
def test_stop_at_random_instant(board, params, skip, stop_at):
    """stop() at any instant, often inside a pulse: within one pulse the pins are low and stay
    low, no current flows, and the pulse that was running was finished whole."""
    rig = make_rig(board)
    f = rig.board["sysclk_hz"]
    trace = PairTrace(rig)
    drv = Driver(rig, trace)
    ch = rig.channel(0)
    plan = plan_of(params)
    drv.plan, drv.plan_changed_at = plan, rig.chip.now
    ch.start(plan, 30_000)
    for _ in range(skip):
        drv.wait(("pulse", 1.2))
    drv.wait(stop_at)
    t0 = rig.chip.now
    ch.stop()
    t1 = rig.chip.now
    _rate, phase, gap = params
    assert t1 - t0 <= cyc(2 * phase + gap + POLL_US + STOP_CPU_US, f)
    assert all(p[3] <= t0 + cyc(2 * phase + gap + POLL_US, f) for p in trace.parse()[0])
    n = len(trace.states)
    rig.run_for(plan[0][0] / 1e9 * 1.5)
    assert len(trace.states) == n
    assert rig.chip.level(trace.a) == rig.chip.level(trace.b) == 0
    assert rig.chip.analog_level(trace.lvl) == 0.0
    assert not rig.model.output_active(1)
    pulses = assert_clean(rig, trace)
    assert all(p[3] <= t1 for p in pulses)
    check_plan_train(pulses, plan, f)
    for p in rig.model.channels[0].pulse_log:
        assert p.peak_a_ma == pytest.approx(30.0, abs=0.15)


@pytest.mark.req("SR-3")
@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("level_ua", [5_000, 20_000, 47_300])
def test_the_current_the_engine_reports_is_the_current_the_load_gets(board, level_ua):
    """delivered_ma() (what the fault logs and the electrode check compute the load from)
    is the current the pulses push into the load, to within its whole microamps: the LEVEL's
    compare after its rounding, never above the level asked for (SR-3)."""
    rig = make_rig(board)
    ch = rig.channel(0)
    ch.start(modulation.plan(programs.by_id("tens_conventional")), level_ua)
    rig.run_for(0.1)
    peak_ma = rig.model.channels[0].pulse_log[-1].peak_a_ma
    # whole microamps, rounded down: at most 2 uA under the load's current, never over it
    assert 0 <= peak_ma - ch.delivered_ma() <= 0.0025, (ch.delivered_ma(), peak_ma)
    assert level_ua / 1000 - 0.2 <= peak_ma <= level_ua / 1000


def test_the_interrupts_pulse_count_is_the_pulses_at_the_pins():
    """Channel.pulses, the pulse-done interrupt's own count (the memory benchmark reports it
    to show the handler ran on the MicroPython VM), counts every pulse at the pins since the
    start, once each: here a burst plan, then again from 0 after a restart."""
    rig = make_rig("pico")
    trace = PairTrace(rig)
    ch = rig.channel(0)
    plan = modulation.plan(programs.by_id("tens_burst"))
    for run_s in (0.73, 0.41):
        n0 = len(trace.parse()[0])
        ch.start(plan, LEVEL_UA)
        rig.run_for(run_s)
        ch.stop()
        rig.run_for(0.01)
        assert ch.pulses == len(trace.parse()[0]) - n0 >= 7  # a burst at least


# ---- two channels -----------------------------------------------------------------------------
@pytest.mark.req("SR-6", "SR-10")
@pytest.mark.parametrize("reader", ["idle_sense", "boost", "battery"])
def test_a_task_reading_of_the_adc_is_its_own_input_whatever_interrupt_cuts_in(reader):
    """The RP2040 has one ADC: its input select and its result register are shared, and the
    pulse-done interrupt reads SENSE after every pulse. A reading task code takes (channel 2's
    idle SENSE before its probe, the boost's voltage, the battery's), at every instant from
    30 us before to 5 us after one of channel 1's pulse ends, 0.25 us apart (one per period),
    is its own input's value, never channel 1's SENSE (seen on the emulated chip: channel 2's
    probe failed with `sense`, its idle reading being channel 1's peak)."""
    rig = make_rig("pico")
    hw = rig.import_module("stim.hw")
    # What the input really is, from the board model: channel 2's idle hold, the boost's
    # voltage, the battery's.
    if reader == "idle_sense":
        read, tol, truth = rig.channel(1).read_sense, 64, lambda: 0.0  # ADC counts
    elif reader == "boost":
        boost = hw.Boost(rig.board)
        boost.on()  # built off, as the firmware builds it (SR-8)
        read, tol, truth = boost.volts, 0.5, rig.model.boost_v  # volts
    else:
        read, tol = hw.Hardware(rig.board).battery_v, 0.02  # volts
        truth = lambda: rig.model.battery_v  # noqa: E731
    trace = PairTrace(rig, 0)
    c1 = rig.channel(0)
    c1.start(modulation.plan(programs.by_id("tens_conventional")), 8000)
    rig.run_for(0.05)
    m = rig.machine
    state = m.disable_irq()
    expect = read()  # with interrupts masked: nothing can cut in
    m.enable_irq(state)
    assert abs(expect - truth()) <= tol, (expect, truth())
    f = rig.board["sysclk_hz"]
    t_end = trace.parse()[0][-1][3]  # the last pulse's end (phase B falls)
    period = cyc_ns(10_000_000, f)
    wrong = []
    for k in range(140):
        rig.chip.advance_to(t_end + (k + 1) * period - cyc(30, f) + k * f // 4_000_000)
        v = read()
        if abs(v - expect) > tol:
            wrong.append((k / 4 - 30, v))
    assert c1.pulses >= 140 and not c1.trip
    assert wrong == [], (expect, wrong)


@pytest.mark.req("SR-6")
@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("how", ["hold", "trip"])
def test_each_channel_gates_its_own_state_machine(board, index, how):
    """Two channels pulsing, each on its own state machine in its own PIO block. Holding one
    (or its load opening, so that its interrupt trips it) stops that one within a pulse
    period; the other goes on pulse for pulse, whatever the first one's gate, program
    counter or LEVEL do."""
    rig = make_rig(board)
    chans = [rig.channel(0), rig.channel(1)]
    traces = [PairTrace(rig, 0), PairTrace(rig, 1)]
    plan = modulation.plan(programs.by_id("tens_conventional"))
    for ch in chans:
        ch.start(plan, LEVEL_UA)
    rig.run_for(0.2)
    t_s = rig.t_s
    if how == "hold":
        chans[index].hold()
    else:
        rig.model.set_load(index + 1, 1e9)
    rig.run_for(0.3)
    period_s = plan[0][0] / 1e9
    for i, trace in enumerate(traces):
        pulses, bad, _ = trace.parse()
        assert bad == [] and trace.both_high == []
        after = [p for p in pulses if p[0] / rig.board["sysclk_hz"] > t_s + period_s]
        if i == index:
            assert after == [], "channel %d pulsed on after its %s" % (i + 1, how)
        else:
            assert len(after) >= int(0.3 / period_s) - 2, "channel %d stopped" % (i + 1)
            check_plan_train(pulses, plan, rig.board["sysclk_hz"])
    if how == "trip":
        assert chans[index].trip and not chans[1 - index].trip


# ---- halt (the POWER button's hard interrupt) ---------------------------------------------------
@pytest.mark.req("SR-7", "SR-4")
@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("at", ["phase_a", "gap", "rest", "held"])
def test_halt_starts_no_pulse_and_puts_level_to_zero_by_the_end_of_one_under_way(board, at):
    """halt() alone, with no stop() after it (what the POWER button's hard interrupt does
    before the unit's next cycle): no pulse starts once it has run; a pulse under way ends
    whole (SR-4) and LEVEL is 0 from its pulse-done interrupt; between pulses, or on a
    channel held at its gate (hold()), LEVEL is 0 at once. Nothing flows into the load after."""
    rig = make_rig(board)
    f = rig.board["sysclk_hz"]
    trace = PairTrace(rig)
    drv = Driver(rig, trace)
    ch = rig.channel(0)
    plan = modulation.plan(programs.by_id("tens_conventional"))
    drv.plan, drv.plan_changed_at = plan, rig.chip.now
    ch.start(plan, LEVEL_UA)
    rig.run_for(0.025)
    assert len(trace.parse()[0]) >= 2, "no pulse train"  # before Driver looks for one
    drv.wait(("pulse", 1.2))
    _period_ns, phase_us, gap_us = plan[0]
    length = 2 * phase_us + gap_us
    if at == "held":
        ch.hold()
        rig.run_for(plan[0][0] / 1e9)  # a period: its state machine now waits at the gate
    else:
        drv.wait(("pulse", {"phase_a": 0.2, "gap": (phase_us + gap_us / 2) / length,
                            "rest": 1.5}[at]))  # fmt: skip
    t0 = rig.chip.now
    ch.halt()
    t1 = rig.chip.now
    rig.run_for(0.1)
    pulses = assert_clean(rig, trace)
    assert all(a0 < t0 for a0, _a1, _b0, _b1 in pulses), "a pulse started after halt()"
    end = max([t0] + [b1 for _a0, _a1, _b0, b1 in pulses])
    assert end <= t0 + cyc(length, f)
    zero_at = [t for t, v in trace.level_changes if v == 0.0]
    assert zero_at and rig.chip.analog_level(trace.lvl) == 0.0
    if end > t1:  # from the pulse-done interrupt, up to ON_TIME_US late, after its readings
        assert zero_at[-1] <= end + cyc(400, f), (zero_at[-1], end)
    else:  # from halt() itself: the compare lands at the PWM's next wrap (8-10 us)
        assert zero_at[-1] <= t1 + cyc(20, f), (zero_at[-1], t1)
    assert not rig.model.output_active(1)


@pytest.mark.req("SR-7", "SR-6")
@pytest.mark.parametrize("how", ["halt", "trip"])
def test_a_halted_or_tripped_channel_takes_no_new_level(how):
    """Between a halt() (the POWER interrupt) or a trip and the stop() that follows on the
    unit's next cycle, a level asked of the channel (a ramp's tick, a MINUS) is refused, even
    in the rest right after the last pulse, when a running channel would take it at once:
    LEVEL stays at 0 and no pulse runs, until stop() and a new start()."""
    rig = make_rig("pico")
    trace = PairTrace(rig)
    ch = rig.channel(0)
    ch.start(modulation.plan(programs.by_id("tens_conventional")), LEVEL_UA)
    rig.run_for(0.1)
    n0 = len(trace.parse()[0])
    run_until(rig, lambda: len(trace.parse()[0]) > n0)  # to the next pulse's end: its rest
    rig.run_for(0.0005)
    if how == "halt":
        ch.halt()
    else:
        rig.model.set_load(1, 1e9)
        for _ in range(200):  # to the interrupt of the next pulse, which trips
            rig.run_for(0.0001)
            if ch.trip:
                break
    assert ch.halted or ch.trip
    n = len(trace.parse()[0])
    ch.set_level_ua(30_000)  # at once, in that pulse's rest
    rig.run_for(0.05)
    assert rig.chip.analog_level(trace.lvl) == 0.0
    assert len(trace.parse()[0]) == n


@pytest.mark.req("SR-2", "SR-4")
def test_a_level_asked_in_any_rest_of_a_burst_reaches_the_very_next_pulse():
    """A burst plan rests about 9.6 ms after each pulse of its burst and 440 ms after the
    last. A level asked 2 ms before the next pulse, in every one of those rests (both copies
    of the seven-entry cycle), goes in at once: the next pulse already has it, down or up.
    Whether the rest has time left is worked out from that rest's own length; measured from a
    neighbouring entry's 9.6 ms rest, the long rest would look spent, and the change would
    wait for the interrupt after the next pulse."""
    rig = make_rig("pico")
    f = rig.board["sysclk_hz"]
    trace = PairTrace(rig)
    ch = rig.channel(0)
    plan = modulation.plan(programs.by_id("tens_burst"))
    assert len(plan) == 7 and plan[-1][0] > 40 * plan[0][0]
    log = rig.model.channels[0].pulse_log
    ch.start(plan, LEVEL_UA)
    level_ma = LEVEL_MA
    for k in range(2 * len(plan)):
        run_until(rig, lambda k=k: len(trace.parse()[0]) > k, 0.0005)  # pulse k has ended
        a0 = trace.parse()[0][k][0]
        rig.chip.advance_to(a0 + cyc_ns(plan[k % len(plan)][0], f) - cyc(2000, f))
        level_ma = 12.0 if level_ma == LEVEL_MA else LEVEL_MA
        ch.set_level_ua(int(level_ma * 1000))
        run_until(rig, lambda k=k: len(log) > k + 1, 0.0005)
        assert abs(log[k + 1].peak_a_ma - level_ma) <= 0.2, (k, log[k + 1].peak_a_ma, level_ma)
    ch.stop()
    rig.run_for(0.01)
    assert_clean(rig, trace)


@pytest.mark.req("SR-6", "SR-7")
@pytest.mark.parametrize("how", ["halt", "trip"])
def test_a_start_after_a_halt_or_a_trip_plays_the_plan(how):
    """start() begins afresh whatever the channel went through, with no stop() in between
    (stop() makes the pins safe, start() must not depend on it): after a halt() or a trip the
    new start's pulses reach the load at its level, and the next lift is found again."""
    from host_tools.sim.board_model import OPEN_OHM

    rig = make_rig("pico")
    trace = PairTrace(rig)
    ch = rig.channel(0)
    plan = modulation.plan(programs.by_id("tens_conventional"))
    ch.start(plan, LEVEL_UA)
    rig.run_for(0.1)
    if how == "halt":
        ch.halt()
    else:
        rig.model.set_load(1, OPEN_OHM)
    rig.run_for(0.05)
    assert ch.halted or ch.trip
    rig.model.set_load(1, LOAD_OHM)
    n0 = len(trace.parse()[0])
    ch.start(plan, LEVEL_UA)
    rig.run_for(0.2)
    after = rig.model.channels[0].pulse_log[n0:]
    assert len(after) >= 19 and all(abs(p.peak_a_ma - LEVEL_MA) <= 0.2 for p in after)
    rig.model.set_load(1, OPEN_OHM)
    n1 = len(trace.parse()[0])
    rig.run_for(0.1)
    assert len(trace.parse()[0]) - n1 <= 2 and ch.trip
    ch.stop()
    rig.run_for(0.01)
    assert_clean(rig, trace)


@pytest.mark.req("SR-8")
@pytest.mark.parametrize("before", ["first_start", "after_stop"])
def test_a_level_asked_of_a_channel_that_is_not_running_leaves_level_at_0(before):
    """A channel not running (never started, or stopped) takes no level: LEVEL stays at 0
    with the bridge idle, and the next start() plays the level it is given, not the one asked
    before it."""
    rig = make_rig("pico")
    trace = PairTrace(rig)
    ch = rig.channel(0)
    plan = modulation.plan(programs.by_id("tens_conventional"))
    if before == "after_stop":
        ch.start(plan, LEVEL_UA)
        rig.run_for(0.1)
        ch.stop()
    rig.run_for(0.01)
    ch.set_level_ua(30_000)
    rig.run_for(0.05)
    assert rig.chip.analog_level(trace.lvl) == 0.0
    n0 = len(rig.model.channels[0].pulse_log)
    ch.start(plan, 10_000)
    rig.run_for(0.1)
    after = rig.model.channels[0].pulse_log[n0:]
    assert len(after) >= 9 and all(abs(p.peak_a_ma - 10.0) <= 0.2 for p in after)


@pytest.mark.req("SR-8", "SR-4")
@pytest.mark.parametrize("index", [0, 1])
def test_stop_leaves_the_state_machine_stopped_and_the_bridge_pins_plain_low_outputs(index):
    """After stop() the channel's state machine is disabled (no program runs, no pulse-done
    interrupt comes) and PHASE_A/PHASE_B are GPIO outputs driven low, no longer the PIO's:
    nothing the PIO block does afterwards can reach the bridge."""
    rig = make_rig("pico")
    ch = rig.channel(index)
    ch.start(modulation.plan(programs.by_id("tens_conventional")), LEVEL_UA)
    rig.run_for(0.1)
    ch.stop()
    rig.run_for(0.05)
    assert not rig.chip.pio[ch.sm_id // 4].sms[ch.sm_id % 4].enabled
    cfg = rig.board["channels"][index]
    for pin in (cfg["phase_a"], cfg["phase_b"]):
        assert rig.chip.level(pin) == 0
        assert rig.chip.gpio[pin].func == F_SIO, pin


# ---- restarts -------------------------------------------------------------------------------
def _train_after_restart(board, plan, first_s, second_s=1.0):
    rig = make_rig(board)
    ch = rig.channel(0)
    ch.start(plan, LEVEL_UA)
    rig.run_for(first_s)
    ch.stop()
    rig.run_for(0.01)
    trace = PairTrace(rig)
    ch.start(plan, LEVEL_UA)
    rig.run_for(second_s)
    ch.stop()
    rig.run_for(0.01)
    return rig, trace


@pytest.mark.parametrize(
    ("pid", "first_s"),
    [("tens_conventional", 0.0351), ("ems_strength", 0.5), ("tens_burst", 1.03)],
)
def test_restart_after_stop_plays_the_plan(pid, first_s):
    plan = modulation.plan(programs.by_id(pid))
    rig, trace = _train_after_restart("pico", plan, first_s)
    pulses, bad, _ = trace.parse()
    assert bad == []
    assert len(pulses) >= planned_count(plan, 1.0) - 1, "only %d pulses" % len(pulses)
    check_plan_train(pulses, plan, rig.board["sysclk_hz"])


# ---- plans of every short length --------------------------------------------------------------
_ROWS = [(10_000_000 + 2_500_000 * k, 100 + 50 * k, 20 + 10 * k) for k in range(5)]


@pytest.mark.parametrize(
    "rows",
    [_ROWS[:1], _ROWS[:2], _ROWS[:3], _ROWS[:4], [_ROWS[0], _ROWS[1], _ROWS[0]],
     [_ROWS[2], _ROWS[0], _ROWS[1], _ROWS[0], _ROWS[2]]],
    ids=["1", "2", "3", "4", "3-same-ends", "5-same-ends"],
)  # fmt: skip
def test_a_plan_of_any_short_length_plays_its_whole_train(rows):
    """The engine queues a plan's first two pairs and the pulse-done interrupt pushes each next
    one. A plan of two entries (a two-pulse burst in a custom program) is a boundary: every
    entry must keep coming, in order, for as long as it runs, as for one, three or four. So is
    an odd plan whose last entry is its first again: the state machine takes a rest word equal
    to the one it holds as no news, so each pair must differ from the last in its toggle bit,
    across the wrap of the cycle too."""
    rig = make_rig("pico")
    trace = PairTrace(rig)
    ch = rig.channel(0)
    ch.start(rows, LEVEL_UA)
    rig.run_for(0.5)
    ch.stop()
    rig.run_for(0.01)
    pulses = assert_clean(rig, trace)
    check_plan_train(pulses, rows, rig.board["sysclk_hz"])
    assert abs(len(pulses) - planned_count(rows, 0.5)) <= 1


# ---- pulse.py: the timing maths --------------------------------------------------------------
@pytest.mark.parametrize("sysclk_hz", [125_000_000, 100_000_000])
@settings(max_examples=200, deadline=None, derandomize=True)
@given(params=pulse_params(), toggle=st.integers(0, 1))
def test_words_period_of_round_trip(sysclk_hz, params, toggle):
    rate, phase, gap = params
    sm_hz = sysclk_hz // pulse.sm_divider(sysclk_hz)
    w, g, p = pulse.cycles(pulse.period_ns(rate), phase, gap, sm_hz)
    rest, shape = pulse.words(w, g, p, toggle)
    assert pulse.period_of(rest, shape) == (w, g, p)
    assert bool(rest & pulse.TOGGLE) == bool(toggle)
    other, shape2 = pulse.words(w, g, p, 1 - toggle)
    assert other != rest and shape2 == shape  # the toggle alone tells a new word apart
    assert 0 <= rest < 1 << 32 and 0 <= shape < 1 << 32
    assert w == phase * sm_hz // 1_000_000 and g == gap * sm_hz // 1_000_000
    # the nearest cycle to the period in whole nanoseconds: within half a cycle and half a
    # nanosecond of the rate's period, far under 1 ppm
    assert abs(p / sm_hz - 1 / rate) <= 0.5 / sm_hz + 0.5e-9
    assert abs(p * rate / sm_hz - 1) < 1e-6


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((0, 100, 20), "rate_hz"),
        ((151, 100, 20), "rate_hz"),
        ((100, 19, 20), "phase_us"),
        ((100, 501, 20), "phase_us"),
        ((100, 100, 0), "gap_us"),
        ((100, 100, 201), "gap_us"),
    ],
)
def test_check_names_the_parameter(args, name):
    with pytest.raises(pulse.PulseError, match=name):
        pulse.check(*args)
    if name != "rate_hz":  # a plan entry has a period, not a rate
        rate, phase, gap = args
        with pytest.raises(pulse.PulseError, match=name):
            pulse.cycles(pulse.period_ns(rate), phase, gap, 125_000_000)


def test_words_reject_out_of_range_fields():
    with pytest.raises(pulse.PulseError, match="phase"):
        pulse.words(1, 10, 100000, 0)
    with pytest.raises(pulse.PulseError, match="phase"):
        pulse.words(0xFFFF + 3, 10, 10_000_000, 0)
    with pytest.raises(pulse.PulseError, match="gap"):
        pulse.words(100, 4, 100000, 0)
    with pytest.raises(pulse.PulseError, match="gap"):
        pulse.words(100, 0xFFFF + 6, 10_000_000, 0)
    with pytest.raises(pulse.PulseError, match="period"):
        pulse.words(100, 10, 2 * 100 + 10 + 13, 0)  # one cycle short of the minimum rest
    with pytest.raises(pulse.PulseError, match="period"):
        pulse.cycles(6_000_000, 500, 200, 125_000_000)  # faster than RATE_MAX_HZ
    with pytest.raises(pulse.PulseError, match="period"):
        pulse.cycles(2_500_000_000, 200, 20, 125_000_000)
    # the smallest legal rest is exactly zero
    rest, shape = pulse.words(100, 10, 2 * 100 + 10 + 14, 0)
    assert rest == 0 and pulse.period_of(rest, shape) == (100, 10, 224)


@pytest.mark.parametrize(
    ("sysclk_hz", "div"),
    [(48_000_000, 1), (100_000_000, 1), (125_000_000, 1), (133_000_000, 2), (200_000_000, 2),
     (250_000_000, 2), (270_000_000, 3)],
)  # fmt: skip
def test_sm_divider_fits_the_longest_phase(sysclk_hz, div):
    assert pulse.sm_divider(sysclk_hz) == div
    sm_hz = sysclk_hz // div
    w = pulse.us_to_cycles(pulse.PHASE_MAX_US, sm_hz)
    g = pulse.us_to_cycles(pulse.GAP_MAX_US, sm_hz)
    assert w - 2 <= 0xFFFF and g - 5 <= 0xFFFF  # the 16-bit phase and gap fields
    # the longest pulse at the slowest rate still gives a legal word pair
    p = pulse.cycles(
        pulse.period_ns(pulse.RATE_MIN_HZ), pulse.PHASE_MAX_US, pulse.GAP_MAX_US, sm_hz
    )[2]
    pulse.words(w, g, p, 1)
    if div > 1:  # and the divider is the smallest that fits
        assert pulse.us_to_cycles(pulse.PHASE_MAX_US, sysclk_hz // (div - 1)) - 2 > 0xFFFF


def test_us_to_cycles_rounds_to_nearest():
    assert pulse.us_to_cycles(100, 125_000_000) == 12500
    assert pulse.us_to_cycles(1, 66_500_000) == 67  # 66.5 rounds up
    assert pulse.us_to_cycles(20.004, 125_000_000) == 2501  # 2500.5 -> 2501
    assert pulse.us_to_cycles(20.003, 125_000_000) == 2500


# ---- the lowest current that is judged ------------------------------------------------------
@pytest.mark.req("SR-6")
def test_a_lifted_electrode_is_found_at_exactly_the_lowest_judged_current():
    """Below 800 uA (MIN_JUDGE_UA) a reading says too little to judge the load; from it on,
    it is judged. A level whose current (after the LEVEL duty's rounding) is exactly 800 uA
    must find a lifted electrode: the pulses at the load stop within a few periods."""
    from host_tools.sim.board_model import OPEN_OHM

    rig = FirmwareRig("pico", load_ohm={1: 1000.0})
    rig.boost(True)
    ch = rig.channel(0)
    lvl = ch.lvl
    min_judge_ua = 800  # written out: this is the check of stim.electrode.MIN_JUDGE_UA
    ua = next(u for u in range(min_judge_ua, 2 * min_judge_ua)
              if lvl.ua_for_duty(lvl.duty_for_ua(u)) == min_judge_ua)  # fmt: skip
    ch.start(modulation.plan(programs.by_id("tens_conventional")), ua)
    rig.run_for(0.2)
    assert rig.model.driven(1, 0.1, 0.2), "no pulses before the lift"
    t_lift = rig.t_s
    rig.model.set_load(1, OPEN_OHM)
    rig.run_for(0.2)
    assert rig.model.driven(1, t_lift + 0.05) == [], "still pulsing into a lifted electrode"


# ---- the first pulse of a start is judged ---------------------------------------------------
@pytest.mark.req("SR-6")
@pytest.mark.parametrize("phase_us", [100, 300, 500])
def test_a_start_into_a_lifted_electrode_stops_after_its_first_pulse(phase_us):
    """The first pulse's interrupt has no previous one to be timed from: the engine expects it
    one pulse length (both phases and the gap) after the state machine starts. Expected too
    early (say one phase short), a wide pulse's interrupt looks late, its reading is thrown
    away, and a lifted electrode gets a second pulse. At every width the programs allow (up
    to 500 us), a start at a judged current into a lifted electrode drives exactly one."""
    from host_tools.sim.board_model import OPEN_OHM

    rig = FirmwareRig("pico", load_ohm={1: OPEN_OHM})
    rig.boost(True)
    ch = rig.channel(0)
    prog = {**programs.by_id("tens_conventional"), "id": "wide", "phase_us": phase_us}
    ch.start(modulation.plan(programs.validate(prog)), LEVEL_UA)
    rig.run_for(0.1)
    assert ch.trip, "a lifted electrode was not found"
    starts = [p.t_a for p in rig.model.channels[0].pulse_log]
    assert len(starts) == 1, "%d pulses into a lifted electrode" % len(starts)


@pytest.mark.req("SR-2", "SR-4")
@pytest.mark.parametrize(("before_us", "at_once"), [(1150, True), (1400, True), (650, False)])
def test_a_level_asked_before_a_wide_pulse_goes_in_at_once_only_with_the_margin_left(
    before_us, at_once
):
    """500 us phases at 100 Hz: the rest after each pulse is 8.98 ms. A level asked 1.15 or
    1.4 ms before the next pulse (its own Python takes about 0.3 ms before it looks at the
    clock) still leaves more than the 600 us margin of that rest: it goes in at once, and the
    next pulse has it. Asked 0.65 ms before, it leaves less: the pulse-done interrupt puts it
    in after that pulse, which keeps the old level, and the one after has it. The rest is
    worked out from the entry's own width: a phase more or less would move both."""
    rig = make_rig("pico")
    f = rig.board["sysclk_hz"]
    trace = PairTrace(rig)
    ch = rig.channel(0)
    plan = [(10_000_000, 500, 20)]
    log = rig.model.channels[0].pulse_log
    ch.start(plan, LEVEL_UA)
    rig.run_for(0.1)
    k = len(trace.parse()[0])
    run_until(rig, lambda: len(trace.parse()[0]) > k)  # to the end of pulse k: its rest
    rig.chip.advance_to(trace.parse()[0][k][0] + cyc_ns(plan[0][0], f) - cyc(before_us, f))
    ch.set_level_ua(12_000)
    run_until(rig, lambda: len(log) > k + 2, 0.0005)
    want = [12.0, 12.0] if at_once else [LEVEL_MA, 12.0]
    got = [log[k + 1].peak_a_ma, log[k + 2].peak_a_ma]
    assert all(abs(g - w) <= 0.2 for g, w in zip(got, want, strict=True)), got
    ch.stop()
    rig.run_for(0.01)
    assert_clean(rig, trace)


# Plans of several entries, where each pulse's interrupt is timed from the previous one's by
# that entry's own interval: a burst (440 ms rest after the seventh pulse), and a custom plan
# whose widths alternate between the narrowest and widest phases (its pulse ends are 9.04 ms
# and 10.96 ms apart).
_WIDTHS = [(10_000_000, 20, 20), (10_000_000, 500, 20)]
# A burst of four wide pulses (820 us each), then a 40 ms rest.
_WIDE_BURST = [(10_000_000, 400, 20)] * 3 + [(40_000_000, 400, 20)]


def _plan_named(name):
    plans = {"widths": _WIDTHS, "wide_burst": _WIDE_BURST}
    return plans[name] if name in plans else modulation.plan(programs.by_id(name))


@pytest.mark.req("SR-6")
@pytest.mark.parametrize(
    ("name", "k"),
    [("tens_burst", 6), ("tens_burst", 7), ("tens_burst", 8), ("tens_burst", 13),
     ("tens_burst", 14), ("tens_burst", 15), ("widths", 4), ("widths", 5)],
)  # fmt: skip
def test_a_lift_before_any_pulse_of_a_plan_stops_it_at_that_pulse(name, k):
    """An electrode lifted in the rest before pulse k, whichever entry of the plan that pulse
    plays (the first of a burst after its long rest, the one after it, the long-rest entry,
    either copy of an odd cycle; a wide pulse after a narrow one and the other way): pulse k
    is the last that reaches the pins. Its interrupt comes on time for that entry, so its
    reading of the open is judged, as every pulse's must be."""
    from host_tools.sim.board_model import OPEN_OHM

    rig = make_rig("pico")
    trace = PairTrace(rig)
    ch = rig.channel(0)
    ch.start(_plan_named(name), LEVEL_UA)
    run_until(rig, lambda: len(trace.parse()[0]) >= k, 0.0005)  # the rest before pulse k
    rig.model.set_load(1, OPEN_OHM)
    rig.run_for(1.0)
    assert ch.trip, "a lifted electrode was not found"
    assert len(trace.parse()[0]) == k + 1, "pulses after pulse %d: %d" % (
        k,
        len(trace.parse()[0]) - k - 1,
    )


@pytest.mark.req("SR-6")
@pytest.mark.parametrize("k", [3, 6, 11])
def test_a_start_after_a_longer_plan_stopped_mid_train_judges_its_first_pulse(k):
    """The interrupt takes the hold's decay from the previous pulse's plan entry. A channel
    stopped after the k-th pulse of a burst (a 14-entry plan), then started on a one-entry
    plan (a continuous program, as the probe's) into a lifted electrode, judges from its first
    pulse: one pulse, and the channel stops (an entry left from the burst would be past the
    end of the new plan's table: the handler would raise, and the port disable it)."""
    from host_tools.sim.board_model import OPEN_OHM

    rig = make_rig("pico")
    ch = rig.channel(0)
    ch.start(modulation.plan(programs.by_id("tens_burst")), LEVEL_UA)
    log = rig.model.channels[0].pulse_log
    run_until(rig, lambda: len(log) >= k)
    ch.stop()
    rig.run_for(0.05)
    assert not ch.trip and len(log) == k
    rig.model.set_load(1, OPEN_OHM)
    ch.start(modulation.plan(programs.by_id("tens_conventional")), LEVEL_UA)
    rig.run_for(0.2)
    assert ch.trip, "a lifted electrode was not found"
    assert len(log) == k + 1, "%d pulses into a lifted electrode" % (len(log) - k)


@pytest.mark.req("SR-6")
@pytest.mark.parametrize("name", ["widths", "tens_burst"])
def test_a_start_into_a_lifted_electrode_stops_after_its_first_pulse_whatever_entry_ends_the_plan(
    name,
):
    """The first pulse's interrupt is expected one pulse length of the plan's first entry
    after the start, whatever the last entry's width or rest (the widest after the narrowest;
    a burst's long rest)."""
    from host_tools.sim.board_model import OPEN_OHM

    rig = FirmwareRig("pico", load_ohm={1: OPEN_OHM})
    rig.boost(True)
    ch = rig.channel(0)
    ch.start(_plan_named(name), LEVEL_UA)
    rig.run_for(0.1)
    assert ch.trip, "a lifted electrode was not found"
    assert len(rig.model.channels[0].pulse_log) == 1


@pytest.mark.req("FR-3", "SR-4")
@pytest.mark.parametrize(("name", "k"), [("wide_burst", 2), ("widths", 2)])
def test_the_next_entry_is_queued_before_its_rest_begins(name, k):
    """The state machine picks up the next (rest, shape) pair at the top of each period, and
    the engine keeps it queued a pulse ahead, so the pulse-done interrupt has a whole period
    to queue the one after. Here that interrupt is held off for the whole rest after pulse k
    (interrupts masked, as a flash erase masks them) and runs early in the wide pulse k+1,
    well before it ends: pulse k+1 still plays its own entry (the burst's long rest after its
    last pulse; the other width), and the train is the plan."""
    rig = make_rig("pico")
    f = rig.board["sysclk_hz"]
    trace = PairTrace(rig)
    ch = rig.channel(0)
    plan = _plan_named(name)
    ch.start(plan, LEVEL_UA)
    drv = Driver(rig, trace)
    run_until(rig, lambda: len(drv.rises()) > k, 5e-6)  # pulse k has begun
    next_a0 = drv.rises()[k] + cyc_ns(plan[k % len(plan)][0], f)
    masked_until(rig, next_a0 + cyc(20, f))  # 20 us into pulse k+1
    rig.run_for(1.0)
    ch.stop()
    rig.run_for(0.01)
    pulses = assert_clean(rig, trace)
    check_plan_train(pulses, plan, f)
    assert len(pulses) >= planned_count(plan, 1.0)


@pytest.mark.req("SR-6")
@pytest.mark.parametrize("late_ms", [2, 5, 8, 9])
def test_a_reading_from_an_interrupt_held_off_by_a_blocked_cpu_is_not_judged(late_ms):
    """Interrupts masked from the start of a pulse until late_ms after its end (under a
    period: no later pulse has ended): the pulse-done interrupt reads a peak-hold that has
    decayed for that long (to a fifth after 8 ms), which against the previous reading looks
    like a load that fell, a short. The reading came late and is not judged: the channel, on
    its good 1 kohm load, goes on pulsing (H-21)."""
    rig = make_rig("pico")
    f = rig.board["sysclk_hz"]
    trace = PairTrace(rig)
    drv = Driver(rig, trace)
    ch = rig.channel(0)
    plan = modulation.plan(programs.by_id("tens_conventional"))
    ch.start(plan, LEVEL_UA)
    rig.run_for(0.2)
    k = len(drv.rises())
    run_until(rig, lambda: len(drv.rises()) > k, 5e-6)  # pulse k has begun
    _p, phase_us, gap_us = plan[0]
    end = drv.rises()[k] + cyc(2 * phase_us + gap_us, f)
    masked_until(rig, end + cyc(late_ms * 1000, f))
    rig.run_for(0.2)
    assert not ch.trip
    assert len(trace.parse()[0]) >= k + 20


@pytest.mark.req("SR-6")
@pytest.mark.parametrize(("name", "k"), [("widths", 3), ("widths", 4), ("tens_burst", 5),
                                         ("tens_conventional", 3)])  # fmt: skip
def test_a_pulse_done_interrupt_lost_to_a_blocked_cpu_stops_the_channel(name, k):
    """Interrupts masked from the start of pulse k until just after pulse k+1 ends (a flash
    erase while output runs, which the firmware never does): both pulses' flags are taken by
    one entry of the handler, as on the chip, so the engine can no longer tell which plan entry
    each later reading follows, nor judge any. It stops the channel there: pulse k+1 is the
    last at the load, and the fault is `sense`. Without that, a lifted electrode on a plan of
    alternating widths would go on being pulsed, every reading looking late."""
    from host_tools.sim.board_model import OPEN_OHM

    rig = make_rig("pico")
    f = rig.board["sysclk_hz"]
    trace = PairTrace(rig)
    drv = Driver(rig, trace)
    ch = rig.channel(0)
    plan = _plan_named(name)
    ch.start(plan, LEVEL_UA)
    run_until(rig, lambda: len(drv.rises()) > k, 5e-6)  # pulse k has begun
    _p, phase_us, gap_us = plan[(k + 1) % len(plan)]
    end_next = drv.rises()[k] + cyc_ns(plan[k % len(plan)][0], f) + cyc(2 * phase_us + gap_us, f)
    masked_until(rig, end_next + cyc(100, f))
    rig.model.set_load(1, OPEN_OHM)
    rig.run_for(1.0)
    assert len(trace.parse()[0]) == k + 2
    assert ch.trip == 3  # stim.electrode.SENSE
    assert_clean(rig, trace)


# ---- SENSE readings set at the ADC input -----------------------------------------------------
_u16 = port_math.adc_raw12_to_u16  # read_u16(): the 12-bit result scaled to 16 bits


def _stick_sense(rig, raw12: int) -> None:
    """Channel 1's SENSE input held at the voltage that converts to the 12-bit code raw12 (a
    stuck voltage the board model applies, whatever the load)."""
    adc = rig.board["channels"][0]["sense_adc"] - 26
    rig.model.adc_faults[adc] = rig.model.adc_code_v(raw12)


def _residue(m: int, decay: int) -> int:
    """What the hold keeps of reading m after a period (decay in Q12), as the engine works
    it out."""
    return (m * decay) >> 12


def _fresh_mark(m: int, decay: int) -> int:
    """The highest reading after m that is no fresh peak: its residue plus a quarter of the
    way back up to it."""
    r = _residue(m, decay)
    return r + ((m - r) >> 2)


# ---- a fresh peak, exactly on its boundary --------------------------------------------------
@pytest.mark.req("SR-6")
@pytest.mark.parametrize(("above", "trips"), [(0, True), (1, False), (16, False)])
def test_a_reading_exactly_a_quarter_back_up_is_no_fresh_peak(above, trips):
    """A pulse into the load refreshes the peak-hold: its reading must be clearly above what
    the previous pulse left after a period's decay, by more than a quarter of the way back up
    to the previous reading. A reading exactly on that mark is no fresh peak: after fresh
    peaks at the same current the load has fallen by more than the hold's decay, which is a
    short (SR-6), and the pulses at the load stop. One count above it (read_u16's), or one ADC
    code, is fresh: they go on. The decay is the hold's over the period, from the board's time
    constant (5 ms: 554/4096 over 10 ms); 1/4096 more or less moves the mark by a few counts.
    The readings are set at the ADC input (a stuck voltage the board model applies); 2 kOhm
    puts them where a missing fresh peak is judged (above four times the short limit)."""
    import math

    rig = FirmwareRig("pico", load_ohm={1: 2000.0})
    rig.boost(True)
    ch = rig.channel(0)
    plan = modulation.plan(programs.by_id("tens_conventional"))
    ch.start(plan, LEVEL_UA)
    rig.run_for(0.3)
    m0 = ch.sense_last
    tau_us = rig.board["analog"]["sense_hold_tau_ms"] * 1000
    decay = int(4096 * math.exp(-plan[0][0] / 1000 / tau_us))  # Q12, floored

    # A steady reading a little above the real one (fresh against it), then a code whose
    # reading sits exactly `above` counts over the freshness mark below it.
    for r1 in range((m0 >> 4) + 1, 4096):
        m1 = _u16(r1)
        mark = _fresh_mark(m1, decay)
        r2 = next((c for c in range(4096) if _u16(c) == mark + above), None)
        if r2 is not None and 4 * ch._short_c < mark:
            break
    assert r2 is not None and 4 * ch._short_c < mark < m1 < ch._open_c
    _stick_sense(rig, r1)
    rig.run_for(0.05)
    assert not ch.trip and ch.sense_last == m1
    t_drop = rig.t_s
    _stick_sense(rig, r2)
    rig.run_for(0.1)
    after = rig.model.driven(1, t_drop + 0.03)
    if trips:
        assert ch.trip and after == [], "no short found on a reading without a fresh peak"
    else:
        assert not ch.trip and len(after) >= 5


# ---- a level change that is no decrease ---------------------------------------------------------
@pytest.mark.req("SR-6")
@pytest.mark.parametrize("how", ["same_duty", "duty_0_after_level_0"])
def test_a_level_change_that_lowers_no_duty_leaves_a_drop_found_at_once(how):
    """Only a lower LEVEL duty lets the hold settle (for three pulses nothing is judged against
    the previous reading). A level whose duty is the one in force (a microamp more, at 20 mA: an
    EMS ramp or a soft start asks for such steps), or one so small that its duty is 0 right
    after level 0 (a low ramp's first tick), lowers nothing: the load then falling from 1 kohm
    to 300 ohm is a short at the very next pulse, and the pulses stop."""
    rig = make_rig("pico")
    trace = PairTrace(rig)
    ch = rig.channel(0)
    plan = modulation.plan(programs.by_id("tens_conventional"))

    def into_the_next_rest():
        n = len(trace.parse()[0])
        run_until(rig, lambda: len(trace.parse()[0]) > n)

    if how == "same_duty":
        duty = ch.lvl.duty_for_ua
        ua = next(u for u in range(LEVEL_UA, LEVEL_UA + 100) if duty(u) == duty(u + 1))
        ch.start(plan, ua)
        rig.run_for(0.2)
        into_the_next_rest()
        ch.set_level_ua(ua + 1)
    else:
        assert ch.lvl.duty_for_ua(50) == 0
        ch.start(plan, 0)
        rig.run_for(0.1)
        into_the_next_rest()
        ch.set_level_ua(50)
        ch.set_level_ua(LEVEL_UA)
        into_the_next_rest()  # one pulse at 20 mA: a fresh peak, the reference for the next
    assert abs(rig.model.channels[0].pulse_log[-1].peak_a_ma - LEVEL_MA) <= 0.2
    n = len(trace.parse()[0])
    rig.model.set_load(1, 300.0)
    rig.run_for(0.1)
    assert ch.trip == 2  # stim.electrode.SHORT
    assert len(trace.parse()[0]) - n == 1


@pytest.mark.req("SR-6")
@pytest.mark.parametrize("after", [4, 5, 6, 8])
def test_after_a_decrease_a_drop_is_found_once_the_hold_has_settled(after):
    """20 mA, then 10 mA into 1 kohm: for three pulses the hold still carries the stronger
    pulses, so no reading is compared with the one before (it settles). From the fourth pulse
    at 10 mA on, the load falling to 300 ohm (a fall the hold's decay cannot explain) is a
    short found at that very pulse, as in steady running: the third pulse's reading, a fresh
    peak at the new level, is its reference."""
    rig = make_rig("pico")
    trace = PairTrace(rig)
    ch = rig.channel(0)
    log = rig.model.channels[0].pulse_log
    ch.start(modulation.plan(programs.by_id("tens_conventional")), LEVEL_UA)
    rig.run_for(0.2)
    n = len(trace.parse()[0])
    run_until(rig, lambda: len(trace.parse()[0]) > n)  # into a rest
    ch.set_level_ua(LEVEL_UA // 2)  # at once: the next pulse is the first at 10 mA
    first = len(trace.parse()[0])
    run_until(rig, lambda: len(trace.parse()[0]) >= first + after - 1)  # after-1 at 10 mA
    assert abs(log[first].peak_a_ma - LEVEL_MA / 2) <= 0.2
    n = len(trace.parse()[0])
    rig.model.set_load(1, 300.0)
    rig.run_for(0.1)
    assert ch.trip == 2  # stim.electrode.SHORT
    assert len(trace.parse()[0]) - n == 1


# ---- a trip, then a stop once the state machine waits at its gate ---------------------------
@pytest.mark.req("SR-6", "SR-8")
def test_stopping_a_tripped_channel_that_already_waits_at_its_gate_returns_at_once():
    """A short trips the channel (the gate is forced: no further pulse starts); the state
    machine finishes its rest and comes round to wait at the gate. stop() then must see that
    it is at a boundary and return, not wait for a boundary that never comes (the watchdog
    would then reset the unit with the fault never logged)."""
    from host_tools.sim.board_model import SHORT_OHM

    rig = FirmwareRig("pico", load_ohm={1: 1000.0})
    rig.boost(True)
    ch = rig.channel(0)
    block = rig.chip.pio[ch.sm_id // 4]
    ch.start(modulation.plan(programs.by_id("tens_conventional")), LEVEL_UA)
    rig.run_for(0.1)
    rig.model.set_load(1, SHORT_OHM)
    for _ in range(200):
        rig.run_for(0.001)
        if ch.trip and block.sm_pc(ch.sm_id % 4) - ch._offset == 7:
            break
    assert ch.trip, "the short did not trip the channel"
    rig.run_for(0.003)
    assert block.sm_pc(ch.sm_id % 4) - ch._offset == 7  # waiting at the gate (wait 0 irq)
    rig.chip.wdt_start(200)  # a stop() that never returns would end in a watchdog reset
    t0 = rig.chip.now
    ch.stop()
    assert rig.chip.now - t0 < rig.chip.us_to_cycles(500)
    b = rig.board["channels"][0]
    assert rig.chip.level(b["phase_a"]) == rig.chip.level(b["phase_b"]) == 0
    assert not ch.running


# ---- an interrupt in the middle of a level change -------------------------------------------
@pytest.mark.req("SR-6")
def test_a_pulse_done_interrupt_during_a_level_change_never_takes_half_its_limits():
    """The pulse-done interrupt puts a prepared level in force together with its open and
    short limits. On the chip (and on this simulated CPU) it can fire between any two
    statements of a level change in task code: whenever it fires, the limits in force must be
    the ones worked out for the current in force, never a mix of an old and a new level's."""
    rig = FirmwareRig("pico", load_ohm={1: 1000.0})
    rig.boost(True)
    ch = rig.channel(0)
    el = rig.import_module("stim.electrode")
    f = rig.board["sysclk_hz"]
    fired: list[int] = []
    mixed: list[tuple] = []

    def after_handler(_handler, t_fired, _t_done):
        fired.append(t_fired)
        ua = ch.delivered
        want = (el.open_counts(ch.scale, ua, ch._sat_c), el.short_counts(ch.scale, ua))
        if (ch._open_c, ch._short_c) != want:
            mixed.append((t_fired, ua, (ch._open_c, ch._short_c), want))

    rig.chip.cpu.irq_observer = after_handler
    ch.start(modulation.plan(programs.by_id("tens_conventional")), 10_000)
    rig.run_for(0.1)
    period = f // 100
    # Two changes in a row, the first close enough to the pulse's end to be left to the
    # interrupt (each takes about 300 us of Python here), the second's preparation then
    # sweeping across the interrupt's instant, 3 us later at every trial.
    for k in range(150):
        call_at = fired[-1] + period - rig.chip.us_to_cycles(800 - 3 * k)
        rig.run_for((call_at - rig.chip.now) / f)
        ua = 10_000 + 1_000 * (k % 3)
        ch.set_level_ua(ua + 500)
        ch.set_level_ua(ua)
        rig.run_for(0.005)
    assert len(fired) > 150
    assert mixed == []


# ---- the allowance after a decrease, on its boundary ----------------------------------------
def _after_a_decrease(rig, ch, on_boundary):
    """Near 150 Hz (the highest rate: the hold keeps the most of a pulse by the next), 20 mA,
    then about 1 mA. Readings are set at the ADC input: m1 for the pulses at 20 mA, m2 from the
    first weak one on: above the open limit for the weak current, below the compliance limit.
    m1 decides whether the first weak pulse's reading may be the residue of the strong ones:
    the residue after one period, r1 = m1 x the hold's decay, is twice over at least the open
    limit (on_boundary: exactly; the rate and the weak level are chosen for that) but alone
    below it. (the weak pulses at the load until the trip)."""
    el = rig.import_module("stim.electrode")
    lvl, sc = ch.lvl, ch.scale

    def want(twice_r, open_c):
        return twice_r == open_c if on_boundary else twice_r >= open_c * 5 // 4

    found = None
    for rate_hz in range(pulse.RATE_MAX_HZ, 100, -1):
        prog = {**programs.by_id("tens_conventional"), "id": "fast", "rate_hz": rate_hz}
        plan = modulation.plan(programs.validate(prog))
        decay = sc.decay_q12(plan[0][0] // 1000)  # as the engine works it out for the plan
        for ua in range(el.MIN_JUDGE_UA, 3 * el.MIN_JUDGE_UA):
            got = lvl.ua_for_duty(lvl.duty_for_ua(ua))
            open_c = el.open_counts(sc, got, 65535)
            r1 = next((c for c in range(4096) if want(2 * _residue(_u16(c), decay), open_c)), None)
            if got >= el.MIN_JUDGE_UA and r1 is not None:
                found = plan, decay, ua, got, open_c, r1
                break
        if found:
            break
    assert found, "no rate and level put the residue where wanted"
    plan, decay, ua, got, open_c, r1 = found

    def residue(raw12: int) -> int:
        return _residue(_u16(raw12), decay)

    ch.start(plan, LEVEL_UA)
    rig.run_for(0.1)
    assert ch._decay[0] == decay and open_c < ch._sat_c
    assert residue(r1) < open_c <= 2 * residue(r1)
    # m2: an open at the weak current, whose own residue no longer reaches the limit twice.
    r2 = next(c for c in range(4096) if _u16(c) >= open_c * 5 // 4)
    assert 2 * residue(r2) < open_c <= _u16(r2) < ch._sat_c and _u16(r1) < ch._open_c
    _stick_sense(rig, r1)
    rig.run_for(0.05)
    assert not ch.trip and ch.sense_last == _u16(r1)

    def after_handler(_handler, _t_fired, _t_done):
        if ch.delivered == got:  # the handler that put 1 mA in force read the last strong pulse
            _stick_sense(rig, r2)

    rig.chip.cpu.irq_observer = after_handler
    t_dec = rig.t_s
    ch.set_level_ua(ua)
    if ch.delivered == got:  # in force at once, the channel resting: the next pulse is weak
        _stick_sense(rig, r2)
    rig.run_for(0.1)
    return [p for p in rig.model.driven(1, t_dec) if p.drive_ma < 5.0]


@pytest.mark.req("SR-6")
@pytest.mark.parametrize("on_boundary", [False, True], ids=["inside", "on_the_boundary"])
def test_after_a_decrease_only_a_reading_the_residue_may_explain_is_let_pass(on_boundary):
    """Right after the current is turned down, the hold may still carry the strong pulses'
    peak, so the first weak pulse's reading above its open limit is let pass while the
    previous reading, decayed over the period, reaches that limit twice over (on the boundary
    too: at exactly twice). The second weak pulse's residue is that first weak reading's,
    too small to explain it: the same reading is an open there, and the channel stops. One
    pulse let pass, not the three the allowance lasts at most, and not none."""
    rig = FirmwareRig("pico", load_ohm={1: 3000.0})
    rig.boost(True)
    ch = rig.channel(0)
    weak = _after_a_decrease(rig, ch, on_boundary)
    assert ch.trip == 1  # stim.electrode.OPEN
    assert len(weak) == 2, [(p.t_a, p.drive_ma) for p in weak]


# ---- a restart judges its first pulses as a first start does -------------------------------
def _pulses_until_a_drop_trips(rig, ch, level_ua):
    """Start ch at level_ua (100 Hz); after the first pulse's reading m1, every reading sits
    on the fresh-peak mark below it (what the hold keeps of m1 after a period, plus a quarter
    of the way back up; the ADC code at or just below): no fresh peak where the first pulse
    made one, a short (SR-6).
    The pulses at the load from the start until the trip."""
    rig.model.adc_faults.clear()
    seen: list[int] = []

    def after_handler(_handler, _t_fired, _t_done):
        if seen or not ch.running:
            return
        m1 = ch.sense_last
        seen.append(m1)
        mark = _fresh_mark(m1, ch._decay[0])
        _stick_sense(rig, max(c for c in range(4096) if _u16(c) <= mark))  # on it or just below

    rig.chip.cpu.irq_observer = after_handler
    t0 = rig.t_s
    ch.start(modulation.plan(programs.by_id("tens_conventional")), level_ua)
    rig.run_for(0.1)
    rig.chip.cpu.irq_observer = None
    assert seen and ch.trip == 2  # stim.electrode.SHORT
    return rig.model.driven(1, t0)


@pytest.mark.req("SR-6")
@pytest.mark.parametrize("level_ua", [LEVEL_UA, LEVEL_UA // 4], ids=["same_level", "lower"])
def test_a_restarted_channel_judges_its_first_pulses_as_a_first_start(level_ua):
    """A channel's first start finds a load that fell (no fresh peak) at its second pulse.
    Started again after a run and a stop, at the same level or a quarter of it, it must find
    it at the same pulse: the stop's decrease to zero leaves no settling allowance behind,
    and the last run's reading, long gone from the hold, is no reference for the first."""
    rig = FirmwareRig("pico", load_ohm={1: 1000.0})
    rig.boost(True)
    ch = rig.channel(0)
    first = _pulses_until_a_drop_trips(rig, ch, level_ua)
    assert len(first) == 2, [(p.t_a, p.drive_ma) for p in first]
    ch.stop()
    rig.model.adc_faults.clear()  # the real load again
    ch.start(modulation.plan(programs.by_id("tens_conventional")), LEVEL_UA)
    rig.run_for(0.3)
    assert not ch.trip
    ch.stop()
    rig.run_for(0.2)
    again = _pulses_until_a_drop_trips(rig, ch, level_ua)
    assert len(again) == 2, [(p.t_a, p.drive_ma) for p in again]

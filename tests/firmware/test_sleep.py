"""Switched off, the chip sleeps (stim.app `_sleep`, machine.lightsleep): the CPU stays nearly
idle, POWER held still switches the unit on with the same gesture timing (SR-11), nothing
reaches the pins and the watchdog never resets the chip across the sleeps (SR-8); running, the
CPU stays at most 15 % busy. All on the simulated chip with its CPU model, observed at the
pins, the load model and the chip's own cycle counts."""

from __future__ import annotations

import json

import pytest

from host_tools.boards import load_board
from host_tools.sim.unit import SimulatedUnit

POWER_LONG_S = 1.5  # stim.gestures.POWER_LONG_MS
BUZZER = 20  # board pico


def _unit(make_unit, firmware_dir=None, **kw) -> SimulatedUnit:
    b = load_board("pico")
    if firmware_dir is not None:
        kw["firmware_dir"] = firmware_dir
    return make_unit(
        b, files={"/board.json": json.dumps(b)}, load_ohm={1: 1000.0, 2: 1000.0}, **kw
    )


def _busy(unit, t0, t1):
    """CPU busy fraction between t0 and t1 (simulated seconds): task code and interrupt
    handlers over every cycle, asleep included."""
    cpu = unit.chip.cpu
    unit.run_until(t0)
    b0, i0, s0 = cpu.busy_cycles, cpu.idle_cycles, cpu.asleep_cycles
    unit.run_until(t1)
    b = cpu.busy_cycles - b0
    return b / (b + cpu.idle_cycles - i0 + cpu.asleep_cycles - s0)


def _outputs(unit):
    b = unit.board
    pins = [b["boost_en"]]
    for ch in b["channels"]:
        pins += [ch["phase_a"], ch["phase_b"]]
    return pins


def _session_then_off(unit):
    """POWER held at 0.5 s (on), four PLUS presses from 3 s (a session), POWER held at 8 s
    (off, 1.7 s later)."""
    unit.press("power", at=0.5, hold_s=1.7)
    for k in range(4):
        unit.press("plus", at=3.0 + 0.4 * k)
    unit.press("power", at=8.0, hold_s=1.7)


def _tone_starts(unit):
    """Simulated times at which the buzzer's tone starts (its PWM duty goes from 0 to more)."""
    starts = []
    last = [0.0]

    def on_analog(n, t):
        if n == BUZZER:
            d = unit.chip.analog_level(n, t)
            if d > 0 and last[0] == 0:
                starts.append(t / unit.chip.sysclk_hz)
            last[0] = d

    unit.chip.analog_observers.append(on_analog)
    return starts


@pytest.mark.req("SR-8")
def test_switched_off_the_chip_sleeps_with_every_output_low_and_the_cpu_nearly_idle(make_unit):
    unit = _unit(make_unit)
    seen = []
    outs = set(_outputs(unit))
    unit.chip.pin_observers.append(lambda n, lvl, t: n in outs and lvl and seen.append((n, t)))
    busy = _busy(unit, 3.0, 33.0)
    cpu = unit.chip.cpu
    assert busy <= 0.02  # issue target: at most 2 % with the unit switched off
    assert cpu.lightsleeps >= 30 * 3  # it sleeps in turns of 250 ms
    assert cpu.asleep_cycles > 0.9 * unit.chip.cycles(30.0)
    assert seen == []  # no output pin rose: SR-8
    assert [b["cause"] for b in unit.logs("boot")] == ["power_on"]  # the watchdog never fired


@pytest.mark.req("SR-8")
def test_switched_off_after_a_session_the_chip_sleeps_again_once_its_patterns_end(make_unit):
    """On, a session, off: the switch-on, step and switch-off patterns played on the buzzer.
    Once the last one ends the chip sleeps as it does after boot."""
    unit = _unit(make_unit)
    _session_then_off(unit)
    unit.run_until(13.0)
    slept = unit.chip.cpu.lightsleeps
    assert _busy(unit, 13.0, 23.0) <= 0.02
    assert unit.chip.cpu.lightsleeps - slept >= 10 * 3  # in turns of 250 ms


@pytest.mark.req("SR-11")
def test_power_held_wakes_the_chip_and_switches_on_after_the_same_hold_as_awake(
    make_unit, fw_copy
):
    """The power-on pattern's first tone comes POWER_LONG_MS after the press, whether the chip
    was asleep (this firmware) or awake (a copy that never sleeps); a hold just short of it
    switches nothing on."""
    app = fw_copy / "stim" / "app.py"
    text = app.read_text()
    assert "        self.hw.sleep(_SLEEP_MS)\n" in text
    app.write_text(text.replace("        self.hw.sleep(_SLEEP_MS)\n", "        pass\n"))
    delays = {}
    for name, fw in (("asleep", None), ("awake", fw_copy)):
        unit = _unit(make_unit, firmware_dir=fw)
        tones = _tone_starts(unit)
        unit.press("power", at=5.013, hold_s=POWER_LONG_S - 0.06)  # too short: stays off
        unit.run_until(8.0)
        assert tones == [] and not unit.logs("power")
        slept = unit.chip.cpu.lightsleeps
        unit.press("power", at=10.013, hold_s=1.7)
        unit.run_until(13.0)
        assert [e["on"] for e in unit.logs("power")] == [True]
        delays[name] = tones[0] - 10.013
        assert (slept > 0) == (name == "asleep")
    # Asleep, the hold counts from the wake, which is the press; awake, from the sample
    # before it (up to a poll period earlier): both within a poll period of POWER_LONG_MS,
    # plus the Python that logs the switch and starts the pattern.
    assert POWER_LONG_S <= delays["asleep"] <= POWER_LONG_S + 0.010
    assert POWER_LONG_S - 0.010 <= delays["awake"] <= POWER_LONG_S + 0.010


@pytest.mark.req("SR-11")
def test_power_pressed_while_the_unit_starts_is_timed_from_the_press(make_unit):
    """stim.main watches POWER from just after the board file is read (hw.watch_power), so a
    press while the rest of the app is still being built, three quarters of the way from the
    boot line to the app's first, is timed from its edge: the power-on pattern's first tone
    comes POWER_LONG_MS after the press, and a hold 0.1 s longer switches the unit on, as on a
    unit that is up."""
    first = _unit(make_unit)
    first.run_until(1.5)
    t_boot = first.logs("boot")[0]["sim_t"]
    t_app = first.logs("app_start")[0]["sim_t"]
    t_press = t_boot + 0.75 * (t_app - t_boot)
    unit = _unit(make_unit)
    tones = _tone_starts(unit)
    unit.press("power", at=t_press, hold_s=POWER_LONG_S + 0.1)
    unit.run_until(t_press + 2.5)
    assert [e["on"] for e in unit.logs("power")] == [True]
    assert POWER_LONG_S <= tones[0] - t_press <= POWER_LONG_S + 0.010


@pytest.mark.req("SR-8")
@pytest.mark.req("SR-7")
def test_sessions_before_and_after_sleeping_deliver_and_stop_as_ever(make_unit):
    """A session, off, a minute asleep, on again: the second session delivers like the first,
    POWER stops it within 20 ms, and nothing reset the chip on the way."""
    unit = _unit(make_unit)
    _session_then_off(unit)
    unit.run_until(70.0)
    off = [p for ch in unit.model.channels for p in ch.pulse_log if 8.05 < p.t_a < 70.0]
    assert off == []
    unit.press("power", at=70.0, hold_s=1.7)
    for k in range(4):
        unit.press("plus", at=72.5 + 0.4 * k)
    unit.press("power", at=78.0, hold_s=0.1)  # stop
    unit.run_until(79.0)
    for ch in unit.model.channels:
        before = [p for p in ch.pulse_log if 3.0 < p.t_a < 8.0]
        after = [p for p in ch.pulse_log if 72.5 < p.t_a < 77.5]
        assert len(after) == pytest.approx(len(before), abs=5)  # 100 Hz both times
        assert max(p.t_a for p in ch.pulse_log) < 78.0 + 0.020  # SR-7
    assert [b["cause"] for b in unit.logs("boot")] == ["power_on"]


def test_a_host_line_wakes_the_sleeping_chip_and_is_answered_at_once(make_unit):
    """USB bytes end a lightsleep (the port keeps the USB clock while a host has the device
    configured): the reply comes within a cycle, not after the rest of a 250 ms sleep."""
    unit = _unit(make_unit)
    unit.run_until(5.1)
    assert unit.chip.cpu.lightsleeps > 0
    got = []
    unit.console.listeners.append(
        lambda line, rec: line.startswith('{"r"') and got.append(unit.chip.t_s)
    )
    t = unit.chip.t_s
    unit.send("ping\n")
    unit.run_for(1.0)
    assert got and got[0] - t < 0.030


def test_running_tens_on_two_channels_keeps_the_cpu_at_most_15_percent_busy(make_unit):
    unit = _unit(make_unit)
    unit.press("power", at=0.5, hold_s=1.7)
    for k in range(6):
        unit.press("plus", at=3.0 + 0.4 * k)
    busy = _busy(unit, 10.0, 30.0)
    assert all(len([p for p in ch.pulse_log if p.t_a > 10.0]) > 1900 for ch in unit.model.channels)
    assert busy <= 0.15
    assert unit.chip.cpu.lightsleeps == 0  # never asleep with an output on

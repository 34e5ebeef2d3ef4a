"""stim/app.py: the tasks that wire the hardware layer to the unit. Everything the app works
with is handed in, so here hardware, unit, wearer, host link and watchdog are stand-ins
(pytest-mock) and each test checks what one task cycle passes on."""

from __future__ import annotations

import json

import pytest

from host_tools.sim.rig import FirmwareRig


@pytest.fixture
def rig():
    return FirmwareRig("pico")


@pytest.fixture
def parts(mocker, rig):
    stimulator = rig.import_module("stim.stimulator")
    hw = mocker.Mock(name="hw")
    hw.buttons_down.return_value = 0b0100  # PLUS down
    unit = mocker.Mock(name="unit")
    unit.locked = False
    unit.asking = 0  # no host asks for consent (SR-15)
    unit.ended_until = 0
    unit.battery.state = 0
    unit.state.return_value = 2  # running
    unit.player.tick.return_value = 0  # no feedback pattern playing
    unit.cfg = {"feedback": "both"}
    unit.stim.ch = [stimulator.ChannelState(0), stimulator.ChannelState(0)]
    wearer = mocker.Mock(name="wearer")
    wearer.acknowledging.return_value = False
    wearer.quiet.return_value = False  # a button is down: the sample counts
    host = mocker.Mock(name="host")
    start_watchdog = mocker.Mock(name="start_watchdog")  # arms it; returns the watchdog
    return hw, unit, wearer, host, start_watchdog


@pytest.fixture
def app(rig, parts):
    return rig.import_module("stim.app").App(*parts)


def test_the_power_button_interrupt_goes_to_the_wearer(app, parts):
    hw, _unit, wearer, _host, _wd = parts
    hw.on_power_press.assert_called_once_with(wearer.on_power_irq)


def _run_to_ms(rig, t_ms):
    """Run the clock to half a millisecond past tick t_ms, so that the app's next ticks_ms()
    reads t_ms whatever its own few microseconds of work before it."""
    rig.run_for((t_ms + 0.5 - rig.t_s * 1000.0) / 1000.0)


def _next_sample_after(rig, app, gap_ms):
    """A buttons cycle that reads ticks_ms exactly gap_ms after the last one did."""
    _run_to_ms(rig, int(rig.t_s * 1000.0) + gap_ms)
    app.buttons_cycle()


@pytest.mark.req("SR-11")
@pytest.mark.parametrize(
    "gap_ms, handed_ms",
    [(10, 10), (37, 37), (1, 1), (0, 0), (999, 999), (1000, 10), (5000, 10)],
)
def test_a_buttons_cycle_hands_the_time_since_the_last_one(app, parts, rig, gap_ms, handed_ms):
    """The gestures count a hold in the time that really passed between two samples (a pass
    that took 37 ms, the first sample after a wake), to the millisecond. A gap of a second or
    more is a stall, not a hold: it counts as one poll period (gestures.POLL_MS, 10 ms)."""
    hw, _unit, wearer, _host, _wd = parts
    _next_sample_after(rig, app, 10)
    _next_sample_after(rig, app, gap_ms)
    bits, dt = wearer.sample.call_args.args
    assert bits == 0b0100 and dt == handed_ms


def test_a_buttons_cycle_with_nothing_down_or_on_its_way_samples_nothing(app, parts, rig):
    hw, _unit, wearer, _host, _wd = parts
    hw.buttons_down.return_value = 0
    wearer.quiet.return_value = True
    rig.run_for(0.010)
    app.buttons_cycle()
    wearer.quiet.assert_called_once_with(0)
    wearer.sample.assert_not_called()


def test_a_control_cycle_ticks_the_unit_with_the_time_now(app, parts, rig):
    _hw, unit, _wearer, _host, _wd = parts
    rig.run_for(0.023)
    app.control_cycle()
    (now,) = unit.tick.call_args.args
    assert 23 <= now <= rig.import_module("time").ticks_ms()


@pytest.mark.req("SR-8")
def test_the_watchdog_is_fed_only_while_every_task_completes_cycles(app, parts):
    *_, start_watchdog = parts
    app.start_watchdog()
    app.start_watchdog()  # armed once
    start_watchdog.assert_called_once_with(2000)
    assert not app.healthy()  # no task has run yet
    for i in range(2):  # the 10 ms cycle and the battery task
        app._beats[i] += 1
    assert app.healthy()
    app._fed[:] = app._beats
    app._beats[0] += 1  # the cycle ran again, the battery task did not
    assert not app.healthy()


def test_the_leds_show_the_state_and_each_channels_fault(app, parts):
    hw, unit, _wearer, _host, _wd = parts
    unit.stim.ch[0].state = 2  # delivering
    unit.stim.ch[1].fault = 1  # open
    app.leds_cycle(1)
    hw.status_led.assert_called_once_with(0, 1, 0)  # running: steady green
    assert hw.channel_led.call_args_list[0].args == (0, 1)
    unit.state.return_value = 0  # off: no channel LED, whatever they hold
    hw.channel_led.reset_mock()
    app.leds_cycle(2)
    assert [c.args for c in hw.channel_led.call_args_list] == [(0, 0), (1, 0)]


def test_a_task_keeps_its_rate_whatever_its_own_work_takes(app, rig):
    period = 10
    d0 = app._delay(1, period)
    rig.run_for(0.004)  # 4 ms of work: the next sleep is 4 ms shorter than a period
    assert app._delay(1, period) - d0 == pytest.approx(period - 4, abs=1)
    rig.run_for(0.050)  # overran: starts at once, no catching up
    assert app._delay(1, period) == 0
    assert app._delay(1, period) == pytest.approx(period, abs=1)


def test_a_task_a_millisecond_late_starts_at_once_and_does_not_catch_up(app, rig):
    """The smallest overrun: the next cycle was due 1 ms ago. It starts at once (a sleep of
    0, never a negative one), and the one after comes a whole period after it, not 1 ms
    sooner to make up for it."""
    period = 10
    d0 = app._delay(1, period)  # the next cycle begins d0 from now
    due_ms = int(rig.t_s * 1000.0) + d0 + period  # and the one after a period later
    _run_to_ms(rig, due_ms + 1)  # that cycle's work ends 1 ms late
    assert app._delay(1, period) == 0
    assert app._delay(1, period) == period


def _battery_cycles(rig, app, n):
    """Run the battery task on the rig's asyncio (MicroPython's, on the virtual clock) for its
    first n cycles, a second apart (its own sleep, _BATTERY_MS)."""
    asyncio = rig.import_module("asyncio")

    async def main():
        asyncio.create_task(app.battery_task())
        await asyncio.sleep_ms(n * 1000 - 500)

    asyncio.run(main())


@pytest.mark.req("SR-10")
def test_the_battery_is_handed_each_reading_with_the_second_since_the_last(app, parts, rig):
    """Read once a second, the battery filter (stim.battery: a time constant in seconds) is
    handed 1.0 s with each reading, and the charger the time of it."""
    hw, unit, _wearer, _host, _wd = parts
    hw.battery_v.return_value = 3.9
    unit.battery_reading.return_value = None
    _battery_cycles(rig, app, 3)
    assert [c.args[:2] for c in unit.battery_reading.call_args_list] == [(3.9, 1.0)] * 3
    assert [c.args[0] for c in unit.charger.call_args_list] == [hw.charging.return_value] * 3


@pytest.mark.req("SR-10")
def test_a_standing_battery_is_logged_once_a_minute(app, parts, rig, capsys):
    """A reading that changes the state is logged at once (stim.unit says which); one that
    changes nothing is logged once a minute, with its volts and state, not every second."""
    hw, unit, _wearer, _host, _wd = parts
    hw.battery_v.return_value = 3.9
    unit.battery_reading.return_value = None
    unit.battery.state = 0
    capsys.readouterr()
    _battery_cycles(rig, app, 150)  # 150 s
    lines = [json.loads(x[x.index("{") :]) for x in capsys.readouterr().out.splitlines()]
    standing = [x for x in lines if x.get("ev") == "battery"]
    assert len(standing) == 2  # a minute after the start, and another minute on
    assert all(x["v"] == 3.9 and x["state"] == "ok" and x["lvl"] == "info" for x in standing)


@pytest.mark.req("FR-7")
def test_the_session_finished_pattern_shows_until_its_end_and_not_at_it(app, parts, rig):
    """unit.ended_until is the first millisecond without the pattern. 150 ms into a 2 s
    period the idle blink is green and the pattern's three flashes (100 ms on, 100 ms off)
    are off, so the status LED tells which one shows, to the millisecond."""
    hw, unit, _wearer, _host, _wd = parts
    unit.state.return_value = rig.import_module("stim.session").IDLE
    t_ms = (int(rig.t_s * 1000.0) // 2000 + 1) * 2000 + 150
    _run_to_ms(rig, t_ms)
    unit.ended_until = t_ms + 1  # one more millisecond of the pattern: off
    app.leds_cycle(1)
    hw.status_led.assert_not_called()  # the LED was off and stays off
    unit.ended_until = t_ms  # over: the idle blink's green
    app.leds_cycle(1)
    assert int(rig.t_s * 1000.0) == t_ms  # both in the same millisecond
    hw.status_led.assert_called_once_with(0, 1, 0)

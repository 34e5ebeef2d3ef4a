"""The power model (host_tools/sim/power.py): the cited currents, and a meter whose figures
follow from what the simulated unit did: its CPU's cycles, the charge through the loads, the
lights that were on. The output's share is checked against the program's own parameters,
worked out here independently of the model's bookkeeping."""

from __future__ import annotations

import json

import pytest

from host_tools.boards import board_path, load_board
from host_tools.dev import bench_battery
from host_tools.sim import power
from host_tools.sim.unit import SimulatedUnit


def test_the_cpu_currents_are_the_measured_ones_at_the_measured_clocks():
    to_cell = power.SUPPLY_V / power.BATTERY_V
    assert power.cpu_ma(125, 1, 0, 0) == pytest.approx(21.24 * to_cell)
    assert power.cpu_ma(125, 0, 1, 0) == pytest.approx(18.80 * to_cell)
    assert power.cpu_ma(64, 1, 0, 0) == pytest.approx(14.45 * to_cell)
    assert power.cpu_ma(125, 0, 0, 1) == pytest.approx(1.29 * to_cell)  # lightsleep
    # between measured clocks: in between, and rising with the clock
    mid = power.cpu_ma(100, 0, 1, 0)
    assert power.cpu_ma(64, 0, 1, 0) < mid < power.cpu_ma(125, 0, 1, 0)


def test_the_board_files_give_capacity_and_boost_efficiency():
    assert power.power_keys(str(board_path("wearable_v1"))) == (600.0, 0.85)
    assert power.power_keys(None) == (500.0, 0.8)  # the validator's defaults


def _running(ma_steps: int):
    b = load_board("pico")
    unit = SimulatedUnit(b, files={"/board.json": json.dumps(b)}, load_ohm={1: 1000.0, 2: 1000.0})
    meter = power.PowerMeter(unit, *power.power_keys(str(board_path("pico"))))
    unit.press("power", at=2.0, hold_s=1.7)
    for k in range(ma_steps):
        unit.press("plus", at=4.5 + 0.25 * k)
    return unit, meter


def test_the_output_share_is_the_boost_refilling_every_pulse_from_its_rail():
    """TENS conventional (100 Hz, 100 us phases) at 30 mA into 1 kohm on two channels: each
    phase takes 30 mA for 100 us from the 80 V rail, through a boost 80 % efficient."""
    unit, meter = _running(20)  # 20 steps of 1.5 mA
    with unit:
        unit.run_until(15.0)
        meter.read()
        unit.run_until(25.0)
        r = meter.read()
    want_w = 80.0 * 0.030 * 2 * 100e-6 * 100 * 2 / 0.8  # V * I * (2 phases) * rate * channels
    want_ma = want_w / power.BATTERY_V * 1000 + power.BOOST_QUIESCENT_MA
    assert r.ma("output") == pytest.approx(want_ma, rel=0.02)
    # running: the status LED (steady green) and both channel LEDs are lit
    assert r.ma("lights") == pytest.approx(power.rail_to_cell(3 * power.LED_MA), rel=0.02)
    assert r.asleep == 0 and 0 < r.busy < 0.15


def test_switched_off_the_drain_is_the_sleeping_board():
    b = load_board("pico")
    unit = SimulatedUnit(b, files={"/board.json": json.dumps(b)})
    meter = power.PowerMeter(unit)
    with unit:
        unit.run_until(5.0)  # booted, switched off
        meter.read()
        unit.run_until(25.0)
        r = meter.read()
    assert r.ma("output") == 0 and r.ma("lights") == 0
    assert r.asleep > 0.97 and r.busy < 0.02
    floor = power.cpu_ma(125, 0, 0, 1)  # asleep all the time
    assert floor < r.ma("cpu") < floor + 0.5


def test_the_battery_bench_standby_row_states_days_per_charge():
    s = bench_battery.measure_standby()
    assert s["busy_pct"] <= 2.0 and s["asleep_pct"] > 95
    # 1000 mAh (board pico) over the measured drain
    assert s["days"] == pytest.approx(1000 / s["drain_ma"] / 24, rel=0.01)

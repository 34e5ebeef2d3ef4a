"""The board model turns pin levels into load currents, electrode voltages and ADC readings.

The output stage is driven through the fake modules exactly as firmware drives it (PIO program
on the bridge pins, LEVEL PWM, BOOST_EN), and the tests read the model's observations and the
ADC the firmware would read.
"""

from __future__ import annotations

import math

import pytest

from host_tools.boards import load_board
from host_tools.rp2sim.chip import Chip
from host_tools.rp2sim.fakes import build_modules
from host_tools.rp2sim.vfs import FlashFs
from host_tools.sim.board_model import OPEN_OHM, SHORT_OHM, BoardModel

pytestmark = pytest.mark.req("FR-17")


class Rig:
    def __init__(self, board_name="pico", load=1000.0):
        self.board = load_board(board_name)
        # The test drives the pins itself, as a probe would: its calls cost no CPU time.
        self.chip = Chip(self.board["sysclk_hz"], cpu_scale=0)
        self.model = BoardModel(self.chip, self.board, load_ohm={1: load, 2: load})
        self.m = build_modules(self.chip, FlashFs(), None)
        self.ch = self.board["channels"][0]

    def level(self, ma):
        m = self.m["machine"]
        cal = self.board["analog"]["level_calibration"]
        # linear boards only in these tests: duty = ma / full scale
        assert len(cal) == 2
        duty = ma / self.board["analog"]["level_full_scale_ma"]
        m.PWM(m.Pin(self.ch["level_pwm"]), freq=100_000, duty_u16=int(duty * 65535))

    def boost(self, on):
        m = self.m["machine"]
        m.Pin(self.board["boost_en"], m.Pin.OUT, value=1 if on else 0)

    def phase(self, a, b):
        m = self.m["machine"]
        m.Pin(self.ch["phase_a"], m.Pin.OUT, value=a)
        m.Pin(self.ch["phase_b"], m.Pin.OUT, value=b)

    def run_us(self, us):
        self.chip.advance_to(self.chip.now + self.chip.us_to_cycles(us))

    def pulse(self, w_us=100, gap_us=20):
        self.phase(1, 0)
        self.run_us(w_us)
        self.phase(0, 0)
        self.run_us(gap_us)
        self.phase(0, 1)
        self.run_us(w_us)
        self.phase(0, 0)

    def sense_volts(self):
        m = self.m["machine"]
        raw = m.ADC(self.ch["sense_adc"]).read_u16()
        return raw / 65535 * self.board["analog"]["adc_vref_v"]


def test_current_is_set_current_into_a_good_load():
    rig = Rig(load=1000.0)
    rig.boost(True)
    rig.run_us(20_000)  # boost rises with its time constant
    rig.level(30.0)
    rig.pulse()
    cm = rig.model.channels[0]
    p = cm.pulse_log[-1]
    assert p.peak_a_ma == pytest.approx(30.0, rel=2e-3)
    assert p.peak_b_ma == pytest.approx(30.0, rel=2e-3)
    assert p.width_a_s == pytest.approx(100e-6) and p.gap_s == pytest.approx(20e-6)
    assert p.charge_a_c == pytest.approx(30e-3 * 100e-6, rel=2e-3)
    assert abs(cm.net_charge_c) < 1e-15


def test_compliance_limits_current_into_a_high_load():
    rig = Rig(load=5000.0)
    rig.boost(True)
    rig.run_us(30_000)
    rig.level(60.0)
    rig.pulse()
    p = rig.model.channels[0].pulse_log[-1]
    # 80 V / 5 kohm = 16 mA, less than the 60 mA asked for
    assert p.peak_a_ma == pytest.approx(16.0, rel=1e-3)


def test_no_current_without_boost():
    rig = Rig()
    rig.level(30.0)
    rig.pulse()
    assert rig.model.channels[0].pulse_log[-1].peak_a_ma == 0.0


def test_lifted_electrode_gives_compliance_voltage_and_no_current():
    rig = Rig()
    rig.boost(True)
    rig.run_us(30_000)
    rig.level(30.0)
    rig.model.set_load(1, OPEN_OHM)
    rig.pulse()
    p = rig.model.channels[0].pulse_log[-1]
    assert p.peak_a_ma < 1e-3
    # the peak-hold read right after the pulse shows the compliance voltage through the divider
    volts = rig.sense_volts() * rig.board["analog"]["sense_divider"]
    assert volts == pytest.approx(80.0, rel=0.01)


def test_shorted_electrode_reads_near_zero_volts():
    rig = Rig()
    rig.boost(True)
    rig.run_us(30_000)
    rig.level(30.0)
    rig.model.set_load(1, SHORT_OHM)
    rig.pulse()
    assert rig.sense_volts() * rig.board["analog"]["sense_divider"] < 0.5


def test_peak_hold_decays_with_the_board_time_constant():
    rig = Rig(load=1000.0)
    rig.boost(True)
    rig.run_us(30_000)
    rig.level(30.0)
    rig.pulse()
    v0 = rig.sense_volts()
    tau_us = rig.board["analog"]["sense_hold_tau_ms"] * 1000
    rig.run_us(tau_us)
    assert rig.sense_volts() == pytest.approx(v0 * math.exp(-1), rel=0.01)
    assert v0 * rig.board["analog"]["sense_divider"] == pytest.approx(30.0, rel=0.01)


def test_shoot_through_is_seen_as_an_sr5_violation():
    rig = Rig()
    rig.phase(1, 1)
    assert rig.model.violations and rig.model.violations[0]["rule"] == "SR-5"


def test_battery_and_boost_adc_read_through_their_dividers():
    rig = Rig()
    m = rig.m["machine"]
    rig.model.set_battery(3.6)
    raw = m.ADC(rig.board["battery_adc"]).read_u16()
    volts = raw / 65535 * 3.3 * rig.board["analog"]["battery_divider"]
    assert volts == pytest.approx(3.6, abs=0.01)
    rig.boost(True)
    rig.run_us(50_000)
    raw = m.ADC(rig.board["boost_adc"]).read_u16()
    assert raw / 65535 * 3.3 * rig.board["analog"]["boost_divider"] == pytest.approx(80, abs=0.5)


def test_buttons_pull_their_pins_low_while_pressed():
    rig = Rig()
    m = rig.m["machine"]
    pin = m.Pin(rig.board["buttons"]["plus"], m.Pin.IN, m.Pin.PULL_UP)
    assert pin.value() == 1
    rig.model.press("plus")
    assert pin.value() == 0
    rig.model.release("plus")
    assert pin.value() == 1


def test_adc_stuck_at_a_rail_and_noise_options():
    rig = Rig()
    m = rig.m["machine"]
    adc = m.ADC(rig.ch["sense_adc"])
    rig.model.adc_faults[rig.ch["sense_adc"] - 26] = 3.3
    assert adc.read_u16() == 65535
    del rig.model.adc_faults[rig.ch["sense_adc"] - 26]
    rig.model.adc_noise_v = 0.01
    readings = {adc.read_u16() for _ in range(50)}
    assert len(readings) > 5

"""Random use of the whole unit never breaks a safety requirement (hypothesis, stateful).

Random presses and holds of the four buttons, electrode lifts, shorts and partial lifts, and
battery sags are applied to the real firmware on the simulated pico; after every step the board
model and the pins are checked: no shoot-through or unbalanced pulse (SR-4, SR-5, from the load
model), never above the board's peak cap (SR-3), every POWER press stops all output within
20 ms (SR-7), no drive into an open or shorted electrode for longer than one pulse period
(SR-6), nothing driven while the battery is cut off after its ramp down (SR-10).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from host_tools.sim.unit import SimulatedUnit

BUTTONS = ("power", "mode", "plus", "minus")
HOLDS_S = (0.05, 0.1, 0.3, 1.1, 1.7, 3.5)
LOADS = (1000.0, 1800.0, 2600.0, 1e9, 1.0)
BATTERY_V = (3.9, 3.6, 3.45, 3.2)
SLOWEST_PERIOD_S = 0.5  # 2 Hz, the slowest program
PROBE_MA = 1.0  # stim/electrode.py: the electrode check's probe pulses


def _driven(unit, ch, t0, t1=1e9):
    return unit.model.driven(ch, t0, t1)


class UnitMachine(RuleBasedStateMachine):
    @initialize()
    def boot(self):
        self.unit = SimulatedUnit("pico", load_ohm={1: 1000.0, 2: 1000.0}, record_pulses=True)
        self.unit.press("power", at=0.5, hold_s=1.7)
        self.unit.run_until(2.2)
        self.checked_to = 0.0
        self.power_presses: list[float] = []
        self.bad_load_since = {1: None, 2: None}
        self.cap_ma = self.unit.board["limits"]["max_peak_ma"]

    def teardown(self):
        self.unit.close()

    @rule(button=st.sampled_from(BUTTONS), hold=st.sampled_from(HOLDS_S))
    def press(self, button, hold):
        t = self.unit.chip.t_s + 0.01
        self.unit.press(button, at=t, hold_s=hold)
        if button == "power":
            self.power_presses.append(t)
        self.unit.run_until(t + hold + 0.2)

    @rule(n=st.integers(1, 6))
    def plus_presses(self, n):
        t = self.unit.chip.t_s + 0.01
        for i in range(n):
            self.unit.press("plus", at=t + 0.3 * i)
        self.unit.run_until(t + 0.3 * n + 0.5)

    @rule(ch=st.sampled_from((1, 2)), ohm=st.sampled_from(LOADS))
    def load(self, ch, ohm):
        t = self.unit.chip.t_s
        self.unit.model.set_load(ch, ohm)
        bad = ohm > 1e6 or ohm < 10
        self.bad_load_since[ch] = t if bad else None
        self.unit.run_for(0.3)

    @rule(v=st.sampled_from(BATTERY_V))
    def battery(self, v):
        self.unit.model.set_battery(v)
        self.unit.run_for(0.5)

    @rule(s=st.sampled_from((0.5, 2.0, 6.0)))
    def wait(self, s):
        self.unit.run_for(s)

    @invariant()
    def safe(self):
        unit = self.unit
        assert unit.model.violations == [], unit.model.violations[:3]
        for cm in unit.model.channels:
            assert cm.max_peak_ma <= self.cap_ma + 1e-6
        now = unit.chip.t_s
        # SR-7: nothing driven from 20 ms after a POWER press until the press has ended
        for t in self.power_presses:
            for ch in (1, 2):
                late = _driven(unit, ch, t + 0.020, t + 0.15)
                assert not late, "ch%d drove %.1f ms after POWER" % (ch, (late[0].t_a - t) * 1e3)
        self.power_presses = [t for t in self.power_presses if t > now - 1.0]
        # SR-6: no drive into an open or shorted electrode beyond the slowest pulse period
        for ch in (1, 2):
            t_bad = self.bad_load_since[ch]
            if t_bad is not None and now - t_bad > SLOWEST_PERIOD_S + 0.05:
                # (a PLUS press may start a new check: its probe pulses are 1 mA at most)
                judged = [
                    p
                    for p in _driven(unit, ch, t_bad + SLOWEST_PERIOD_S + 0.01)
                    if p.drive_ma > PROBE_MA
                ]
                assert not judged, "ch%d drove %.1f mA into a bad load" % (ch, judged[0].drive_ma)


UnitMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
TestUnit = pytest.mark.req("SR-3", "SR-4", "SR-5", "SR-6", "SR-7", "SR-10", "SR-11")(
    UnitMachine.TestCase
)

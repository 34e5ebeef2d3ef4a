"""The PIO fast-forward is exact at the level of the whole unit: scenarios run twice, on two
independent simulated units, one replaying steady PIO loops and one interpreting every PIO
instruction, give the same pin edges (to the cycle), the same interrupt handler timings, the same
board-model pulses, accounts and violations, the same trace records and summaries, the same
console and the same CPU busy and idle cycles (host_tools/testing/bothways.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from host_tools.sim import scenario
from host_tools.testing import bothways

ROOT = Path(__file__).resolve().parents[2]

# Steady trains (replayed for seconds at a time), ramps and level changes between pulses, a
# lift and a short that trip a channel inside its pulse interrupt, POWER presses, Ctrl-C and a
# soft reset, the host link, and the first 40 s of the 30-minute benchmark session.
CASES = {
    "program_tens_conventional": None,
    "program_ems_strength": None,
    "program_tens_burst": None,
    "sr06_lift_and_short": None,
    "sr07_stop": None,
    "sr08_soft_reset": None,
    "sr12_host_link": None,
    "session_30min": 40.0,
}


def _run(name: str, duration_s: float | None, fast_forward: bool):
    s = scenario.load(ROOT / "scenarios" / (name + ".json"))
    if duration_s is not None:
        s.duration_s = duration_s
    units = []

    def on_unit(unit):
        bothways.observe(unit)
        units.append(unit)

    res = scenario.run(
        s, keep=True, record_pulses=True, on_unit=on_unit, fast_forward=fast_forward
    )
    fp = bothways.fingerprint(units[0])
    fp["trace_records"] = res.records
    fp["summary"] = res.summary
    replayed = units[0].chip.ff_calls
    return fp, replayed


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_scenario_is_the_same_with_and_without_fast_forward(name):
    slow, replayed_slow = _run(name, CASES[name], fast_forward=False)
    fast, replayed = _run(name, CASES[name], fast_forward=True)
    assert replayed_slow == 0
    assert bothways.differences(slow, fast) == []
    assert slow["edges"] and slow["trace_records"]
    if name != "program_tens_burst":
        # the comparison covered replayed stretches (a burst refills the FIFO every pulse)
        assert replayed > 100, replayed


def test_the_comparison_sees_one_edge_one_cycle_off():
    # The comparison above can fail: the same run, with one pin edge recorded a cycle late.
    a, _ = _run("program_tens_conventional", 3.0, fast_forward=True)
    b, _ = _run("program_tens_conventional", 3.0, fast_forward=True)
    assert bothways.differences(a, b) == []
    n, level, t = b["edges"][len(b["edges"]) // 2]
    b["edges"][len(b["edges"]) // 2] = (n, level, t + 1)
    assert bothways.differences(a, b) != []

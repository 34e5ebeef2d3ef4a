"""Shared fixtures: simulated units, firmware copies a test may alter, pin recorders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from host_tools.sim.unit import FIRMWARE_DIR, SimulatedUnit

# Requirement IDs per test and each test's last outcome, for `make trace` and `make report`.
pytest_plugins = ("host_tools.dev.trace_plugin",)


def pytest_configure(config):
    config.addinivalue_line("markers", "req(*ids): requirement IDs this test verifies")


@pytest.fixture
def fw_copy(tmp_path: Path):
    """A private copy of firmware/ that a test may change (e.g. a crashing app)."""
    dst = tmp_path / "firmware"
    shutil.copytree(FIRMWARE_DIR, dst)
    return dst


@pytest.fixture
def make_unit():
    units: list[SimulatedUnit] = []

    def make(*args, **kw) -> SimulatedUnit:
        u = SimulatedUnit(*args, **kw)
        units.append(u)
        return u

    yield make
    for u in units:
        u.close()


class PinRecorder:
    """Every pin change and console line, in the order they happened (seq), with times."""

    def __init__(self, unit: SimulatedUnit):
        self.unit = unit
        self.events: list[tuple] = []
        unit.chip.pin_observers.append(self._pin)
        unit.console.listeners.append(self._line)

    def _pin(self, pin: int, level: int, t: int) -> None:
        self.events.append(("pin", pin, level, t))

    def _line(self, line: str, rec) -> None:
        self.events.append(("line", line, rec, self.unit.chip.now))

    def index_of_line(self, text: str, start: int = 0) -> int:
        for i in range(start, len(self.events)):
            e = self.events[i]
            if e[0] == "line" and text in e[1]:
                return i
        raise AssertionError("no console line containing %r" % text)

    def level_at_index(self, pin: int, idx: int, initial: int = 0) -> int:
        level = initial
        for e in self.events[:idx]:
            if e[0] == "pin" and e[1] == pin:
                level = e[2]
        return level


@pytest.fixture
def recorder():
    return PinRecorder

"""Fixtures for the host-tool tests."""

from __future__ import annotations

import pytest

from host_tools import cli
from host_tools.testing.unit_serial import UnitDeviceIO


@pytest.fixture
def dio_for(monkeypatch):
    """dio_for(unit): `stimctl` commands run through cli.main reach this simulated unit."""

    def use(unit):
        d = UnitDeviceIO(unit)
        monkeypatch.setattr(cli, "_dio", lambda: d)
        return d

    return use

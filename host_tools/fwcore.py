"""The firmware's pure core in CPython, without the simulated chip: host tools and tests import
`stim.pulse`, `stim.programs`, `stim.gestures` and the rest of the core (docs/architecture.md)
with the same MicroPython-like loader the simulator uses, and one small shim for the two
modules the core needs from MicroPython:

- `micropython`: `const()` (the value itself, as MicroPython's compiler inlines it);
- `time`: `ticks_ms`, `ticks_add`, `ticks_diff` (with the port's 2**30 wrap) and `time`, from
  the host's monotonic clock;
- `sys`: its `modules` is the loader's own module table, as on MicroPython (stim.forget drops a
  boot-time module from it).

A module that imports `machine` or `rp2` (the hardware layer) fails to load here with
ImportError: that is the point of the layer rules (tests/firmware/test_layers.py).

    from host_tools import fwcore
    pulse = fwcore.load("stim.pulse")
"""

from __future__ import annotations

import functools
import time as _time
import types

from .rp2sim.mploader import MpRuntime
from .sim.unit import FIRMWARE_DIR

_TICKS_PERIOD = 1 << 30  # ticks_ms() wraps here on the port (a small int)
_TICKS_HALF = _TICKS_PERIOD // 2


def _micropython() -> types.ModuleType:
    m = types.ModuleType("micropython")
    m.const = lambda v: v  # type: ignore[attr-defined]
    return m


def _time_module() -> types.ModuleType:
    t = types.ModuleType("time")

    def ticks_ms() -> int:
        return int(_time.monotonic() * 1000) % _TICKS_PERIOD

    def ticks_add(ticks: int, delta: int) -> int:
        return (ticks + delta) % _TICKS_PERIOD

    def ticks_diff(a: int, b: int) -> int:
        return (a - b + _TICKS_HALF) % _TICKS_PERIOD - _TICKS_HALF

    t.ticks_ms = ticks_ms  # type: ignore[attr-defined]
    t.ticks_add = ticks_add  # type: ignore[attr-defined]
    t.ticks_diff = ticks_diff  # type: ignore[attr-defined]
    t.time = _time.time  # type: ignore[attr-defined]
    return t


@functools.cache
def _runtime() -> MpRuntime:
    shims = {
        "micropython": _micropython(),
        "time": _time_module(),
        "sys": types.ModuleType("sys"),  # MpRuntime gives it `modules`
    }
    return MpRuntime([FIRMWARE_DIR], shims)


def load(name: str) -> types.ModuleType:
    """A pure firmware module (e.g. "stim.pulse"), loaded once per host process."""
    return _runtime().import_module(name)

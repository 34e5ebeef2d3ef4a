"""Runs of the simulated unit with the PIO fast-forward on and off, compared: for tests.

Fast-forward (rp2sim/pio_core.py) must change nothing but the host's time. A test runs the same
stimuli on two independent units, one replaying steady PIO loops and one interpreting every
instruction, and compares everything either run let an observer see: every pin edge with its
cycle, every hard interrupt handler's start and end cycle, the board model's pulses, accounts
and violations, the console, the CPU's busy, idle and interrupt cycles and the clock.

`observe(unit)` must be called before the unit runs; `fingerprint(unit)` after it. `Driving`
records what a test does to one unit (presses, host bytes, load and battery changes, how far it
runs it) so that exactly the same can be done to another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..sim.unit import SimulatedUnit

_STORE = "_bothways"


def observe(unit: SimulatedUnit) -> None:
    """Start recording the unit's pin edges and interrupt handlers (before it runs)."""
    chip = unit.chip
    edges: list[tuple[int, int, int]] = []
    irqs: list[tuple[str, int, int]] = []
    chip.pin_observers.append(lambda n, level, t: edges.append((n, level, t)))
    prev = chip.cpu.irq_observer

    def on_irq(handler, t_fired: int, t_done: int) -> None:
        irqs.append((getattr(handler, "__qualname__", type(handler).__name__), t_fired, t_done))
        if prev is not None:
            prev(handler, t_fired, t_done)

    chip.cpu.irq_observer = on_irq
    setattr(unit, _STORE, {"edges": edges, "irqs": irqs})


def fingerprint(unit: SimulatedUnit) -> dict[str, Any]:
    """Everything observable about a finished run (observe() was called before it ran)."""
    seen = getattr(unit, _STORE)
    chip = unit.chip
    model = unit.model
    return {
        "edges": seen["edges"],
        "irq_handlers": seen["irqs"],
        "pulses": [[dataclasses.astuple(p) for p in cm.pulse_log] for cm in model.channels],
        "accounts": [
            (
                cm.pulses,
                cm.net_charge_c,
                cm.abs_charge_c,
                cm.hold_v,
                cm.hold_t,
                cm.max_peak_ma,
                cm.max_phase_charge_c,
                cm.last_current_t,
                list(cm.shoot_through),
                list(cm.single_phase),
            )
            for cm in model.channels
        ],
        "violations": list(model.violations),
        "console": list(unit.console.lines),
        "cpu": (chip.cpu.busy_cycles, chip.cpu.idle_cycles, chip.cpu.irq_cycles),
        "now": chip.now,
    }


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, each with its first differing entry."""
    out = []
    for key in a:
        x, y = a[key], b[key]
        if x == y:
            continue
        if isinstance(x, list) and isinstance(y, list):
            i = next((i for i, (u, v) in enumerate(zip(x, y, strict=False)) if u != v), None)
            if i is None:
                out.append("%s: %d entries against %d" % (key, len(x), len(y)))
            else:
                out.append("%s[%d]: %r against %r" % (key, i, x[i], y[i]))
        else:
            out.append("%s: %r against %r" % (key, x, y))
    return out


class Driving:
    """Records the stimuli a test gives one unit, to give another the same, in the same order.

    Wraps the unit's own methods (press, send, interrupt, soft_reset, run_until; run_for goes
    through run_until) and its board model's set_load and set_battery.
    """

    UNIT = ("press", "send", "interrupt", "soft_reset", "run_until")
    MODEL = ("set_load", "set_battery", "set_charger")

    def __init__(self, unit: SimulatedUnit):
        self.calls: list[tuple[str, str, tuple, dict]] = []
        for name in self.UNIT:
            setattr(unit, name, self._wrap("unit", name, getattr(unit, name)))
        for name in self.MODEL:
            setattr(unit.model, name, self._wrap("model", name, getattr(unit.model, name)))

    def _wrap(self, owner: str, name: str, fn: Callable) -> Callable:
        def call(*args, **kw):
            self.calls.append((owner, name, args, kw))
            return fn(*args, **kw)

        return call

    def replay(self, unit: SimulatedUnit) -> None:
        for owner, name, args, kw in self.calls:
            target = unit if owner == "unit" else unit.model
            getattr(target, name)(*args, **kw)

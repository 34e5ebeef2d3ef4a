"""Heap figures of the firmware on MicroPython's VM: after boot, per control-loop cycle, per
interrupt handler call. Used by the tests (which require 0 bytes per cycle and per call) and by
the benchmark (`memory` in bench/results.json).

The scenario, on board pico: import the firmware (the `stim` package) and build the app with the
hardware layer and the stimulator, start both channels at step 3 of a program, let the soft start
finish (3 s of virtual time), then measure with allocmeter (lib/allocmeter.py):
- `loop`: one control-loop cycle, Stimulator.tick() plus the TICK_MS sleep (on the virtual
  clock; the sleep itself is measured separately and allocates nothing);
- `irq`: the pulse engine's PIO refill handler (engine.Channel._on_pulse) through
  `_sim.pio_pulse`: the state machine pulls a pair of FIFO words and raises its IRQ, for a
  continuous, a burst and a sweep program (the last two make the handler push a new pair every
  pulse). The handler runs unlocked while its bytes are counted, then with the heap locked
  (allocmeter's locked pass, and once more as the hard IRQ it is registered as). A handler
  that raised is listed in `irq_errors` and is no longer `handler_live` (the port disables it).
`heap_after_boot_bytes` is gc.mem_alloc() after gc.collect() with the app built and output
running, minus the same figure with only the simulated machine/rp2/time modules loaded (those
are C or frozen code on the device).
"""

from __future__ import annotations

from pathlib import Path

from . import FIRMWARE_DIR, firmware_files, run, sim_files

PROGRAMS = ("tens_conventional", "tens_burst", "tens_modulated")
STEP = 3
SETTLE_MS = 3000

_SETUP = """
import gc, json, time, _sim, machine, rp2, micropython
from allocmeter import measure
"""
_BASE = """
gc.collect()
_base = gc.mem_alloc()
"""
_BOOT = """
from stim import board as _board, app as _app
_b = _board.load("/board.json")
for _n in _b["buttons"].values():
    machine.external[_n] = 1  # buttons released
_a = _app.App(_b)
_s = _a.stim
for _ch in range(len(_s.channels)):
    _s.set_step(_ch, %d)
"""
_HEAP = """
gc.collect()
print(json.dumps({"heap_after_boot_bytes": gc.mem_alloc() - _base}))
"""
_MEASURE = """
from stim.stimulator import TICK_MS as _TICK
def _cycle():
    _s.tick()
    time.sleep_ms(_TICK)
def _sleep():
    time.sleep_ms(_TICK)
_out = {"sleep": measure(_sleep), "loop": {}, "irq": {}}
for _pid in %r:
    _s.select_program(_pid)
    for _ch in range(len(_s.channels)):
        _s.set_step(_ch, %d)
    time.sleep_ms(%d)
    _out["loop"][_pid] = measure(_cycle)
    _sm = rp2.StateMachine(_s.channels[0].sm_id)
    _soft = lambda: _sim.pio_pulse(_sm._id, False)  # noqa: E731
    _out["irq"][_pid] = measure(_soft)
    _out["irq"][_pid]["hard_ok"] = _sim.pio_pulse(_sm._id)
    _out["irq"][_pid]["handler_live"] = _sm._irq is not None
    _out["irq"][_pid]["pulses"] = _s.channels[0].pulses
    _out["irq"][_pid]["tx_fifo"] = _sm.tx_fifo()
_out["irq_errors"] = [repr(e[1]) for e in _sim.irq_errors]
print(json.dumps(_out))
"""


def measure(firmware_dir: Path = FIRMWARE_DIR, programs=PROGRAMS) -> dict:
    """Run the scenario on the VM; return the printed figures merged into one dict."""
    files = sim_files() + firmware_files(firmware_dir)
    r = run(
        [_SETUP, _BASE, _BOOT % STEP, _HEAP, _MEASURE % (tuple(programs), STEP, SETTLE_MS)],
        files,
    ).check()
    out: dict = {}
    for rec in r.records():
        if "lvl" not in rec:  # skip the firmware's own log lines
            out.update(rec)
    return out

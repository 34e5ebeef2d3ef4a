"""Stop benchmark (SR-7): the `stop` section of bench/results.json.

The whole firmware runs on the simulated pico board in each of several states (running at a
step, soft start still rising, electrode check in progress, locked, one channel faulted, an EMS
contraction); POWER is pressed (its pin goes low) at instants spread over a pulse period.
`press_to_zero_ms` is the worst time, over states and instants, from the press to the end of
the last pulse either channel still drove into the load model (0 when none ended after the
press). Target: <= 20 ms.
"""

from __future__ import annotations

import time

from ..sim.unit import SimulatedUnit

BOARD = "pico"
ON_S = 0.5  # POWER held from here for 1.7 s: the unit is on at 2.0 s
START_S = 2.5  # first PLUS press
TARGET_MS = 20.0


def _unit(**kw) -> SimulatedUnit:
    unit = SimulatedUnit(BOARD, load_ohm={1: 1000.0, 2: 1000.0}, **kw)
    unit.press("power", at=ON_S, hold_s=1.7)
    return unit


def _plus(unit, n: int, t0: float = START_S) -> float:
    """n PLUS presses from t0; returns when both channels are at that step."""
    for i in range(n):
        unit.press("plus", at=t0 + 0.3 * i)
    return t0 + 0.3 * (n - 1) + 2.6


def running(off: float, **kw):
    unit = _unit(**kw)
    return unit, _plus(unit, 6) + off


def ramping(off: float, **kw):
    unit = _unit(**kw)
    _plus(unit, 1)
    return unit, START_S + 0.9 + off


def checking(off: float, **kw):
    unit = _unit(**kw)
    _plus(unit, 1)
    return unit, START_S + 0.12 + off


def locked(off: float, **kw):
    unit = _unit(**kw)
    t = _plus(unit, 6)
    unit.press("plus", at=t, hold_s=3.3)
    unit.press("minus", at=t + 0.02, hold_s=3.28)  # together: within one debounce time
    return unit, t + 4.0 + off


def channel_fault(off: float, **kw):
    unit = _unit(**kw)
    t = _plus(unit, 6)
    unit.at(t, unit.model.set_load, 1, 1e9)  # channel 1 lifted: faulted; channel 2 runs on
    return unit, t + 1.0 + off


def ems(off: float, **kw):
    unit = _unit(**kw)
    for i in range(5):  # MODE five times: ems_strength, chosen at about 3.4 s
        unit.press("mode", at=2.2 + 0.3 * i)
    _plus(unit, 6, 4.0)
    return unit, 7.0 + off  # inside the first 5 s contraction


STATES = {
    "running": running,
    "ramping": ramping,
    "checking": checking,
    "locked": locked,
    "channel_fault": channel_fault,
    "ems": ems,
}


def driven(unit, ch: int, t0: float, t1: float = 1e9) -> list:
    # The load never takes more than the source is set to: drive covers the peak.
    return unit.model.driven(ch, t0, t1)


def press_to_zero(state: str, off: float) -> tuple[float, bool]:
    """(ms from the press to the end of the last driven pulse, output before the press)."""
    unit, t_press = STATES[state](off)
    try:
        unit.press("power", at=t_press, hold_s=0.15)
        unit.run_until(t_press + 0.5)
        before = driven(unit, 1, t_press - 0.5, t_press) + driven(unit, 2, t_press - 0.5, t_press)
        ends = [p.end_s for ch in (1, 2) for p in driven(unit, ch, t_press)]
        return (max(ends) - t_press) * 1000 if ends else 0.0, bool(before)
    finally:
        unit.close()


def measure_stop(instants: int = 10, period_s: float = 0.020) -> dict:
    t0 = time.perf_counter()
    by_state = {}
    for state in STATES:
        times, outputs = [], 0
        for k in range(instants):
            ms, had_output = press_to_zero(state, period_s * k / instants)
            times.append(ms)
            outputs += had_output
        by_state[state] = {
            "worst_ms": round(max(times), 3),
            "mean_ms": round(sum(times) / len(times), 3),
            "presses": instants,
            "presses_with_output_before": outputs,
        }
    worst = max(s["worst_ms"] for s in by_state.values())
    return {
        "board": BOARD,
        "press_to_zero_ms": worst,
        "target_ms": TARGET_MS,
        "by_state": by_state,
        "pass": {"all": worst <= TARGET_MS},
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def print_stop(s: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="POWER press to zero output (SR-7), board %s" % s["board"])
    for col in ("state", "worst ms", "mean ms", "presses"):
        table.add_column(col, justify="right")
    for state, r in s["by_state"].items():
        table.add_row(state, "%.3f" % r["worst_ms"], "%.3f" % r["mean_ms"], str(r["presses"]))
    console.print(table)
    verdict = "[bold green]PASS[/]" if s["pass"]["all"] else "[bold red]FAIL[/]"
    console.print("%s  worst %.3f ms (target %g ms)" % (verdict, s["press_to_zero_ms"], TARGET_MS))

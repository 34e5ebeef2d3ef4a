"""Battery life: the `battery` section of bench/results.json.

The whole firmware runs on the simulated chip (board pico, 1 kohm on both channels) and the
power model (host_tools/sim/power.py) turns what it did into drain from the cell:

- `programs`: every built-in program on both channels, raised with PLUS to INTENSITY_MA (or
  the highest step the program allows, if lower), measured over a WINDOW_S window once every
  soft start is over: CPU busy share, drain by component, hours of therapy per charge;
- `standby`: the unit switched off (it sleeps): CPU busy share, drain, days per charge;
- `session`: a 30-minute TENS conventional session at INTENSITY_MA, the drain by component in
  30 s bins (the report plots it) and its total;
- `clocks`: TENS conventional as in `programs`, on the same board run at other system clocks
  (the firmware's work costs the same cycles, so a slower clock is busier, but its current
  per MHz is lower): what the choice of `sysclk_hz` trades;
- `targets`: CPU busy at most 15 % running TENS conventional on two channels and at most 2 %
  switched off (measured on the simulated chip with its CPU model).
"""

from __future__ import annotations

import json
import time

from .. import fwcore
from ..boards import board_path, load_board
from ..sim.power import COMPONENTS, PowerMeter, power_keys
from ..sim.unit import SimulatedUnit

BOARD = "pico"
LOAD_OHM = 1000.0
INTENSITY_MA = 30.0
WINDOW_S = 60.0
BIN_S = 30.0
SESSION_MIN = 30
TARGET_BUSY_RUNNING = 0.15
TARGET_BUSY_OFF = 0.02


CLOCKS_MHZ = (48, 64, 100, 125)


def _unit(program: str | None = None, session_min: int = SESSION_MIN, sysclk_hz: int = 0):
    b = load_board(BOARD)
    if sysclk_hz:
        b["sysclk_hz"] = sysclk_hz
    files: dict[str, bytes | str] = {"/board.json": json.dumps(b)}
    if program:
        files["/settings.json"] = json.dumps(
            {"program": program, "session_min": session_min, "channels": "both"}
        )
    unit = SimulatedUnit(b, files=files, load_ohm={1: LOAD_OHM, 2: LOAD_OHM})
    cap, eff = power_keys(str(board_path(BOARD)))
    return unit, PowerMeter(unit, cap, eff)


def _raise_to(unit, ma: float, t0: float) -> float:
    """Switch on at 2 s (the app is up by then at 48 MHz too: a button held while it starts
    is not a press), then PLUS taps from t0 until the step for `ma`: when they end."""
    unit.press("power", at=2.0, hold_s=1.7)
    steps = int(round(ma / unit.board["intensity"]["step_ma"]))
    for k in range(steps):
        unit.press("plus", at=t0 + 0.25 * k)
    return t0 + 0.25 * steps


def _row(r, capacity_mah: float) -> dict:
    drain = r.ma()
    return {
        "busy_pct": round(100 * r.busy, 2),
        "asleep_pct": round(100 * r.asleep, 1),
        "drain_ma": round(drain, 2),
        "by_component_ma": {k: round(r.ma(k), 2) for k in COMPONENTS},
        "hours": round(capacity_mah / drain, 1) if drain else None,
    }


def measure_program(pid: str, sysclk_hz: int = 0) -> dict:
    unit, meter = _unit(pid, sysclk_hz=sysclk_hz)
    with unit:
        t_up = _raise_to(unit, INTENSITY_MA, 4.5)
        t0 = t_up + 5.0  # soft starts over (SR-2: 3 s)
        unit.run_until(t0)
        meter.read()
        n0 = [len(ch.pulse_log) for ch in unit.model.channels]
        unit.run_until(t0 + WINDOW_S)
        r = meter.read()
        peak = max(
            (
                p.peak_ma
                for ch, n in zip(unit.model.channels, n0, strict=True)
                for p in ch.pulse_log[n:]
            ),
            default=0.0,
        )
        out = _row(r, meter.capacity_mah)
        out["peak_ma"] = round(peak, 1)
        return out


def measure_standby() -> dict:
    unit, meter = _unit()
    with unit:
        unit.run_until(5.0)
        meter.read()
        unit.run_until(5.0 + WINDOW_S)
        r = meter.read()
        out = _row(r, meter.capacity_mah)
        out["days"] = round(out.pop("hours") / 24, 1)
        return out


def measure_session() -> dict:
    unit, meter = _unit("tens_conventional")
    bins = []
    with unit:
        t_up = _raise_to(unit, INTENSITY_MA, 4.5)
        t = 0.0
        meter.read()
        end = t_up + SESSION_MIN * 60 + 10.0
        while t < end:
            t += BIN_S
            unit.run_until(t)
            r = meter.read()
            bins.append([round(t, 1)] + [round(r.ma(k), 3) for k in COMPONENTS])
        mas = sum((b[1] + b[2] + b[3]) * BIN_S for b in bins) / 3600.0
    return {
        "program": "tens_conventional",
        "intensity_ma": INTENSITY_MA,
        "bin_s": BIN_S,
        "columns": ["t_s", *COMPONENTS],
        "bins": bins,
        "mah": round(mas, 1),
    }


def measure_battery() -> dict:
    wall0 = time.perf_counter()
    b = load_board(BOARD)
    cap, eff = power_keys(str(board_path(BOARD)))
    built_in = [p["id"] for p in fwcore.load("stim.programs").PROGRAMS]
    programs = {pid: measure_program(pid) for pid in built_in}
    clocks = {}
    for mhz in CLOCKS_MHZ:
        r = measure_program("tens_conventional", sysclk_hz=mhz * 1_000_000)
        clocks[str(mhz)] = {k: r[k] for k in ("busy_pct", "drain_ma", "hours")}
        clocks[str(mhz)]["cpu_ma"] = r["by_component_ma"]["cpu"]
    standby = measure_standby()
    session = measure_session()
    busy_run = programs["tens_conventional"]["busy_pct"] / 100
    busy_off = standby["busy_pct"] / 100
    ok = {
        "busy_running": busy_run <= TARGET_BUSY_RUNNING,
        "busy_off": busy_off <= TARGET_BUSY_OFF,
    }
    ok["all"] = all(ok.values())
    return {
        "board": BOARD,
        "sysclk_mhz": b["sysclk_hz"] / 1e6,
        "capacity_mah": cap,
        "boost_efficiency": eff,
        "load_ohm": LOAD_OHM,
        "intensity_ma": INTENSITY_MA,
        "window_s": WINDOW_S,
        "programs": programs,
        "standby": standby,
        "session": session,
        "clocks": clocks,
        "targets": {
            "busy_running_pct": 100 * TARGET_BUSY_RUNNING,
            "busy_off_pct": 100 * TARGET_BUSY_OFF,
        },
        "pass": ok,
        "wall_s": round(time.perf_counter() - wall0, 1),
    }


def print_battery(r: dict) -> None:
    from rich.console import Console

    console = Console()
    verdict = "[green]PASS[/]" if r["pass"]["all"] else "[red]FAIL[/]"
    s = r["standby"]
    console.print(
        "%s  battery (%g mAh, %g MHz): off %.2f %% CPU busy, %.2f mA, %.1f days standby"
        % (verdict, r["capacity_mah"], r["sysclk_mhz"], s["busy_pct"], s["drain_ma"], s["days"])
    )
    for pid, p in r["programs"].items():
        parts = ", ".join("%s %.1f" % (k, v) for k, v in p["by_component_ma"].items())
        console.print(
            "   %-18s %4.1f mA peak: %5.2f %% busy, %6.2f mA (%s): %5.1f h per charge"
            % (pid, p["peak_ma"], p["busy_pct"], p["drain_ma"], parts, p["hours"])
        )
    console.print("   30-min session: %.1f mAh" % r["session"]["mah"])
    console.print(
        "   clock for TENS conventional: "
        + "; ".join(
            "%s MHz %.1f %% busy, CPU %.1f mA, %.1f h"
            % (m, c["busy_pct"], c["cpu_ma"], c["hours"])
            for m, c in r["clocks"].items()
        )
    )

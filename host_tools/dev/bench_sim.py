"""Simulator speed benchmark: the `sim` section of bench/results.json.

Runs scenarios/session_30min.json (a whole 30-minute TENS conventional session at 100 Hz on
both channels of the pico board) headless with the pin-level trace written to a file, as
`stimctl sim --scenario ... --trace ...` does. `speedup` is simulated seconds per wall
second; `cpu_speedup` the same per second of this process's CPU time (what the simulation
costs, whatever else the machine is doing). Targets: the 30 minutes in under 60 s of wall time
(issue 7) and at 200x or more on one core's CPU time, under 9 s (issue 20, DESIGN.md).
`fast_forward` says whether steady PIO loops were replayed (rp2sim/pio_core.py; it is exact).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from ..sim import scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "session_30min.json"
TARGET_WALL_S = 60.0
TARGET_CPU_SPEEDUP = 200.0


def measure_sim(path: Path = SCENARIO, duration_s: float | None = None) -> dict:
    s = scenario.load(path)
    if duration_s is not None:
        s.duration_s = duration_s
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "trace.jsonl"
        cpu0 = time.process_time()
        with open(out_path, "w") as out:
            res = scenario.run(s, out)
        cpu_s = time.process_time() - cpu0
        trace_bytes = out_path.stat().st_size
    pulses = sum(r["pulses"] for r in res.summary)
    cpu_speedup = round(s.duration_s / cpu_s, 1) if cpu_s else 0.0
    return {
        "scenario": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "board": s.board_name,
        "sim_s": s.duration_s,
        "wall_s": round(res.wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "speedup": round(res.speedup, 1),
        "cpu_speedup": cpu_speedup,
        "fast_forward": res.model.chip.fast_forward,
        "pulses": pulses,
        "trace_records": res.written,
        "trace_bytes": trace_bytes,
        "violations": res.violations,
        # Other work on the machine stretches the wall time, not the CPU time: say how busy
        # it was (1-minute load average over the cores) when this was measured.
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
        "target_wall_s": TARGET_WALL_S,
        "target_cpu_speedup": TARGET_CPU_SPEEDUP,
        "pass": {
            "all": res.wall_s < TARGET_WALL_S
            and cpu_speedup >= TARGET_CPU_SPEEDUP
            and res.violations == 0,
            "wall": res.wall_s < TARGET_WALL_S,
            "cpu": cpu_speedup >= TARGET_CPU_SPEEDUP,
            "no_violations": res.violations == 0,
        },
    }


def print_sim(r: dict, console=None) -> None:
    from rich.console import Console

    console = console or Console()
    verdict = "[bold green]PASS[/]" if r["pass"]["all"] else "[bold red]FAIL[/]"
    console.print(
        "%s  simulator: %s, %g s simulated in %.1f s wall (x%.1f; CPU %.1f s, x%.1f), "
        "%d pulses, %d trace records (%d kB), %d violations, load %.1f on %d cores; "
        "targets < %g s wall, CPU x%g"
        % (
            verdict,
            r["scenario"],
            r["sim_s"],
            r["wall_s"],
            r["speedup"],
            r["cpu_s"],
            r["cpu_speedup"],
            r["pulses"],
            r["trace_records"],
            r["trace_bytes"] // 1024,
            r["violations"],
            r["load_avg_1min"],
            r["cores"],
            r["target_wall_s"],
            r.get("target_cpu_speedup", 0),
        )
    )

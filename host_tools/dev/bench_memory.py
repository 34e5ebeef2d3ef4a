"""The `memory` section of bench/results.json: heap and flash figures of the firmware measured
on MicroPython's own VM (host_tools/mpvm), against the targets.

- `heap_after_boot_kb`: heap in use (gc.mem_alloc() after gc.collect()) with the compiled
  firmware (the `make mpy` tree) imported, the app built and both channels delivering, minus
  what the simulated machine/rp2/time modules take (C and frozen code on the board);
  `heap_after_boot_source_kb` is the same from the .py sources (which keep docstrings on the
  VM); `heap_after_boot_romfs_kb` with the stim package in a ROMFS image instead, as on a
  board built with a ROMFS partition, where bytecode runs in place from flash (targets:
  DESIGN.md, 96 KB from .mpy, 40 KB from ROMFS);
- `loop_bytes_per_cycle`: the most any control-loop cycle allocated (the buttons, the control
  cycle, the LEDs and the CONTROL_MS sleep, both channels running), per program measured: each
  continuous, burst and sweep program, and EMS strength in the plateau and in the rest of its
  work/rest cycle; `loop_bytes_per_cycle_ramp`, a cycle on an EMS ramp, where the level changes
  every tick as in the soft start (target 0 too);
- `irq_bytes_per_call`: the most the pulse engine's PIO IRQ handler allocated per call;
- `mpy_total_kb`: the `make mpy` tree (the .mpy modules plus boot.py and main.py);
  `source_total_kb`: firmware/ as source.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..mpvm import memory
from . import mpybuild

# DESIGN.md, "Performance targets": with a session running, <= 40 % of the stock RPI_PICO heap
# (96 KB of 245.9 KB) from .mpy files, <= 40 KB with the bytecode in ROMFS or frozen.
TARGETS = {
    "heap_after_boot_kb": 96,
    "heap_after_boot_romfs_kb": 40,
    "loop_bytes_per_cycle": 0,
    "loop_bytes_per_cycle_ramp": 0,
    "irq_bytes_per_call": 0,
    "mpy_total_kb": 64,  # DESIGN.md, "Performance targets"
}


def measure_memory() -> dict:
    wall0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        mpy_dir = Path(tmp) / "mpy"
        sizes = mpybuild.build(mpy_dir)
        compiled = memory.measure(mpy_dir)
        rom = memory.measure(mpy_dir, programs=memory.PROGRAMS[:1], romfs=True)
    source = memory.measure(programs=memory.PROGRAMS[:1])
    loop = max(f["per_call"] for f in compiled["loop"].values())
    irq = max(f["per_call"] for f in compiled["irq"].values())
    irq_ok = not compiled["irq_errors"] and all(
        f["handler_live"] and f["hard_ok"] for f in compiled["irq"].values()
    )
    out = {
        "vm": "MicroPython v1.29.0 WebAssembly (@micropython/micropython-webassembly-pyscript)",
        "board": "pico",
        "heap_after_boot_kb": round(compiled["heap_after_boot_bytes"] / 1024, 1),
        "heap_after_boot_source_kb": round(source["heap_after_boot_bytes"] / 1024, 1),
        "heap_after_boot_romfs_kb": round(rom["heap_after_boot_bytes"] / 1024, 1),
        "loop_bytes_per_cycle": loop,
        "loop_programs": sorted(compiled["loop"]),
        "loop_bytes_per_cycle_ramp": max(f["per_call"] for f in compiled["ramp"].values()),
        "irq_bytes_per_call": irq,
        "irq_programs": sorted(compiled["irq"]),
        "irq_runs_with_heap_locked": irq_ok,
        "mpy_total_kb": round(sum(sizes.values()) / 1024, 1),
        "source_total_kb": round(sum(mpybuild.source_sizes().values()) / 1024, 1),
        "targets": dict(TARGETS),
    }
    checks = {k: out[k] <= v for k, v in TARGETS.items()}
    checks["irq_heap_locked"] = irq_ok
    checks["all"] = all(checks.values())
    out["pass"] = checks
    out["wall_s"] = round(time.perf_counter() - wall0, 2)
    return out


def print_memory(m: dict) -> None:
    verdict = "PASS" if m["pass"]["all"] else "FAIL"
    t = m["targets"]
    print(
        "%s  memory on the MicroPython VM: heap after boot %.1f KB (<= %d; %.1f KB from source, "
        "%.1f KB from ROMFS <= 40), "
        "loop %g B/cycle (<= %d), IRQ %g B/call (<= %d), .mpy tree %.1f KB (<= %d; source %.1f KB)"
        % (
            verdict,
            m["heap_after_boot_kb"],
            t["heap_after_boot_kb"],
            m["heap_after_boot_source_kb"],
            m["heap_after_boot_romfs_kb"],
            m["loop_bytes_per_cycle"],
            t["loop_bytes_per_cycle"],
            m["irq_bytes_per_call"],
            t["irq_bytes_per_call"],
            m["mpy_total_kb"],
            t["mpy_total_kb"],
            m["source_total_kb"],
        )
    )
    print("      a cycle on an EMS ramp: %g B (<= 0)" % m["loop_bytes_per_cycle_ramp"])

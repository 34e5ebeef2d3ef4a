"""The firmware on MicroPython's own VM: the WebAssembly build of MicroPython v1.29 from npm
(`@micropython/micropython-webassembly-pyscript`, pinned in package.json), run by Node.

Where host_tools/sim runs the firmware under CPython with faithful fakes, this runs it on the
real MicroPython interpreter, so it catches what CPython would let through: a builtin or method
MicroPython lacks, different exception classes, heap allocation in an interrupt handler.
The rp2 port's C modules are replaced by small MicroPython-side fakes (lib/: `machine`, `rp2`,
`time` on a virtual clock, shared state in `_sim`), copied onto the VM's filesystem at /lib
together with MicroPython's PIO assembler (host_tools/rp2sim/pioasm.py as `_pioasm`). The VM's own
`micropython`, `gc`, `json`, `math`, `array` and `sys` modules are used as they are.

Filesystem on the VM: the firmware tree at / (as on the board: /boot.py, /main.py, /stim/,
/board.json), the fakes in /lib, and `sys.path` is ["", "/lib", ".frozen"] so that /lib/time.py
takes the place of the port's `time`.

    from host_tools import mpvm
    r = mpvm.run(["import stim.engine"], mpvm.sim_files() + mpvm.firmware_files())
    r.check()
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..boards import board_path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LIB_DIR = HERE / "lib"
RUNNER = HERE / "run.mjs"
FIRMWARE_DIR = ROOT / "firmware"
BOARDS_DIR = ROOT / "boards"
PIOASM = ROOT / "host_tools" / "rp2sim" / "pioasm.py"
VM_PACKAGE = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"

PRELUDE = 'import sys\nsys.path.clear()\nsys.path.extend(["", "/lib", ".frozen"])\n'

Files = list[tuple[str, Path]]


class VmError(RuntimeError):
    pass


@dataclass
class VmResult:
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> VmResult:
        if self.returncode != 0:
            raise VmError("MicroPython VM run failed:\n%s%s" % (self.stdout, self.stderr))
        return self

    def records(self) -> list:
        """The JSON objects the code printed, one per line (other lines are skipped)."""
        out = []
        for line in self.stdout.splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out


def node() -> str:
    exe = shutil.which("node")
    if exe is None:
        raise VmError("node not found: install Node.js 20 or newer")
    if not (VM_PACKAGE / "micropython.mjs").exists():
        raise VmError("the MicroPython VM is not installed: run `npm ci` (make test does it)")
    return exe


def sim_files() -> Files:
    """The MicroPython-side fakes, for /lib."""
    files = [("/lib/" + p.name, p) for p in sorted(LIB_DIR.glob("*.py"))]
    files.append(("/lib/_pioasm.py", PIOASM))
    return files


def tree_files(src: Path, dst: str = "/", suffixes: tuple[str, ...] = (".py", ".mpy")) -> Files:
    """Every file under `src` with one of `suffixes`, placed under `dst` on the VM."""
    src = Path(src)
    base = dst.rstrip("/")
    return [
        (base + "/" + p.relative_to(src).as_posix(), p)
        for p in sorted(src.rglob("*"))
        if p.is_file() and p.suffix in suffixes and "__pycache__" not in p.parts
    ]


def firmware_files(firmware_dir: Path = FIRMWARE_DIR, board: str | Path = "pico") -> Files:
    """The firmware tree at / and the board file as /board.json, as `make flash` installs them."""
    return tree_files(firmware_dir) + [("/board.json", board_path(board))]


def run(
    code: str | list[str],
    files: Files,
    heap_kb: int = 1024,
    timeout: float = 60,
    romfs: Path | None = None,
) -> VmResult:
    """Run code chunks (each after the previous one returned) on a fresh VM holding `files`.

    PRELUDE runs first. Garbage a chunk makes is collectable only from a later chunk (see
    run.mjs), so a heap measurement after gc.collect() belongs in a chunk of its own.
    `romfs`: a ROMFS image (`romfs_image`) mounted at /rom, which then comes first on sys.path."""
    prelude = PRELUDE + ('sys.path.insert(0, "/rom")\n' if romfs is not None else "")
    chunks = [prelude] + ([code] if isinstance(code, str) else list(code))
    job: dict = {
        "files": [[vm, str(host)] for vm, host in files],
        "code": chunks,
        "heap_kb": heap_kb,
    }
    if romfs is not None:
        job["romfs"] = str(romfs)
    r = subprocess.run(
        [node(), str(RUNNER)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return VmResult(r.returncode, r.stdout, r.stderr)


def romfs_image(tree: Path, out: Path, names: tuple[str, ...] = ("stim",)) -> Path:
    """Write a ROMFS image (mpremote's format) holding the directories `names` of `tree` (e.g.
    the `make mpy` tree's stim package): what a board with a ROMFS partition would hold."""
    from mpremote.romfs import VfsRomWriter

    vfs = VfsRomWriter()

    def add(d: Path) -> None:
        for p in sorted(d.iterdir()):
            if p.is_dir():
                vfs.opendir(p.name)
                add(p)
                vfs.closedir()
            elif p.suffix in (".mpy", ".py", ".json"):
                vfs.mkfile(p.name, p.read_bytes())

    for name in names:
        vfs.opendir(name)
        add(Path(tree) / name)
        vfs.closedir()
    Path(out).write_bytes(vfs.finalise())
    return Path(out)

"""`stimctl vboard`: a virtual board on a pseudo-terminal, for flashing and logging without one.

    stimctl vboard [--board pico] [--flash FILE] [--fresh]

The board is MicroPython's own VM (the WebAssembly build of v1.29 from npm, run by Node:
board.mjs) made to look like a Raspberry Pi Pico: `sys.platform` is "rp2", the rp2 port's
`machine`, `rp2` and `time` are the simulated ones (host_tools/mpvm/lib, rom/), read-only at
/rom; its flash is a filesystem at / kept in a host file (default: ~/.cache/stimctl/vboard-
BOARD.json), so what was flashed is still there at the next start, as on a board. The command
prints the pseudo-terminal's path (e.g. /dev/pts/5) and runs until Ctrl-C; `stimctl flash
--port PATH`, `stimctl logs --port PATH` and `mpremote connect PATH ...` then work as with a
Pico on /dev/ttyACM0.

A new virtual board's flash is empty (a Pico with MicroPython and nothing else); --board only
chooses the default flash file (one per board): the board's pins and inputs (buttons released,
battery charged) follow the /board.json that `stimctl flash --board` puts on it.

This module relays bytes between the pseudo-terminal and the Node process: while no program
has the terminal open, the board's output is dropped, as a Pico's USB serial drops it with no
host listening.

Tests use `VBoard` directly; `cut_after` cuts the power (the Node process is killed and the
terminal hangs up) once that many bytes have come from the host, to prove a flash cut short
leaves a bootable unit; `record` keeps those bytes (`rx_log`) to place such cuts.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

from .. import mpvm

HERE = Path(__file__).resolve().parent
BOARD_JS = HERE / "board.mjs"
ROM_DIR = HERE / "rom"
ASYNCIO_DIR = mpvm.ROOT / "host_tools" / "rp2sim" / "mplib" / "asyncio"
# What the board reports as sys.implementation._machine: by default a Pico's, as the stock
# RPI_PICO build does; `stimctl vboard --board B` presents the hardware B's board file is for
# (its `hardware`), so `stimctl flash` accepts that board file and refuses others.
MACHINE = "Raspberry Pi Pico with RP2040"


def default_flash(board: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "stimctl" / ("vboard-%s.json" % Path(board).stem)


def rom_files() -> list[tuple[str, str]]:
    """The modules at /rom: the rp2 port's machine/rp2 (simulated), its time, select, os and
    MicroPython's standard asyncio, and the board's own set-up."""
    files = [(p.name, p) for p in sorted(ROM_DIR.glob("*.py")) if p.name != "_vboard.py"]
    files += [(n, mpvm.LIB_DIR / n) for n in ("machine.py", "rp2.py")]
    # the VM fakes' interrupt dispatch and tick arithmetic, under the board's own _sim and time
    files += [("_simcore.py", mpvm.LIB_DIR / "_sim.py"), ("_simtime.py", mpvm.LIB_DIR / "time.py")]
    files += [("_simcal.py", mpvm.LIB_DIR / "_simcal.py")]
    files.append(("_pioasm.py", mpvm.PIOASM))
    files += [("asyncio/" + p.name, p) for p in sorted(ASYNCIO_DIR.glob("*.py"))]
    return [(n, str(p)) for n, p in files]


class VBoardError(RuntimeError):
    pass


class VBoard:
    """A virtual board behind a pseudo-terminal; `path` is the terminal to open."""

    def __init__(
        self,
        flash: str | Path,
        *,
        cut_after: int | None = None,
        record: bool = False,
        machine: str = MACHINE,
        stderr=None,
    ):
        self.flash = Path(flash)
        self.cut_after = cut_after
        self.machine = machine
        self.rx_bytes = 0  # bytes from the host to the board so far
        self.rx_log = bytearray() if record else None  # and the bytes themselves, if recorded
        self.powered = False
        self._stderr = stderr
        self._proc: subprocess.Popen | None = None
        self._master = -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cfg: str | None = None
        self.path = ""

    # -- life ---------------------------------------------------------------------------------
    def start(self) -> VBoard:
        node = mpvm.node()
        self.flash.parent.mkdir(parents=True, exist_ok=True)
        fd, self._cfg = tempfile.mkstemp(prefix="vboard-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"flash": str(self.flash), "rom": rom_files(), "machine": self.machine}, f)
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing, before any program opens it
        self.path = os.ttyname(slave)
        os.close(slave)  # the master sees a hang-up until a program opens the terminal
        os.set_blocking(master, False)
        self._master = master
        self._proc = subprocess.Popen(
            [node, str(BOARD_JS), self._cfg],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,  # a Ctrl-C in the terminal reaches stimctl only
        )
        self.powered = True
        self._thread = threading.Thread(target=self._relay, name="vboard-relay", daemon=True)
        self._thread.start()
        return self

    def power_off(self) -> None:
        """Cut the power: the board stops at once (nothing more is written to its flash)."""
        p = self._proc
        if p is not None and p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()
        self.powered = False

    def close(self) -> None:
        self._stop.set()
        self.power_off()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._proc is not None:
            for s in (self._proc.stdin, self._proc.stdout):
                with contextlib.suppress(Exception):
                    s.close()  # type: ignore[union-attr]
        if self._master >= 0:
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = -1
        if self._cfg:
            with contextlib.suppress(OSError):
                os.unlink(self._cfg)
            self._cfg = None

    def __enter__(self) -> VBoard:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the relay ----------------------------------------------------------------------------
    def _host_connected(self) -> bool:
        p = select.poll()
        p.register(self._master, select.POLLIN)
        ev = p.poll(0)
        return not (ev and ev[0][1] & select.POLLHUP)

    def _relay(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stdin is not None
        out_fd = proc.stdout.fileno()
        in_fd = proc.stdin.fileno()
        master = self._master
        while not self._stop.is_set():
            connected = self._host_connected()
            fds = [out_fd] + ([master] if connected else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.02)
            except (OSError, ValueError):
                return
            if out_fd in ready:
                try:
                    data = os.read(out_fd, 65536)
                except OSError:
                    data = b""
                if not data:  # the board is off
                    self.powered = False
                    if self.cut_after is not None:
                        self._hang_up()
                        return
                    self._stop.wait(0.05)
                    continue
                if connected:
                    self._write_host(data)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the host closed the terminal just now
                    continue
                if self.cut_after is not None and self.rx_bytes + len(data) >= self.cut_after:
                    data = data[: self.cut_after - self.rx_bytes]
                    self._send_board(in_fd, data)
                    time.sleep(0.05)  # let the board act on what reached it
                    self.power_off()
                    self._hang_up()
                    return
                self._send_board(in_fd, data)

    def _send_board(self, fd: int, data: bytes) -> None:
        self.rx_bytes += len(data)
        if self.rx_log is not None:
            self.rx_log += data
        with contextlib.suppress(OSError):
            os.write(fd, data)

    def _write_host(self, data: bytes) -> None:
        # A host that has the terminal open but does not read: drop what does not fit, as the
        # USB serial does after its timeout.
        deadline = time.monotonic() + 0.5
        while data and time.monotonic() < deadline:
            try:
                n = os.write(self._master, data)
                data = data[n:]
            except BlockingIOError:
                time.sleep(0.005)
            except OSError as e:
                if e.errno in (errno.EIO, errno.EBADF):
                    return
                raise

    def _hang_up(self) -> None:
        # Unplugged: the terminal goes away under the host (reads fail with EIO).
        if self._master >= 0:
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = -1


def main(args) -> int:
    flash = Path(args.flash) if args.flash else default_flash(args.board)
    if args.fresh and flash.exists():
        flash.unlink()
    from .. import boards

    try:
        machine = boards.load_board(args.board)["hardware"]
    except boards.BoardError as e:
        print("stimctl: %s" % e, file=sys.stderr)
        return 1
    try:
        board = VBoard(flash, machine=machine).start()
    except mpvm.VmError as e:
        print("stimctl: %s" % e, file=sys.stderr)
        return 1
    print(board.path, flush=True)
    print(
        "virtual board (MicroPython 1.29 on Node, flash in %s) on %s\n"
        "  stimctl flash --port %s --board %s\n  stimctl logs --port %s\n"
        "  mpremote connect %s repl\nCtrl-C stops it." % (
            flash, board.path, board.path, args.board, board.path, board.path),
        file=sys.stderr,
    )  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    try:
        while not stop.is_set():
            if not board.powered:
                print("stimctl: the virtual board stopped", file=sys.stderr)
                return 1
            stop.wait(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0

"""A MicroPython board as the host tools see it over USB, without the wire: for tests.

`FakeBoard` is the device: its flash filesystem (sim/vfs.py FlashFs: MicroPython errno numbers,
atomic rename, a capacity) and a REPL that runs the code the host sends with `open` and `os`
bound to that filesystem, `hashlib`/`binascii`/`json` as on the board, and a `machine` whose
reset() and bootloader() do what they do on the rp2 port. At every reset and soft reset it runs
what boot.py's update step runs: the `boot()` of the board's own /stim/update.py, if it has one.

`FakeTransport` has the interface of mpremote's SerialTransport (it subclasses mpremote's
`Transport`, so fs_writefile, fs_stat and the rest are mpremote's own code running over it). It
can cut the link at a byte count or after a number of exec calls, as an unplugged cable would.

`FakeDeviceIO` is a `DeviceIO` serving fake boards and fake ports.
"""

from __future__ import annotations

import ast
import binascii
import builtins
import errno
import hashlib
import json
import traceback
import types

import serial
from mpremote.transport import Transport, TransportError, TransportExecError

from ..device import RP2040_VID, DeviceIO, PortInfo, classify_open_error
from ..rp2sim.vfs import FlashFs


class _HardReset(BaseException):
    pass


class _Bootloader(BaseException):
    pass


def _module(name: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    return m


class FakeBoard:
    def __init__(
        self,
        fs: FlashFs | None = None,
        *,
        port: str = "/dev/ttyACM0",
        micropython: bool = True,
        platform: str = "rp2",
        version: tuple = (1, 29, 0, ""),
        machine: str = "Raspberry Pi Pico with RP2040",
    ):
        self.fs = fs if fs is not None else FlashFs()
        self.port = port
        self.micropython = micropython
        self.platform = platform
        self.version = version
        self.machine = machine
        self.attached = True
        self.events: list[str] = []
        self.on_reset = None  # callables run after machine.reset() / machine.bootloader()
        self.on_bootloader = None
        self._ns: dict | None = None
        self._out: list[str] = []

    # ---- the device's Python -------------------------------------------------------------
    def _modules(self) -> dict[str, types.ModuleType]:
        board = self

        def reset():
            raise _HardReset()

        def bootloader():
            raise _Bootloader()

        impl = types.SimpleNamespace(
            name="micropython", version=self.version, _machine=self.machine
        )
        return {
            "os": self.fs.os_module(),
            "sys": _module("sys", implementation=impl, platform=self.platform, modules={}),
            "hashlib": hashlib,
            "binascii": binascii,
            "json": json,
            "errno": errno,
            "gc": _module("gc", collect=lambda: None, mem_free=lambda: 150_000),
            "time": _module("time", sleep_ms=lambda ms: None, sleep=lambda s: None),
            "machine": _module("machine", reset=reset, bootloader=bootloader),
            "micropython": _module("micropython", const=lambda x: x),
            "_board": _module("_board", board=board),
        }

    def _namespace(self) -> dict:
        mods = self._modules()

        def _import(name, globals=None, locals=None, fromlist=(), level=0):
            if name in mods:
                return mods[name]
            raise ImportError("no module named '%s'" % name)

        def _print(*args, sep=" ", end="\n", file=None):
            self._out.append(sep.join(str(a) for a in args) + end)

        b = dict(builtins.__dict__)
        b.update(__import__=_import, open=self.fs.open, print=_print)
        return {"__builtins__": b, "__name__": "__main__"}

    def run(self, code: bytes | str) -> tuple[bytes, bytes]:
        """Execute code the way the raw REPL does: (stdout, traceback text)."""
        if self._ns is None:
            self._ns = self._namespace()
        self._out = []
        err = ""
        src = code.decode() if isinstance(code, bytes) else code
        try:
            exec(compile(src, "<stdin>", "exec"), self._ns)
        except _HardReset:
            self.reset()
        except _Bootloader:
            self.events.append("bootloader")
            self._ns = None
            self.attached = False
            if self.on_bootloader:
                self.on_bootloader(self)
        except Exception as e:  # noqa: BLE001 - reported as the board would
            tb = traceback.extract_tb(e.__traceback__)
            line = tb[-1].lineno if tb else 1
            err = (
                'Traceback (most recent call last):\r\n  File "<stdin>", line %d\r\n%s: %s\r\n'
                % (
                    line,
                    type(e).__name__,
                    e,
                )
            )
        return "".join(self._out).encode(), err.encode()

    # ---- what the board does -------------------------------------------------------------
    def boot(self) -> bool:
        """boot.py's update step: the board's own /stim/update.py, if it has one and its
        boot.py calls it (a firmware from before switch-over support does not)."""
        self.events.append("boot")
        src = self.fs.files.get("/stim/update.py")
        if src is None or b"stim.update" not in self.fs.files.get("/boot.py", b""):
            return False
        ns = self._namespace()
        try:
            exec(compile(src, "/stim/update.py", "exec"), ns)
            return ns["boot"]()
        except Exception:  # noqa: BLE001 - as boot.py: retried at the next boot
            return False

    def interrupt(self) -> None:
        self.events.append("interrupt")

    def soft_reset(self) -> None:
        self.events.append("soft_reset")
        self._ns = None
        self.boot()

    def reset(self) -> None:
        """machine.reset(), or a power cycle."""
        self.events.append("reset")
        self._ns = None
        self.boot()
        if self.on_reset:
            self.on_reset(self)

    def port_info(self) -> PortInfo:
        return PortInfo(self.port, "Board in FS mode", RP2040_VID, 0x0005, "E6614C311B000000")


class FakeTransport(Transport):
    """mpremote's SerialTransport interface over a FakeBoard, with a cable that can be cut."""

    def __init__(
        self,
        board: FakeBoard,
        *,
        cut_at_byte: int | None = None,
        cut_after_exec: int | None = None,
    ):
        self.board = board
        self.device_name = board.port
        self.in_raw_repl = False
        self.mounted = False
        self.closed = False
        self.sent = 0
        self.execs = 0
        self.dead = False
        self.cut_at_byte = cut_at_byte
        self.cut_after_exec = cut_after_exec

    def _cut(self) -> serial.SerialException:
        self.dead = True
        self.board.attached = False
        return serial.SerialException(
            "device reports readiness to read but returned no data "
            "(device disconnected or multiple access on port?)"
        )

    def _send(self, n: int) -> None:
        if self.dead or self.closed:
            raise serial.SerialException("write failed: [Errno 5] Input/output error")
        if self.cut_at_byte is not None and self.sent + n > self.cut_at_byte:
            self.sent = self.cut_at_byte
            raise self._cut()
        self.sent += n

    def enter_raw_repl(self, soft_reset=True, timeout_overall=10):
        self._send(2)  # \r Ctrl-C
        self.board.interrupt()
        if not self.board.micropython:
            print(b"\r\nbootloader v2.1 >")
            raise TransportError("could not enter raw repl")
        self._send(2)  # \r Ctrl-A
        if soft_reset:
            self._send(1)  # Ctrl-D
            self.board.soft_reset()
        self.in_raw_repl = True

    def exit_raw_repl(self):
        self._send(2)
        self.in_raw_repl = False

    def exec_raw_no_follow(self, command):
        assert self.in_raw_repl, "exec outside the raw REPL"
        b = command if isinstance(command, bytes) else command.encode()
        self._send(len(b) + 1)
        self.board.run(b)
        if "reset" in self.board.events[-1:] or "bootloader" in self.board.events[-1:]:
            self.in_raw_repl = False

    def exec(self, command, data_consumer=None):
        assert self.in_raw_repl, "exec outside the raw REPL"
        b = command if isinstance(command, bytes) else command.encode()
        self._send(len(b) + 1)
        out, err = self.board.run(b)
        self.execs += 1
        if self.cut_after_exec is not None and self.execs >= self.cut_after_exec:
            raise self._cut()
        if data_consumer:
            data_consumer(out)
        if err:
            raise TransportExecError(out, err.decode())
        return out

    def eval(self, expression, parse=True):
        ret = self.exec(f"print(repr({expression}))" if parse else "print(%s)" % expression)
        ret = ret.strip()
        return ast.literal_eval(ret.decode()) if parse else ret

    def close(self):
        self.closed = True


class FakeSerial:
    """A log stream: lines from a list, then (optionally) the cable is pulled."""

    def __init__(self, lines, disconnect_at_end: bool = True, on_close=None, timeout: float = 0.2):
        # str lines are whole lines (CR LF added, as the console sends them); bytes are sent
        # as given, so a test can split a line the way a read timeout does.
        self._lines = [ln if isinstance(ln, bytes) else (ln + "\r\n").encode() for ln in lines]
        self.disconnect_at_end = disconnect_at_end
        # A read that finds nothing waits for the port's timeout, as pyserial's does: on a
        # clock of its own (UnitLink times replies on `clock()` when the stream has one), so a
        # reply that never comes costs the test no wall time and no busy loop.
        self.timeout = timeout
        self._now = 0.0
        self.closed = False
        self.on_close = on_close
        self.written = bytearray()  # what the host sent (a log stream answers nothing)

    def write(self, data: bytes) -> int:
        if self.closed:
            raise serial.SerialException("port closed")
        self.written += data
        return len(data)

    def readline(self) -> bytes:
        if self.closed:
            raise serial.SerialException("port closed")
        if self._lines:
            return self._lines.pop(0)
        if self.disconnect_at_end:
            raise serial.SerialException(
                "device reports readiness to read but returned no data "
                "(device disconnected or multiple access on port?)"
            )
        self._now += self.timeout
        return b""

    def clock(self) -> float:
        return self._now

    def close(self) -> None:
        self.closed = True
        if self.on_close:
            self.on_close(self)


class FakeDeviceIO(DeviceIO):
    def __init__(self, boards=(), other_ports=(), **cut):
        self.boards = {b.port: b for b in boards}
        self.other_ports = list(other_ports)
        self.open_errors: dict[str, BaseException] = {}
        self.cut = cut
        self.transports: list[FakeTransport] = []
        self.serial_script: list = []  # FakeSerial objects (or exceptions) handed out in turn
        self.serial_opens: list[str] = []

    def ports(self) -> list[PortInfo]:
        return [b.port_info() for b in self.boards.values() if b.attached] + self.other_ports

    def _check_open(self, port: str) -> None:
        if port in self.open_errors:
            raise classify_open_error(port, self.open_errors[port])
        b = self.boards.get(port)
        if b is None or not b.attached:
            if any(p.device == port for p in self.other_ports):
                return
            raise classify_open_error(port, OSError(errno.ENOENT, "No such file or directory"))

    def transport(self, port: str) -> FakeTransport:
        self._check_open(port)
        b = self.boards.get(port)
        if b is None:  # a port with something else behind it: no REPL
            b = FakeBoard(port=port, micropython=False)
        t = FakeTransport(b, **self.cut)
        self.transports.append(t)
        return t

    def serial(self, port: str, timeout: float = 0.5):
        self.serial_opens.append(port)
        self._check_open(port)
        if not self.serial_script:
            return FakeSerial([], disconnect_at_end=False, timeout=timeout)
        s = self.serial_script.pop(0)
        if isinstance(s, BaseException):
            raise s
        return s

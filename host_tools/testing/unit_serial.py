"""The simulated unit's USB serial console as a host tool sees a serial port: for tests.

`UnitSerial` has the part of pyserial's `Serial` the host tools use (write, readline with a
timeout, close): what is written reaches the firmware's `sys.stdin` (SimulatedUnit.send), and
readline runs the simulated unit forward until its console has printed a whole line, or until
`timeout` seconds of simulated time have passed (then b"", as pyserial returns on a timeout).
`clock()` is the simulated time, so a host tool's own timeouts run on the same clock.

`UnitDeviceIO` is a DeviceIO whose one RP2040 port is that console.
"""

from __future__ import annotations

import serial

from ..device import RP2040_VID, DeviceIO, PortInfo, classify_open_error
from ..sim.unit import SimulatedUnit

STEP_S = 0.01  # simulated time run per look at the console


class UnitSerial:
    def __init__(self, unit: SimulatedUnit, timeout: float = 0.5):
        self.unit = unit
        self.timeout = timeout
        self.closed = False
        self.written = b""
        self._lines: list[bytes] = []
        unit.console.listeners.append(self._on_line)

    def _on_line(self, line: str, rec) -> None:
        if not self.closed:
            self._lines.append((line + "\r\n").encode())

    def clock(self) -> float:
        return self.unit.chip.t_s

    def write(self, data: bytes) -> int:
        if self.closed:
            raise serial.SerialException("port closed")
        self.written += bytes(data)
        self.unit.send(bytes(data))
        return len(data)

    def readline(self) -> bytes:
        if self.closed:
            raise serial.SerialException("port closed")
        chip = self.unit.chip
        end = chip.now + chip.cycles(self.timeout)  # in cycles: seconds would round to a stall
        while not self._lines and chip.now < end:
            self.unit.run_until(min(end, chip.now + chip.cycles(STEP_S)) / chip.sysclk_hz)
        return self._lines.pop(0) if self._lines else b""

    def reset_input_buffer(self) -> None:
        self._lines.clear()

    def close(self) -> None:
        self.closed = True
        if self._on_line in self.unit.console.listeners:
            self.unit.console.listeners.remove(self._on_line)


class UnitDeviceIO(DeviceIO):
    def __init__(self, unit: SimulatedUnit, port: str = "/dev/ttyACM0"):
        self.unit = unit
        self.port = port
        self.opened: list[UnitSerial] = []

    def ports(self) -> list[PortInfo]:
        return [PortInfo(self.port, "Board in FS mode", RP2040_VID, 0x0005, "E6614C311B000000")]

    def serial(self, port: str, timeout: float = 0.5):
        if port != self.port:
            raise classify_open_error(port, OSError(2, "No such file or directory"))
        s = UnitSerial(self.unit, timeout)
        self.opened.append(s)
        return s

    def transport(self, port: str):
        raise NotImplementedError("the simulated unit has no raw REPL: use FakeBoard for that")

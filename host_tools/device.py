"""Reaching a board from the laptop: serial ports, the MicroPython REPL transport, clear errors.

All device I/O of the host tools goes through a `DeviceIO`: it lists the serial ports, opens a
REPL transport (mpremote's `SerialTransport`, used as a library) and opens a plain serial stream
for the log. Tests pass a fake one (host_tools/testing/fake_transport.py); a virtual board behind a
pseudo-terminal only needs a port name, since `SerialTransport` and pyserial open a pty as they
open /dev/ttyACM0.

Every failure a user can meet is a `DeviceError` with a `kind`, a message saying what happened
and a `hint` saying what to do about it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import sys
from dataclasses import dataclass

RP2040_VID = 0x2E8A  # Raspberry Pi: MicroPython's rp2 port and the RP2040 boot ROM
MICROPYTHON_PID = 0x0005  # MicroPython's USB CDC on rp2
BOOTROM_PID = 0x0003  # the RP2040 boot ROM (RPI-RP2 drive)

PERMISSION_HINT = (
    "give your user access to serial ports: on Debian/Ubuntu `sudo usermod -aG dialout $USER` "
    "(Fedora/Arch: the `uucp` group), then log out and back in"
)
BUSY_HINT = (
    "close the other program using the port (another `stimctl logs`, mpremote, Thonny, screen, "
    "minicom; `fuser -v PORT` names it), then try again"
)


class DeviceError(Exception):
    """A failure the user can act on: `kind` for code and tests, `hint` for the user."""

    def __init__(self, kind: str, msg: str, hint: str = ""):
        super().__init__(msg)
        self.kind = kind
        self.msg = msg
        self.hint = hint

    def __str__(self) -> str:
        return self.msg + ("\n  what to do: " + self.hint if self.hint else "")


@dataclass(frozen=True)
class PortInfo:
    device: str
    description: str = ""
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None

    @property
    def is_rp2040(self) -> bool:
        return self.vid == RP2040_VID

    @property
    def label(self) -> str:
        if not self.is_rp2040:
            return ""
        if self.pid == MICROPYTHON_PID:
            return "MicroPython RP2040"
        return "RP2040 (VID 2E8A)"


class DeviceIO:
    """The real thing: pyserial's port list, mpremote's SerialTransport, pyserial streams."""

    def ports(self) -> list[PortInfo]:
        from serial.tools import list_ports

        return [
            PortInfo(p.device, p.description or "", p.vid, p.pid, p.serial_number)
            for p in list_ports.comports()
        ]

    def transport(self, port: str):
        """An mpremote transport on `port`, opened, not yet in the raw REPL."""
        import serial
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        # SerialTransport reports every open failure as "failed to access": open the port once
        # with pyserial first so permission, busy and missing ports get their own error.
        try:
            serial.Serial(port, 115200, exclusive=True).close()
        except (serial.SerialException, OSError) as e:
            raise classify_open_error(port, e) from None
        try:
            return SerialTransport(port, baudrate=115200)
        except TransportError as e:
            raise DeviceError(
                "busy", "%s: %s" % (port, e), BUSY_HINT.replace("PORT", port)
            ) from None

    def serial(self, port: str, timeout: float = 0.5):
        """A plain serial stream (readline/close) on `port`, for the log."""
        import serial

        try:
            return serial.Serial(port, 115200, timeout=timeout, exclusive=True)
        except (serial.SerialException, OSError) as e:
            raise classify_open_error(port, e) from None


def classify_open_error(port: str, e: BaseException) -> DeviceError:
    """Turn an error from opening a serial port into the DeviceError the user can act on."""
    code = getattr(e, "errno", None)
    text = str(e)
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return DeviceError("permission", "%s: permission denied" % port, PERMISSION_HINT)
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text:
        return DeviceError(
            "busy", "%s: port busy (another program has it open)" % port,
            BUSY_HINT.replace("PORT", port),
        )  # fmt: skip
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in text:
        return DeviceError(
            "no_device", "%s: no such port" % port,
            "plug the board in with a data cable and check the name with `stimctl devices`",
        )  # fmt: skip
    return DeviceError(
        "open_failed", "%s: cannot open: %s" % (port, text),
        "check the cable and the name with `stimctl devices`, then try again",
    )  # fmt: skip


def pick_port(dio: DeviceIO, port: str | None) -> str:
    """`port` if given, else the only RP2040 board connected; a DeviceError otherwise."""
    if port:
        return port
    rp = [p.device for p in dio.ports() if p.is_rp2040 and p.pid != BOOTROM_PID]
    if not rp:
        raise DeviceError(
            "no_device", "no RP2040 board found on any serial port",
            "plug the board in with a data cable (charge-only cables show nothing), check "
            "`stimctl devices`, or give --port; a new Pico needs MicroPython first: "
            "`stimctl runtime`",
        )  # fmt: skip
    if len(rp) > 1:
        raise DeviceError(
            "several_devices", "several RP2040 boards found: %s" % ", ".join(rp),
            "choose one with --port (e.g. --port %s)" % rp[0],
        )  # fmt: skip
    return rp[0]


def link_lost(port: str, e: BaseException, what: str) -> DeviceError:
    return DeviceError(
        "link_lost", "%s: the link to the board dropped %s (%s)" % (port, what, e),
        "check the cable and that the board is still plugged in, then run the command again",
    )  # fmt: skip


def not_micropython(port: str, detail: str = "") -> DeviceError:
    return DeviceError(
        "not_micropython",
        "%s: the device does not answer as a MicroPython REPL%s"
        % (port, (" (" + detail + ")") if detail else ""),
        "check that this is the stimulator's port (`stimctl devices`); if the board has no "
        "MicroPython yet, install it with `stimctl runtime`; if it is stuck, unplug it and "
        "plug it back in",
    )


def enter_repl(t, port: str, soft_reset: bool = True) -> None:
    """Interrupt the running firmware (Ctrl-C: main.py makes the outputs safe in its `finally`)
    and enter the raw REPL; with soft_reset, the heap is cleared and boot.py runs again."""
    from mpremote.transport import TransportError

    # SerialTransport prints what it received when the REPL does not answer; keep that for
    # the error message instead of the terminal.
    buf = io.StringIO()
    # On a pseudo-terminal (a virtual board) mpremote reads byte by byte with no timeout, so a
    # firmware that keeps running through Ctrl-C (a locked console, SR-16) and then stays quiet
    # would hold it for ever: bound each read while entering, as a real port's polling does.
    ser = getattr(t, "serial", None)
    old_timeout = getattr(ser, "timeout", None)
    try:
        if ser is not None:
            ser.timeout = 1.0
        with contextlib.redirect_stdout(buf):
            t.enter_raw_repl(soft_reset=soft_reset)
    except TransportError as e:
        seen = buf.getvalue().strip()
        detail = "%s%s" % (e, "; it sent " + seen[:80] if seen else "")
        raise not_micropython(port, detail) from None
    except OSError as e:
        raise link_lost(port, e, "while entering the REPL") from None
    finally:
        if ser is not None:
            with contextlib.suppress(Exception):
                ser.timeout = old_timeout


def device_info(t, port: str) -> dict:
    """What the board runs: implementation name, version tuple, platform, machine."""
    from mpremote.transport import TransportError

    try:
        t.exec("import sys")
        name, version, platform, machine = t.eval(
            "(sys.implementation.name, tuple(sys.implementation.version), sys.platform, "
            "getattr(sys.implementation, '_machine', ''))"
        )
    except OSError as e:
        raise link_lost(port, e, "while reading its version") from None
    except (TransportError, ValueError, SyntaxError) as e:
        last = (str(e).strip().splitlines() or [""])[-1]
        raise not_micropython(port, "sys.implementation unreadable: " + last) from None
    if name != "micropython":
        raise not_micropython(port, "it runs %s" % name)
    if platform != "rp2":
        raise DeviceError(
            "wrong_platform",
            "%s: MicroPython on %s (%s), not on an RP2040" % (port, platform, machine),
            "this firmware is for RP2040 boards only: choose the Pico's port with --port",
        )  # fmt: skip
    return {
        "name": name,
        "version": tuple(version[:3]),
        "platform": platform,
        "machine": machine,
    }


def open_board(dio: DeviceIO, port: str | None, soft_reset: bool = True, say=None):
    """Pick the port, open the transport, stop the firmware, enter the raw REPL, check it is
    MicroPython on rp2. Returns (port, transport, info); the caller closes the transport.

    A unit whose console is locked (SR-16) keeps running its firmware through Ctrl-C and
    answers only the host protocol: then its wearer is asked for maintenance (`say` tells the
    person at the laptop what to press) and, once allowed, the REPL is entered again."""
    port = pick_port(dio, port)
    for attempt in (0, 1):
        t = dio.transport(port)
        try:
            enter_repl(t, port, soft_reset=soft_reset)
            info = device_info(t, port)
        except DeviceError as e:
            close_quietly(t)
            if attempt or e.kind != "not_micropython" or not ask_maintenance(dio, port, say):
                raise
            continue
        except BaseException:
            close_quietly(t)
            raise
        return port, t, info
    raise AssertionError("unreachable")


MAINTENANCE_WAIT_S = 17.0  # the unit asks for 15 s (stim/unit.py), and the reply's way back


def ask_maintenance(dio: DeviceIO, port: str, say=None) -> bool:
    """SR-16: ask a locked unit's wearer for maintenance through the host protocol. False if
    the port does not answer it (not this firmware); True once the firmware stopped for
    maintenance; DeviceError (maintenance_refused) if the unit or its wearer said no."""
    from .link import CommandError, UnitLink
    from .protocol import LOG_PREFIX, json_line

    answer: dict = {}

    def on_line(text: str) -> None:
        rec = json_line(text, LOG_PREFIX)
        if rec is None:
            return
        if rec.get("ev") == "maintenance":
            answer["yes"] = True
        elif rec.get("ev") == "consent" and rec.get("state") in ("refused", "ended"):
            answer["no"] = rec.get("reason", "")

    try:
        link = UnitLink(dio.serial(port, timeout=0.2), port, on_line=on_line)
    except DeviceError:
        return False
    try:
        try:
            link.command("maintenance")
        except CommandError as e:
            raise DeviceError(
                "maintenance_refused",
                "%s: the unit's console is locked and it refused maintenance: %s" % (port, e.msg),
                "switch the unit on (hold POWER), stop any session and unlock its buttons, "
                "then try again; or switch it on with MODE held (maintenance mode)",
            ) from None
        except DeviceError:
            return False  # no reply to the protocol either: not a unit running its firmware
        (say or print)(
            "%s: the unit's console is locked (SR-16): press PLUS on the unit within 15 s to "
            "allow maintenance (it asks with short, medium and long pulses and a blue double "
            "blink; MINUS refuses). Its firmware then stops with every output off." % port
        )
        t_end = link.clock() + MAINTENANCE_WAIT_S
        while link.clock() < t_end and not answer:
            link.wait(0.2)
    finally:
        link.close()
    if answer.get("yes"):
        return True
    raise DeviceError(
        "maintenance_refused",
        "%s: the wearer did not allow maintenance (%s); nothing was written"
        % (port, "MINUS pressed" if answer.get("no") == "press" else "no press within 15 s"),
        "run the command again and press PLUS on the unit when it asks, or switch the unit "
        "on with MODE held (maintenance mode: the REPL is open, no output can start)",
    )


def close_quietly(t) -> None:
    with contextlib.suppress(Exception):
        if getattr(t, "in_raw_repl", False):
            t.exit_raw_repl()
    with contextlib.suppress(Exception):
        t.close()


def version_str(v) -> str:
    return ".".join(str(x) for x in v)


def fail(what, status: int = 2) -> int:
    """Report an error of a stimctl command on stderr; return its exit status (2 for a device
    that cannot be reached or used, 1 for a refused request or bad input)."""
    print("stimctl: %s" % what, file=sys.stderr)
    return status

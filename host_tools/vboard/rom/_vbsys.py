# `sys` as the rp2 port has it: the interpreter's own module, with the rp2 port's platform and
# machine name and its console stdin (installed as sys.modules["sys"] by _vbinit).
import binascii
from sys import *  # noqa: F403
from sys import stdout as _stdout

import _vb

platform = "rp2"
rtc_offset_s = 0  # machine.RTC's setting of the clock (rom/time.py): kept by a soft reset


class _Implementation:
    name = "micropython"
    version = (1, 29, 0, "")
    _machine = "Raspberry Pi Pico with RP2040"
    _mpy = 6 | (3 << 8) | (2 << 10)  # bytecode v6.3, armv6m

    def __repr__(self):
        return "(name='%s', version=%s, _machine='%s', _mpy=%d)" % (
            self.name, self.version, self._machine, self._mpy)  # fmt: skip


implementation = _Implementation()


def set_machine(name):
    if name:
        _Implementation._machine = name


# ---- the console's input (shared/runtime/sys_stdio_mphal.c on the rp2 port) -----------------
# The WebAssembly port's own sys.stdin reads the Node process's fd 0 directly; on the virtual
# board the host's bytes are in board.mjs's receive queue (the port's USB CDC stdin ring buffer),
# so stdin reads that queue instead, as mp_hal_stdin_rx_chr reads the ring buffer.
_POLL_RD = 0x0001
_POLL_WR = 0x0004
_MP_STREAM_POLL = 3
_MP_STREAM_CLOSE = 4


def _take(n):
    """n bytes from the console, waiting for each as mp_hal_stdin_rx_chr does (machine.Timer
    callbacks run meanwhile; a Ctrl-C raises KeyboardInterrupt)."""
    import _sim

    out = b""
    while n < 0 or len(out) < n:
        got = _vb.rx_take(n - len(out) if n >= 0 else 64)
        if got:
            out += binascii.unhexlify(got)
        else:
            _sim.advance_us(1_000_000, True)
    return out


class _StdinBuffer:
    """`sys.stdin.buffer`: raw bytes. read/readinto block until all asked for have arrived (the
    port's stdio_buffer_read); ioctl(MP_STREAM_POLL) is readable while a byte waits and writable
    always (mp_hal_stdio_poll), so select.poll and asyncio's StreamReader wait on it."""

    _vb_console = True  # select.poll wakes up when the host's bytes arrive
    _text = False

    def _get(self, n):
        b = _take(n)
        return b.replace(b"\r", b"\n") if self._text else b

    def _out(self, b):
        return str(b, "utf-8") if self._text else b

    def read(self, n=-1):
        return self._out(self._get(n))

    def readinto(self, buf, n=-1):
        n = len(buf) if n < 0 else min(n, len(buf))
        b = self._get(n)
        buf[:n] = b
        return n

    def readline(self, n=-1):
        out = b""
        while n < 0 or len(out) < n:
            c = self._get(1)
            out += c
            if c == b"\n":
                break
        return self._out(out)

    def write(self, b):
        _stdout.write(b)
        return len(b)

    def ioctl(self, req, arg):
        if req == _MP_STREAM_POLL:
            ret = arg & _POLL_WR
            if arg & _POLL_RD and _vb.rx_any():
                ret |= _POLL_RD
            return ret
        if req == _MP_STREAM_CLOSE:
            return 0
        raise OSError(22)  # EINVAL

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def __repr__(self):
        return "<io.StringIO 0>"


class _Stdin(_StdinBuffer):
    """`sys.stdin`: the same bytes as text, CR read as LF (the port's stdio_read)."""

    _text = True
    buffer = _StdinBuffer()

    def write(self, b):
        raise OSError(1)  # EPERM: stdin is not for writing


stdin = _Stdin()

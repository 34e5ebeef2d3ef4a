"""`time` of the rp2 port on the virtual board: ticks from the laptop's clock (since power-on,
wrapping at 2**30 as on the port); sleeping waits in real time and stays interruptible; the
date clock starts at 2021-01-01 at power-up as the port's, until machine.RTC sets it."""

import _vb
import _vbsys

# Tick arithmetic and sleeping (through _sim.advance_us, here on the real clock) are those of
# host_tools/mpvm/lib/time.py, shipped to /rom as _simtime.
from _simtime import (  # noqa: F401
    _EPOCH_S,
    gmtime,
    localtime,
    mktime,
    sleep,
    sleep_ms,
    sleep_us,
    ticks_add,
    ticks_diff,
)
from micropython import const

_TICKS_MAX = const((1 << 30) - 1)


def ticks_ms():
    return int(_vb.now_ms()) & _TICKS_MAX


def ticks_us():
    return int(_vb.now_ms() * 1000) & _TICKS_MAX


def ticks_cpu():
    return ticks_us()


def time():
    # The port's clock: 2021-01-01 at power-up (a fresh VM), kept by a soft reset, moved by
    # machine.RTC (ports/rp2/main.c, machine_rtc.c); the offset lives in _vbsys, which a soft
    # reset keeps.
    return _EPOCH_S + _vbsys.rtc_offset_s + int(_vb.now_ms()) // 1000


def time_ns():
    return time() * 1_000_000_000


def _rtc_set(secs):
    _vbsys.rtc_offset_s += secs - time()

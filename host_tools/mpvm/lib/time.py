"""Simulated `time` for the MicroPython VM: the rp2 port's API on the virtual clock in `_sim`.

Sleeping advances the clock (and fires due timers) instead of waiting, so firmware runs as fast
as the VM can execute it. Ticks wrap at 2**30 like the port's, so they stay small ints and
reading them never allocates.
"""

import _sim
from micropython import const

_TICKS_MAX = const((1 << 30) - 1)
_TICKS_HALF = const(1 << 29)
_EPOCH_S = 1_700_000_000


def ticks_us():
    return _sim.us


def ticks_ms():
    return _sim.ms & _TICKS_MAX


def ticks_cpu():
    return _sim.us


def ticks_add(ticks, delta):
    return (ticks + delta) & _TICKS_MAX


def ticks_diff(a, b):
    return ((a - b + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF


def sleep_us(us):
    _sim.advance_us(us)


def sleep_ms(ms):
    _sim.advance_us(ms * 1000)


def sleep(s):
    _sim.advance_us(int(s * 1_000_000))


def time():
    return _EPOCH_S + _sim.ms // 1000


def time_ns():
    return (_EPOCH_S * 1000 + _sim.ms) * 1_000_000 + _sim.sub_us * 1000

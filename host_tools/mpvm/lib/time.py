"""Simulated `time` for the MicroPython VM: the rp2 port's API on the virtual clock in `_sim`.

Sleeping advances the clock (and fires due timers) instead of waiting, so firmware runs as fast
as the VM can execute it. Ticks wrap at 2**30 like the port's, so they stay small ints and
reading them never allocates.
"""

import _sim
from micropython import const

_TICKS_MAX = const((1 << 30) - 1)
_TICKS_HALF = const(1 << 29)
# The rp2 port starts its clock (the always-on timer machine.RTC sets) at 2021-01-01 00:00 UTC at
# every power-up and hard reset, before its soft-reset loop (ports/rp2/main.c): a soft reset keeps
# it. Seconds since 1970 (the port's epoch).
_EPOCH_S = 1_609_459_200
_rtc_offset_s = 0  # what machine.RTC().datetime(...) moved the clock by (machine.py, _rtc_set)


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
    return _EPOCH_S + _rtc_offset_s + _sim.ms // 1000


def time_ns():
    return ((_EPOCH_S + _rtc_offset_s) * 1000 + _sim.ms) * 1_000_000 + _sim.sub_us * 1000


def _rtc_set(secs):
    # machine.RTC().datetime(t): from now on time() reads secs (ports/rp2/machine_rtc.c).
    global _rtc_offset_s
    _rtc_offset_s += secs - time()


def gmtime(secs=None):
    """(year, month, mday, hour, minute, second, weekday (Monday 0), yearday), as the port's.
    The calendar lives in _simcal, imported when first needed: on the port `time` is in flash,
    so the simulated one should not weigh on the heap the firmware's budget is measured on."""
    import _simcal

    return _simcal.gmtime(time() if secs is None else secs)


localtime = gmtime


def mktime(t):
    import _simcal

    return _simcal.mktime(t)

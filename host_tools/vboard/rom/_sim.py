"""Shared state of the simulated rp2 peripherals on the virtual board, on the real clock.

The same interface as host_tools/mpvm/lib/_sim.py (which `machine` and `rp2` from there use),
but time is the laptop's: `advance_us` sleeps (firing machine.Timer callbacks as they fall due,
and returning early when a Ctrl-C from the host schedules KeyboardInterrupt, or, if asked,
when the host's bytes arrive for stdin).
"""

import _vb

# Interrupt dispatch, the state machines' FIFOs and the peripherals' shared state are those of
# host_tools/mpvm/lib/_sim.py, shipped to /rom as _simcore: only the clock differs here.
from _simcore import (  # noqa: F401 - this module's interface, used by machine and rp2
    SYSCLK_HZ,
    TICKS_PERIOD,
    board_inputs,
    call_irq,
    irq_errors,
    pio_mem,
    pio_pulse,
    state_machines,
    timers,
)
from micropython import const

_TICKS_MAX = const((1 << 30) - 1)

us = 0
ms = 0
sub_us = 0


def total_us():
    global us, ms, sub_us
    t = int(_vb.now_ms() * 1000)
    ms = t // 1000
    sub_us = t % 1000
    us = t & _TICKS_MAX
    return t


def fire_due():
    now = total_us()
    while True:
        nxt = None
        for t in timers:
            if t._due_us <= now and (nxt is None or t._due_us < nxt._due_us):
                nxt = t
        if nxt is None:
            return
        nxt._fire()


def advance_us(dt_us, rx=False):
    """Sleep dt_us of real time, firing due timers on the way; with rx, return as soon as the
    console has a byte for stdin (select.poll on sys.stdin, a blocking stdin read)."""
    end = total_us() + max(0, int(dt_us))
    while True:
        fire_due()
        now = total_us()
        if now >= end:
            return
        wake = end
        for t in timers:
            if t._due_us < wake:
                wake = t._due_us
        if _vb.wait((wake - now) / 1000, rx):
            return  # Ctrl-C: KeyboardInterrupt is pending and raised on return
        if rx and _vb.rx_any():
            return

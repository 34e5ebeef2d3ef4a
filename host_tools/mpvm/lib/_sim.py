"""Shared state of the simulated rp2 peripherals on the MicroPython VM (the WebAssembly build).

The fakes next to this file (`time`, `machine`, `rp2`) are MicroPython code that runs on the VM
in place of the rp2 port's C modules; this module is what they share and what a test or a
virtual board drives:

- the virtual clock (`advance_us`): `time.sleep*` advance it, nothing else does, so a run is
  deterministic; `machine.Timer` callbacks fire as it passes their deadlines;
- interrupt dispatch (`call_irq`): a hard handler runs with the heap locked, as the port's
  `mp_irq_handler` does, so an allocation in it raises MemoryError exactly as on the device;
  a handler that raises is reported and disabled, as on the device;
- `pio_pulse(sm_id)`: one pulse of a simulated state machine (it pulls a FIFO pair, then raises
  its IRQ flag), for tests of the pulse engine's refill handler.

Everything an interrupt handler can reach here is allocation-free: counters are small ints
(ticks wrap at 2**30, as on the port) and the FIFOs are counts, not copies.
"""

import micropython
from micropython import const

TICKS_PERIOD = const(1 << 30)
_TICKS_MAX = const((1 << 30) - 1)
SYSCLK_HZ = 125_000_000

us = 0  # ticks_us, wraps at TICKS_PERIOD
ms = 0  # milliseconds since boot (a small int for 12 days)
sub_us = 0  # microseconds into the current millisecond
timers = []  # armed machine.Timer objects
irq_errors = []  # (handler, exception) of every IRQ handler that raised
state_machines = {}  # sm id -> rp2.StateMachine, once created
pio_mem = {}  # "register file" for machine.mem32: address -> value


def total_us():
    return ms * 1000 + sub_us


def _step(dt_us):
    global us, ms, sub_us
    us = (us + dt_us) & _TICKS_MAX
    s = sub_us + dt_us
    ms += s // 1000
    sub_us = s % 1000


def advance_us(dt_us, rx=False):
    """Move the virtual clock on by dt_us, firing every Timer that falls due on the way (`rx`:
    on the virtual board, return when the host's bytes arrive; here nothing arrives)."""
    end = total_us() + max(0, int(dt_us))
    while True:
        nxt = None
        for t in timers:
            if t._due_us <= end and (nxt is None or t._due_us < nxt._due_us):
                nxt = t
        if nxt is None:
            break
        _step(max(0, nxt._due_us - total_us()))
        nxt._fire()
    _step(end - total_us())


def call_irq(handler, arg, hard):
    """Run an interrupt handler as the port does: a hard one with the heap locked."""
    if hard:
        micropython.heap_lock()
    try:
        handler(arg)
        err = None
    except Exception as e:  # noqa: BLE001 - the port catches everything an IRQ raises
        err = e
    if hard:
        micropython.heap_unlock()
    if err is not None:
        irq_errors.append((handler, err))
        print("Uncaught exception in IRQ callback handler")
        return False
    return True


def pio_pulse(sm_id, hard=None):
    """One pulse of state machine `sm_id`: it pulls a (rest, shape) pair if the FIFO holds one,
    then raises its IRQ. `hard` (True/False) overrides how the handler asked to be run, e.g. to
    count what it allocates. Returns False if the handler raised (it is then disabled)."""
    sm = state_machines[sm_id]
    if sm._tx >= 2:
        sm._tx -= 2
    h = sm._irq
    if h is None:
        return True
    if not call_irq(h, sm, sm._hard if hard is None else hard):
        sm._irq = None
        return False
    return True


def board_inputs(board, machine):
    """What a board at rest shows the firmware: buttons released, the boost converter up (about
    79 V through its divider), a battery at about 3.8 V, no electrode current."""
    for n in board["buttons"].values():
        machine.external[n] = 1
    machine.adc_u16[board["boost_adc"] - 26] = 52000
    machine.adc_u16[board["battery_adc"] - 26] = 25000

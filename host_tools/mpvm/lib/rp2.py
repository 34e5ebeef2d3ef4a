"""Simulated `rp2` for the MicroPython VM: MicroPython's own PIO assembler (`_pioasm`, a copy of
host_tools/rp2sim/pioasm.py) with `PIO` and `StateMachine` objects that keep the state the
firmware can observe, without executing PIO code.

A state machine is a configuration (program, frequency, pins), an enable flag, a TX FIFO level
(4 words, or 8 with the FIFOs joined; `put` on a full FIFO would block forever here, so it
raises) and an IRQ handler. `_sim.pio_pulse(sm_id)` plays one pulse: the machine pulls a pair
of words, then raises its IRQ. Its program counter (for `machine.mem32` reads of SMn_ADDR) sits
at the program's load offset, the top of the period.
"""

import _sim
import machine
from _pioasm import PIO as _Const
from _pioasm import PIOASMError, asm_pio, asm_pio_encode  # noqa: F401
from micropython import const

_PIO_BASE = (const(0x50200000), const(0x50300000))
_SM0_ADDR = const(0x0D4)
_SM_STRIDE = const(0x18)
_loaded = [[], []]  # per PIO block: programs loaded, as [prog, length]


class PIO(_Const):
    def __init__(self, id):
        if id not in (0, 1):
            raise ValueError("invalid PIO")
        self._id = id

    def add_program(self, prog):
        _offset(self._id, prog)

    def remove_program(self, prog=None):
        if prog is None:
            _loaded[self._id] = []
        elif prog[1 + self._id] >= 0:
            prog[1 + self._id] = -1

    def state_machine(self, id, prog=None, **kw):
        sm = StateMachine(self._id * 4 + id)
        if prog is not None:
            sm.init(prog, **kw)
        return sm


def _offset(block, prog):
    # As rp2_pio.c: loaded once per block, the offset kept in the program list; programs are
    # placed from the top of the 32-word instruction memory down.
    if prog[1 + block] < 0:
        used = 0
        for p in _loaded[block]:
            used += len(p[0])
        n = len(prog[0])
        if used + n > 32:
            raise OSError(12)  # ENOMEM: no room for the program
        prog[1 + block] = 32 - used - n
        _loaded[block].append(prog)
    return prog[1 + block]


class StateMachine:
    def __new__(cls, id, prog=None, freq=-1, **kw):
        # One object per state machine, as on the port.
        sm = _sim.state_machines.get(id)
        if sm is None:
            if not 0 <= id < 8:
                raise ValueError("invalid StateMachine")
            sm = object.__new__(cls)
            sm._id = id
            sm._active = False
            sm._tx = 0
            sm._irq = None
            sm._hard = False
            sm._depth = 4
            sm.prog = None
            _sim.state_machines[id] = sm
        return sm

    def __init__(self, id, prog=None, freq=-1, **kw):
        if prog is not None:
            self.init(prog, freq, **kw)

    def init(
        self,
        prog,
        freq=-1,
        *,
        in_base=None,
        out_base=None,
        set_base=None,
        jmp_pin=None,
        sideset_base=None,
        in_shiftdir=None,
        out_shiftdir=None,
        push_thresh=None,
        pull_thresh=None,
    ):
        block = self._id // 4
        offset = _offset(block, prog)
        if freq != -1 and not _sim.SYSCLK_HZ // 65536 < freq <= _sim.SYSCLK_HZ:
            raise ValueError("freq out of range")
        self._active = False
        self.prog = prog
        self.freq = freq if freq != -1 else _sim.SYSCLK_HZ
        self.pins = {"in": in_base, "out": out_base, "set": set_base, "side": sideset_base}
        self._depth = 8 if prog[4] >> 30 else 4  # SHIFTCTRL FJOIN bits: joined FIFOs
        self._tx = 0
        # The pins the program declares go to this PIO, at their initial levels.
        for key, inits in (("out", prog[5]), ("set", prog[6]), ("side", prog[7])):
            base = self.pins[key]
            if base is None or not inits:
                continue
            n0 = machine._gpio(base)
            for i, init in enumerate(inits):
                machine.levels[n0 + i] = init & 1
                machine.funcs[n0 + i] = "pio%d" % block
        _sim.pio_mem[_PIO_BASE[block] + _SM0_ADDR + (self._id % 4) * _SM_STRIDE] = offset

    def active(self, value=None):
        if value is None:
            return self._active
        self._active = bool(value)

    def restart(self):
        pass

    def exec(self, instr):
        if isinstance(instr, str):
            asm_pio_encode(instr, 0)

    def put(self, value, shift=0):
        n = 1 if isinstance(value, int) else len(value)
        if self._tx + n > self._depth:
            raise RuntimeError("StateMachine.put blocks forever: the TX FIFO is full")
        self._tx += n

    def get(self, buf=None, shift=0):
        raise RuntimeError("StateMachine.get blocks forever: the program is not executed")

    def tx_fifo(self):
        return self._tx

    def rx_fifo(self):
        return 0

    def irq(self, handler=None, trigger=1, hard=False):
        self._irq = handler
        self._hard = hard

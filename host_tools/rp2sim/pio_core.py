"""Cycle-accurate model of an RP2040 PIO block (four state machines) for the host simulator.

Semantics follow the RP2040 datasheet, chapter 3 ("PIO"); section numbers below refer to it.
Times are absolute system-clock cycles (ints). Each state machine (SM) runs on its own clock
enable from the fractional divider: SM tick k after enable at t0 happens at
``t0 + ((k * (div_int * 256 + div_frac)) >> 8)`` (3.5.5). An instruction takes one SM tick plus
its delay; a stalled instruction repeats every tick until it completes, and its delay only
starts afterwards (3.4.1 / 3.4.3). Side-set is asserted on the first tick of an instruction,
even if it then stalls (3.5.1).

Speed is the point of this module (the simulator runs 30 minutes of 100 Hz pulse trains):

* an instruction word is decoded once per SM configuration into a tuple (``_decode``);
* a stalled SM is *blocked*: it costs nothing until ``wake`` (called on FIFO, IRQ-flag and GPIO
  changes) makes it re-evaluate the stalled instruction at its next tick;
* ``jmp x--``/``jmp y--`` to itself is a countdown loop: n+1 iterations of (1 + delay) ticks are
  executed in one step (clamped to the time limit, so the state stays exact);
  ``next_event_time`` reports the loop's exit, since nothing observable happens inside it;
* unconditional (or statically true) jumps to themselves are idle loops and cost nothing;
* with ``PioBlock.fast_forward``, a steady loop (the pulse program between two parameter
  changes) is interpreted once and then replayed: its writes at the same cycles, its event
  times shown to the chip unchanged (see "steady-loop fast-forward" below).

Cross-SM ordering: instructions of the block's SMs are executed in time order (ties: lower SM
first, so a higher SM's pin write in the same cycle wins, 3.5.6.1). Reads of the IRQ flags see
the flags as they were at the end of the previous cycle, so an ``irq`` executed at cycle t is
seen by another SM at t + 1, as on hardware.

CPU-side accesses (``put``/``get``/``force_irq``/``clear_irq``/``exec_instr``) at time t act
before any SM instruction at t that has not run yet; the chip runs the block up to t - 1 before
a CPU event at t, so they are seen by SM instructions from cycle t on.
"""

from __future__ import annotations

import errno
from collections import deque

M32 = 0xFFFFFFFF

# Decoded instruction kinds, in the order the interpreter tests them (most frequent first).
K_JMP, K_SET, K_MOV, K_OUT, K_PULL, K_WAIT, K_IRQ, K_IN, K_PUSH, K_NOP = range(10)

# Stall (retry) modes: how a stalled instruction is re-evaluated.
_S_FRESH = 0  # first attempt: side-set is applied, the whole instruction executes
_S_RETRY = 1  # plain retry (wait, pull/push block): re-execute, no side-set
_S_IRQWAIT = 2  # `irq wait`: the flag was raised; only wait for it to be lowered
_S_PUSH = 3  # IN stalled on autopush into a full RX FIFO: only retry the push
_S_PULL = 4  # OUT stalled on autopull from an empty TX FIFO (an OUT cycle, 3.5.4.2)

_REV8 = [int(f"{i:08b}"[::-1], 2) for i in range(256)]


def _bitrev32(v: int) -> int:
    return (
        _REV8[v & 0xFF] << 24
        | _REV8[(v >> 8) & 0xFF] << 16
        | _REV8[(v >> 16) & 0xFF] << 8
        | _REV8[v >> 24]
    )


def _rotl(v: int, n: int) -> int:
    """Map bit i of v to pin (n + i) mod 32: pin ranges wrap at 32 (3.5.6)."""
    v &= M32
    return ((v << n) | (v >> (32 - n))) & M32 if n else v


def _rotr(v: int, n: int) -> int:
    """IN/MOV from PINS: bit 0 is GPIO in_base, wrapping at 32 (3.5.6.2)."""
    v &= M32
    return ((v >> n) | (v << (32 - n))) & M32 if n else v


def _span(base: int, count: int) -> int:
    return _rotl((1 << count) - 1, base % 32) if count else 0


# The fast-forward's state in a StateMachineCore (see "steady-loop fast-forward").
_FF_SLOTS = (
    "_rec",
    "_rec_seen",
    "_rec_loop_k",
    "_ff_read",
    "_ff_write",
    "_rp",
    "_rp_i",
    "_rp_base",
    "_rp_done",
    "_rp_lim",
    "_rp_ev",
)

# Reset values of an SM's configuration registers (RP2040 datasheet, PIO register list), as
# StateMachineCore.configure takes them.
RESET_CONFIG = dict(
    wrap_target=0,
    wrap=31,
    sideset_count=0,
    sideset_opt=False,
    sideset_pindirs=False,
    set_base=0,
    set_count=5,
    out_base=0,
    out_count=0,
    in_base=0,
    jmp_pin=0,
    in_shift_right=True,
    out_shift_right=True,
    autopush=False,
    autopull=False,
    push_thresh=32,
    pull_thresh=32,
    fifo_join=0,
)


class StateMachineCore:
    """One state machine: registers, FIFOs, configuration and the interpreter loop."""

    __slots__ = (
        "index",
        "block",
        "pc",
        "x",
        "y",
        "isr",
        "isr_count",
        "osr",
        "osr_count",
        "tx_fifo",
        "rx_fifo",
        "enabled",
        "t_next",
        # configuration
        "_wrap_target",
        "_wrap",
        "_ss_count",
        "_ss_opt",
        "_ss_pindirs",
        "_ss_base",
        "_set_base",
        "_set_count",
        "_out_base",
        "_out_count",
        "_out_mask",
        "_in_base",
        "_jmp_pin",
        "_in_right",
        "_out_right",
        "_autopush",
        "_autopull",
        "_push_thresh",
        "_pull_thresh",
        "_fifo_join",
        "_tx_depth",
        "_rx_depth",
        "_status_sel",
        "_status_n",
        "_div_int",
        "_div_frac",
        "_D",
        # execution state
        "_t0",
        "_k",
        "_rem",
        "_blocked",
        "_stall",
        "_xp",
        "_dcache",
        "_tx_times",
        "_ap_from",
        "_in_loop",
        "_busy",
        *_FF_SLOTS,  # fast-forward (see "steady-loop fast-forward" below)
    )

    def __init__(self, block: PioBlock, index: int):
        self.index = index
        self.block = block
        self.pc = 0
        self.x = 0
        self.y = 0
        self.isr = 0
        self.isr_count = 0
        self.osr = 0
        self.osr_count = 32  # empty after reset/restart, so the first OUT autopulls (3.5.4)
        self.tx_fifo: deque[int] = deque()
        self.rx_fifo: deque[int] = deque()
        self._tx_times: deque[int] = deque()  # CPU write time of each TX entry (autopull)
        self.enabled = False
        self.t_next = 0
        self._t0 = 0
        self._k = 0
        self._rem = 0  # ticks of delay left when the SM was disabled
        self._blocked = False
        self._stall = _S_FRESH
        self._xp: int | None = None  # pending SMx_INSTR / OUT EXEC / MOV EXEC instruction
        self._ap_from = 0  # first tick a background autopull may refill the empty OSR
        self._in_loop = False
        self._busy = False
        self._ff_reset()
        self._fifo_join = 0
        self.configure(**RESET_CONFIG)

    # ---- configuration -------------------------------------------------------------------
    def configure(
        self,
        *,
        wrap_target,
        wrap,
        sideset_count,
        sideset_opt,
        sideset_pindirs,
        set_base,
        set_count,
        out_base,
        out_count,
        in_base,
        jmp_pin,
        in_shift_right,
        out_shift_right,
        autopush,
        autopull,
        push_thresh,
        pull_thresh,
        fifo_join,
        status_sel=0,
        status_n=0,
        clkdiv_int=1,
        clkdiv_frac=0,
        sideset_base=0,
    ) -> None:
        """Load the SM's EXECCTRL/SHIFTCTRL/PINCTRL/CLKDIV settings.

        ``sideset_count`` is PINCTRL_SIDESET_COUNT: the number of delay/side-set bits used for
        side-set, *including* the enable bit when ``sideset_opt`` (EXECCTRL_SIDE_EN) is set.
        Thresholds are 1..32 (a register value of 0 means 32). ``clkdiv_int`` 0 means 65536.
        """
        self._ff_stop()
        self._wrap_target = wrap_target & 31
        self._wrap = wrap & 31
        self._ss_count = sideset_count
        self._ss_opt = bool(sideset_opt)
        self._ss_pindirs = bool(sideset_pindirs)
        self._ss_base = sideset_base % 32
        self._set_base = set_base % 32
        self._set_count = set_count
        self._out_base = out_base % 32
        self._out_count = out_count
        self._out_mask = _span(out_base, out_count)
        self._in_base = in_base % 32
        self._jmp_pin = jmp_pin % 32
        self._in_right = bool(in_shift_right)
        self._out_right = bool(out_shift_right)
        self._autopush = bool(autopush)
        self._autopull = bool(autopull)
        self._push_thresh = push_thresh or 32
        self._pull_thresh = pull_thresh or 32
        if fifo_join != self._fifo_join:
            # Changing FJOIN flushes both FIFOs (SHIFTCTRL_FJOIN_TX/RX descriptions).
            self.tx_fifo.clear()
            self._tx_times.clear()
            self.rx_fifo.clear()
        self._fifo_join = fifo_join
        # 3.5.3: joining gives one direction both 4-entry FIFOs; the other has none.
        self._tx_depth = 8 if fifo_join == 1 else 0 if fifo_join == 2 else 4
        self._rx_depth = 8 if fifo_join == 2 else 0 if fifo_join == 1 else 4
        self._status_sel = status_sel
        self._status_n = status_n
        self._div_int = clkdiv_int
        self._div_frac = clkdiv_frac
        new_d = (clkdiv_int or 65536) * 256 + clkdiv_frac
        if self.enabled and new_d != getattr(self, "_D", new_d):
            self._t0, self._k = self.t_next, 0  # re-base the divider at the next tick
        self._D = new_d
        self._dcache: dict[int, tuple] = {}
        self._in_loop = False

    def sideset_count_for_exec(self) -> int:
        """PINCTRL_SIDESET_COUNT (inclusive of the enable bit), as asm_pio_encode expects."""
        return self._ss_count

    def sideset_opt_for_exec(self) -> bool:
        return self._ss_opt

    # ---- tick arithmetic -----------------------------------------------------------------
    def _time(self, k: int) -> int:
        return self._t0 + ((k * self._D) >> 8)

    def _ceil_tick(self, t: int) -> int:
        """First tick whose time is >= t."""
        a = (t - self._t0) * 256
        return -(-a // self._D) if a > 0 else 0

    # ---- decode --------------------------------------------------------------------------
    def _decode(self, w: int) -> tuple:
        """Decode one instruction word for this SM's configuration (3.4.1 encoding).

        Tuple: (kind, a, b, c, delay, side-set pin mask, side-set pin values, side-set on
        pindirs). Side-set and delay share bits 12:8: the top SIDESET_COUNT bits are side-set,
        the MSB of which is the enable bit when SIDE_EN is set (3.5.1).
        """
        op = w >> 13
        dss = (w >> 8) & 0x1F
        ssc = self._ss_count
        delay = dss & ((1 << (5 - ssc)) - 1)
        ssm = ssv = 0
        if ssc:
            bits = dss >> (5 - ssc)
            n = ssc
            apply = True
            if self._ss_opt:
                n -= 1
                apply = bool(bits >> n & 1)
                bits &= (1 << n) - 1
            if apply and n:
                ssm = _span(self._ss_base, n)
                ssv = _rotl(bits, self._ss_base) & ssm
        a = b = c = 0
        arg = w & 0xFF
        if op == 0:
            kind, a, b = K_JMP, arg >> 5, arg & 0x1F
        elif op == 1:
            src = (arg >> 5) & 3
            idx = arg & 0x1F
            kind, a, c = K_WAIT, src, arg >> 7
            if src == 0:
                b = 1 << idx  # GPIO: absolute pin number
            elif src == 1:
                b = 1 << ((self._in_base + idx) % 32)  # PIN: in_base + index, mod 32
            elif src == 2:
                b = 1 << self._irq_index(idx)
            else:
                kind = K_NOP  # reserved source
        elif op == 2:
            n = arg & 0x1F or 32
            kind, a, b, c = K_IN, arg >> 5, n, (1 << n) - 1
        elif op == 3:
            n = arg & 0x1F or 32
            kind, a, b, c = K_OUT, arg >> 5, n, (1 << n) - 1
        elif op == 4:
            if arg & 0x1F:
                kind = K_NOP  # reserved encodings
            else:
                kind = K_PULL if arg & 0x80 else K_PUSH
                a, b = (arg >> 6) & 1, (arg >> 5) & 1  # IfFull/IfEmpty, Block
        elif op == 5:
            kind, a, b, c = K_MOV, arg >> 5, arg & 7, (arg >> 3) & 3
        elif op == 6:
            if arg & 0x80:
                kind = K_NOP  # reserved
            else:
                # 3.4.9: Clear wins over Wait.
                kind = K_IRQ
                a = 2 if arg & 0x40 else (1 if arg & 0x20 else 0)
                b = 1 << self._irq_index(arg & 0x1F)
        else:
            dest = arg >> 5
            data = arg & 0x1F
            kind, a, b = K_SET, dest, data
            if dest in (0, 4):
                c = _span(self._set_base, self._set_count)
                b = _rotl(data, self._set_base) & c
            elif dest not in (1, 2):
                kind = K_NOP
        d = (kind, a, b, c, delay, ssm, ssv, self._ss_pindirs)
        self._dcache[w] = d
        return d

    def _irq_index(self, idx: int) -> int:
        """3.4.9.2: with the MSB of the index set, add the SM number modulo 4 to the 2 LSBs."""
        if idx & 0x10:
            return (idx & 4) | (((idx & 3) + self.index) & 3)
        return idx & 7

    # ---- CPU-side control ----------------------------------------------------------------
    def set_enabled(self, on: bool, t: int) -> None:
        """CTRL.SM_ENABLE. Enabling starts at t (tick 0 of the divider, 3.5.5); a delay that
        was running when the SM was disabled continues where it stopped."""
        on = bool(on)
        if on == self.enabled:
            return
        self._ff_stop()
        if on:
            self.block._ff_break(self)
        if on:
            self.enabled = True
            self._t0 = t
            self._k = self._rem
            self._rem = 0
            self.t_next = self._time(self._k)
            if self._blocked:
                self._blocked = False  # re-evaluate the stalled instruction at once
        else:
            self._catch_up(t - 1)
            if not self._blocked:
                self._rem = max(0, self._k - self._ceil_tick(t))
            self.enabled = False
        self.block._resched = True

    def restart(self, t: int) -> None:
        """CTRL.SM_RESTART: clear shift counters, ISR, delay, stall and pending EXEC; keep PC,
        OSR contents and X/Y. The OSR counter goes to 'empty' (32) so that autopull refills."""
        self._ff_stop()
        self.block._ff_break(self)
        self._catch_up(t - 1)
        self.isr = 0
        self.isr_count = 0
        self.osr_count = 32
        self._stall = _S_FRESH
        self._blocked = False
        self._xp = None
        self._rem = 0
        self._in_loop = False
        if self.enabled:
            self._k = self._ceil_tick(t)
            self.t_next = self._time(self._k)
        self._ap_from = self._k
        self.block._resched = True

    def clkdiv_restart(self, t: int) -> None:
        """CTRL.CLKDIV_RESTART: the divider phase restarts at t; pending delay ticks remain."""
        self._ff_stop()
        self._catch_up(t - 1)
        if self.enabled:
            rem = max(0, self._k - self._ceil_tick(t))
            self._t0 = t
            self._k = rem
            self.t_next = self._time(rem)
            self._ap_from = 0
            self.block._resched = True

    def exec_instr(self, instr: int, t: int) -> None:
        """SMx_INSTR: execute `instr` now (at the SM's first tick >= t when enabled), in place
        of the next program instruction. If it stalls it stays latched and completes later,
        even on a disabled SM (EXECCTRL_EXEC_STALLED). Only a jump changes the PC."""
        self._ff_stop()
        self.block._ff_break(self)
        self._catch_up(t - 1)
        self._xp = instr & 0xFFFF
        self._blocked = False
        self._stall = _S_FRESH
        self._in_loop = False
        if self.enabled:
            self._k = self._ceil_tick(t)
        else:
            self._t0, self._k = t, 0
        self.t_next = self._time(self._k)
        self.block._resched = True
        self._run(self.t_next)

    def _catch_up(self, t: int) -> None:
        """Bring this SM up to date before a CPU intervention at t + 1: it may lag inside a
        countdown loop, which `next_event_time` lets the chip skip over."""
        if self.enabled and not self._blocked and not self._busy and self.t_next <= t:
            self._run(t)

    def put(self, value: int, t: int) -> bool:
        """CPU write to TXF. False (and nothing written) if the TX FIFO is full."""
        self._ff_stop()
        if self._autopull:
            self._ap_settle(t)
        if len(self.tx_fifo) >= self._tx_depth:
            return False
        self.tx_fifo.append(value & M32)
        self._tx_times.append(t)
        if self._blocked:
            self._unblock(t)
        return True

    def get(self, t: int) -> int | None:
        """CPU read of RXF. None if the RX FIFO is empty."""
        self._ff_stop()
        if not self.rx_fifo:
            return None
        v = self.rx_fifo.popleft()
        if self._blocked:
            self._unblock(t)
        return v

    def tx_level(self, t: int | None = None) -> int:
        if t is not None and self._autopull:
            self._ap_settle(t)
        return len(self.tx_fifo)

    def rx_level(self) -> int:
        return len(self.rx_fifo)

    def _unblock(self, t: int) -> None:
        """Re-evaluate the stalled instruction at the first tick >= t (and after the tick on
        which it last stalled)."""
        k = self._ceil_tick(t)
        if k <= self._k:
            k = self._k + 1
        self._k = k
        self.t_next = self._time(k)
        self._blocked = False
        self.block._resched = True
        if self.block.fast_forward:
            self.block._ff_break(self)  # another SM runs: the steady one is no longer alone

    def _ap_refill(self, t: int) -> None:
        self.osr = self.tx_fifo.popleft()
        self._tx_times.popleft()
        self.osr_count = 0
        self.block.io.fifo_changed(self.block.index, self.index, t)

    def _ap_settle(self, t: int) -> None:
        """Apply a background autopull that hardware would have done by time t (3.5.4.2: on
        non-OUT cycles an empty OSR is refilled as soon as the TX FIFO has data)."""
        if not self.tx_fifo or self.osr_count < self._pull_thresh:
            return
        if not self.enabled:
            return
        if self._blocked:
            if self._stall == _S_PULL:
                return  # stalled OUT: its own cycles are OUT cycles
            last = self._ceil_tick(t + 1) - 1  # ticks up to t are stall (non-OUT) cycles
        else:
            last = self._k - 1  # ticks before the next instruction are non-OUT cycles
        kmin = max(self._ap_from, self._ceil_tick(self._tx_times[0]))
        if kmin <= last and self._time(kmin) <= t:
            self._ap_refill(self._time(kmin))

    # ---- the interpreter -----------------------------------------------------------------
    def _run(self, limit: int) -> None:
        """Execute this SM's instructions that start at or before `limit`.

        Returns early when the SM blocks, or after a callback/IRQ change that requires the
        block to re-select which SM runs next (`PioBlock._resched`, chip's `yield_now`).
        """
        if self._busy:
            return
        self._busy = True
        try:
            if self._rp is None:
                if self._rec is None and self.block.fast_forward:
                    self._ff_start()
                self._interp(limit)
            if self._rp is not None:  # replaying, or the interpreter just found the loop
                self._ff_replay(limit)
        finally:
            self._busy = False

    def _interp(self, limit: int) -> None:
        blk = self.block
        io = blk.io
        mem = blk.instr_mem
        cache = self._dcache
        bi = blk.index
        si = self.index
        t0 = self._t0
        D = self._D
        wrap = self._wrap
        wrap_target = self._wrap_target
        ap = self._autopull
        pth = self._pull_thresh
        k = self._k
        pc = self.pc
        t = self.t_next
        while t <= limit:
            xp = self._xp
            if xp is None:
                if not self.enabled:
                    return
                w = mem[pc]
                is_exec = False
                npc = wrap_target if pc == wrap else (pc + 1) & 31
            else:
                w = xp
                self._xp = None
                is_exec = True
                npc = pc  # an executed instruction does not advance the PC
            d = cache.get(w)
            if d is None:
                d = self._decode(w)
            kind = d[0]
            mode = self._stall
            # Side-set happens on an instruction's first tick; a countdown/idle loop resumed
            # after being cut at a time limit has already asserted it.
            ss_now = d[5] and mode == _S_FRESH and not self._in_loop
            nk = k + 1 + d[4]
            bm = -1  # >= 0: the instruction stalls and blocks; the retry mode
            nstall = _S_FRESH  # retry mode if it stalls for one tick without blocking
            pins_v = pins_m = dirs_v = dirs_m = 0
            cb = False  # a callback was made: the chip may have changed things
            in_loop = False

            if ap and self.osr_count >= pth and self.tx_fifo and mode != _S_PULL:
                # Background autopull on an earlier non-OUT cycle (3.5.4.2).
                kmin = max(self._ap_from, self._ceil_tick(self._tx_times[0]))
                if kmin <= k - 1:
                    self._ap_refill(t0 + ((kmin * D) >> 8))
                    cb = True

            if kind == K_JMP:
                cond = d[1]
                tgt = d[2]
                if cond == 0:
                    if tgt == pc and not is_exec:
                        # Idle loop: nothing changes until an intervention; skip to limit.
                        L = nk - k
                        kmax = ((limit - t0 + 1) * 256 - 1) // D
                        nk = k + ((kmax - k) // L + 1) * L
                        in_loop = True
                    npc = tgt
                elif cond == 2 or cond == 4:
                    r = self.x if cond == 2 else self.y
                    if tgt == pc and r and not is_exec:
                        # Countdown loop (jmp x--/y-- to itself): r + 1 iterations of L ticks;
                        # run those that start by `limit` in one step.
                        L = nk - k
                        kmax = ((limit - t0 + 1) * 256 - 1) // D
                        m = (kmax - k) // L + 1
                        if m > r:
                            m = r + 1  # the last iteration falls through with r == 0
                            r = M32
                        else:
                            r -= m
                            npc = pc
                            in_loop = True
                        nk = k + m * L
                    else:
                        if r:
                            npc = tgt
                        r = (r - 1) & M32  # post-decrement, whether or not taken
                    if cond == 2:
                        self.x = r
                    else:
                        self.y = r
                elif cond == 1:
                    if self.x == 0:
                        npc = tgt
                        if tgt == pc and not is_exec:
                            L = nk - k
                            kmax = ((limit - t0 + 1) * 256 - 1) // D
                            nk = k + ((kmax - k) // L + 1) * L
                            in_loop = True
                elif cond == 3:
                    if self.y == 0:
                        npc = tgt
                        if tgt == pc and not is_exec:
                            L = nk - k
                            kmax = ((limit - t0 + 1) * 256 - 1) // D
                            nk = k + ((kmax - k) // L + 1) * L
                            in_loop = True
                elif cond == 5:
                    if self.x != self.y:
                        npc = tgt
                        if tgt == pc and not is_exec:
                            L = nk - k
                            kmax = ((limit - t0 + 1) * 256 - 1) // D
                            nk = k + ((kmax - k) // L + 1) * L
                            in_loop = True
                elif cond == 6:
                    if io.read_gpio(t) >> self._jmp_pin & 1:
                        npc = tgt
                else:  # !OSRE: output shift count below the pull threshold
                    if self.osr_count < pth:
                        npc = tgt
            elif kind == K_SET:
                dest = d[1]
                if dest == 0:
                    pins_v, pins_m = d[2], d[3]
                elif dest == 1:
                    self.x = d[2]
                elif dest == 2:
                    self.y = d[2]
                else:
                    dirs_v, dirs_m = d[2], d[3]
            elif kind == K_MOV:
                src = d[2]
                if src == 1:
                    v = self.x
                elif src == 2:
                    v = self.y
                elif src == 7:
                    v = self.osr
                elif src == 6:
                    v = self.isr
                elif src == 0:
                    v = _rotr(io.read_gpio(t), self._in_base)
                elif src == 5:
                    # STATUS (3.4.8.2): all-ones if the selected FIFO level < STATUS_N.
                    lvl = len(self.rx_fifo) if self._status_sel else len(self.tx_fifo)
                    v = M32 if lvl < self._status_n else 0
                else:
                    v = 0  # NULL and the reserved source
                op = d[3]
                if op == 1:
                    v ^= M32
                elif op == 2:
                    v = _bitrev32(v)
                dest = d[1]
                if dest == 1:
                    self.x = v
                elif dest == 2:
                    self.y = v
                elif dest == 7:
                    self.osr = v
                    self.osr_count = 0  # full
                elif dest == 6:
                    self.isr = v
                    self.isr_count = 0  # empty
                elif dest == 0:
                    pins_m = self._out_mask
                    pins_v = _rotl(v, self._out_base) & pins_m
                elif dest == 5:
                    npc = v & 31
                elif dest == 4:
                    # MOV EXEC: the executee runs on the next tick; the MOV's delay is
                    # ignored (3.4.8.2).
                    self._xp = v & 0xFFFF
                    nk = k + 1
            elif kind == K_OUT:
                go = True
                if ap and self.osr_count >= pth:
                    # 3.5.4.2, OUT cycle with an empty OSR: refill if possible, and stall.
                    go = False
                    if self.tx_fifo:
                        self._ap_refill(t)
                        cb = True
                        nk = k + 1
                        npc = pc
                        if is_exec:
                            self._xp = w
                        nstall = _S_PULL
                    else:
                        bm = _S_PULL
                if go:
                    n = d[2]
                    osr = self.osr
                    if self._out_right:
                        data = osr & d[3]
                        self.osr = osr >> n
                    else:
                        data = osr >> (32 - n)
                        self.osr = (osr << n) & M32
                    c = self.osr_count + n
                    self.osr_count = c if c < 32 else 32
                    dest = d[1]
                    if dest == 1:
                        self.x = data
                    elif dest == 2:
                        self.y = data
                    elif dest == 0:
                        pins_m = self._out_mask
                        pins_v = _rotl(data, self._out_base) & pins_m
                    elif dest == 4:
                        dirs_m = self._out_mask
                        dirs_v = _rotl(data, self._out_base) & dirs_m
                    elif dest == 5:
                        npc = data & 31
                    elif dest == 6:
                        self.isr = data
                        self.isr_count = n  # 3.4.5.2: OUT ISR sets the counter to Bit count
                    elif dest == 7:
                        # OUT EXEC: executee on the next tick; the OUT's delay is ignored.
                        self._xp = data & 0xFFFF
                        nk = k + 1
                    if ap and self.osr_count >= pth:
                        # Refill in parallel with shifting out the last data (3.5.4.2).
                        if self.tx_fifo:
                            self._ap_refill(t)
                            cb = True
                        else:
                            self._ap_from = k + 1
            elif kind == K_PULL:
                if (d[1] or ap) and self.osr_count < pth:
                    pass  # IfEmpty / autopull barrier: no-op while the OSR has data (3.4.7.2)
                elif self.tx_fifo:
                    self.osr = self.tx_fifo.popleft()
                    self._tx_times.popleft()
                    self.osr_count = 0
                    io.fifo_changed(bi, si, t)
                    cb = True
                elif d[2]:
                    bm = _S_RETRY
                else:
                    self.osr = self.x  # non-blocking PULL of an empty FIFO copies X
                    self.osr_count = 0
            elif kind == K_WAIT:
                src = d[1]
                if src == 2:
                    f = blk._irq_prev if blk._irq_t == t else blk.irq_flags
                    if bool(f & d[2]) == bool(d[3]):
                        if d[3]:
                            blk._irq_write(blk.irq_flags & ~d[2], t, si)  # WAIT 1 IRQ clears
                            cb = True
                    elif f != blk.irq_flags:
                        # Another SM changed the flags in this very cycle (after its wake-ups
                        # went out): look again on the next tick.
                        nk, npc, nstall = k + 1, pc, _S_RETRY
                        if is_exec:
                            self._xp = w
                    else:
                        bm = _S_RETRY
                elif bool(io.read_gpio(t) & d[2]) != bool(d[3]):
                    bm = _S_RETRY
            elif kind == K_IRQ:
                m = d[2]
                if mode == _S_IRQWAIT:
                    f = blk._irq_prev if blk._irq_t == t else blk.irq_flags
                    if f & m:
                        if f != blk.irq_flags:  # changed this cycle: look again next tick
                            nk, npc, nstall = k + 1, pc, _S_IRQWAIT
                            if is_exec:
                                self._xp = w
                        else:
                            bm = _S_IRQWAIT
                elif d[1] == 2:
                    blk._irq_write(blk.irq_flags & ~m, t, si)
                    cb = True
                else:
                    blk._irq_write(blk.irq_flags | m, t, si)
                    cb = True
                    if d[1] == 1:
                        bm = _S_IRQWAIT  # IRQ WAIT: stall until the flag is lowered
            elif kind == K_IN:
                if mode != _S_PUSH:
                    src = d[1]
                    if src == 1:
                        v = self.x
                    elif src == 2:
                        v = self.y
                    elif src == 0:
                        v = _rotr(io.read_gpio(t), self._in_base)
                    elif src == 6:
                        v = self.isr
                    elif src == 7:
                        v = self.osr
                    else:
                        v = 0
                    n = d[2]
                    v &= d[3]
                    if self._in_right:
                        self.isr = (self.isr >> n) | (v << (32 - n)) & M32
                    else:
                        self.isr = ((self.isr << n) | v) & M32
                    c = self.isr_count + n
                    self.isr_count = c if c < 32 else 32
                if self._autopush and self.isr_count >= self._push_thresh:
                    # 3.5.4.1: push and clear; stall (without shifting again) if RX is full.
                    if len(self.rx_fifo) < self._rx_depth:
                        self.rx_fifo.append(self.isr)
                        self.isr = 0
                        self.isr_count = 0
                        io.fifo_changed(bi, si, t)
                        cb = True
                    else:
                        bm = _S_PUSH
            elif kind == K_PUSH:
                if d[1] and self.isr_count < self._push_thresh:
                    pass  # IfFull: no-op below the threshold
                elif len(self.rx_fifo) < self._rx_depth:
                    self.rx_fifo.append(self.isr)
                    self.isr = 0
                    self.isr_count = 0
                    io.fifo_changed(bi, si, t)
                    cb = True
                elif d[2]:
                    bm = _S_RETRY
                else:
                    self.isr = 0  # PUSH noblock to a full FIFO: data lost, ISR cleared
                    self.isr_count = 0
            # K_NOP: nothing

            if bm >= 0:
                # Stalled: retry when something changes. Side-set happened on the first tick.
                if self._rec is not None:
                    self._ff_abort()  # waiting on the outside world: not a steady loop
                self._stall = bm
                self._blocked = True
                self._k = k
                self.pc = pc
                self.t_next = t
                if is_exec:
                    self._xp = w
                if ap and bm != _S_PULL and self.tx_fifo and self.osr_count >= pth:
                    kmin = max(self._ap_from, self._ceil_tick(self._tx_times[0]))
                    if kmin <= k:
                        self._ap_refill(t0 + ((kmin * D) >> 8))
                if ss_now:
                    if d[7]:
                        io.pio_pindirs(bi, si, d[6], d[5], t)
                    else:
                        io.pio_output(bi, si, d[6], d[5], t)
                return
            self._stall = nstall
            self._in_loop = in_loop
            tc = t
            ks = k
            ps = pc
            k = nk
            pc = npc
            t = t0 + ((k * D) >> 8)
            self._k = k
            self.pc = pc
            self.t_next = t
            # Pin effects at the instruction's cycle; side-set last so that it wins over the
            # instruction's own write to the same pin (3.5.6.1).
            if pins_m:
                io.pio_output(bi, si, pins_v, pins_m, tc)
                cb = True
            if dirs_m:
                io.pio_pindirs(bi, si, dirs_v, dirs_m, tc)
                cb = True
            if ss_now:
                if d[7]:
                    io.pio_pindirs(bi, si, d[6], d[5], tc)
                else:
                    io.pio_output(bi, si, d[6], d[5], tc)
                cb = True
            if self._rec is not None and self._ff_step(
                ks, ps, kind, d, is_exec, mode, nstall, in_loop, ss_now,
                pins_v, pins_m, dirs_v, dirs_m,
            ):  # fmt: skip
                return  # the steady loop is found: _run replays it from here
            if cb and (blk._resched or blk.yield_now):
                return

    # ---- steady-loop fast-forward -------------------------------------------------------
    # A state machine in a loop that reads nothing from outside but IRQ flags nobody changes
    # (no GPIO, no FIFO data, no EXEC, no stall) repeats itself exactly: once the interpreter
    # has seen the state after a step come back (same PC, registers and shift counters, a
    # whole number of ticks later), the steps in between are replayed instead of interpreted:
    # the same pin and IRQ-flag writes at the same cycles, and the chip sees the same next
    # event times, so every observer, interrupt and CPU charge is what interpretation gives.
    # Anything from outside (a CPU access to the SM, a change of an IRQ flag the loop reads,
    # another SM starting in the block) first puts the interpreter's exact state back
    # (_ff_materialize) and interpretation resumes. `PioBlock.fast_forward` switches it on.
    #
    # A recorded step: (start tick, ops or None, state key after it, tick after it, tick of
    # the next event the chip is shown after it, is a countdown loop). Ops, in the order the
    # interpreter makes them: (0, 0, mask) IRQ set, (1, 0, mask) IRQ clear, (2, values, mask)
    # pin outputs, (3, values, mask) pin directions.
    _FF_MAX_STEPS = 512  # a loop longer than this is not looked for

    def _ff_reset(self) -> None:
        self._rec: list | None = None
        self._rec_seen: dict = {}
        self._rec_loop_k: int | None = None
        self._ff_read = 0  # IRQ flags the recorded steps waited on (for 0)
        self._ff_write = 0  # IRQ flags they set or cleared
        self._rp: tuple | None = None  # the loop being replayed
        self._rp_i = 0  # its next step
        self._rp_base = 0  # ticks added to the recorded ticks for this repetition
        # (step, repetition base) of the last replayed step that is not a countdown loop
        self._rp_done: tuple[int, int] | None = None
        self._rp_lim = 0  # the time the interpreter would have run up to
        self._rp_ev = 0  # the next event time the chip is shown

    def _ff_abort(self) -> None:
        """Stop recording (the steps seen so far are not a steady loop)."""
        self._rec = None
        self._rec_seen = {}
        self._rec_loop_k = None
        self._ff_read = 0
        self._ff_write = 0

    def _ff_stop(self) -> None:
        """Something from outside the SM: back to the exact interpreter state."""
        if self._rp is not None:
            self._ff_materialize()
        if self._rec is not None:
            self._ff_abort()

    def _ff_start(self) -> None:
        if (
            self.enabled
            and self._xp is None
            and not self._blocked
            and not self.tx_fifo
            and not self._autopull
            and not self._autopush
            and not any(s is not self and s._runnable() for s in self.block.sms)
        ):
            self._rec = []

    def _event_k(self) -> int | None:
        """The tick of this SM's next observable event (see `_event_time`; None: idle for
        ever): its next instruction, or the exit of the countdown loop it is in."""
        pc = self.pc
        w = self.block.instr_mem[pc]
        d = self._dcache.get(w) or self._decode(w)
        if d[0] != K_JMP or d[2] != pc or (d[5] and not self._in_loop):
            return self._k
        cond = d[1]
        if cond == 2 or cond == 4:
            r = self.x if cond == 2 else self.y
            return self._k + (r + 1) * (1 + d[4])
        if (
            cond == 0
            or (cond == 1 and self.x == 0)
            or (cond == 3 and self.y == 0)
            or (cond == 5 and self.x != self.y)
        ):
            return None
        return self._k

    def _ff_step(
        self, ks, ps, kind, d, is_exec, mode, nstall, in_loop, ss_now, pv, pm, dv, dm
    ) -> bool:
        """Record one interpreted step; True when it closes a steady loop (replay starts)."""
        if is_exec or mode != _S_FRESH or nstall != _S_FRESH:
            self._ff_abort()
            return False
        ops: list = []
        loop = 0  # a countdown loop: the ticks of one pass (1 + its delay)
        if kind == K_JMP:
            cond = d[1]
            if cond == 6:
                self._ff_abort()  # jmp pin reads a GPIO
                return False
            if d[2] == ps:
                if cond != 2 and cond != 4:
                    if in_loop:
                        self._ff_abort()  # an idle loop: nothing to replay
                        return False
                elif ss_now or d[5]:
                    self._ff_abort()  # a countdown loop with side-set: kept interpreted
                    return False
                else:
                    loop = 1 + d[4]
                    if in_loop:  # cut at the time limit: the rest of it comes as another step
                        if self._rec_loop_k is None:
                            self._rec_loop_k = ks
                        return False
                    if self._rec_loop_k is not None:
                        ks = self._rec_loop_k
                        self._rec_loop_k = None
        elif kind == K_WAIT:
            if d[1] != 2 or d[3]:
                self._ff_abort()  # waits on a GPIO, or clears the flag it waited for
                return False
            self._ff_read |= d[2]
        elif kind == K_IRQ:
            if d[1] == 1:
                self._ff_abort()
                return False
            ops.append((1 if d[1] == 2 else 0, 0, d[2]))
            self._ff_write |= d[2]
        elif kind == K_MOV:
            if d[2] == 0 or d[2] == 5 or d[1] == 4:
                self._ff_abort()  # reads the pins or the FIFO level, or executes
                return False
        elif kind == K_OUT:
            if d[1] == 7:
                self._ff_abort()
                return False
        elif kind == K_IN or kind == K_PUSH:
            self._ff_abort()  # the CPU reads the RX FIFO
            return False
        # K_SET, K_NOP, and K_PULL of the FIFO kept empty (any put stops the recording)
        if pm:
            ops.append((2, pv, pm))
        if dm:
            ops.append((3, dv, dm))
        if ss_now:
            ops.append((3 if d[7] else 2, d[6], d[5]))
        evk = self._event_k()
        rec = self._rec
        if evk is None or rec is None or len(rec) >= self._FF_MAX_STEPS:
            self._ff_abort()
            return False
        key = (self.pc, self.x, self.y, self.isr, self.isr_count, self.osr, self.osr_count)
        rec.append((ks, tuple(ops) if ops else None, key, self._k, evk, loop))
        seen = self._rec_seen
        i = seen.get(key)
        if i is None:
            seen[key] = len(rec) - 1
            return False
        # The state after this step was seen after step i: steps i+1.. repeat for ever, unless
        # they write a flag they also wait on. Start the replay after a step without effects,
        # so that the interpreter returns here exactly as it would have gone on.
        if ops or self._ff_write & self._ff_read:
            return False
        cycle = rec[i + 1 :]
        period = self._k - rec[i][3]
        if period <= 0:
            self._ff_abort()
            return False
        self._rec = None
        self._rec_seen = {}
        self._rp = (
            [c[0] for c in cycle],
            [c[1] for c in cycle],
            [c[2] for c in cycle],
            [c[3] for c in cycle],
            [c[4] for c in cycle],
            [c[5] for c in cycle],
            period,
        )
        self._rp_i = 0
        self._rp_base = period
        self._rp_done = None
        self._rp_lim = self._time(ks)
        self._rp_ev = self._time(evk)
        self.block._ff_solo = self
        return True

    def _ff_replay(self, limit: int) -> None:
        """Replay the loop's steps that start at or before `limit` (what `_interp` would do)."""
        starts, opsl, _keys, _afters, evs, loops, period = self._rp
        n = len(starts)
        i = self._rp_i
        base = self._rp_base
        t0 = self._t0
        D = self._D
        blk = self.block
        io = blk.io
        bi = blk.index
        si = self.index
        last_i = -1
        last_base = 0
        blk.ff_calls += 1
        while True:
            t = t0 + (((base + starts[i]) * D) >> 8)
            if t > limit:
                if limit > self._rp_lim:
                    self._rp_lim = limit
                break
            ops = opsl[i]
            last_i, last_base = i, base
            if not loops[i]:
                self._rp_done = (i, base)
            i += 1
            if i == n:
                i = 0
                base += period
            if ops is not None:
                self._rp_i = i
                self._rp_base = base
                self._rp_ev = t0 + (((last_base + evs[last_i]) * D) >> 8)
                self.t_next = t0 + (((base + starts[i]) * D) >> 8)
                self._rp_lim = t
                for code, v, m in ops:
                    if code == 2:
                        io.pio_output(bi, si, v, m, t)
                    elif code == 3:
                        io.pio_pindirs(bi, si, v, m, t)
                    elif code == 0:
                        blk._irq_write(blk.irq_flags | m, t, si)
                    else:
                        blk._irq_write(blk.irq_flags & ~m, t, si)
                if self._rp is None:
                    return  # a callback brought the interpreter back
                if blk._resched or blk.yield_now:
                    return
                last_i = -1
        self._rp_i = i
        self._rp_base = base
        k_next = base + starts[i]
        self.t_next = t0 + ((k_next * D) >> 8)
        if last_i >= 0:
            pass_k = loops[last_i]
            if pass_k and t0 + (((k_next - pass_k) * D) >> 8) > limit:
                # Stopped before a countdown loop's last pass: the interpreter shows the loop's
                # exit as its next event (_event_k), not what follows it.
                self._rp_ev = self.t_next
            else:
                self._rp_ev = t0 + (((last_base + evs[last_i]) * D) >> 8)

    # What materialising changes: the interpreter's registers and the fast-forward's state.
    _FF_FIELDS = (
        ("pc", "x", "y", "isr", "isr_count", "osr", "osr_count", "_stall", "_in_loop", "_k")
        + ("t_next",)
        + _FF_SLOTS
    )

    def _ff_peek_pc(self) -> int:
        """The PC as the interpreter would have it now, leaving the replay running: reading
        SMn_ADDR changes nothing, and the firmware reads it before every LEVEL change."""
        saved = [getattr(self, f) for f in self._FF_FIELDS]
        solo = self.block._ff_solo
        self._ff_materialize()  # interprets nothing but countdown loops: no effects
        pc = self.pc
        for f, v in zip(self._FF_FIELDS, saved, strict=True):
            setattr(self, f, v)
        self.block._ff_solo = solo
        return pc

    def _ff_materialize(self) -> None:
        """The interpreter's state as if it had run every replayed step: the state after the
        last one that is not a countdown loop, then the loops after it, interpreted up to
        where the chip had run the SM (a loop cut there is cut as the interpreter cuts it)."""
        rp = self._rp
        self._rp = None
        if self.block._ff_solo is self:
            self.block._ff_solo = None
        done = self._rp_done
        if rp is not None and done is not None:
            i, base = done
            pc, x, y, isr, isr_count, osr, osr_count = rp[2][i]
            self.pc, self.x, self.y = pc, x, y
            self.isr, self.isr_count, self.osr, self.osr_count = isr, isr_count, osr, osr_count
            self._stall = _S_FRESH
            self._in_loop = False
            self._k = base + rp[3][i]
        self.t_next = self._time(self._k)
        lim = self._rp_lim
        self._ff_abort()
        if self.t_next <= lim:
            busy = self._busy
            self._busy = True
            try:
                self._interp(lim)
            finally:
                self._busy = busy
        self._ff_abort()  # start looking for the loop afresh at the next run

    # ---- scheduling ----------------------------------------------------------------------
    def _runnable(self) -> bool:
        return not self._blocked and (self.enabled or self._xp is not None)

    def _event_time(self) -> int | None:
        """When this runnable SM next does something observable (see module docstring)."""
        if self._rp is not None:
            return self._rp_ev
        if self._xp is not None:
            return self.t_next
        k = self._event_k()
        if k is None:
            return None  # idle forever (until the CPU intervenes)
        return self.t_next if k == self._k else self._time(k)


class PioBlock:
    """One PIO block: 32 instruction words, 8 IRQ flags, 4 state machines."""

    def __init__(self, index: int, io):
        self.index = index
        self.io = io
        self.instr_mem: list[int] = [0] * 32
        self.irq_flags = 0
        self._irq_prev = 0  # flags as they were before the writes made at cycle _irq_t
        self._irq_t = -1
        self._used = 0  # allocated instruction slots (bit per address)
        self._programs: dict[tuple[int, ...], list[int]] = {}  # words -> [offset, users]
        self._resched = False
        self._running = False
        self.yield_now = False  # set by the chip in a callback: stop run_until there
        # Replay steady state-machine loops instead of interpreting them (exact; the chip
        # switches it on, `Chip.fast_forward`).
        self.fast_forward = False
        self.ff_calls = 0  # times a replayed loop ran instead of the interpreter (tests)
        # The SM replaying a loop, when it is the only runnable one (which the fast-forward
        # requires: any other starting ends the replay): scheduling need not look at the rest.
        self._ff_solo: StateMachineCore | None = None
        self.sms = [StateMachineCore(self, i) for i in range(4)]

    def _ff_break(self, keep: StateMachineCore | None = None) -> None:
        """Every other SM back to plain interpretation (one starts to run, memory changes)."""
        for s in self.sms:
            if s is not keep and (s._rp is not None or s._rec is not None):
                s._ff_stop()

    def _ff_flags(self, old: int, new: int) -> None:
        """IRQ flags changed: a loop that waits on one of them is no longer steady."""
        changed = old ^ new
        for s in self.sms:
            if s._ff_read & changed:
                s._ff_stop()

    def materialize(self) -> None:
        """The exact interpreter state of every SM (before a register is read from outside)."""
        self._ff_break()

    def sm_pc(self, i: int) -> int:
        """SMn_ADDR: SM i's program counter (a replayed loop keeps running)."""
        sm = self.sms[i]
        return sm.pc if sm._rp is None else sm._ff_peek_pc()

    # ---- instruction memory --------------------------------------------------------------
    def add_program(self, words) -> int:
        """Load a program as pico-sdk pio_add_program does: the highest free offset that fits
        ("work down from the top always"), JMP targets relocated by the offset. A program
        already loaded (same words) is shared and its offset returned."""
        self._ff_break()
        key = tuple(int(w) & 0xFFFF for w in words)
        entry = self._programs.get(key)
        if entry is not None:
            entry[1] += 1
            return entry[0]
        n = len(key)
        if not 0 < n <= 32:
            raise OSError(errno.ENOMEM, "PIO program does not fit")
        pmask = (1 << n) - 1
        for off in range(32 - n, -1, -1):
            if not self._used & (pmask << off):
                break
        else:
            raise OSError(errno.ENOMEM, "no space in PIO instruction memory")
        for i, w in enumerate(key):
            self.instr_mem[off + i] = (w + off) & 0xFFFF if w >> 13 == 0 else w
        self._used |= pmask << off
        self._programs[key] = [off, 1]
        return off

    def remove_program(self, words, offset) -> None:
        self._ff_break()
        key = tuple(int(w) & 0xFFFF for w in words)
        entry = self._programs.get(key)
        if entry is None or entry[0] != offset:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del self._programs[key]
            self._used &= ~(((1 << len(key)) - 1) << offset)

    # ---- IRQ flags -----------------------------------------------------------------------
    def _irq_write(self, new: int, t: int, sm_index: int) -> None:
        """An SM writes the flags at cycle t: other SMs see the change from t + 1."""
        if self._irq_t != t:
            self._irq_prev = self.irq_flags
            self._irq_t = t
        if new != self.irq_flags:
            if self.fast_forward:
                self._ff_flags(self.irq_flags, new)
            self.irq_flags = new
            self._resched = True
            for s in self.sms:
                if s._blocked and s.index != sm_index:
                    s._unblock(t + 1)
            self.io.irq_changed(self.index, new, t)

    def force_irq(self, mask: int, t: int) -> None:
        """CPU write of IRQ_FORCE: set flags."""
        self._cpu_irq(self.irq_flags | (mask & 0xFF), self._irq_prev | (mask & 0xFF), t)

    def clear_irq(self, mask: int, t: int) -> None:
        """CPU write of 1s to IRQ: clear flags."""
        keep = ~mask & 0xFF
        self._cpu_irq(self.irq_flags & keep, self._irq_prev & keep, t)

    def _cpu_irq(self, new: int, prev: int, t: int) -> None:
        self._irq_prev = prev
        if new != self.irq_flags:
            if self.fast_forward:
                self._ff_flags(self.irq_flags, new)
            self.irq_flags = new
            self.wake(t)
            self.io.irq_changed(self.index, new, t)

    # ---- scheduling ----------------------------------------------------------------------
    def wake(self, t: int) -> None:
        """Something an SM may be waiting on changed at t (FIFO, IRQ flag, GPIO input):
        blocked SMs re-evaluate their stalled instruction at their first tick >= t."""
        for s in self.sms:
            if s._blocked:
                s._unblock(t)

    def next_event_time(self) -> int | None:
        solo = self._ff_solo
        if solo is not None:
            return solo._rp_ev
        best = None
        for s in self.sms:
            if s._blocked or not (s.enabled or s._xp is not None):
                continue
            te = s._event_time()
            if te is not None and (best is None or te < best):
                best = te
        return best

    def run_until(self, t_limit: int) -> None:
        """Execute every SM instruction that starts at or before t_limit, in time order."""
        if self._running:
            return
        self._running = True
        self.yield_now = False
        sms = self.sms
        try:
            while True:
                solo = self._ff_solo
                if solo is not None:
                    # What the loop below does when only this SM can run.
                    self._resched = False
                    if solo.t_next > t_limit:
                        break
                    solo._run(t_limit)
                    if self.yield_now:
                        break
                    continue
                self._resched = False
                # The SM with the earliest next instruction runs first (ties: lower index, so
                # that a higher SM's pin write in the same cycle wins)...
                best = None
                bt = 0
                run = []
                for s in sms:
                    if s._blocked or not (s.enabled or s._xp is not None):
                        continue
                    run.append(s)
                    if best is None or s.t_next < bt:
                        best, bt = s, s.t_next
                if best is None or bt > t_limit:
                    break
                # ... up to the next *observable* instruction of any other SM: iterations of a
                # countdown loop neither read nor write anything shared, so two SMs in loops
                # do not have to alternate cycle by cycle.
                lim = t_limit
                for s in run:
                    if s is not best:
                        te = s._event_time()
                        if te is not None:
                            if s.index < best.index:
                                te -= 1
                            if te < lim:
                                lim = te
                best._run(lim)
                if self.yield_now:
                    break
        finally:
            self._running = False

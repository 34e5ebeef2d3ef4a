"""Pulse engine: one PIO state machine per channel makes the biphasic pulses, the channel's
LEVEL PWM sets their amplitude. The CPU does no work per pulse edge.

The PIO program (below) makes, every period: PHASE_A high for W cycles, a gap of G cycles,
PHASE_B high for W cycles, then rest. Both phases count down the same register value, so they
are equal by construction (SR-4); a single `set pins` instruction drives the A/B pair, and no
instruction sets both bits, so they are never high together (SR-5).

Parameters arrive through the TX FIFO as a (rest, shape) pair and are only picked up at the top
of a period, so a change never truncates a pulse. The CPU can hold the state machine at the
pulse boundary with a "gate" IRQ flag (4 + state machine number), forced through the PIO's
IRQ_FORCE register: `hold()` sets the gate and waits until the program counter is outside a
pulse, which takes at most one pulse (2 W + G, about 1 ms). Stopping, and any change of the
LEVEL amplitude, happens only while held, so a pulse is never cut short or changed half way.
"""

import time
from array import array

import rp2
from machine import PWM, Pin, mem32
from micropython import const

from stim import pulse

_TYPE_CHECKING = const(0)  # true only for the type checker (mypy-firmware.ini: always_true)
if _TYPE_CHECKING:
    from rp2.asm_pio import *  # noqa: F403 - the instruction names asm_pio injects

_PIO_BASE = (const(0x50200000), const(0x50300000))
_IRQ = const(0x030)
_IRQ_FORCE = const(0x034)
_SM0_ADDR = const(0x0D4)
_SM_STRIDE = const(0x18)

# Program counter offsets (relative to the program's load address) where no phase is in
# progress and none can start while the gate is held: the top of the period up to and
# including the gate `wait`, and everything after PHASE_B ends.
_PC_GATE = const(7)
_PC_PULSE_END = const(20)
_PC_LAST = const(23)


# The rp2 stubs type set_init as a list and wait()'s source as an int; rp2.py takes any
# sequence, and `irq` as a wait source, as MicroPython's own PIO examples write it.
@rp2.asm_pio(set_init=(rp2.PIO.OUT_LOW, rp2.PIO.OUT_LOW), out_shiftdir=rp2.PIO.SHIFT_RIGHT)  # type: ignore[arg-type]
def biphasic():
    # X holds the rest word (bit 31 toggles on every update so a new word always differs);
    # ISR holds the shape word (W-2 in bits 0..15, G-5 in bits 16..31).
    wrap_target()
    pull(noblock)  # 0  OSR <- FIFO head, or X when the FIFO is empty
    mov(y, osr)  # 1
    jmp(x_not_y, "load")  # 2  a new (rest, shape) pair arrived
    jmp("gate")[2]  # 3  same length as the load path
    label("load")
    mov(x, y)  # 4  X = new rest word
    pull(block)  # 5  OSR = shape word (the host always pushes both)
    mov(isr, osr)  # 6
    label("gate")
    wait(0, irq, rel(4))  # type: ignore[arg-type]  # 7  the CPU holds flag 4+sm at a boundary
    mov(osr, isr)  # 8
    out(y, 16)  # 9  y = W - 2
    set(pins, 0b01)  # 10 phase A (positive)
    label("a")
    jmp(y_dec, "a")  # 11
    set(pins, 0b00)  # 12 interphase gap
    out(y, 16)  # 13 y = G - 5
    label("g")
    jmp(y_dec, "g")  # 14
    mov(osr, isr)  # 15
    out(y, 16)  # 16 y = W - 2
    set(pins, 0b10)  # 17 phase B (negative), same width
    label("b")
    jmp(y_dec, "b")  # 18
    set(pins, 0b00)  # 19
    irq(rel(0))  # 20 pulse done: SENSE is read now
    mov(osr, x)  # 21
    out(y, 31)  # 22 rest count (bit 31 toggle dropped)
    label("r")
    jmp(y_dec, "r")  # 23
    wrap()


class Channel:
    """One stimulation channel's output stage: bridge pins, PIO state machine, LEVEL PWM."""

    def __init__(self, index, cfg, board, sysclk_hz):
        self.index = index
        self.cfg = cfg
        # Channels alternate between the two PIO blocks (0 -> SM0, 1 -> SM4, 2 -> SM1, 3 -> SM5)
        # so each block's 32-word memory holds one copy of the program for at most two SMs.
        self.sm_id = (index % 2) * 4 + index // 2
        self._pio = self.sm_id // 4
        self._smi = self.sm_id % 4
        self._base = _PIO_BASE[self._pio]
        self.div = pulse.sm_divider(sysclk_hz)
        self.sm_hz = sysclk_hz // self.div
        self._level_hz = board["analog"]["level_pwm_hz"]
        self._duty_lsb = 65535 * self._level_hz // sysclk_hz + 1  # one compare step, in u16
        # Two PWM periods for the double-buffered compare to land, plus the filter settling.
        self.settle_us = 2 * 1_000_000 // self._level_hz + 20
        cal = board["analog"]["level_calibration"]
        self._cal = [(float(d), float(m)) for d, m in cal]
        self._level = PWM(Pin(cfg["level_pwm"]), freq=self._level_hz, duty_u16=0)
        self._sm = None
        self._pairs = []
        self._next = 0
        self.plan = None
        self.pulses = 0
        self.running = False
        self.level_ma = 0.0
        self._irq_handler = self._on_pulse  # bound once: creating it in the IRQ would allocate

    # -- amplitude ----------------------------------------------------------------------
    def duty_for_ma(self, ma):
        """LEVEL duty (u16) for a current, inverting the board's calibration table."""
        cal = self._cal
        if ma <= cal[0][1]:
            return 0
        for i in range(1, len(cal)):
            d0, m0 = cal[i - 1]
            d1, m1 = cal[i]
            if ma <= m1:
                duty = d0 + (d1 - d0) * (ma - m0) / (m1 - m0)
                # Round down, and by one more PWM compare step, because the port rounds the
                # u16 duty to the nearest compare value: the current never exceeds the request
                # (SR-3), at the price of at most one compare step below it.
                return max(0, int(duty * 65535) - self._duty_lsb)
        return 65535

    # -- gate ---------------------------------------------------------------------------
    def hold(self):
        """Hold the state machine at the next pulse boundary; return once no pulse is running."""
        mem32[self._base + _IRQ_FORCE] = 1 << (4 + self._smi)
        if self._sm is None or not self.running:
            return
        addr = self._base + _SM0_ADDR + self._smi * _SM_STRIDE
        while True:
            pc = mem32[addr] - self._offset
            if pc <= _PC_GATE or pc >= _PC_PULSE_END:
                return
            time.sleep_us(20)

    def release(self):
        mem32[self._base + _IRQ] = 1 << (4 + self._smi)

    # -- control ------------------------------------------------------------------------
    def _load_plan(self, plan):
        """Precompute the FIFO words of a plan: one (rest, shape) pair per pulse, toggles
        alternating, as memoryviews the interrupt handler can push without allocating."""
        n = len(plan)
        reps = 1 if n == 1 else (2 if n % 2 else 1)  # an even cycle keeps toggles alternating
        words = array("I", bytearray(8 * n * reps))
        cyc = []
        for i in range(n * reps):
            period_us, phase_us, gap_us = plan[i % n]
            w, g, p = pulse.cycles(1_000_000 / period_us, phase_us, gap_us, self.sm_hz, period_us)
            # Pair 0 carries the toggle bit, so it differs from X (cleared by _arm) and is read.
            rest, shape = pulse.words(w, g, p, (i + 1) & 1)
            words[2 * i] = rest
            words[2 * i + 1] = shape
            cyc.append((w, g, p))
        mv = memoryview(words)
        self._words = words
        self._pairs = [mv[2 * i : 2 * i + 2] for i in range(n * reps)]
        self._cycles = cyc
        self._next = 0
        self.plan = plan

    def _push_next(self):
        self._sm.put(self._pairs[self._next])
        self._next += 1
        if self._next == len(self._pairs):
            self._next = 0

    def _on_pulse(self, sm):
        # Hard IRQ after every pulse: keep one plan entry queued ahead of the state machine.
        # Allocation-free: indexes a prebuilt list, pushes a prebuilt memoryview.
        self.pulses += 1
        if len(self._pairs) > 1 and sm.tx_fifo() <= 2:
            self._push_next()

    def _arm(self, plan):
        """(Re)initialise the state machine, disabled, with the plan's first pairs queued."""
        self._sm.init(biphasic, freq=self.sm_hz, set_base=Pin(self.cfg["phase_a"]))
        # init() keeps X from the last run: clear it, so the first rest word (toggle bit set)
        # is always seen as new and the shape word is read with it.
        self._sm.exec("set(x, 0)")
        self._load_plan(plan)
        self._push_next()
        if len(self._pairs) > 1:
            self._push_next()
        self._sm.irq(self._irq_handler, 1, True)

    def start(self, plan, level_ma):
        """Begin pulsing the plan at `level_ma` (the caller ramps it up from a low value)."""
        self.hold()
        self._level.duty_u16(self.duty_for_ma(level_ma))
        self.level_ma = level_ma
        self._sm = rp2.StateMachine(self.sm_id)
        self._arm(plan)
        # The load offset that rp2.py keeps in the program list (_PROG_OFFSET_PIO0 + n).
        self._offset = biphasic[1 + self._pio]  # type: ignore[index]
        self.pulses = 0
        time.sleep_us(self.settle_us)
        self._sm.active(1)
        self.running = True
        self.release()

    def set_plan(self, plan):
        """Switch to a new plan at a pulse boundary: hold, restart the queue, release."""
        if not self.running:
            return
        self.hold()
        self._sm.active(0)
        self._arm(plan)
        self._sm.active(1)
        self.release()

    def set_level_ma(self, ma):
        """Change the amplitude between pulses: hold, set LEVEL, let it settle, release."""
        if ma == self.level_ma:
            return
        self.hold()
        self._level.duty_u16(self.duty_for_ma(ma))
        self.level_ma = ma
        time.sleep_us(self.settle_us)
        if self.running:
            self.release()

    def stop(self):
        """Stop at a pulse boundary (<= one pulse), then make the pins safe."""
        self.hold()
        if self._sm is not None:
            self._sm.active(0)
            self._sm.irq(None)
        Pin(self.cfg["phase_a"], Pin.OUT, value=0)
        Pin(self.cfg["phase_b"], Pin.OUT, value=0)
        self._level.duty_u16(0)
        self.level_ma = 0.0
        self.running = False
        self.plan = None
        self.release()

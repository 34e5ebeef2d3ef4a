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

The same pulse-done interrupt reads the channel's SENSE right after each pulse, while the
peak-hold still holds the pulse's electrode voltage, and compares it with integer thresholds
(stim.electrode). An open, shorted or broken load trips the channel inside the interrupt: the
gate is forced, so no further pulse starts, and LEVEL goes to 0 (SR-6). The stimulator finds the
trip on its next tick and does the rest (intensity to 0, LED, log).
"""

import time
from array import array

import rp2
from machine import ADC, PWM, Pin, mem32
from micropython import const

from stim import electrode, pulse

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
_RING = const(8)  # readings kept for the stimulator (a power of two)
_SETTLE_PULSES = const(3)  # the hold's residue is below 2 % after three periods at 150 Hz


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
        # Compare steps per LEVEL period (TOP + 1) when the port can use divider 1.
        top1 = (sysclk_hz + self._level_hz // 2) // self._level_hz
        self._top1 = top1 if top1 <= 65536 else 0
        # Two PWM periods for the double-buffered compare to land, plus the filter settling.
        self.settle_us = 2 * 1_000_000 // self._level_hz + 20
        cal = board["analog"]["level_calibration"]
        self._cal = [(float(d), float(m)) for d, m in cal]
        self._level = PWM(Pin(cfg["level_pwm"]), freq=self._level_hz, duty_u16=0)
        self._level_duty = 0
        # Addresses above 2**30 are not small ints in MicroPython: computed once here, so the
        # interrupt handler can force the gate without allocating.
        self._force_addr = self._base + _IRQ_FORCE
        self._gate_bit = 1 << (4 + self._smi)
        # SENSE: scale, thresholds (in ADC counts) and what the interrupt handler saw.
        self._adc = ADC(cfg["sense_adc"])
        self.scale = electrode.Scale(board)
        self.boost_v = board["analog"]["compliance_v"]  # the stimulator sets the measured value
        self.trip = electrode.OK  # set by the interrupt handler: why it stopped the output
        self.sense_n = 0  # readings taken since start()
        self.sense_last = 0  # the latest reading, in ADC counts
        self.level_n = 0  # sense_n when LEVEL last changed
        self.ohm_q12 = 0  # load = (reading * ohm_q12) >> 12 at the present LEVEL; 0: not judged
        self.sense_ring = array("H", bytearray(2 * _RING))  # the latest readings
        self._judge = 0  # 1 while the current is high enough to judge the load
        self._open_c = 65535
        self._short_c = -1
        self._rail_c = 65535
        self._sat_c = 65535
        self._settle = 0
        self._drop_ok = 0  # the previous reading is a fair reference for this one
        self._prev_c = 0
        self._prev_fresh = False
        self._prev_i = 0
        self._done_i = 0
        self._decay = array("H", [electrode.DECAY_ONE])
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

    def ma_for_duty(self, duty_u16):
        """Current the source pushes at a LEVEL duty: the board's calibration table, after
        the port's rounding of the duty to a compare value (machine_pwm.c)."""
        if self._top1:
            x = ((duty_u16 * self._top1 + 32767) // 65535) / self._top1
        else:
            x = duty_u16 / 65535
        cal = self._cal
        for i in range(1, len(cal)):
            d0, m0 = cal[i - 1]
            d1, m1 = cal[i]
            if x <= d1:
                return m0 + (m1 - m0) * (x - d0) / (d1 - d0)
        return cal[-1][1]

    def _set_duty(self, duty):
        self._level.duty_u16(duty)
        if duty < self._level_duty:
            self._drop_ok = 0  # a weaker pulse may fairly read below the last one's residue
            # ... and the residue of the stronger pulses may read above the weaker pulse's
            # open threshold: for a few pulses, only a reading at the compliance limit (what a
            # lifted electrode gives at any current) is an open.
            self._settle = _SETTLE_PULSES
        self._level_duty = duty
        self.level_n = self.sense_n  # readings up to here were taken at the old level
        self._update_thresholds()

    # -- sense --------------------------------------------------------------------------
    def _update_thresholds(self):
        """Recompute the interrupt handler's limits for the current LEVEL (task context)."""
        ma = self.delivered_ma()
        judge = ma >= electrode.MIN_JUDGE_MA or (self._judge and ma >= electrode.RELEASE_JUDGE_MA)
        self._judge = 0  # the handler must never see new limits half written
        o, s, r = electrode.thresholds(self.scale, ma, self.boost_v)
        self._open_c = o
        self._short_c = s
        self._rail_c = r
        self._sat_c = self.scale.counts(electrode.COMPLIANCE_FRACTION * self.boost_v)
        self._judge = 1 if judge else 0
        self.ohm_q12 = electrode.ohm_factor_q12(self.scale, ma)

    def delivered_ma(self):
        """The current LEVEL is set to push (after the duty's rounding)."""
        return self.ma_for_duty(self._level_duty) if self._level_duty else 0.0

    def read_sense(self):
        """A SENSE reading now, in ADC counts (task context: idle checks)."""
        return self._adc.read_u16()

    def _sense(self):
        # Median of three conversions: one corrupted conversion cannot trip or hide a fault.
        adc = self._adc
        a = adc.read_u16()
        b = adc.read_u16()
        c = adc.read_u16()
        if a > b:
            a, b = b, a
        if b > c:
            b = c
        return b if b > a else a

    def _judge_pulse(self, m, fresh):
        """Fault code for a post-pulse reading m (interrupt context, integers only)."""
        if m >= self._rail_c:
            return electrode.SENSE
        if m >= (self._sat_c if self._settle else self._open_c):
            return electrode.OPEN
        if m <= self._short_c:
            return electrode.SHORT
        if (
            not fresh
            and self._drop_ok
            and self._prev_fresh
            and not self._settle
            and self._prev_c > 4 * self._short_c
        ):
            # No fresh peak where the previous pulse, at the same or a lower current, made
            # one: the load fell by more than the hold's decay in one period. That is a short,
            # even while the residue still reads above SHORT_OHM.
            return electrode.SHORT
        return electrode.OK

    def _trip(self, code):
        # SR-6: no further pulse starts (the gate holds the state machine at the top of the next
        # period) and the source is turned down; the stimulator makes the pins safe on its tick.
        mem32[self._force_addr] = self._gate_bit
        self._level.duty_u16(0)
        self.trip = code

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
        if self.trip:
            return  # a tripped channel stays held until stop() and a new start()
        mem32[self._base + _IRQ] = 1 << (4 + self._smi)

    # -- control ------------------------------------------------------------------------
    def _load_plan(self, plan):
        """Precompute the FIFO words of a plan: one (rest, shape) pair per pulse, toggles
        alternating, as memoryviews the interrupt handler can push without allocating."""
        n = len(plan)
        reps = 1 if n == 1 else (2 if n % 2 else 1)  # an even cycle keeps toggles alternating
        words = array("I", bytearray(8 * n * reps))
        cyc = []
        decay = array("H", bytearray(2 * n * reps))
        for i in range(n * reps):
            period_us, phase_us, gap_us = plan[i % n]
            w, g, p = pulse.cycles(1_000_000 / period_us, phase_us, gap_us, self.sm_hz, period_us)
            # Pair 0 carries the toggle bit, so it differs from X (cleared by _arm) and is read.
            rest, shape = pulse.words(w, g, p, (i + 1) & 1)
            words[2 * i] = rest
            words[2 * i + 1] = shape
            cyc.append((w, g, p))
            decay[i] = self.scale.decay_q12(period_us)
        mv = memoryview(words)
        self._words = words
        self._pairs = [mv[2 * i : 2 * i + 2] for i in range(n * reps)]
        self._cycles = cyc
        self._drop_ok = 0  # the next reading has no reference in the new plan
        self._prev_i = 0
        self._done_i = 0
        self._decay = decay
        self._next = 0
        self.plan = plan

    def _push_next(self):
        self._sm.put(self._pairs[self._next])
        self._next += 1
        if self._next == len(self._pairs):
            self._next = 0

    def _on_pulse(self, sm):
        # Hard IRQ after every pulse: read SENSE while the peak-hold has the pulse, judge it,
        # keep one plan entry queued ahead of the state machine. Allocation-free: integers
        # only, a prebuilt list and prebuilt memoryviews.
        m = self._sense()
        self.pulses += 1
        i = self._done_i  # the plan entry of the pulse that just ended
        self._done_i = i + 1 if i + 1 < len(self._pairs) else 0
        self.sense_ring[self.sense_n & (_RING - 1)] = m
        self.sense_n += 1
        self.sense_last = m
        # Fresh peak: clearly above what the previous pulse left in the peak-hold (its reading
        # decayed over the period), by a quarter of the way back up to it.
        prev = self._prev_c
        r = (prev * self._decay[self._prev_i]) >> 12
        fresh = m > r + ((prev - r) >> 2)
        if self._judge and not self.trip:
            code = self._judge_pulse(m, fresh)
            if code:
                self._trip(code)
                return
        if self._settle:
            self._settle -= 1
            fresh = False  # measured against a residue of unknown age: no reference
        self._drop_ok = self._judge
        self._prev_fresh = fresh
        self._prev_c = m
        self._prev_i = i
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
        self.trip = electrode.OK
        self.sense_n = 0
        self._set_duty(self.duty_for_ma(level_ma))
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
        if ma == self.level_ma or self.trip:
            return
        self.hold()
        self._set_duty(self.duty_for_ma(ma))
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
        self._set_duty(0)
        self.level_ma = 0.0
        self.running = False
        self.plan = None
        self.trip = electrode.OK  # the stimulator has read it; the pins are safe now
        mem32[self._base + _IRQ] = self._gate_bit  # clear the gate (also after a trip)

"""Pulse engine: one PIO state machine per channel makes the biphasic pulses, the channel's
LEVEL PWM sets their amplitude. The CPU does no work per pulse edge.

The PIO program (below) makes, every period: PHASE_A high for W cycles, a gap of G cycles,
PHASE_B high for W cycles, then rest. Both phases count down the same register value, so they
are equal by construction (SR-4); a single `set pins` instruction drives the A/B pair, and no
instruction sets both bits, so they are never high together (SR-5).

Parameters arrive through the TX FIFO as a (rest, shape) pair and are only picked up at the top
of a period, so a change never truncates a pulse. A "gate" IRQ flag (4 + state machine number),
forced through the PIO's IRQ_FORCE register, stops the state machine at the top of its next
period: stopping (stop(), halt()) and a tripped channel use it.

The pulse-done interrupt (a hard IRQ after every pulse) does three things, integers only:
- reads the channel's SENSE while the peak-hold still holds the pulse's electrode voltage and
  judges it against thresholds (stim.electrode): an open, shorted or broken load trips the
  channel inside the interrupt (gate forced, LEVEL to 0, SR-6). A reading is judged only if the
  interrupt came on time: one delayed by a blocked CPU reads a decayed peak and is discarded;
- applies a LEVEL change the task prepared (set_level_ua: duty and thresholds worked out in
  integers beforehand), so an amplitude changes between two pulses without the state machine
  ever being held: a soft start or an EMS ramp does not stretch a single period;
- keeps the next plan entry queued ahead of the state machine.
The stimulator finds a trip on its next tick and does the rest (intensity to 0, LED, log).
"""

import time
from array import array

import rp2
from machine import ADC, PWM, Pin, disable_irq, enable_irq, mem32
from micropython import const

from stim import electrode, pulse
from stim.level import Level

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
_RING = const(8)  # readings kept for the stimulator (a power of two)
_SETTLE_PULSES = const(3)  # the hold's residue is below 2 % after three periods at 150 Hz
# SR-6 under a blocked CPU: a pulse-done interrupt is on time when it follows the previous one
# by the planned interval, give or take this much (interrupt latency, another channel's
# handler). A later one reads a peak-hold that has decayed: that reading is never judged.
ON_TIME_US = const(400)
# A decrease is applied at once only if the rest before the next pulse still has this long
# (LEVEL settles in under 50 us; the rest is timed from an interrupt up to ON_TIME_US late).
_APPLY_MARGIN_US = const(600)


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

    def __init__(self, index, cfg, board, sysclk_hz, lvl=None, scale=None):
        # lvl, scale: the board's LEVEL calibration and SENSE scale, shared by its channels
        # (stim.main hands them in); built here when not given (tests, host tools).
        self.cfg = cfg
        # Channels alternate between the two PIO blocks (0 -> SM0, 1 -> SM4, 2 -> SM1, 3 -> SM5)
        # so each block's 32-word memory holds one copy of the program for at most two SMs.
        self.sm_id = (index % 2) * 4 + index // 2
        pio = self.sm_id // 4
        smi = self.sm_id % 4
        base = _PIO_BASE[pio]
        self.div = pulse.sm_divider(sysclk_hz)
        self.sm_hz = sysclk_hz // self.div
        level_hz = board["analog"]["level_pwm_hz"]
        self.lvl = lvl or Level(board, sysclk_hz)
        # Two PWM periods for the double-buffered compare to land, plus the filter settling.
        self.settle_us = 2 * 1_000_000 // level_hz + 20
        self._level = PWM(Pin(cfg["level_pwm"]), freq=level_hz, duty_u16=0)
        self._level_duty = 0
        # Addresses above 2**30 are not small ints in MicroPython: computed once here, so the
        # interrupt handlers can use them without allocating.
        self._force_addr = base + _IRQ_FORCE
        self._irq_addr = base + _IRQ
        self._pc_addr = base + _SM0_ADDR + smi * _SM_STRIDE
        self._gate_bit = 1 << (4 + smi)
        self._offset = 0
        # SENSE: scale, thresholds (in ADC counts) and what the interrupt handler saw.
        self._adc = ADC(cfg["sense_adc"])
        self.scale = scale or electrode.Scale(board)
        self.boost_v = board["analog"]["compliance_v"]  # the stimulator sets the measured value
        self.trip = electrode.OK  # set by the interrupt handler: why it stopped the output
        self.halted = 0  # 1 after halt(): no pulse until stop() and a new start()
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
        self._expect_us = array("i", [0])  # planned interval from the previous pulse's end
        self._rest_us = array("i", [0])  # each entry's rest: its end to the next pulse's start
        self._t_irq = time.ticks_us()  # of the last pulse-done interrupt
        self._first_us = 0  # from the start to the end of the plan's first pulse
        self._timed = 0  # _t_irq is a reference for the next interrupt
        # A LEVEL change prepared in task context (set_level_ua), taken by the interrupt:
        self._pending = 0
        self._p_duty = 0
        self._p_ua = 0
        self._p_open = 65535
        self._p_short = -1
        self._p_judge = 0
        self._p_ohm = 0
        self.delivered = 0  # microamps the source pushes at the LEVEL in force
        self.level_ua = 0  # the LEVEL asked for last (it takes effect at a pulse boundary)
        self._sm = None
        self._pairs = []
        self._next = 0
        self.pulses = 0
        self.running = False
        self._irq_handler = self._on_pulse  # bound once: creating it in the IRQ would allocate

    # -- amplitude (task context) -------------------------------------------------------
    def delivered_ma(self):
        """The current LEVEL is set to push (after the duty's rounding), in mA."""
        return self.delivered / 1000

    def set_level_ua(self, ua):
        """A new amplitude, before the next pulse: at once while the channel rests with time
        to spare before that pulse, else from the pulse-done interrupt at the end of the pulse
        in progress. Either way no pulse changes half way (SR-4) and the state machine is
        never held, so no period is stretched; a decrease takes effect before the next pulse
        but one at the latest (SR-2). A channel that is not running takes its level from
        start(), and a tripped or halted one none: LEVEL stays at 0 (SR-8)."""
        if ua == self.level_ua or self.trip or self.halted or not self.running:
            return
        self.level_ua = ua
        self._prepare(ua)
        self._apply_if_resting()

    def _prepare(self, ua):
        """Work out the duty and the judging limits for ua (integers: the control loop and
        the ramps allocate nothing) and hand them to the interrupt."""
        lvl = self.lvl
        duty = lvl.duty_for_ua(ua) if ua > 0 else 0
        got = lvl.ua_for_duty(duty) if duty else 0
        sc = self.scale
        judge = got >= electrode.MIN_JUDGE_UA or (
            self._judge and got >= electrode.RELEASE_JUDGE_UA
        )
        self._pending = 0  # the interrupt must never take half-written values
        self._p_duty = duty
        self._p_ua = got
        self._p_open = electrode.open_counts(sc, got, self._sat_c)
        self._p_short = electrode.short_counts(sc, got)
        self._p_judge = 1 if judge else 0
        self._p_ohm = electrode.ohm_factor_ua(sc, got)
        self._pending = 1

    def _apply(self):
        """Put the prepared LEVEL in force: from the interrupt, or with interrupts masked."""
        duty = self._p_duty
        self._level.duty_u16(duty)
        if duty < self._level_duty:
            self._drop_ok = 0  # a weaker pulse may fairly read below the last one's residue
            # ... and the residue of the stronger pulses may read above the weaker pulse's
            # open threshold: for a few pulses, only a reading at the compliance limit (what a
            # lifted electrode gives at any current) is an open.
            self._settle = _SETTLE_PULSES
        self._level_duty = duty
        self.level_n = self.sense_n  # readings up to here were taken at the old level
        self._open_c = self._p_open
        self._short_c = self._p_short
        self._judge = self._p_judge
        self.ohm_q12 = self._p_ohm
        self.delivered = self._p_ua
        self._pending = 0

    def _apply_if_resting(self):
        state = disable_irq()  # the pulse-done interrupt must not run half way through
        if self._pending and self._timed:
            pc = mem32[self._pc_addr] - self._offset
            if pc >= _PC_PULSE_END:
                i = self._done_i - 1 if self._done_i else len(self._pairs) - 1
                left = self._rest_us[i] - time.ticks_diff(time.ticks_us(), self._t_irq)
                if left > _APPLY_MARGIN_US:
                    self._apply()
        enable_irq(state)

    # -- sense --------------------------------------------------------------------------
    def read_sense(self):
        """A SENSE reading now, in ADC counts (task context: idle checks). Interrupts are
        masked for the conversion: the ADC's input select and result are shared, and another
        channel's pulse-done interrupt reading its SENSE in this read's wait would hand it its
        own conversion (SR-6: a probe judged against the other channel's peak)."""
        s = disable_irq()
        v = self._adc.read_u16()
        enable_irq(s)
        return v

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

    def _judge_pulse(self, m, fresh, r):
        """Fault code for a post-pulse reading m (interrupt context, integers only): the
        pure judgement (stim.electrode.judge) against this channel's limits at its LEVEL.
        While the hold settles after a decrease, the previous reading is no reference, and
        only the compliance limit counts as open while what the stronger pulse left in the
        hold (r: the previous reading decayed over the period) may still reach the open limit.
        Twice r allows for a hold slower than the board says. SR-6: at low rates the residue
        has gone by the next pulse, and an open there is an open at once."""
        settle = self._settle
        open_c = self._open_c
        if settle and (r << 1) >= open_c:
            open_c = self._sat_c
        return electrode.judge(
            m,
            fresh,
            self._drop_ok and self._prev_fresh and not settle,
            self._prev_c,
            self._rail_c,
            open_c,
            self._short_c,
        )

    def _trip(self, code):
        # SR-6: no further pulse starts (the gate holds the state machine at the top of the next
        # period) and the source is turned down; the stimulator makes the pins safe on its tick.
        mem32[self._force_addr] = self._gate_bit
        self._level.duty_u16(0)
        self._level_duty = 0
        self.trip = code

    # -- gate ---------------------------------------------------------------------------
    def hold(self):
        """Hold the state machine at the next pulse boundary; return once no pulse is running."""
        mem32[self._force_addr] = self._gate_bit
        if self._sm is None or not self.running:
            return
        while True:
            pc = mem32[self._pc_addr] - self._offset
            if pc <= _PC_GATE or pc >= _PC_PULSE_END:
                return
            time.sleep_us(20)

    def release(self):
        if self.trip or self.halted:
            return  # a tripped or halted channel stays held until stop() and a new start()
        mem32[self._irq_addr] = self._gate_bit

    def halt(self):
        """Stop pulsing now, from a hard interrupt (the POWER button's, SR-7): no new pulse
        starts, and LEVEL goes to 0 at once, or at the end of a pulse in progress so that it
        stays balanced (SR-4). Allocation-free. stop() then makes the pins safe."""
        if not self.running:
            return
        mem32[self._force_addr] = self._gate_bit
        self.halted = 1
        pc = mem32[self._pc_addr] - self._offset
        if pc <= _PC_GATE or pc >= _PC_PULSE_END:
            self._level.duty_u16(0)
            self._level_duty = 0
        self._judge = 0

    # -- control ------------------------------------------------------------------------
    def _load_plan(self, plan):
        """Precompute the FIFO words of a plan: one (rest, shape) pair per pulse, toggles
        alternating, as memoryviews the interrupt handler can push without allocating; and
        what the handler checks each pulse against: the hold's decay over the period, the
        interval from the previous pulse's end, the rest after it."""
        n = len(plan)
        reps = 1 if n == 1 else (2 if n % 2 else 1)  # an even cycle keeps toggles alternating
        m = n * reps
        words = array("I", bytearray(8 * m))
        decay = array("H", bytearray(2 * m))
        cyc = []
        for i in range(m):
            period_ns, phase_us, gap_us = plan[i % n]
            w, g, p = pulse.cycles(period_ns, phase_us, gap_us, self.sm_hz)
            # Pair 0 carries the toggle bit, so it differs from X (cleared by _arm) and is read.
            rest, shape = pulse.words(w, g, p, (i + 1) & 1)
            words[2 * i] = rest
            words[2 * i + 1] = shape
            cyc.append((w, g, p))
            decay[i] = self.scale.decay_q12(period_ns // 1000)
        expect = array("i", bytearray(4 * m))
        rest_us = array("i", bytearray(4 * m))
        per_us = self.sm_hz / 1_000_000
        for i in range(m):
            w, g, p = cyc[i]
            wp, _gp, pp = cyc[i - 1]
            # pulse ends are one period apart, moved by any change of width
            expect[i] = int((pp + 2 * (w - wp)) / per_us + 0.5)
            rest_us[i] = int((p - 2 * w - g) / per_us)
        w, g, _p = cyc[0]
        self._first_us = int((2 * w + g) / per_us + 0.5)
        mv = memoryview(words)
        # Each slice keeps the words' buffer alive: a MicroPython memoryview holds a pointer to
        # the start of its buffer and an offset (py/objarray.c), so the GC never frees it.
        self._pairs = [mv[2 * i : 2 * i + 2] for i in range(m)]
        self._drop_ok = 0  # the next reading has no reference in the new plan
        self._prev_i = 0
        self._done_i = 0
        self._decay = decay
        self._expect_us = expect
        self._rest_us = rest_us
        self._timed = 0
        self._next = 0

    def _push_next(self):
        self._sm.put(self._pairs[self._next])
        self._next += 1
        if self._next == len(self._pairs):
            self._next = 0

    def _on_pulse(self, sm):
        # Hard IRQ after every pulse: read SENSE while the peak-hold has the pulse, judge it if
        # the interrupt came on time, put a prepared LEVEL change in force, keep one plan entry
        # queued ahead of the state machine. Allocation-free: integers only, a prebuilt list
        # and prebuilt memoryviews.
        t = time.ticks_us()
        m = self._sense()
        self.pulses += 1
        i = self._done_i  # the plan entry of the pulse that just ended
        self._done_i = i + 1 if i + 1 < len(self._pairs) else 0
        self.sense_ring[self.sense_n & (_RING - 1)] = m
        self.sense_n += 1
        self.sense_last = m
        if self.halted:
            self._level.duty_u16(0)  # halt() waited for this pulse to end (SR-4, SR-7)
            self._level_duty = 0
            return
        # SR-6: judge only a reading taken on time after its own pulse. This interrupt must
        # follow the previous one by the planned interval; if either came late (a blocked CPU:
        # a flash erase masks interrupts, a long handler), the peak-hold has decayed.
        on_time = self._timed
        d = time.ticks_diff(t, self._t_irq) - self._expect_us[i]
        if d > ON_TIME_US or d < -ON_TIME_US:
            on_time = 0
            if d > self._expect_us[self._done_i] - ON_TIME_US:
                # So late that the next pulse may have ended too, its flag taken by this same
                # entry (the NVIC keeps one pending bit): which plan entry each later reading
                # follows is no longer known, so none could be judged. SR-6: stop.
                self._trip(electrode.SENSE)
                return
        self._t_irq = t
        self._timed = 1
        # Fresh peak: clearly above what the previous pulse left in the peak-hold (its reading
        # decayed over the period), by a quarter of the way back up to it.
        prev = self._prev_c
        r = (prev * self._decay[self._prev_i]) >> 12
        fresh = m > r + ((prev - r) >> 2)
        if not on_time:
            fresh = False
            self._drop_ok = 0  # no reference for the next reading either
        elif self._judge and not self.trip:
            code = self._judge_pulse(m, fresh, r)
            if code:
                self._trip(code)
                return
        if self._settle:
            # The judgement above took no reference while the hold settles; this reading is
            # one for the next only if it is a fresh peak, which one the residue of the
            # stronger pulses dominates never is (it reads no more than that residue).
            self._settle -= 1
        self._drop_ok = self._judge if on_time else 0
        self._prev_fresh = fresh
        self._prev_c = m
        self._prev_i = i
        if self._pending:
            self._apply()  # the rest before the next pulse lets LEVEL settle
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

    def start(self, plan, level_ua):
        """Begin pulsing the plan at level_ua (the caller ramps it up from a low value)."""
        self.hold()
        self.trip = electrode.OK
        self.halted = 0
        self.sense_n = 0
        # The electrode check and the pause before it lie between the last run's pulses and
        # this one's: nothing of them is left in the hold, and no decrease is settling (SR-6:
        # the stop's decrease to zero would otherwise relax the open limit at the start).
        self._settle = 0
        self._prev_c = 0
        sc = self.scale
        # Limits that depend on the boost the stimulator measured before the start.
        self._sat_c = sc.counts(electrode.COMPLIANCE_FRACTION * self.boost_v)
        self._rail_c = electrode.thresholds(sc, 1.0, self.boost_v)[2]
        self._sm = rp2.StateMachine(self.sm_id)
        self._arm(plan)
        # The load offset that rp2.py keeps in the program list (_PROG_OFFSET_PIO0 + n).
        self._offset = biphasic[1 + self.sm_id // 4]  # type: ignore[index]
        self.level_ua = level_ua
        self._prepare(level_ua)
        self._apply()
        self.pulses = 0
        time.sleep_us(self.settle_us)
        # The first pulse ends one pulse length after the state machine starts: the reference
        # that lets its reading be judged on time, like every later one (SR-6).
        self._t_irq = time.ticks_add(time.ticks_us(), self._first_us - self._expect_us[0])
        self._timed = 1
        self._sm.active(1)
        self.running = True
        self.release()

    def stop(self):
        """Stop at a pulse boundary (<= one pulse), then make the pins safe."""
        self.hold()
        if self._sm is not None:
            self._sm.active(0)
            self._sm.irq(None)
        Pin(self.cfg["phase_a"], Pin.OUT, value=0)
        Pin(self.cfg["phase_b"], Pin.OUT, value=0)
        self._pending = 0
        self._p_duty = 0
        self._p_ua = 0
        self._p_judge = 0
        self._p_ohm = 0
        self._apply()
        self.level_ua = 0
        self.running = False
        self.halted = 0
        self.trip = electrode.OK  # the stimulator has read it; the pins are safe now
        mem32[self._irq_addr] = self._gate_bit  # clear the gate (also after a trip)

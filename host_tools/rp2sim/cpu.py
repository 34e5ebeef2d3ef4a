"""The simulated RP2040's CPU: firmware Python takes virtual time, interrupts preempt it.

The chip (chip.py) is exact in its peripherals; this module makes it honest about the processor
that runs MicroPython on them, following the rp2 port:

- **Python costs time.** Firmware code is compiled with a charge before every statement
  (cpucost.py); a call into the simulated `machine`/`rp2`/`time` modules charges what that
  native function costs (NATIVE_US, measured on the port: ../shared/rp2emu/CALIBRATION.md).
  Charges accumulate as a debt that is paid onto the virtual clock whenever the clock could
  pass an event (the next timer, PIO instruction or stimulus), so the clock is exact at every
  hardware access and every event.
- **A hard interrupt preempts Python** (shared/runtime/mpirq.c, hard=True: the handler runs in
  the ISR) at the instant its interrupt fires, between two statements of whatever task code is
  running, after IRQ_ENTRY_US of latency; the time it takes is time the interrupted code does
  not get. Interrupts of the same priority do not nest: one that fires while a handler runs
  waits for it (the NVIC tail-chains it), and so does one that fires while interrupts are
  masked (machine.disable_irq(), a flash erase in the boot ROM: rp2_flash.c).
- **A soft callback runs when the VM gets to it** (mp_sched_schedule, py/scheduler.c): queued,
  at most SCHED_DEPTH deep (further ones are dropped, as the port does), and run between two
  statements of task code, or while the CPU waits (time.sleep_ms, select.poll), never inside
  a hard handler or another callback; an exception in one is printed and swallowed.
- **Ctrl-C is a pending exception** (mp_sched_keyboard_interrupt): raised in task code at its
  next statement or wait, never inside an interrupt handler.
- **The CPU sleeps when idle** (WFE in mp_event_wait_ms): busy and idle cycles are counted, so
  the simulated chip reports how busy its CPU was.

`scale` multiplies every charge: 1.0 is the calibrated model, 0 makes Python free again (the
simulated chip before this model existed), larger values stress a slower build.
"""

from __future__ import annotations

import json as _json
import types
from collections import deque
from collections.abc import Callable

from .cpucost import MHZ

# Native functions of the rp2 port: what each takes beyond the Python call that reaches it
# (cpucost charges that: about 2.55 us for `x = obj.m()`, 2.65 for `obj.m(x)`, 1.7 for
# `x = mem32[a]`), in microseconds at 125 MHz. From CALIBRATION.md's whole-call figures:
# `Pin.value()` read 4.50 / write 4.92, `PWM.duty_u16()` 6.38, `ADC.read_u16()` 6.07,
# `StateMachine.put()` 5.34, `machine.mem32` read 3.32, `time.ticks_us()` 1.57, `print()` of a
# 70-byte line 91; the others are estimates from the C code they run (named below).
NATIVE_US = {
    "pin_read": 1.95,
    "pin_write": 2.37,
    "pin_init": 9.0,  # Pin(n, mode, ...): several SDK calls (machine_pin.c)
    "pwm_duty": 3.73,
    "pwm_init": 30.0,  # PWM(pin, freq=, duty_u16=): divider search (machine_pwm.c)
    # ADC.read_u16() is 6.07 us in all: 3.52 here, of which the conversion's 2 us pass in
    # chip.adc_convert, where an interrupt can cut in (the wait for READY).
    "adc_read": 1.52,
    "adc_init": 8.0,
    "sm_put": 2.69,
    "sm_small": 1.5,  # tx_fifo(), rx_fifo(), active()
    "sm_exec": 6.0,
    "sm_init": 120.0,  # StateMachine.init(): program load, clkdiv, pin set-up (rp2_pio.c)
    "sm_irq": 8.0,
    "mem32": 1.62,
    "ticks": 1.0,
    "timer_init": 25.0,
    "wdt": 3.0,
    "poll_base": 12.0,  # select.poll().poll()/ipoll() (extmod/modselect.c): the call, the map
    "poll_object": 6.0,  # ... and each registered object's ioctl(MP_STREAM_POLL)
    "print_base": 78.0,  # print(): port 93.5 us for a 20-byte line, 105 for 60 bytes
    "print_byte": 0.3,
    "join_base": 65.0,  # sep.join(items): port 86 us for 2 short items, 169 for 4 longer
    "join_char": 2.5,
    "json_dumps": 40.0,  # json.dumps(): port None 52, True 87, 1 92, "two" 172, 3.5 265 us,
    "json_loads": 95.0,  # [1, 2] 99, a 3-key settings dict 316; json.loads of it 397
    "json_loads_char": 4.3,
    "gc_collect": 12_000.0,
    # machine.lightsleep(ms) around the sleep itself (modmachine.c): clocks switched to the
    # crystal and the PLLs stopped before it, runtime_init_clocks (PLL re-lock) after it. An
    # estimate from the SDK calls it makes, not a measurement.
    "lightsleep": 80.0,  # gc.collect(): 8.3 ms at 77 KB in use, 15 ms in a session
    # Loading a module from its .mpy, per byte of the .mpy (the import also runs the module's
    # top level, charged as it runs): engine 49.0 ms, stimulator 50.5, app 42.0, hostcmd 26.8,
    # settings 21.3 ms from .mpy files of about 4.5, 4.3, 3.0, 3.3, 1.8 KB on the port
    # (../shared/rp2emu/CALIBRATION.md, "Boot"): about 10 us per byte.
    "mpy_byte": 10.0,
    # Compiling source on the chip (boot.py, main.py at every boot; a module without its
    # .mpy): engine 319.7 ms, app 374.1 ms from 16-18 KB of source: about 20 us per byte.
    "compile_byte": 20.0,
}
IRQ_ENTRY_US = 7.8  # PIO IRQ flag to the hard handler's first Python statement
SCHED_DEPTH = 8  # MICROPY_SCHEDULER_DEPTH on rp2 (mpconfigport.h)


# json.dumps: what each value adds (microseconds), at the top level and inside a container.
_DUMPS_TOP_US = {type(None): 10.0, bool: 45.0, int: 50.0, str: 120.0, float: 220.0}
_DUMPS_IN_US = {type(None): 10.0, bool: 15.0, int: 25.0, str: 35.0, float: 180.0}
_DUMPS_ITEM_US = 10.0


_NATIVE_CYCLES: dict[str, int] = {}  # NATIVE_US in cycles, worked out at first use


def native_cycles(name: str) -> int:
    c = _NATIVE_CYCLES.get(name)
    if c is None:
        c = _NATIVE_CYCLES[name] = int(round(NATIVE_US[name] * MHZ))
    return c


def _dumps_us(v, top: bool = True) -> float:
    if isinstance(v, dict):
        return sum(_DUMPS_ITEM_US + 35.0 + _dumps_us(x, False) for x in v.values()) + 20.0
    if isinstance(v, list | tuple):
        return sum(_DUMPS_ITEM_US + _dumps_us(x, False) for x in v) + 20.0
    table = _DUMPS_TOP_US if top else _DUMPS_IN_US
    for t in (bool, type(None), int, float, str):
        if isinstance(v, t):
            return table[t]
    return table[str]


class Cpu:
    """The processor of one simulated chip. See the module docstring."""

    def __init__(self, chip, scale: float = 1.0):
        self.chip = chip
        self.scale = float(scale)
        self.busy_cycles = 0
        self.idle_cycles = 0
        self.irq_cycles = 0  # time spent in hard interrupt handlers (entry included)
        self.asleep_cycles = 0  # machine.lightsleep(): clocks stopped, neither busy nor idle
        self.lightsleeps = 0
        self.soft_dropped = 0
        self.console = None  # where an uncaught exception in a handler is printed
        # Optional observer of every hard handler: fn(handler, t_fired, t_done) in cycles.
        self.irq_observer: Callable | None = None
        self.reset()

    def reset(self) -> None:
        """The CPU after a reset of the chip: nothing pending, nothing running."""
        self._room = 0
        self._room0 = 0
        self.in_irq = 0
        self.in_sched = False
        self._working = 0  # inside work(): the CPU runs code (task, handler or native)
        # The chip's next event time as last looked up, valid until anything could have
        # changed it (an event scheduled, the clock advanced, a native call on a peripheral).
        self._nxt: int | None = None
        self._nxt_ok = False
        self.soft: deque = deque()
        self.hard_pending: list = []
        self.async_exc: type[BaseException] | None = None
        self._nxt_ok = False

    # ---- charging ---------------------------------------------------------------------
    def charge(self, n: int) -> None:
        """Statement cost (cycles): the instrumented firmware calls this before each one."""
        r = self._room - n
        self._room = r
        if r < 0:
            self._attend()

    def charge_value(self, n: int, value):
        """A comprehension item: charge, then hand the item on."""
        self.charge(n)
        return value

    def native(self, name: str) -> None:
        """The cost of a native function, charged after its effect (see sync)."""
        self._room -= native_cycles(name)

    def native_cycles_of(self, name: str, count: int = 1) -> int:
        return self.scaled(native_cycles(name) * count)

    def spend(self, name: str, count: int = 1) -> None:
        """Charge `count` units of a native cost (bytes printed, bytes of code loaded)."""
        self._room -= native_cycles(name) * count

    def join(self, sep: str, items) -> str:
        """`sep.join(items)` as the instrumented firmware calls it: charged by its size."""
        items = list(items)
        out = sep.join(items)
        self._room -= native_cycles("join_base") + int(NATIVE_US["join_char"] * MHZ * len(out))
        return out

    def json_module(self) -> types.ModuleType:
        """The `json` module the firmware imports: the standard one, charged by what it is
        given (MicroPython's json prints through the object printer: slow for floats)."""
        cpu = self

        def dumps(obj, *a, **kw):
            cpu._room -= native_cycles("json_dumps") + int(_dumps_us(obj) * MHZ)
            return _json.dumps(obj, *a, **kw)

        def loads(s, *a, **kw):
            n = len(s)
            cpu._room -= native_cycles("json_loads") + int(NATIVE_US["json_loads_char"] * MHZ * n)
            return _json.loads(s, *a, **kw)

        mod = types.ModuleType("json")
        mod.__dict__.update(dumps=dumps, loads=loads, dump=_json.dump, load=_json.load)
        return mod

    def debt(self) -> int:
        return self._room0 - self._room

    def scaled(self, cycles: int) -> int:
        """`cycles` of CPU time as this CPU's scale counts them (0 when Python is free)."""
        s = self.scale
        return cycles if s == 1.0 else int(cycles * s)

    def sync(self) -> None:
        """Pay the debt onto the clock before a hardware access: the access then happens at
        the virtual instant the Python before it has reached."""
        d = self._room0 - self._room
        self._room0 = self._room = 0
        if d <= 0:
            return
        if self.scale != 1.0:
            d = int(d * self.scale)
        chip = self.chip
        end = chip.now + d
        nxt = self._nxt if self._nxt_ok else self._next_event()
        if nxt is None or end < nxt:  # nothing happens meanwhile: just move the clock
            chip.now = end
            self.busy_cycles += d
            return
        self.work(d)

    def _attend(self) -> None:
        self.sync()
        if not self.in_irq and not self.in_sched:
            self._pending()
        self._set_room()

    def _next_event(self) -> int | None:
        if not self._nxt_ok:
            self._nxt = self.chip.next_event_time()
            self._nxt_ok = True
        return self._nxt

    def invalidate(self) -> None:
        """A peripheral may have changed: look the chip's next event up again."""
        self._nxt_ok = False

    def _set_room(self) -> None:
        chip = self.chip
        if self.in_irq == 0 and not self.in_sched and (self.soft or self.async_exc):
            room = 0  # something waits for the next statement boundary
        elif self.scale == 0:
            room = 1 << 60
        else:
            nxt = self._next_event()
            room = (1 << 60) if nxt is None else max(0, nxt - chip.now)
            if self.scale != 1.0:
                room = int(room / self.scale)
        self._room = self._room0 = room

    def work(self, cycles: int) -> None:
        """The CPU is busy for `cycles` of its own work; interrupts that fire meanwhile take
        their time on top (the work is preempted, not shortened)."""
        w = int(cycles)
        self._working += 1
        try:
            self._work(w)
        finally:
            self._working -= 1

    def _work(self, w: int) -> None:
        chip = self.chip
        while w > 0:
            t0 = chip.now
            stolen = self.irq_cycles
            end = t0 + w
            nxt = self._next_event()
            if nxt is None or end < nxt:
                chip.now = end
                self.busy_cycles += w
                return
            self._nxt_ok = False
            chip.advance_to(end)
            self._nxt_ok = False
            done = (chip.now - t0) - (self.irq_cycles - stolen)
            if done <= 0:
                done = min(w, max(1, chip.now - t0))
            self.busy_cycles += min(done, w)
            w -= done

    # ---- interrupts -------------------------------------------------------------------
    def interrupt(self, handler: Callable, arg, hard: bool) -> None:
        """An interrupt fired now: run its handler (hard) or queue it (soft)."""
        chip = self.chip
        if self.in_irq or chip.irq_disabled:
            # Same priority: the ISR itself waits until the running handler returns or the
            # interrupts are unmasked (then `unmask` delivers it).
            self.hard_pending.append((handler, arg, hard))
            return
        chip.irq_serviced += 1
        if not hard:
            if self._working or self.in_sched:
                self.schedule(handler, arg)  # a full queue drops the event, as the port does
            else:
                # The CPU was waiting (a sleep, an idle REPL, a test driving the clock): it
                # wakes and runs the callback at once, as mp_handle_pending does.
                self._run_soft(handler, arg)
            return
        self._run_hard(handler, arg)

    def schedule(self, fn: Callable, arg) -> bool:
        """mp_sched_schedule: queue a callback for task context; False when the queue is full
        (the port then drops it)."""
        if len(self.soft) >= SCHED_DEPTH:
            self.soft_dropped += 1
            return False
        self.soft.append((fn, arg))
        self.attention()
        return True

    def _run_hard(self, handler: Callable, arg) -> None:
        chip = self.chip
        self._room0 = self._room = 0
        self._nxt_ok = False  # the hardware ran on since anyone looked
        self.in_irq += 1
        t0 = chip.now
        try:
            self.work(self.scaled(int(round(IRQ_ENTRY_US * MHZ))))
            self._set_room()
            try:
                handler(arg)
            except Exception as e:  # noqa: BLE001 - mpirq.c prints it; the IRQ stays off
                self._uncaught(e)
            self.sync()
        finally:
            self.in_irq -= 1
            self.irq_cycles += chip.now - t0
            if self.irq_observer is not None:
                self.irq_observer(handler, t0, chip.now)
            self._room0, self._room = 0, 0  # the interrupted code looks at the clock again
        self.unmask()

    def _uncaught(self, e: BaseException) -> None:
        out = self.console
        if out is not None:
            out.write(
                "Uncaught exception in IRQ callback handler\n%s: %s\n" % (type(e).__name__, e)
            )

    def unmask(self) -> None:
        """Interrupts enabled again (machine.enable_irq, the end of a ROM flash routine): the
        ones that fired meanwhile run now, one after the other."""
        while self.hard_pending and not self.in_irq and not self.chip.irq_disabled:
            h, a, hard = self.hard_pending.pop(0)
            self.interrupt(h, a, hard)

    def raise_async(self, exc_type: type[BaseException]) -> None:
        """Ctrl-C (or a soft reset request): raised in task code at its next statement."""
        self.async_exc = exc_type
        self.chip.irq_serviced += 1
        self.attention()

    def attention(self) -> None:
        """Something new may happen sooner than the CPU last looked (an event scheduled)."""
        self._nxt_ok = False
        if self._room > 0:
            self._room0 -= self._room
            self._room = 0

    def _pending(self) -> None:
        """Between two statements of task code, or while it waits: a pending exception is
        raised, then queued callbacks run (py/scheduler.c mp_handle_pending)."""
        exc = self.async_exc
        if exc is not None:
            self.async_exc = None
            raise exc()
        while self.soft:
            fn, arg = self.soft.popleft()
            self._run_soft(fn, arg)

    def _run_soft(self, fn: Callable, arg) -> None:
        self.in_sched = True
        self._room0 = self._room = 0
        self._nxt_ok = False
        try:
            fn(arg)
        except Exception as e:  # noqa: BLE001 - mp_call_function_1_protected
            self._uncaught(e)
        finally:
            self.in_sched = False
        self.sync()

    def handle_pending(self) -> None:
        """What a waiting CPU does when woken (task context only)."""
        if not self.in_irq and not self.in_sched:
            self._pending()

    def settle(self) -> None:
        """A native function looks at the hardware as of now (the PIO run up to this cycle)."""
        self._working += 1
        self._nxt_ok = False
        try:
            self.chip.advance_to(self.chip.now)
        finally:
            self._working -= 1
            self._nxt_ok = False

    # ---- flash ------------------------------------------------------------------------
    def rom(self, cycles: int) -> None:
        """A boot ROM flash routine: the CPU runs nothing else, interrupts are masked
        (rp2_flash.c, begin_critical_flash_section), the hardware carries on; interrupts that
        fired meanwhile are taken at the end."""
        self.sync()
        chip = self.chip
        chip.irq_disabled += 1
        try:
            self.work(cycles)
        finally:
            chip.irq_disabled -= 1
        self.unmask()

    # ---- waiting ----------------------------------------------------------------------
    def busy_wait(self, cycles: int) -> None:
        """mp_hal_delay_us: a tight loop; hard interrupts still run, callbacks do not."""
        self.sync()
        self.work(int(cycles))

    def sleep_cycles(self, cycles: int) -> None:
        """mp_hal_delay_ms: the CPU sleeps (WFE) until the deadline, and runs what is pending
        whenever an interrupt wakes it."""
        self.sync()
        chip = self.chip
        end = chip.now + max(0, int(cycles))
        while True:
            self.handle_pending()
            if chip.now >= end:
                break
            t0 = chip.now
            busy0 = self.busy_cycles
            self._nxt_ok = False
            chip.advance_to(end, stop_on_irq=True)
            self._nxt_ok = False
            self._idle_account(t0, busy0)
        self._room = self._room0 = 0

    def lightsleep(self, ms: int | None) -> None:
        """machine.lightsleep(ms) as ports/rp2/modmachine.c does it. Interrupts are masked
        (MICROPY_BEGIN_ATOMIC_SECTION), clk_sys drops to the 12 MHz crystal and only the timer
        keeps its clock (sleep_en1 = CLK_SYS_TIMER): PIO, PWM and the ADC stop where they are.
        A pending interrupt ends the WFI early: the timer alarm at the deadline, a pin whose
        irq() has a handler (the port needs a timeout and a handler for that: micropython
        issue #7035), the USB controller while a host has the device configured (its clock is
        kept then). The handlers run after the clocks are back. The watchdog keeps counting
        (the port points the PSM's watchdog reset at the ROSC for that case), so a sleep longer
        than its timeout resets the chip.

        Not modelled, and refused loudly: a sleep while a PIO state machine runs or a PWM
        output drives a pin (their clocks would stop mid-pulse), and lightsleep() without a
        time (DORMANT: the port sets no wake source but raw registers)."""
        chip = self.chip
        if ms is None:
            raise NotImplementedError("lightsleep() without a time (DORMANT) is not modelled")
        ms = int(ms)
        if ms <= 1:
            self.sleep_cycles(chip.us_to_cycles(ms * 1000))  # the port: mp_hal_delay_ms
            return
        self.sync()
        frozen = chip.running_clocked()
        if frozen:
            raise NotImplementedError(
                "lightsleep with clocked outputs (their clocks stop mid-flight): "
                + ", ".join(frozen)
            )
        self.work(self.scaled(native_cycles("lightsleep") // 2))
        self.lightsleeps += 1
        chip.irq_disabled += 1
        t0 = chip.now
        end = t0 + chip.us_to_cycles(ms * 1000)
        pending = len(self.hard_pending)
        mark = chip.irq_serviced
        while chip.now < end and len(self.hard_pending) == pending and chip.irq_serviced == mark:
            nxt = chip.next_event_time()
            if nxt is None or nxt >= end:
                chip.advance_to(end)
                break
            chip.advance_to(nxt)
        self.asleep_cycles += chip.now - t0
        self._nxt_ok = False
        self._room = self._room0 = 0
        self.work(self.scaled(native_cycles("lightsleep") - native_cycles("lightsleep") // 2))
        chip.irq_disabled -= 1
        self.unmask()
        self.handle_pending()

    def idle(self, timeout_us: int | None) -> None:
        """The CPU waits for an event (asyncio's poll, a blocking read): until the timeout or
        until an interrupt has been serviced, whichever comes first."""
        self.sync()
        chip = self.chip
        t0 = chip.now
        busy0 = self.busy_cycles
        self._nxt_ok = False
        if timeout_us is None:
            nxt = chip.next_event_time()
            if nxt is not None:
                chip.advance_to(nxt, stop_on_irq=True)
        else:
            chip.advance_to(chip.now + chip.us_to_cycles(max(0, timeout_us)), stop_on_irq=True)
        self._nxt_ok = False
        self._idle_account(t0, busy0)
        self._room = self._room0 = 0
        self.handle_pending()

    def _idle_account(self, t0: int, busy0: int) -> None:
        spent = self.chip.now - t0
        self.idle_cycles += max(0, spent - (self.busy_cycles - busy0))

    # ---- time, for the `time` module and `select` -------------------------------------
    def ticks_us(self) -> int:
        self.sync()
        return self.chip.ticks_us()

    def ticks_ms(self) -> int:
        self.sync()
        return self.chip.ticks_ms()

    def busy_fraction(self) -> float:
        """Busy cycles (task code and interrupt handlers) over all cycles counted."""
        total = self.busy_cycles + self.idle_cycles + self.asleep_cycles
        return self.busy_cycles / total if total else 0.0

"""The simulated chip is honest about time: its CPU model, its flash model and the port's soft
reset (host_tools/rp2sim/cpu.py, cpucost.py, flashmodel.py, sim/unit.py; PORT_NOTES.md).

Each behaviour is pinned here against what the MicroPython rp2 port does (the source file it
follows is named), and the cost table against figures measured on the real port: MicroPython
v1.28.0 built for RPI_PICO, run in the emulated RP2040 (rp2040js), the same code timed there and
here with time.ticks_us().
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from host_tools.rp2sim.chip import Chip, ChipReset
from host_tools.rp2sim.fakes import build_modules
from host_tools.rp2sim.flashmodel import INLINE_MAX, FlashTiming, LittleFsModel
from host_tools.rp2sim.mploader import MpRuntime
from host_tools.rp2sim.vfs import FlashFs

pytestmark = pytest.mark.req("FR-17")

MHZ = 125


def runtime(tmp_path: Path, src: str, chip: Chip | None = None):
    """A module of MicroPython source (`m`) loaded on a fresh chip with the CPU model."""
    chip = chip or Chip(125_000_000)
    mods = build_modules(chip, FlashFs(), io.StringIO())
    (tmp_path / "m.py").write_text(textwrap.dedent(src))
    rt = MpRuntime([tmp_path], mods, cpu=chip.cpu)
    m = rt.import_module("m")
    chip.cpu.sync()
    return chip, mods, m


def us_of(chip: Chip, fn, *args) -> float:
    """Virtual microseconds fn(*args) takes on the simulated CPU."""
    chip.cpu.sync()
    t0 = chip.now
    fn(*args)
    chip.cpu.sync()
    return (chip.now - t0) / MHZ


# ---- the cost table against the port ---------------------------------------------------------
# Per-statement cost in microseconds measured on the port (loop overhead subtracted), from
# ../shared/rp2emu/CALIBRATION.md and the calibration runs that PORT_NOTES.md "CPU time" lists.
PORT_US = {
    "x += 1": 1.44,
    "y = o.a": 1.59,
    "y = l[1]": 1.78,
    "y = a * b": 2.1,
    "o.m0()": 13.18,
    "f0()": 7.35,
    "fk(1, a=1, b=2, c=3)": 29.3,
    "d = {'a': 1, 'b': 2, 'c': 3}": 18.5,
    "l2 = [1, 2, i]": 8.34,
    "len(l)": 9.03,
    "isinstance(a, int)": 30.1,
    "'%d' % a": 86.0,
    "'%s' % 'ab'": 45.3,
    "json.dumps(a)": 92.2,
    "json.dumps('two')": 172.0,
    "','.join(('ab', 'cd'))": 86.4,
    "round(2.5)": 26.4,
}
# Not in the table: float arithmetic on variables (`y = c * 3` with c a float, 6.9 us on the
# port) is costed as small-int arithmetic (2.1 us): the model sees no types (PORT_NOTES.md).
_SETUP = """
import json

class O:
    def __init__(self):
        self.a = 1
    def m0(self):
        pass

def f0():
    pass

def fk(x, **kw):
    pass

def run_%s(n):
    o = O(); l = [1, 2, 3]; a = 7; b = 3; x = 0
    for i in range(n):
        %s
"""


@pytest.mark.parametrize("stmt", sorted(PORT_US))
def test_each_python_operation_costs_what_it_costs_on_the_port(tmp_path, stmt):
    """Within 40 % of the port's figure: close enough that a control cycle, an interrupt
    handler or a held state machine lasts about as long as on the chip."""
    src = _SETUP % ("op", stmt) + "\ndef run_base(n):\n    for i in range(n):\n        pass\n"
    chip, _mods, m = runtime(tmp_path, src)
    n = 200
    per = (us_of(chip, m.run_op, n) - us_of(chip, m.run_base, n)) / n
    port = PORT_US[stmt]
    assert 0.6 * port <= per <= 1.4 * port, "%s: %.2f us here, %.2f on the port" % (
        stmt,
        per,
        port,
    )


def test_a_for_loop_iteration_costs_what_it_costs_on_the_port(tmp_path):
    chip, _mods, m = runtime(tmp_path, "def run(n):\n    for i in range(n):\n        pass\n")
    assert us_of(chip, m.run, 1000) / 1000 == pytest.approx(3.10, rel=0.1)


# ---- interrupts --------------------------------------------------------------------------------
_HALVES = """
class S:
    a = 0
    b = 0

s = S()

def update(n):
    for i in range(n):
        s.a = i
        s.b = i
"""


def test_a_hard_interrupt_runs_between_two_statements_of_task_code(tmp_path):
    """mpirq.c, hard=True: the handler runs in the ISR, wherever the task is: it can see a
    state the task has only half updated (what a `_judge = 0` guard is for)."""
    chip, _mods, m = runtime(tmp_path, _HALVES)
    seen = []
    t_task = chip.now
    for k in range(1, 40):  # interrupts spread over the task's run (each takes 7.8 us)
        handler = lambda _a: seen.append((m.s.a, m.s.b))  # noqa: E731
        chip.schedule(t_task + k * 5003, chip.dispatch_irq, handler, None, True)
    m.update(500)
    assert len(seen) == 39
    assert any(a != b for a, b in seen), "never between the two stores"
    assert all(a in (b, b + 1) for a, b in seen)


def test_a_hard_interrupt_steals_its_time_from_the_task(tmp_path):
    chip, _mods, m = runtime(tmp_path, _HALVES)
    base = us_of(chip, m.update, 100)
    busy = lambda _a: chip.cpu.work(200 * MHZ)  # noqa: E731 - a 200 us handler
    chip.schedule(chip.now + 50 * MHZ, chip.dispatch_irq, busy, None, True)
    with_irq = us_of(chip, m.update, 100)
    assert with_irq == pytest.approx(base + 200 + 7.8, abs=1.0)  # plus the entry latency


def test_interrupts_do_not_nest_and_wait_while_masked(tmp_path):
    """Same NVIC priority: a second interrupt waits for the running handler; one that fires
    while interrupts are masked (machine.disable_irq, a flash erase) runs when unmasked."""
    chip, mods, _m = runtime(tmp_path, "x = 1\n")
    order = []

    def long(_a):
        order.append(("long", chip.now))
        chip.cpu.work(500 * MHZ)
        order.append(("long done", chip.now))

    def short(_a):
        order.append(("short", chip.now))

    t0 = chip.now + 1000
    chip.schedule(t0, chip.dispatch_irq, long, None, True)
    chip.schedule(t0 + 100 * MHZ, chip.dispatch_irq, short, None, True)
    chip.advance_to(t0 + 2000 * MHZ)
    assert [o[0] for o in order] == ["long", "long done", "short"]
    assert order[2][1] >= order[1][1]
    # masked
    order.clear()
    state = mods["machine"].disable_irq()
    chip.schedule(chip.now + 10 * MHZ, chip.dispatch_irq, short, None, True)
    chip.cpu.work(100 * MHZ)
    assert order == []
    mods["machine"].enable_irq(state)
    assert [o[0] for o in order] == ["short"]


_ADC_SHARED = """
from machine import ADC, disable_irq, enable_irq
a = ADC(0)
b = ADC(1)
isr_got = []
def isr(_x):
    isr_got.append(b.read_u16())
def read_plain():
    return a.read_u16()
def read_masked():
    s = disable_irq()
    v = a.read_u16()
    enable_irq(s)
    return v
"""


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
def test_an_interrupt_that_reads_the_adc_in_a_reads_wait_hands_it_the_other_input(
    tmp_path, masked
):
    """machine_adc.c read_u16 = adc_select_input, then adc_read (START_ONCE, wait for READY,
    RESULT): AINSEL and RESULT are shared. A hard interrupt that fires in the read's 2 us wait
    runs first, and a handler that reads the ADC leaves its own input's conversion in RESULT:
    the task's read returns the other input's value. With interrupts masked it cannot."""
    chip, _mods, m = runtime(tmp_path, _ADC_SHARED)
    chip.adc_sources[0] = lambda t: 0.5
    chip.adc_sources[1] = lambda t: 2.0
    u16 = {0.5: int(0.5 / 3.3 * 4096) << 4, 2.0: int(2.0 / 3.3 * 4096) << 4}
    read = m.read_masked if masked else m.read_plain
    wrong = []
    for k in range(120):  # the interrupt fires 0..30 us after the call begins, 0.25 us apart
        chip.cpu.sync()
        chip.schedule(chip.now + k * MHZ // 4, chip.dispatch_irq, m.isr, None, True)
        v = read()
        chip.advance_to(chip.now + 200 * MHZ)  # the interrupt has come and gone
        if v >> 4 != u16[0.5] >> 4:
            wrong.append((k / 4, v))
    assert len(m.isr_got) == 120 and all(v >> 4 == u16[2.0] >> 4 for v in m.isr_got)
    if masked:
        assert wrong == []
    else:
        # A window of about the conversion's 2 us, and in it the other input's value.
        assert 4 <= len(wrong) <= 12, wrong
        assert all(v >> 4 == u16[2.0] >> 4 for _k, v in wrong)


def test_soft_callbacks_wait_for_the_task_and_the_queue_holds_eight(tmp_path):
    """py/scheduler.c: mp_sched_schedule queues (MICROPY_SCHEDULER_DEPTH 8 on rp2, more are
    dropped) and the VM runs them between statements, never inside a hard handler."""
    chip, mods, m = runtime(tmp_path, _HALVES)
    ran = []
    for k in range(12):
        chip.schedule(chip.now + 100 + k, chip.dispatch_irq, ran.append, k, False)
    chip.cpu.work(1000)  # the CPU is busy when they fire: queued
    assert ran == [] and chip.cpu.soft_dropped == 4
    m.update(1)  # the task's next statement runs them
    assert ran == list(range(8))


def test_ctrl_c_is_raised_in_task_code_at_its_next_statement(tmp_path):
    chip, _mods, m = runtime(tmp_path, _HALVES)
    chip.schedule(chip.now + 300 * MHZ, chip.cpu.raise_async, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        m.update(10_000)
    assert 0 < m.s.a < 10_000 and m.s.a in (m.s.b, m.s.b + 1)


def test_sleeping_counts_as_idle_and_work_as_busy(tmp_path):
    chip, mods, m = runtime(tmp_path, "import time\ndef nap():\n    time.sleep_ms(90)\n")
    b0, i0 = chip.cpu.busy_cycles, chip.cpu.idle_cycles
    m.nap()
    chip.cpu.work(10_000 * MHZ)
    busy = (chip.cpu.busy_cycles - b0) / MHZ
    idle = (chip.cpu.idle_cycles - i0) / MHZ
    assert idle == pytest.approx(90_000, rel=0.01) and busy == pytest.approx(10_000, rel=0.05)


# ---- flash --------------------------------------------------------------------------------------
def test_littlefs_erases_on_some_settings_saves_and_not_on_others():
    """A small file lives in its directory's metadata log: commits fill the 4 KB block and
    every few saves littlefs compacts it into the other block (one erase), as the port shows
    (3 of 16 saves erased there)."""
    lfs = LittleFsModel()
    files = {"/board.json": b"x" * 900, "/main.py": b"y" * 200}
    erases = []
    for _ in range(16):
        files["/settings.json.tmp"] = b"{}" * 35
        e1, _ = lfs.commit("/", 12 + 19, files)  # create the temporary file
        e2, _ = lfs.commit("/", 12 + 19 + 70, files)  # its data, inline, on close
        files["/settings.json"] = files.pop("/settings.json.tmp")
        e3, _ = lfs.commit("/", 24 + 38, files)  # the rename
        erases.append(e1 + e2 + e3)
    assert 0 < sum(1 for e in erases if e) < 8


def test_appending_to_a_file_in_blocks_erases_a_block_each_time():
    """lfs_ctz_extend: appending to a file beyond the inline limit copies its partial last
    block into a freshly erased one (the port: 37 of 40 history appends erased)."""
    lfs = LittleFsModel()
    assert lfs.data(100, 300, append=True) == (0, 0)  # still inline
    e, p = lfs.data(INLINE_MAX + 500, INLINE_MAX + 560, append=True)
    assert e == 1 and p >= 1


def test_a_flash_erase_masks_interrupts_while_the_pio_carries_on(make_unit):
    """rp2_flash.c: the erase runs with interrupts masked; PIO and pins go on. A pulse-done
    interrupt raised during it runs only after it."""
    unit = make_unit("pico", load_ohm={1: 1000.0, 2: 1000.0})
    unit.press("power", at=0.5, hold_s=1.7)
    unit.press("plus", at=2.5)
    unit.run_until(5.0)
    fs = unit.fs
    handled = []
    unit.chip.cpu.irq_observer = lambda h, t0, t1: handled.append(t0)
    t_erase = unit.chip.now
    fs.busy(0, 1, 0, "/x")  # one erase, from the test, as a file operation would do
    erase_c = unit.chip.us_to_cycles(FlashTiming().erase_us)
    assert unit.chip.now - t_erase >= erase_c
    pulses = [p for p in unit.model.channels[0].pulse_log if p.t_a * 125e6 > t_erase]
    assert len(pulses) >= 4  # 45 ms at 100 Hz: the PIO kept pulsing
    unit.run_until(unit.chip.t_s + 0.02)  # the interrupts held off by the erase now run
    # no handler started inside the erase; those it held off ran after it
    assert not [t for t in handled if t_erase <= t < t_erase + erase_c]
    assert [t for t in handled if t >= t_erase + erase_c]


# ---- soft reset ---------------------------------------------------------------------------------
_TIMER_APP = """
from machine import Timer, WDT
import time
ticks = []

class App:
    def __init__(self, *parts):
        pass

def run(app):
    WDT(timeout=2000)
    Timer(-1, period=100, callback=lambda t: ticks.append(1))
    time.sleep(3600)
"""


def test_a_soft_reset_deletes_the_timers_and_leaves_the_watchdog_running(make_unit, fw_copy):
    """ports/rp2/main.c soft_reset_exit: soft_timer_deinit() deletes every machine.Timer; the
    watchdog is not touched. A raw-REPL soft reset runs boot.py only, so nothing feeds it."""
    (fw_copy / "stim" / "app.py").write_text(_TIMER_APP)
    (fw_copy / "boot.py").write_text("")  # no watchdog_off(): the port's own behaviour
    unit = make_unit("pico", firmware_dir=fw_copy)
    unit.run_until(1.0)
    unit.soft_reset(at=1.0, raw=True)
    unit.run_until(1.2)
    assert unit.chip.wdt_enabled
    assert unit.state == "repl" and unit.boots == 2  # boot.py ran, main.py did not
    unit.run_until(3.0)
    assert unit.boots == 3 and unit.chip.reset_cause == 3  # the watchdog reset the chip


def test_the_watchdog_stops_when_its_enable_bit_is_cleared(tmp_path):
    """RP2040 datasheet 4.7: CTRL.ENABLE; +0x3000 is the atomic clear alias (2.1.2)."""
    chip, mods, _m = runtime(tmp_path, "x = 1\n")
    m = mods["machine"]
    m.WDT(timeout=100)
    assert m.mem32[0x40058000] & (1 << 30)
    m.mem32[0x40058000 + 0x3000] = 1 << 30
    assert not m.mem32[0x40058000] & (1 << 30)
    chip.advance_to(chip.now + chip.cycles(1.0))  # no reset
    m.mem32[0x40058000 + 0x2000] = 1 << 30  # set again: it counts on
    with pytest.raises(ChipReset):
        chip.advance_to(chip.now + chip.cycles(1.0))


# ---- machine.lightsleep (ports/rp2/modmachine.c) ---------------------------------------------
_SLEEPER = """
import machine
woke = []
def on_pin(p):
    woke.append(1)
def nap(ms):
    machine.lightsleep(ms)
"""


def test_lightsleep_lasts_its_time_asleep_neither_busy_nor_idle(tmp_path):
    chip, _mods, m = runtime(tmp_path, _SLEEPER)
    b0, i0 = chip.cpu.busy_cycles, chip.cpu.idle_cycles
    t = us_of(chip, m.nap, 200)
    assert t == pytest.approx(200_000, abs=200)  # the deadline, plus the clock switches
    assert chip.cpu.asleep_cycles == pytest.approx(200_000 * MHZ, rel=0.001)
    assert chip.cpu.idle_cycles == i0
    assert (chip.cpu.busy_cycles - b0) / MHZ < 200  # the call and the clock switches only
    assert chip.cpu.lightsleeps == 1


def test_a_pin_interrupt_with_a_handler_ends_lightsleep_and_runs_after_the_clocks(tmp_path):
    """micropython issue #7035: on RP2040 a Pin.irq() wakes a timed lightsleep when it has a
    handler; interrupts are masked during the sleep, so the handler runs after the wake."""
    chip, mods, m = runtime(tmp_path, _SLEEPER)
    pin = mods["machine"].Pin(10, mods["machine"].Pin.IN, mods["machine"].Pin.PULL_UP)
    pin.irq(m.on_pin, mods["machine"].Pin.IRQ_FALLING, True)
    chip.schedule(chip.now + 30_000 * MHZ, chip.drive_external, 10, 0)  # pressed 30 ms in
    t = us_of(chip, m.nap, 250)
    assert t == pytest.approx(30_000, abs=200)
    assert m.woke == [1]


def test_lightsleep_refuses_to_freeze_a_running_state_machine(tmp_path):
    """The port stops the PIO's clock in lightsleep: a pulse under way would hold its level.
    The simulated chip does not model a frozen PIO and says so instead of pretending."""
    src = _SLEEPER + textwrap.dedent("""
        import rp2
        from machine import Pin
        @rp2.asm_pio(set_init=rp2.PIO.OUT_LOW)
        def blink():
            set(pins, 1)
            set(pins, 0)
        def start():
            sm = rp2.StateMachine(0, blink, freq=2000, set_base=Pin(2))
            sm.active(1)
            return sm
        """)
    _chip, _mods, m = runtime(tmp_path, src)
    sm = m.start()
    with pytest.raises(NotImplementedError, match="PIO0 SM0 running"):
        m.nap(100)
    sm.active(0)
    m.nap(100)  # stopped: fine


def test_the_watchdog_keeps_counting_through_lightsleep(tmp_path):
    """RP2040: the port points the PSM's watchdog reset at the ROSC before it sleeps, because
    the watchdog can still fire: a sleep longer than its timeout resets the chip."""
    chip, mods, m = runtime(tmp_path, _SLEEPER)
    mods["machine"].WDT(timeout=500)
    with pytest.raises(ChipReset):
        m.nap(800)

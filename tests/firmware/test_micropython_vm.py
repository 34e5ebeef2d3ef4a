"""The firmware on MicroPython's own VM (WebAssembly build of v1.29, host_tools/mpvm).

- every firmware module imports there, and boot.py and main.py run (main.py into safe mode);
- the pure-core tests (tests/core/) pass there as they do under pytest;
- the pulse engine's IRQ handler and the steady control loop allocate nothing on the heap, and
  the handler runs with the heap locked as a hard IRQ does on the rp2 port;
- and each check can fail: a module using what MicroPython lacks, a pure-core error that only
  MicroPython shows, an allocating handler and an allocating loop are all caught.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from host_tools import mpvm
from host_tools.dev import mpybuild
from host_tools.mpvm import memory
from host_tools.sim.rig import FirmwareRig

pytestmark = pytest.mark.req("FR-15")

CORE_TESTS = Path(__file__).resolve().parents[1] / "core"
CORE_FILES = sorted(CORE_TESTS.glob("test_*.py"))
FW_MODULES = sorted(
    "stim." + p.stem for p in (mpvm.FIRMWARE_DIR / "stim").glob("*.py") if p.stem != "__init__"
)


def _files(fw=mpvm.FIRMWARE_DIR):
    return mpvm.sim_files() + mpvm.firmware_files(fw)


def _import_all(fw=mpvm.FIRMWARE_DIR) -> mpvm.VmResult:
    code = "import stim\n" + "".join("import %s\n" % m for m in FW_MODULES) + "print('ok')\n"
    return mpvm.run(code, _files(fw))


def _core(test_file: Path, fw=mpvm.FIRMWARE_DIR) -> tuple[list[dict], mpvm.VmResult]:
    files = _files(fw) + mpvm.tree_files(CORE_TESTS, "/tests", (".py",))
    code = "import sys, mptest\nsys.path.append('/tests')\nmptest.main([%r])\n" % test_file.stem
    r = mpvm.run(code, files)
    return [x for x in r.records() if "test" in x], r


def _test_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return sorted(
        n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    )


# ---- runs on MicroPython ----------------------------------------------------------------------
def test_every_firmware_module_imports_on_micropython():
    r = _import_all()
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "ok"


def test_the_mpy_tree_builds_and_runs_on_micropython(tmp_path):
    """`make mpy`: every stim module as .mpy, boot.py and main.py as source, and it imports."""
    out = tmp_path / "mpy"
    sizes = mpybuild.build(out)
    assert {"boot.py", "main.py"} <= set(sizes)
    assert sorted(k for k in sizes if k.endswith(".mpy")) == sorted(
        "stim/%s.mpy" % m for m in ["__init__"] + [n.split(".")[1] for n in FW_MODULES]
    )
    assert not list(out.rglob("stim/*.py"))
    r = _import_all(out)
    assert r.returncode == 0, r.stderr
    code = "import stim.pulse\nprint(stim.pulse.__file__)\n"
    assert mpvm.run(code, _files(out)).check().stdout.split() == ["stim/pulse.mpy"]


def test_the_vm_side_pwm_takes_its_arguments_as_the_port_does():
    """The VM's machine.PWM (host_tools/mpvm/lib/machine.py), as machine_pwm.c: -1 is an
    argument left out, a duty_ns given with a duty_u16 stands."""
    code = (
        "import machine, json\n"
        "a = machine.PWM(machine.Pin(6), freq=1000, duty_u16=-1)\n"
        "r = [a.duty_u16(), a.freq()]\n"
        "a.duty_u16(40000); a.init(freq=-1, duty_u16=-1, duty_ns=-1, invert=-1)\n"
        "r += [a.duty_u16(), a.freq()]\n"
        "b = machine.PWM(machine.Pin(8), freq=1000, duty_u16=65535, duty_ns=250000)\n"
        "r += [b.duty_u16()]\n"
        "print(json.dumps({'pwm': r}))\n"
    )
    recs = mpvm.run(code, _files()).check().records()
    assert [x["pwm"] for x in recs if "pwm" in x] == [[0, 1000, 40000, 1000, 16383]]


@pytest.mark.req("FR-10")
@pytest.mark.req("SR-8")
def test_boot_and_main_run_on_micropython_into_safe_mode():
    """boot.py makes the outputs safe; main.py with MODE held logs safe_mode and returns with
    every bridge pin, LEVEL pin and the boost driven low."""
    board = FirmwareRig("pico").board
    mode = board["buttons"]["mode"]
    outs = [p for c in board["channels"] for p in (c["phase_a"], c["phase_b"], c["level_pwm"])]
    outs.append(board["boost_en"])
    code = [
        "import machine, json\nmachine.levels[:] = bytearray(b'\\x01' * 30)\n"
        "machine.external[%d] = 0\n" % mode,
        "exec(open('/boot.py').read())\n"
        "print(json.dumps({'boot': [machine.levels[n] for n in %r]}))\n" % outs,
        "exec(open('/main.py').read(), {'__name__': '__main__'})\n"
        "print(json.dumps({'main': [machine.levels[n] for n in %r], "
        "'funcs': [machine.funcs[n] for n in %r]}))\n" % (outs, outs),
    ]
    r = mpvm.run(code, _files()).check()
    recs = r.records()
    assert [x["boot"] for x in recs if "boot" in x] == [[0] * len(outs)]
    assert any(x.get("ev") == "safe_mode" for x in recs), r.stdout
    after = next(x for x in recs if "main" in x)
    assert after["main"] == [0] * len(outs) and set(after["funcs"]) == {"sio"}


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.stem)
def test_pure_core_tests_pass_on_micropython(path):
    results, r = _core(path)
    failed = [x for x in results if not x["ok"]]
    assert not failed, "failed on MicroPython:\n%s\n%s" % (r.stdout, r.stderr)
    assert sorted(x["test"] for x in results) == _test_names(path), r.stderr


# ---- allocation -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def figures():
    return memory.measure()


def test_the_virtual_clock_allocates_nothing(figures):
    """The measurements below include a sleep on the simulated clock: it must add nothing."""
    assert figures["sleep"]["bytes"] == 0 and figures["sleep"]["locked_ok"]


@pytest.mark.req("FR-16")
@pytest.mark.parametrize("pid", memory.PROGRAMS)
def test_pulse_irq_handler_allocates_nothing(figures, pid):
    f = figures["irq"][pid]
    assert f["bytes"] == 0, f
    assert f["hard_ok"] and f["handler_live"], f  # ran with the heap locked, never raised
    assert f["pulses"] >= 2 * f["calls"]
    # a plan of many pulses (burst, sweep) is refilled a pair at a time: the FIFO stays full
    assert f["tx_fifo"] == 4 if pid in ("tens_burst", "tens_modulated") else f["tx_fifo"] >= 0
    assert figures["irq_errors"] == []
    # each call came when the plan puts its pulse's end: the reading was judged (SR-6's path
    # through the handler, the one it takes while it runs), and nothing tripped
    assert f["judged"] == 1 and f["trip"] == 0, f


@pytest.mark.req("FR-16")
@pytest.mark.parametrize("pid", memory.LOOP_KEYS)
def test_steady_control_loop_allocates_nothing(figures, pid):
    # measured with both channels past their electrode check and running (state 2); for EMS
    # strength in the plateau and in the rest of its work/rest cycle
    assert figures["states"][pid] == [2, 2], figures["states"]
    # the cycle's pulse-done interrupts came on time: every reading judged (none in EMS
    # strength's rest, at level 0), nothing tripped
    assert figures["judged"][pid] == ([0, 0] if pid.endswith(" rest") else [1, 1])
    assert figures["trips"][pid] == [0, 0]
    f = figures["loop"][pid]
    assert f["bytes"] == 0 and f["locked_ok"], f


@pytest.mark.req("FR-16")
def test_a_ramp_cycle_allocates_nothing(figures):
    # EMS strength's ramp up: the level changes every tick, as in the soft start. Worked out in
    # integers and put in force by the pulse-done interrupt: no allocation (it was 1440 B per
    # cycle while the level path was float).
    for pid, f in figures["ramp"].items():
        assert f["bytes"] == 0, (pid, f)


@pytest.mark.req("SR-12")
def test_console_bytes_allocate_nothing_until_a_line_ends(figures):
    f = figures["host_byte"]
    assert f["bytes"] == 0 and f["locked_ok"], f


# ---- the checks above can fail ----------------------------------------------------------------
def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, "the firmware changed: update this test's edit of %s" % path.name
    path.write_text(text.replace(old, new, 1))


def test_a_module_using_what_micropython_lacks_fails_to_import(fw_copy):
    # str.removeprefix is CPython 3.9+; MicroPython's str has no such method.
    _edit(fw_copy / "stim" / "pulse.py", "TOGGLE = const(0x80000000)\n",
          'TOGGLE = const(0x80000000)\n_NAME = "v1.29".removeprefix("v")\n')  # fmt: skip
    FirmwareRig("pico", firmware_dir=fw_copy).import_module("stim.pulse")  # CPython: fine
    r = _import_all(fw_copy)
    assert r.returncode != 0
    assert "removeprefix" in r.stderr


def test_a_core_error_only_micropython_shows_fails_the_core_tests(fw_copy):
    # MicroPython's built-in exception classes have no Python-level __init__ to call.
    limits = fw_copy / "stim" / "limits.py"
    _edit(limits, "super().__init__(", "ValueError.__init__(self, ")
    rig = FirmwareRig("pico", firmware_dir=fw_copy)
    lim = rig.import_module("stim.limits")
    assert lim.LimitError("step", "x").key == "step"  # CPython: fine
    results, r = _core(CORE_TESTS / "test_core_limits.py", fw_copy)
    failed = {x["test"]: x["err"] for x in results if not x["ok"]}
    assert "test_refusal_names_the_limit" in failed, r.stdout
    assert "__init__" in failed["test_refusal_names_the_limit"]


@pytest.mark.req("FR-16")
def test_an_allocation_only_in_the_judging_path_is_caught(fw_copy):
    """The handler judges a reading only when its interrupt came on time; the scenario's come
    when the plan puts them, so an allocation on that path alone is seen."""
    line = "        settle = self._settle\n"
    alloc = "        self.last_ma = self.level_ua / 1000\n"  # a float: heap on the port
    _edit(fw_copy / "stim" / "engine.py", line, line + alloc)
    f = memory.measure(fw_copy, programs=("tens_conventional",))
    irq = f["irq"]["tens_conventional"]
    assert irq["bytes"] > 0
    assert not irq["handler_live"]
    assert any("MemoryError" in e for e in f["irq_errors"])


@pytest.mark.req("FR-16")
def test_an_allocating_irq_handler_is_caught(fw_copy):
    _edit(fw_copy / "stim" / "engine.py", "        self.pulses += 1\n",
          "        self.pulses += 1\n        self.last_ma = self.level_ua / 1000\n")  # fmt: skip
    f = memory.measure(fw_copy, programs=("tens_conventional",))
    irq = f["irq"]["tens_conventional"]
    assert irq["bytes"] > 0
    assert not irq["handler_live"]  # with the heap locked it raised, and the port disables it
    assert any("MemoryError" in e for e in f["irq_errors"])


@pytest.mark.req("FR-16")
def test_an_allocating_control_loop_is_caught(fw_copy):
    old = "        action = watch.update((chan.sense_last * chan.ohm_q12) >> 12, gap_ms)\n"
    new = "        action = watch.update(chan.sense_last * chan.ohm_q12 / 4096, gap_ms)\n"
    _edit(fw_copy / "stim" / "stimulator.py", old, new)
    f = memory.measure(fw_copy, programs=("tens_conventional",))
    loop = f["loop"]["tens_conventional"]
    assert loop["bytes"] > 0 and not loop["locked_ok"]
    assert "MemoryError" in loop["error"]

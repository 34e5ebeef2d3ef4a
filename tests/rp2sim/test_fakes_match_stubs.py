"""The fakes accept what MicroPython v1.29's rp2 port accepts, for every class, method and
function of `machine` and `rp2` that the firmware uses: compared, parameter by parameter, with
the port's type stubs (requirements-stubs.txt).

Both sets of fakes are checked: the simulator's (host_tools/rp2sim/fakes.py, read through
`inspect`) and the MicroPython VM's (host_tools/mpvm/lib, read from source). What the firmware
uses is found in its syntax tree: names imported from or looked up on `machine` and `rp2`, and
every method name it calls, matched against the stub's classes.

A fake must not accept a parameter the port lacks (firmware passing it would work in tests and
fail on the board), and must accept every parameter the port has, unless it is listed in
NOT_MODELLED with the reason. Where the stubs disagree with the port's C source, STUB_ERRATA
says so and the port wins.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from host_tools.sim.rig import FirmwareRig

pytestmark = pytest.mark.req("FR-15", "FR-17")

ROOT = Path(__file__).resolve().parents[2]
STUBS = ROOT / ".venv" / "mpy-stubs"
STUB_FILES = {"machine": STUBS / "machine.pyi", "rp2": STUBS / "rp2" / "__init__.pyi"}
MPVM_LIB = ROOT / "host_tools" / "mpvm" / "lib"
FIRMWARE = ROOT / "firmware"

POS, KW, VAR, VARKW = "pos", "kw", "*", "**"

# Parameters of the port that the fakes do not take (firmware using one fails in the tests,
# never silently): (module, qualified name, parameter) -> why.
NOT_MODELLED = {
    ("machine", "Pin.__init__", "drive"): "pad drive strength has no effect on the sim",
    ("machine", "Pin.init", "drive"): "pad drive strength has no effect on the sim",
    ("machine", "Pin.irq", "priority"): "not an rp2 argument (other ports)",
    ("machine", "Pin.irq", "wake"): "not an rp2 argument (other ports)",
    ("machine", "ADC.__init__", "sample_ns"): "not an rp2 argument (other ports)",
    ("machine", "ADC.__init__", "atten"): "not an rp2 argument (other ports)",
}
# Methods the name scan over-approximates (the firmware calls a method of that name, but on
# another class): (module, qualified name) -> what the firmware actually calls.
NOT_USED = {
    ("rp2", "PIO.irq"): "the firmware calls StateMachine.irq; PIO-level IRQs are not modelled",
    ("machine", "RTC.init"): "the firmware calls Pin.init; the rp2 RTC has only datetime()",
}
# The stubs against the port's C source (ports/rp2): the fakes follow the port.
STUB_ERRATA = {
    # rp2_state_machine_init_helper: `prog` and `freq` are positional-or-keyword, the other
    # arguments keyword-only (the stubs name the first `program` and make `freq` keyword-only).
    ("rp2", "StateMachine.__init__", "prog"): "stubs call it `program`",
    ("rp2", "StateMachine.init", "prog"): "stubs call it `program`",
    ("rp2", "StateMachine.__init__", "freq"): "stubs make it keyword-only",
    ("rp2", "StateMachine.init", "freq"): "stubs make it keyword-only",
    ("rp2", "StateMachine.__init__", "program"): "the port's name is `prog`",
    ("rp2", "StateMachine.init", "program"): "the port's name is `prog`",
    ("rp2", "PIO.state_machine", "program"): "the port's name is `prog`",
    ("rp2", "PIO.state_machine", "prog"): "stubs call it `program`",
    # machine_timer.c: `id` is an optional positional (default -1); the stubs require it.
    ("machine", "Timer.__init__", "id"): "stubs make it required and positional-only",
    # machine_wdt.c: `id` and `timeout` are positional-or-keyword; the stubs: keyword-only.
    ("machine", "WDT.__init__", "id"): "stubs make it keyword-only",
    ("machine", "WDT.__init__", "timeout"): "stubs make it keyword-only",
    # machine_pin.c (rp2): handler, trigger and hard are all positional-or-keyword.
    ("machine", "Pin.irq", "hard"): "stubs make it keyword-only",
    # machine_rtc.c (rp2): RTC() takes no argument at all (mp_arg_check_num 0, 0); the stubs
    # list other ports' `datetime` keyword (the fakes take `id` only to refuse it).
    ("machine", "RTC.__init__", "datetime"): "not an rp2 argument (other ports)",
    # rp2.py: asm_pio(**kw) hands its keywords to PIOASMEmit, which refuses unknown ones.
    ("rp2", "asm_pio", "kw"): "stubs list PIOASMEmit's keywords instead",
}


# ---- signatures as (kind, name, has_default) lists -----------------------------------------
def _from_ast(a: ast.arguments) -> list[tuple[str, str, bool]]:
    pos = a.posonlyargs + a.args
    first_default = len(pos) - len(a.defaults)
    out = [
        (POS if i >= len(a.posonlyargs) else "posonly", p.arg, i >= first_default)
        for i, p in enumerate(pos)
    ]
    if a.vararg:
        out.append((VAR, a.vararg.arg, True))
    out += [(KW, p.arg, d is not None) for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)]
    if a.kwarg:
        out.append((VARKW, a.kwarg.arg, True))
    return [p for p in out if p[1] not in ("self", "cls")]


def _from_inspect(fn) -> list[tuple[str, str, bool]]:
    kinds = {
        inspect.Parameter.POSITIONAL_ONLY: "posonly",
        inspect.Parameter.POSITIONAL_OR_KEYWORD: POS,
        inspect.Parameter.VAR_POSITIONAL: VAR,
        inspect.Parameter.KEYWORD_ONLY: KW,
        inspect.Parameter.VAR_KEYWORD: VARKW,
    }
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.name in ("self", "cls"):
            continue
        has_default = p.default is not inspect.Parameter.empty or p.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )
        out.append((kinds[p.kind], p.name, has_default))
    return out


def _stub_api(module: str) -> dict[str, list]:
    """'Class.method' or 'function' -> the stub's signatures (one per overload)."""
    tree = ast.parse(STUB_FILES[module].read_text())
    api: dict[str, list] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            api.setdefault(node.name, []).append(_from_ast(node.args))
        elif isinstance(node, ast.ClassDef):
            api.setdefault(node.name, [])
            for m in node.body:
                if isinstance(m, ast.FunctionDef) and not _other_port(m):
                    api.setdefault(node.name + "." + m.name, []).append(_from_ast(m.args))
    return api


def _other_port(fn: ast.FunctionDef) -> bool:
    """A stub method marked @mp_available(port=...) for a port other than rp2."""
    for d in fn.decorator_list:
        if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "mp_available":
            ports = [k.value for k in d.keywords if k.arg == "port"]
            if ports and isinstance(ports[0], ast.Constant) and "rp2" not in str(ports[0].value):
                return True
    return False


def _firmware_uses() -> dict[str, set[str]]:
    """module -> names of `machine`/`rp2` classes and functions the firmware refers to, and
    every 'Class.method' whose method name the firmware calls."""
    names: dict[str, set[str]] = {"machine": set(), "rp2": set()}
    called: set[str] = set()
    for path in FIRMWARE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in names:
                names[node.module].update(a.name for a in node.names)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in names
            ):
                names[node.value.id].add(node.attr)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                called.add(node.func.attr)
    uses: dict[str, set[str]] = {}
    for module, used in names.items():
        api = _stub_api(module)
        found = {n for n in used if n in api}
        for cls in [n for n in found if n[:1].isupper()]:
            found.add(cls + ".__init__")
            found.update(cls + "." + m for m in called if cls + "." + m in api)
        uses[module] = {n for n in found if api.get(n) and (module, n) not in NOT_USED}
    return uses


USES = _firmware_uses()
CASES = [(m, n) for m in sorted(USES) for n in sorted(USES[m])]


def _host_fakes():
    rig = FirmwareRig("pico")
    return {"machine": rig.modules["machine"], "rp2": rig.modules["rp2"]}


def _host_sig(mods, module: str, name: str):
    obj = mods[module]
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return _from_inspect(obj)


def _mpvm_api(module: str) -> dict[str, list]:
    tree = ast.parse((MPVM_LIB / (module + ".py")).read_text())
    api: dict[str, list] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            api[node.name] = _from_ast(node.args)
        elif isinstance(node, ast.ClassDef):
            for m in node.body:
                if isinstance(m, ast.FunctionDef):
                    api[node.name + "." + m.name] = _from_ast(m.args)
    return api


def mismatches(module: str, name: str, fake, overloads) -> list[str]:
    """What the fake's signature gets wrong against the stub's overloads, minus known entries."""
    if fake is None:
        return ["%s.%s: missing from the fake" % (module, name)]
    out = []

    def positional(sig):
        return [p for p in sig if p[0] in (POS, "posonly")]

    def accepts_name(sig, n):
        return any(p[1] == n and p[0] in (POS, KW) for p in sig) or any(p[0] == VARKW for p in sig)

    def accepts_index(sig, i):
        return len(positional(sig)) > i or any(p[0] == VAR for p in sig)

    def known(param):
        return (module, name, param) in NOT_MODELLED or (module, name, param) in STUB_ERRATA

    for i, (kind, pname, _d) in enumerate(p for p in fake if p[0] in (POS, "posonly")):
        if not any(accepts_index(o, i) for o in overloads) and not known(pname):
            out.append(
                "%s.%s: the port takes no positional argument %d (%s)"
                % (module, name, i + 1, pname)
            )
        elif kind == POS and not known(pname):
            named = [positional(o)[i] for o in overloads if len(positional(o)) > i]
            if named and all(p[0] == POS and p[1] != pname for p in named):
                out.append(
                    "%s.%s: argument %d is %r, the port's is %r"
                    % (module, name, i + 1, pname, named[0][1])
                )
    for kind, pname, _d in fake:
        if kind == KW and not any(accepts_name(o, pname) for o in overloads) and not known(pname):
            out.append("%s.%s: the port has no keyword %r" % (module, name, pname))
        if (
            kind in (VAR, VARKW)
            and not any(p[0] == kind for o in overloads for p in o)
            and not known(pname)
        ):
            out.append("%s.%s: the port takes no %s%s" % (module, name, kind, pname))
    for o in overloads:
        for i, (_kind, pname, _d) in enumerate(p for p in o if p[0] in (POS, "posonly")):
            if not accepts_index(fake, i) and not known(pname):
                out.append(
                    "%s.%s: the fake lacks positional argument %d (%s)"
                    % (module, name, i + 1, pname)
                )
        for kind, pname, _d in o:
            if kind == KW and not accepts_name(fake, pname) and not known(pname):
                out.append("%s.%s: the fake lacks keyword %r" % (module, name, pname))
    required = sum(1 for p in fake if p[0] in (POS, "posonly") and not p[2])
    least = min(sum(1 for p in o if p[0] in (POS, "posonly") and not p[2]) for o in overloads)
    if required > least:
        out.append(
            "%s.%s: the fake requires %d arguments, the port %d" % (module, name, required, least)
        )
    return sorted(set(out))


def test_the_firmware_uses_what_this_test_expects_to_find():
    """The AST scan finds the API the firmware is known to use (guards the scan itself)."""
    for n in ("Pin.__init__", "Pin.value", "PWM.duty_u16", "ADC.read_u16", "reset_cause"):
        assert n in USES["machine"], n
    for n in ("StateMachine.put", "StateMachine.irq", "StateMachine.tx_fifo", "asm_pio"):
        assert n in USES["rp2"], n


@pytest.mark.parametrize(("module", "name"), CASES, ids=["%s.%s" % c for c in CASES])
def test_simulator_fakes_match_the_port(module, name):
    api = _stub_api(module)
    assert mismatches(module, name, _host_sig(_host_fakes(), module, name), api[name]) == []


@pytest.mark.parametrize(("module", "name"), CASES, ids=["%s.%s" % c for c in CASES])
def test_micropython_vm_fakes_match_the_port(module, name):
    if module == "rp2" and name in ("asm_pio", "asm_pio_encode"):
        pytest.skip("the VM runs MicroPython's own assembler (host_tools/rp2sim/pioasm.py)")
    api = _stub_api(module)
    assert mismatches(module, name, _mpvm_api(module).get(name), api[name]) == []


def test_a_fake_taking_a_parameter_the_port_lacks_is_caught():
    overloads = _stub_api("machine")["PWM.init"]
    good = _from_inspect(lambda *, freq=None, duty_u16=None, duty_ns=None, invert=None: None)
    assert mismatches("machine", "PWM.init", good, overloads) == []
    bad = _from_inspect(
        lambda *, freq=None, duty_u16=None, duty_ns=None, invert=None, phase=0: None
    )
    assert mismatches("machine", "PWM.init", bad, overloads) == [
        "machine.PWM.init: the port has no keyword 'phase'"
    ]
    short = _from_inspect(lambda *, freq=None, duty_u16=None: None)
    assert len(mismatches("machine", "PWM.init", short, overloads)) == 2

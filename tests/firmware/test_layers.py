"""The firmware's layers, read from its sources (docs/architecture.md): only the hardware layer
touches `machine` and `rp2`, no module reaches into another's private parts, and the wiring
is done in one place (stim/main.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
# The hardware layer: a channel's PIO/PWM/SENSE (engine), the wearer's side of the board and
# the boost, watchdog and reset cause (hw), the safe state (safe). boot.py makes the outputs
# safe before the package is importable, with its own fallback (SR-8).
HARDWARE = {"stim/engine.py", "stim/hw.py", "stim/safe.py", "boot.py"}
# Modules that may build hardware objects: the hardware layer itself and the one wiring point.
BUILDERS = {"stim/main.py"}


def _sources():
    return sorted(p for p in FIRMWARE.rglob("*.py"))


def _rel(p: Path) -> str:
    return p.relative_to(FIRMWARE).as_posix()


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out += [(n.lineno, a.name) for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module:
            out.append((n.lineno, n.module))
            out += [(n.lineno, n.module + "." + a.name) for a in n.names]
    return out


def machine_users(root: Path = FIRMWARE) -> dict[str, list[int]]:
    """firmware file -> lines importing machine or rp2 (at module level or inside a function)."""
    found: dict[str, list[int]] = {}
    for p in sorted(root.rglob("*.py")):
        for line, mod in _imports(ast.parse(p.read_text())):
            lines = found.setdefault(p.relative_to(root).as_posix(), [])
            if mod.split(".")[0] in ("machine", "rp2") and line not in lines:
                lines.append(line)
    return {k: v for k, v in found.items() if v}


def private_reaches(root: Path = FIRMWARE) -> list[str]:
    """`obj._name` where obj is not self: a call into (or a read of) another object's private
    part. Dunders are the language's, not the module's."""
    out = []
    for p in sorted(root.rglob("*.py")):
        for n in ast.walk(ast.parse(p.read_text())):
            if (
                isinstance(n, ast.Attribute)
                and n.attr.startswith("_")
                and not n.attr.startswith("__")
                and not (isinstance(n.value, ast.Name) and n.value.id == "self")
            ):
                out.append("%s:%d %s" % (p.relative_to(root).as_posix(), n.lineno, ast.unparse(n)))
    return out


def test_only_the_hardware_layer_imports_machine_or_rp2():
    users = machine_users()
    assert set(users) <= HARDWARE, {k: v for k, v in users.items() if k not in HARDWARE}
    # and the hardware layer really is where they are used (the check is not vacuous)
    assert {"stim/engine.py", "stim/hw.py", "stim/safe.py"} <= set(users)


def test_the_layer_check_finds_a_stray_import(tmp_path):
    (tmp_path / "stim").mkdir()
    (tmp_path / "stim" / "unit.py").write_text("def f():\n    from machine import Pin\n")
    (tmp_path / "stim" / "leds.py").write_text("import rp2.asm_pio\n")
    assert machine_users(tmp_path) == {"stim/leds.py": [1], "stim/unit.py": [2]}


def test_no_module_reaches_into_another_objects_private_parts():
    assert private_reaches() == []


def test_the_private_reach_check_finds_one(tmp_path):
    (tmp_path / "host.py").write_text("def f(app):\n    app._finish_session(0)\n    self._ok()\n")
    assert private_reaches(tmp_path) == ["host.py:2 app._finish_session"]


HARDWARE_CLASSES = ("Channel", "Hardware", "Boost", "Watchdog", "Pin", "PWM", "ADC", "WDT")


@pytest.mark.parametrize("path", [p for p in _sources() if _rel(p) not in HARDWARE | BUILDERS])
def test_logic_is_handed_its_hardware_and_never_builds_it(path):
    """Only stim/main.py builds the hardware objects; the stimulator, unit, wearer, host link
    and app get theirs handed in."""
    built = [
        "%d %s" % (n.lineno, n.func.id if isinstance(n.func, ast.Name) else n.func.attr)
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Call)
        and (n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", ""))
        in HARDWARE_CLASSES
    ]
    assert built == []


def test_the_host_link_and_the_app_do_not_hold_each_other():
    host = (FIRMWARE / "stim" / "host.py").read_text()
    app = (FIRMWARE / "stim" / "app.py").read_text()
    assert "app" not in {n for line, n in _imports(ast.parse(host))} and ".app" not in host
    assert "stim.app" not in host and "HostLink" not in app


def test_the_layer_rules_hold_for_every_import():
    from host_tools.dev import archgraph

    graph = archgraph.imports()
    assert [m for m in graph if archgraph.layer_of(m) == "?"] == []  # every module placed
    assert archgraph.forbidden_imports(graph) == []


def test_the_rules_catch_the_unit_layer_importing_hardware(tmp_path):
    from host_tools.dev import archgraph

    (tmp_path / "stim").mkdir()
    (tmp_path / "stim" / "unit.py").write_text("from stim import hw\n")
    (tmp_path / "stim" / "hw.py").write_text("import machine\n")
    (tmp_path / "stim" / "leds.py").write_text("import machine\n")
    bad = archgraph.forbidden_imports(archgraph.imports(tmp_path))
    assert bad == ["stim.leds -> machine", "stim.unit -> stim.hw"]


def test_the_architecture_picture_is_the_one_the_code_gives():
    from host_tools.dev import archgraph

    assert archgraph.current_block() == archgraph.block(), (
        "docs/architecture.md is out of date: python -m host_tools.dev.archgraph --write"
    )


def _core_and_unit():
    """Every module of the pure core and the unit layer (docs/architecture.md, as
    host_tools.dev.archgraph lists them), but the package itself and stim.host, which needs
    the port's asyncio besides."""
    from host_tools.dev import archgraph

    layers = dict(archgraph.LAYERS)
    return [m for m in layers["core"] + layers["unit"] if m not in ("stim", "stim.host")]


CORE_AND_UNIT = _core_and_unit()


@pytest.mark.parametrize("name", CORE_AND_UNIT)
def test_the_core_and_the_unit_layer_load_without_the_chip(name):
    """host_tools.fwcore: CPython with only a `micropython` and a `time` shim, no machine."""
    from host_tools import fwcore

    assert fwcore.load(name).__name__ == name


@pytest.mark.parametrize("name", ["stim.engine", "stim.hw", "stim.safe"])
def test_the_hardware_layer_needs_the_chip(name):
    from host_tools import fwcore

    with pytest.raises(ImportError, match="'(machine|rp2)'"):
        fwcore.load(name)

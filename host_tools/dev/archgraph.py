"""The firmware's import graph, read from its sources, as the Mermaid picture in
docs/architecture.md (between its `imports` markers), so the picture cannot drift from the code:
tests/firmware/test_layers.py checks that the document holds what this module generates.

    python -m host_tools.dev.archgraph          print the picture
    python -m host_tools.dev.archgraph --write  put it into docs/architecture.md
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
DOC = ROOT / "docs" / "architecture.md"
BEGIN = "<!-- imports:begin (python -m host_tools.dev.archgraph --write) -->"
END = "<!-- imports:end -->"

# The layers. The wiring builds the hardware layer and hands it to the unit layer, which never
# imports it; both stand on the pure core, which imports nothing but itself.
LAYERS = (
    ("wiring", ("main", "boot", "stim.main", "stim.app")),
    ("unit", ("stim.unit", "stim.wearer", "stim.host", "stim.stimulator")),
    ("hardware", ("stim.hw", "stim.engine", "stim.safe")),
    (
        "core",
        (
            "stim",
            "stim.board",
            "stim.battery",
            "stim.custom",
            "stim.electrode",
            "stim.feedback",
            "stim.gestures",
            "stim.hostcmd",
            "stim.leds",
            "stim.level",
            "stim.limits",
            "stim.log",
            "stim.modulation",
            "stim.programs",
            "stim.progcheck",
            "stim.pulse",
            "stim.session",
            "stim.settings",
            "stim.update",
        ),
    ),
)
ALLOWED = {
    "wiring": {"wiring", "unit", "hardware", "core"},
    "unit": {"unit", "core"},
    "hardware": {"hardware", "core"},
    "core": {"core"},
}
HARDWARE_MODULES = ("machine", "rp2")


def module_name(path: Path, root: Path = FIRMWARE) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def imports(root: Path = FIRMWARE) -> dict[str, set[str]]:
    """module -> the firmware modules (and machine/rp2) it imports, anywhere in its code."""
    names = {module_name(p, root) for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for p in sorted(root.rglob("*.py")):
        me = module_name(p, root)
        out: set[str] = set()
        for n in ast.walk(ast.parse(p.read_text())):
            mods: list[str] = []
            if isinstance(n, ast.Import):
                mods = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom) and n.module:
                mods = [n.module] + [n.module + "." + a.name for a in n.names]
            for m in mods:
                top = m.split(".")[0]
                if top in HARDWARE_MODULES:
                    out.add(top)
                elif m in names and m != me:
                    out.add(m)
        # `from stim import x` names stim.x: the package itself is only a dependency when
        # something else is taken from it (load_board)
        if any(m != "stim" and m.startswith("stim.") for m in out):
            out.discard("stim")
        graph[me] = out
    return graph


def layer_of(module: str) -> str:
    for name, members in LAYERS:
        if module in members:
            return name
    return "?"


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports across the layers' rules (ALLOWED), and machine/rp2 outside the hardware layer
    (boot.py excepted: it makes the outputs safe before the package can be trusted)."""
    bad = []
    for mod, deps in sorted(graph.items()):
        mine = layer_of(mod)
        for d in sorted(deps):
            if d in HARDWARE_MODULES:
                ok = mine == "hardware" or mod == "boot"
            else:
                ok = layer_of(d) in ALLOWED.get(mine, ())
            if not ok:
                bad.append("%s -> %s" % (mod, d))
    return bad


def _node(m: str) -> str:
    return m.replace(".", "_")


def mermaid(graph: dict[str, set[str]]) -> str:
    lines = ["```mermaid", "flowchart TB"]
    for name, members in LAYERS:
        present = [m for m in members if m in graph]
        lines.append("  subgraph %s" % name)
        for m in present:
            lines.append('    %s["%s"]' % (_node(m), m))
        lines.append("  end")
    lines.append("  subgraph port [MicroPython rp2 port]")
    lines.append('    machine["machine"]')
    lines.append('    rp2["rp2"]')
    lines.append("  end")
    for mod in sorted(graph):
        for d in sorted(graph[mod]):
            lines.append("  %s --> %s" % (_node(mod), _node(d)))
    lines.append("```")
    return "\n".join(lines)


def block(root: Path = FIRMWARE) -> str:
    return "%s\n%s\n%s" % (BEGIN, mermaid(imports(root)), END)


def current_block(doc: Path = DOC) -> str:
    text = doc.read_text()
    a = text.index(BEGIN)
    b = text.index(END, a) + len(END)
    return text[a:b]


def write(doc: Path = DOC) -> None:
    text = doc.read_text()
    doc.write_text(text.replace(current_block(doc), block()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.dev.archgraph", description=__doc__)
    ap.add_argument("--write", action="store_true", help="update docs/architecture.md")
    args = ap.parse_args(argv)
    if args.write:
        write()
    else:
        print(block())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the host knows about the unit's console and buttons, in one place: every host module
imports these instead of keeping its own copy.

- Console lines (firmware/stim/log.py, firmware/stim/hostcmd.py, docs/protocol.md): a log line
  begins `{"t":`, a reply to a host command `{"r":`; anything else (REPL banner, tracebacks) is
  neither. A command line is at most MAX_LINE bytes.
- Buttons (firmware/stim/gestures.py): their names in bit order, and the gesture timings.

MAX_LINE, the button names and the timings are read from the firmware's own source (plain
constants, `NAME = value` or `NAME = const(value)`), so they cannot drift from it; this module
needs neither the simulated chip nor MicroPython.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

FIRMWARE_DIR = Path(__file__).resolve().parents[1] / "firmware"

LOG_PREFIX = '{"t":'  # every log line of the firmware begins so (README, "Log format")
REPLY_PREFIX = '{"r":'  # every reply to a host command begins so (docs/protocol.md)


def firmware_constants(module: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The module-level constants `names` of a firmware module (e.g. "stim/gestures.py"),
    read from its source: `NAME = literal` or `NAME = const(literal)`. KeyError names one
    that is missing or not a plain constant."""
    path = FIRMWARE_DIR / module
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        if not isinstance(target, ast.Name) or target.id not in names:
            continue
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "const"
            and len(value.args) == 1
        ):
            value = value.args[0]
        found[target.id] = ast.literal_eval(value)
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError("%s: no plain constant %s" % (path, ", ".join(missing)))
    return found


MAX_LINE: int = firmware_constants("stim/hostcmd.py", ("MAX_LINE",))["MAX_LINE"]

_GESTURES = firmware_constants(
    "stim/gestures.py",
    ("BUTTONS", "POWER_LONG_MS", "MODE_LONG_MS", "REPEAT_DELAY_MS", "REPEAT_MS", "LOCK_MS"),
)
BUTTONS: tuple[str, ...] = _GESTURES["BUTTONS"]  # bit n of a button sample is BUTTONS[n]
POWER_LONG_MS: int = _GESTURES["POWER_LONG_MS"]  # POWER held this long: on/off
MODE_LONG_MS: int = _GESTURES["MODE_LONG_MS"]  # MODE held this long: channel selection
REPEAT_DELAY_MS: int = _GESTURES["REPEAT_DELAY_MS"]  # PLUS/MINUS held: repeats start after
REPEAT_MS: int = _GESTURES["REPEAT_MS"]  # ... then one more step every REPEAT_MS
LOCK_MS: int = _GESTURES["LOCK_MS"]  # PLUS and MINUS held together this long: lock/unlock


def json_line(line: str, prefix: str) -> dict | None:
    """The object on a console line that begins with `prefix`, or None for anything else."""
    if not line.startswith(prefix):
        return None
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None

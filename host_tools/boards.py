"""Board definitions on the laptop: find them by name, load them through the firmware's validator.

The rules live in one place, firmware/stim/board.py, which also runs on the device. This module
loads that very file by path (the firmware package is not importable on the host without its
`machine` fakes), so a board the host accepts is exactly a board the device accepts.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
BOARDS_DIR = ROOT / "boards"
VALIDATOR_PATH = ROOT / "firmware" / "stim" / "board.py"
_MODULE_NAME = "stim_board"


def _load_validator() -> ModuleType:
    # Reuse an already-loaded copy so BoardError stays one class however often this is imported.
    mod = sys.modules.get(_MODULE_NAME)
    if mod is not None and Path(getattr(mod, "__file__", "")) == VALIDATOR_PATH:
        return mod
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, VALIDATOR_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the board validator from {VALIDATOR_PATH}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[_MODULE_NAME]
        raise
    return mod


validator = _load_validator()
BoardError = validator.BoardError
validate = validator.validate
parse = validator.parse


def board_names() -> list[str]:
    """Names of the board definitions shipped in boards/, sorted."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.json"))


def board_path(name_or_path: str | Path) -> Path:
    """boards/<name>.json for a bare name ("pico"); anything with a suffix or a slash is a path.

    An unknown bare name raises BoardError listing the known names.
    """
    s = str(name_or_path)
    if isinstance(name_or_path, Path) or s.endswith(".json") or "/" in s or "\\" in s:
        return Path(name_or_path)
    path = BOARDS_DIR / (s + ".json")
    if not path.is_file():
        known = ", ".join(board_names()) or "none"
        hint = "or give a path to a .json file"
        raise BoardError(
            "<file>", f"no board named {s!r} in {BOARDS_DIR} (known: {known}); {hint}"
        )
    return path


def load_board(name_or_path: str | Path) -> dict:
    """Read and validate a board definition: the normalised dict, defaults filled."""
    return validator.load(str(board_path(name_or_path)))

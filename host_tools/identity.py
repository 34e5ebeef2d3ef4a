"""Which firmware and which host tools these are: `git describe` and the commit of the tree they
come from, marked `-dirty` when it has uncommitted changes.

`stimctl flash` writes the firmware's identity into stim/version.py on the board (the module is
not in the repository: a tree run from source reports "unknown"); the firmware logs it at boot
and reports it in `status` and in every history record. `stimctl --version` prints the host
tools' identity, the same way.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION_PATH = "/stim/version.py"  # on the board
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Identity:
    version: str  # git describe --tags --always --dirty, or "unknown" outside a git checkout
    commit: str  # the full commit hash, or ""

    @property
    def dirty(self) -> bool:
        return self.version.endswith("-dirty")

    def module(self) -> bytes:
        """stim/version.py as the firmware imports it (stim.firmware_version): one string,
        "build <version> <commit>" ("-" for no commit), which reads the same in a .mpy."""
        return (
            "# Written by `stimctl flash`: the firmware's build identity.\n"
            "BUILD = %r\n" % ("build %s %s" % (self.version, self.commit or "-"))
        ).encode()


def _git(*args: str, root: Path) -> str | None:
    try:
        r = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def of_tree(root: Path = ROOT, paths: tuple[str, ...] = ()) -> Identity:
    """The identity of the checkout at `root`. `paths` (e.g. "firmware", "boards"): only
    uncommitted changes under them make it dirty; none: any change in the tree does."""
    describe = _git("describe", "--tags", "--always", "--abbrev=12", root=root)
    commit = _git("rev-parse", "HEAD", root=root)
    if not describe or not commit:
        return Identity(UNKNOWN, "")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", *paths, root=root)
    if status:
        describe += "-dirty"
    return Identity(describe, commit)


_BUILD = re.compile(rb"build ([!-~]{1,80}) ([0-9a-f]{40}|-)")


def parse_module(data: bytes) -> Identity | None:
    """The identity in a stim/version.py or .mpy, or None if it holds none."""
    m = _BUILD.search(data)
    if m is None:
        return None
    version = m.group(1).decode()
    commit = m.group(2).decode()
    return Identity(version, "" if commit == "-" else commit)


def host_tools() -> str:
    """`stimctl --version`: the package version and the checkout it runs from."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("stim-host-tools")
    except PackageNotFoundError:
        pkg = "?"
    ident = of_tree(ROOT)
    tail = "" if ident.version == UNKNOWN else " (%s, commit %s)" % (ident.version, ident.commit)
    return "stimctl %s%s" % (pkg, tail)

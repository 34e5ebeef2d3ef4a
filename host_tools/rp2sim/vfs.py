"""The simulated board's flash filesystem: what `open()` and `os` see on the device.

A flat map of absolute paths to bytes, with directories, a capacity (so "filesystem full" can be
tested) and MicroPython's errno numbers in its OSErrors. `rename` replaces atomically, as
littlefs does, which is what the firmware's atomic settings writes rely on.

Bound to a simulated chip (`busy`), every operation the firmware makes also takes the time it
takes on the rp2 port: littlefs's work in C, and the erases and page programs it causes, each
with interrupts masked (flashmodel.py). `rom_log` records those ROM operations
(t_cycles, "erase"/"program", path, masked_cycles), so a test can see when flash was written.
"""

from __future__ import annotations

import io
import types
from collections.abc import Callable

from .flashmodel import INLINE_MAX, FlashTiming, LittleFsModel

ENOENT, EEXIST, EISDIR, ENOTDIR, EINVAL, ENOSPC, ENOTEMPTY = 2, 17, 21, 20, 22, 28, 39


def _norm(path: str, cwd: str = "/") -> str:
    if not path.startswith("/"):
        path = cwd.rstrip("/") + "/" + path
    parts: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/" + "/".join(parts)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


class _File(io.BytesIO):
    def __init__(self, fs: FlashFs, path: str, data: bytes, writable: bool, append=False):
        super().__init__(data)
        self._fs, self._path, self._writable = fs, path, writable
        self._append = append
        self._synced = len(data)  # the size littlefs has stored for this handle

    def flush(self):
        # A handle left open (a host link cut mid-write) may be flushed by Python's garbage
        # collector much later: once its directory has been removed, littlefs has nowhere
        # to put it, so it must not bring the file back.
        if self._writable and not self.closed and _parent(self._path) in self._fs.dirs:
            data = self.getvalue()
            self._fs._store(self._path, data)
            self._fs._synced(self._path, self._synced, len(data), self._append)
            self._synced = len(data)

    def close(self):
        if not self.closed:
            self.flush()
        super().close()


class FlashFs:
    def __init__(self, files: dict[str, bytes | str] | None = None, capacity: int = 1_400_000):
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = {"/"}
        self.capacity = capacity
        self.writes = 0
        for path, data in (files or {}).items():
            self.write(path, data)
        # Timing on a simulated chip: busy(cpu_us, erases, pages, path) runs the operation's
        # CPU and ROM time; None (a host-side filesystem) costs nothing.
        self.busy: Callable[[float, int, int, str], None] | None = None
        self.timing = FlashTiming()
        self.lfs = LittleFsModel()
        self.rom_log: list[tuple[int, str, str, int]] = []

    # timing -------------------------------------------------------------------------------
    def _cost(self, cpu_us: float, erases: int = 0, pages: int = 0, path: str = "") -> None:
        if self.busy is not None:
            self.busy(cpu_us, erases, pages, path)

    def _commit(self, path: str, nbytes: int, cpu_us: float) -> None:
        e, p = self.lfs.commit(_parent(path), nbytes, self.files)
        self._cost(cpu_us, e, p, path)

    def _synced(self, path: str, old: int, new: int, append: bool) -> None:
        """A write handle's data reached littlefs (flush/close): its blocks, then its entry."""
        t = self.timing
        e, p = self.lfs.data(old, new, append)
        inline = new if new <= INLINE_MAX else 8
        cpu = t.close_us + t.write_byte_us * max(0, new - (old if append else 0))
        self._cost(0.0, e, p, path)
        self._commit(path, 12 + len(path) + inline, cpu)

    # host-side helpers ---------------------------------------------------------------------
    def write(self, path: str, data: bytes | str) -> None:
        path = _norm(path)
        parent = path.rsplit("/", 1)[0] or "/"
        while parent not in self.dirs:
            self.dirs.add(parent)
            parent = parent.rsplit("/", 1)[0] or "/"
        self.files[path] = data.encode() if isinstance(data, str) else bytes(data)

    def read(self, path: str) -> bytes:
        return self.files[_norm(path)]

    def used(self) -> int:
        return sum(len(v) for v in self.files.values())

    # device side ---------------------------------------------------------------------------
    def _store(self, path: str, data: bytes) -> None:
        old = len(self.files.get(path, b""))
        if self.used() - old + len(data) > self.capacity:
            raise OSError(ENOSPC, "ENOSPC")
        self.files[path] = bytes(data)
        self.writes += 1

    def open(self, path, mode="r", *args, **kw):
        path = _norm(str(path))
        binary = "b" in mode
        if path in self.dirs:
            raise OSError(EISDIR, "EISDIR")
        parent = path.rsplit("/", 1)[0] or "/"
        self._cost(self.timing.open_us)
        if "r" in mode and "+" not in mode:
            if path not in self.files:
                raise OSError(ENOENT, "ENOENT")
            f = _File(self, path, self.files[path], writable=False)
            # Reading costs by the byte; charged at open, as if the file is read through.
            self._cost(self.timing.read_us + self.timing.read_byte_us * len(self.files[path]))
        elif "w" in mode or "a" in mode or "+" in mode:
            if parent not in self.dirs:
                raise OSError(ENOENT, "ENOENT")
            new = path not in self.files
            data = self.files.get(path, b"") if ("a" in mode or "+" in mode) else b""
            self._store(path, data)
            if new:
                self._commit(path, 12 + len(path), 0.0)  # the new entry
            f = _File(self, path, data, writable=True, append="a" in mode)
            if "w" in mode:
                f._synced = 0
            if "a" in mode:
                f.seek(0, 2)
        else:
            raise ValueError("invalid mode %r" % mode)
        if binary:
            return f
        return _TextFile(f)

    def os_module(self) -> types.ModuleType:
        fs = self

        def listdir(path="/"):
            p = _norm(path)
            if p not in fs.dirs:
                raise OSError(ENOENT, "ENOENT")
            prefix = p.rstrip("/") + "/"
            names = set()
            for q in list(fs.files) + list(fs.dirs):
                if q != p and q.startswith(prefix):
                    names.add(q[len(prefix) :].split("/", 1)[0])
            return sorted(names)

        def stat(path):
            p = _norm(path)
            fs._cost(fs.timing.stat_us)
            if p in fs.dirs:
                return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            if p in fs.files:
                return (0x8000, 0, 0, 0, 0, 0, len(fs.files[p]), 0, 0, 0)
            raise OSError(ENOENT, "ENOENT")

        def remove(path):
            p = _norm(path)
            if p not in fs.files:
                raise OSError(ENOENT, "ENOENT")
            del fs.files[p]
            fs._commit(p, 12, fs.timing.remove_us)

        def rename(old, new):
            o, n = _norm(old), _norm(new)
            if o not in fs.files or _parent(n) not in fs.dirs:
                raise OSError(ENOENT, "ENOENT")
            if n in fs.dirs:
                raise OSError(EISDIR, "EISDIR")
            fs.files[n] = fs.files.pop(o)  # atomic replace, as littlefs rename
            fs._commit(n, 24 + len(o) + len(n), fs.timing.rename_us)

        def mkdir(path):
            p = _norm(path)
            if p in fs.dirs or p in fs.files:
                raise OSError(EEXIST, "EEXIST")
            if _parent(p) not in fs.dirs:
                raise OSError(ENOENT, "ENOENT")
            fs.dirs.add(p)

        def rmdir(path):
            p = _norm(path)
            if p not in fs.dirs:
                raise OSError(ENOENT, "ENOENT")
            if listdir(p):
                raise OSError(ENOTEMPTY, "ENOTEMPTY")
            fs.dirs.discard(p)

        def statvfs(path="/"):
            bsize = 4096
            total = fs.capacity // bsize
            free = max(0, (fs.capacity - fs.used()) // bsize)
            return (bsize, bsize, total, free, free, 0, 0, 0, 0, 255)

        return _os(
            listdir=listdir,
            stat=stat,
            remove=remove,
            unlink=remove,
            rename=rename,
            mkdir=mkdir,
            rmdir=rmdir,
            statvfs=statvfs,
            sync=lambda: None,
            getcwd=lambda: "/",
            uname=lambda: ("rp2", "rp2", "1.29.0", "v1.29.0", "Raspberry Pi Pico with RP2040"),
            urandom=lambda n: bytes(range(n)),
        )


def _os(**attrs) -> types.ModuleType:
    mod = types.ModuleType("os")
    mod.__dict__.update(attrs)
    return mod


class _TextFile(io.TextIOWrapper):
    def __init__(self, raw: _File):
        super().__init__(raw, encoding="utf-8", newline="")

"""The simulated board's flash filesystem: what `open()` and `os` see on the device.

A flat map of absolute paths to bytes, with directories, a capacity (so "filesystem full" can be
tested) and MicroPython's errno numbers in its OSErrors. `rename` replaces atomically, as
littlefs does, which is what the firmware's atomic settings writes rely on.
"""

from __future__ import annotations

import io
import types

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
    def __init__(self, fs: FlashFs, path: str, data: bytes, writable: bool):
        super().__init__(data)
        self._fs, self._path, self._writable = fs, path, writable

    def flush(self):
        # A handle left open (a host link cut mid-write) may be flushed by Python's garbage
        # collector much later: once its directory has been removed, littlefs has nowhere
        # to put it, so it must not bring the file back.
        if self._writable and not self.closed and _parent(self._path) in self._fs.dirs:
            self._fs._store(self._path, self.getvalue())

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
        if "r" in mode and "+" not in mode:
            if path not in self.files:
                raise OSError(ENOENT, "ENOENT")
            f = _File(self, path, self.files[path], writable=False)
        elif "w" in mode or "a" in mode or "+" in mode:
            if parent not in self.dirs:
                raise OSError(ENOENT, "ENOENT")
            data = self.files.get(path, b"") if ("a" in mode or "+" in mode) else b""
            self._store(path, data)
            f = _File(self, path, data, writable=True)
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

        def rename(old, new):
            o, n = _norm(old), _norm(new)
            if o not in fs.files or _parent(n) not in fs.dirs:
                raise OSError(ENOENT, "ENOENT")
            if n in fs.dirs:
                raise OSError(EISDIR, "EISDIR")
            fs.files[n] = fs.files.pop(o)  # atomic replace, as littlefs rename

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

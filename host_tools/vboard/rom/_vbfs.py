"""The virtual board's flash filesystem: a VFS object mounted at / (vfs.mount), its contents kept
by the host (board.mjs, in a host file, so they survive a restart like a board's flash).

It raises OSError with MicroPython's errno values (ENOENT 2...), as the rp2 port's littlefs does;
the WebAssembly port's own POSIX VFS reports Emscripten's numbers, which mpremote misreads.
A file's contents are committed when it is closed (or flushed), as littlefs commits on close or
sync; a new file exists, empty, from the moment it is opened for writing.
"""

import binascii
import io

import _vbflash

_S_IFDIR = 0x4000
_S_IFREG = 0x8000


def _check(err):
    if err:
        raise OSError(err)


class FlashFile(io.IOBase):
    def __init__(self, path, data, text, writing, append):
        self._path = path
        self._d = bytearray(data) if (append or not writing) else bytearray()
        self._pos = len(self._d) if append else 0
        self._text = text
        self._writing = writing
        self._dirty = False
        self._closed = False

    def _live(self):
        if self._closed:
            raise OSError(22)  # EINVAL: I/O on a closed file, as the port

    def read(self, n=-1):
        self._live()
        end = len(self._d) if n is None or n < 0 else min(len(self._d), self._pos + n)
        b = bytes(self._d[self._pos : end])
        self._pos = end
        return b.decode() if self._text else b

    def readinto(self, buf, n=-1):
        self._live()
        n = len(buf) if n < 0 else min(n, len(buf))
        n = min(n, len(self._d) - self._pos)
        buf[:n] = self._d[self._pos : self._pos + n]
        self._pos += n
        return n

    def readline(self, limit=-1):
        self._live()
        i = self._d.find(b"\n", self._pos)
        end = len(self._d) if i < 0 else i + 1
        if limit is not None and limit >= 0:
            end = min(end, self._pos + limit)
        b = bytes(self._d[self._pos : end])
        self._pos = end
        return b.decode() if self._text else b

    def readlines(self):
        out = []
        while True:
            line = self.readline()
            if not line:
                return out
            out.append(line)

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def write(self, b):
        self._live()
        if not self._writing:
            raise OSError(9)  # EBADF: not open for writing
        if isinstance(b, str):
            b = b.encode()
        n = len(b)
        self._d[self._pos : self._pos + n] = b
        self._pos += n
        self._dirty = True
        return n

    def seek(self, off, whence=0):
        self._live()
        base = (0, self._pos, len(self._d))[whence]
        self._pos = max(0, base + off)
        return self._pos

    def tell(self):
        return self._pos

    def flush(self):
        self._live()
        if self._dirty:
            _check(_vbflash.write(self._path, binascii.hexlify(self._d).decode()))
            self._dirty = False

    def close(self):
        if not self._closed:
            self.flush()
            self._closed = True
            self._d = None

    def ioctl(self, req, arg):
        if req == 4:  # MP_STREAM_CLOSE
            self.close()
        elif req == 1:  # MP_STREAM_FLUSH
            self.flush()
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class FlashVfs:
    def __init__(self):
        self._cwd = ""

    def _abs(self, path):
        if not path.startswith("/"):
            path = self._cwd + "/" + path
        parts = []
        for p in path.split("/"):
            if p == "" or p == ".":
                continue
            if p == "..":
                if parts:
                    parts.pop()
            else:
                parts.append(p)
        return "".join("/" + p for p in parts)

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def _stat(self, p):
        s = _vbflash.stat(p)
        if not s:
            raise OSError(2)
        kind, size = s.split(" ")
        return kind == "d", int(size)

    def stat(self, path):
        is_dir, size = self._stat(self._abs(path))
        return (_S_IFDIR if is_dir else _S_IFREG, 0, 0, 0, 0, 0, size, 0, 0, 0)

    def statvfs(self, path):
        bsize, blocks, free = _vbflash.statvfs()
        return (bsize, bsize, blocks, free, free, 0, 0, 0, 0, 255)

    def ilistdir(self, path):
        p = self._abs(path)
        s = _vbflash.listdir(p)
        if s is None:
            self._stat(p)  # ENOENT if missing
            raise OSError(20)  # ENOTDIR
        out = []
        for line in s.split("\n") if s else ():
            name, kind, size = line.split("\x00")
            out.append((name, _S_IFDIR if kind == "d" else _S_IFREG, 0, int(size)))
        return iter(out)

    def chdir(self, path):
        p = self._abs(path)
        if not self._stat(p)[0]:
            raise OSError(20)
        self._cwd = p

    def getcwd(self):
        return self._cwd or "/"

    def mkdir(self, path):
        _check(_vbflash.mkdir(self._abs(path)))

    def rmdir(self, path):
        _check(_vbflash.remove(self._abs(path), True))

    def remove(self, path):
        _check(_vbflash.remove(self._abs(path), False))

    def rename(self, old, new):
        _check(_vbflash.rename(self._abs(old), self._abs(new)))

    def open(self, path, mode):
        p = self._abs(path)
        writing = "w" in mode or "a" in mode or "+" in mode or "x" in mode
        s = _vbflash.stat(p)
        if s.startswith("d"):
            raise OSError(21)  # EISDIR
        if not s:
            if not writing or "r" in mode:
                raise OSError(2)
            _check(_vbflash.write(p, ""))  # created now, empty
            data = b""
        elif "x" in mode:
            raise OSError(17)
        else:
            data = binascii.unhexlify(_vbflash.read(p))
        return FlashFile(p, data, "b" not in mode, writing, "a" in mode)

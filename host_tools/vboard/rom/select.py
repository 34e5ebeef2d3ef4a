"""`select` of the rp2 port on the virtual board: `poll` over stream objects, as
extmod/modselect.c does it: an object is ready when its ioctl(MP_STREAM_POLL, mask) says so
(the console's sys.stdin / sys.stdin.buffer, rom/_vbsys.py: readable while the host's bytes
wait in the receive queue). Waiting is real time, fires machine.Timer callbacks as they fall
due, ends early when a byte arrives for a polled console, and is interruptible by Ctrl-C."""

import _sim

POLLIN = 0x0001
POLLOUT = 0x0004
POLLERR = 0x0008
POLLHUP = 0x0010

_MP_STREAM_POLL = 3
_ONESHOT = 1  # ipoll flag: a reported object's mask is cleared (modselect's SELECT_ONESHOT)
_FOREVER_US = 1_000_000


class _Poll:
    def __init__(self):
        self._objs = {}  # id(obj) -> [obj, mask]

    def register(self, obj, mask=POLLIN | POLLOUT):
        if not hasattr(obj, "ioctl"):
            raise TypeError("stream operation not supported")
        e = self._objs.get(id(obj))
        if e is None:
            self._objs[id(obj)] = [obj, mask]
        else:
            e[1] = mask

    def modify(self, obj, mask):
        e = self._objs.get(id(obj))
        if e is None:
            raise OSError(2)  # ENOENT, as the port
        e[1] = mask

    def unregister(self, obj):
        self._objs.pop(id(obj), None)

    def _ready(self, flags):
        out = []
        for e in self._objs.values():
            obj, mask = e
            ev = obj.ioctl(_MP_STREAM_POLL, mask) & (mask | POLLERR | POLLHUP)
            if ev:
                out.append((obj, ev))
                if flags & _ONESHOT:
                    e[1] = 0
        return out

    def _console_polled(self):
        for obj, mask in self._objs.values():
            if mask & POLLIN and getattr(obj, "_vb_console", False):
                return True
        return False

    def ipoll(self, timeout=-1, flags=0):
        if timeout is None:
            timeout = -1
        end = _sim.total_us() + timeout * 1000
        rx = self._console_polled()
        while True:
            got = self._ready(flags)
            if got or timeout == 0:
                return got
            if timeout < 0:
                _sim.advance_us(_FOREVER_US, rx)
                continue
            left = end - _sim.total_us()
            if left <= 0:
                return got
            _sim.advance_us(left, rx)

    def poll(self, timeout=-1):
        return list(self.ipoll(timeout))


def poll():
    return _Poll()

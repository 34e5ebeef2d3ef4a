"""`select` for asyncio on the virtual board: nothing registers streams here (the firmware's
tasks only sleep), so polling is waiting, in real time and interruptible by Ctrl-C."""

import _sim

POLLIN = 0x0001
POLLOUT = 0x0004
POLLERR = 0x0008
POLLHUP = 0x0010


class _Poll:
    def __init__(self):
        self._objs = {}

    def register(self, obj, mask=POLLIN | POLLOUT):
        self._objs[id(obj)] = (obj, mask)

    def modify(self, obj, mask):
        if id(obj) not in self._objs:
            raise OSError(2)
        self._objs[id(obj)] = (obj, mask)

    def unregister(self, obj):
        self._objs.pop(id(obj), None)

    def ipoll(self, timeout=-1, flags=0):
        if timeout is None or timeout < 0:
            while True:
                _sim.advance_us(1_000_000)
        _sim.advance_us(timeout * 1000)
        return ()

    def poll(self, timeout=-1):
        return list(self.ipoll(timeout))


def poll():
    return _Poll()

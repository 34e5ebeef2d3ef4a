# asyncio streams for the simulator: the reading half of MicroPython's `asyncio.Stream`
# (StreamReader.readinto), which the firmware uses on `sys.stdin.buffer`. Written for the
# simulator after MicroPython's documented behaviour (docs: library/asyncio.rst, "class
# Stream"), not copied from its extmod/asyncio/stream.py: a read first waits in the scheduler's
# IOQueue until the stream polls readable (the task is parked, other tasks run), then makes one
# call of the stream's own method. The other reads, writing and the TCP helpers
# (open_connection, start_server) are not provided: the firmware does not use them.

from . import core


class Stream:
    def __init__(self, s):
        self.s = s

    def close(self):
        pass

    # async: one poll wait, then the stream's readinto(buf). A plain generator as MicroPython
    # compiles it, marked so CPython's `await` takes it (core._sim_coroutine).
    @core._sim_coroutine
    def readinto(self, buf):
        yield core._io_queue.queue_read(self.s)
        return self.s.readinto(buf)


StreamReader = Stream

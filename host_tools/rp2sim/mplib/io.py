# io: the part of MicroPython's `io` module that the vendored asyncio needs, for the simulator.
#
# asyncio's ThreadSafeFlag derives from io.IOBase, MicroPython's base class for streams written
# in Python: a subclass supplies readinto/write/ioctl and `select.poll` calls its
# ioctl(MP_STREAM_POLL=3, flags). Nothing here needs the virtual CPU, so there is no _bind().
# (StringIO/BytesIO/open are not provided: the firmware does not use them.)


class IOBase:
    """Base for Python-level streams (MicroPython's io.IOBase): methods come from subclasses."""

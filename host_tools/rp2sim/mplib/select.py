# select: MicroPython's `select` module (poll objects, as asyncio uses them) for the simulator.
#
# Follows extmod/modselect.c in the build used on the rp2 port (no POSIX file descriptors):
# every registered object is polled by calling its ioctl(MP_STREAM_POLL, eventmask); if nothing
# is ready and the timeout has not run out, the CPU waits for an event (mp_event_wait_ms /
# mp_event_wait_indefinite), which here is the virtual CPU's idle(): virtual time passes until
# the timeout or until an interrupt handler has run, whichever is first. The timeout is measured
# in ticks_ms, as the C code does.
#
# The virtual CPU is given by _bind(cpu). When this file is imported inside an MpRuntime that
# supplies a `_cpu` built-in module (host_tools.rp2sim.fakes.build_modules does), it binds to it.

import errno

POLLIN = 0x0001
POLLOUT = 0x0004
POLLERR = 0x0008
POLLHUP = 0x0010

_MP_STREAM_POLL = 3
_FLAG_ONESHOT = 1

# idle(None) returning this many times in a row without virtual time moving and without any
# object becoming ready means nothing is left that could ever wake the CPU.
_NO_PROGRESS_LIMIT = 1000

_cpu = None


def _bind(cpu):
    """Attach this module to a virtual CPU (ticks_ms(), ticks_us(), idle(timeout_us))."""
    global _cpu
    _cpu = cpu


def _charge(n_objects):
    # What modselect.c's poll takes on the port: the call, and each object's ioctl.
    cpu = _cpu
    if cpu is not None and hasattr(cpu, "spend"):
        cpu.spend("poll_base")
        cpu.spend("poll_object", n_objects)


class WaitingForever(RuntimeError):
    pass


def _the_cpu():
    if _cpu is None:
        raise RuntimeError("select: no virtual CPU bound (call select._bind(cpu))")
    return _cpu


class poll:
    def __init__(self):
        self._map = {}  # id(obj) -> [obj, eventmask, revents]

    def register(self, obj, eventmask=POLLIN | POLLOUT):
        entry = self._map.get(id(obj))
        if entry is None:
            if not callable(getattr(obj, "ioctl", None)):
                raise OSError(errno.EOPNOTSUPP, "stream operation not supported")
            self._map[id(obj)] = [obj, eventmask, 0]
        else:
            entry[1] = eventmask

    def unregister(self, obj):
        self._map.pop(id(obj), None)

    def modify(self, obj, eventmask):
        entry = self._map.get(id(obj))
        if entry is None:
            raise OSError(errno.ENOENT)
        entry[1] = eventmask

    def _poll_once(self):
        n_ready = 0
        for entry in list(self._map.values()):
            ret = entry[0].ioctl(_MP_STREAM_POLL, entry[1])
            ret = int(ret)
            entry[2] = ret
            if ret == -1:
                raise OSError(errno.EINVAL)
            if ret != 0:
                n_ready += 1
        return n_ready

    def _wait(self, timeout):
        cpu = _the_cpu()
        has_timeout = timeout is not None and timeout >= 0
        start = cpu.ticks_ms()
        stuck = 0
        while True:
            n_ready = self._poll_once()
            elapsed = cpu.ticks_ms() - start
            if n_ready or (has_timeout and elapsed >= timeout):
                return n_ready
            if has_timeout:
                cpu.idle((timeout - elapsed) * 1000)
                continue
            if stuck >= _NO_PROGRESS_LIMIT:
                raise WaitingForever(
                    "all tasks are waiting forever: poll() without a timeout, and no interrupt "
                    "or timer is pending that could ever wake the CPU"
                )
            before = cpu.ticks_us()
            cpu.idle(None)
            stuck = stuck + 1 if cpu.ticks_us() == before else 0

    def _ready(self, oneshot):
        out = []
        for entry in self._map.values():
            if entry[2]:
                out.append((entry[0], entry[2]))
                if oneshot:
                    # Not polled again until a new event mask is set (modselect.c, FLAG_ONESHOT)
                    entry[1] = 0
        return out

    def poll(self, timeout=-1):
        _charge(len(self._map))
        self._wait(timeout)
        return self._ready(False)

    def ipoll(self, timeout=-1, flags=0):
        _charge(len(self._map))
        self._wait(timeout)
        return iter(self._ready(flags & _FLAG_ONESHOT))


try:
    import _cpu as _cpu_module
except ImportError:
    pass
else:
    _bind(_cpu_module.cpu)

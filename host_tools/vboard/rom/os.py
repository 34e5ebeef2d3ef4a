"""`os` of the rp2 port on the virtual board: the VFS functions (on the board's flash at /)."""

from uos import (  # noqa: F401
    chdir,
    getcwd,
    ilistdir,
    listdir,
    mkdir,
    mount,
    remove,
    rename,
    rmdir,
    stat,
    statvfs,
    umount,
)

sep = "/"


class _Uname:
    sysname = "rp2"
    nodename = "rp2"
    release = "1.29.0"
    version = "v1.29.0 on 2025-01-01 (virtual board)"
    machine = "Raspberry Pi Pico with RP2040"

    def __repr__(self):
        return "(sysname='rp2', nodename='rp2', release='1.29.0', version='%s', machine='%s')" % (
            self.version, self.machine)  # fmt: skip


def uname():
    import sys

    u = _Uname()
    u.machine = sys.implementation._machine
    return u


def sync():
    pass


def urandom(n):
    import random

    return bytes(random.getrandbits(8) for _ in range(n))


def dupterm(stream=None, index=0):
    return None

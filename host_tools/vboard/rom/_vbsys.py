# `sys` as the rp2 port has it: the interpreter's own module, with the rp2 port's platform and
# machine name (installed as sys.modules["sys"] by _vbinit).
from sys import *  # noqa: F403

platform = "rp2"


class _Implementation:
    name = "micropython"
    version = (1, 29, 0, "")
    _machine = "Raspberry Pi Pico with RP2040"
    _mpy = 6 | (3 << 8) | (2 << 10)  # bytecode v6.3, armv6m

    def __repr__(self):
        return "(name='%s', version=%s, _machine='%s', _mpy=%d)" % (
            self.name, self.version, self._machine, self._mpy)  # fmt: skip


implementation = _Implementation()


def set_machine(name):
    if name:
        _Implementation._machine = name

"""What the pure-core tests in this folder import, on CPython (under pytest) and on MicroPython
(the WebAssembly VM, tests/firmware/test_micropython_vm.py) alike.

On MicroPython the firmware is on the VM's path and the board file is /board.json; on CPython
the same firmware modules are loaded through the simulator's MicroPython loader, without the
simulated chip (host_tools/fwcore.py). The test files
use only what both have: plain `assert`, `raises()` below, and `req()` to name requirements
(pytest.mark.req on CPython, a no-op on the VM).
"""

import sys

MICROPYTHON = sys.implementation.name == "micropython"

if MICROPYTHON:
    import json

    from stim import board, electrode, hostcmd, limits, modulation, programs, pulse, settings

    with open("/board.json") as _f:
        BOARD = board.validate(json.load(_f))

    def req(*ids):
        return lambda f: f

else:
    import pytest

    from host_tools import fwcore
    from host_tools.boards import load_board

    # The pure core needs no simulated chip: host_tools.fwcore loads it with a small shim.
    board = fwcore.load("stim.board")
    electrode = fwcore.load("stim.electrode")
    limits = fwcore.load("stim.limits")
    modulation = fwcore.load("stim.modulation")
    programs = fwcore.load("stim.programs")
    pulse = fwcore.load("stim.pulse")
    hostcmd = fwcore.load("stim.hostcmd")
    settings = fwcore.load("stim.settings")
    BOARD = load_board("pico")
    req = pytest.mark.req


def raises(exc, fn, *args, **kw):
    """The exception `fn(*args, **kw)` raises, which must be an `exc`."""
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError("%s not raised" % exc.__name__)


def close(a, b, tol=1e-9):
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))

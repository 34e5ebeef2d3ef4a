# The virtual board's boot-time set-up and the board's own file runner (see _vboard.py).
import sys

import _vb
import micropython
import vfs

_KEEP = ("__main__", "_vb", "_vbflash", "_vbinit", "_vbfs", "_vbsys")


def setup(machine_name):
    import _vbfs
    import _vbsys

    _vbsys.set_machine(machine_name)
    # The port preloads its own asyncio, time, os...: forget them, so that `import` finds the
    # rp2 port's (from /rom) or the frozen ones, as on the board.
    for k in list(sys.modules):
        if k not in _KEEP:
            del sys.modules[k]
    sys.modules["sys"] = _vbsys
    import builtins

    builtins.input = _input  # the port's own reads the Node process's fd 0, not the link
    vfs.umount("/")
    vfs.mount(_vbfs.FlashVfs(), "/")
    import os

    os.chdir("/")
    import machine

    machine._reset_cause = _vb.reset_cause()
    machine.reset = _hard_reset
    _board_inputs(machine)
    # Only the names board.mjs calls later (_vboard_run_file, _vboard_poll) stay in __main__
    # (the REPL's namespace).
    import __main__

    try:
        delattr(__main__, "_vboard_setup")
    except (AttributeError, TypeError):
        pass


def _input(prompt=""):
    # input() as the rp2 port's (shared/readline): reads the console, echoing; CR or LF ends the
    # line, backspace deletes, Ctrl-D on an empty line is EOFError.
    import _vbsys

    if prompt:
        print(prompt, end="")
    line = b""
    while True:
        c = _vbsys.stdin.buffer.read(1)
        if c == b"\r" or c == b"\n":
            print()
            return str(line, "utf-8")
        if c == b"\x04" and not line:
            raise EOFError
        if c == b"\x08" or c == b"\x7f":
            if line:
                line = line[:-1]
                print("\x08 \x08", end="")
        elif c >= b" ":
            line += c
            _vbsys.stdin.buffer.write(c)  # to the console, as the port's stdio buffer


def _hard_reset():
    # machine.reset(): the board restarts from power-on code (board.mjs starts a fresh VM in
    # the friendly REPL; boot.py and main.py run), the link stays.
    _vb.hard_reset()
    raise SystemExit


def _board_inputs(machine):
    # What the board's surroundings show the firmware (_sim.board_inputs: buttons released, the
    # boost converter up, a charged battery), as host_tools/mpvm/memory.py has them too.
    try:
        import json

        import _sim

        with open("/board.json") as f:
            _sim.board_inputs(json.load(f), machine)
    except Exception:  # noqa: BLE001 - no or a broken board file: the firmware reports it
        pass


def run_file(name):
    """As pyexec_file_if_exists: 0 done (or no file), 1 an exception, 2 SystemExit (reset)."""
    try:
        f = open(name)
    except OSError:
        return 0
    try:
        src = f.read()
    finally:
        f.close()
    import __main__

    micropython.kbd_intr(3)
    try:
        code = compile(src, name, "exec")
        del src
        exec(code, __main__.__dict__)
    except SystemExit:
        return 2
    except BaseException as e:  # noqa: BLE001 - printed, as the board's pyexec does
        sys.print_exception(e)
        return 1
    finally:
        micropython.kbd_intr(-1)
    return 0


def poll():
    # From the idle REPL: machine.Timer callbacks that fell due.
    sim = sys.modules.get("_sim")
    if sim is not None and sim.timers:
        micropython.kbd_intr(3)
        try:
            sim.fire_due()
        finally:
            micropython.kbd_intr(-1)

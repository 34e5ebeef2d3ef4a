"""Firmware for the wearable TENS/EMS unit (MicroPython on RP2040).

Layers (docs/architecture.md): the pure core (no `machine` or `rp2` import); the hardware layer
(hw, engine, safe), the only modules that touch the chip; the unit layer (unit, wearer, host,
stimulator), handed its hardware; the wiring (stim.main builds and hands in, app runs the
tasks, main.py starts it).

Modules needed only at boot (the board validator, the update finisher) are dropped once used,
so the heap does not keep their code while the unit runs (README, "Memory").
"""


def forget(name):
    """Drop the boot-time module stim.<name> from the module table and from this package, so
    the garbage collector reclaims its code and data. Importing it again loads it afresh."""
    try:
        import sys

        sys.modules.pop("stim." + name, None)
    except AttributeError:  # a build without sys.modules: it was never cached there
        pass
    globals().pop(name, None)


def load_board(path="/board.json"):
    """(board dict, None) from the validated board file, or (None, BoardError) if it must not
    be used (SR-3). The validator (stim.board) is forgotten again before this returns: it is
    about a quarter of the firmware's code, and nothing after boot needs it."""
    from stim import board

    try:
        b = board.load(path)
    except board.BoardError as e:
        return None, e
    finally:
        forget("board")
    # What the board is and is for, for people and the host tools (stimctl boards, flash),
    # checked above and not needed after: not kept on the unit's heap.
    b.pop("description")
    b.pop("hardware")
    return b, None

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


def firmware_version():
    """(version, commit) of this firmware: `git describe` and the commit that `stimctl flash`
    wrote into stim/version.py, or ("unknown", "") where it did not (a tree run from source)
    or the file is damaged: an identity never stops the unit from starting. Read once at boot;
    the module is forgotten again."""
    try:
        from stim import version  # type: ignore[attr-defined]  # written by stimctl flash

        v = version.BUILD.split()  # "build <git describe> <commit>" ("-": none)
        return v[1], "" if v[2] == "-" else v[2]
    except Exception:  # noqa: BLE001 - missing or damaged
        return "unknown", ""
    finally:
        forget("version")


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

"""Firmware switch-over: the last step of a flash, finished at boot if a reset cut it short.

The host (`stimctl flash`) writes every new file under /.staging/ at its final relative path,
verifies each by hash, then writes /.staging/MANIFEST under a temporary name and renames it into
place: that rename is the commit point. One step per line:

    d /stim          make the directory if it is missing
    p /stim/app.py   move /.staging/stim/app.py over /stim/app.py
    r /stim/old.py   remove a file of the old firmware that the new one does not have

apply() carries the steps out. Each is one littlefs rename or remove (atomic) and is skipped when
already done, so running apply() again after a reset at any point finishes the job: the unit
ends with the complete new firmware (roll forward). A staging area without a manifest was cut
short before it was complete and verified: it is left alone, the old firmware keeps running
(roll back), and the next flash clears it.

boot.py calls boot() after the outputs are safe and before main.py runs. Only `os` is used, so
the host can also send this file's source to a board running an older firmware.
"""

import os

STAGING = "/.staging"
MANIFEST = STAGING + "/MANIFEST"


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _clear(d):
    try:
        names = os.listdir(d)
    except OSError:
        return
    for n in names:
        p = d + "/" + n
        if os.stat(p)[0] & 0x4000:
            _clear(p)
        else:
            os.remove(p)
    os.rmdir(d)


def apply():
    """Carry out a committed manifest. True if there was one; repeating it is harmless."""
    try:
        f = open(MANIFEST)
    except OSError:
        return False
    try:
        lines = f.read().split("\n")
    finally:
        f.close()
    for line in lines:
        op, path = line[:2], line[2:]
        if not path.startswith("/"):
            continue
        if op == "d ":
            if not _exists(path):
                os.mkdir(path)
        elif op == "p ":
            if _exists(STAGING + path):
                os.rename(STAGING + path, path)
        elif op == "r ":
            if _exists(path):
                os.remove(path)
    os.remove(MANIFEST)
    _clear(STAGING)
    return True


def boot():
    """From boot.py: finish an interrupted switch-over; then forget every stim module imported
    before it, so main.py imports the new files."""
    if not apply():
        return False
    try:
        import sys

        mods = sys.modules
        for k in list(mods):
            if k == "stim" or k.startswith("stim."):
                del mods[k]
    except Exception:  # noqa: BLE001 - a build without sys.modules: nothing was cached
        pass
    return True

"""Custom programs a clinician installs (`stimctl program add`): kept in /programs.json, at most
MAX of them, each checked by the same validator as the built-ins (stim.progcheck, through
stim.programs.prepare) and against the board's SR-3 caps at its first step; MODE cycles through
them after the built-ins (stim.programs). Loaded for boot and for each `program` command, then
forgotten (stim.forget), as the validators are: nothing of it stays on the heap.

The host sends a program as key=value lines (a line holds at most 120 bytes, a program more):
`program set id=neck rate_hz=80` ... `program set sweep.min=200 sweep.shape=triangle`, then
`program add`, which checks the whole and saves it. Values read as whole numbers, then
decimals, else text (%20 stands for a space). Installing and removing need the wearer's
consent (SR-15), no session on and every output off (SR-14); the file is replaced atomically
(SR-13), so a cut write leaves the old set.
"""

import json

from stim import limits, programs, settings

PATH = "/programs.json"
MAX = 4
_DICTS = ("burst", "sweep", "cycle")


def boot(board):
    """Install the stored programs (stim.programs); (ids, None) or ([], why) for a file that
    cannot be used (the built-ins still run; the file is left for the clinician's tool)."""
    try:
        with open(PATH) as f:
            stored = json.loads(f.read())
    except OSError:
        return [], None  # none installed
    except Exception as e:  # noqa: BLE001 - truncated or corrupt
        return [], "unreadable: %s" % e
    try:
        checked = _check_all(board, stored)
    except programs.ProgramError as e:
        return [], str(e)
    programs.install(checked)
    return [p["id"] for p in checked], None


def _check_all(board, stored):
    if not isinstance(stored, list) or len(stored) > MAX:
        raise programs.ProgramError("<programs>", "must be a list of at most %d" % MAX)
    ids = []
    for p in stored:
        check(board, p, ids)
        ids.append(p["id"])
    return stored


def check(board, p, taken):
    """One program: every key (the built-ins' validator), a new id, step 1 within the caps."""
    programs.prepare(p, board["limits"]["max_session_min"], True)
    pid = p["id"]
    if programs.is_builtin(pid) or pid in taken:
        raise programs.ProgramError("id", "%s is taken" % pid)
    if len(pid) > 24 or len(p["name"]) > 40:
        raise programs.ProgramError("id" if len(pid) > 24 else "name", "too long")
    limits.check(board, p, 1)  # SR-3: not even the first step over a cap


def value(text):
    """A value as typed: a whole number, a decimal, or text (%20 for a space: a line's words
    are split at spaces)."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text.replace("%20", " ")


def put(pending, pairs):
    """key=value pairs into the program being sent (a dotted key for burst, sweep, cycle).
    Raises ProgramError naming a bad pair."""
    for a in pairs:
        i = a.find("=")
        if i <= 0:
            raise programs.ProgramError(a[:24], "expected key=value")
        k, v = a[:i], value(a[i + 1 :])
        j = k.find(".")
        if j > 0:
            sub = k[:j]
            if sub not in _DICTS:
                raise programs.ProgramError(k[:24], "unknown key")
            d = pending.setdefault(sub, {})
            if not isinstance(d, dict):
                raise programs.ProgramError(sub, "given twice")
            d[k[j + 1 :]] = v
        else:
            pending[k] = v
    if len(pending) > 12:
        raise programs.ProgramError("<program>", "too many keys")


def save_all(ps):
    """Write the set, each program already checked (check(), or boot()), atomically (SR-13;
    refused while output can run, SR-14), and install it."""
    settings.write_atomic(PATH, json.dumps(ps))
    programs.install(ps)

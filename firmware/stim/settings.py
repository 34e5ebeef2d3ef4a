"""Settings and session history on the unit's flash (SR-13). Uses only `os` and `json`.

Settings (`/settings.json`): the program, the session length, the channel selection, the
feedback outputs (FEEDBACK: both, haptic, tone, off; faults play whatever it says) and the
minutes before an idle unit switches itself off (auto_off_min). The intensity is never
stored: every session starts from zero (SR-1). The file is written to a temporary name and
renamed over the old one, so a power cut leaves either the old or the new file, never half of
one. A missing, corrupt, truncated or out-of-range file gives the defaults (each bad key
reported by name; a key newer than the file just takes its default) and the caller logs a
warning; nothing raises.

History (`/history.jsonl`): one JSON object per finished session, at most HISTORY_MAX lines;
older lines are dropped when the file is rewritten (also atomically).

No write while output can run (SR-14): the rp2 port masks interrupts while the boot ROM erases
a flash sector (45 ms typical, 400 ms worst) or programs a page, so a write during a session
would hold up the pulse-done interrupt (a late SENSE reading) and the POWER button. The app
saves only once every output is off; `guard()` makes the write path itself refuse otherwise.
"""

import json
import os

from stim import programs

SETTINGS_PATH = "/settings.json"
HISTORY_PATH = "/history.jsonl"
HISTORY_MAX = 100
SELECTIONS = ("both", "1", "2")
FEEDBACK = ("both", "haptic", "tone", "off")
AUTO_OFF_MIN = (1, 60)  # bounds of auto_off_min
EBUSY = 16  # MicroPython's errno for "device or resource busy"

_output_on = None  # set by the app: true while any output can run (SR-14)


class OutputOn(OSError):
    """A flash write refused because output can run (SR-14)."""


def guard(output_on):
    """From now on every write refuses (OutputOn) while output_on() is true (SR-14)."""
    global _output_on
    _output_on = output_on


def _writable():
    if _output_on is not None and _output_on():
        raise OutputOn(EBUSY, "output on: no flash write now (SR-14)")


def defaults(board):
    """The first program, both channels, and the board's session length (limits
    default_session_min, which the validator keeps within max_session_min)."""
    return {
        "program": programs.PROGRAMS[0]["id"],
        "session_min": board["limits"]["default_session_min"],
        "channels": "both",
        "feedback": "both",
        "auto_off_min": 10,
    }


def check(board, data):
    """(settings, problems): every valid key of `data` over the defaults; problems names each
    key that was missing or bad."""
    out = defaults(board)
    problems = []
    if not isinstance(data, dict):
        return out, ["file"]
    pid = data.get("program")
    try:
        programs.by_id(pid)
        out["program"] = pid
    except Exception:  # noqa: BLE001 - anything wrong in the value is the same problem
        problems.append("program")
    m = data.get("session_min")
    if (
        isinstance(m, int)
        and not isinstance(m, bool)
        and 1 <= m <= board["limits"]["max_session_min"]
    ):
        out["session_min"] = m
    else:
        problems.append("session_min")
    c = data.get("channels")
    if c in SELECTIONS:
        out["channels"] = c
    else:
        problems.append("channels")
    # Keys added later: a file written before them keeps their defaults, without a warning.
    if "feedback" in data:
        if data["feedback"] in FEEDBACK:
            out["feedback"] = data["feedback"]
        else:
            problems.append("feedback")
    if "auto_off_min" in data:
        m = data["auto_off_min"]
        if (
            isinstance(m, int)
            and not isinstance(m, bool)
            and AUTO_OFF_MIN[0] <= m <= AUTO_OFF_MIN[1]
        ):
            out["auto_off_min"] = m
        else:
            problems.append("auto_off_min")
    for k in data:
        if k not in out:
            problems.append(k)
    return out, problems


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def load(board, path=SETTINGS_PATH):
    """(settings, problems). problems is [] for a good file, ["missing"] when there is none."""
    if not _exists(path):
        return defaults(board), ["missing"]
    try:
        with open(path) as f:
            data = json.loads(f.read())
    except Exception:  # noqa: BLE001 - corrupt, truncated, unreadable: all mean defaults
        return defaults(board), ["file"]
    return check(board, data)


def write_atomic(path, text):
    _writable()
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)  # replaces the old file in one step (littlefs rename is atomic)


def save(settings, path=SETTINGS_PATH):
    write_atomic(path, json.dumps(settings))


def append_history(record, path=HISTORY_PATH, limit=HISTORY_MAX):
    """Add one session record; keep the newest `limit`."""
    _writable()
    line = json.dumps(record)
    lines, clean = _read_lines(path)
    if clean and len(lines) < limit:
        with open(path, "a") as f:
            f.write(line + "\n")
        return
    # Full, or damaged (a power cut during an append leaves a part line without its newline:
    # appending would glue the new record onto it): rewrite with the good lines.
    lines = lines[max(0, len(lines) - limit + 1) :]
    lines.append(line)
    write_atomic(path, "\n".join(lines) + "\n")


def read_history_lines(path=HISTORY_PATH):
    """The stored records as JSON text lines (a damaged last line is dropped)."""
    return _read_lines(path)[0]


def _read_lines(path):
    """(good lines, clean): clean is False when a line was dropped or the last has no newline."""
    if not _exists(path):
        return [], True
    out = []
    clean = True
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                clean = False
            line = line.strip()
            if not line:
                continue
            try:
                json.loads(line)
            except ValueError:
                clean = False
                continue
            out.append(line)
    return out, clean

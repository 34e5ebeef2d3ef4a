"""`stimctl program add FILE | list | remove ID`: custom programs on the unit (docs/protocol.md,
"program"; the firmware's side is firmware/stim/custom.py).

A program file holds one program as JSON, with the built-ins' fields (README, "Custom
programs"; programs/example_gentle.json). It goes to the unit as `program set key=value ...`
lines (a dotted key for burst, sweep and cycle; %20 for a space), then `program add`; the unit
checks it with the built-ins' validator and the board's caps and names the first bad key.
Installing and removing need the wearer's consent (SR-15): the tool asks for it and says what
to press. `program clear` first drops anything a cut link left half sent.
"""

from __future__ import annotations

import json
from pathlib import Path

from .device import DeviceError, DeviceIO, fail
from .link import CommandError, NotSent, UnitLink, open_link
from .protocol import MAX_LINE

PAIRS_PER_LINE = 6  # `program set` and six pairs: the firmware's eight-word limit
LINE_ROOM = MAX_LINE - 16  # the request id and its spaces


class ProgramFileError(ValueError):
    pass


def _text(v) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ProgramFileError("values must be numbers or text, got %r" % (v,))
    s = str(v)
    if isinstance(v, str):
        if "%" in s or "=" in s or not s.isascii() or not s.isprintable() or not s.strip():
            raise ProgramFileError("text %r: printable ASCII without %% or =" % v)
        s = s.replace(" ", "%20")
    return s


def set_lines(p: dict) -> list[str]:
    """The `program set` lines that send program `p`."""
    if not isinstance(p, dict):
        raise ProgramFileError("a program file holds one JSON object")
    pairs = []
    for k, v in p.items():
        if isinstance(v, dict):
            pairs += ["%s.%s=%s" % (k, kk, _text(vv)) for kk, vv in v.items()]
        else:
            pairs.append("%s=%s" % (k, _text(v)))
    lines: list[str] = []
    cur: list[str] = []
    for pair in pairs:
        line = "program set " + " ".join(cur + [pair])
        if cur and (len(cur) >= PAIRS_PER_LINE or len(line) > LINE_ROOM):
            lines.append("program set " + " ".join(cur))
            cur = []
        cur.append(pair)
    if cur:
        lines.append("program set " + " ".join(cur))
    return lines


def load_file(path: str | Path) -> dict:
    try:
        p = json.loads(Path(path).read_text())
    except OSError as e:
        raise ProgramFileError("cannot read %s: %s" % (path, e)) from None
    except ValueError as e:
        raise ProgramFileError("%s is not JSON: %s" % (path, e)) from None
    set_lines(p)  # its values can be sent
    return p


def add(link: UnitLink, p: dict, say=print) -> dict:
    lines = set_lines(p)
    if not link.pair(say):  # already allowed: at once
        raise CommandError(
            "program add", {"code": "consent", "msg": "the wearer did not allow it"}
        )
    link.command("program clear")
    for line in lines:
        link.command(line)
    return link.command("program add")


def remove(link: UnitLink, pid: str, say=print) -> dict:
    if not link.pair(say):  # already allowed: at once
        raise CommandError(
            "program remove", {"code": "consent", "msg": "the wearer did not allow it"}
        )
    return link.command("program remove %s" % pid)


def main(args, dio: DeviceIO) -> int:
    """`stimctl program add FILE | list | remove ID`."""

    def say(text: str) -> None:
        print("[stimctl] " + text)

    try:
        p = load_file(args.file) if args.op == "add" else None
    except ProgramFileError as e:
        return fail(e, 1)
    try:
        link = open_link(dio, args.port)
    except DeviceError as e:
        return fail(e, 2)
    try:
        if args.op == "list":
            rep = link.command("program list")
            ids = rep.get("custom", [])
            print("installed: %s (at most %s)" % (", ".join(ids) or "none", rep.get("max")))
        elif args.op == "add":
            assert p is not None
            rep = add(link, p, say)
            print("installed %s (%d of at most 4); MODE reaches it after the built-ins"
                  % (rep["program"], rep["n"]))  # fmt: skip
        else:
            remove(link, args.id, say)
            print("removed %s" % args.id)
        return 0
    except (CommandError, NotSent) as e:
        return fail(e, 1)
    except DeviceError as e:
        return fail(e, 2)
    finally:
        link.close()

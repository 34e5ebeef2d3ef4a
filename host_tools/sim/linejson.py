"""JSON with line numbers: every object and array remembers the line of each of its keys and
items, so a validator can name the line of a bad value (scenario files: sim/scenario.py).

`loads(text)` returns plain JSON values, except that objects are `LDict` (a dict with
`.line` and `.key_line[key]`) and arrays are `LList` (a list with `.line` and `.item_line[i]`).
Duplicate keys and the non-JSON constants NaN and Infinity are errors, reported as
`JsonError(line, msg)`.
"""

from __future__ import annotations

import bisect
import json
import re
from json.decoder import scanstring  # type: ignore[attr-defined]

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")


class JsonError(ValueError):
    def __init__(self, line: int, msg: str):
        super().__init__("line %d: %s" % (line, msg))
        self.line = line
        self.msg = msg


class LDict(dict):
    line: int = 0

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.key_line: dict[str, int] = {}


class LList(list):
    line: int = 0

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.item_line: list[int] = []


class _Parser:
    def __init__(self, text: str):
        self.s = text
        # line_starts[k] is the offset where line k+1 begins: bisect gives an offset's line
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line(self, pos: int) -> int:
        return bisect.bisect_right(self._starts, pos)

    def ws(self, pos: int) -> int:
        m = _WS.match(self.s, pos)
        assert m is not None
        return m.end()

    def fail(self, pos: int, msg: str):
        raise JsonError(self.line(min(pos, len(self.s))), msg)

    def value(self, pos: int):
        s = self.s
        pos = self.ws(pos)
        if pos >= len(s):
            self.fail(pos, "unexpected end of file")
        c = s[pos]
        if c == "{":
            return self.obj(pos)
        if c == "[":
            return self.arr(pos)
        if c == '"':
            try:
                return scanstring(s, pos + 1, True)
            except json.JSONDecodeError as e:
                self.fail(e.pos, e.msg.lower())
        for word, val in (("true", True), ("false", False), ("null", None)):
            if s.startswith(word, pos):
                return val, pos + len(word)
        m = _NUMBER.match(s, pos)
        if m:
            txt = m.group()
            v = float(txt) if any(ch in txt for ch in ".eE") else int(txt)
            return v, m.end()
        self.fail(pos, "not a JSON value (at %r)" % s[pos : pos + 12])

    def obj(self, pos: int):
        s = self.s
        out = LDict()
        out.line = self.line(pos)
        pos = self.ws(pos + 1)
        if s.startswith("}", pos):
            return out, pos + 1
        while True:
            pos = self.ws(pos)
            if not s.startswith('"', pos):
                self.fail(pos, "expected a key in double quotes")
            key_line = self.line(pos)
            key, pos = self.value(pos)
            if key in out:
                self.fail(pos, "key %r given twice" % key)
            pos = self.ws(pos)
            if not s.startswith(":", pos):
                self.fail(pos, "expected ':' after key %r" % key)
            val, pos = self.value(pos + 1)
            out[key] = val
            out.key_line[key] = key_line
            pos = self.ws(pos)
            if s.startswith(",", pos):
                pos += 1
                continue
            if s.startswith("}", pos):
                return out, pos + 1
            self.fail(pos, "expected ',' or '}' after the value of %r" % key)

    def arr(self, pos: int):
        s = self.s
        out = LList()
        out.line = self.line(pos)
        pos = self.ws(pos + 1)
        if s.startswith("]", pos):
            return out, pos + 1
        while True:
            pos = self.ws(pos)
            out.item_line.append(self.line(pos))
            val, pos = self.value(pos)
            out.append(val)
            pos = self.ws(pos)
            if s.startswith(",", pos):
                pos += 1
                continue
            if s.startswith("]", pos):
                return out, pos + 1
            self.fail(pos, "expected ',' or ']' in the list")


def loads(text: str):
    """Parse JSON text; objects and arrays carry line numbers (LDict, LList)."""
    p = _Parser(text)
    val, pos = p.value(0)
    pos = p.ws(pos)
    if pos != len(text):
        p.fail(pos, "extra text after the JSON value")
    return val

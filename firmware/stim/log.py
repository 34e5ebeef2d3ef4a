"""Event log: one JSON object per line on the USB serial console.

Every line starts with `{"t":` so host tools can tell log lines from REPL chatter. `t` is seconds
since boot with millisecond resolution; `lvl` is one of info/warn/error (debug is the host
tools' level for anything quieter; the unit logs nothing at it); `ev` names the
event; the remaining keys are the event's fields (README, "Log format").
"""

import time

try:
    import json
except ImportError:  # pragma: no cover - every MicroPython build for rp2 has json
    json = None

_t0 = time.ticks_ms()


def json_value(v):
    """A field's value as JSON text (log lines, and the replies to host commands)."""
    if isinstance(v, bool) or v is None or isinstance(v, (int, str, list, dict)):
        return json.dumps(v)
    if isinstance(v, float):
        # MicroPython's float repr can print 1e+09 or nan; keep JSON valid and short.
        if v != v or v in (float("inf"), float("-inf")):
            return "null"
        return json.dumps(round(v, 3))
    return json.dumps(str(v))


def event(ev, lvl="info", **fields):
    ms = time.ticks_diff(time.ticks_ms(), _t0)
    parts = ['{"t":%d.%03d,"lvl":"%s","ev":"%s"' % (ms // 1000, ms % 1000, lvl, ev)]
    for k in fields:
        parts.append(',"%s":%s' % (k, json_value(fields[k])))
    parts.append("}")
    line = "".join(parts)
    print(line)


def info(ev, **fields):
    event(ev, "info", **fields)


def warn(ev, **fields):
    event(ev, "warn", **fields)


def error(ev, **fields):
    event(ev, "error", **fields)

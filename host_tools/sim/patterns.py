"""Names for what the wearer feels or hears: the firmware's feedback patterns (stim/feedback.py,
read from the firmware itself) matched against the pulse lengths seen at the buzzer or motor pin,
so the simulator and the traces can say "session start" rather than "60 80 60 80 300 ms".
"""

from __future__ import annotations

import functools

# The events in stim/feedback.py's order (its _STEP_UP = 0 ... _HOST_ASKS = 22).
NAMES = (
    "step up",
    "step down",
    "top step",
    "bottom (step 0)",
    "counted",
    "both channels",
    "locked",
    "unlocked / allowed",
    "session start",
    "session end",
    "open electrode",
    "short",
    "compliance limit",
    "fault",
    "battery low",
    "battery empty",
    "charging",
    "power on",
    "power off",
    "refused",
    "tens of a step",
    "units of a step",
    "a host asks",
)
TOL_MS = 15  # a pulse may run a tick long when a control cycle runs long


@functools.cache
def table() -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(name, on-pulse lengths in ms) of every pattern, from the firmware's own bytes."""
    from .. import fwcore

    fb = fwcore.load("stim.feedback")
    raw: bytes = fb._PATTERNS
    tick = fb._TICK_MS
    out = []
    i = 0
    for name in NAMES:
        segs = []
        while raw[i]:
            segs.append(raw[i] * tick)
            i += 1
        i += 1
        out.append((name, tuple(segs[0::2])))
    assert i == len(raw), "stim/feedback.py has patterns this table does not name"
    return tuple(out)


def name_of(on_ms: list[int] | tuple[int, ...]) -> str | None:
    """The pattern whose pulses the last of `on_ms` are (the longest match), or None. Counted
    patterns (a program's number, tens and units of a step) match their unit repeated."""
    best: tuple[int, str] | None = None
    for name, pat in table():
        n = len(pat)
        if n == 0 or len(on_ms) < n:
            continue
        if all(abs(a - b) <= TOL_MS for a, b in zip(on_ms[-n:], pat, strict=True)):
            if best is None or n > best[0]:
                best = (n, name)
    return None if best is None else best[1]

"""Driving the simulated unit as a host does, for the tests: switch it on, pair (SR-15), send a
command line on its USB console and wait for the reply, and read the pulses the load received.
"""

from __future__ import annotations

import json

from host_tools.boards import load_board

ON_S = 0.5  # POWER held from here for 1.7 s: the unit is on at 2.2 s
READY_S = 2.5
STEP_MA = 1.5
KEEPALIVE_S = 3.0
RAMP_DOWN_S = 2.0


def unit_on(make_unit, board="pico", settings_text=None, paired=True, **kw):
    """The unit switched on by a POWER hold; `paired`: then the host asked for control and the
    wearer pressed PLUS (SR-15), as every host session starts."""
    files = None
    b = load_board(board) if isinstance(board, str) else board
    if settings_text is not None or not isinstance(board, str):
        files = {"/board.json": json.dumps(b)}
        if settings_text is not None:
            files["/settings.json"] = settings_text
    unit = make_unit(b, load_ohm={1: 1000.0, 2: 1000.0}, files=files, **kw)
    unit.press("power", at=ON_S, hold_s=1.7)
    unit.run_until(READY_S)
    if paired:
        pair(unit)
    return unit


def pair(unit):
    """SR-15: `pair`, then the wearer's PLUS; returns once the unit says it accepted."""
    n = len(unit.logs("consent"))
    assert ok(unit, "pair")["asking"]
    unit.press("plus", hold_s=0.1)
    unit.run_for(0.3)
    got = unit.logs("consent")[n:]
    assert [e["state"] for e in got] == ["asked", "accepted"], got


def send(unit, line, wait_s=1.0):
    """Send one line; the reply lines it got (all of them, `rec` lines included), waiting as a
    host does: until the final reply (`ok` or `err`), at most wait_s. The unit takes its time:
    its Python runs at the port's speed (a `status` about 10 ms) and a `set` writes the flash
    (an erase masks interrupts for 45 ms)."""
    n = len(unit.console.replies)
    unit.send(line if isinstance(line, bytes) else line + "\n")
    t_end = unit.chip.t_s + wait_s
    while unit.chip.t_s < t_end:
        unit.run_for(0.005)
        if any(r["r"] in ("ok", "err") for r in unit.console.replies[n:]):
            unit.run_for(0.01)  # anything else the line might wrongly have caused
            break
    return unit.console.replies[n:]


def ok(unit, line, wait_s=1.0):
    got = send(unit, line, wait_s)
    assert got and got[-1]["r"] == "ok", (line, got)
    return got[-1]


def err(unit, line, wait_s=1.0):
    got = send(unit, line, wait_s)
    assert len(got) == 1 and got[0]["r"] == "err", (line, got)
    return got[0]


def pulses(unit, ch=1, t0=0.0, t1=1e9):
    return [
        p
        for p in unit.model.channels[ch - 1].pulse_log
        if t0 <= p.t_a < t1 and max(p.peak_a_ma, p.peak_b_ma, p.drive_ma) >= 0.05
    ]


def peak(unit, ch=1, t0=0.0, t1=1e9):
    return max((p.peak_a_ma for p in pulses(unit, ch, t0, t1)), default=0.0)


def keep_alive(unit, until_s, every_s=1.0):
    """A host that pings every every_s until until_s."""
    t = unit.chip.t_s
    while t + every_s < until_s:
        t += every_s
        unit.send("ping\n", at=t)
    unit.run_until(until_s)

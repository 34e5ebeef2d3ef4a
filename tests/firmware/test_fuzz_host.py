"""A hostile host (SR-15, SR-16, SR-12): random bytes and lines on the USB console of the whole
firmware on the simulated chip, with no press from the wearer while they arrive. After every
step (a burst of 1-8 lines or byte strings) the load, the pins and the console are checked:

- nothing starts and nothing rises: the load sees no pulse above what the wearer's own presses
  set before the host began (none at all on an idle unit);
- a locked unit (the wearable) never leaves its firmware: no REPL banner, no `interrupted`, the
  app still answers; its control bytes include Ctrl-C floods, raw-REPL entry (Ctrl-A), raw
  paste (Ctrl-E A Ctrl-A), soft reset (Ctrl-D) and friendly REPL (Ctrl-B);
- an open unit (the pico, for development) gets everything but Ctrl-C, which would only stop it
  into its REPL with the outputs off (tests/firmware/test_host_protocol.py covers that).

Budget: FUZZ_HOST_LINES lines per run (`make test`: 2,500 per run, four runs: 10^4 lines, a
fixed seed; `make fuzz`: 25,000 per run, 10^5 in all, a fresh seed, printed on failure).
"""

from __future__ import annotations

import os
import random

import pytest

from host_tools.sim.unit import REPL_BANNER
from host_tools.testing.hostproto import ok, pulses, send, unit_on

LINES = int(os.environ.get("FUZZ_HOST_LINES", "2500"))
SEED = random.randrange(1 << 30) if os.environ.get("FUZZ_RANDOM") not in (None, "", "0") else 15
TOL_MA = 0.3  # under one step on either board: the level DAC's resolution, the model's rounding
PROMPT = REPL_BANNER.splitlines()[0]

WORDS = ("start", "pair", "maintenance", "intensity", "stop", "status", "ping", "set",
         "settings", "history", "time", "tens_burst", "ems_strength", "1", "2", "0", "40",
         "999", "-1", "both", "program=ems_relax", "session_min=60", "feedback=off",
         "channels=1", "auto_off_min=0", "@a1", "@zz", "@12345678")  # fmt: skip
VALID = ("start", "start ems_strength", "pair", "maintenance", "intensity 1 3",
         "intensity 2 9", "@x intensity 1 2", "@p pair", "stop", "status", "ping",
         "set program=tens_burst", "set session_min=10 channels=2", "settings", "history",
         "time 2026 12 3 7 0 0")  # fmt: skip
CONTROL = (b"\x01", b"\x02", b"\x04", b"\x05", b"\x05A\x01", b"\x01\x05A\x01", b"\x02\x04",
           b"\r\x01", b"\x1b[A")  # fmt: skip


def hostile(rng: random.Random, ctrl_c: bool) -> bytes:
    """One burst from the host."""
    k = rng.random()
    if k < 0.35:
        line = rng.choice(VALID)
    elif k < 0.6:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
    elif k < 0.7:
        line = "x" * rng.randint(100, 400)  # over-long
    elif k < 0.85:
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        if not ctrl_c:
            data = data.replace(b"\x03", b"")
        return data + rng.choice((b"\n", b"\r", b"", b"\r\n"))
    else:
        data = rng.choice(CONTROL) + rng.choice(VALID).encode()
        if ctrl_c and rng.random() < 0.4:
            data = b"\x03" * rng.choice((1, 2, 50, 300)) + data
        return data + b"\n"
    end = rng.choice(("\n", "\r", "\r\n", "\n\n"))
    return (line + end).encode()


def run(make_unit, board: str, wearer_step: int, seed: int, lines: int):
    locked = board == "wearable_v1"
    rng = random.Random(seed)
    unit = unit_on(make_unit, board, paired=False)
    if wearer_step:
        # The wearer's own session, raised to wearer_step with PLUS, before the host starts.
        for i in range(wearer_step):
            unit.press("plus", at=unit.chip.t_s + 0.1 + 0.6 * i)
        unit.run_for(0.6 * wearer_step + 3.0)
        assert ok(unit, "status")["steps"] == [wearer_step] * 2
    t_host = unit.chip.t_s
    allowed_ma = wearer_step * unit.board["intensity"]["step_ma"] + TOL_MA
    sent = 0
    step = 0
    while sent < lines:
        burst = [hostile(rng, ctrl_c=locked) for _ in range(rng.randint(1, 8))]
        sent += len(burst)
        step += 1
        unit.send(b"".join(burst))
        unit.run_for(rng.choice((0.02, 0.05, 0.2)))
        where = "seed %d, step %d, after %r" % (seed, step, burst)
        # At the load: nothing above what the wearer's presses set; on an idle unit, nothing.
        got = pulses(unit, 1, t_host) + pulses(unit, 2, t_host)
        if wearer_step == 0:
            assert not got, "a pulse reached the load without a press: " + where
        else:
            top = max((max(p.peak_a_ma, p.peak_b_ma) for p in got), default=0.0)
            assert top <= allowed_ma, "%.2f mA > the wearer's step: %s" % (top, where)
        assert unit.state == "main", "the firmware stopped (%s): %s" % (unit.state, where)
        if locked:
            assert not unit.logs("interrupted"), where
            assert not any(PROMPT in x for x in unit.console.lines[-20:]), where
        assert not [e for e in unit.logs("consent") if e.get("state") == "accepted"], where
    assert not any(PROMPT in x for x in unit.console.lines) or not locked
    # Still itself at the end: answers, off or idle or the wearer's session, no host session.
    unit.run_for(4.0)  # past any question (15 s is not needed: nobody may answer)
    send(unit, b"\n")  # ends a half line the last burst left (as a host's link does first)
    st = ok(unit, "status")
    assert st["consent"] is False and st["host"] is False
    if wearer_step == 0:
        assert st["state"] in ("idle", "off") and st["steps"] == [0, 0]
    return sent


@pytest.mark.req("SR-15", "SR-16", "SR-12")
@pytest.mark.parametrize(
    "board,wearer_step",
    [("wearable_v1", 0), ("wearable_v1", 2), ("pico", 0), ("pico", 3)],
)
def test_a_hostile_host_never_starts_raises_or_opens_the_unit(make_unit, board, wearer_step):
    seed = SEED + wearer_step + (100 if board == "pico" else 0)
    assert run(make_unit, board, wearer_step, seed, LINES) >= LINES

"""The safe state as the simulated pins show it (SR-8), for the tests of every path that
ends in it: a crash, Ctrl-C, a soft reset, a bad board file, maintenance.

Written out here, not taken from the firmware's stim.safe: this is its check."""

from __future__ import annotations

from collections.abc import Callable


def output_pins(board) -> set[int]:
    """The pins that can put energy into the electrodes: both bridge pins and LEVEL of every
    channel, and the boost."""
    outs = {board["boost_en"]}
    for ch in board["channels"]:
        outs |= {ch["phase_a"], ch["phase_b"], ch["level_pwm"]}
    return outs


def is_output(unit, n: int) -> bool:
    """GP n is a plain (SIO) output: what Pin(n, Pin.OUT) makes it."""
    g = unit.chip.gpio[n]
    return g.func == "sio" and bool(g.sio_oe)


def not_driven_low(unit, pins) -> list[int]:
    """The pins among `pins` that are not plain outputs driven low."""
    return [n for n in sorted(pins) if not (is_output(unit, n) and not unit.chip.gpio[n].sio_out)]


def not_reclaimed(unit) -> list[str]:
    """What differs from safe.all_off's result, as the pins show it: every output pin of the
    board re-claimed as a plain output driven low, whatever PIO or PWM had it; no other pin
    made an output (the buttons stay inputs); every state machine stopped. [] when safe."""
    b = unit.board
    bad = ["GP%d not re-claimed" % n for n in not_driven_low(unit, output_pins(b))]
    bad += ["the %s button's pin made an output" % k for k, n in b["buttons"].items()
            if is_output(unit, n)]  # fmt: skip
    bad += ["PIO%d SM%d running" % (blk.index, sm.index)
            for blk in unit.chip.pio for sm in blk.sms if sm.enabled]  # fmt: skip
    return bad


def at_log_line(unit, ev: str, check: Callable) -> list:
    """check(unit) at the instant the firmware writes each `ev` log line to the console: what
    it returned, one entry per such line (SR-8: outputs first, words after)."""
    seen: list = []

    def listen(_line: str, rec: dict | None) -> None:
        if rec is not None and rec.get("ev") == ev:
            seen.append(check(unit))

    unit.console.listeners.append(listen)
    return seen

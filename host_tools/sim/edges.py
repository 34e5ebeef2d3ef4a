"""Biphasic pulses from a channel's PHASE_A/PHASE_B pin edges: the recorder the timing
benchmark attaches to the simulated chip, and the parser it and `stimctl plot` share."""

from __future__ import annotations


class EdgeRecorder:
    """Every level change of one channel's PHASE_A/PHASE_B pins: (cycle, pin, level)."""

    def __init__(self, chip, pin_a: int, pin_b: int):
        self.pin_a, self.pin_b = pin_a, pin_b
        self.edges: list[tuple[int, int, int]] = []
        chip.pin_observers.append(self._on_pin)

    def _on_pin(self, pin: int, level: int, t: int) -> None:
        if pin == self.pin_a or pin == self.pin_b:
            self.edges.append((t, pin, level))

    def clear(self) -> None:
        self.edges.clear()


def pulses_from_edges(edges, pin_a: int, pin_b: int) -> tuple[list[tuple[int, ...]], int]:
    """Complete biphasic pulses (a_rise, a_fall, b_rise, b_fall) in cycles, and the number of
    edges that broke the A-high, both-low, B-high, both-low sequence (shoot-through, a lone
    phase, a pulse cut short)."""
    pulses = []
    bad = 0
    state = 0  # 0 idle, 1 A high, 2 gap, 3 B high
    cur: list[int] = []
    for t, pin, level in edges:
        if state == 0 and pin == pin_a and level:
            cur, state = [t], 1
        elif state == 1 and pin == pin_a and not level:
            cur.append(t)
            state = 2
        elif state == 2 and pin == pin_b and level:
            cur.append(t)
            state = 3
        elif state == 3 and pin == pin_b and not level:
            cur.append(t)
            pulses.append(tuple(cur))
            state = 0
        else:
            bad += 1
            state = 0
    if state:
        bad += 1  # a pulse still open when the run ended
    return pulses, bad

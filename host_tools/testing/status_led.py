"""What the wearer sees on the simulated unit's status LED: its (r, g, b) pin levels."""

from __future__ import annotations

RED, GREEN, BLUE, AMBER, WHITE, OFF = (
    (1, 0, 0),
    (0, 1, 0),
    (0, 0, 1),
    (1, 1, 0),
    (1, 1, 1),
    (0, 0, 0),
)


def status_colours(unit, t0: float, t1: float, dt: float = 0.01) -> list[tuple[int, ...]]:
    """The status LED's (r, g, b) pin levels every dt from t0 to t1 (simulated seconds, from
    now on: the unit runs up to each sample)."""
    led = unit.board["status_led"]
    out = []
    t = t0
    while t < t1:
        unit.run_until(t)
        out.append(tuple(unit.pin(led[c]) for c in "rgb"))
        t += dt
    return out


def runs(seen: list, colour: tuple) -> int:
    """How many separate times `colour` comes on in a sampled sequence."""
    return sum(1 for a, b in zip(seen, seen[1:], strict=False) if b == colour and a != colour)

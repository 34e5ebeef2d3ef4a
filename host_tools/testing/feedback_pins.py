"""What the wearer feels or hears, recorded at the simulated unit's buzzer and motor pins."""

from __future__ import annotations


class Feedback:
    """The buzzer's tone (PWM duty) and the motor's pin, recorded as (t_s, on) changes."""

    def __init__(self, unit):
        self.unit = unit
        b = unit.board
        self.pins = [p for p in (b.get("buzzer"), b.get("haptic")) if p is not None]
        self.changes: list[tuple[float, int]] = []
        unit.chip.analog_observers.append(self._analog)
        unit.chip.pin_observers.append(self._pin)

    def _level(self) -> int:
        return 1 if any(self.unit.chip.analog_level(p) > 0.2 for p in self.pins) else 0

    def _note(self, t: int) -> None:
        on = self._level()
        if not self.changes or self.changes[-1][1] != on:
            self.changes.append((t / self.unit.chip.sysclk_hz, on))

    def _analog(self, n: int, t: int) -> None:
        if n in self.pins:
            self._note(t)

    def _pin(self, n: int, level: int, t: int) -> None:
        if n in self.pins:
            self._note(t)

    def rhythm(self, t0: float, t1: float) -> tuple[int, ...]:
        """On and off run lengths (ms, rounded to 10) between t0 and t1, from the first on."""
        ch = [(t, on) for t, on in self.changes if t0 <= t < t1]
        while ch and not ch[0][1]:
            ch.pop(0)
        out = []
        for (t, _on), (u, _) in zip(ch, ch[1:], strict=False):
            out.append(int(round((u - t) * 100)) * 10)
        return tuple(out)

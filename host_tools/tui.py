"""`stimctl sim`: the real firmware on the simulated board, live in the terminal.

Keys (lowercase = short press, uppercase = long press held 1.6 s):
  p/P power   m/M mode   +/= plus   -/_ minus   1/2 lift/restore electrode 1/2
  [ ] slower/faster   space pause   q quit
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections import deque

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .sim.board_model import OPEN_OHM
from .sim.unit import SimulatedUnit

SHORT_S = 0.15
LONG_S = 1.6
KEYS = {
    "p": ("power", SHORT_S),
    "P": ("power", LONG_S),
    "m": ("mode", SHORT_S),
    "M": ("mode", LONG_S),
    "+": ("plus", SHORT_S),
    "=": ("plus", SHORT_S),
    "-": ("minus", SHORT_S),
    "_": ("minus", LONG_S),
}
SPEEDS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
HELP = (
    "p power (pause/resume)  P hold power (on/off)  m mode  M hold mode (channels)  + plus  "
    "- minus  _ hold minus  1/2 lift/restore electrode  [ ] speed  space pause  q quit"
)


class SimApp:
    """State and rendering of the terminal simulator, independent of the real terminal."""

    def __init__(self, board: str = "pico", frame_s: float = 0.05):
        self.unit = SimulatedUnit(board, record_pulses=False)
        self.frame_s = frame_s
        self.speed_i = SPEEDS.index(1.0)
        self.paused = False
        self.quit = False
        self.log = deque(maxlen=10)
        self.lifted: set[int] = set()
        self.last_pulses = [0] * len(self.unit.model.channels)
        self.rate_hz = [0.0] * len(self.unit.model.channels)
        self.unit.console.listeners.append(self._on_line)

    def _on_line(self, line: str, rec: dict | None) -> None:
        self.log.append(line)

    @property
    def speed(self) -> float:
        return SPEEDS[self.speed_i]

    def handle_key(self, k: str) -> None:
        unit = self.unit
        if k in KEYS:
            name, hold = KEYS[k]
            unit.press(name, hold_s=hold)
        elif k in "12" and int(k) <= len(unit.model.channels):
            ch = int(k)
            if ch in self.lifted:
                self.lifted.discard(ch)
                unit.at(unit.chip.t_s, unit.model.set_load, ch, 1000.0)
            else:
                self.lifted.add(ch)
                unit.at(unit.chip.t_s, unit.model.set_load, ch, OPEN_OHM)
        elif k == "[":
            self.speed_i = max(0, self.speed_i - 1)
        elif k == "]":
            self.speed_i = min(len(SPEEDS) - 1, self.speed_i + 1)
        elif k == " ":
            self.paused = not self.paused
        elif k in ("q", "\x03", "\x04"):
            self.quit = True

    def step(self) -> None:
        if self.paused:
            return
        dt = self.frame_s * self.speed
        self.unit.run_for(dt)
        for i, cm in enumerate(self.unit.model.channels):
            n = cm.pulses - self.last_pulses[i]
            self.last_pulses[i] = cm.pulses
            self.rate_hz[i] = n / dt if dt else 0.0

    def _led(self, pin: int, colour: str) -> Text:
        on = self.unit.pin(pin)
        return Text("●" if on else "○", style=colour if on else "grey42")

    def render(self):
        unit, board = self.unit, self.unit.board
        sl = board["status_led"]
        leds = Text("status ")
        leds += (
            self._led(sl["r"], "red") + self._led(sl["g"], "green") + self._led(sl["b"], "blue")
        )
        for i, ch in enumerate(board["channels"]):
            leds += Text("   ch%d " % (i + 1)) + self._led(ch["led"], "yellow")
        chans = Table(box=None, expand=True)
        for col in ("channel", "electrode", "output", "peak mA", "rate Hz", "pulses"):
            chans.add_column(col)
        for i, cm in enumerate(unit.model.channels):
            active = unit.model.output_active(cm.index) or self.rate_hz[i] > 0
            chans.add_row(
                str(cm.index),
                "lifted" if cm.load_ohm >= OPEN_OHM else "%.0f ohm" % cm.load_ohm,
                Text("PULSING", style="bold magenta") if active else Text("off", style="grey50"),
                "%.1f" % cm.max_peak_ma,
                "%.1f" % self.rate_hz[i],
                str(cm.pulses),
            )
        status = Text(
            "t = %8.2f s   speed x%g%s   battery %.2f V   firmware: %s"
            % (
                unit.chip.t_s,
                self.speed,
                "  PAUSED" if self.paused else "",
                unit.model.battery_v,
                unit.state,
            )
        )
        logs = Text("\n".join(list(self.log)[-10:]) or "(no log yet)", style="cyan")
        return Group(
            Panel(Group(status, leds), title="simulated %s" % board["name"]),
            Panel(chans, title="outputs (at the simulated pins)"),
            Panel(logs, title="firmware log"),
            Text(HELP, style="dim"),
        )


def run_interactive(board: str) -> int:
    if not sys.stdin.isatty():
        print("stimctl sim: needs an interactive terminal (run it in a terminal)", file=sys.stderr)
        return 2
    app = SimApp(board)
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        with Live(app.render(), refresh_per_second=20, screen=False) as live:
            while not app.quit:
                t0 = time.monotonic()
                while select.select([fd], [], [], 0)[0]:
                    ch = os.read(fd, 1).decode(errors="ignore")
                    if ch:
                        app.handle_key(ch)
                app.step()
                live.update(app.render())
                spare = app.frame_s - (time.monotonic() - t0)
                if spare > 0:
                    time.sleep(spare)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        app.unit.close()
    return 0

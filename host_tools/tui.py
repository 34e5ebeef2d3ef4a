"""`stimctl sim`: the real firmware on the simulated board, live in the terminal.

The unit starts switched off, as when the battery goes in. Keys press the unit's buttons
(lowercase: a short press, UPPERCASE: a hold), change what the simulated hardware sees
(electrodes, skin, battery) and the pace of simulated time. Everything drawn about the output
(the scope strips, peak, rate, width) is measured from the board model's pins and load current,
never read from the firmware's variables; the unit's state, program and session time come from
the firmware's own log, as a host reading its serial console would see them.

`SimApp` holds all state and renders into plain `rich.Text` lines for a given terminal size, so
tests drive it with `handle_key()` and `step()` on virtual time, without a terminal.
`run_interactive()` puts it on the screen.
"""

from __future__ import annotations

import math
import os
import re
import select
import signal
import sys
import termios
import time
from collections import deque
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from .logstream import format_record
from .protocol import BUTTONS, LOCK_MS, MODE_LONG_MS, POWER_LONG_MS, REPEAT_DELAY_MS, REPEAT_MS
from .sim import patterns
from .sim.board_model import DRIVE_MIN_MA, OPEN_OHM, SHORT_OHM, Pulse
from .sim.unit import FIRMWARE_DIR, SimulatedUnit

FRAME_S = 1 / 15  # wall time per frame: 15 fps keeps blinking smooth and the CPU light

# Button gestures (firmware/stim/gestures.py, read through protocol.py): a hold key holds
# its button a little past the gesture's time, a short key well inside every gesture's time.
SHORT_S = 0.15
HOLD_MARGIN_MS = 300
POWER_HOLD_S = (POWER_LONG_MS + HOLD_MARGIN_MS) / 1000  # on/off
MODE_HOLD_S = (MODE_LONG_MS + HOLD_MARGIN_MS) / 1000  # channel selection
STEP_REPEATS = 4  # U / D: one press and this many repeats
STEP_HOLD_S = (REPEAT_DELAY_MS + (STEP_REPEATS - 1) * REPEAT_MS + REPEAT_MS // 2) / 1000
LOCK_HOLD_S = (LOCK_MS + HOLD_MARGIN_MS) / 1000  # PLUS and MINUS together: lock / unlock
STATUS_HOLD_S = 1.3  # MODE and MINUS together 1 s (stim/gestures.py): the unit tells what runs

SPEEDS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
TIMEBASES_S = (0.0, 0.05, 0.2, 1.0, 5.0, 20.0)  # scope strip width in simulated time; 0: auto
SKINS_OHM = (500.0, 1000.0, 2000.0, 5000.0)
BATTERY_STEP_V = 0.1
ZOOM_US = 800.0  # the pulse zoom spans this much time: the widest phase pair fits
MESSAGE_FRAMES = 90  # what the last key did stays on screen this many frames (6 s)
LED_WINDOW_S = 4.0  # LED rhythm described over this much simulated time
FEEDBACK_WINDOW_S = 4.0  # the feedback pulses shown: those of the last 4 s
STEADY_S = 1.2  # lit this long without a break: a steady light, longer than any blink's flash

# key -> (button(s), hold seconds). One table: the help line and the tests read it.
BUTTON_KEYS: dict[str, tuple[tuple[str, ...], float]] = {
    "p": (("power",), SHORT_S),
    "P": (("power",), POWER_HOLD_S),
    "m": (("mode",), SHORT_S),
    "M": (("mode",), MODE_HOLD_S),
    "+": (("plus",), SHORT_S),
    "=": (("plus",), SHORT_S),
    "UP": (("plus",), SHORT_S),
    "U": (("plus",), STEP_HOLD_S),
    "-": (("minus",), SHORT_S),
    "DOWN": (("minus",), SHORT_S),
    "D": (("minus",), STEP_HOLD_S),
    "L": (("plus", "minus"), LOCK_HOLD_S),
    "s": (("mode", "minus"), STATUS_HOLD_S),
}
LIFT_KEYS = {"1": 1, "2": 2}
SHORT_KEYS = {"3": 1, "4": 2}
OTHER_KEYS = ("z", "b", "B", "c", "[", "]", "t", " ", "q", "CTRL-C")

# The help line: (keys as shown, what they do, the same shorter).
HELP: tuple[tuple[str, str, str], ...] = (
    ("p P", "POWER press / hold (pause, on/off)", "POWER"),
    ("m M", "MODE press / hold (program, channels)", "MODE"),
    ("+ = ↑", "PLUS", "PLUS"),
    ("- ↓", "MINUS", "MINUS"),
    ("U D", "hold PLUS / MINUS %g s" % STEP_HOLD_S, "hold +/-"),
    ("L", "lock (PLUS+MINUS %g s)" % (LOCK_MS / 1000), "lock"),
    ("s", "status (MODE+MINUS 1 s)", "status"),
    ("1 2", "lift electrode", "lift"),
    ("3 4", "short electrode", "short"),
    ("z", "skin Ω", "skin"),
    ("b B", "battery -/+", "battery"),
    ("c", "charger in/out", "charger"),
    ("[ ]", "slower/faster", "speed"),
    ("t", "timebase", "timebase"),
    ("space", "pause", "pause"),
    ("q ^C", "quit", "quit"),
)
KEY_LABELS = {"UP": "↑", "DOWN": "↓", " ": "space", "CTRL-C": "^C"}

CH_STYLE = ("bold yellow", "bold magenta", "bold cyan", "bold green")
UP_BLOCKS = " ▁▂▃▄▅▆▇█"
COLOUR_NAMES: dict[tuple[int, ...], tuple[str, str]] = {
    (1, 0, 0): ("red", "red"),
    (0, 1, 0): ("green", "green"),
    (0, 0, 1): ("blue", "blue"),
    (1, 1, 0): ("amber", "orange1"),
    (1, 1, 1): ("white", "bright_white"),
    (0, 1, 1): ("cyan", "cyan"),
    (1, 0, 1): ("magenta", "magenta"),
}


def program_names() -> dict[str, str]:
    """Program id -> wearer-facing name, read from the firmware's program table."""
    src = (FIRMWARE_DIR / "stim" / "programs.py").read_text()
    return dict(re.findall(r'"id":\s*"(\w+)",\s*"name":\s*"([^"]+)"', src))


def fmt_ohm(ohm: float) -> str:
    if ohm >= OPEN_OHM:
        return "open"
    if ohm >= 1000:
        return "%.3g kΩ" % (ohm / 1000)
    return "%.0f Ω" % ohm


def fmt_mmss(s: float) -> str:
    s = max(0, int(s))
    return "%d:%02d" % (s // 60, s % 60)


def nice_scale(v: float) -> float:
    """The smallest of 1, 2, 5 x 10^n that is >= v (at least 1 mA)."""
    v = max(v, 1.0)
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if m * e >= v - 1e-9:
            return m * e
    return 10 * e


@dataclass
class Measured:
    """What a channel delivers, measured from the recent pulses."""

    active: bool = False
    peak_ma: float = 0.0
    rate_hz: float = 0.0
    width_us: float = 0.0
    gap_us: float = 0.0
    burst: tuple[int, float] | None = None  # (pulses per train, trains per second)
    switching: bool = False  # the bridge pins pulse lately (with or without current)


class UnitView:
    """The firmware's state as its log lines tell it (what a host on the console sees)."""

    def __init__(self, n_channels: int):
        self.n_channels = n_channels
        self.reset()
        self.state = "booting"

    def reset(self) -> None:
        n_channels = self.n_channels
        self.state = "off"
        self.program = ""
        self.selected = "both"
        self.locked = False
        self.battery = "ok"
        self.length_s = 0.0
        self.delivered_s = 0.0
        self.run_since: float | None = None
        self.steps = [0] * n_channels
        self.faults: list[str | None] = [None] * n_channels
        # The step a channel is held at by its current source's compliance limit (`limit`).
        self.held: list[int | None] = [None] * n_channels
        self.notice: tuple[str, str] | None = None  # (text, style): the last refusal or fault

    def time_left_s(self, now: float) -> float | None:
        if self.state not in ("running", "paused", "ending") or not self.length_s:
            return None
        run = self.delivered_s + (now - self.run_since if self.run_since is not None else 0.0)
        return max(0.0, self.length_s - run)

    def feed(self, rec: dict, now: float) -> None:
        ev = rec.get("ev")
        ch = rec.get("ch")
        i = ch - 1 if isinstance(ch, int) and 0 < ch <= len(self.steps) else None
        if ev == "boot":
            self.reset()
        elif ev == "power":
            self.state = "idle" if rec.get("on") else "off"
            self.steps = [0] * len(self.steps)
            self.faults = [None] * len(self.faults)
            self.held = [None] * len(self.held)
            self.locked = False
            self.run_since = None
        elif ev == "program":
            self.program = str(rec.get("id", ""))
            self.steps = [0] * len(self.steps)
            self.held = [None] * len(self.held)
        elif ev == "channels":
            self.selected = str(rec.get("selected", "both"))
        elif ev == "lock":
            self.locked = bool(rec.get("locked"))
        elif ev == "battery":
            self.battery = str(rec.get("state", self.battery))
        elif ev == "session":
            st = rec.get("state")
            if st == "start":
                self.state = "running"
                self.length_s = float(rec.get("length_s") or 0)
                self.delivered_s = 0.0
                self.run_since = now
                self.notice = None
            elif st == "paused":
                self.state = "paused"
                if self.run_since is not None:
                    self.delivered_s += now - self.run_since
                self.run_since = None
            elif st == "resumed":
                self.state = "running"
                self.run_since = now
            elif st == "ending":
                self.state = "ending"
            elif st == "end":
                if self.state != "off":
                    self.state = "idle"
                self.run_since = None
        elif ev == "fatal":
            self.state = "fault"
            self.notice = ("FAULT: %s" % rec.get("msg", rec.get("reason")), "bold red")
        elif ev in ("interrupted", "crash", "outputs_off"):
            self.state = "stopped (REPL)"
        elif ev == "intensity" and i is not None:
            self.steps[i] = int(rec.get("step") or 0)
        elif ev == "electrode" and i is not None and rec.get("fault") == "limit":
            # Not a fault: the channel runs on, held at the step its load takes.
            self.held[i] = self.steps[i] = int(rec.get("step") or 0)
        elif ev == "electrode" and i is not None:
            self.faults[i] = str(rec.get("fault"))
            self.steps[i] = 0
            self.held[i] = None
        elif ev == "stop" and i is not None:
            self.held[i] = None
        elif ev in ("check", "start") and i is not None:
            self.faults[i] = None
        elif ev == "refused":
            what = "ch%s step %s" % (ch, rec.get("step")) if ch else "start"
            self.notice = (
                "refused %s: %s (%s)" % (what, rec.get("msg", ""), rec.get("limit")),
                "yellow",
            )


class SimApp:
    """State and rendering of the terminal simulator, independent of the real terminal."""

    def __init__(self, board: str = "pico", frame_s: float = FRAME_S):
        self.unit = SimulatedUnit(board, record_pulses=False)
        self.board = self.unit.board
        self.model = self.unit.model
        self.chip = self.unit.chip
        self.n_ch = len(self.model.channels)
        self.frame_s = frame_s
        self.speed_i = SPEEDS.index(1.0)
        self.timebase_i = 0  # auto
        self.skin_i = SKINS_OHM.index(1000.0)
        self.electrode = ["on"] * self.n_ch  # on / lifted / shorted: what the user set
        self.paused = False
        self.quit = False
        self.frames = 0
        self._message_frame = 0
        self._measured: dict[tuple[int, float, int], Measured] = {}
        self.achieved = 1.0  # simulated seconds per wall second, measured
        self.view = UnitView(self.n_ch)
        self.names = program_names()
        self.log: deque[Text] = deque(maxlen=200)
        self.message = Text.assemble(
            (
                "The real firmware is running on a simulated %s, switched off. "
                % self.board["name"]
            ),
            ("Hold POWER to switch it on: press P (capital).", "bold"),
        )
        self.pulses: list[deque[Pulse]] = [deque(maxlen=8000) for _ in range(self.n_ch)]
        sl = self.board["status_led"]
        self.status_pins = (sl["r"], sl["g"], sl["b"])
        self.ch_led_pins = tuple(ch["led"] for ch in self.board["channels"])
        self._led_pins = set(self.status_pins) | set(self.ch_led_pins)
        self._lit = {p: 0 for p in self._led_pins}  # lit at any time during the last frame
        self._lit_now = dict(self._lit)
        # LED changes (t, state) lately, for the rhythm description
        self._status_hist: deque[tuple[float, tuple[int, ...]]] = deque(maxlen=1000)
        self._ch_hist: list[deque[tuple[float, tuple[int, ...]]]] = [
            deque(maxlen=1000) for _ in range(self.n_ch)
        ]
        # The feedback outputs (a buzzer's PWM tone, a vibration motor's pin): on/off lately
        b = self.board
        self.fb_pins = tuple(p for p in (b.get("buzzer"), b.get("haptic")) if p is not None)
        self._fb_hist: deque[tuple[float, tuple[int, ...]]] = deque(maxlen=400)
        self.chip.analog_observers.append(self._on_analog)
        self.chip.pin_observers.append(self._on_pin)
        self.model.listeners.append(self._on_model)
        self.unit.console.listeners.append(self._on_line)
        # The CPU's busy share and the battery drain (host_tools/sim/power.py) over the last
        # second or so of simulated time, for the title line.
        from .boards import board_path
        from .sim.power import PowerMeter, power_keys

        try:
            keys = power_keys(str(board_path(board)))
        except (OSError, ValueError):
            keys = power_keys(None)  # no board file to read: the validator's defaults
        self.meter = PowerMeter(self.unit, *keys)
        self.busy_pct = 0.0
        self.drain_ma = 0.0
        self._meter_t = 0.0
        self.unit.run_for(0.001)  # boot: the firmware's first log lines

    # ---- observation hooks (called on the firmware thread, while this one waits) -----------
    def _on_analog(self, pin: int, t: int) -> None:
        if pin in self.fb_pins:
            on = int(any(self.chip.analog_level(p) > 0.2 for p in self.fb_pins))
            self._changed(self._fb_hist, t / self.chip.sysclk_hz, (on,))

    def feedback_words(self) -> str:
        """What the wearer felt or heard in the last few seconds: the pulses' lengths."""
        name = (
            " and ".join(k for k in ("buzzer", "haptic") if self.board.get(k) is not None)
            or "no feedback outputs"
        )
        now = self.chip.t_s
        hist = list(self._fb_hist)
        pulses = []
        for i, (t, (on,)) in enumerate(hist):
            end = hist[i + 1][0] if i + 1 < len(hist) else now
            if on and end > now - FEEDBACK_WINDOW_S:
                pulses.append("%d" % round((end - t) * 1000))
        if not pulses:
            return "%s: quiet" % name
        what = patterns.name_of([int(x) for x in pulses])
        return "%s: %s ms%s" % (name, " ".join(pulses[-8:]), " (%s)" % what if what else "")

    def _on_pin(self, pin: int, level: int, t: int) -> None:
        if pin in self.fb_pins:
            self._on_analog(pin, t)
        if pin in self._led_pins:
            if level:
                self._lit_now[pin] = 1
            t_s = t / self.chip.sysclk_hz
            if pin in self.status_pins:
                self._changed(
                    self._status_hist, t_s, tuple(self.chip.level(p) for p in self.status_pins)
                )
            else:
                self._changed(self._ch_hist[self.ch_led_pins.index(pin)], t_s, (level,))

    @staticmethod
    def _changed(hist: deque, t_s: float, state: tuple[int, ...]) -> None:
        # pins set one after the other at one instant count as one change
        while hist and hist[-1][0] == t_s:
            hist.pop()
        if not hist or hist[-1][1] != state:
            hist.append((t_s, state))

    def _on_model(self, ev: dict) -> None:
        if ev.get("kind") != "pulse":
            if ev.get("kind") == "violation":
                self._add_log(
                    Text("board model: %s %s" % (ev.get("rule"), ev.get("what")), "bold red")
                )
            return
        self.pulses[ev["ch"] - 1].append(ev["pulse"])

    def _on_line(self, line: str, rec: dict | None) -> None:
        now = self.chip.t_s
        if rec is None:
            if line.strip():
                self._add_log(Text("%7.2f %s" % (now, line), style="dim"))
            return
        self.view.feed(rec, now)
        self._add_log(format_record(rec, compact=True))

    def _add_log(self, txt: Text) -> None:
        self.log.append(txt)

    # ---- keys ----------------------------------------------------------------------------
    @property
    def speed(self) -> float:
        return SPEEDS[self.speed_i]

    def bound_keys(self) -> set[str]:
        return set(BUTTON_KEYS) | set(LIFT_KEYS) | set(SHORT_KEYS) | set(OTHER_KEYS)

    def _say(self, msg: str, style: str = "") -> None:
        self.message = Text(msg, style=style)
        self._message_frame = self.frames

    def handle_key(self, k: str) -> None:
        if k == "\x03":
            k = "CTRL-C"
        if k in BUTTON_KEYS:
            self._button_key(k)
        elif k in LIFT_KEYS or k in SHORT_KEYS:
            lift = k in LIFT_KEYS
            ch = LIFT_KEYS[k] if lift else SHORT_KEYS[k]
            if ch > self.n_ch:
                self._say("this board has no channel %d" % ch, "yellow")
                return
            want = "lifted" if lift else "shorted"
            self.electrode[ch - 1] = "on" if self.electrode[ch - 1] == want else want
            self._apply_loads()
            if self.electrode[ch - 1] == "on":
                self._say(
                    "ch%d electrode back on the skin (%s); press + to restart it"
                    % (ch, fmt_ohm(SKINS_OHM[self.skin_i]))
                )
            else:
                self._say(
                    "ch%d electrode %s: watch the firmware stop the channel; press %s again to "
                    "restore it" % (ch, want.upper(), k),
                    "bold yellow",
                )
        elif k == "z":
            self.skin_i = (self.skin_i + 1) % len(SKINS_OHM)
            self._apply_loads()
            self._say(
                "skin impedance now %s under the electrodes (a sudden rise looks like a "
                "partly lifted electrode to the firmware)" % fmt_ohm(SKINS_OHM[self.skin_i])
            )
        elif k in ("b", "B"):
            v = self.model.battery_v + (BATTERY_STEP_V if k == "B" else -BATTERY_STEP_V)
            v = round(min(max(v, 2.8), 4.3), 2)
            self.model.set_battery(v)
            bat = self.board["battery"]
            self._say(
                "battery %.2f V (warning below %.2f V, cut-off below %.2f V; the firmware smooths "
                "the reading over ~2 s)" % (v, bat["warn_v"], bat["cutoff_v"])
            )
        elif k == "c":
            if "charge_detect" not in self.board:
                self._say("this board has no charger signal (charge_detect): nothing to plug in")
            else:
                on = not self.model.charger_on
                self.model.set_charger(on)
                self._say(
                    "charger plugged in: no stimulation while it charges (SR-17)"
                    if on
                    else "charger unplugged"
                )
        elif k in ("[", "]"):
            step = 1 if k == "]" else -1
            self.speed_i = min(max(self.speed_i + step, 0), len(SPEEDS) - 1)
            self._say("simulated time runs at x%g" % self.speed)
        elif k == "t":
            self.timebase_i = (self.timebase_i + 1) % len(TIMEBASES_S)
            tb = TIMEBASES_S[self.timebase_i]
            self._say(
                "scope strips: the last %g s" % tb
                if tb
                else "scope strips: timebase chosen from the measured rate"
            )
        elif k == " ":
            self.paused = not self.paused
            self._say("")  # the hint line says it
        elif k in ("q", "CTRL-C"):
            self.quit = True

    def _button_key(self, k: str) -> None:
        names, hold_s = BUTTON_KEYS[k]
        held = [n for n in names if self.button_down(n)]
        if held:
            self._say("%s is still held; wait for its release" % held[0].upper(), "yellow")
            return
        for n in names:
            self.unit.press(n, hold_s=hold_s)
        what = "+".join(n.upper() for n in names)
        msg = "holding %s for %.1f s" % (what, hold_s) if hold_s > SHORT_S else "pressed " + what
        if self.view.state in ("off", "booting") and k != "P":
            self._say(msg + ": the unit is off, only holding POWER (P) switches it on", "yellow")
        else:
            self._say(msg)

    def _apply_loads(self) -> None:
        for i, state in enumerate(self.electrode):
            ohm = {"lifted": OPEN_OHM, "shorted": SHORT_OHM}.get(state, SKINS_OHM[self.skin_i])
            if self.model.channels[i].load_ohm != ohm:
                self.model.set_load(i + 1, ohm)

    # ---- time ----------------------------------------------------------------------------
    def step(self, wall_s: float | None = None) -> None:
        """One frame: simulated time moves by the frame's wall time times the speed."""
        self.frames += 1
        if self.paused:
            return
        dt = (self.frame_s if wall_s is None else wall_s) * self.speed
        for p in self._led_pins:
            self._lit_now[p] = self.chip.level(p)
        self.unit.run_for(dt)
        if self.chip.t_s - self._meter_t >= 1.0:
            r = self.meter.read()
            self._meter_t = self.chip.t_s
            self.busy_pct = 100 * r.busy
            self.drain_ma = r.ma()
        self._lit = dict(self._lit_now)
        horizon = self.chip.t_s - max(TIMEBASES_S[-1], 3.0) - 1.0
        for q in self.pulses:
            while q and q[0].t_a < horizon:
                q.popleft()
        for hist in (self._status_hist, *self._ch_hist):
            while len(hist) > 1 and hist[1][0] < self.chip.t_s - LED_WINDOW_S:
                hist.popleft()

    def run_sim(self, seconds: float) -> None:
        """Advance simulated time by frames (tests: virtual time, no terminal)."""
        end = self.chip.t_s + seconds
        while self.chip.t_s < end - 1e-9:
            self.step(min(self.frame_s, (end - self.chip.t_s) / self.speed))

    # ---- measurements (board model, pins) ------------------------------------------------
    def button_down(self, name: str) -> bool:
        return self.chip.level(self.board["buttons"][name]) == 0

    def measure(self, ch: int) -> Measured:
        now = self.chip.t_s
        key = (ch, now, len(self.pulses[ch - 1]))
        if key not in self._measured:
            self._measured = {k: v for k, v in self._measured.items() if k[1] == now}
            self._measured[key] = self._measure(ch, now)
        return self._measured[key]

    def since(self, ch: int, t0: float) -> list[Pulse]:
        """The pulses channel ch began after t0, oldest first."""
        out = []
        for p in reversed(self.pulses[ch - 1]):
            if p.t_a <= t0:
                break
            out.append(p)
        out.reverse()
        return out

    def resting(self, ch: int) -> bool:
        """Rests of seconds between pulse trains, the bridge still switching with no current
        through them: an EMS work/rest cycle (a channel a fault stopped goes quiet instead)."""
        if self.view.state != "running":
            return False
        now = self.chip.t_s
        last_current = None
        idle = 0  # pulses without current since the last one with current
        for p in self.since(ch, now - 20.0):
            if p.peak_ma >= DRIVE_MIN_MA:
                if last_current is not None and p.t_a - last_current > 2.0 and idle >= 10:
                    return True
                last_current, idle = p.t_a, 0
            else:
                idle += 1
        return last_current is not None and now - last_current > 2.0 and idle >= 10

    def _measure(self, ch: int, now: float) -> Measured:
        switched = self.since(ch, now - 3.0)
        recent = [p for p in switched if p.peak_ma >= DRIVE_MIN_MA]
        m = Measured()
        # the bridge pins still pulse, but no current reaches the load (LEVEL at 0, open load)
        m.switching = bool(switched) and switched[-1].end_s > now - 0.25
        if not recent:
            return m
        gaps = [b.t_a - a.t_a for a, b in zip(recent, recent[1:], strict=False)]
        longest = max(gaps[-10:]) if gaps else 0.5
        last = recent[-1]
        m.active = last.end_s > now - max(0.05, 2.5 * longest)
        if not m.active:
            return m
        m.peak_ma = last.peak_ma
        m.width_us = last.width_a_s * 1e6
        m.gap_us = last.gap_s * 1e6
        if gaps:
            m.rate_hz = 1.0 / gaps[-1] if gaps[-1] > 0 else 0.0
            # Trains: split where a gap is well over the typical one. Two complete trains of
            # the same size in a row make a burst program (the electrode check's probe
            # pulses, a train of their own, do not).
            typical = sorted(gaps)[len(gaps) // 2]
            trains: list[list[float]] = [[recent[0].t_a]]
            for g, p in zip(gaps, recent[1:], strict=False):
                if g > 2.5 * typical:
                    trains.append([])
                trains[-1].append(p.t_a)
            done = trains[:-1]
            if len(done) >= 2 and len(done[-1]) == len(done[-2]) >= 2:
                t = done[-1]
                m.rate_hz = (len(t) - 1) / (t[-1] - t[0])
                m.burst = (len(t), 1.0 / (trains[-1][0] - done[-1][0]))
        return m

    def status_rgb(self, lit: bool = True) -> tuple[int, ...]:
        src = self._lit if lit else {p: self.chip.level(p) for p in self.status_pins}
        return tuple(1 if src[p] else 0 for p in self.status_pins)

    def led_rhythm(self, hist: deque) -> tuple[str, list[tuple[int, ...]]]:
        """How an LED looks lately, from its changes (t, state): "dark", "steady", "blinks n/s"
        or "flashes every n s", and the colours it showed, the longest lit first."""
        now = self.chip.t_s
        t0 = now - LED_WINDOW_S
        lit_s: dict[tuple[int, ...], float] = {}
        ons = []
        prev: tuple[int, ...] = ()
        entries = list(hist)
        # A steady light that has since started blinking (a channel that just faulted) is
        # judged from the end of that steady stretch, so the words change with the LED.
        for k in range(len(entries) - 2, -1, -1):
            t, state = entries[k]
            t_off, after = entries[k + 1]
            if any(state) and not any(after) and t_off - t > STEADY_S and t_off > t0:
                t0 = t_off
                entries = entries[k + 1 :]
                break
        for k, (t, state) in enumerate(entries):
            t_next = entries[k + 1][0] if k + 1 < len(entries) else now
            if any(state):
                lit_s[state] = lit_s.get(state, 0.0) + max(0.0, t_next - max(t, t0))
                if t > t0 and not any(prev):
                    ons.append(t)
            prev = state
        colours = sorted(lit_s, key=lambda c: -lit_s[c])
        lit = bool(entries) and any(entries[-1][1])
        span = min(now - t0, now)
        frac = sum(lit_s.values()) / span if span > 0 else 0.0
        if len(ons) >= 2:
            # Mostly dark: flashes and blinks; mostly lit: a steady light with short dips (a
            # channel whose electrode is lifting, or held at its compliance limit).
            dips = frac >= 0.75
            gaps = [y - x for x, y in zip(ons, ons[1:], strict=False)]
            period = sorted(gaps)[len(gaps) // 2]
            if now - ons[-1] <= 2 * max(gaps) + 0.2:
                groups = [1]
                for g in gaps:
                    if g > 2.5 * min(gaps):
                        groups.append(0)
                    groups[-1] += 1
                # the window may begin inside a group: then the second is the first whole one
                ref = groups[1] if len(groups) >= 3 else groups[0]
                if len(groups) >= 2 and groups[-2] > 1 and groups[-2] == ref:
                    starts = [ons[0]]
                    for g, t in zip(gaps, ons[1:], strict=False):
                        if g > 2.5 * min(gaps):
                            starts.append(t)
                    if groups[0] != ref:
                        starts = starts[1:]
                    every = (starts[-1] - starts[0]) / max(1, len(starts) - 1)
                    groups[0] = ref
                    what = "on, %d dips every %.2g s" if dips else "%d flashes every %.2g s"
                    return what % (groups[0], every), colours
                if dips:
                    return "on, dips every %.2g s" % period, colours
                if period < 1.05:
                    return "blinks %.2g/s" % (1 / period), colours
                return "blinks every %.2g s" % period, colours
        if frac >= 0.5 or (lit and not ons):
            return "steady", colours
        return ("on" if lit else "dark"), colours

    # ---- rendering -----------------------------------------------------------------------
    def _led_glyph(self, rgb: tuple[int, ...]) -> Text:
        if not any(rgb):
            return Text("○", style="grey42")
        return Text("●", style="bold " + COLOUR_NAMES.get(rgb, ("?", "white"))[1])

    def _led_words(self, hist: deque) -> str:
        rhythm, colours = self.led_rhythm(hist)
        if not colours or rhythm == "dark" or len(colours[0]) == 1:
            return rhythm
        words = "%s, %s" % (COLOUR_NAMES.get(colours[0], ("?", ""))[0], rhythm)
        for c in colours[1:3]:
            words += ", %s blips" % COLOUR_NAMES.get(c, ("?", ""))[0]
        return words

    def span_s(self, ch: int) -> float:
        """The scope strip's time span: the chosen one, or (auto) one that shows single
        pulses at high rates, whole bursts, and a few pulses at low rates."""
        tb = TIMEBASES_S[self.timebase_i]
        if tb:
            return tb
        m = self.measure(ch)
        if self.resting(ch):
            return 20.0
        if m.burst or not m.active:
            return 1.0
        if m.rate_hz >= 40:
            return 0.2
        return 1.0 if m.rate_hz >= 4 else 5.0

    def scope(
        self, ch: int, width: int, span: float | None = None
    ) -> tuple[list[float], list[float]]:
        """The strip's data over `span` seconds (default: span_s(ch)): per column (time bin,
        oldest first) the highest phase A and phase B current (mA) of the pulses that began in
        it."""
        span = span or self.span_s(ch)
        t0 = self.chip.t_s - span
        pos = [0.0] * width
        neg = [0.0] * width
        for p in self.since(ch, t0):
            c = min(int((p.t_a - t0) / span * width), width - 1)
            pos[c] = max(pos[c], p.peak_a_ma)
            neg[c] = max(neg[c], p.peak_b_ma)
        return pos, neg

    def zoom(self, ch: int, width: int) -> tuple[list[float], list[float]]:
        """The last pulse drawn to scale over ZOOM_US: phase A up, the gap, phase B down."""
        pos = [0.0] * width
        neg = [0.0] * width
        if not self.measure(ch).active or not width:
            return pos, neg
        last = self.pulses[ch - 1][-1]
        us_per_col = ZOOM_US / width
        a0 = 2 * us_per_col  # a little lead-in before phase A
        width_a_us, gap_us, width_b_us = (last.width_a_s * 1e6, last.gap_s * 1e6,
                                          last.width_b_s * 1e6)  # fmt: skip
        b0 = a0 + width_a_us + gap_us
        for c in range(width):
            t = (c + 0.5) * us_per_col
            if a0 <= t < a0 + max(width_a_us, us_per_col):
                pos[c] = last.peak_a_ma
            if b0 <= t < b0 + max(width_b_us, us_per_col):
                neg[c] = last.peak_b_ma
        return pos, neg

    @staticmethod
    def bars(pos: list[float], neg: list[float], full_ma: float, half: int, style: str):
        """Rows of a strip: `half` rows above the axis (eighth blocks), the axis, `half` rows
        below it (bars hanging from the axis)."""
        levels = half * 8
        rows = [Text() for _ in range(2 * half + 1)]

        def lv(v: float) -> int:
            return 0 if v < 0.01 else max(1, min(levels, round(v / full_ma * levels)))

        for c in range(len(pos)):
            lp, ln = lv(pos[c]), lv(neg[c])
            for r in range(half):  # above the axis, top row first
                rows[r].append(UP_BLOCKS[min(max(lp - (half - 1 - r) * 8, 0), 8)], style=style)
            if lp or ln:
                rows[half].append("┼", style=style)
            else:
                rows[half].append("─", style="grey35")
            for r in range(half):  # below the axis, nearest row first
                fill = min(max(ln - r * 8, 0), 8)
                row = rows[half + 1 + r]
                if fill == 8:
                    row.append("█", style=style)
                elif fill:
                    # a bar hanging from the top of the cell: the complementary lower block in
                    # reverse video
                    row.append(UP_BLOCKS[8 - fill], style=style + " reverse")
                else:
                    row.append(" ")
        return rows

    def channel_block(self, ch: int, width: int, half: int, compact: bool) -> list[Text]:
        i = ch - 1
        style = CH_STYLE[i % len(CH_STYLE)]
        cm = self.model.channels[i]
        m = self.measure(ch)
        v = self.view
        head = Text()
        head.append(" CH%d " % ch, style=style + " reverse")
        head.append(" ")
        head.append_text(self._led_glyph((1, 1, 0) if self._lit[self.ch_led_pins[i]] else (0,)))
        head.append(" LED %s  " % self._led_words(self._ch_hist[i]), style="dim")
        load = cm.load_ohm
        if load >= OPEN_OHM:
            head.append("electrode LIFTED (open)", style="bold red")
        elif load <= SHORT_OHM:
            head.append("electrode SHORTED (%s)" % fmt_ohm(load), style="bold red")
        else:
            head.append("load %s" % fmt_ohm(load))
        head.append("   ")
        if m.active:
            head.append("%.1f mA" % m.peak_ma, style="bold")
            head.append(" peak  ")
            head.append("%.3g Hz" % m.rate_hz, style="bold")
            if m.burst:
                head.append(" in bursts of %d, %.2g/s" % m.burst)
            head.append("  ")
            head.append("%.0f µs" % m.width_us, style="bold")
            head.append(" phase, gap %.0f µs" % m.gap_us)
        else:
            head.append("no output", style="dim")
            if m.switching:
                head.append(" (the bridge still switches, with no current)", style="dim")
            else:
                last = [
                    p for p in self.since(ch, self.chip.t_s - 60.0) if p.peak_ma >= DRIVE_MIN_MA
                ]
                if last:
                    head.append(" (last pulse %.1f s ago)" % (self.chip.t_s - last[-1].t_a), "dim")
        # the strip, its labels, and the pulse zoom
        zoom_w = 32 if width >= 96 else 0
        label_w = 8
        strip_w = max(10, width - label_w - (zoom_w + 3 if zoom_w else 0) - 1)
        span_s = self.span_s(ch)  # once a frame: it looks back over up to 20 s of pulses
        pos, neg = self.scope(ch, strip_w, span_s)
        full = nice_scale(max(pos + neg, default=0.0))  # the strip's highest pulse, rounded up
        strip = self.bars(pos, neg, full, half, style)
        zoom = self.bars(*self.zoom(ch, zoom_w), full, half, style) if zoom_w else []
        rows = []
        for r, row in enumerate(strip):
            label = "│"
            if r == 0:
                label = "%g mA┤" % full
            elif r == half:
                label = "0┤"
            elif r == 2 * half:
                label = "%g mA┤" % -full
            line = Text(label.rjust(label_w), style="dim")
            line.append_text(row)
            if zoom_w:
                line.append(" │ ", style="dim")
                line.append_text(zoom[r])
            rows.append(line)
        span = "← last %g s%s" % (
            span_s,
            "" if TIMEBASES_S[self.timebase_i] else " (auto; t: timebase)",
        )
        info = Text(" " * label_w)
        fault = v.faults[i]
        if fault:
            # Short enough for an 80-column terminal: what happened, then what to do.
            info.append("FAULT %s: ch%d stopped" % (fault.upper(), ch), "bold red")
            keys = LIFT_KEYS if self.electrode[i] == "lifted" else SHORT_KEYS
            if self.electrode[i] != "on":
                key = [k for k, c in keys.items() if c == ch][0]
                info.append("; restore the electrode (%s), then press +" % key, "red")
            else:
                info.append("; + checks the electrode and restarts it", "red")
        else:
            info.append("step %d of %s" % (v.steps[i], self.board["intensity"]["steps"]), "dim")
            if v.held[i] is not None:
                info.append(
                    "  HELD at the compliance LIMIT: the load takes no more than step %d, "
                    "+ is refused (- and p work)" % v.held[i],
                    "bold yellow",
                )
            if v.selected not in ("both", str(ch)):
                info.append("  (not selected: + and - leave it alone)", style="dim")
        if compact:
            info.append("   " + span, style="dim")
            return [head, *rows, info]
        axis = Text(" " * label_w + span.ljust(strip_w), style="dim")
        if zoom_w:
            axis.append("   last pulse, %g µs wide" % ZOOM_US, style="dim")
        return [head, *rows, axis, info]

    def hint(self) -> str:
        """What to do next, from the unit's state as its log tells it."""
        v = self.view
        st = v.state
        prog = self.names.get(v.program, v.program)
        if self.paused:
            return "Simulation paused: time stands still. Press space to go on."
        if st in ("booting", "off"):
            return "The unit is off. Hold POWER to switch it on: press P (capital P)."
        if st == "fault":
            return "Fatal fault: only switching off leaves it. Hold POWER: P."
        if v.battery == "cutoff" and st == "idle":
            return "Battery empty: no session can start. Charge it: B (a few times)."
        if st == "idle":
            if v.locked:
                return "Locked: hold PLUS and MINUS together (L) to unlock."
            return (
                "On, idle. + starts %s on %s (electrodes checked first); "
                "m: next program; M: channels; P: off."
                % (prog, "both channels" if v.selected == "both" else "channel " + v.selected)
            )
        if st in ("running", "paused") and v.locked:
            return (
                "Locked: +, -, MODE and resume do nothing; POWER still stops (p) and switches "
                "off (P); L: unlock."
            )
        if st == "running":
            return (
                "Running. + / - one step stronger / weaker (U / D: held 2 s); "
                "p: pause (stops at once); P: off."
            )
        if st == "paused":
            return "Paused: no output. p: resume (electrodes checked again); P: switch off."
        if st == "ending":
            return "Session time is up: the output fades out over 2 s."
        return "The firmware has stopped (%s). q to quit." % st

    def render_lines(self, width: int, height: int) -> list[Text]:
        """The whole screen as lines of at most `width` cells, `height` lines at most."""
        width = max(width, 40)
        compact = height < 34
        half = 1 if compact else 2
        v = self.view
        now = self.chip.t_s
        top: list[Text] = []
        title = Text(" stimctl sim ", style="bold reverse")
        title.append(" %s, %d channels   " % (self.board["name"], self.n_ch))
        title.append("t %s.%d" % (fmt_mmss(now), int(now * 10) % 10), style="bold")
        title.append("   speed x%g" % self.speed)
        title.append("   CPU %.1f %%  %.1f mA" % (self.busy_pct, self.drain_ma))
        if self.speed > 1.5 and self.achieved < 0.8 * self.speed and not self.paused:
            title.append(" (this machine manages x%.2g)" % self.achieved, style="yellow")
        if self.paused:
            title.append("   ▌▌ PAUSED", style="bold yellow")
        top.append(title)
        panel = Text(" buttons ")
        for b in BUTTONS:
            if self.button_down(b):
                panel.append("[%s]" % b.upper(), style="bold black on bright_white")
            else:
                panel.append("[%s]" % b.upper(), style="dim")
        panel.append("   status LED ")
        panel.append_text(self._led_glyph(self.status_rgb()))
        panel.append(" " + self._led_words(self._status_hist), style="dim")
        top.append(panel)
        top.append(Text(" feel/hear  " + self.feedback_words(), style="dim"))
        unit = Text(" unit ")
        st_style = {"running": "bold green", "fault": "bold red", "off": "dim"}.get(
            v.state, "bold"
        )
        unit.append(v.state.upper(), style=st_style)
        if v.locked:
            unit.append(" LOCKED", style="bold blue")
        unit.append("   program ")
        unit.append(self.names.get(v.program, v.program) or "?", style="bold")
        unit.append("   channels %s" % v.selected)
        left = v.time_left_s(now)
        if left is not None:
            unit.append("   session ")
            unit.append(fmt_mmss(left), style="bold")
            unit.append(" left")
        top.append(unit)
        env = Text(" battery ")
        bat = self.board["battery"]
        bv = self.model.battery_v
        frac = min(max((bv - bat["cutoff_v"]) / (bat["full_v"] - bat["cutoff_v"]), 0.0), 1.0)
        bstyle = "red" if bv < bat["cutoff_v"] else "yellow" if bv < bat["warn_v"] else "green"
        env.append("%.2f V " % bv, style="bold " + bstyle)
        env.append("█" * round(frac * 10) + "░" * (10 - round(frac * 10)), style=bstyle)
        env.append(" firmware: %s" % v.battery, style="dim" if v.battery == "ok" else bstyle)
        env.append("   skin %s" % fmt_ohm(SKINS_OHM[self.skin_i]))
        top.append(env)
        hint_style = "bold red" if v.state == "fault" else "bold"
        for k, part in enumerate(wrap(self.hint(), width - 4)[:2]):
            top.append(
                Text(" ➜ " if k == 0 else "   ", style="bold green") + Text(part, hint_style)
            )
        msg = Text("   ")
        if v.notice is not None:
            msg.append(v.notice[0], style=v.notice[1])
            msg.append("   ")
        if self.frames - self._message_frame < MESSAGE_FRAMES or self.paused:
            msg.append_text(self.message)
        top.append(msg)
        chans: list[Text] = []
        for ch in range(1, self.n_ch + 1):
            if not compact:
                chans.append(Text("─" * width, style="grey35"))
            chans.extend(self.channel_block(ch, width, half, compact))
        help_lines = self.help_lines(width)
        log_title = Text("─ firmware log " + "─" * max(0, width - 15), style="grey35")
        room = height - len(top) - len(chans) - 1 - len(help_lines)
        logs = list(self.log)[-room:] if room > 0 else []
        lines = top + chans + [log_title] + logs
        lines += [Text("") for _ in range(max(0, room - len(logs)))] + help_lines
        if len(lines) > height:  # too short a terminal: keep the top, and the help at the end
            lines = lines[: max(0, height - len(help_lines))] + help_lines
            lines = lines[-height:] if height > 0 else []
        for ln in lines:
            ln.no_wrap = True
            ln.truncate(width, overflow="ellipsis")
        return lines

    def help_lines(self, width: int) -> list[Text]:
        """The keys, packed into as few lines as fit: long descriptions if they fit in two."""
        for which in (1, 2):
            out: list[Text] = []
            cur = Text(" ")
            for entry in HELP:
                item = Text()
                item.append(entry[0], style="bold reverse")
                item.append(" " + entry[which] + "  ")
                if len(cur) + len(item) > width and len(cur) > 1:
                    out.append(cur)
                    cur = Text(" ")
                cur.append_text(item)
            out.append(cur)
            if len(out) <= 2:
                break
        return out

    def help_text(self) -> str:
        return " ".join(line.plain for line in self.help_lines(200))

    def render(self, width: int, height: int) -> Group:
        return Group(*self.render_lines(width, height))

    def close(self) -> None:
        self.unit.close()


def wrap(s: str, width: int) -> list[str]:
    lines = [""]
    for word in s.split(" "):
        if lines[-1] and len(lines[-1]) + 1 + len(word) > width:
            lines.append(word)
        else:
            lines[-1] = (lines[-1] + " " + word) if lines[-1] else word
    return lines


KEY_SEQS = {"\x1b[A": "UP", "\x1b[B": "DOWN", "\x1bOA": "UP", "\x1bOB": "DOWN"}


def split_keys(data: str) -> list[str]:
    """Bytes read from the terminal -> keys; arrow up/down named, other escapes dropped."""
    keys = []
    i = 0
    while i < len(data):
        if data[i] == "\x1b":
            seq = data[i : i + 3]
            if seq in KEY_SEQS:
                keys.append(KEY_SEQS[seq])
                i += 3
                continue
            # skip an unknown escape sequence: ESC [ ... final byte
            j = i + 1
            if j < len(data) and data[j] in "[O":
                j += 1
                while j < len(data) and not ("@" <= data[j] <= "~"):
                    j += 1
                j += 1
            i = j
            continue
        keys.append(data[i])
        i += 1
    return keys


def run_interactive(board: str) -> int:
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        print("stimctl sim: needs an interactive terminal (run it in a terminal)", file=sys.stderr)
        return 2
    console = Console()
    if console.width < 60 or console.height < 20:
        print(
            "stimctl sim: the terminal is %dx%d; it needs at least 60x20 (80x24 or more is "
            "better)" % (console.width, console.height),
            file=sys.stderr,
        )
        return 2
    print("stimctl sim: booting the firmware on the simulated %s ..." % board)
    app = SimApp(board)
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    interrupted = False
    try:
        # Keys one at a time, no echo, and Ctrl-C as a key (quits cleanly) rather than a signal.
        mode = termios.tcgetattr(fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG)
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSAFLUSH, mode)
        with Live(
            app.render(console.width, console.height),
            console=console,
            screen=True,
            auto_refresh=False,
            transient=True,
        ) as live:
            last = time.monotonic()
            sim_t0, wall_t0 = app.chip.t_s, last
            while not app.quit:
                t0 = time.monotonic()
                while select.select([fd], [], [], 0)[0]:
                    data = os.read(fd, 64).decode(errors="ignore")
                    if not data:
                        app.quit = True
                        break
                    for k in split_keys(data):
                        app.handle_key(k)
                # simulated time follows the wall clock (times the speed), so a slow frame
                # does not slow the simulation, up to what the machine can do
                app.step(min(t0 - last, 4 * app.frame_s) or app.frame_s)
                last = t0
                if t0 - wall_t0 >= 1.0:
                    app.achieved = (app.chip.t_s - sim_t0) / (t0 - wall_t0)
                    sim_t0, wall_t0 = app.chip.t_s, t0
                if app.paused:
                    sim_t0, wall_t0 = app.chip.t_s, t0
                live.update(app.render(console.width, console.height), refresh=True)
                spare = app.frame_s - (time.monotonic() - t0)
                if spare > 0:
                    select.select([fd], [], [], spare)  # wake early for a key
    except KeyboardInterrupt:
        interrupted = True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for s, h in old_handlers.items():
            signal.signal(s, h)
        t_end = app.chip.t_s
        pulses = [cm.pulses for cm in app.model.channels]
        app.close()
    print(
        "stimctl sim: %s after %.1f s of simulated time; pulses at the pins: %s"
        % (
            "interrupted" if interrupted else "quit",
            t_end,
            ", ".join("ch%d %d" % (i + 1, n) for i, n in enumerate(pulses)),
        )
    )
    return 130 if interrupted else 0

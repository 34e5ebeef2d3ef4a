"""Scripted scenarios: a JSON file of button presses, electrode and battery changes, run
headless on the simulated unit with a pin-level trace (`stimctl sim --scenario F --trace T`).

Format (scenarios/README.md has an example per feature):

    {"board": "pico", "duration_s": 120, "description": "...",
     "initial": {"load_ohm": {"1": 1000, "2": 1000}, "battery_v": 3.9,
                 "settings": "<settings file text>" or {...}, "programs": [{...}, ...]},
     "events": [{"t": 0.5, "press": "power", "hold_s": 1.6},
                {"t": 3, "press": "plus", "times": 10, "gap_s": 0.3},
                {"t": 30, "load_ohm": {"1": "open"}}, {"t": 50, "battery_v": 3.2}]}

The unit starts switched off (the firmware booted, no output), as when the battery goes in.
Each event has `t` (simulated seconds) and exactly one action:
- `press`: a button name; the pin goes low at t and high after `hold_s` (default 0.1);
  `times` repeats the press, `gap_s` (default 0.2) apart from each release to the next press;
- `load_ohm`: {channel: ohm, "open" or "short"} electrode load from then on;
- `battery_v`: the battery voltage from then on;
- `ctrl_c`: true: Ctrl-C from the host; `soft_reset`: true: Ctrl-D (soft reset);
- `power_cycle`: true: the battery out and in again (a power-on reset; flash kept);
- `boost_fault`: true/false: the high-voltage supply fails to come up / works again;
- `charger`: true/false: the charger plugged in / unplugged (boards with `charge_detect`);
- `sense_stuck_v`: {channel: volts or null}: a channel's SENSE ADC pin stuck at a voltage;
- `host`: text the host sends on the USB serial console, byte for byte (characters U+0000 to
  U+00FF are the bytes 0-255; a command needs its "\n"; "\u0003" is Ctrl-C). Protocol:
  docs/protocol.md. The trace records it (`host`) and the unit's replies (`reply`).
`note` (any event) and `description` (top level) are free text. Unknown keys, wrong types and
out-of-range values are rejected with the file, line and key named (ScenarioError).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import boards
from ..rp2sim.port_math import PWRON_RESET
from .board_model import OPEN_OHM, SHORT_OHM
from .linejson import JsonError, LDict, LList, loads
from .trace import Tracer, TraceWriter
from .unit import FIRMWARE_DIR, SimulatedUnit

MAX_DURATION_S = 24 * 3600.0
DEFAULT_HOLD_S = 0.1
DEFAULT_GAP_S = 0.2
DEFAULT_LOAD_OHM = 1000.0
DEFAULT_BATTERY_V = 3.9
LOAD_WORDS = {"open": OPEN_OHM, "short": SHORT_OHM}
STEP_S = 0.5  # the runner hands control back this often (overdue stops, trace writing)

_TOP_KEYS = ("board", "duration_s", "description", "initial", "events")
_INITIAL_KEYS = ("load_ohm", "battery_v", "settings", "programs")
_ACTIONS = (
    "press",
    "load_ohm",
    "battery_v",
    "ctrl_c",
    "soft_reset",
    "power_cycle",
    "boost_fault",
    "charger",
    "sense_stuck_v",
    "host",
)
MAX_HOST_CHARS = 4096
_PRESS_KEYS = ("hold_s", "times", "gap_s")


class ScenarioError(ValueError):
    """A bad scenario file: `where` is "FILE:LINE", `key` the JSON path of the bad value."""

    def __init__(self, source: str, line: int, key: str, msg: str):
        where = "%s:%d" % (source, line) if line else source
        super().__init__("%s: %s: %s" % (where, key, msg) if key else "%s: %s" % (where, msg))
        self.source, self.line, self.key, self.msg = source, line, key, msg


@dataclass
class Event:
    t: float
    action: str
    value: Any
    line: int
    hold_s: float = DEFAULT_HOLD_S
    times: int = 1
    gap_s: float = DEFAULT_GAP_S


@dataclass
class Scenario:
    board: dict
    duration_s: float
    events: list[Event]
    load_ohm: dict[int, float]
    battery_v: float
    settings: str | None
    description: str = ""
    programs: str | None = None  # /programs.json: installed custom programs
    source: str = "<scenario>"
    board_name: str = "pico"

    def files(self) -> dict[str, bytes | str]:
        f: dict[str, bytes | str] = {"/board.json": json.dumps(self.board)}
        if self.settings is not None:
            f["/settings.json"] = self.settings
        if self.programs is not None:
            f["/programs.json"] = self.programs
        return f


# ---- validation -------------------------------------------------------------------------------
class _V:
    def __init__(self, source: str):
        self.source = source

    def fail(self, line: int, key: str, msg: str):
        raise ScenarioError(self.source, line, key, msg)

    def obj(self, v, line: int, key: str, allowed) -> LDict:
        if not isinstance(v, LDict):
            self.fail(line, key, "must be an object")
        for k in v:
            if k not in allowed:
                self.fail(
                    v.key_line[k],
                    _join(key, k),
                    "unknown key (allowed: %s)" % ", ".join(allowed),
                )
        return v

    def num(self, d: LDict, k: str, key: str, lo: float, hi: float, *, lo_open=False) -> float:
        v = d[k]
        line = d.key_line[k]
        name = _join(key, k)
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.fail(line, name, "must be a number, got %s" % json.dumps(v))
        if v < lo or (lo_open and v == lo) or v > hi:
            rng = "%s < x <= %s" % (lo, hi) if lo_open else "%s..%s" % (lo, hi)
            self.fail(line, name, "%s outside %s" % (v, rng))
        return float(v)

    def flag(self, d: LDict, k: str, key: str) -> bool:
        v = d[k]
        if not isinstance(v, bool):
            self.fail(d.key_line[k], _join(key, k), "must be true or false")
        return v

    def channels(self, d: LDict, k: str, key: str, n: int) -> LDict:
        v = d[k]
        name = _join(key, k)
        if not isinstance(v, LDict) or not v:
            self.fail(d.key_line[k], name, 'must be an object of channels, e.g. {"1": 1000}')
        for ck in v:
            if ck not in [str(i + 1) for i in range(n)]:
                self.fail(v.key_line[ck], _join(name, ck), "no such channel (board has 1..%d)" % n)
        return v


def _join(key: str, k: str | int) -> str:
    if isinstance(k, int):
        return "%s[%d]" % (key, k)
    return "%s.%s" % (key, k) if key else k


def parse(text: str, source: str = "<scenario>", board: str | None = None) -> Scenario:
    """Validate scenario text; `board` (a name or path) overrides the file's own."""
    v = _V(source)
    try:
        doc = loads(text)
    except JsonError as jerr:
        raise ScenarioError(source, jerr.line, "", "not valid JSON: " + jerr.msg) from None
    top = v.obj(doc, 1, "", _TOP_KEYS)
    for k in ("duration_s", "events"):
        if k not in top:
            v.fail(top.line, k, "missing")
    board_name = board
    if board_name is None:
        board_name = top.get("board", "pico")
        if not isinstance(board_name, str) or not board_name:
            v.fail(top.key_line["board"], "board", "must be a board name or a .json path")
        if "/" in board_name or board_name.endswith(".json"):
            p = Path(board_name)
            if not p.is_absolute() and source not in ("<scenario>", "-"):
                p = Path(source).parent / p
            board_name = str(p)
    try:
        board_dict = boards.load_board(board_name)
    except (boards.BoardError, OSError) as err:
        v.fail(top.key_line.get("board", top.line), "board", str(err))
    n_ch = len(board_dict["channels"])
    duration = v.num(top, "duration_s", "", 0.0, MAX_DURATION_S, lo_open=True)
    description = top.get("description", "")
    if not isinstance(description, str):
        v.fail(top.key_line["description"], "description", "must be a string")

    loads_ohm = {i + 1: DEFAULT_LOAD_OHM for i in range(n_ch)}
    battery_v = DEFAULT_BATTERY_V
    settings = None
    progs = None
    if "initial" in top:
        ini = v.obj(top["initial"], top.key_line["initial"], "initial", _INITIAL_KEYS)
        if "load_ohm" in ini:
            loads_ohm.update(_loads(v, ini, "initial", n_ch))
        if "battery_v" in ini:
            battery_v = v.num(ini, "battery_v", "initial", 0.0, 5.0, lo_open=True)
        if "settings" in ini:
            s = ini["settings"]
            if isinstance(s, LDict):
                settings = json.dumps(s)
            elif isinstance(s, str):
                settings = s
            else:
                v.fail(ini.key_line["settings"], "initial.settings", "must be text or an object")
        if "programs" in ini:
            ps = ini["programs"]
            if not isinstance(ps, LList):
                v.fail(ini.key_line["programs"], "initial.programs", "must be a list of programs")
            progs = json.dumps(ps)

    evs = top["events"]
    if not isinstance(evs, LList):
        v.fail(top.key_line["events"], "events", "must be a list")
    events = []
    buttons = sorted(board_dict["buttons"])
    for i, raw in enumerate(evs):
        key = "events[%d]" % i
        line = evs.item_line[i]
        e = v.obj(raw, line, key, ("t", "note") + _ACTIONS + _PRESS_KEYS)
        if "t" not in e:
            v.fail(e.line, key + ".t", "missing")
        t = v.num(e, "t", key, 0.0, duration)
        acts = [k for k in e if k in _ACTIONS]
        if len(acts) != 1:
            what = "no action" if not acts else "more than one action (%s)" % ", ".join(acts)
            v.fail(e.line, key, "%s: give exactly one of %s" % (what, ", ".join(_ACTIONS)))
        act = acts[0]
        aline = e.key_line[act]
        if act != "press":
            for k in _PRESS_KEYS:
                if k in e:
                    v.fail(e.key_line[k], _join(key, k), "only for a press")
        ev = Event(t=t, action=act, value=None, line=aline)
        if act == "press":
            name = e["press"]
            if name not in buttons:
                v.fail(
                    aline,
                    key + ".press",
                    "%s is not a button (%s)" % (json.dumps(name), ", ".join(buttons)),
                )
            ev.value = name
            if "hold_s" in e:
                ev.hold_s = v.num(e, "hold_s", key, 0.0, 3600.0, lo_open=True)
            if "times" in e:
                n = e["times"]
                if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10000:
                    v.fail(e.key_line["times"], key + ".times", "must be a whole number 1..10000")
                ev.times = n
            if "gap_s" in e:
                ev.gap_s = v.num(e, "gap_s", key, 0.0, 3600.0, lo_open=True)
        elif act == "load_ohm":
            ev.value = _loads(v, e, key, n_ch)
        elif act == "battery_v":
            ev.value = v.num(e, "battery_v", key, 0.0, 5.0, lo_open=True)
        elif act in ("ctrl_c", "soft_reset", "power_cycle"):
            if e[act] is not True:
                v.fail(aline, _join(key, act), "must be true")
            ev.value = True
        elif act == "boost_fault" or act == "charger":
            ev.value = v.flag(e, act, key)
        elif act == "host":
            text = e[act]
            if not isinstance(text, str) or not 0 < len(text) <= MAX_HOST_CHARS:
                v.fail(aline, _join(key, act), "must be text of 1..%d characters" % MAX_HOST_CHARS)
            if any(ord(c) > 255 for c in text):
                v.fail(aline, _join(key, act), "only characters U+0000..U+00FF (one byte each)")
            ev.value = text
        elif act == "sense_stuck_v":
            d = v.channels(e, act, key, n_ch)
            out = {}
            for ck, val in d.items():
                bad = isinstance(val, bool) or not isinstance(val, int | float | None)
                if bad or (val is not None and not 0 <= val <= 3.6):
                    v.fail(d.key_line[ck], _join(_join(key, act), ck), "must be 0..3.6 V or null")
                out[int(ck)] = None if val is None else float(val)
            ev.value = out
        events.append(ev)
    return Scenario(
        board=board_dict,
        duration_s=duration,
        events=events,
        load_ohm=loads_ohm,
        battery_v=battery_v,
        settings=settings,
        programs=progs,
        description=description,
        source=source,
        board_name=board_dict["name"],
    )


def _loads(v: _V, d: LDict, key: str, n_ch: int) -> dict[int, float]:
    chans = v.channels(d, "load_ohm", key, n_ch)
    out = {}
    for ck, val in chans.items():
        name = _join(_join(key, "load_ohm"), ck)
        if isinstance(val, str) and val in LOAD_WORDS:
            out[int(ck)] = LOAD_WORDS[val]
        elif isinstance(val, bool) or not isinstance(val, int | float) or not 0 < val <= 1e12:
            v.fail(chans.key_line[ck], name, 'must be ohms (0 < x <= 1e12), "open" or "short"')
        else:
            out[int(ck)] = float(val)
    return out


def load(path: str | Path, board: str | None = None) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ScenarioError(str(p), 0, "", "cannot read: %s" % e.strerror) from None
    except UnicodeDecodeError:
        raise ScenarioError(str(p), 0, "", "not UTF-8 text") from None
    return parse(text, str(p), board)


# ---- running ----------------------------------------------------------------------------------
@dataclass
class RunResult:
    scenario: Scenario
    violations: int
    summary: list[dict]
    records: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    written: int = 0
    model: Any = None  # the board model after the run (tests: pulse_log with record_pulses)

    @property
    def speedup(self) -> float:
        return self.scenario.duration_s / self.wall_s if self.wall_s else 0.0

    def of(self, kind: str, **match) -> list[dict]:
        """The kept records of a kind whose fields equal `match` (tests)."""
        return [
            r
            for r in self.records
            if r["kind"] == kind and all(r.get(k) == v for k, v in match.items())
        ]


def schedule(unit: SimulatedUnit, tracer: Tracer, ev: Event) -> None:
    model = unit.model
    if ev.action == "press":
        for i in range(ev.times):
            unit.press(ev.value, at=ev.t + i * (ev.hold_s + ev.gap_s), hold_s=ev.hold_s)
    elif ev.action == "load_ohm":
        for ch, ohm in ev.value.items():
            unit.at(ev.t, model.set_load, ch, ohm)
    elif ev.action == "battery_v":
        unit.at(ev.t, model.set_battery, ev.value)
    elif ev.action == "ctrl_c":
        unit.interrupt(at=ev.t)
    elif ev.action == "soft_reset":
        unit.soft_reset(at=ev.t)
    elif ev.action == "power_cycle":
        unit.at(ev.t, unit.chip.hard_reset, PWRON_RESET)
    elif ev.action == "boost_fault":
        unit.at(ev.t, setattr, model, "boost_fault", ev.value)
    elif ev.action == "charger":
        unit.at(ev.t, model.set_charger, ev.value)
    elif ev.action == "sense_stuck_v":
        for ch, volts in ev.value.items():
            unit.at(ev.t, _stick_sense, model, ch, volts)
    elif ev.action == "host":
        unit.at(ev.t, tracer.host_sent, ev.value)
        unit.send(ev.value.encode("latin-1"), at=ev.t)


def _stick_sense(model, ch: int, volts: float | None) -> None:
    adc = model.channels[ch - 1].adc_channel
    if volts is None:
        model.adc_faults.pop(adc, None)
    else:
        model.adc_faults[adc] = volts


def run(
    scenario: Scenario,
    out: IO[str] | None = None,
    *,
    keep: bool = False,
    firmware_dir: Path = FIRMWARE_DIR,
    record_pulses: bool = False,
    on_unit: Callable[[SimulatedUnit], None] | None = None,
    fast_forward: bool | None = None,
) -> RunResult:
    """Run a scenario to its end; trace to `out` (JSON Lines) and/or keep the records.
    `on_unit` sees the unit before it starts (a test installs its own observers)."""
    wall0 = time.perf_counter()
    unit = SimulatedUnit(
        scenario.board,
        files=scenario.files(),
        load_ohm=dict(scenario.load_ohm),
        battery_v=scenario.battery_v,
        firmware_dir=firmware_dir,
        record_pulses=record_pulses,
        fast_forward=fast_forward,
    )
    writer = TraceWriter(out, keep=keep)
    tracer = Tracer(unit, writer)
    if on_unit is not None:
        on_unit(unit)
    try:
        for ev in scenario.events:
            schedule(unit, tracer, ev)
        t = 0.0
        while t < scenario.duration_s:
            t = min(t + STEP_S, scenario.duration_s)
            unit.run_until(t)
            tracer.poll()
        summary = tracer.finish()
    finally:
        unit.close()
    return RunResult(
        scenario=scenario,
        violations=tracer.violation_count,
        summary=summary,
        records=writer.records,
        wall_s=time.perf_counter() - wall0,
        written=writer.written,
        model=unit.model,
    )

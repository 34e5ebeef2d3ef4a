"""Where the battery's charge goes: a power model of the unit, fed by what the simulated chip and
board model did (the CPU's busy, waiting and asleep cycles, every pulse's charge, the time each
light and feedback output was on).

Components, as battery current at the cell's nominal voltage (BATTERY_V):

- **cpu**: the RP2040 board at its system clock. Board-level currents of a Raspberry Pi Pico
  running MicroPython, at its 5 V input, regulator included (cpottle9/RP2-PowerControl,
  POWER_MEASUREMENTS.md, MicroPython 1.23.0, FNB58 USB meter): a busy loop draws 7.83, 14.45
  and 21.24 mA at 18, 64 and 125 MHz; waiting in `time.sleep_ms` (WFE) 7.45, 13.00 and
  18.80 mA; `machine.lightsleep` 1.29 mA at any clock (the port runs the chip from the 12 MHz
  crystal while it sleeps). They agree with MicroPython's own figures (issue #8770: about
  21 mA at 125 MHz; PR #8832: lightsleep(5000) 0.99 mA at 5 V on VSYS, 1.5 mA from USB). The
  chip alone is far below (RP2040 datasheet, 5.4 "Power Consumption", Table 637: SLEEP
  0.39 mA, DORMANT 0.18 mA on DVDD): the board's regulator and flash dominate asleep. Between
  the measured clocks the current is interpolated linearly; the same power is drawn from the
  cell (I_cell = I_5V * 5 V / BATTERY_V).
- **output**: the boost converter refills what each pulse took from its rail: a current source
  fed from the compliance voltage takes V_compliance * |charge| per phase, whatever the load,
  divided by the board's `analog.boost_efficiency`; plus the converter's quiescent draw while
  enabled (BOOST_QUIESCENT_MA, an estimate).
- **lights**: status and channel LEDs (LED_MA each while lit), the buzzer (BUZZER_MA while its
  tone plays) and the haptic motor (HAPTIC_MA while it runs), from the 3.3 V rail through the
  regulator (REGULATOR_EFF). Estimates for typical parts, not measurements of this board.

Battery life: hours = `battery.capacity_mah` / mean drain (the whole capacity taken as usable
down to the cut-off).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

CPU_MHZ = (18.0, 64.0, 125.0)
BUSY_MA_5V = (7.83, 14.45, 21.24)
WAIT_MA_5V = (7.45, 13.00, 18.80)
ASLEEP_MA_5V = 1.29
SUPPLY_V = 5.0
BATTERY_V = 3.7  # a Li-ion cell's nominal voltage
RAIL_V = 3.3
REGULATOR_EFF = 0.9  # estimate: a buck-boost from the cell to 3.3 V
LED_MA = 2.0  # estimate: an indicator LED through about 680 ohm from 3.3 V
BUZZER_MA = 5.0  # estimate: a piezo disc driven with a 2.7 kHz square wave
HAPTIC_MA = 60.0  # estimate: a 3 V coin vibration motor
BOOST_QUIESCENT_MA = 0.5  # estimate: the converter switching with no load
COMPONENTS = ("cpu", "output", "lights")


def _interp(mhz: float, ys: tuple[float, ...]) -> float:
    xs = CPU_MHZ
    if mhz <= xs[0]:
        return ys[0] * mhz / xs[0]
    for i in range(1, len(xs)):
        if mhz <= xs[i] or i == len(xs) - 1:
            x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
            return y0 + (y1 - y0) * (mhz - x0) / (x1 - x0)
    raise AssertionError


def cpu_ma(mhz: float, busy: float, wait: float, asleep: float) -> float:
    """Mean cell current of the processor board over shares of time busy, waiting (WFE) and
    asleep (lightsleep), which add up to 1."""
    ma_5v = busy * _interp(mhz, BUSY_MA_5V) + wait * _interp(mhz, WAIT_MA_5V)
    ma_5v += asleep * ASLEEP_MA_5V
    return ma_5v * SUPPLY_V / BATTERY_V


def rail_to_cell(ma_3v3: float) -> float:
    return ma_3v3 * RAIL_V / REGULATOR_EFF / BATTERY_V


def power_keys(board_file: str | None) -> tuple[float, float]:
    """(capacity_mah, boost_efficiency) from the board file: keys the unit itself never keeps
    (stim.board checks them and drops them), so they are read from the file here."""
    raw = {}
    if board_file:
        with open(board_file) as f:
            raw = json.load(f)
    cap = raw.get("battery", {}).get("capacity_mah", 500)
    eff = raw.get("analog", {}).get("boost_efficiency", 0.8)
    return float(cap), float(eff)


@dataclass
class Reading:
    """Charge drawn from the cell by component (mA*s) over `seconds`, and the CPU's shares."""

    seconds: float
    mas: dict = field(default_factory=dict)
    busy: float = 0.0
    asleep: float = 0.0

    def ma(self, part: str | None = None) -> float:
        if self.seconds <= 0:
            return 0.0
        total = self.mas[part] if part else sum(self.mas.values())
        return total / self.seconds


class PowerMeter:
    """Watches one simulated unit (host_tools.sim.unit.SimulatedUnit) and says what it drew:
    read() gives the drain since the previous read()."""

    def __init__(self, unit, capacity_mah: float = 500.0, boost_efficiency: float = 0.8):
        self.unit = unit
        chip = unit.chip
        self.chip = chip
        self.mhz = chip.sysclk_hz / 1e6
        self.capacity_mah = capacity_mah
        self.boost_efficiency = boost_efficiency
        b = unit.board
        self.compliance_v = b["analog"]["compliance_v"]
        self._leds = set(b["status_led"].values()) | {c["led"] for c in b["channels"]}
        self._haptic = b.get("haptic")
        self._buzzer = b.get("buzzer")
        self._boost = b["boost_en"]
        self._on_since: dict[int, tuple[str, int]] = {}  # pin -> (its kind, cycle it went on)
        self._on_cycles: dict[str, int] = {"led": 0, "haptic": 0, "buzzer": 0, "boost": 0}
        chip.pin_observers.append(self._on_pin)
        chip.analog_observers.append(self._on_analog)
        self._q0 = self._charge()
        self._mark()

    def _kind(self, n: int) -> str | None:
        if n in self._leds:
            return "led"
        if n == self._haptic:
            return "haptic"
        if n == self._boost:
            return "boost"
        if n == self._buzzer:
            return "buzzer"
        return None

    def _switched(self, n: int, on: bool, t: int) -> None:
        kind = self._kind(n)
        if kind is None:
            return
        if on and n not in self._on_since:
            self._on_since[n] = (kind, t)
        elif not on and n in self._on_since:
            self._on_cycles[kind] += t - self._on_since.pop(n)[1]

    def _on_pin(self, n: int, level: int, t: int) -> None:
        if n != self._buzzer:  # its pin toggles with the tone: the duty says whether it plays
            self._switched(n, bool(level), t)

    def _on_analog(self, n: int, t: int) -> None:
        if n == self._buzzer:
            self._switched(n, self.chip.analog_level(n, t) > 0, t)

    def _charge(self) -> float:
        """Charge through the loads so far, both phases counted (the board model's account)."""
        return sum(ch.abs_charge_c for ch in self.unit.model.channels)

    def _mark(self) -> None:
        cpu = self.chip.cpu
        cpu.sync()
        self._t0 = self.chip.now
        self._cpu0 = (cpu.busy_cycles, cpu.idle_cycles, cpu.asleep_cycles)

    def read(self) -> Reading:
        chip = self.chip
        cpu = chip.cpu
        cpu.sync()
        now = chip.now
        f = chip.sysclk_hz
        # lights and feedback still on count up to now
        for n, (kind, since) in self._on_since.items():
            self._on_cycles[kind] += now - since
            self._on_since[n] = (kind, now)
        span = now - self._t0
        busy = cpu.busy_cycles - self._cpu0[0]
        asleep = cpu.asleep_cycles - self._cpu0[2]
        wait = max(0, span - busy - asleep)
        seconds = span / f
        r = Reading(seconds)
        if span > 0:
            r.busy, r.asleep = busy / span, asleep / span
            r.mas["cpu"] = cpu_ma(self.mhz, busy / span, wait / span, asleep / span) * seconds
        else:
            r.mas["cpu"] = 0.0
        q = self._charge()
        q_c, self._q0 = q - self._q0, q
        out_j = self.compliance_v * q_c / self.boost_efficiency
        boost_s = self._on_cycles["boost"] / f
        r.mas["output"] = out_j / BATTERY_V * 1000 + BOOST_QUIESCENT_MA * boost_s
        lights_mas = (
            LED_MA * self._on_cycles["led"]
            + BUZZER_MA * self._on_cycles["buzzer"]
            + HAPTIC_MA * self._on_cycles["haptic"]
        ) / f
        r.mas["lights"] = rail_to_cell(lights_mas)
        for k in self._on_cycles:
            self._on_cycles[k] = 0
        self._mark()
        return r

    def hours(self, drain_ma: float) -> float:
        return self.capacity_mah / drain_ma if drain_ma > 0 else float("inf")

"""The analog side of the board, wired to the simulated chip's pins.

What the model reproduces (DESIGN.md, "load physics"):
- while a channel's PHASE_A (positive) or PHASE_B (negative) pin is high and the boost is up,
  the current source pushes I = min(I_set, V_compliance / Z_load) through the electrodes, where
  I_set comes from the LEVEL pin's filtered PWM duty through the board's calibration table;
- the electrode voltage is I * Z_load; a peak-hold captures it and decays with the board's time
  constant; the SENSE ADC reads it through the sense divider;
- BOOST_EN raises the compliance voltage with a first-order rise; the boost ADC reads it;
- the battery ADC reads the battery voltage through its divider; buttons pull their pins low.

Everything here is computed from pin levels and PWM duties at the instant they change, never from
the firmware's variables, so tests built on it observe what a probe on the board would.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from ..rp2sim.chip import Chip

OPEN_OHM = 1e9
SHORT_OHM = 1.0
DRIVE_MIN_MA = 0.05  # a pulse driven with less than this is not output


@dataclass
class Pulse:
    """One biphasic pulse as delivered into the load (times in seconds, charge in coulombs)."""

    t_a: float
    width_a_s: float
    gap_s: float
    width_b_s: float
    peak_a_ma: float
    peak_b_ma: float
    charge_a_c: float
    charge_b_c: float
    drive_ma: float

    @property
    def peak_ma(self) -> float:
        """The higher of the two phases' peak current into the load."""
        return max(self.peak_a_ma, self.peak_b_ma)

    @property
    def i2t_a2s(self) -> float:
        """The integral of i^2 dt over both phases (A^2 s): rms current and power into the load."""
        i2t = 0.0
        for q, w in ((self.charge_a_c, self.width_a_s), (self.charge_b_c, self.width_b_s)):
            if w > 0:
                i2t += q * q / w
        return i2t

    @property
    def net_charge_c(self) -> float:
        return self.charge_a_c - self.charge_b_c

    @property
    def end_s(self) -> float:
        return self.t_a + self.width_a_s + self.gap_s + self.width_b_s


@dataclass
class ChannelModel:
    index: int  # 1-based, as the wearer counts channels
    phase_a: int
    phase_b: int
    level_pin: int
    adc_channel: int
    led: int
    load_ohm: float = 1000.0
    # phase state
    phase: int = 0  # +1 A high, -1 B high, 0 neither, 2 both (shoot-through)
    seg_t: int = 0
    seg_i_a: float = 0.0  # current (A) of the running segment
    # accounting
    net_charge_c: float = 0.0
    abs_charge_c: float = 0.0
    pulses: int = 0
    max_peak_ma: float = 0.0
    max_phase_charge_c: float = 0.0
    last_current_t: int | None = None  # cycle when current last flowed into the load
    # LEVEL setting, cached between changes of the LEVEL pin (the model's analog observer)
    drive_cache: float | None = None
    # peak-hold
    hold_v: float = 0.0
    hold_t: int = 0
    # pulse assembly
    _cur: dict = field(default_factory=dict)
    pulse_log: list = field(default_factory=list)
    shoot_through: list = field(default_factory=list)
    single_phase: list = field(default_factory=list)


class BoardModel:
    def __init__(
        self,
        chip: Chip,
        board: dict,
        *,
        load_ohm: dict | None = None,
        battery_v: float = 3.9,
        record_pulses: bool = True,
        seed: int = 0,
    ):
        self.chip = chip
        self.board = board
        an = board["analog"]
        self.cal = [(float(d), float(ma)) for d, ma in an["level_calibration"]]
        self.sense_divider = an["sense_divider"]
        self.hold_tau_s = an["sense_hold_tau_ms"] / 1000
        self.compliance_v = an["compliance_v"]
        self.boost_divider = an["boost_divider"]
        self.boost_rise_s = an["boost_rise_ms"] / 1000
        self.battery_divider = an["battery_divider"]
        self.record_pulses = record_pulses
        self.battery_v = battery_v
        self.charger_on = False  # set_charger
        self.rng = random.Random(seed)
        self.adc_noise_v = 0.0  # rms noise at the ADC pin
        self.adc_faults: dict[int, float] = {}  # adc channel -> stuck voltage
        self.adc_spikes: dict[int, list[tuple[int, int, float]]] = {}
        self.boost_fault = False  # True: the boost never comes up
        self.boost_on = False
        self._boost_v0 = 0.0
        self._boost_t0 = 0
        self.violations: list[dict] = []
        self.listeners: list = []  # callables(event: dict) for tracers: pulse, violation, load
        self.channels: list[ChannelModel] = []
        for i, ch in enumerate(board["channels"]):
            cm = ChannelModel(
                index=i + 1,
                phase_a=ch["phase_a"],
                phase_b=ch["phase_b"],
                level_pin=ch["level_pwm"],
                adc_channel=ch["sense_adc"] - 26,
                led=ch["led"],
            )
            if load_ohm and (i + 1) in load_ohm:
                cm.load_ohm = float(load_ohm[i + 1])
            self.channels.append(cm)
            chip.adc_sources[cm.adc_channel] = self._sense_source(cm)
        chip.adc_vref_v = an["adc_vref_v"]
        chip.adc_sources[board["boost_adc"] - 26] = self._adc_source(
            board["boost_adc"] - 26, lambda t: self.boost_v(t) / self.boost_divider
        )
        chip.adc_sources[board["battery_adc"] - 26] = self._adc_source(
            board["battery_adc"] - 26, lambda t: self.battery_v / self.battery_divider
        )
        self._by_pin = {}
        for cm in self.channels:
            self._by_pin[cm.phase_a] = cm
            self._by_pin[cm.phase_b] = cm
            self._by_pin[cm.level_pin] = cm
        self.boost_pin = board["boost_en"]
        self.buttons = dict(board["buttons"])
        chip.pin_observers.append(self._on_pin)
        chip.analog_observers.append(self._on_analog)
        for pin in self.buttons.values():
            chip.drive_external(pin, None)

    # ---- stimulus from tests, scenarios and the simulator UI -----------------------------
    def adc_code_v(self, raw12: int) -> float:
        """The voltage at an ADC input that converts to the 12-bit code raw12, from the middle
        of that code's step (Chip.adc_read_raw12 floors v / vref * 4096): for adc_faults."""
        return (raw12 + 0.5) / 4096 * self.chip.adc_vref_v

    def set_load(self, ch: int, ohm: float) -> None:
        cm = self.channels[ch - 1]
        self._close_segment(cm, self.chip.now)
        old, cm.load_ohm = cm.load_ohm, float(ohm)
        self._open_segment(cm, self.chip.now)
        for fn in self.listeners:
            fn({"kind": "load", "ch": ch, "from_ohm": old, "ohm": cm.load_ohm})

    def press(self, name: str) -> None:
        self.chip.drive_external(self.buttons[name], 0)

    def release(self, name: str) -> None:
        self.chip.drive_external(self.buttons[name], None)

    def set_battery(self, volts: float) -> None:
        self.battery_v = float(volts)

    def set_charger(self, on: bool) -> None:
        """The charger plugged in (on) or out: drives the board's charge_detect input to its
        active level, or leaves it to the pull (a board without one has no such input)."""
        cd = self.board.get("charge_detect")
        if cd is None:
            return
        self.charger_on = bool(on)
        self.chip.drive_external(cd["pin"], cd["active"] if on else None)

    # ---- physics ------------------------------------------------------------------------
    def level_ma(self, duty: float) -> float:
        """Current-source setting for a LEVEL duty: the board's calibration table."""
        cal = self.cal
        duty = min(max(duty, 0.0), 1.0)
        for (d0, m0), (d1, m1) in zip(cal, cal[1:], strict=False):
            if duty <= d1:
                return m0 + (m1 - m0) * (duty - d0) / (d1 - d0)
        return cal[-1][1]

    def boost_v(self, t: int | None = None) -> float:
        t = self.chip.now if t is None else t
        dt = (t - self._boost_t0) / self.chip.sysclk_hz
        target = self.compliance_v if (self.boost_on and not self.boost_fault) else 0.0
        tau = self.boost_rise_s if target else self.boost_rise_s * 20  # bleeds down slowly
        return target + (self._boost_v0 - target) * math.exp(-dt / tau)

    def drive_ma(self, cm: ChannelModel, t: int | None = None) -> float:
        t = self.chip.now if t is None else t
        return self.level_ma(self.chip.analog_level(cm.level_pin, t))

    def current_a(self, cm: ChannelModel, t: int) -> float:
        if cm.phase not in (1, -1, 2):
            return 0.0
        return self._load_current_a(cm, self.drive_ma(cm, t), t)

    def _load_current_a(self, cm: ChannelModel, drive_ma: float, t: int) -> float:
        # The load physics of the product brief: I = min(I_set, V_compliance / Z_load).
        return min(drive_ma / 1000, self.boost_v(t) / max(cm.load_ohm, 1e-3))

    def _sense_source(self, cm: ChannelModel):
        def volts(t: int) -> float:
            dt = (t - cm.hold_t) / self.chip.sysclk_hz
            v = cm.hold_v * math.exp(-max(dt, 0.0) / self.hold_tau_s)
            if cm.phase in (1, -1):
                v = max(v, self.current_a(cm, t) * cm.load_ohm)
            return v / self.sense_divider

        return self._adc_source(cm.adc_channel, volts)

    def _adc_source(self, channel: int, fn):
        def read(t: int) -> float:
            if channel in self.adc_faults:
                return self.adc_faults[channel]
            v = fn(t)
            for t0, t1, dv in self.adc_spikes.get(channel, ()):
                if t0 <= t < t1:
                    v += dv
            if self.adc_noise_v:
                v += self.rng.gauss(0.0, self.adc_noise_v)
            return v

        return read

    # ---- pin observation -----------------------------------------------------------------
    def _on_pin(self, pin: int, level: int, t: int) -> None:
        if pin == self.boost_pin:
            self._boost_v0 = self.boost_v(t)
            self._boost_t0 = t
            for cm in self.channels:
                self._close_segment(cm, t)
            self.boost_on = bool(level)
            for cm in self.channels:
                self._open_segment(cm, t)
            return
        cm = self._by_pin.get(pin)
        if cm is None or pin == cm.level_pin:
            return
        a = self.chip.level(cm.phase_a)
        b = self.chip.level(cm.phase_b)
        new_phase = 2 if (a and b) else 1 if a else -1 if b else 0
        if new_phase == cm.phase:
            return
        self._close_segment(cm, t)
        old = cm.phase
        cm.phase = new_phase
        self._phase_edge(cm, old, new_phase, t)
        self._open_segment(cm, t)

    def _on_analog(self, pin: int, t: int) -> None:
        cm = self._by_pin.get(pin)
        if cm is not None and pin == cm.level_pin:
            # Every change of a LEVEL pin's filtered value (a PWM compare reaching the pin, the
            # slice enabled or stopped, the pin re-claimed) comes through here.
            cm.drive_cache = None
            if cm.phase:
                self._close_segment(cm, t)
                self._open_segment(cm, t)

    def _open_segment(self, cm: ChannelModel, t: int) -> None:
        cm.seg_t = t
        phase = cm.phase
        if phase == 0:
            cm.seg_i_a = 0.0
            return
        drive = cm.drive_cache
        if drive is None:
            drive = cm.drive_cache = self.drive_ma(cm, t)
        cm.seg_i_a = self._load_current_a(cm, drive, t)
        if phase != 2:
            cur = cm._cur
            # What the source is set to push, whether or not the load takes it (open: ~0).
            if drive > cur.get("drive_ma", 0.0):
                cur["drive_ma"] = drive
            if cm.seg_i_a > 0:
                key = "peak_a" if cm.phase == 1 else "peak_b"
                cur[key] = max(cur.get(key, 0.0), cm.seg_i_a * 1000)

    def _close_segment(self, cm: ChannelModel, t: int) -> None:
        if cm.phase == 0:
            return
        dt_s = (t - cm.seg_t) / self.chip.sysclk_hz
        i = cm.seg_i_a
        if cm.phase in (1, -1) and dt_s > 0:
            q = i * dt_s
            cm.net_charge_c += q * cm.phase
            cm.abs_charge_c += q
            if i > 0:
                cm.last_current_t = t
            cur = cm._cur
            key = "q_a" if cm.phase == 1 else "q_b"
            cur[key] = cur.get(key, 0.0) + q
            # peak-hold: the electrode voltage during this segment
            v = i * cm.load_ohm
            held = cm.hold_v * math.exp(-((t - cm.hold_t) / self.chip.sysclk_hz) / self.hold_tau_s)
            cm.hold_v = max(held, v)
            cm.hold_t = t

    def _phase_edge(self, cm: ChannelModel, old: int, new: int, t: int) -> None:
        cur = cm._cur
        ts = t / self.chip.sysclk_hz
        if new == 2:
            ev = {"rule": "SR-5", "ch": cm.index, "t": ts, "what": "PHASE_A and PHASE_B high"}
            cm.shoot_through.append(ts)
            self._violation(ev)
            return
        if new == 1:
            if "a_start" in cur:
                self._finish_pulse(cm, t)
            cm._cur = {"a_start": t}
        elif new == -1:
            if "a_end" not in cur:
                # A negative phase with no positive phase before it: an unbalanced pulse.
                cm._cur = {"a_start": None, "b_start": t}
            else:
                cur["b_start"] = t
        elif new == 0:
            if old == 1:
                cur["a_end"] = t
            elif old == -1:
                cur["b_end"] = t
                self._finish_pulse(cm, t)

    def _finish_pulse(self, cm: ChannelModel, t: int) -> None:
        cur = cm._cur
        cm._cur = {}
        f = self.chip.sysclk_hz
        a0, a1 = cur.get("a_start"), cur.get("a_end")
        b0, b1 = cur.get("b_start"), cur.get("b_end")
        if a0 is None or a1 is None or b0 is None or b1 is None:
            cm.single_phase.append(t / f)
            q = cur.get("q_a", 0.0) - cur.get("q_b", 0.0)
            if abs(q) > 0:
                self._violation(
                    {
                        "rule": "SR-4",
                        "ch": cm.index,
                        "t": t / f,
                        "what": "lone phase",
                        "net_charge_nc": q * 1e9,
                    }
                )
            return
        p = Pulse(
            t_a=a0 / f,
            width_a_s=(a1 - a0) / f,
            gap_s=(b0 - a1) / f,
            width_b_s=(b1 - b0) / f,
            peak_a_ma=cur.get("peak_a", 0.0),
            peak_b_ma=cur.get("peak_b", 0.0),
            charge_a_c=cur.get("q_a", 0.0),
            charge_b_c=cur.get("q_b", 0.0),
            drive_ma=cur.get("drive_ma", 0.0),
        )
        cm.pulses += 1
        cm.max_peak_ma = max(cm.max_peak_ma, p.peak_a_ma, p.peak_b_ma)
        cm.max_phase_charge_c = max(cm.max_phase_charge_c, p.charge_a_c, p.charge_b_c)
        if self.record_pulses:
            cm.pulse_log.append(p)
        for fn in self.listeners:
            fn({"kind": "pulse", "ch": cm.index, "pulse": p, "a_start": a0, "b_end": b1})

    def _violation(self, ev: dict) -> None:
        self.violations.append(ev)
        for fn in self.listeners:
            fn({"kind": "violation", **ev})

    # ---- summaries ----------------------------------------------------------------------
    def driven(
        self, ch: int, t0: float = 0.0, t1: float = math.inf, min_ma: float = DRIVE_MIN_MA
    ) -> list[Pulse]:
        """Recorded pulses channel ch drove (bridge pins pulsing, current source set to at
        least min_ma, whether or not the load took it) that ended after t0 and began before t1."""
        return [
            p
            for p in self.channels[ch - 1].pulse_log
            if p.drive_ma >= min_ma and p.end_s > t0 and p.t_a < t1
        ]

    def last_current_s(self, ch: int) -> float | None:
        t = self.channels[ch - 1].last_current_t
        return None if t is None else t / self.chip.sysclk_hz

    def output_active(self, ch: int) -> bool:
        cm = self.channels[ch - 1]
        return cm.phase in (1, -1, 2)

"""A pin-level trace of a simulated unit, as JSON Lines (`stimctl sim --scenario ... --trace`).

Everything here is observed at the simulated chip's pins and in the board model (the current
into the load, the LEVEL duty through the board's calibration, the pins' GPIO function),
never read from the firmware's variables. Records, each with `t` (simulated seconds since
power-on) and `kind`, in time order:

- `output` (per channel `ch`): `peak_ma` (current that reached the load), `drive_ma` (what the
  source was set to push, from LEVEL, while the bridge pins pulsed), `rate_hz`, `phase_us`,
  `gap_us`. Written when what the channel delivers or drives changes, stamped at the first
  pulse of the new state. When output stops (LEVEL to zero, bridge pins released, or no more
  pulses) a record with every field 0 is stamped at the END of the last driven pulse, so a stop
  is visible at once even at 2 Hz (records wait in TraceWriter until simulated time is
  HORIZON_S past them, so one stamped in the past still lands in order). Output still running
  when the run ends gets no zero. "Changes" (scenarios/README.md has the rationale):
    * starting or stopping, and a current crossing 0 (below DRIVE_MIN_MA counts as 0): always;
    * a current moving by more than max(CURRENT_ABS_MA, CURRENT_REL x recorded value), or a new
      value held for SETTLE_S and at least SETTLE_PULSES pulses (the end of a ramp, a step): so
      a soft start or an EMS ramp gives a few dozen records, not one per pulse;
    * timing: the fields describe the pulse train since output started: `rate_hz` its highest
      pulse rate (1 / the shortest start-to-start period), `phase_us` its widest phase,
      `gap_us` its widest gap; where the train varies more than TIMING_REL (a burst, a sweep)
      `rate_min_hz` / `phase_min_us` give the other end of the range. A record is written
      only when the range grows, so a burst or a width sweep settles after its first cycle.
    The first record of a train gets its rate from the train's first period (it is written
    once the second pulse arrives, or with rate_hz null if none does).
- `led` (`name`: status_r/g/b, ch1, ch2..., `state` 0/1) on every LED pin change;
- `feedback` (`name`: buzzer or haptic, `state` 0/1) when the buzzer's tone (PWM duty) or the
  motor's pin turns on or off: what the wearer feels or hears;
- `log` (`line`) for every line the firmware writes to its console, apart from
  `reply` (`line`): the unit's replies to host commands (docs/protocol.md);
- `host` (`sent`): bytes the host sent on the console (a scenario's `host` event);
- `violation` (`rule`, `ch`, `what`, details) when the model sees a safety rule broken
  (the first MAX_REPORTED per rule and channel; the summary counts them all):
    * SR-5: PHASE_A and PHASE_B high together (the board model's shoot-through detector);
    * SR-4: a lone phase, unequal phase widths, or unequal phase charge (a load change during
      the pulse is physics, not the engine: such a pulse is not judged); and charge left in
      the model's running net-charge account that no finished pulse explains (a pulse cut
      short by a reset or by the pins being re-claimed mid-phase);
    * SR-3: a pulse's peak current or charge per phase over the board's cap, or, over each
      whole simulated second, the rms current density or average power density (at the
      model's load) over the board's cap at its smallest electrode;
    * SR-6: output without a passed electrode check: a therapy-level pulse (drive above
      PROBE_MAX_MA) in a run of the bridge (the pins handed to PIO until taken back) that was
      not preceded, within CHECK_VALID_S, by a probe run: >= PROBE_MIN_PULSES pulses, all at
      or below PROBE_MAX_MA, into a load the model had in the good range; and output into a
      bad load: more than one therapy-level pulse started after the load left the good range;
- `summary` per channel at the end: `pulses`, `driven_pulses`, `net_charge_nc` (of the
  pulses that finished: one still under way at the end is left out), `max_peak_ma`,
  `max_phase_charge_uc`, `violations` (count per rule).
"""

from __future__ import annotations

import heapq
import json
import math
from typing import IO

from ..protocol import REPLY_PREFIX
from ..rp2sim.chip import F_PIO0, F_PIO1
from .board_model import DRIVE_MIN_MA, ChannelModel

CURRENT_ABS_MA = 0.2
CURRENT_REL = 0.10
SETTLE_PULSES = 3
SETTLE_S = 0.3
SETTLE_MA = 0.005
TIMING_REL = 0.02
TIMING_ABS_S = 1e-6
OVERDUE_S = 2.5  # longer than any period the engine makes (a 0.5 Hz burst: 2 s)
HORIZON_S = 5.0  # records are written once simulated time is this far past them
MAX_REPORTED = 10
# SR-6, from what the board shows: the pre-start probe is weak (1 mA), therapy is above it.
PROBE_MAX_MA = 1.2
PROBE_MIN_PULSES = 4
CHECK_VALID_S = 1.0
# The good electrode range (README, "Electrode checks": open above 20 kOhm, short below
# 100 Ohm), with a factor of 2 of margin so a load on the boundary is not a violation.
GOOD_LOAD_MIN_OHM = 50.0
GOOD_LOAD_MAX_OHM = 40_000.0
# SR-3 and SR-4 judging tolerances (float sums in the model).
CAP_REL = 1e-3
CHARGE_BALANCE_REL = 1e-4
CHARGE_BALANCE_ABS_C = 1e-15
ACCOUNT_TOL_C = 1e-13  # 0.1 pC
GAP_MAX_S = 0.001  # longer than any interphase gap (stim/pulse.py allows far less)


def good_load(ohm: float) -> bool:
    return GOOD_LOAD_MIN_OHM <= ohm <= GOOD_LOAD_MAX_OHM


class TraceWriter:
    """Time-ordered JSON Lines output: records wait in a heap until `flush(t)` passes them, so
    a record stamped in the past (a stop at the end of the last pulse) still lands in order."""

    def __init__(self, out: IO[str] | None = None, keep: bool = False):
        self.out = out
        self.keep = keep
        self.records: list[dict] = []
        self._heap: list = []
        self._seq = 0
        self.written = 0

    def add(self, rec: dict) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (rec["t"], self._seq, rec))

    def flush(self, before_s: float = math.inf) -> None:
        heap = self._heap
        out = self.out
        while heap and heap[0][0] <= before_s:
            rec = heapq.heappop(heap)[2]
            self.written += 1
            if self.keep:
                self.records.append(rec)
            if out is not None:
                out.write(json.dumps(rec, separators=(",", ":")) + "\n")


class _Chan:
    """What the tracer knows about one channel (all from pins and the model)."""

    def __init__(self, cm: ChannelModel):
        self.cm = cm
        self.ch = cm.index
        # output train
        self.train = False
        self.pending: dict | None = None
        self.rec: dict | None = None  # the last output record written
        self.last_start = 0  # cycles
        self.last_end_s = 0.0
        self.min_p = self.max_p = 0  # cycles, start-to-start
        self.min_w = self.max_w = 0.0  # seconds
        self.max_g = 0.0
        self.cand: tuple | None = None  # settle candidate (peak, drive, t)
        self.cand_n = 0
        self.driven = 0
        # bridge runs (pins under PIO) and the SR-6 electrode check
        self.in_run = False
        self.run_start_s = 0.0
        self.run_pulses = 0
        self.run_max_drive = 0.0
        self.run_probe_ok = True
        self.run_checked = False  # therapy in this run was preceded by a probe run
        self.probe_end_s: float | None = None
        self.bad_since: float | None = None  # the load left the good range then
        self.bad_therapy = 0
        self.load_change_s = -1.0
        # SR-4 running account: the model's net charge, less what judged pulses explain
        self.explained_c = 0.0
        self.cut_c = 0.0
        # SR-3 per-second sums
        self.sec = 0
        self.i2t = 0.0  # sum of i^2 dt (A^2 s)
        self.energy = 0.0  # J into the load
        self.violations: dict[str, int] = {}


class Tracer:
    def __init__(self, unit, writer: TraceWriter):
        self.unit = unit
        self.chip = unit.chip
        self.model = unit.model
        self.writer = writer
        self.f = self.chip.sysclk_hz
        board = unit.board
        lim = board["limits"]
        self.max_peak_ma = lim["max_peak_ma"]
        self.max_q_c = lim["max_charge_per_phase_uc"] * 1e-6
        self.area_cm2 = lim["min_electrode_area_cm2"]
        self.max_rms_ma_cm2 = lim["max_rms_ma_per_cm2"]
        self.max_w_cm2 = lim["max_power_w_per_cm2"]
        self.chans = [_Chan(cm) for cm in self.model.channels]
        self._by_phase_a = {
            cm.phase_a: c for cm, c in zip(self.model.channels, self.chans, strict=True)
        }
        self._by_level = {
            cm.level_pin: c for cm, c in zip(self.model.channels, self.chans, strict=True)
        }
        self.leds: dict[int, str] = {}
        for c, pin in board["status_led"].items():
            self.leds[pin] = "status_" + c
        for i, ch in enumerate(board["channels"]):
            self.leds[ch["led"]] = "ch%d" % (i + 1)
        self._led_state: dict[int, int] = {}
        self._gap_max = self.chip.cycles(GAP_MAX_S)
        self.fb: dict[int, str] = {board[k]: k for k in ("buzzer", "haptic") if k in board}
        self._fb_state: dict[int, int] = {}
        self.violation_count = 0
        self._reported: dict[tuple, int] = {}
        self.model.listeners.append(self._on_model)
        self.chip.pin_observers.append(self._on_pin)
        self.chip.analog_observers.append(self._on_analog)
        unit.console.listeners.append(self._on_line)
        for c in self.chans:
            if not good_load(c.cm.load_ohm):
                c.bad_since = 0.0

    # ---- stimuli -----------------------------------------------------------------------
    def _on_load(self, c: _Chan, from_ohm: float, ohm: float) -> None:
        # Load changes are stimuli from outside: note when they happen (SR-4, SR-6 judging).
        t = self.chip.t_s
        c.load_change_s = t
        was_good = good_load(from_ohm)
        if was_good and not good_load(ohm):
            c.bad_since = t
            c.bad_therapy = 0
        elif good_load(ohm):
            c.bad_since = None

    # ---- observers -----------------------------------------------------------------------
    def _on_line(self, line: str, rec) -> None:
        # Replies to host commands begin with {"r": (docs/protocol.md); everything else the
        # console prints is the firmware's log.
        kind = "reply" if line.startswith(REPLY_PREFIX) else "log"
        self.writer.add({"t": round(self.chip.t_s, 6), "kind": kind, "line": line})

    def host_sent(self, text: str) -> None:
        self.writer.add({"t": round(self.chip.t_s, 6), "kind": "host", "sent": text})

    def _feedback(self, pin: int, on: int, t: int) -> None:
        if self._fb_state.get(pin, 0) != on:
            self._fb_state[pin] = on
            self.writer.add(
                {"t": round(t / self.f, 6), "kind": "feedback", "name": self.fb[pin], "state": on}
            )

    def _on_pin(self, pin: int, level: int, t: int) -> None:
        if pin in self.fb:
            self._feedback(pin, 1 if self.chip.analog_level(pin) > 0.2 else 0, t)
            return
        name = self.leds.get(pin)
        if name is None or self._led_state.get(pin, 0) == level:
            return
        self._led_state[pin] = level
        self.writer.add({"t": round(t / self.f, 6), "kind": "led", "name": name, "state": level})

    def _on_analog(self, pin: int, t: int) -> None:
        if pin in self.fb:
            self._feedback(pin, 1 if self.chip.analog_level(pin) > 0.2 else 0, t)
            return
        c = self._by_level.get(pin)
        if c is not None:
            if c.train and self.model.drive_ma(c.cm, t) < DRIVE_MIN_MA:
                self._end_train(c)
            return
        c = self._by_phase_a.get(pin)
        if c is None:
            return
        pio = self.chip.gpio[pin].func in (F_PIO0, F_PIO1)
        if pio and not c.in_run:
            c.in_run = True
            c.run_start_s = t / self.f
            c.run_pulses = 0
            c.run_max_drive = 0.0
            c.run_probe_ok = True
            c.run_checked = False
        elif not pio and c.in_run:
            if c.train:
                self._end_train(c)
            self._end_run(c, t / self.f)

    def _end_run(self, c: _Chan, t_s: float) -> None:
        c.in_run = False
        if (
            c.run_pulses >= PROBE_MIN_PULSES
            and c.run_probe_ok
            and DRIVE_MIN_MA <= c.run_max_drive <= PROBE_MAX_MA
        ):
            c.probe_end_s = t_s
        elif c.run_max_drive > PROBE_MAX_MA:
            c.probe_end_s = None  # a check is good for one start

    def _on_model(self, ev: dict) -> None:
        if ev["kind"] == "pulse":
            self._on_pulse(self.chans[ev["ch"] - 1], ev["pulse"], ev["a_start"])
        elif ev["kind"] == "load":
            self._on_load(self.chans[ev["ch"] - 1], ev["from_ohm"], ev["ohm"])
        else:
            rec = {k: v for k, v in ev.items() if k != "kind"}
            c = self.chans[rec.pop("ch") - 1]
            if "net_charge_nc" in rec:  # a lone phase, finished by the model at the next pulse
                q = rec["net_charge_nc"] * 1e-9
                if c.cut_c and abs(c.cut_c - q) <= ACCOUNT_TOL_C:
                    c.cut_c = 0.0  # already reported by the account as a pulse cut short
                    return
                c.explained_c += q
            self.violation(c, rec.pop("rule"), rec.pop("t"), **rec)

    # ---- violations ----------------------------------------------------------------------
    def violation(self, c: _Chan, rule: str, t_s: float, **detail) -> None:
        self.violation_count += 1
        c.violations[rule] = c.violations.get(rule, 0) + 1
        key = (rule, c.ch)
        n = self._reported.get(key, 0)
        self._reported[key] = n + 1
        if n < MAX_REPORTED:
            rec = {"t": round(t_s, 6), "kind": "violation", "rule": rule, "ch": c.ch}
            for k, v in detail.items():
                rec[k] = round(v, 6) if isinstance(v, float) else v
            self.writer.add(rec)

    # ---- pulses --------------------------------------------------------------------------
    def _on_pulse(self, c: _Chan, p, a0: int) -> None:
        drive = p.drive_ma
        peak = p.peak_a_ma if p.peak_a_ma > p.peak_b_ma else p.peak_b_ma
        t_a = p.t_a
        # -- SR-3 caps
        if peak > self.max_peak_ma + 0.01:
            self.violation(c, "SR-3", t_a, what="peak current", peak_ma=peak)
        q = p.charge_a_c if p.charge_a_c > p.charge_b_c else p.charge_b_c
        if q > self.max_q_c * (1 + CAP_REL):
            self.violation(c, "SR-3", t_a, what="charge per phase", charge_uc=q * 1e6)
        sec = int(t_a)
        if sec != c.sec:
            self._check_second(c)
            c.sec = sec
        i2t = p.charge_a_c * p.peak_a_ma / 1000 + p.charge_b_c * p.peak_b_ma / 1000
        c.i2t += i2t
        c.energy += i2t * c.cm.load_ohm
        # -- SR-4 balance (a load change during the pulse, or nanoamps into an open load, is
        # physics, not the engine: such pulses go into the account as explained)
        if (
            drive < DRIVE_MIN_MA
            or t_a <= c.load_change_s <= p.end_s
            or (c.bad_since is not None and peak < DRIVE_MIN_MA)
        ):
            c.explained_c += p.net_charge_c
        elif abs(p.width_a_s - p.width_b_s) * self.f >= 0.5:
            c.explained_c += p.net_charge_c  # reported here, not again by the account
            self.violation(
                c,
                "SR-4",
                t_a,
                what="unequal phase widths",
                phase_a_us=p.width_a_s * 1e6,
                phase_b_us=p.width_b_s * 1e6,
            )
        elif (
            abs(p.net_charge_c)
            > CHARGE_BALANCE_REL * (p.charge_a_c + p.charge_b_c) + CHARGE_BALANCE_ABS_C
        ):
            c.explained_c += p.net_charge_c
            nc = p.net_charge_c * 1e9
            self.violation(c, "SR-4", t_a, what="net charge", net_charge_nc=nc)
        # -- SR-6 electrode check
        if c.in_run:
            c.run_pulses += 1
            if drive > c.run_max_drive:
                c.run_max_drive = drive
            if not good_load(c.cm.load_ohm) or c.load_change_s >= t_a:
                c.run_probe_ok = False
        if drive > PROBE_MAX_MA:
            if not c.run_checked:
                ok = (
                    c.probe_end_s is not None
                    and c.run_start_s - c.probe_end_s <= CHECK_VALID_S
                    and c.run_start_s >= c.probe_end_s
                )
                c.run_checked = True  # judged once per run
                c.probe_end_s = None
                if not ok:
                    self.violation(
                        c, "SR-6", t_a, what="output without a passed electrode check",
                        drive_ma=drive,
                    )  # fmt: skip
            if c.bad_since is not None and t_a >= c.bad_since:
                c.bad_therapy += 1
                if c.bad_therapy == 2:
                    self.violation(
                        c,
                        "SR-6",
                        t_a,
                        what="output into a bad load",
                        load_ohm=c.cm.load_ohm,
                        since_s=c.bad_since,
                        drive_ma=drive,
                    )
        # -- output records
        if drive < DRIVE_MIN_MA:
            if c.train:
                self._end_train(c)
            return
        c.driven += 1
        if peak < DRIVE_MIN_MA:
            peak = 0.0
        w = p.width_a_s
        g = p.gap_s
        if not c.train:
            c.train = True
            c.min_p = c.max_p = 0
            c.min_w = c.max_w = w
            c.max_g = g
            c.pending = self._record(c, t_a, peak, drive)
            c.rec = None
            c.cand = (peak, drive, t_a)
            c.cand_n = 1
            c.last_start = a0
            c.last_end_s = p.end_s
            return
        period = a0 - c.last_start
        c.last_start = a0
        c.last_end_s = p.end_s
        grew = False
        if c.min_p == 0:
            c.min_p = c.max_p = period
        elif period < c.min_p * (1 - TIMING_REL):
            c.min_p, grew = period, True
        elif period > c.max_p * (1 + TIMING_REL):
            c.max_p, grew = period, True
        if w > c.max_w * (1 + TIMING_REL) + TIMING_ABS_S:
            c.max_w, grew = w, True
        elif w < c.min_w * (1 - TIMING_REL) - TIMING_ABS_S:
            c.min_w, grew = w, True
        if g > c.max_g * (1 + TIMING_REL) + TIMING_ABS_S:
            c.max_g, grew = g, True
        if c.pending is not None:
            rec = c.pending
            c.pending = None
            self._timing(c, rec)
            self._write(c, rec)
            grew = False
        # settle candidate
        cand = c.cand
        if (
            cand is not None
            and abs(cand[0] - peak) <= SETTLE_MA
            and abs(cand[1] - drive) <= SETTLE_MA
        ):
            c.cand_n += 1
        else:
            c.cand = cand = (peak, drive, t_a)
            c.cand_n = 1
        rec = c.rec
        assert rec is not None
        if grew or _moved(rec["peak_ma"], peak) or _moved(rec["drive_ma"], drive):
            self._write(c, self._record(c, t_a, peak, drive, timing=True))
        elif (
            c.cand_n >= SETTLE_PULSES
            and t_a - cand[2] >= SETTLE_S
            and (
                abs(rec["peak_ma"] - round(cand[0], 3)) > SETTLE_MA
                or abs(rec["drive_ma"] - round(cand[1], 3)) > SETTLE_MA
            )
        ):
            self._write(c, self._record(c, cand[2], cand[0], cand[1], timing=True))

    def _record(self, c: _Chan, t_s: float, peak: float, drive: float, timing=False) -> dict:
        rec = {
            "t": round(t_s, 6),
            "kind": "output",
            "ch": c.ch,
            "peak_ma": round(peak, 3),
            "drive_ma": round(drive, 3),
            "rate_hz": None,
            "phase_us": round(c.max_w * 1e6, 3),
            "gap_us": round(c.max_g * 1e6, 3),
        }
        if timing:
            self._timing(c, rec)
        return rec

    def _timing(self, c: _Chan, rec: dict) -> None:
        f = self.f
        rec["rate_hz"] = round(f / c.min_p, 3) if c.min_p else None
        rec["phase_us"] = round(c.max_w * 1e6, 3)
        rec["gap_us"] = round(c.max_g * 1e6, 3)
        if c.min_p and c.max_p > c.min_p * (1 + TIMING_REL):
            rec["rate_min_hz"] = round(f / c.max_p, 3)
        if c.min_w < c.max_w * (1 - TIMING_REL) - TIMING_ABS_S:
            rec["phase_min_us"] = round(c.min_w * 1e6, 3)

    def _write(self, c: _Chan, rec: dict) -> None:
        c.rec = rec
        self.writer.add(rec)

    def _end_train(self, c: _Chan) -> None:
        if c.pending is not None:
            self._write(c, c.pending)
            c.pending = None
        c.train = False
        c.cand = None
        c.rec = None
        self.writer.add(
            {
                "t": round(c.last_end_s, 6),
                "kind": "output",
                "ch": c.ch,
                "peak_ma": 0.0,
                "drive_ma": 0.0,
                "rate_hz": 0.0,
                "phase_us": 0.0,
                "gap_us": 0.0,
            }
        )

    def _check_second(self, c: _Chan) -> None:
        if not c.i2t:
            return
        rms_ma_cm2 = math.sqrt(c.i2t) * 1000 / self.area_cm2  # over one second
        w_cm2 = c.energy / self.area_cm2
        t = float(c.sec)
        if rms_ma_cm2 > self.max_rms_ma_cm2 * (1 + CAP_REL):
            self.violation(c, "SR-3", t, what="rms current density", rms_ma_per_cm2=rms_ma_cm2)
        if w_cm2 > self.max_w_cm2 * (1 + CAP_REL):
            self.violation(c, "SR-3", t, what="power density", w_per_cm2=w_cm2)
        c.i2t = 0.0
        c.energy = 0.0

    # ---- driving -------------------------------------------------------------------------
    def poll(self) -> None:
        """Between steps of the run: stops seen by the absence of pulses, then write out."""
        now = self.chip.t_s
        for c in self.chans:
            if c.train and now - c.last_end_s > OVERDUE_S:
                self._end_train(c)
            if int(now) > c.sec:
                self._check_second(c)  # a second with no pulse after it is judged now
            self._check_account(c)
        self.writer.flush(now - HORIZON_S)

    def _check_account(self, c: _Chan) -> None:
        """SR-4: charge in the model's running account that no finished pulse explains: a
        pulse cut short (a reset, the pins re-claimed mid-phase) left it in the skin."""
        cm = c.cm
        if cm.phase != 0:
            return  # a pulse in progress
        a_end = cm._cur.get("a_end")
        if a_end is not None and "b_end" not in cm._cur and self.chip.now - a_end < self._gap_max:
            # Between the phases of a pulse (its interphase gap): phase A is in the account,
            # B not yet. Only a B that has not come well after the longest gap is a cut.
            return
        residual = cm.net_charge_c - c.explained_c
        if abs(residual) > ACCOUNT_TOL_C:
            c.explained_c += residual
            c.cut_c = residual
            self.violation(
                c,
                "SR-4",
                cm.seg_t / self.f,
                what="net charge left by a pulse cut short",
                net_charge_nc=residual * 1e9,
            )

    def finish(self) -> list[dict]:
        """End of the run: write what is pending and the summaries; returns them."""
        now = self.chip.t_s
        out = []
        for c in self.chans:
            # A train still running when the run ends did not stop: no zero record for it.
            if c.pending is not None:
                self._write(c, c.pending)
                c.pending = None
            self._check_second(c)
            self._check_account(c)
            cm = c.cm
            # A pulse still under way when the run ends has not had its second phase yet: its
            # charge so far is not a balance error.
            cur = cm._cur
            q_open = cur.get("q_a", 0.0) - cur.get("q_b", 0.0) if "b_end" not in cur else 0.0
            rec = {
                "t": round(now, 6),
                "kind": "summary",
                "ch": c.ch,
                "pulses": cm.pulses,
                "driven_pulses": c.driven,
                "net_charge_nc": (cm.net_charge_c - q_open) * 1e9,
                "max_peak_ma": round(cm.max_peak_ma, 4),
                "max_phase_charge_uc": round(cm.max_phase_charge_c * 1e6, 6),
                "violations": dict(sorted(c.violations.items())),
            }
            self.writer.add(rec)
            out.append(rec)
        self.writer.flush()
        # The observation ends here: what the unit does while it is torn down afterwards (the
        # firmware unwinding and re-claiming its pins, perhaps in the middle of a pulse that
        # began after the end) belongs to no scenario and is not judged.
        self.model.listeners.remove(self._on_model)
        self.chip.pin_observers.remove(self._on_pin)
        return out


def _moved(old: float, new: float) -> bool:
    """A current change worth a record: across zero, or beyond the dead band."""
    if (old == 0.0) != (new == 0.0):
        return True
    return abs(new - old) > max(CURRENT_ABS_MA, CURRENT_REL * old)

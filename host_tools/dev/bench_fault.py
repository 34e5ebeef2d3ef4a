"""Electrode-fault benchmark (SR-6): the `fault` section of bench/results.json.

The whole firmware runs on the simulated pico board. Both channels run a program at step 10
(15 mA) into 1 kohm; then the board model lifts (1 Gohm) or shorts (1 ohm) channel 1's load at
an instant swept across one pulse period. Measured at the load model, never from the firmware:

- `*_to_zero_ms`: from the load change to the end of the last pulse the channel still drove
  (bridge pins pulsing with the current source set above 0.05 mA). For a short that is the last
  current into the load; for an open, the current stops at the lift itself, and what matters is
  that the drive stops too, before the electrode can touch the skin again. 0 when no pulse ended
  after the change.
- `missed_opens`: open-electrode trials (every program, random steps, instants and a noisy ADC)
  where the channel drove more than one pulse at or above the judging current (0.8 mA) after
  the lift, or drove one and logged no open fault. Weaker pulses are not judged (SR-6).
- `false_trips_per_hour`: electrode faults and partial-lift actions on good, steady 1 kohm loads
  with 5 mV rms ADC noise, per channel-hour of simulated output.

Limits (DESIGN.md SR-6, issue "electrode impedance checks"): to zero within one pulse period,
and <= 10 ms at 100 Hz (20 ms for rates >= 50 Hz in SR-6); no missed opens.
"""

from __future__ import annotations

import random
import time

from ..sim.board_model import DRIVE_MIN_MA
from ..sim.unit import SimulatedUnit

BOARD = "pico"
STEPS = 10
RUN_S = 6.0  # earliest change: both channels at their step (check + 2 s soft start)
JUDGE_MIN_MA = 0.8  # stim/electrode.py MIN_JUDGE_MA: weaker pulses are not judged
NOISE_V = 0.005
TARGET_MS = 10.0  # open or short to zero at 100 Hz: one period (the fault-reaction target)
SR6_LIMIT_MS = 20.0  # SR-6 at rates of 50 Hz and above
PERIOD_2HZ_MS = 500.0  # SR-6: within one pulse period, at 2 Hz
# (label, MODE presses from the first program, period in s)
RATES = (("100hz", 0, 0.010), ("2hz", 1, 0.5))
KINDS = (("open", 1e9), ("short", 1.0))
PROGRAMS = 6


def _unit(mode_presses: int, steps: int = STEPS, seed: int = 0, noise_v: float = 0.0):
    """A unit switched on, the program chosen, both channels at `steps`: (unit, t_ready_s),
    where t_ready_s is after the last press and the soft start."""
    unit = SimulatedUnit(BOARD, load_ohm={1: 1000.0, 2: 1000.0}, record_pulses=True, seed=seed)
    unit.model.adc_noise_v = noise_v
    unit.press("power", at=0.5, hold_s=1.7)
    t = 2.4
    for _ in range(mode_presses):
        unit.press("mode", at=t)
        t += 0.25
    t += 0.25
    for _ in range(steps):
        unit.press("plus", at=t)
        t += 0.2
    return unit, max(RUN_S, t + 2.5)


def _driven_after(unit, ch: int, t: float) -> list:
    return unit.model.driven(ch, t)


def _last_current_after(unit, ch: int, t: float) -> float:
    ends = [
        p.end_s
        for p in unit.model.channels[ch - 1].pulse_log
        if p.peak_ma >= DRIVE_MIN_MA and p.end_s > t
    ]
    return max(ends) - t if ends else 0.0


def _faults(unit) -> list[str]:
    return [e["fault"] for e in unit.logs("electrode") if e["ch"] == 1]


def _pulse_phase(mode_presses: int) -> tuple[float, float, float]:
    """(t_ready, start of the first pulse after it, pulse duration) of the deterministic unit
    every trial builds: the change instants are placed relative to its pulses."""
    unit, t_ready = _unit(mode_presses)
    try:
        unit.run_until(t_ready + 1.2)
        p = next(p for p in unit.model.channels[0].pulse_log if p.t_a >= t_ready)
        return t_ready, p.t_a, p.end_s - p.t_a
    finally:
        unit.close()


def reaction(mode_presses: int, period_s: float, ohm: float, offsets: int) -> dict:
    """Worst and mean time to zero over change instants spread over one period, plus instants
    inside a pulse (where a short is seen one pulse later: the worst case)."""
    times, currents, pulses_after = [], [], 0
    _, t_pulse, pulse_s = _pulse_phase(mode_presses)
    instants = [period_s * (k + 0.5) / offsets for k in range(offsets)]
    instants += [pulse_s * f for f in (0.02, 0.25, 0.5, 0.75, 0.98)]
    for off in instants:
        unit, _ = _unit(mode_presses)
        t_change = t_pulse + off
        try:
            unit.at(t_change, unit.model.set_load, 1, ohm)
            unit.run_until(t_change + period_s + 0.2)
            after = _driven_after(unit, 1, t_change)
            pulses_after = max(pulses_after, sum(1 for p in after if p.t_a >= t_change))
            times.append(max((p.end_s for p in after), default=t_change) - t_change)
            currents.append(_last_current_after(unit, 1, t_change))
        finally:
            unit.close()
    return {
        "worst_ms": round(max(times) * 1000, 3),
        "mean_ms": round(sum(times) / len(times) * 1000, 3),
        "last_current_worst_ms": round(max(currents) * 1000, 3),
        "pulses_started_after_change": pulses_after,
        "trials": len(instants),
        "period_ms": period_s * 1000,
        "pulse_ms": round(pulse_s * 1000, 3),
    }


def missed_opens(trials: int, seed: int = 1) -> dict:
    rng = random.Random(seed)
    missed = []
    for i in range(trials):
        prog = rng.randrange(PROGRAMS)
        steps = rng.randint(2, 20)
        unit, t_ready = _unit(prog, steps=steps, seed=i, noise_v=NOISE_V)
        try:
            t_change = t_ready + rng.random() * 0.5
            unit.at(t_change, unit.model.set_load, 1, 1e9)
            # Long enough for an EMS rest (10 s) to end: the lift may fall in one.
            unit.run_until(t_change + 12.0)
            judged = [p for p in _driven_after(unit, 1, t_change) if p.drive_ma >= JUDGE_MIN_MA]
            # The first pulse strong enough to judge finds the open; no pulse may follow it.
            if judged and (len(judged) > 1 or "open" not in _faults(unit)):
                missed.append({"program": prog, "steps": steps, "t": round(t_change, 4)})
        finally:
            unit.close()
    return {"trials": trials, "missed": missed}


def false_trips(minutes_per_program: float, programs=(0, 2, 5)) -> dict:
    trips, channel_s = [], 0.0
    for prog in programs:
        unit, t_ready = _unit(prog, seed=prog, noise_v=NOISE_V)
        try:
            unit.run_until(t_ready + 60 * minutes_per_program)
            for e in unit.logs("electrode") + unit.logs("electrode_lift"):
                trips.append({"program": prog, "ev": e["ev"], "ch": e["ch"], "t": e["t"]})
            channel_s += 2 * 60 * minutes_per_program
        finally:
            unit.close()
    hours = channel_s / 3600
    return {"trips": trips, "channel_hours": round(hours, 3), "per_hour": len(trips) / hours}


def measure_fault(offsets_100hz: int = 20, offsets_2hz: int = 8, open_trials: int = 30,
                  noise_minutes: float = 5.0) -> dict:  # fmt: skip
    t0 = time.perf_counter()
    by_rate = {}
    for label, presses, period_s in RATES:
        n = offsets_100hz if period_s < 0.1 else offsets_2hz
        by_rate[label] = {kind: reaction(presses, period_s, ohm, n) for kind, ohm in KINDS}
    opens = missed_opens(open_trials)
    noise = false_trips(noise_minutes)
    r100, r2 = by_rate["100hz"], by_rate["2hz"]
    out = {
        "board": BOARD,
        "load_ohm": 1000.0,
        "step": STEPS,
        "open_to_zero_ms": r100["open"]["worst_ms"],
        "short_to_zero_ms": r100["short"]["worst_ms"],
        "open_to_zero_ms_2hz": r2["open"]["worst_ms"],
        "short_to_zero_ms_2hz": r2["short"]["worst_ms"],
        "by_rate": by_rate,
        "missed_opens": len(opens["missed"]),
        "open_trials": opens,
        "false_trips_per_hour": round(noise["per_hour"], 3),
        "false_trip_run": noise,
        "noise_v_rms": NOISE_V,
    }
    out["pass"] = {
        "100hz_within_10ms": max(out["open_to_zero_ms"], out["short_to_zero_ms"]) <= TARGET_MS,
        "100hz_within_20ms_sr6": max(out["open_to_zero_ms"], out["short_to_zero_ms"])
        <= SR6_LIMIT_MS,
        "2hz_within_one_period": max(out["open_to_zero_ms_2hz"], out["short_to_zero_ms_2hz"])
        <= PERIOD_2HZ_MS,
        "no_missed_opens": out["missed_opens"] == 0,
    }
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def print_fault(f: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="Electrode faults to zero output (SR-6), board %s" % f["board"])
    for col in ("rate", "fault", "worst ms", "mean ms", "period ms", "pulses after"):
        table.add_column(col, justify="right")
    for rate, kinds in f["by_rate"].items():
        for kind, r in kinds.items():
            table.add_row(
                rate,
                kind,
                "%.3f" % r["worst_ms"],
                "%.3f" % r["mean_ms"],
                "%g" % r["period_ms"],
                str(r["pulses_started_after_change"]),
            )
    console.print(table)
    console.print(
        "missed opens: %d of %d trials; false trips: %.3f per channel-hour (%g h, %g V rms noise)"
        % (
            f["missed_opens"],
            f["open_trials"]["trials"],
            f["false_trips_per_hour"],
            f["false_trip_run"]["channel_hours"],
            f["noise_v_rms"],
        )
    )

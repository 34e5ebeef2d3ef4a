"""What only a chip honest about time shows: the `ramp` and `flash` sections of
bench/results.json, measured on the simulated chip with its CPU and flash models (the whole
firmware on board pico, 1 kohm loads).

- `ramp`: every pulse period during soft starts (TENS conventional at 100 Hz, both channels
  raised to step 6, then MINUS and PLUS) and during EMS strength's ramps (50 Hz, its 1.5 s ramps
  up and 1 s ramps down over three contractions), against the program's period, from the
  board model's pulses. `worst_period_error_ppm` is the largest |period - planned| / planned;
  a LEVEL change that held the state machine would show as a stretched period. Target 100 ppm
  (issue: aim for 1).
- `flash` (SR-14): four sessions, each with six channel changes (MODE held: a settings save),
  a pause and a resume, ending by MINUS to zero (a history record, appended to a history file
  that lives in its own blocks), with the typical and with the worst-case flash timing (400 ms
  erases, 3 ms page programs). `writes_during_output` counts the boot ROM's erase and program
  operations while either channel's output could run (from its first to its last pulse, plus
  a period); target 0. `power_to_zero_ms` is the worst time from a POWER press to zero output
  over presses at the moments of each flash write (1 ms in) and of each channel change; target
  20 ms (SR-7).
"""

from __future__ import annotations

import time

from ..rp2sim.flashmodel import FlashTiming
from ..sim.unit import SimulatedUnit

BOARD = "pico"
RAMP_TARGET_PPM = 100.0
POWER_TARGET_MS = 20.0


def _unit(settings: str | None = None, history: int = 0) -> SimulatedUnit:
    import json

    from ..boards import load_board

    b = load_board(BOARD)
    files: dict[str, bytes | str] = {"/board.json": json.dumps(b)}
    if settings:
        files["/settings.json"] = json.dumps(
            {"program": settings, "session_min": 30, "channels": "both"}
        )
    if history:  # earlier sessions' records: the file lives in blocks, an append erases one
        rec = {"start": 1_700_000_000, "program": "tens_conventional", "max_step": [4, 4]}
        rec.update({"faults": [], "min": 30.0, "end": "timer"})
        files["/history.jsonl"] = "".join(json.dumps(rec) + "\n" for _ in range(history))
    unit = SimulatedUnit(b, files=files, load_ohm={1: 1000.0, 2: 1000.0})
    unit.press("power", at=0.5, hold_s=1.7)
    return unit


def _periods(unit, ch: int, t0: float, t1: float) -> list[float]:
    ps = [p for p in unit.model.channels[ch - 1].pulse_log if t0 <= p.t_a < t1]
    return [b.t_a - a.t_a for a, b in zip(ps, ps[1:], strict=False)]


def measure_ramp() -> dict:
    wall0 = time.perf_counter()
    out: dict[str, dict] = {}
    # TENS conventional: soft start to step 6, a decrease, an increase (each a soft change).
    unit = _unit("tens_conventional")
    for i in range(6):
        unit.press("plus", at=2.5 + 0.3 * i)
    unit.press("minus", at=6.5)
    unit.press("plus", at=7.5)
    unit.run_until(9.0)
    worst = 0.0
    n = 0
    for ch in (1, 2):
        t_start = [r["sim_t"] for r in unit.logs("start") if r["ch"] == ch][0]
        for p in _periods(unit, ch, t_start, 9.0):
            worst = max(worst, abs(p - 0.010) / 0.010 * 1e6)
            n += 1
    unit.close()
    out["soft_start"] = {"program": "tens_conventional", "periods": n, "worst_ppm": worst}
    # EMS strength: three contractions, each with its ramps.
    unit = _unit("ems_strength")
    for i in range(6):
        unit.press("plus", at=2.5 + 0.3 * i)
    unit.run_until(50.0)
    worst = 0.0
    n = 0
    for ch in (1, 2):
        for p in _periods(unit, ch, 3.0, 50.0):
            if p < 0.030:  # inside a contraction (the rest is not a period)
                worst = max(worst, abs(p - 0.020) / 0.020 * 1e6)
                n += 1
    unit.close()
    out["ems_ramps"] = {"program": "ems_strength", "periods": n, "worst_ppm": worst}
    worst = max(float(r["worst_ppm"]) for r in out.values())
    return {
        "board": BOARD,
        "cpu_model": True,
        "worst_period_error_ppm": round(worst, 3),
        "by_case": {k: {**v, "worst_ppm": round(v["worst_ppm"], 3)} for k, v in out.items()},
        "target_ppm": RAMP_TARGET_PPM,
        "pass": {"all": worst <= RAMP_TARGET_PPM},
        "wall_s": round(time.perf_counter() - wall0, 1),
    }


CHANGES = 6  # channel changes (MODE held) per session, each a settings save
SESSIONS = 4


def _flash_session(timing: FlashTiming, press_at: float | None = None) -> SimulatedUnit:
    """SESSIONS sessions, each with CHANGES channel changes (MODE held) and a pause and
    resume, ended by MINUS down to zero (a history record); POWER pressed at press_at."""
    unit = _unit("tens_conventional", history=20)
    unit.fs.timing = timing
    t = 2.5
    for _ in range(SESSIONS):
        for i in range(4):
            unit.press("plus", at=t + 0.3 * i)
        t += 3.5
        for _ in range(CHANGES):
            unit.press("mode", at=t, hold_s=1.2)  # the next channel selection
            t += 1.5
        unit.press("power", at=t)  # pause: output off, the saves are written now
        unit.press("power", at=t + 1.0)  # resume
        t += 3.5
        for i in range(6):
            unit.press("minus", at=t + 0.5 * i)  # down to zero: the session ends
        t += 4.0
    if press_at is not None:
        unit.press("power", at=press_at)
    unit.run_until(t)
    return unit


def _output_spans(unit) -> list[tuple[float, float]]:
    """When either channel could deliver: from its first pulse to its last pulse's end, plus
    the 2 ms a stop takes to make the pins safe after it."""
    ps = sorted((p.t_a, p.end_s) for cm in unit.model.channels for p in cm.pulse_log)
    spans: list[list[float]] = []
    for a, b in ps:
        if spans and a - spans[-1][1] < 0.6:  # the slowest program pulses every 0.5 s
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    return [(a, b + 0.002) for a, b in spans]


def measure_flash() -> dict:
    wall0 = time.perf_counter()
    cases = {}
    worst_ms = 0.0
    writes_on = 0
    for name, timing in (("typical", FlashTiming()), ("worst", FlashTiming.worst())):
        unit = _flash_session(timing)
        f = unit.chip.sysclk_hz
        spans = _output_spans(unit)
        ops = [(t / f, kind) for t, kind, _path, _c in unit.fs.rom_log if t / f > 2.0]
        during = [o for o in ops if any(a <= o[0] <= b for a, b in spans)]
        writes_on += len(during)
        instants = [t + 0.001 for t, kind in ops if kind == "erase"][:6]
        instants += [6.0 + 1.5 * k + 0.0037 * k for k in range(CHANGES)]  # at the changes
        unit.close()
        press_ms = []
        for t_press in instants:
            u = _flash_session(timing, press_at=t_press)
            ends = [p.end_s for cm in u.model.channels for p in cm.pulse_log if p.end_s > t_press]
            ends = [e for e in ends if e < t_press + 1.0]
            press_ms.append(max(ends, default=t_press) - t_press)
            u.close()
        worst = max(press_ms) * 1000
        worst_ms = max(worst_ms, worst)
        cases[name] = {
            "erase_ms": timing.erase_us / 1000,
            "page_ms": timing.page_us / 1000,
            "rom_operations": len(ops),
            "erases": sum(1 for o in ops if o[1] == "erase"),
            "writes_during_output": len(during),
            "presses": len(instants),
            "power_to_zero_ms": round(worst, 3),
        }
    return {
        "board": BOARD,
        "writes_during_output": writes_on,
        "power_to_zero_ms": round(worst_ms, 3),
        "by_timing": cases,
        "targets": {"writes_during_output": 0, "power_to_zero_ms": POWER_TARGET_MS},
        "pass": {"all": writes_on == 0 and worst_ms <= POWER_TARGET_MS},
        "wall_s": round(time.perf_counter() - wall0, 1),
    }


def print_ramp(r: dict, console=None) -> None:
    from rich.console import Console

    console = console or Console()
    verdict = "[bold green]PASS[/]" if r["pass"]["all"] else "[bold red]FAIL[/]"
    parts = [
        "%s %d periods, worst %.3f ppm" % (k, v["periods"], v["worst_ppm"])
        for k, v in r["by_case"].items()
    ]
    console.print(
        "%s  ramps on the simulated chip (CPU model): %s (target %g ppm)"
        % (verdict, "; ".join(parts), r["target_ppm"])
    )


def print_flash(r: dict, console=None) -> None:
    from rich.console import Console

    console = console or Console()
    verdict = "[bold green]PASS[/]" if r["pass"]["all"] else "[bold red]FAIL[/]"
    parts = [
        "%s flash (%g ms erase): %d ROM operations, %d erases, %d during output, POWER %.3f ms"
        % (
            k,
            v["erase_ms"],
            v["rom_operations"],
            v["erases"],
            v["writes_during_output"],
            v["power_to_zero_ms"],
        )
        for k, v in r["by_timing"].items()
    ]
    console.print("%s  SR-14: %s (targets: 0 writes, %g ms)" % (verdict, "; ".join(parts), 20))

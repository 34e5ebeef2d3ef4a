"""The test report: report/index.html and report/index.md, regenerated from a fresh clone.

    python -m host_tools.dev.report [--tests run|reuse] [--bench auto|run|reuse] [--out report]

(`make report` runs it with the defaults.) In order:

1. **Tests**: the whole suite (`pytest`); each test's outcome lands in build/test-results.json
   (host_tools/dev/trace_plugin.py). `--tests reuse` takes the last results instead.
2. **Benchmarks**: `bench/results.json` is reused when it was measured on exactly the current
   inputs (a sha256 over firmware/, boards/, the benchmark and simulator sources and the
   MicroPython VM lock file, stored under `inputs` in the file by the report's own bench run);
   otherwise `make bench` runs first (about a minute). `--bench run` always measures, `--bench
   reuse` takes the file as it is and marks it stale when it is.
3. **Scenarios**: when the scenario runner is present (`scenarios/*.json` and `stimctl sim
   --scenario`), every scenario runs headless with its trace in report/scenarios/, and its exit
   status and violations are listed.
4. **Pictures**: every built-in program drawn from the simulated pico (`stimctl plot`).
5. **Output table** (a stimulator technical file's output characteristics): for every board in
   boards/, every program at its maximum intensity step (stim.limits.max_step: the highest
   step the firmware accepts), into 500 Ω, 2 kΩ and 10 kΩ: peak current, charge per phase, net
   charge per pulse, rms current density and average power density over the worst 1 s, measured
   on the board model from the firmware pulse engine's pins, with the compliance voltage
   limiting the current at high load. The engine's own pulse-by-pulse electrode check is off
   for these figures (they describe the output stage); the "firmware" column says what the
   unit itself does at that load with the check on.
6. The traceability matrix (host_tools/dev/traceability.py) and the figures of the last fuzz run.

The report directory is build output (gitignored): regenerate it rather than commit it.
Exit status 1 when a test or a scenario failed or the traceability check failed; benchmark
targets missed are listed in the report and printed, not turned into a failure. The report is
written in every case.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import bench_fault as ft
from . import traceability as tracemod

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "report"
BENCH = ROOT / "bench" / "results.json"
FUZZ_DIR = ROOT / "build" / "fuzz"  # last-run-<k>-of-<n>.json: one per shard of the fuzz
LOADS_OHM = (500.0, 2000.0, 10000.0)
PICTURE_WINDOWS_S = {"tens_acupuncture": 2.0, "ems_strength": 16.0}
OUTPUT_WINDOW_S = {"tens_acupuncture": 2.0, "ems_strength": 15.0}
BENCH_INPUTS = (
    "firmware",
    "boards",
    "host_tools/dev/bench.py",
    "host_tools/dev/bench_fault.py",
    "host_tools/dev/bench_stop.py",
    "host_tools/dev/bench_memory.py",
    "host_tools/dev/bench_sim.py",
    "host_tools/dev/bench_host.py",
    "host_tools/dev/bench_realchip.py",
    "host_tools/flash.py",
    "host_tools/vboard",
    "scenarios",
    "host_tools/rp2sim",
    "host_tools/sim",
    "host_tools/mpvm",
    "package-lock.json",
    "requirements.txt",
)


# ---- document model: one list of blocks, rendered as Markdown and as HTML -----------------------
class Doc:
    def __init__(self):
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))

    def table(self, header: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", header, [[str(c) for c in r] for r in rows]))

    def img(self, src: str, alt: str) -> None:
        self.blocks.append(("img", src, alt))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "ul":
                out.append("\n".join("- " + i for i in b[1]))
            elif b[0] == "table":
                out.append("| " + " | ".join(b[1]) + " |")
                out[-1] += "\n|" + "---|" * len(b[1])
                for r in b[2]:
                    out[-1] += "\n| " + " | ".join(c.replace("|", "\\|") for c in r) + " |"
            elif b[0] == "img":
                out.append("![%s](%s)" % (b[2], b[1]))
            out.append("")
        return "\n".join(out)

    def html(self, title: str) -> str:
        def inline(s: str) -> str:
            s = html.escape(s, quote=False)
            parts = s.split("`")
            s = "".join(("<code>%s</code>" % x) if i % 2 else x for i, x in enumerate(parts))
            parts = s.split("**")
            return "".join(("<b>%s</b>" % x) if i % 2 else x for i, x in enumerate(parts))

        out = [
            "<!doctype html><html><head><meta charset='utf-8'><title>%s</title>"
            % html.escape(title),
            "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
            "td,th{border:1px solid #bbb;padding:3px 7px;text-align:left;vertical-align:top}"
            "th{background:#eee}img{max-width:100%}.fail{color:#b00;font-weight:bold}"
            ".pass{color:#070}code{background:#f4f4f4}</style></head><body>",
        ]

        def cell(c: str, tag: str) -> str:
            cls = ""
            if c.startswith("**FAIL") or c in ("FAIL", "fail", "failed", "error"):
                cls = " class='fail'"
            elif c in ("pass", "PASS", "passed"):
                cls = " class='pass'"
            return "<%s%s>%s</%s>" % (tag, cls, inline(c), tag)

        for b in self.blocks:
            if b[0] == "h":
                out.append("<h%d>%s</h%d>" % (b[1], inline(b[2]), b[1]))
            elif b[0] == "p":
                out.append("<p>%s</p>" % inline(b[1]))
            elif b[0] == "ul":
                out.append("<ul>%s</ul>" % "".join("<li>%s</li>" % inline(i) for i in b[1]))
            elif b[0] == "table":
                out.append("<table><tr>%s</tr>" % "".join(cell(c, "th") for c in b[1]))
                for r in b[2]:
                    out.append("<tr>%s</tr>" % "".join(cell(c, "td") for c in r))
                out.append("</table>")
            elif b[0] == "img":
                out.append(
                    "<p><img src='%s' alt='%s'></p>" % (html.escape(b[1]), html.escape(b[2]))
                )
        out.append("</body></html>")
        return "\n".join(out) + "\n"


def _pf(ok) -> str:
    return "n/a" if ok is None else ("pass" if ok else "FAIL")


# ---- 1. tests -----------------------------------------------------------------------------------
def run_tests(extra: list[str] | None = None) -> int:
    cmd = [sys.executable, "-m", "pytest", *(extra or [])]
    print("report: running the tests (%s)" % " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


# ---- 2. benchmarks ------------------------------------------------------------------------------
def inputs_digest(root: Path = ROOT) -> str:
    h = hashlib.sha256()
    for rel in BENCH_INPUTS:
        p = root / rel
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                h.update(str(f.relative_to(root)).encode() + b"\0")
                h.update(f.read_bytes())
    return h.hexdigest()


def bench_results(mode: str) -> tuple[dict, str]:
    """(results, how they were obtained)."""
    digest = inputs_digest()
    res = json.loads(BENCH.read_text()) if BENCH.exists() else {}
    fresh = res.get("inputs", {}).get("sha256") == digest
    if mode == "reuse" or (mode == "auto" and fresh):
        how = "reused bench/results.json (%s)" % (
            "measured on these inputs" if fresh else "STALE: measured on other inputs"
        )
        return res, how
    print("report: running the benchmarks (make bench)", flush=True)
    from . import bench

    rc = bench.main([])
    bench.write_section("inputs", {"sha256": digest, "files": list(BENCH_INPUTS)}, BENCH)
    res = json.loads(BENCH.read_text())
    return res, "measured now (bench exit status %d)" % rc


def bench_rows(res: dict) -> list[list]:
    """[figure, value, target, pass/fail] for every section present."""
    rows: list[list] = []
    t = res.get("timing")
    if t:
        tg = t["targets"]
        rows += [
            ["pulse width error (worst, ns)", t["worst_width_error_ns"],
             "<= %s (1 tick)" % tg["width_error_ns"], _pf(t["pass"]["width"])],
            ["interphase gap error (worst, ns)", t["worst_gap_error_ns"],
             "<= %s" % tg["gap_error_ns"], _pf(t["pass"]["gap"])],
            ["rate error (worst, ppm)", t["worst_rate_error_ppm"],
             "<= %s (0.01 %%)" % tg["rate_error_ppm"], _pf(t["pass"]["rate"])],
            ["net charge per pulse (worst, nC)", t["max_net_charge_nc"],
             "<= %s" % tg["net_charge_nc"], _pf(t["pass"]["net_charge"])],
        ]  # fmt: skip
    f = res.get("fault")
    if f:
        limit_100hz = "<= %g (one period, fault target); <= %g (SR-6 at >= 50 Hz)" % (
            ft.TARGET_MS, ft.SR6_LIMIT_MS)  # fmt: skip
        rows += [
            ["electrode open to zero at 100 Hz (worst, ms)", f["open_to_zero_ms"],
             limit_100hz,
             "%s; %s" % (_pf(f["open_to_zero_ms"] <= ft.TARGET_MS),
                         _pf(f["open_to_zero_ms"] <= ft.SR6_LIMIT_MS))],
            ["electrode short to zero at 100 Hz (worst, ms)", f["short_to_zero_ms"],
             limit_100hz,
             "%s; %s" % (_pf(f["short_to_zero_ms"] <= ft.TARGET_MS),
                         _pf(f["short_to_zero_ms"] <= ft.SR6_LIMIT_MS))],
            ["electrode open to zero at 2 Hz (worst, ms)", f["open_to_zero_ms_2hz"],
             "<= %g (one period, SR-6)" % ft.PERIOD_2HZ_MS,
             _pf(f["open_to_zero_ms_2hz"] <= ft.PERIOD_2HZ_MS)],
            ["electrode short to zero at 2 Hz (worst, ms)", f["short_to_zero_ms_2hz"],
             "<= %g (one period, SR-6)" % ft.PERIOD_2HZ_MS,
             _pf(f["short_to_zero_ms_2hz"] <= ft.PERIOD_2HZ_MS)],
            ["missed opens", f["missed_opens"], "0", _pf(f["pass"]["no_missed_opens"])],
            ["false trips per channel-hour (noise %g V rms)" % f["noise_v_rms"],
             f["false_trips_per_hour"], "0", _pf(f["false_trips_per_hour"] == 0)],
        ]  # fmt: skip
    s = res.get("stop")
    if s:
        rows.append(
            ["POWER press to zero output (worst over states, ms)", s["press_to_zero_ms"],
             "<= %g (SR-7)" % s["target_ms"], _pf(s["pass"]["all"])]
        )  # fmt: skip
    m = res.get("memory")
    if m:
        tg, ok = m["targets"], m["pass"]
        rows += [
            ["heap after boot, .mpy firmware (KB)", m["heap_after_boot_kb"],
             "<= %s" % tg["heap_after_boot_kb"], _pf(ok["heap_after_boot_kb"])],
        ]  # fmt: skip
        if "heap_after_boot_romfs_kb" in m:
            rows.append(
                ["heap after boot, bytecode in ROMFS (KB)", m["heap_after_boot_romfs_kb"],
                 "<= %s" % tg.get("heap_after_boot_romfs_kb", 40),
                 _pf(m["heap_after_boot_romfs_kb"] <= tg.get("heap_after_boot_romfs_kb", 40))]
            )  # fmt: skip
        rows += [
            ["steady control loop (bytes per cycle)", m["loop_bytes_per_cycle"],
             "%s" % tg["loop_bytes_per_cycle"], _pf(ok["loop_bytes_per_cycle"])],
            ["pulse IRQ handler (bytes per call)", m["irq_bytes_per_call"],
             "%s" % tg["irq_bytes_per_call"], _pf(ok["irq_bytes_per_call"])],
            ["IRQ handler runs with the heap locked", m["irq_runs_with_heap_locked"], "True",
             _pf(ok["irq_heap_locked"])],
            [".mpy tree (KB)", m["mpy_total_kb"], "<= %s" % tg["mpy_total_kb"],
             _pf(ok["mpy_total_kb"])],
        ]  # fmt: skip
    sim = res.get("sim")
    if isinstance(sim, dict) and "wall_s" in sim:
        rows.append(
            ["%.0f s session simulated (%s), wall s (speedup x%s, load %s on %s cores)"
             % (sim["sim_s"], sim.get("scenario", "?"), sim.get("speedup"),
                sim.get("load_avg_1min"), sim.get("cores")),
             sim["wall_s"], "< %g" % sim["target_wall_s"], _pf(sim["pass"]["wall"])]
        )  # fmt: skip
        if "cpu" in sim["pass"]:
            rows.append(
                ["the same, CPU s on one core (speedup x%s)" % sim.get("cpu_speedup"),
                 sim["cpu_s"], ">= x%g" % sim["target_cpu_speedup"], _pf(sim["pass"]["cpu"])]
            )  # fmt: skip
    bat = res.get("battery")
    if isinstance(bat, dict) and "standby" in bat:
        tg, ok = bat["targets"], bat["pass"]
        conv = bat["programs"]["tens_conventional"]
        rows += [
            ["CPU busy, TENS conventional on two channels (%)", conv["busy_pct"],
             "<= %g" % tg["busy_running_pct"], _pf(ok["busy_running"])],
            ["CPU busy, switched off (%)", bat["standby"]["busy_pct"],
             "<= %g" % tg["busy_off_pct"], _pf(ok["busy_off"])],
            ["therapy per charge, TENS conventional at %g mA into %g kΩ (h)"
             % (bat["intensity_ma"], bat["load_ohm"] / 1000), conv["hours"],
             "%g mAh cell" % bat["capacity_mah"], "reported"],
            ["standby per charge, switched off (days)", bat["standby"]["days"],
             "%g mAh cell" % bat["capacity_mah"], "reported"],
        ]  # fmt: skip
    host = res.get("host")
    if isinstance(host, dict) and "flash_full_s" in host:
        rows += [
            ["flash unchanged tree (s, %s)" % host.get("target", "?"), host["flash_unchanged_s"],
             "about as long as connecting (nothing written)",
             _pf(host.get("unchanged_written", 0) == 0)],
            ["full flash (s; %s KB/s over the link)" % host.get("throughput_full_kb_s"),
             host["flash_full_s"], "limited by the serial link", "reported"],
        ]  # fmt: skip
    return rows


def fuzz_stats(fuzz_dir: Path = FUZZ_DIR) -> dict | None:
    """The last whole-unit fuzz: its shards' counts added up (tests/firmware/test_fuzz_unit.py
    writes one file per shard; the newest says how many shards that run had). Wall time: the
    slowest shard's (the shards run side by side)."""
    files = sorted(fuzz_dir.glob("last-run-*-of-*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        return None
    n = json.loads(files[-1].read_text()).get("shards", 1)
    parts = [
        json.loads(p.read_text())
        for p in (fuzz_dir / ("last-run-%d-of-%d.json" % (k, n)) for k in range(1, n + 1))
        if p.exists()
    ]
    total = {k: sum(p.get(k, 0) for p in parts) for k in ("examples", "steps", "sim_s", "pulses")}
    total["wall_s"] = max(p.get("wall_s", 0.0) for p in parts)
    total["when"] = min(p.get("when", "?") for p in parts)
    total["shards"] = "%d of %d" % (len(parts), n)
    return total


# ---- 3. scenarios -------------------------------------------------------------------------------
def scenario_files() -> list[Path]:
    return sorted((ROOT / "scenarios").glob("*.json"))


def run_scenarios(out_dir: Path) -> tuple[list[list], str]:
    files = scenario_files()
    stimctl = [sys.executable, "-m", "host_tools"]
    tdir = out_dir / "scenarios"
    tdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for f in files:
        tr = tdir / (f.stem + ".jsonl")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*stimctl, "sim", "--scenario", str(f), "--trace", str(tr)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        viol, summ = [], []
        if tr.exists():
            for line in tr.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("kind") == "violation":
                    viol.append(rec.get("rule", "?"))
                elif rec.get("kind") == "summary":
                    summ.append(rec)
        rows.append(
            [
                f.name,
                proc.returncode,
                ", ".join(sorted(set(viol))) or "none",
                sum(s.get("pulses", 0) for s in summ),
                "%.1f" % (time.perf_counter() - t0),
                "scenarios/%s" % tr.name,
            ]
        )
    return rows, "%d scenarios run with `stimctl sim --scenario`" % len(rows)


# ---- 4. pictures --------------------------------------------------------------------------------
def draw_programs(out_dir: Path, board: str = "pico") -> list[tuple[str, str, str]]:
    from .. import plot
    from ..sim.rig import FirmwareRig

    programs = FirmwareRig(board).import_module("stim.programs")
    out = []
    img = out_dir / "img"
    img.mkdir(parents=True, exist_ok=True)
    for p in programs.PROGRAMS:
        path = img / ("%s.png" % p["id"])
        plot.plot_program(p["id"], path, board=board, window_s=PICTURE_WINDOWS_S.get(p["id"], 1.0))
        out.append((p["id"], p["name"], "img/%s.png" % p["id"]))
    return out


def mutation_section(d) -> None:
    """The mutation score from `make mutate`'s results (bench/mutation.json), if there are any."""
    from . import mutate

    res = mutate.load_results()
    if not res:
        return
    rows = [r for r in mutate.summarise(res, list(mutate.SAFETY_MODULES)) if r["mutants"]]
    d.h(2, "Mutation testing (make mutate)")
    d.p(
        "Mutants of the safety modules run so far against the tests that execute their line "
        "(host_tools/dev/mutate.py; build/mutation.md lists every survivor). Score = killed / "
        "(killed + survived + not covered); reviewed equivalent mutants "
        "(tests/mutation_equivalent.txt) count neither way."
    )
    d.table(
        ["module", "mutants run", "killed", "survived", "not covered", "equivalent",
         "timed out", "score"],
        [[r["module"], r["mutants"], r["killed"], r["survived"], r["not covered"],
          r["equivalent"], r["timeout"], "-" if r["score"] is None else "%.1f %%" % r["score"]]
         for r in rows],
    )  # fmt: skip


def draw_battery(out_dir: Path, bat: dict) -> str | None:
    """The 30-minute session's drain by component (bench `battery` section), stacked."""
    s = bat.get("session") if isinstance(bat, dict) else None
    if not s or not s.get("bins"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    cols = s["columns"]
    t_min = [b[0] / 60 for b in s["bins"]]
    series = [[b[i] for b in s["bins"]] for i in range(1, len(cols))]
    fig = Figure(figsize=(8, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.stackplot(t_min, series, labels=cols[1:], step="post")
    ax.set_xlabel("minutes")
    ax.set_ylabel("drain from the cell (mA)")
    ax.set_title(
        "%s at %g mA, both channels, board %s: %.1f mAh in all"
        % (s["program"], s["intensity_ma"], bat["board"], s["mah"])
    )
    ax.legend(loc="upper right")
    img = out_dir / "img"
    img.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(img / "battery_drain.png", dpi=100)
    return "img/battery_drain.png"


def battery_section(d, out_dir: Path, bat: dict) -> None:
    if not isinstance(bat, dict) or "programs" not in bat:
        return
    d.h(2, "Battery life")
    d.p(
        "Board %s at %g MHz, %g mAh cell, boost efficiency %g: the whole firmware on the "
        "simulated chip, %g kΩ on both channels, raised with PLUS to %g mA; drain from the "
        "power model (host_tools/sim/power.py: measured Pico currents by clock and sleep state, "
        "the boost refilling each pulse's charge from the compliance rail, lights and "
        "feedback), averaged over %g s once the soft starts are over."
        % (bat["board"], bat["sysclk_mhz"], bat["capacity_mah"], bat["boost_efficiency"],
           bat["load_ohm"] / 1000, bat["intensity_ma"], bat["window_s"])
    )  # fmt: skip
    rows = []
    for pid, p in bat["programs"].items():
        c = p["by_component_ma"]
        rows.append([pid, p["peak_ma"], p["busy_pct"], c["cpu"], c["output"], c["lights"],
                     p["drain_ma"], p["hours"]])  # fmt: skip
    s = bat["standby"]
    c = s["by_component_ma"]
    rows.append(["switched off (asleep %g %% of the time)" % s["asleep_pct"], 0, s["busy_pct"],
                 c["cpu"], c["output"], c["lights"], s["drain_ma"],
                 "%g days" % s["days"]])  # fmt: skip
    d.table(
        ["program", "peak mA", "CPU busy %", "CPU mA", "output mA", "lights mA", "total mA",
         "hours per charge"],
        rows,
    )  # fmt: skip
    src = draw_battery(out_dir, bat)
    if src:
        d.img(src, "drain over a 30-minute session by component")


# ---- 5. output table ----------------------------------------------------------------------------
def install_examples(programs):
    """The firmware's programs module with the example custom programs (programs/*.json)
    installed after the built-ins, as `stimctl program add` installs them on a unit: the table
    covers what a clinician can add as well."""
    examples = sorted((Path(__file__).resolve().parents[2] / "programs").glob("*.json"))
    programs.install([json.loads(p.read_text()) for p in examples])
    return programs


def measure_output(board, program_id: str, load_ohm: float, judge: bool = False) -> dict:
    """One program at its maximum step on channel 1 of `board`, into `load_ohm`.

    The firmware's pulse engine plays the program's plan with LEVEL for the step current and
    the program's envelope applied between pulses, as the app does; the board model integrates
    the current into the load from the pin levels. judge=False turns the engine's per-pulse
    electrode check off (the output stage's own figures)."""
    from .. import plot
    from ..sim.rig import FirmwareRig

    rig = FirmwareRig(board, load_ohm={1: load_ohm})
    b = rig.board
    programs = install_examples(rig.import_module("stim.programs"))
    modulation = rig.import_module("stim.modulation")
    limits = rig.import_module("stim.limits")
    prog = programs.by_id(program_id)
    step = limits.max_step(b, prog)
    set_ma = limits.step_ma(b, step)
    window_s = OUTPUT_WINDOW_S.get(program_id, 1.0)
    rig.boost(True)
    chan = rig.channel(0)
    if not judge:
        chan._judge_pulse = lambda m, fresh: 0  # the output stage, without the firmware's check
    cm = rig.model.channels[0]
    chip = rig.chip
    t_start = chip.t_s
    plan = modulation.plan(prog)
    plot.play(chip, chan, modulation, prog, plan, set_ma, window_s, stop=lambda: chan.trip)
    tripped = bool(chan.trip)
    chan.stop()
    pulses = [p for p in cm.pulse_log if p.end_s <= t_start + window_s]
    area = b["limits"]["min_electrode_area_cm2"]
    peak = max((p.peak_ma for p in pulses), default=0.0)
    qmax = max((max(p.charge_a_c, p.charge_b_c) for p in pulses), default=0.0)
    net = max((abs(p.net_charge_c) for p in pulses), default=0.0)
    # worst 1 s window (from each pulse's start) of the integral of i^2 dt
    e = []
    for p in pulses:
        e.append((p.t_a, p.i2t_a2s))
    worst_i2 = 0.0
    j = 0
    acc = 0.0
    for i in range(len(e)):
        while j < len(e) and e[j][0] < e[i][0] + 1.0:
            acc += e[j][1]
            j += 1
        worst_i2 = max(worst_i2, acc)
        acc -= e[i][1]
    rms_ma = math.sqrt(worst_i2) * 1000  # over 1 s
    return {
        "board": b["name"],
        "program": program_id,
        "name": prog["name"],
        "step": step,
        "set_ma": set_ma,
        "load_ohm": load_ohm,
        "pulses": len(pulses),
        "peak_ma": peak,
        "charge_per_phase_uc": qmax * 1e6,
        "net_charge_nc": net * 1e9,
        "rms_ma": rms_ma,
        "rms_ma_per_cm2": rms_ma / area,
        "power_w_per_cm2": worst_i2 * load_ohm / area,
        "tripped": tripped,
        "limits": b["limits"],
        "compliance_ma": b["analog"]["compliance_v"] / load_ohm * 1000,
    }


def held_step(board: dict, load_ohm: float) -> int | None:
    """The step the whole unit holds channel 1 at when the wearer presses PLUS up to the top
    into load_ohm (the default program, real firmware on the simulated board): the step of its
    `electrode` `limit` line, or None if it was not held at a compliance limit."""
    from ..sim.unit import SimulatedUnit

    with SimulatedUnit(board, load_ohm={1: load_ohm, 2: load_ohm}, record_pulses=False) as u:
        u.press("power", at=1.0, hold_s=1.7)
        n = board["intensity"]["steps"]
        for i in range(n):
            u.press("plus", at=3.0 + 0.25 * i)
        u.run_until(3.0 + 0.25 * n + 3.0)
        held = [e["step"] for e in u.logs("electrode") if e["ch"] == 1 and e["fault"] == "limit"]
    return held[-1] if held else None


def output_table(boards: list[str] | None = None) -> list[dict]:
    from .. import boards as boardmod
    from ..sim.rig import FirmwareRig

    rows = []
    for name in boards or boardmod.board_names():
        b = boardmod.load_board(name)
        programs = install_examples(FirmwareRig(b).import_module("stim.programs"))
        held = {r: held_step(b, r) for r in LOADS_OHM}
        for p in programs.PROGRAMS:
            for r in LOADS_OHM:
                row = measure_output(b, p["id"], r)
                fw = measure_output(b, p["id"], r, judge=True)
                h = held[r]
                row["held_step"] = h  # the whole unit's, PLUS to the top (default program)
                if fw["tripped"] and h is not None and h < row["step"]:
                    # the engine stops the channel at the limit; the unit tells it from a lift
                    # and runs it on at the highest step this load takes (SR-6, `limit`)
                    row["firmware"] = "holds it at step %d (%.1f mA): compliance limit" % (
                        h,
                        h * b["intensity"]["step_ma"],
                    )
                elif fw["tripped"]:
                    row["firmware"] = "stops it (electrode check) after %d pulse%s" % (
                        fw["pulses"],
                        "" if fw["pulses"] == 1 else "s",
                    )
                else:
                    row["firmware"] = "delivers it"
                rows.append(row)
    return rows


def within_caps(r: dict) -> bool:
    lim = r["limits"]
    eps = 1e-9
    return (
        r["peak_ma"] <= lim["max_peak_ma"] + eps
        and r["charge_per_phase_uc"] <= lim["max_charge_per_phase_uc"] + eps
        and r["rms_ma_per_cm2"] <= lim["max_rms_ma_per_cm2"] + eps
        and r["power_w_per_cm2"] <= lim["max_power_w_per_cm2"] + eps
        # zero to the model's float resolution (a boost still settling by parts per billion
        # moves a compliance-limited phase): one millionth of a phase's charge
        and r["net_charge_nc"] <= 1e-6 * r["charge_per_phase_uc"] * 1000
    )


# ---- the report ---------------------------------------------------------------------------------
def build(args) -> int:
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    status = 0
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    if args.tests == "run":
        rc = run_tests()
        status |= rc != 0
    bench, bench_how = bench_results(args.bench)
    scen_rows, scen_how = run_scenarios(out)
    status |= any(r[1] != 0 for r in scen_rows)
    print("report: drawing the programs", flush=True)
    pictures = draw_programs(out)
    print("report: measuring the output table", flush=True)
    outputs = output_table()
    tr = tracemod.compute()
    status |= not tr.ok
    fuzz = fuzz_stats()
    rev = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()

    d = Doc()
    d.h(1, "Test report: wearable TENS/EMS unit")
    d.p(
        "Generated %s from revision `%s` by `make report`. Requirements: docs/requirements.md; "
        "hazards: docs/hazards.md; third-party components: docs/soup.md." % (started, rev or "?")
    )
    # summary
    rows = tracemod.summary_rows(tr)
    last = tr.results.get("last_run", {})
    counts: dict[str, int] = {}
    for nodeid in tr.tests:
        o = tr.outcome(nodeid)
        counts[o] = counts.get(o, 0) + 1
    bench_fail = [r[0] for r in bench_rows(bench) if "FAIL" in r[3]]
    d.h(2, "Summary")
    d.ul(
        [
            "tests (%d collected; last run started %s): %s; its exit status %s"
            % (
                len(tr.tests),
                last.get("started", "never"),
                ", ".join("%d %s" % (v, k) for k, v in sorted(counts.items())) or "none",
                last.get("exit_status", "-"),
            ),
            "traceability: **%s**, %d requirements, %d pass, %d fail, %d pending, %d not run"
            % (
                "PASS" if tr.ok else "FAIL",
                len(rows),
                sum(r["status"] == "pass" for r in rows),
                sum(r["status"] == "fail" for r in rows),
                sum(r["status"] == "pending" for r in rows),
                sum(r["status"] in ("not run", "partial") for r in rows),
            ),
            "benchmarks: %s; %s"
            % (
                bench_how,
                ("targets missed: " + "; ".join(bench_fail)) if bench_fail else "all targets met",
            ),
            "scenarios: %s" % scen_how,
            "output table: %d rows, %s"
            % (
                len(outputs),
                "all within the board's caps"
                if all(within_caps(r) for r in outputs)
                else "**SOME ABOVE A CAP**",
            ),
        ]
        + (
            [
                "fuzz (last run, %s, %s shards): %d runs, %d steps, %.0f s simulated, %d pulses "
                "above the probe current, wall %.1f s"
                % (
                    fuzz.get("when", "?"),
                    fuzz.get("shards", "1 of 1"),
                    fuzz["examples"],
                    fuzz["steps"],
                    fuzz["sim_s"],
                    fuzz["pulses"],
                    fuzz.get("wall_s", 0),
                )
            ]
            if fuzz
            else ["fuzz: no run recorded yet"]
        )
    )  # fmt: skip

    # traceability
    d.h(2, "Traceability: requirement -> tests -> last result")
    if tr.errors:
        d.ul(["error: " + e for e in tr.errors])
    if tr.notes:
        d.ul(tr.notes)
    d.table(
        ["ID", "requirement", "verification", "hazards", "tests (cases)", "last result"],
        [
            [r["id"], r["text"], r["verification"], ", ".join(r["hazards"]) or "-",
             "%d (%d)" % (r["functions"], r["tests"]),
             tracemod.MARK.get(r["status"], r["status"])]
            for r in rows
        ],
    )  # fmt: skip
    d.p("The tests of each requirement, parametrised cases folded: `build/traceability.md` "
        "(`make trace`).")  # fmt: skip

    # benchmarks
    d.h(2, "Performance targets (make bench)")
    d.p("Source: %s. Targets: the product brief's performance targets, SR-6 and SR-7."
        % bench_how)  # fmt: skip
    d.table(["figure", "measured", "target", "result"], bench_rows(bench))
    f = bench.get("fault")
    if f:
        d.h(3, "Electrode fault reaction (simulated time, board %s, step %s, %g Ω)"
            % (f["board"], f["step"], f["load_ohm"]))  # fmt: skip
        d.p(
            "From the load change in the board model to the end of the last pulse the channel "
            "drove, worst and mean over change instants across the period and inside a pulse."
        )
        frows = []
        for rate, kinds in f["by_rate"].items():
            for kind, v in kinds.items():
                frows.append([rate, kind, v["worst_ms"], v["mean_ms"], v["period_ms"],
                              v["pulses_started_after_change"], v["trials"]])  # fmt: skip
        d.table(["rate", "fault", "worst ms", "mean ms", "period ms",
                 "pulses started after the change", "trials"], frows)  # fmt: skip
    s = bench.get("stop")
    if s:
        d.h(3, "Stop reaction (POWER press to zero output, board %s)" % s["board"])
        d.table(
            ["state", "worst ms", "mean ms", "presses"],
            [[k, v["worst_ms"], v["mean_ms"], v["presses"]] for k, v in s["by_state"].items()],
        )

    # scenarios
    d.h(2, "Scenarios")
    d.p(scen_how)
    if scen_rows:
        d.table(["scenario", "exit", "violations", "pulses", "wall s", "trace"], scen_rows)

    # output table
    d.h(2, "Output characteristics at maximum intensity")
    d.p(
        "Every program at its maximum intensity step (the highest step the firmware's SR-3 "
        "check accepts on that board), channel 1, measured on the board model from the "
        "firmware pulse engine's pins over 1 s (EMS strength: one 15 s work/rest cycle; "
        "acupuncture-like: 2 s); rms and power over the worst 1 s. Above the compliance "
        "voltage over the load the current source cannot push the set current. Figures are of "
        "the output stage with the engine's electrode check off; the last column says what the "
        "unit does at that load with it on: where the source reaches its compliance limit the "
        "engine stops the channel within the pulse, and the unit, having told the limit from "
        "a lifted electrode, runs it on held at the highest step that load takes (`limit`, "
        "SR-6; measured with the whole unit and PLUS pressed to the top step, the default "
        "program, and listed under each board's table)."
    )
    by_board: dict[str, list[dict]] = {}
    for r in outputs:
        by_board.setdefault(r["board"], []).append(r)
    for bname, rs in by_board.items():
        lim = rs[0]["limits"]
        d.h(3, "Board %s" % bname)
        d.p(
            "Caps: peak %g mA, %g µC per phase, %g mA/cm² rms and %g W/cm² at the smallest "
            "electrode (%g cm²)."
            % (
                lim["max_peak_ma"],
                lim["max_charge_per_phase_uc"],
                lim["max_rms_ma_per_cm2"],
                lim["max_power_w_per_cm2"],
                lim["min_electrode_area_cm2"],
            )
        )
        d.table(
            ["program", "max step (set mA)", "load", "peak mA", "charge/phase µC",
             "net charge/pulse nC", "rms mA/cm²", "power W/cm²", "within caps", "firmware"],
            [
                [r["program"], "%d (%.1f)" % (r["step"], r["set_ma"]),
                 "%g kΩ" % (r["load_ohm"] / 1000), "%.2f" % r["peak_ma"],
                 "%.3f" % r["charge_per_phase_uc"], "%.2g" % r["net_charge_nc"],
                 "%.4f" % r["rms_ma_per_cm2"], "%.5f" % r["power_w_per_cm2"],
                 _pf(within_caps(r)), r["firmware"]]
                for r in rs
            ],
        )  # fmt: skip
        reach = {}
        for r in rs:
            reach.setdefault(r["load_ohm"], r.get("held_step"))
        d.p(
            "Highest step the unit reaches, PLUS pressed to the top (%s): %s."
            % (
                rs[0]["program"],
                "; ".join(
                    "%g kΩ: %s" % (ohm / 1000, "the top step" if h is None else
                                   "held at step %d (compliance limit)" % h)
                    for ohm, h in reach.items()
                ),
            )
        )  # fmt: skip

    battery_section(d, out, bench.get("battery"))
    mutation_section(d)

    # pictures
    d.h(2, "Waveforms of every program")
    d.p("Drawn from the simulated pico: the firmware pulse engine on channel 1, 20 mA set into "
        "1 kΩ, current into the load sampled at every pin edge (`stimctl plot`).")  # fmt: skip
    for pid, name, src in pictures:
        d.h(3, "%s (`%s`)" % (name, pid))
        d.img(src, name)

    (out / "index.md").write_text(d.markdown(), encoding="utf-8")
    (out / "index.html").write_text(d.html("Test report"), encoding="utf-8")
    (out / "outputs.json").write_text(
        json.dumps([{k: v for k, v in r.items() if k != "limits"} for r in outputs], indent=1)
    )
    print("report: wrote %s and %s" % (out / "index.html", out / "index.md"))
    if bench_fail:
        print("report: benchmark targets missed: %s" % "; ".join(bench_fail))
    return 1 if status else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.dev.report", description=__doc__)
    ap.add_argument("--tests", choices=("run", "reuse"), default="run")
    ap.add_argument("--bench", choices=("auto", "run", "reuse"), default="auto")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    return build(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

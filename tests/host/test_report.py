"""The test report (make report): output figures measured at the load, benchmark verdicts,
benchmark freshness, and the whole report written from reused results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from host_tools.boards import load_board
from host_tools.dev import report

pytestmark = pytest.mark.req("FR-22")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.req("SR-3", "SR-4")
def test_output_figures_follow_the_load_physics():
    b = load_board("pico")
    low = report.measure_output(b, "tens_conventional", 500.0)
    high = report.measure_output(b, "tens_conventional", 10000.0)
    assert low["step"] == 40 and low["set_ma"] == 60.0
    # 60 mA into 500 ohm is 30 V, under the 80 V compliance: the set current arrives
    assert low["peak_ma"] == pytest.approx(60.0, rel=0.01)
    # into 10 kohm the compliance voltage limits it to 80 V / 10 kohm = 8 mA
    assert high["peak_ma"] == pytest.approx(8.0, rel=1e-6)
    assert low["charge_per_phase_uc"] == pytest.approx(low["peak_ma"] * 100e-6 * 1e3, rel=0.01)
    # 100 pulses a second, two phases of 100 us: i_rms = I sqrt(2 w f)
    rms = low["peak_ma"] * (2 * 100e-6 * 100) ** 0.5 / b["limits"]["min_electrode_area_cm2"]
    assert low["rms_ma_per_cm2"] == pytest.approx(rms, rel=0.02)
    assert low["power_w_per_cm2"] == pytest.approx((rms * 16 / 1000) ** 2 * 500 / 16, rel=0.04)
    assert low["pulses"] == 100 and not low["tripped"]
    assert report.within_caps(low) and report.within_caps(high)


@pytest.mark.req("SR-6")
def test_with_its_check_on_the_engine_stops_a_compliance_limited_channel():
    b = load_board("pico")
    fw = report.measure_output(b, "tens_conventional", 10000.0, judge=True)
    assert fw["tripped"] and fw["pulses"] == 1


@pytest.mark.req("SR-6", "FR-22")
def test_the_output_table_shows_the_step_the_unit_holds_at_a_compliance_limit(monkeypatch):
    real = report.measure_output
    monkeypatch.setattr(report, "LOADS_OHM", (500.0, 10000.0))
    monkeypatch.setattr(report, "measure_output", lambda b, pid, r, judge=False: real(
        b, "tens_conventional", r, judge))  # fmt: skip
    rows = report.output_table(["pico"])
    # six built-ins and the example custom program (programs/, FR-30), at each load
    assert len(rows) == (6 + 1) * 2
    low = [r for r in rows if r["load_ohm"] == 500.0]
    high = [r for r in rows if r["load_ohm"] == 10000.0]
    assert all(r["firmware"] == "delivers it" and r["held_step"] is None for r in low)
    # 10 kΩ: 6 mA needs 60 V, 7/8 of the 72 V limit (0.9 of the 80 V boost) less a step
    assert all(r["held_step"] == 4 for r in high)
    assert all(r["firmware"] == "holds it at step 4 (6.0 mA): compliance limit" for r in high)


def test_within_caps_names_an_over_cap_row():
    r = {
        "limits": load_board("pico")["limits"],
        "peak_ma": 10.0,
        "charge_per_phase_uc": 1.0,
        "rms_ma_per_cm2": 0.1,
        "power_w_per_cm2": 0.001,
        "net_charge_nc": 0.0,
    }
    assert report.within_caps(r)
    for key, bad in (
        ("peak_ma", 61.0),
        ("charge_per_phase_uc", 31.0),
        ("rms_ma_per_cm2", 2.1),
        ("power_w_per_cm2", 0.26),
        ("net_charge_nc", 1.0),
    ):
        assert not report.within_caps({**r, key: bad}), key


def test_bench_rows_judge_every_section_against_its_target():
    res = json.loads((ROOT / "bench" / "results.json").read_text())
    rows = report.bench_rows(res)
    names = [r[0] for r in rows]
    assert any("width error" in n for n in names) and any("POWER press" in n for n in names)
    assert any("open to zero at 100 Hz" in n for n in names) and any("heap" in n for n in names)
    stop = next(r for r in rows if "POWER press" in r[0])
    assert stop[3] == ("pass" if res["stop"]["press_to_zero_ms"] <= 20 else "FAIL")
    slow = json.loads(json.dumps(res))
    slow["stop"]["press_to_zero_ms"] = 25.0
    slow["stop"]["pass"]["all"] = False
    assert next(r for r in report.bench_rows(slow) if "POWER press" in r[0])[3] == "FAIL"
    assert report.bench_rows({}) == []


def test_bench_inputs_digest_changes_with_the_firmware(tmp_path):
    for rel in ("firmware", "boards"):
        shutil.copytree(ROOT / rel, tmp_path / rel)
    d0 = report.inputs_digest(tmp_path)
    assert report.inputs_digest(tmp_path) == d0
    f = tmp_path / "firmware" / "stim" / "pulse.py"
    f.write_text(f.read_text() + "\n# changed\n")
    assert report.inputs_digest(tmp_path) != d0


def test_markdown_and_html_render_the_same_blocks():
    d = report.Doc()
    d.h(2, "Title")
    d.p("some `code` and **bold**")
    d.table(["a", "b"], [["1", "pass"], ["x|y", "FAIL"]])
    d.img("img/x.png", "x")
    md = d.markdown()
    assert "## Title" in md and "| x\\|y | FAIL |" in md and "![x](img/x.png)" in md
    h = d.html("t")
    assert "<code>code</code>" in h and "<b>bold</b>" in h and "class='fail'" in h
    assert "<img src='img/x.png'" in h


def test_report_is_written_from_reused_results(tmp_path, monkeypatch):
    # the slow parts (every program at three loads on every board) cut to one row each
    real = report.measure_output
    monkeypatch.setattr(report, "LOADS_OHM", (2000.0,))
    monkeypatch.setattr(report, "measure_output", lambda b, pid, r, judge=False: real(
        b, "tens_conventional", r, judge))  # fmt: skip
    monkeypatch.setattr(report, "draw_programs", lambda out: [("p", "P", "img/p.png")])
    # three scenarios run through `stimctl sim --scenario` (a subprocess each) stand for all
    # (tests/sim/test_scenarios.py checks every one of them; `make report` runs them all)
    keep = ("program_tens_conventional", "sr06_lift_and_short", "sr07_stop")
    files = [f for f in report.scenario_files() if f.stem in keep]
    assert len(files) == len(keep)
    monkeypatch.setattr(report, "scenario_files", lambda: files)
    out = tmp_path / "rep"
    report.main(["--tests", "reuse", "--bench", "reuse", "--out", str(out)])
    md = (out / "index.md").read_text()
    for part in (
        "## Summary",
        "## Traceability: requirement -> tests -> last result",
        "| SR-7 |",
        "## Performance targets (make bench)",
        "### Electrode fault reaction",
        "### Stop reaction",
        "## Scenarios",
        "## Output characteristics at maximum intensity",
        "### Board pico",
        "### Board wearable_v1",
        "2 kΩ: held at step 21 (compliance limit)",
        "## Waveforms of every program",
    ):
        assert part in md, part
    assert (out / "index.html").read_text().startswith("<!doctype html>")
    rows = json.loads((out / "outputs.json").read_text())
    assert {r["board"] for r in rows} == {"pico", "wearable_v1"}

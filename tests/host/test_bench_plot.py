"""The timing benchmark (host_tools/dev/bench.py) and `stimctl plot` (host_tools/plot.py)."""

from __future__ import annotations

import json

import pytest

from host_tools import cli
from host_tools.dev import bench

PROGRAM_IDS = (
    "tens_conventional",
    "tens_acupuncture",
    "tens_burst",
    "tens_modulated",
    "ems_relax",
    "ems_strength",
)


@pytest.fixture(scope="module")
def timing():
    return bench.measure_timing(rates=(2, 150), widths=(200,), program_ids=["tens_burst"])


@pytest.mark.req("FR-2", "FR-19")
def test_timing_section_keys_and_values(timing):
    for key in (
        "worst_width_error_ns",
        "worst_gap_error_ns",
        "worst_rate_error_ppm",
        "max_net_charge_nc",
        "grid_points",
        "programs",
        "targets",
        "pass",
    ):
        assert key in timing
    assert timing["board"] == "pico"
    assert timing["grid_points"] == 2
    assert timing["programs"] == ["tens_burst"]
    assert set(timing["per_rate"]) == {"2", "150"}
    assert timing["targets"]["width_error_ns"] == 8
    assert timing["targets"]["rate_error_ppm"] == 1
    assert timing["targets"]["net_charge_nc"] == 0
    # Whole microseconds are whole cycles at 125 MHz: widths and gaps come out exact.
    assert timing["worst_width_error_ns"] == 0
    assert timing["worst_gap_error_ns"] == 0
    # 150 Hz asks for 6,666,666.7 ns; plans hold whole nanoseconds (6,666,667 ns) and the state
    # machine whole cycles (833,333 at 125 MHz): 0.4 ppm (whole microseconds were 50 ppm).
    assert timing["per_rate"]["150"]["rate_error_ppm"] == pytest.approx(0.4, abs=0.01)
    assert timing["per_rate"]["2"]["rate_error_ppm"] == 0
    assert timing["per_program"]["tens_burst"]["rate_error_ppm"] == 0
    assert timing["max_net_charge_nc"] == 0
    # >= 3 periods per grid point, >= 3 plan cycles per program, all seen by the model too.
    assert timing["per_rate"]["2"]["periods"] >= 3
    assert timing["per_program"]["tens_burst"]["periods"] >= 3 * 7
    assert timing["malformed_edges"] == 0 and timing["violations"] == 0
    assert all(timing["pass"].values())
    json.dumps(timing)  # serialisable as is


@pytest.mark.req("FR-19")
def test_results_file_keeps_other_sections(tmp_path, timing):
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"fault": {"open_ms": 3.2}, "timing": {"old": True}}))
    bench.write_section("timing", timing, out)
    data = json.loads(out.read_text())
    assert data["fault"] == {"open_ms": 3.2}
    assert data["timing"]["grid_points"] == 2 and "old" not in data["timing"]


@pytest.mark.req("FR-2", "FR-19")
def test_timing_catches_a_one_cycle_gap_error(fw_copy):
    """A firmware whose gap words are one cycle short fails the benchmark (gap must be exact)."""
    p = fw_copy / "stim" / "pulse.py"
    src = p.read_text()
    assert "_G_EXTRA = const(5)" in src
    p.write_text(src.replace("_G_EXTRA = const(5)", "_G_EXTRA = const(6)"))
    t = bench.measure_timing(rates=(100,), widths=(100,), program_ids=[], firmware_dir=fw_copy)
    assert t["worst_gap_error_ns"] == 8
    assert t["pass"]["gap"] is False and t["pass"]["all"] is False


@pytest.mark.req("FR-19")
def test_pulses_from_edges_flags_broken_sequences():
    a, b = 2, 3
    good = [(0, a, 1), (10, a, 0), (12, b, 1), (22, b, 0)]
    assert bench.pulses_from_edges(good, a, b) == ([(0, 10, 12, 22)], 0)
    lone_b = [(0, b, 1), (10, b, 0)]
    assert bench.pulses_from_edges(lone_b, a, b)[1] > 0
    cut = [(0, a, 1), (10, a, 0)]
    assert bench.pulses_from_edges(cut, a, b) == ([], 1)


@pytest.mark.req("FR-18")
def test_plot_writes_png(tmp_path, capsys):
    out = tmp_path / "burst.png"
    rc = cli.main(["plot", "--board", "pico", "--program", "tens_burst", "-o", str(out)])
    assert rc == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert str(out) in capsys.readouterr().out


@pytest.mark.req("FR-18")
def test_plot_records_the_delivered_pulses():
    from host_tools.plot import record

    tr = record("tens_burst", window_s=1.0)
    assert len(tr.pulses) == 14 and tr.malformed_edges == 0  # 2 bursts of 7
    a0, a1, b0, b1 = tr.pulses[0]
    f = tr.sysclk_hz
    assert ((a1 - a0) / f, (b0 - a1) / f, (b1 - b0) / f) == (200e-6, 20e-6, 200e-6)
    # The LEVEL duty rounds down (never above the request, SR-3), by at most a compare step.
    assert 19.8 <= tr.current_at(a0) <= 20.0
    assert tr.current_at(b0) == pytest.approx(-tr.current_at(a0))
    assert tr.current_at(a1) == 0


@pytest.mark.req("FR-18")
def test_plot_unknown_program_lists_valid_ids(tmp_path, capsys):
    out = tmp_path / "x.png"
    rc = cli.main(["plot", "--program", "tens_nope", "-o", str(out)])
    assert rc != 0
    err = capsys.readouterr().err
    assert "unknown program 'tens_nope'" in err
    for pid in PROGRAM_IDS:
        assert pid in err
    assert not out.exists()


@pytest.mark.req("FR-18")
def test_plot_unknown_board_and_channel(tmp_path, capsys):
    out = tmp_path / "x.png"
    assert cli.main(["plot", "--board", "nope", "--program", "tens_burst", "-o", str(out)]) != 0
    assert "no board named 'nope'" in capsys.readouterr().err
    assert cli.main(["plot", "--program", "tens_burst", "--channel", "3", "-o", str(out)]) != 0
    assert "channels 1..2" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def memory_figures():
    from host_tools.dev.bench_memory import measure_memory

    return measure_memory()


@pytest.mark.req("FR-16", "FR-19")
def test_memory_section_within_targets_and_merged(tmp_path, memory_figures):
    """`make bench`'s memory section: measured on the MicroPython VM, merged into the file."""
    from host_tools.dev.bench import write_section
    from host_tools.dev.bench_memory import TARGETS

    out = tmp_path / "results.json"
    out.write_text('{"timing": {"kept": true}}')
    m = memory_figures
    results = write_section("memory", m, out)
    assert results["timing"] == {"kept": True}
    for key in TARGETS:
        assert m[key] <= TARGETS[key], (key, m[key])
    assert m["irq_runs_with_heap_locked"]
    assert 0 < m["mpy_total_kb"] < m["source_total_kb"]
    assert 0 < m["heap_after_boot_kb"] < m["heap_after_boot_source_kb"]
    # Bytecode in place in a ROMFS image: only objects and interned names stay on the heap.
    assert 0 < m["heap_after_boot_romfs_kb"] < m["heap_after_boot_kb"]


@pytest.mark.req("FR-16", "FR-19")
def test_heap_after_boot_from_mpy_files_within_96_kb(memory_figures):
    # .mpy files loaded from the filesystem: their bytecode is copied into the heap and their
    # names interned there (DESIGN.md: <= 40 % of the RPI_PICO heap, 96 KB)
    from host_tools.dev.bench_memory import TARGETS

    assert memory_figures["heap_after_boot_kb"] <= TARGETS["heap_after_boot_kb"]


@pytest.mark.req("FR-16", "FR-19")
def test_heap_after_boot_with_the_bytecode_in_flash_within_40_kb(memory_figures):
    # What the firmware's own objects and names take, the bytecode running in place from a
    # ROMFS image: this part of the budget is the firmware's to keep.
    from host_tools.dev.bench_memory import TARGETS

    assert memory_figures["heap_after_boot_romfs_kb"] <= TARGETS["heap_after_boot_romfs_kb"]

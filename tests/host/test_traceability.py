"""Traceability (make trace): every requirement has tests, every test names known requirements,
and the hazard analysis names only requirements that exist, each SR controlling a hazard."""

from __future__ import annotations

import json

import pytest

from host_tools.dev import traceability as trace

pytestmark = pytest.mark.req("FR-21")

REQS = {
    "SR-1": {"text": "zero start", "verification": "test"},
    "SR-2": {"text": "gentle rise", "verification": "test"},
    "FR-1": {"text": "programs", "verification": "test"},
}


@pytest.fixture(scope="module")
def markers():
    return trace.collect_markers()


def test_the_suite_covers_every_requirement_and_names_only_known_ones(markers, capsys):
    tr = trace.compute(tests=markers)
    with capsys.disabled():
        for n in tr.notes:
            print("\ntrace: %s" % n)
    assert tr.errors == []


def test_requirements_table_has_the_srs_in_order():
    reqs = trace.requirements()
    srs = [r for r in reqs if r.startswith("SR-")]
    assert srs == ["SR-%d" % i for i in range(1, len(srs) + 1)] and len(srs) >= 14
    frs = [r for r in reqs if r.startswith("FR-")]
    assert frs == ["FR-%d" % i for i in range(1, len(frs) + 1)]
    assert all(r["text"] and r["verification"] for r in reqs.values())


def test_collection_sees_module_class_and_parametrised_markers(markers):
    # module pytestmark (test_safe_boot_exit), class-wrapped stateful test, parametrised cases
    assert any(
        n.startswith("tests/firmware/test_safe_boot_exit.py::") and "SR-8" in ids
        for n, ids in markers.items()
    )
    fuzz = [
        ids for n, ids in markers.items() if n.startswith("tests/firmware/test_fuzz_unit.py::")
    ]
    assert fuzz and all("SR-7" in ids for ids in fuzz)
    cases = [
        n
        for n, ids in markers.items()
        if n.startswith("tests/firmware/test_wearer.py::test_power_press_stops_all_output") and ids
    ]
    assert len(cases) > 1
    # the pure-core tests' req() is pytest's marker under pytest
    assert any(n.startswith("tests/core/") and "SR-3" in ids for n, ids in markers.items())


def test_a_requirement_without_tests_fails_the_check():
    tr = trace.check(REQS, {"t::a": ["SR-1"], "t::b": ["FR-1"]}, pending={})
    assert not tr.ok
    assert any(e.startswith("SR-2 has no test") for e in tr.errors)


def test_an_unknown_or_malformed_id_fails_the_check():
    tests = {"t::a": ["SR-1", "SR-99"], "t::b": ["SR-2", "FR-1"], "t::c": ["sr3"]}
    tr = trace.check(REQS, tests, pending={})
    assert any("SR-99 is named by 1 test(s)" in e for e in tr.errors)
    assert any("'sr3' is not of the form" in e for e in tr.errors)


def test_pending_is_a_note_until_tests_exist_then_an_error():
    tests = {"t::a": ["SR-1"], "t::b": ["FR-1"]}
    tr = trace.check(REQS, tests, pending={"SR-2": "later"})
    assert tr.ok and tr.notes == ["SR-2 has no test yet (pending: later)"]
    tr = trace.check(REQS, {**tests, "t::c": ["SR-2"]}, pending={"SR-2": "later"})
    assert tr.errors == [
        "SR-2 now has 1 test(s): remove it from PENDING in host_tools/dev/traceability.py"
    ]


def test_hazards_must_name_known_srs_and_every_sr_controls_one():
    tests = {"t::a": ["SR-1", "SR-2", "FR-1"]}
    tr = trace.check(REQS, tests, pending={}, hazards={"H-1": ["SR-1", "SR-2"]})
    assert tr.ok
    tr = trace.check(REQS, tests, pending={}, hazards={"H-1": ["SR-1", "SR-7"], "H-2": ["FR-1"]})
    assert "docs/hazards.md H-1 names unknown requirement SR-7" in tr.errors
    assert "docs/hazards.md H-2 names no safety requirement (SR-n)" in tr.errors
    assert "SR-2 controls no hazard in docs/hazards.md" in tr.errors


def test_status_and_matrix_from_last_results():
    tests = {"t::a[1]": ["SR-1"], "t::a[2]": ["SR-1"], "t::b": ["SR-2"], "t::c": ["FR-1"]}
    results = {
        "tests": {
            "t::a[1]": {"outcome": "passed"},
            "t::a[2]": {"outcome": "passed"},
            "t::b": {"outcome": "failed"},
        },
        "last_run": {"started": "x", "args": [], "exit_status": 1},
    }
    tr = trace.check(REQS, tests, results, pending={})
    assert [tr.status(r) for r in REQS] == ["pass", "fail", "not run"]
    md = trace.render_markdown(tr)
    assert "| SR-1 | zero start | - | 1 (2) | pass |" in md
    assert "| SR-2 | gentle rise | - | 1 (1) | **FAIL** |" in md
    assert "- `t::a` (2 cases): 2 passed" in md


def test_plugin_records_outcomes_and_markers(tmp_path, pytester_free_run):
    data = pytester_free_run
    outs = {n.split("::")[-1]: r["outcome"] for n, r in data["tests"].items()}
    assert outs == {"test_ok": "passed", "test_bad": "failed", "test_xf": "xfailed"}
    reqs = {n.split("::")[-1]: r["reqs"] for n, r in data["tests"].items()}
    assert reqs["test_ok"] == ["SR-1", "FR-1"] and reqs["test_bad"] == ["FR-1"]


@pytest.fixture
def pytester_free_run(tmp_path):
    """A tiny suite run in a subprocess with the plugin: what it writes."""
    import subprocess
    import sys

    (tmp_path / "test_mini.py").write_text(
        "import pytest\n"
        "pytestmark = pytest.mark.req('FR-1')\n"
        "@pytest.mark.req('SR-1')\n"
        "def test_ok():\n    pass\n"
        "def test_bad():\n    assert 0\n"
        "@pytest.mark.xfail(strict=True)\n"
        "def test_xf():\n    assert 0\n"
    )
    out = tmp_path / "results.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "host_tools.dev.trace_plugin",
            "-p",
            "no:cacheprovider",
            "--test-results",
            str(out),
            "-W",
            "ignore",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    return json.loads(out.read_text())

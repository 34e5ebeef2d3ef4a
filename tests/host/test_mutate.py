"""The mutation-testing driver (host_tools/dev/mutate.py, `make mutate`): the mutants it makes,
that each one is a valid edit of one spot, and that it tells a killed mutant from a survivor."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from host_tools.dev import mutate

SRC = '''
from micropython import const

_LIMIT = const(7)


def f(a, b):
    """A docstring with 3 in it."""
    if a <= _LIMIT and not b:
        log(a)
        return a + 1
    x = 2
    return x


def g():
    if x:
        return None
    return
'''


def test_each_kind_of_mutant_is_made_once_per_spot():
    ms = mutate.mutants_of("demo", SRC)
    by_op = {}
    for m in ms:
        by_op.setdefault(m.op, []).append((m.line, m.before, m.after))
    assert by_op["cmp"] == [(9, "a <= _LIMIT", "a < _LIMIT")]
    assert by_op["boolop"] == [(9, "a <= _LIMIT and not b", "a <= _LIMIT or not b")]
    assert by_op["not"] == [(9, "not b", "b")]
    assert ("delete", 10, "log(a)", "pass") in [(m.op, m.line, m.before, m.after) for m in ms]
    assert (12, "x = 2", "pass") in by_op["delete"]
    # g()'s `return None` and bare `return` are the same code: no mutant.
    assert by_op["return"] == [(11, "return a + 1", "return"), (13, "return x", "return")]
    consts = {(m.line, m.after) for m in ms if m.op.startswith("const")}
    assert consts == {(11, "2"), (11, "0"), (12, "3"), (12, "1"), (12, "0")}  # not in const()
    assert len({m.id for m in ms}) == len(ms)


def test_mutants_of_every_safety_module_are_valid_python_and_change_one_spot():
    # One mutant in five of each module and kind (`make mutate` checks every one with
    # mutate.invalid before it runs any): parsing each mutated module is most of the cost.
    for mod in mutate.SAFETY_MODULES:
        src = mutate.module_path(mod).read_text()
        n_lines = len(src.splitlines())
        seen: dict[str, int] = {}
        for m in mutate.mutants_of(mod, src):
            seen[m.op] = seen.get(m.op, -1) + 1
            if seen[m.op] % 5:
                continue
            out = mutate.apply(m, src)  # parses the result, or raises SyntaxError
            assert out != src
            assert len(out.splitlines()) == n_lines or "\n" in m.before, m.id
            # the mutated text sits at the mutant's position, the rest is untouched
            line = out.splitlines()[m.line - 1]
            assert line.encode()[m.col :].decode().startswith(m.after.split("\n")[0]), m.id


def test_a_mutant_that_does_not_parse_is_refused_before_anything_runs(monkeypatch, tmp_path):
    m = next(m for m in mutate.mutants_of("demo", SRC) if m.op == "cmp")
    broken = mutate.Mutant(m.module, m.line, m.col, m.op, m.before, m.before + " +")
    with pytest.raises(SyntaxError):
        mutate.apply(broken, SRC)
    demo = tmp_path / "demo.py"
    demo.write_text(SRC)
    monkeypatch.setattr(mutate, "module_path", lambda mod, root=None: demo)
    assert mutate.invalid([m, broken]) == [broken.id]


def test_a_mutant_that_no_longer_matches_its_module_is_refused():
    m = next(m for m in mutate.mutants_of("demo", SRC) if m.op == "cmp")
    with pytest.raises(ValueError):
        mutate.apply(m, SRC.replace("a <= _LIMIT", "a  <=  _LIMIT"))


def _result(mid: str, status: str) -> dict:
    """One mutant's record as results.json keeps it (module safe, its hash "h")."""
    return {"id": mid, "module": "safe", "hash": "h", "status": status, "before": "a",
            "after": "b", "n_tests": 1}  # fmt: skip


def _made(monkeypatch, n):
    """The module's mutants as the table sees them: safe:1:0:cmp to safe:n:0:cmp."""
    now = [mutate.Mutant("safe", i, 0, "cmp", "a < b", "a <= b") for i in range(1, n + 1)]
    monkeypatch.setattr(mutate, "mutants_of", lambda mod, src: now)


def test_the_table_counts_equivalents_neither_way(tmp_path, monkeypatch):
    monkeypatch.setattr(mutate, "module_hash", lambda mod: "h")
    eq = tmp_path / "eq.txt"
    eq.write_text("# reviewed\nsafe:1:0:cmp  the same either way for the values it sees\n")
    monkeypatch.setattr(mutate, "EQUIVALENT", eq)

    _made(monkeypatch, 4)
    r = _result
    res = {
        "safe:1:0:cmp": r("safe:1:0:cmp", "survived"),
        "safe:2:0:cmp": r("safe:2:0:cmp", "killed"),
        "safe:3:0:cmp": r("safe:3:0:cmp", "timeout"),
        "safe:4:0:cmp": r("safe:4:0:cmp", "survived"),
        "safe:9:0:cmp": r("safe:9:0:cmp", "survived"),  # no longer made: not counted
    }
    rows = mutate.summarise(res, ["safe"])
    assert rows[0]["equivalent"] == 1 and rows[0]["killed"] == 1 and rows[0]["survived"] == 1
    assert rows[0]["timeout"] == 1
    assert rows[0]["score"] == pytest.approx(50.0)
    out = tmp_path / "m.md"
    mutate.write_table(rows, out)
    text = out.read_text()
    assert "| safe | 4 | 1 | 1 | 0 | 1 | 1 | 50.0 % |" in text and "safe:4:0:cmp" in text


def test_a_mutant_is_run_against_its_tests_on_a_copy_of_the_tree(tmp_path, monkeypatch):
    """End to end on a pure module: SR-3's check of a negative step weakened to refuse step 0
    too is killed by the limits tests and survives tests that never use the module; the
    project's own firmware/ is never touched."""
    monkeypatch.setattr(mutate, "WORK", tmp_path / "work")
    original = mutate.module_path("limits").read_text()
    mutate.prepare_work()
    ms = {m.before: m for m in mutate.mutants_of("limits", original) if m.op == "cmp"}
    tests = ["tests/core/test_core_limits.py"]
    status, _secs, failed = mutate.run_mutant(ms["step < 0"], tests, 300)
    assert status == "killed" and failed.startswith("tests/core/test_core_limits.py")
    status, _secs, failed = mutate.run_mutant(
        ms["step < 0"], ["tests/core/test_core_pulse.py"], 300
    )
    assert status == "survived" and failed == ""
    assert mutate.module_path("limits").read_text() == original
    assert mutate.module_path("limits", mutate.WORK).read_text() == original
    assert json.dumps(status)


def test_every_reviewed_equivalent_is_a_mutant_of_the_code_as_it_stands_with_a_reason():
    # Ids carry line numbers: an edit of the module moves them, and a stale line would quietly
    # stop counting. Then the mutant must be found again and its reason reviewed.
    eq = mutate.equivalents()
    assert eq, "tests/mutation_equivalent.txt lists none"
    ids: dict[str, set[str]] = {}
    for mid, why in eq.items():
        mod = mid.split(":")[0]
        if mod not in ids:
            src = mutate.module_path(mod).read_text()
            ids[mod] = {m.id for m in mutate.mutants_of(mod, src)}
        assert mid in ids[mod], "%s is no longer a mutant of %s: review it again" % (mid, mod)
        assert len(why) >= 20, "%s: say why no test can tell it apart" % mid


def test_a_mutant_listed_twice_as_equivalent_is_refused(tmp_path, monkeypatch):
    eq = tmp_path / "eq.txt"
    eq.write_text("safe:1:0:cmp  one reason for it\nsafe:1:0:cmp  and another reason\n")
    monkeypatch.setattr(mutate, "EQUIVALENT", eq)
    with pytest.raises(ValueError, match="safe:1:0:cmp is listed twice"):
        mutate.equivalents()


def test_the_time_limit_comes_from_the_covering_tests_recorded_times():
    secs = {"tests/a.py::t1": 10.0, "tests/b.py": 4.0}
    limit, measured = mutate.time_limit(["tests/a.py::t1", "tests/b.py"], secs, 600.0)
    assert measured and limit == mutate.HANG_FACTOR * 14.0 + mutate.HANG_MARGIN_S
    # never past the cap; reached before three times the tests' time, a run past it decides
    # nothing (a survivor whose tests are slow is not a hang)
    assert mutate.time_limit(["tests/a.py::t1"], secs, 40.0) == (40.0, False)
    # a covering test with no recorded time: the cap, and a run past it decides nothing
    assert mutate.time_limit(["tests/a.py::t1", "tests/c.py"], secs, 600.0) == (600.0, False)


# A coverage map as coverage_map() keeps it: per test file, its tests and their times, and for
# each firmware line the tests that ran it (-1: the line ran outside any test, at import).
COV = {"files": {
    "tests/firmware/test_app.py": {"hash": "a1", "seconds": 30.0,
                                   "tests": ["tests/firmware/test_app.py::slow",
                                             "tests/firmware/test_app.py::quick"],
                                   "times": [9.0, 1.0],
                                   "lines": {"firmware/stim/safe.py": {"7": [0, 1], "9": [1]}}},
    "tests/firmware/test_safe_boot_exit.py": {
        "hash": "s1", "seconds": 50.0, "tests": ["tests/firmware/test_safe_boot_exit.py::x"],
        "times": [20.0], "lines": {"firmware/stim/safe.py": {"7": [0]}}},
    "tests/core/test_core_board.py": {"hash": "b1", "seconds": 3.0, "tests": [], "times": [],
                                      "lines": {"firmware/stim/safe.py": {"7": [-1]}}},
}}  # fmt: skip


def test_a_mutant_runs_the_tests_that_ran_its_line_its_modules_own_first(monkeypatch):
    monkeypatch.setattr(mutate, "statement_line", lambda src, line: line)
    m7 = mutate.Mutant("safe_boot_exit", 7, 0, "cmp", "a", "b")
    # The module's own test file first (pytest -x stops early), then the quickest; a line run
    # at import takes its whole file.
    monkeypatch.setattr(mutate, "module_path",
                        lambda mod, root=mutate.ROOT: root / "firmware/stim/safe.py")  # fmt: skip
    assert mutate.covering(m7, COV) == [
        "tests/firmware/test_safe_boot_exit.py::x",
        "tests/firmware/test_app.py::quick",
        "tests/core/test_core_board.py",
        "tests/firmware/test_app.py::slow",
    ]
    m9 = mutate.Mutant("safe", 9, 0, "cmp", "a", "b")
    assert mutate.covering(m9, COV) == ["tests/firmware/test_app.py::quick"]
    assert mutate.covering(mutate.Mutant("safe", 8, 0, "cmp", "a", "b"), COV) == []
    secs = mutate.test_seconds(COV)
    assert secs["tests/firmware/test_app.py::slow"] == 9.0
    assert secs["tests/core/test_core_board.py"] == 3.0


def test_a_survivor_runs_again_when_its_tests_change_and_a_kill_stands():
    m = mutate.Mutant("safe", 9, 0, "cmp", "a", "b")
    tests = ["tests/firmware/test_app.py::quick"]
    suite = mutate.suite_key(tests, COV)
    old = {"hash": "h", "before": "a", "after": "b", "suite": suite}
    assert not mutate._todo(m, {**old, "status": "survived"}, "h", suite)
    assert not mutate._todo(m, {**old, "status": "killed"}, "h", suite)
    # the test file changed (a new test in it may kill the survivor): run it again
    edited = {"files": {**COV["files"], "tests/firmware/test_app.py": {
        **COV["files"]["tests/firmware/test_app.py"], "hash": "a2"}}}  # fmt: skip
    suite2 = mutate.suite_key(tests, edited)
    assert suite2 != suite
    assert mutate._todo(m, {**old, "status": "survived"}, "h", suite2)
    assert mutate._todo(m, {**old, "status": "timeout"}, "h", suite2)
    assert not mutate._todo(m, {**old, "status": "killed"}, "h", suite2)
    # more or other tests now run the line
    assert mutate.suite_key(tests + ["tests/core/test_core_board.py"], COV) != suite
    # the module changed, or the run said nothing: run it again
    assert mutate._todo(m, {**old, "status": "killed"}, "h2", suite)
    assert mutate._todo(m, {**old, "status": "error"}, "h", suite)
    assert mutate._todo(m, None, "h", suite)
    # a "hang" recorded with its limit stands (a run that reaches the cap is no longer one);
    # one recorded without it may have been the cap reached: run it again
    hung = {**old, "status": "hung", "seconds": 90.1}
    assert not mutate._todo(m, {**hung, "limit_s": 90.0}, "h", suite)
    assert mutate._todo(m, hung, "h", suite)


def test_coverage_gives_each_test_the_lines_it_ran_and_import_lines_to_the_file(tmp_path):
    """The coverage run's plugin (host_tools/dev/covctx.py) end to end: a context per test, the
    lines a thread started by the test ran are that test's too, what ran at import has no
    test, and a private copy of the firmware counts as the firmware."""
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "mod.py").write_text(
        "import _thread\n"
        "def one():\n"
        "    return 1\n"
        "def two():\n"
        "    return 2\n"
        "def in_thread(done):\n"
        "    done.append(3)\n"
    )  # fmt: skip
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "import threading, time\n"
        "from firmware import mod\n"
        "def test_one():\n"
        "    assert mod.one() == 1\n"
        "def test_two():\n"
        "    done = []\n"
        "    t = threading.Thread(target=mod.in_thread, args=(done,))\n"
        "    t.start(); t.join()\n"
        "    assert mod.two() == 2 and done == [3]\n"
        "def test_copy(tmp_path):\n"
        "    import importlib.util, shutil\n"
        "    shutil.copytree('firmware', tmp_path / 'firmware')\n"
        "    spec = importlib.util.spec_from_file_location('m2', tmp_path / 'firmware/mod.py')\n"
        "    m2 = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(m2)\n"
        "    assert m2.two() == 2\n"
    )  # fmt: skip
    rc = tmp_path / "covrc"
    rc.write_text(mutate.COVERAGE_RC)
    data, times = tmp_path / "cov", tmp_path / "times.json"
    env = dict(os.environ, MUTATE_TEST_TIMES=str(times),
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(mutate.ROOT)]))  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "coverage", "run", "--rcfile", str(rc), "--data-file", str(data),
         "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p",
         "host_tools.dev.covctx", "--rootdir", str(tmp_path), "-c", os.devnull, "tests/test_x.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    entry = mutate._read_contexts(data, times)
    assert entry["tests"] == ["tests/test_x.py::test_copy", "tests/test_x.py::test_one",
                              "tests/test_x.py::test_two"]  # fmt: skip
    assert all(t >= 0 for t in entry["times"])
    lines = entry["lines"]["firmware/mod.py"]
    assert lines["3"] == [1] and lines["5"] == [0, 2]  # two() in the copy too
    assert lines["7"] == [2]  # run on the test's own thread
    assert lines["2"] == [-1, 0] and lines["4"] == [-1, 0]  # the `def`s: at import, and the copy's


def test_a_private_copy_of_the_firmware_counts_as_the_firmware():
    # tests that run a copy (fw_copy, under pytest's tmp_path) cover the same lines
    assert mutate.firmware_rel("/tmp/pytest-1/test_a0/firmware/stim/safe.py") == (
        "firmware/stim/safe.py")  # fmt: skip
    assert mutate.firmware_rel("/w/build/mutation/work/firmware/main.py") == "firmware/main.py"
    assert mutate.firmware_rel("/w/firmware/x/firmware/stim/app.py") == "firmware/stim/app.py"
    assert mutate.firmware_rel("/w/host_tools/sim/rig.py") is None


def test_a_hang_counts_as_killed_and_a_plain_timeout_neither_way(monkeypatch):
    monkeypatch.setattr(mutate, "module_hash", lambda mod: "h")
    monkeypatch.setattr(mutate, "equivalents", lambda: {})
    _made(monkeypatch, 3)

    r = _result
    res = {"safe:1:0:cmp": r("safe:1:0:cmp", "hung"), "safe:2:0:cmp": r("safe:2:0:cmp", "timeout"),
           "safe:3:0:cmp": r("safe:3:0:cmp", "survived")}  # fmt: skip
    row = mutate.summarise(res, ["safe"])[0]
    assert (row["killed"], row["timeout"], row["survived"]) == (1, 1, 1)
    assert row["score"] == pytest.approx(50.0)


def test_a_mutant_inside_a_statement_written_over_lines_takes_the_tests_of_its_first_line():
    src = (
        "def f(a):\n"
        "    d = {\n"
        "        'x': a * 1000,\n"
        "    }\n"
        "    if (a >\n"
        "            2):\n"
        "        return d\n"
    )
    assert mutate.statement_line(src, 3) == 2  # inside the dict literal: the assignment's line
    assert mutate.statement_line(src, 6) == 5  # the second line of a condition: the `if`
    assert mutate.statement_line(src, 7) == 7
    assert mutate.statement_line(src, 1) == 1


def test_a_mutant_meets_its_first_test_file_alone_before_the_rest():
    tests = ["tests/a.py::t2", "tests/b.py::t1", "tests/a.py::t1", "tests/c.py"]
    assert mutate.stages(tests) == [["tests/a.py::t2", "tests/a.py::t1"],
                                    ["tests/b.py::t1", "tests/c.py"]]  # fmt: skip
    assert mutate.stages(["tests/c.py"]) == [["tests/c.py"]]
    assert mutate.stages([]) == []
    # earlier killers (a count of them ahead of the rest) run alone first
    assert mutate.stages(tests, 2) == [["tests/a.py::t2", "tests/b.py::t1"],
                                       ["tests/a.py::t1", "tests/c.py"]]  # fmt: skip


def test_the_tests_that_killed_mutants_of_the_same_line_then_module_run_first():
    m = mutate.Mutant("safe", 9, 0, "cmp", "a", "b")
    res = {
        "safe:9:0:const0": {"module": "safe", "line": 9, "status": "killed", "failed": "t/c::z"},
        "safe:3:0:cmp": {"module": "safe", "line": 3, "status": "killed", "failed": "t/b::y"},
        "safe:4:0:cmp": {"module": "safe", "line": 4, "status": "killed", "failed": "t/b::y"},
        "safe:5:0:cmp": {"module": "safe", "line": 5, "status": "killed", "failed": "t/a::x"},
        "app:9:0:cmp": {"module": "app", "line": 9, "status": "killed", "failed": "t/d::w"},
        "safe:6:0:cmp": {"module": "safe", "line": 6, "status": "survived", "failed": ""},
    }
    tests = ["t/a::x", "t/b::y", "t/c::z", "t/d::w", "t/e::v"]
    assert mutate.killers_first(m, tests, res) == (["t/c::z", "t/b::y", "t/a::x", "t/d::w",
                                                    "t/e::v"], 3)  # fmt: skip
    assert mutate.killers_first(mutate.Mutant("host", 1, 0, "cmp", "a", "b"), tests, res) == (
        tests, 0)  # fmt: skip
    # the order does not change which tests judged a mutant
    assert mutate.suite_key(tests, COV) == mutate.suite_key(tests[::-1], COV)


def test_results_are_kept_one_line_per_mutant_without_stale_sources(tmp_path, monkeypatch):
    """bench/mutation.json is committed: one sorted line per mutant, the covering tests kept
    as a count, and results for a module's older sources dropped; what is read back runs and
    summarises as what was written."""
    monkeypatch.setattr(mutate, "module_hash", lambda mod: "h")
    r = _result
    res = {"safe:2:0:cmp": r("safe:2:0:cmp", "survived"),
           "safe:1:0:cmp": r("safe:1:0:cmp", "killed"),
           "safe:3:0:cmp": {**r("safe:3:0:cmp", "killed"), "hash": "older"}}  # fmt: skip
    res["safe:1:0:cmp"].update(n_tests=2, tests=["tests/a.py::t1", "tests/a.py::t2"])
    path = tmp_path / "mutation.json"
    mutate.save_results(res, path)
    lines = path.read_text().splitlines()
    assert lines[0] == "{" and lines[-1] == "}" and len(lines) == 4
    assert lines[1].startswith('"safe:1:0:cmp": {') and lines[2].startswith('"safe:2:0:cmp": {')
    back = mutate.load_results(path)
    assert sorted(back) == ["safe:1:0:cmp", "safe:2:0:cmp"]
    assert back["safe:1:0:cmp"]["n_tests"] == 2 and "tests" not in back["safe:1:0:cmp"]
    assert back["safe:2:0:cmp"]["id"] == "safe:2:0:cmp"
    monkeypatch.setattr(mutate, "equivalents", lambda: {})
    _made(monkeypatch, 3)
    row = mutate.summarise(back, ["safe"])[0]
    assert (row["mutants"], row["killed"], row["survived"]) == (2, 1, 1)
    assert [s["id"] for s in row["survivors"]] == ["safe:2:0:cmp"]


def test_a_mutant_that_breaks_collection_is_killed_if_the_tests_pass_without_it(
    tmp_path, monkeypatch
):
    """Deleting gestures.BUTTONS breaks host_tools.protocol (it reads the button names from
    the firmware) while pytest collects, so no test runs to a verdict: the suite fails all the
    same, and the same tests pass without the mutant, so it is killed. Had they failed without
    it too, the run would say nothing (error)."""
    monkeypatch.setattr(mutate, "WORK", tmp_path / "work")
    monkeypatch.setattr(mutate, "_STAGE_OK", {})
    mutate.prepare_work()
    (m,) = [m for m in mutate.mutants_of("gestures", mutate.module_path("gestures").read_text())
            if m.op == "delete" and m.before.startswith("BUTTONS =")]  # fmt: skip
    status, _secs, failed = mutate.run_mutant(m, ["tests/firmware/test_gestures.py"], 300)
    assert status == "killed" and failed.startswith("at collection: ") and "BUTTONS" in failed

    calls = []

    def fake(tests, deselect, timeout_s, work):
        mutated = mutate.module_path("gestures", work).read_text() != m_src
        calls.append(mutated)
        return ("error", "E   KeyError") if mutated else ("killed", "")

    m_src = mutate.module_path("gestures", mutate.WORK).read_text()
    monkeypatch.setattr(mutate, "_pytest", fake)
    monkeypatch.setattr(mutate, "_STAGE_OK", {})
    status, _secs, _failed = mutate.run_mutant(m, ["tests/firmware/test_gestures.py"], 300)
    assert status == "error" and calls == [True, False]


def test_tests_run_on_a_mutant_know_it():
    """test_fuzz_unit's broken firmwares edit the firmware's source; under a mutant that changed
    the text they edit they skip instead of failing, which would count the mutant as caught."""
    assert mutate._env()["STIM_MUTANT"] == "1"

"""Mutation testing of the safety modules (`make mutate`): would the tests notice if the code
were subtly wrong?

    python -m host_tools.dev.mutate [--modules engine,safe] [--sample N] [--seed S]
                                     [--timeout S] [--fresh]

Each mutant is one small change to one line of `firmware/stim/<module>.py` (or `boot.py`,
`main.py`): a comparison flipped (`<` and `<=`, `>` and `>=`, `==` and `!=`), a boolean
operator swapped, a `not` dropped, a small integer constant moved by one or set to 0, a call or
an assignment statement deleted (`pass` instead), a `return` of a value replaced by a bare
`return`. The tests that execute the mutated line run against it; the mutant is *killed* when
any of them fails (or the run exceeds its time: a hang is a detection too), and *survives*
when all pass.

Why a driver of its own rather than mutmut or cosmic-ray: the firmware is not imported by the
tests the usual way. The simulated chip compiles it from `firmware/` with a cost charged per
statement (host_tools/rp2sim/cpucost.py), the MicroPython VM and the virtual board load the
files themselves, and mutmut's trampolines (imports of mutmut inside the mutated source)
would run on neither. Here a mutant is a real edit of a copy of the tree.

How:
- a working copy of the project (build/mutation/work: sources, tests, boards; the venv and
  node_modules are shared), so the tree you edit is never touched;
- which tests execute which line: coverage.py over each test file, every thread traced (the
  simulated unit runs its firmware on a thread of its own), with a context per test (the
  plugin host_tools/dev/covctx.py, as pytest-cov's --cov-context=test does) and each test's
  time; kept in build/mutation/coverage.json, and a test file is measured again only when it
  changed (all of them when the firmware, the simulator or the tests' shared helpers did);
  lines run only on the MicroPython VM or the virtual board are not seen by coverage and
  their mutants are reported as "not covered";
- each mutant: the tests that ran its line (node ids; a whole file when the line ran there
  outside any test, at import), `pytest -x`; the tests that killed other mutants of the same
  line or module run alone first, then the module's own test files, then the quickest; a
  time limit: HANG_FACTOR times what those tests took in the coverage run plus
  HANG_MARGIN_S (a run past it is a hang, counted as killed), never more than --timeout
  (default 1800 s; a run past that cap counts neither way: slow tests and a hang look alike,
  and a survivor of the slow whole-unit fuzz is no kill); --jobs
  mutants at a time, each on a working copy of its own; a run that pytest stops before any
  test's verdict (the mutant breaks what a conftest or host_tools imports while collecting)
  is a kill when the same tests pass without the mutant;
- results in bench/mutation.json (committed, one line per mutant), keyed by the mutant and a
  hash of its module, so an interrupted run, or one on a fresh clone, resumes where the last
  stopped and a changed module is tested again (results for a module's older sources are
  dropped); a survivor is run again when the tests that ran it changed (a kill stands);
- tests/mutation_equivalent.txt lists reviewed equivalent mutants (`id  reason`): they count
  neither way, and the table says how many;
- build/mutation.md: per module, mutants, killed, survived, not covered, equivalent, score
  (killed / (killed + survived)), and every survivor; `make report` shows the summary.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import functools
import hashlib
import json
import os
import queue
import random
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "mutation"
WORK = OUT / "work"
# Each mutant's last outcome, committed: a fresh clone resumes where the last run stopped, and
# the score can be read (and challenged) without running anything.
RESULTS = ROOT / "bench" / "mutation.json"
COVERAGE = OUT / "coverage.json"
TABLE = ROOT / "build" / "mutation.md"
EQUIVALENT = ROOT / "tests" / "mutation_equivalent.txt"
SAFETY_MODULES = (
    "safe", "limits", "electrode", "stimulator", "engine", "gestures", "session", "battery",
    "hostcmd", "host", "settings", "app", "main",
)  # fmt: skip
# Not copied into the working copy: history, environments, what is built (node_modules is
# linked: the MicroPython VM's tests need it).
SKIP = {".git", ".venv", "node_modules", "build", "report", ".pytest_cache", ".ruff_cache",
        ".hypothesis", "stim_host_tools.egg-info"}  # fmt: skip
_CMP_SWAP = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
}  # fmt: skip


@dataclass
class Mutant:
    module: str  # "engine", or "boot" / "main" for the top-level files
    line: int
    col: int
    op: str  # what kind of change
    before: str  # the source segment replaced
    after: str  # its replacement

    @property
    def id(self) -> str:
        return "%s:%d:%d:%s" % (self.module, self.line, self.col, self.op)


def module_path(module: str, root: Path = ROOT) -> Path:
    if module in ("boot", "main_py"):
        return root / "firmware" / ("boot.py" if module == "boot" else "main.py")
    return root / "firmware" / "stim" / ("%s.py" % module)


def _span(node: ast.AST) -> tuple[int, int, int, int]:
    n: ast.expr = node  # type: ignore[assignment]  # every mutated node has a position
    return n.lineno, n.col_offset, n.end_lineno or n.lineno, n.end_col_offset or n.col_offset


def _replace(source: str, span: tuple[int, int, int, int], text: str) -> str:
    lines = source.splitlines(keepends=True)
    l0, c0, l1, c1 = span
    # col offsets are in UTF-8 bytes
    head = lines[l0 - 1].encode()[:c0].decode()
    tail = lines[l1 - 1].encode()[c1:].decode()
    return "".join(lines[: l0 - 1]) + head + text + tail + "".join(lines[l1:])


def _in_const(node: ast.AST, parents: dict) -> bool:
    p = parents.get(node)
    while p is not None:
        if isinstance(p, ast.Call) and getattr(p.func, "id", None) == "const":
            return True
        p = parents.get(p)
    return False


def _returns_none(node: ast.Return) -> bool:
    """A bare `return` or `return None`: both compile to the same code (CPython and
    MicroPython alike), so turning one into the other is no mutant."""
    v = node.value
    return v is None or (isinstance(v, ast.Constant) and v.value is None)


def mutants_of(module: str, source: str) -> list[Mutant]:
    """Every mutant of one module's source, in source order."""
    tree = ast.parse(source)
    parents: dict = {}
    for n in ast.walk(tree):
        for c in ast.iter_child_nodes(n):
            parents[c] = n
    seg_of = _segments(source)
    out: list[Mutant] = []

    def add(node: ast.AST, op: str, new_node: ast.AST | None = None, text: str | None = None):
        before = seg_of(node)
        after = text if text is not None else ast.unparse(new_node)  # type: ignore[arg-type]
        if before and after != before:
            out.append(Mutant(module, node.lineno, node.col_offset, op, before, after))  # type: ignore[attr-defined]

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            swap = _CMP_SWAP.get(type(node.ops[0]))
            if swap is not None:
                add(node, "cmp", ast.Compare(node.left, [swap()], node.comparators))
        elif isinstance(node, ast.BoolOp):
            other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            add(node, "boolop", ast.BoolOp(other, node.values))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            add(node, "not", text=seg_of(node.operand))
        elif (
            isinstance(node, ast.Constant)
            and type(node.value) is int
            and not _in_const(node, parents)
            and abs(node.value) < 1 << 20
        ):
            v = node.value
            for new in sorted({v + 1, v - 1, 0} - {v}):
                add(node, "const%+d" % (new - v) if new else "const0", text=repr(new))
        elif isinstance(node, ast.Return) and not _returns_none(node):
            add(node, "return", text="return")
        if isinstance(node, (ast.Expr, ast.Assign, ast.AugAssign)) and not (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        ):
            if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Call):
                continue
            value: ast.expr = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "const":
                continue  # a name every use of which would fail: nothing a test must catch
            add(node, "delete", text="pass")
    out.sort(key=lambda m: (m.line, m.col, m.op))
    return out


def _segments(source: str):
    """seg(node): the node's source text, as ast.get_source_segment gives it, from lines split
    once (get_source_segment splits the whole source at every call)."""
    lines = [ln.encode() for ln in source.splitlines(keepends=True)]

    def seg(node: ast.AST) -> str:
        end_line = getattr(node, "end_lineno", None)
        end_col = getattr(node, "end_col_offset", None)
        if end_line is None or end_col is None:
            return ""
        l0, c0 = node.lineno - 1, node.col_offset  # type: ignore[attr-defined]
        l1 = end_line - 1
        if l0 == l1:
            return lines[l0][c0:end_col].decode()
        parts = [lines[l0][c0:]] + lines[l0 + 1 : l1] + [lines[l1][:end_col]]
        return b"".join(parts).decode()

    return seg


@functools.lru_cache(maxsize=4)
def _positions(source: str) -> dict:
    """{(line, col): [(segment, span)]} of every node of a module's source."""
    seg = _segments(source)
    out: dict = {}
    for node in ast.walk(ast.parse(source)):
        if hasattr(node, "end_col_offset"):
            key = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
            out.setdefault(key, []).append((seg(node), _span(node)))
    return out


def apply(m: Mutant, source: str) -> str:
    """The module's source with mutant m applied (found again by position and text). Raises
    ValueError if m no longer matches the source, SyntaxError if the result does not parse
    (a mutant that cannot even be imported must not count as killed)."""
    for seg, span in _positions(source).get((m.line, m.col), ()):
        if seg == m.before:
            out = _replace(source, span, m.after)
            ast.parse(out)
            return out
    raise ValueError("mutant %s no longer matches its module" % m.id)


def invalid(mutants: list[Mutant]) -> list[str]:
    """The ids of mutants that do not apply to their module as it stands or do not parse:
    checked before anything runs, since a mutant that cannot be imported would fail every test
    and count as killed."""
    sources: dict[str, str] = {}
    bad = []
    for m in mutants:
        src = sources.get(m.module)
        if src is None:
            src = sources[m.module] = module_path(m.module).read_text()
        try:
            apply(m, src)
        except (ValueError, SyntaxError):
            bad.append(m.id)
    return bad


# ---- the working copy --------------------------------------------------------------------------
def _tree_hash(paths: list[Path], extra: str = "") -> str:
    """What decides which lines the tests run: the firmware, the tests and the simulator
    (host_tools, but not its developer tools, this driver among them), and how coverage.py
    is set up (extra)."""
    h = hashlib.sha256(extra.encode())
    dev = ROOT / "host_tools" / "dev"
    for top in paths:
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*.py") if p.is_file())
        for p in files:
            if dev in p.parents:
                continue
            h.update(str(p.relative_to(ROOT)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def prepare_work(work: Path | None = None) -> Path:
    """A fresh copy of the project to mutate (the venv and node_modules are shared)."""
    work = work or WORK
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for src in sorted(ROOT.iterdir()):
        name = src.name
        if name in SKIP:
            continue
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, work / name)
    if (ROOT / "node_modules").exists():
        (work / "node_modules").symlink_to(ROOT / "node_modules")
    return work


def _env(work: Path | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(work or WORK) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["HYPOTHESIS_PROFILE"] = env.get("HYPOTHESIS_PROFILE", "default")
    # Tests that edit the firmware's source themselves (test_fuzz_unit's broken firmwares)
    # skip, rather than fail, when the mutant already changed the text they edit.
    env["STIM_MUTANT"] = "1"
    return env


def test_files() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py"))


# ---- which tests run which firmware lines ------------------------------------------------------
def _global_key() -> str:
    """What every test file's coverage depends on: the firmware, the simulator (host_tools but
    its developer tools), the tests' shared helpers and conftests, pytest's settings."""
    shared = [p for p in sorted((ROOT / "tests").rglob("*.py")) if not p.name.startswith("test_")]
    files = [ROOT / "firmware", ROOT / "host_tools", ROOT / "pyproject.toml", *shared]
    return _tree_hash(files, COVERAGE_RC)


def _file_hash(tf: str) -> str:
    return hashlib.sha256((ROOT / tf).read_bytes()).hexdigest()[:16]


# Every copy of the firmware is measured, not only the working copy's: many tests run a private
# copy (the fw_copy fixture: a stand-in app, a board file of their own) under pytest's tmp_path,
# and a mutant reaches those copies too, since they are made from the working copy.
COVERAGE_RC = "[run]\nconcurrency = thread\ninclude = */firmware/*\nparallel = false\n"


def firmware_rel(path: str) -> str | None:
    """A measured file as a path in the project ("firmware/stim/safe.py"), wherever the copy
    that ran lies; None when it is not under a firmware/ folder."""
    parts = Path(path).parts
    if "firmware" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("firmware")
    return str(Path(*parts[i:]))


def _read_contexts(data: Path, times: Path) -> dict:
    """One test file's entry of the map from its coverage data (a context per test, see
    host_tools/dev/covctx.py) and its tests' times: {"tests": [node id], "times": [seconds],
    "lines": {firmware file: {line: [index of a test, or -1: run outside any test]}}}."""
    from coverage import CoverageData

    t = json.loads(times.read_text()) if times.exists() else {}
    tests = sorted(t)
    index = {nid: i for i, nid in enumerate(tests)}
    lines: dict[str, dict[str, list[int]]] = {}
    cd = CoverageData(basename=str(data))
    cd.read()
    for f in cd.measured_files():
        rel = firmware_rel(f)
        if rel is None:
            continue
        by_line = lines.setdefault(rel, {})  # one file, many copies: the union of their lines
        for ln, ctxs in (cd.contexts_by_lineno(f) or {}).items():
            seen = set(by_line.get(str(ln), ())) | {index.get(c, -1) for c in ctxs}
            by_line[str(ln)] = sorted(seen)
    return {"tests": tests, "times": [t[n] for n in tests], "lines": lines}


def coverage_map(jobs: int = 2, fresh: bool = False) -> dict:
    """{"key": ..., "files": {test file: {"hash", "seconds", "tests", "times", "lines"}}}: for
    every test file, which of its tests run which firmware line, from coverage.py with a
    context per test, one run per test file on a working copy. Kept in
    build/mutation/coverage.json: a file is measured again only when it changed, and all of
    them when the firmware, the simulator or the tests' shared helpers did."""
    key = _global_key()
    old: dict = {}
    if not fresh and COVERAGE.exists():
        old = json.loads(COVERAGE.read_text())
    kept = old.get("files", {}) if old.get("key") == key else {}
    present = test_files()
    files: dict[str, dict] = {tf: kept[tf] for tf in present if tf in kept}
    todo = []
    for tf in present:
        h = _file_hash(tf)
        if files.get(tf, {}).get("hash") != h:
            todo.append((tf, h))
    if not todo:
        return {"key": key, "files": files}
    work = prepare_work()
    rc = work / "build" / "covrc"
    rc.parent.mkdir(parents=True, exist_ok=True)
    rc.write_text(COVERAGE_RC)
    procs: list[tuple[str, str, subprocess.Popen, Path, float]] = []

    def finish(tf: str, h: str, p: subprocess.Popen, data: Path, t0: float) -> None:
        p.wait()
        times = data.with_suffix(".times.json")
        entry: dict[str, Any] = {"hash": h, "seconds": round(time.monotonic() - t0, 1),
                                 "tests": [], "times": [], "lines": {}}  # fmt: skip
        if data.exists():
            entry.update(_read_contexts(data, times))
        files[tf] = entry
        COVERAGE.parent.mkdir(parents=True, exist_ok=True)
        COVERAGE.write_text(json.dumps({"key": key, "files": files}))  # resumable, file by file
        print(
            "coverage: %s (%d tests, %d firmware files, %.0f s)"
            % (tf, len(entry["tests"]), len(entry["lines"]), entry["seconds"]),
            flush=True,
        )

    for tf, h in todo:
        while len(procs) >= jobs:
            for item in procs:
                if item[2].poll() is not None:
                    procs.remove(item)
                    finish(*item)
                    break
            else:
                time.sleep(0.2)
        data = work / "build" / ("cov-%s" % tf.replace("/", "_"))
        env = _env()
        env["MUTATE_TEST_TIMES"] = str(data.with_suffix(".times.json"))
        cmd = [sys.executable, "-m", "coverage", "run", "--rcfile", str(rc), "--data-file",
               str(data), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
               "-p", "host_tools.dev.covctx", tf]  # fmt: skip
        p = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
        procs.append((tf, h, p, data, time.monotonic()))
    for item in procs:
        finish(*item)
    return {"key": key, "files": files}


@functools.lru_cache(maxsize=16)
def _statement_starts(source: str) -> tuple[tuple[int, int, int], ...]:
    """(first line, last line, nesting depth) of every statement, compound ones (if, for,
    def...) included: the deepest one holding a line is the statement that line belongs to."""
    out = []

    def walk(node: ast.AST, depth: int) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                end = child.end_lineno or child.lineno
                out.append((child.lineno, end, depth))
            walk(child, depth + 1)

    walk(ast.parse(source), 0)
    return tuple(out)


def statement_line(source: str, line: int) -> int:
    """The line coverage.py reports for the statement that holds `line`: a statement written
    over several lines (a dict literal, a call with its arguments) counts as run on its first
    line only, so a mutant on a later line takes that first line's tests."""
    best = None
    for first, last, depth in _statement_starts(source):
        if first <= line <= last and (best is None or depth > best[1]):
            best = (first, depth)
    return line if best is None else best[0]


def covering(m: Mutant, cov: dict) -> list[str]:
    """The tests that run the mutant's line, as pytest arguments: node ids, or a whole test
    file when the line ran in it outside any test (at import or collection). The module's own
    test files first (test_<module>, test_core_<module>: the likeliest to fail, so pytest -x
    stops early), then the rest, quickest first."""
    rel = str(module_path(m.module, Path(".")))
    line = str(statement_line(module_path(m.module).read_text(), m.line))
    own = ("test_%s.py" % m.module, "test_core_%s.py" % m.module)
    picked: list[tuple[bool, float, str]] = []
    for tf, entry in cov["files"].items():
        idx = entry["lines"].get(rel, {}).get(line)
        if not idx:
            continue
        first = Path(tf).name not in own
        if -1 in idx:
            picked.append((first, entry["seconds"], tf))
        else:
            picked += [(first, entry["times"][i], entry["tests"][i]) for i in idx]
    return [t for _first, _s, t in sorted(picked)]


def test_seconds(cov: dict) -> dict[str, float]:
    """{test file or node id: seconds} from the coverage run (which traces every line, so it
    is slower than a plain run)."""
    out: dict[str, float] = {}
    for tf, entry in cov.get("files", {}).items():
        out[tf] = entry["seconds"]
        out.update(zip(entry["tests"], entry["times"], strict=True))
    return out


# A mutant's tests may take this many times what they took in the coverage run, plus a margin
# for start-up, before the run is called a hang: the mutant made the tests loop or wait, and
# that is a detection.
HANG_FACTOR = 3.0
HANG_MARGIN_S = 30.0


def time_limit(tests: list[str], secs: dict[str, float], cap_s: float) -> tuple[float, bool]:
    """(seconds, from_baseline): the time the mutant's covering tests may take. From their
    recorded times when every one has one and that comes within cap_s (a run past it is a
    hang: killed), else cap_s (--timeout; a run past it counts neither way, since slow tests
    and a hang look alike: a survivor whose tests take longer than the cap is not a kill)."""
    if tests and all(t in secs for t in tests):
        limit_s = HANG_FACTOR * sum(secs[t] for t in tests) + HANG_MARGIN_S
        if limit_s < cap_s:
            return limit_s, True
    return cap_s, False


def suite_key(tests: list[str], cov: dict) -> str:
    """Which tests a result was judged by, and their files' contents: a survivor or a timeout
    is run again when this changes (a new test may kill it); a kill stands."""
    h = hashlib.sha256("\n".join(sorted(tests)).encode())
    for tf in sorted({t.split("::")[0] for t in tests}):
        h.update(cov["files"].get(tf, {}).get("hash", "").encode())
    return h.hexdigest()[:16]


# ---- running mutants --------------------------------------------------------------------------
def equivalents() -> dict[str, str]:
    """{mutant id: reason} from tests/mutation_equivalent.txt. ValueError for an id listed
    twice: one reason would silently replace the other."""
    out: dict[str, str] = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                mid, _, why = line.partition(" ")
                if mid in out:
                    raise ValueError("%s: %s is listed twice" % (EQUIVALENT.name, mid))
                out[mid] = why.strip()
    return out


_BASELINE: dict[str, bool] = {}  # test id -> it passes on the unmutated working copy


def passes_unmutated(test_id: str, timeout_s: float, work: Path | None = None) -> bool:
    """A failure counts as a kill only if the same test passes without the mutant (a test that
    fails in the working copy anyway says nothing about the mutant)."""
    if test_id not in _BASELINE:
        try:
            r = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                 "no:xdist", test_id],
                cwd=work or WORK, env=_env(work), capture_output=True, text=True,
                timeout=timeout_s,
            )  # fmt: skip
            _BASELINE[test_id] = r.returncode == 0
        except subprocess.TimeoutExpired:
            _BASELINE[test_id] = False
    return _BASELINE[test_id]


_STAGE_OK: dict[tuple, bool] = {}  # (tests, deselected) -> they pass unmutated


def _stage_passes(stage: list[str], deselect: list[str], timeout_s: float, work: Path) -> bool:
    key = (tuple(stage), tuple(deselect))
    if key not in _STAGE_OK:
        _STAGE_OK[key] = _pytest(stage, deselect, timeout_s, work)[0] == "survived"
    return _STAGE_OK[key]


def _pytest(
    tests: list[str], deselect: list[str], timeout_s: float, work: Path
) -> tuple[str, str]:
    args = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    for t in deselect:
        args += ["--deselect", t]
    try:
        r = subprocess.run(
            args + tests, cwd=work, env=_env(work), capture_output=True, text=True,
            timeout=timeout_s,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "timeout", ""
    failed = next(
        (ln.split(" - ")[0].split(" ", 1)[1] for ln in r.stdout.splitlines()
         if ln.startswith(("FAILED ", "ERROR ")) and "::" in ln),
        "",
    )  # fmt: skip
    if r.returncode == 0 or r.returncode == 5:  # 5: every test deselected
        return "survived", ""
    if r.returncode in (3, 4):  # pytest's own error, or a test id it could not find
        out = (r.stdout + r.stderr).strip().splitlines()
        return "error", out[-1][:200] if out else "pytest exit %d" % r.returncode
    return "killed", failed


KILLERS = 6  # at most this many earlier killers run ahead of the rest


def killers_first(m: Mutant, tests: list[str], res: dict) -> tuple[list[str], int]:
    """(tests, n): the tests that killed other mutants of the same line first, then those
    that killed mutants of the same module (most kills first; at most KILLERS of them: n),
    then the rest in their order. A test that caught one change of a line or a module is the
    likeliest to catch the next, and pytest -x stops there."""
    line: dict[str, int] = {}
    module: dict[str, int] = {}
    for r in res.values():
        if r.get("module") == m.module and r.get("status") == "killed" and r.get("failed"):
            t = r["failed"]
            module[t] = module.get(t, 0) + 1
            if r.get("line") == m.line:
                line[t] = line.get(t, 0) + 1
    ahead = sorted((t for t in tests if t in module), key=lambda t: (-line.get(t, 0), -module[t]))
    ahead = ahead[:KILLERS]
    return ahead + [t for t in tests if t not in ahead], len(ahead)


def stages(tests: list[str], ahead: int = 0) -> list[list[str]]:
    """The earlier killers alone (`ahead` of them), or else the first test file's tests alone,
    then the rest: collecting a test file costs seconds (many build a simulated chip at import),
    and most mutants fail in the first stage."""
    if ahead:
        head, rest = tests[:ahead], tests[ahead:]
    else:
        first = tests[0].split("::")[0] if tests else ""
        head = [t for t in tests if t.split("::")[0] == first]
        rest = [t for t in tests if t.split("::")[0] != first]
    return [s for s in (head, rest) if s]


def run_mutant(
    m: Mutant, tests: list[str], timeout_s: float, work: Path | None = None, ahead: int = 0
) -> tuple[str, float, str]:
    """("killed" | "survived" | "timeout" | "error", seconds, the failing test or ""). A test
    that fails without the mutant too (the working copy is not a git checkout, for one) is
    left out and the rest run again; "error" when that happens more than a few times."""
    work = work or WORK
    path = module_path(m.module, work)
    original = path.read_text()
    t0 = time.monotonic()
    status, failed = "survived", ""
    try:
        for stage in stages(tests, ahead):
            # tests already seen failing without any mutant are left out from the start
            deselect = [t for t, ok in list(_BASELINE.items()) if not ok]
            for _ in range(5):
                left_s = max(1.0, timeout_s - (time.monotonic() - t0))
                path.write_text(apply(m, original))
                status, failed = _pytest(stage, deselect, left_s, work)
                path.write_text(original)
                if status == "error" or (status == "killed" and not failed):
                    # No test ran to a verdict: the mutant broke what pytest imports while
                    # collecting (a conftest, a test module, host_tools reading a firmware
                    # constant). The suite fails on it, so it is caught, provided the same
                    # tests pass without it.
                    if _stage_passes(stage, deselect, timeout_s, work):
                        status, failed = "killed", "at collection: %s" % (failed or "pytest")
                    else:
                        status = "error"
                    break
                if status != "killed" or passes_unmutated(failed, timeout_s, work):
                    break
                deselect.append(failed)
                status, failed = "error", ""
            if status != "survived":
                break
    finally:
        path.write_text(original)
    return status, time.monotonic() - t0, failed


def module_hash(module: str) -> str:
    return hashlib.sha256(module_path(module).read_bytes()).hexdigest()[:16]


def load_results(path: Path | None = None) -> dict:
    path = path or RESULTS
    res = json.loads(path.read_text()) if path.exists() else {}
    return {mid: {**r, "id": mid} for mid, r in res.items()}


# What a result keeps: the mutant, its module's hash, the outcome and what decided it. The
# covering tests are kept as a count (the coverage map lists them; "suite" says whether they
# changed), so the file stays small enough to commit.
_KEEP = ("module", "line", "col", "op", "before", "after", "hash", "status", "seconds",
         "limit_s", "failed", "suite", "n_tests")  # fmt: skip


def save_results(res: dict, path: Path | None = None) -> None:
    """One line per mutant, sorted, so that a run's change to the file reads as a diff of the
    mutants it ran. Results for a module's older sources are dropped: they are never read
    again (summarise and the run look only at the module's current hash)."""
    path = path or RESULTS
    hashes: dict[str, str | None] = {}
    lines = []
    for mid in sorted(res):
        r = res[mid]
        mod = r.get("module", "")
        if mod not in hashes:
            hashes[mod] = module_hash(mod) if module_path(mod).exists() else None
        if r.get("hash") != hashes[mod]:
            continue
        keep = {k: r[k] for k in _KEEP if k in r}
        lines.append("%s: %s" % (json.dumps(mid), json.dumps(keep, sort_keys=True)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    tmp.replace(path)


def select(modules: list[str], sample: int | None, seed: int) -> list[Mutant]:
    ms: list[Mutant] = []
    for mod in modules:
        ms += mutants_of(mod, module_path(mod).read_text())
    if sample is not None and sample < len(ms):
        ms = random.Random(seed).sample(ms, sample)
        ms.sort(key=lambda m: (m.module, m.line, m.col, m.op))
    return ms


def summarise(res: dict, modules: list[str]) -> list[dict]:
    eq = equivalents()
    rows = []
    for mod in modules:
        h = module_hash(mod)
        ids = {m.id for m in mutants_of(mod, module_path(mod).read_text())}
        rs = {k: v for k, v in res.items() if k in ids and v["module"] == mod and v["hash"] == h}
        count = {"killed": 0, "survived": 0, "not covered": 0, "equivalent": 0, "timeout": 0}
        survivors = []
        for mid, r in sorted(rs.items()):
            if mid in eq:
                count["equivalent"] += 1
            elif r["status"] in ("killed", "hung"):
                count["killed"] += 1  # hung: past HANG_FACTOR times its tests' own time
            elif r["status"] == "timeout":
                # Past --timeout with no recorded time for some covering test: a hang or slow
                # tests, the run cannot tell, so it counts neither way.
                count["timeout"] += 1
            elif r["status"] == "not covered":
                count["not covered"] += 1
            elif r["status"] == "error":
                continue  # its test fails without the mutant too: the run says nothing
            else:
                count["survived"] += 1
                survivors.append(r)
        judged = count["killed"] + count["survived"] + count["not covered"]
        score = 100.0 * count["killed"] / judged if judged else None
        rows.append({"module": mod, "mutants": len(rs), **count, "score": score,
                     "survivors": survivors})  # fmt: skip
    return rows


def write_table(rows: list[dict], path: Path = TABLE) -> None:
    lines = [
        "# Mutation testing of the safety modules",
        "",
        "`make mutate` (host_tools/dev/mutate.py). Score = killed / (killed + survived + not "
        "covered); a mutant whose tests ran past %g times their recorded time is a hang and "
        "counts as killed; reviewed equivalent mutants (tests/mutation_equivalent.txt) count "
        "neither way, nor do mutants that reached --timeout first (timed out). Only the "
        "mutants run so far are counted." % HANG_FACTOR,
        "",
        "| module | mutants run | killed | survived | not covered | equivalent | timed out "
        "| score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = "-" if r["score"] is None else "%.1f %%" % r["score"]
        lines.append(
            "| %s | %d | %d | %d | %d | %d | %d | %s |"
            % (r["module"], r["mutants"], r["killed"], r["survived"], r["not covered"],
               r["equivalent"], r["timeout"], s)
        )  # fmt: skip
    surv = [s for r in rows for s in r["survivors"]]
    if surv:
        lines += ["", "## Survivors", ""]
        for s in surv:
            lines.append(
                "- `%s`: `%s` -> `%s` (%d tests ran)"
                % (s["id"], s["before"], s["after"], s["n_tests"])
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _todo(m: Mutant, old: dict | None, h: str, suite: str) -> bool:
    """Whether to run a mutant: not on this very source yet, or its last run says nothing yet
    (an error, not covered, or a "hang" recorded without its limit: from before a run that
    reached the --timeout cap first stopped counting as one), or it survived or timed out
    under other tests than today's."""
    if not old or (old["hash"], old["before"], old["after"]) != (h, m.before, m.after):
        return True
    if old["status"] in ("error", "not covered"):
        return True
    if old["status"] == "hung" and "limit_s" not in old:
        return True
    return old["status"] in ("survived", "timeout") and old.get("suite") != suite


def run(mutants: list[Mutant], res: dict, cov: dict, jobs: int, cap_s: float) -> None:
    """Each mutant still to do against its covering tests, `jobs` at a time, each on a working
    copy of its own; results saved after every mutant (an interrupted run resumes)."""
    eq = equivalents()
    secs = test_seconds(cov)
    todo = []
    for m in mutants:
        tests = covering(m, cov)
        suite = suite_key(tests, cov)
        h = module_hash(m.module)
        if _todo(m, res.get(m.id), h, suite):
            todo.append((m, h, tests, suite))
    works: queue.Queue[Path] = queue.Queue()
    for i in range(max(1, min(jobs, len(todo)))):
        works.put(prepare_work(WORK if i == 0 else OUT / ("work%d" % i)))
    lock = threading.Lock()
    done = [0]

    def one(item: tuple[Mutant, str, list[str], str]) -> None:
        m, h, tests, suite = item
        limit_s = 0.0
        if m.id in eq:
            status, took, failed = "equivalent", 0.0, ""
        elif not tests:
            status, took, failed = "not covered", 0.0, ""
        else:
            limit_s, measured = time_limit(tests, secs, cap_s)
            with lock:
                tests, ahead = killers_first(m, tests, res)
            work = works.get()
            try:
                status, took, failed = run_mutant(m, tests, limit_s, work, ahead)
            finally:
                works.put(work)
            if status == "timeout" and measured:
                status = "hung"
                failed = "over %.0f s (%gx its tests' time)" % (limit_s, HANG_FACTOR)
        with lock:
            res[m.id] = {**asdict(m), "id": m.id, "hash": h, "status": status,
                         "seconds": round(took, 1), "limit_s": round(limit_s, 1),
                         "n_tests": len(tests), "suite": suite, "failed": failed}  # fmt: skip
            save_results(res)
            done[0] += 1
            print("[%d/%d] %-42s %-11s %5.1f s %3d tests %s"
                  % (done[0], len(todo), m.id, status, took, len(tests), failed),
                  flush=True)  # fmt: skip

    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        for f in [pool.submit(one, item) for item in todo]:
            f.result()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.dev.mutate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--modules", default=",".join(SAFETY_MODULES))
    ap.add_argument("--sample", type=int, default=None, help="this many mutants, drawn at random")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per mutant at most")
    ap.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="coverage runs and mutants in parallel (a working copy each)",
    )
    ap.add_argument("--fresh", action="store_true", help="forget earlier results and coverage")
    ap.add_argument("--list", action="store_true", help="list the mutants and stop")
    ap.add_argument("--table", action="store_true", help="only write the table of what ran")
    args = ap.parse_args(argv)
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    mutants = select(modules, args.sample, args.seed)
    if args.list:
        for m in mutants:
            print("%s  %s -> %s" % (m.id, m.before, m.after))
        print("%d mutants" % len(mutants))
        return 0
    if args.table:
        mutants = []
    bad = invalid(mutants)
    if bad:
        print("mutants that are not valid Python (a fault of this driver): %s" % ", ".join(bad))
        return 2
    res = {} if args.fresh else load_results()
    if mutants:
        run(mutants, res, coverage_map(args.jobs, args.fresh), args.jobs, args.timeout)
    rows = summarise(res, modules)
    write_table(rows)
    for r in rows:
        s = "-" if r["score"] is None else "%.1f %%" % r["score"]
        print("%-11s %3d run: %3d killed, %3d survived, %3d not covered, %3d equivalent: %s"
              % (r["module"], r["mutants"], r["killed"], r["survived"], r["not covered"],
                 r["equivalent"], s))  # fmt: skip
    print("table: %s" % TABLE)
    return 0


if __name__ == "__main__":
    sys.exit(main())

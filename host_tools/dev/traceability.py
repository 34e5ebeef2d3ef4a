"""Traceability: requirement -> tests -> last result, computed from the test suite itself.

    python -m host_tools.dev.traceability [--results FILE] [--out FILE]   (what `make trace` runs)

- The known requirements are the rows of the tables in docs/requirements.md whose first cell is
  an ID (SR-n, FR-n).
- Which tests verify what comes from their `req` markers, collected by pytest itself
  (`pytest --collect-only` with host_tools/dev/trace_plugin.py), so parametrised tests, class and
  module markers (`pytestmark`) all count as pytest sees them.
- The last result of each test comes from build/test-results.json, which the plugin updates
  after every pytest run (`make test`, `make report`, or any partial run).
- docs/hazards.md must name only known SR IDs, and every SR must control at least one hazard.

The check fails (exit status 1) when a requirement has no test, a test names an ID the tables
do not define, or the hazard analysis and the requirements disagree. A requirement listed in
PENDING below is reported as pending instead of failing, until tests for it exist; once they
do, its PENDING entry must be removed (the check fails until it is).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS_MD = ROOT / "docs" / "requirements.md"
HAZARDS_MD = ROOT / "docs" / "hazards.md"
RESULTS = ROOT / "build" / "test-results.json"
OUT_MD = ROOT / "build" / "traceability.md"

# Requirements whose tests are being written elsewhere: reported as pending, not as a failure.
# Remove an entry as soon as tests naming that ID are merged (the check then insists).
PENDING: dict[str, str] = {}

_ROW = re.compile(r"^\|\s*((?:SR|FR)-\d+)\s*\|\s*(.*?)\s*\|\s*(.*?)\s*\|\s*$")
FAILED = ("failed", "error", "xpassed")  # outcomes that fail a requirement
PASSED = ("passed", "xfailed")  # an expected failure is a known, recorded gap
_ID = re.compile(r"\b(?:SR|FR)-\d+\b")
_SR = re.compile(r"\bSR-\d+\b")


class TraceError(RuntimeError):
    pass


def requirements(path: Path = REQUIREMENTS_MD) -> dict[str, dict]:
    """ID -> {"text", "verification"}, in document order."""
    out: dict[str, dict] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        m = _ROW.match(line)
        if not m:
            continue
        rid, text, verif = m.groups()
        if rid in out:
            raise TraceError("%s:%d: %s is defined twice" % (path, n, rid))
        out[rid] = {"text": text, "verification": verif}
    if not out:
        raise TraceError("%s defines no requirement (rows like `| SR-1 | ... | ... |`)" % path)
    return out


def hazard_controls(path: Path = HAZARDS_MD) -> dict[str, list[str]]:
    """Hazard ID (first cell of a table row, H-n) -> the requirement IDs its row names."""
    out: dict[str, list[str]] = {}
    if not Path(path).exists():
        return out
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\|\s*(H-\d+)\s*\|(.*)$", line)
        if m:
            ids = _ID.findall(m.group(2))
            out.setdefault(m.group(1), [])
            out[m.group(1)] += [i for i in ids if i not in out[m.group(1)]]
    return out


def collect_markers(paths: tuple[str, ...] = ("tests",)) -> dict[str, list[str]]:
    """nodeid -> requirement IDs, as pytest collects them (no test is run)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "markers.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "--req-markers",
            str(out),
            *paths,
        ]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            raise TraceError(
                "collecting the tests failed (%s):\n%s%s"
                % (" ".join(cmd), proc.stdout[-3000:], proc.stderr[-3000:])
            )
        return json.loads(out.read_text())["tests"]


def load_results(path: Path = RESULTS) -> dict:
    path = Path(path)
    if not path.exists():
        return {"tests": {}}
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        msg = "%s is not valid JSON (%s): remove it and run the tests" % (path, e)
        raise TraceError(msg) from None
    return data if isinstance(data.get("tests"), dict) else {"tests": {}}


@dataclass
class Trace:
    reqs: dict[str, dict]
    tests: dict[str, list[str]]  # nodeid -> IDs
    results: dict  # as load_results
    pending: dict[str, str]
    hazards: dict[str, list[str]] = field(default_factory=dict)
    by_req: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def outcome(self, nodeid: str) -> str:
        r = self.results["tests"].get(nodeid)
        return r["outcome"] if r else "not run"

    def status(self, rid: str) -> str:
        """pass, fail, partial (some tests not run yet), not run, pending, no tests."""
        tests = self.by_req.get(rid, [])
        if not tests:
            return "pending" if rid in self.pending else "no tests"
        outs = [self.outcome(t) for t in tests]
        if any(o in FAILED for o in outs):
            return "fail"
        if all(o == "not run" for o in outs):
            return "not run"
        if any(o == "not run" for o in outs):
            return "partial"
        return "pass"

    @property
    def ok(self) -> bool:
        return not self.errors


def check(
    reqs: dict[str, dict],
    tests: dict[str, list[str]],
    results: dict | None = None,
    pending: dict[str, str] | None = None,
    hazards: dict[str, list[str]] | None = None,
) -> Trace:
    pending = PENDING if pending is None else pending
    tr = Trace(reqs, tests, results or {"tests": {}}, pending, hazards or {})
    tr.by_req = {rid: [] for rid in reqs}
    unknown: dict[str, list[str]] = {}
    for nodeid, ids in tests.items():
        for rid in ids:
            if not isinstance(rid, str) or not _ID.fullmatch(rid):
                tr.errors.append(
                    "%s: requirement ID %r is not of the form SR-n or FR-n" % (nodeid, rid)
                )
            elif rid in reqs:
                tr.by_req[rid].append(nodeid)
            else:
                unknown.setdefault(rid, []).append(nodeid)
    for rid, nodes in sorted(unknown.items()):
        tr.errors.append(
            "%s is named by %d test(s) but not defined in docs/requirements.md: %s"
            % (rid, len(nodes), ", ".join(nodes[:3]) + (" ..." if len(nodes) > 3 else ""))
        )
    for rid in reqs:
        if tr.by_req[rid]:
            if rid in pending:
                tr.errors.append(
                    "%s now has %d test(s): remove it from PENDING in "
                    "host_tools/dev/traceability.py" % (rid, len(tr.by_req[rid]))
                )
        elif rid in pending:
            tr.notes.append("%s has no test yet (pending: %s)" % (rid, pending[rid]))
        else:
            tr.errors.append("%s has no test: mark the tests that verify it req(%r)" % (rid, rid))
    for rid in pending:
        if rid not in reqs:
            tr.errors.append("PENDING names %s, which docs/requirements.md does not define" % rid)
    if hazards:
        named = {i for ids in hazards.values() for i in ids}
        for hid, ids in hazards.items():
            for rid in ids:
                if rid not in reqs:
                    tr.errors.append(
                        "docs/hazards.md %s names unknown requirement %s" % (hid, rid)
                    )
            if not any(_SR.fullmatch(i) for i in ids):
                tr.errors.append("docs/hazards.md %s names no safety requirement (SR-n)" % hid)
        for rid in reqs:
            if rid.startswith("SR-") and rid not in named:
                tr.errors.append("%s controls no hazard in docs/hazards.md" % rid)
    return tr


def compute(results_path: Path = RESULTS, tests: dict[str, list[str]] | None = None) -> Trace:
    """The whole check: requirements, hazards, collected markers, last results."""
    return check(
        requirements(),
        collect_markers() if tests is None else tests,
        load_results(results_path),
        PENDING,
        hazard_controls(),
    )


# ---- output -----------------------------------------------------------------------------------
MARK = {"pass": "pass", "fail": "**FAIL**", "partial": "partial", "not run": "not run"}


def _short(nodeid: str) -> str:
    return nodeid[len("tests/") :] if nodeid.startswith("tests/") else nodeid


def _group(nodes: list[str], tr: Trace) -> list[tuple[str, int, dict[str, int]]]:
    """Parametrised cases folded: (test function, cases, outcome counts)."""
    groups: dict[str, dict[str, int]] = {}
    for n in nodes:
        base = n.split("[", 1)[0]
        c = groups.setdefault(base, {})
        o = tr.outcome(n)
        c[o] = c.get(o, 0) + 1
    return [(b, sum(c.values()), c) for b, c in groups.items()]


def _outcomes(c: dict[str, int]) -> str:
    return ", ".join("%d %s" % (k, o) if k > 1 or len(c) > 1 else o for o, k in sorted(c.items()))


def summary_rows(tr: Trace) -> list[dict]:
    rows = []
    for rid, r in tr.reqs.items():
        nodes = tr.by_req.get(rid, [])
        outs = [tr.outcome(n) for n in nodes]
        rows.append(
            {
                "id": rid,
                "text": r["text"],
                "verification": r["verification"],
                "tests": len(nodes),
                "functions": len({n.split("[", 1)[0] for n in nodes}),
                "passed": sum(o in PASSED for o in outs),
                "failed": sum(o in FAILED for o in outs),
                "not_run": sum(o == "not run" for o in outs),
                "status": tr.status(rid),
                "hazards": [h for h, ids in tr.hazards.items() if rid in ids],
            }
        )
    return rows


def render_markdown(tr: Trace, level: int = 1) -> str:
    h = "#" * level
    lines = [
        "%s Traceability: requirement -> tests -> last result" % h,
        "",
    ]
    last = tr.results.get("last_run")
    if last:
        lines.append(
            "Last results: run started %s (`pytest %s`), exit status %d."
            % (last["started"], " ".join(last.get("args", [])), last["exit_status"])
        )
    else:
        lines.append("No test results yet (`make test` records them).")
    lines.append("")
    verdict = "PASS" if tr.ok else "FAIL"
    lines.append(
        "Check: **%s**: %d requirements, %d tests carry requirement markers."
        % (verdict, len(tr.reqs), sum(1 for ids in tr.tests.values() if ids))
    )
    for e in tr.errors:
        lines.append("- error: %s" % e)
    for n in tr.notes:
        lines.append("- %s" % n)
    lines += [
        "",
        "| ID | requirement | hazards | tests (cases) | last result |",
        "|---|---|---|---|---|",
    ]
    for row in summary_rows(tr):
        lines.append(
            "| %s | %s | %s | %d (%d) | %s |"
            % (
                row["id"],
                row["text"],
                ", ".join(row["hazards"]) or "-",
                row["functions"],
                row["tests"],
                MARK.get(row["status"], row["status"]),
            )
        )
    lines.append("")
    lines.append("%s# Tests per requirement" % h)
    for rid in tr.reqs:
        lines.append("")
        lines.append("**%s** (%s)" % (rid, tr.status(rid)))
        lines.append("")
        nodes = tr.by_req.get(rid, [])
        if not nodes:
            lines.append(
                "- no test" + (" (pending: %s)" % tr.pending[rid] if rid in tr.pending else "")
            )
        for base, k, c in _group(nodes, tr):
            cases = " (%d cases)" % k if k > 1 else ""
            lines.append("- `%s`%s: %s" % (_short(base), cases, _outcomes(c)))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.dev.traceability", description=__doc__)
    ap.add_argument("--results", type=Path, default=RESULTS, help="last test results (JSON)")
    ap.add_argument("--out", type=Path, default=OUT_MD, help="matrix (Markdown) written here")
    args = ap.parse_args(argv)
    try:
        tr = compute(args.results)
    except TraceError as e:
        print("trace: %s" % e, file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_markdown(tr))
    width = max(len(r) for r in tr.reqs)
    for row in summary_rows(tr):
        print(
            "%-*s  %-8s  %3d tests  %s"
            % (width, row["id"], row["status"], row["tests"], row["text"][:70])
        )
    for note in tr.notes:
        print("note: %s" % note)
    for err in tr.errors:
        print("error: %s" % err, file=sys.stderr)
    rel = os.path.relpath(args.out, Path.cwd())
    print("%s: %s (%s)" % ("trace", "PASS" if tr.ok else "FAIL", rel))
    return 0 if tr.ok else 1


if __name__ == "__main__":
    sys.exit(main())

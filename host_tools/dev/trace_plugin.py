"""pytest plugin for traceability: which requirements each test names, and how each test did.

Loaded by tests/conftest.py. Two outputs:
- `--req-markers FILE`: after collection, every collected test's requirement IDs (the `req`
  markers on the test, its class and its module) as JSON, `{"tests": {nodeid: [ids]}}`; what
  `make trace` collects with `pytest --collect-only`.
- after a run that executed tests, each test's outcome (passed, failed, error, skipped, xfailed,
  xpassed), its IDs and the time it ran are merged into `build/test-results.json` (the
  `--test-results FILE` option, or the STIM_TEST_RESULTS environment variable, moves it). A
  partial run updates only the tests it ran; `host_tools/dev/traceability.py` reads the file
  for the matrix's "last result" column.

Under pytest-xdist (`make test` runs the suite on every core) the workers collect and run the
tests; each test's IDs travel with its reports (user_properties) to the controller, which
alone writes the file, merging every worker's results.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from .traceability import RESULTS

_STATE: dict = {}  # this session's IDs and outcomes (the logreport hook gets no config)
# Worst outcome of a test's phases wins (a passing call with a failing teardown is an error).
_RANK = {"passed": 0, "xfailed": 0, "skipped": 1, "xpassed": 2, "failed": 3, "error": 4}


def pytest_addoption(parser):
    g = parser.getgroup("traceability")
    g.addoption(
        "--req-markers",
        metavar="FILE",
        help="write every collected test's requirement IDs (req markers) to FILE as JSON",
    )
    g.addoption(
        "--test-results",
        metavar="FILE",
        help="merge each test's outcome into FILE (default build/test-results.json)",
    )


def req_ids(item) -> list[str]:
    """The requirement IDs a test names, in marker order, each once."""
    out: list[str] = []
    for m in item.iter_markers("req"):
        for a in m.args:
            if a not in out:
                out.append(a)
    return out


def pytest_configure(config):
    _STATE.clear()
    _STATE.update({"ids": {}, "outcomes": {}, "t0": time.time()})


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    state = _STATE
    state["ids"] = {item.nodeid: req_ids(item) for item in session.items}
    for item in session.items:
        item.user_properties.append(("reqs", state["ids"][item.nodeid]))
    out = session.config.getoption("req_markers")
    if out:
        _write_json(Path(out), {"tests": state["ids"]})


def _worker(config) -> bool:
    return hasattr(config, "workerinput")  # a pytest-xdist worker: the controller writes


def pytest_runtest_logreport(report):
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        else:
            outcome = report.outcome
    elif report.failed:
        outcome = "error"
    elif report.skipped:
        outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    else:
        return
    state = _STATE
    for key, value in getattr(report, "user_properties", ()):
        if key == "reqs":
            state["ids"][report.nodeid] = list(value)
    prev = state["outcomes"].get(report.nodeid)
    if prev is None or _RANK[outcome] > _RANK[prev[0]]:
        state["outcomes"][report.nodeid] = (outcome, round(report.duration, 3))


def pytest_sessionfinish(session, exitstatus):
    state = _STATE
    if not state.get("outcomes") or _worker(session.config):
        return  # collection only, nothing ran, or an xdist worker: keep the last results
    path = Path(
        session.config.getoption("test_results") or os.environ.get("STIM_TEST_RESULTS") or RESULTS
    )
    data: dict = {"tests": {}}
    if path.exists():
        try:
            data = json.loads(path.read_text())
            if not isinstance(data.get("tests"), dict):
                data = {"tests": {}}
        except (OSError, ValueError):
            data = {"tests": {}}
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(state["t0"]))
    for nodeid, (outcome, duration) in state["outcomes"].items():
        data["tests"][nodeid] = {
            "outcome": outcome,
            "duration_s": duration,
            "reqs": state["ids"].get(nodeid, []),
            "run": when,
        }
    counts: dict[str, int] = {}
    for outcome, _ in state["outcomes"].values():
        counts[outcome] = counts.get(outcome, 0) + 1
    data["last_run"] = {
        "started": when,
        "args": list(session.config.invocation_params.args),
        "exit_status": int(exitstatus),
        "counts": counts,
    }
    _write_json(path, data)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".%d.tmp" % os.getpid())
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)

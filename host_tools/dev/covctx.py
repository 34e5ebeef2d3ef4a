"""A pytest plugin for `make mutate`'s coverage runs: each test's lines under a context of its
own (its node id), and each test's time.

Loaded with `-p host_tools.dev.covctx` under `coverage run`. It does what pytest-cov's
`--cov-context=test` does: `Coverage.switch_context` at the start of every test. The context
is global to the collector, not per thread, so the lines the simulated unit's own thread runs
during a test are that test's too. Lines run while no test is running (collection, a module's
import) keep the empty context, and the driver gives them to the whole file.

MUTATE_TEST_TIMES names a JSON file that receives {node id: seconds} (setup, call and
teardown together: a module-scoped fixture's cost lands on the test that first needs it).
"""

from __future__ import annotations

import json
import os
import time

import coverage
import pytest

_times: dict[str, float] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cov = coverage.Coverage.current()
    if cov is not None:
        cov.switch_context(item.nodeid)
    t0 = time.monotonic()
    yield
    _times[item.nodeid] = round(time.monotonic() - t0, 3)
    if cov is not None and nextitem is None:
        cov.switch_context("")  # session teardown is no test's


def pytest_sessionfinish(session):
    out = os.environ.get("MUTATE_TEST_TIMES")
    if out:
        with open(out, "w") as f:
            json.dump(_times, f)

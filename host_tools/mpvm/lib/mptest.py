"""A micro test runner for MicroPython: the `test_*` functions of a module, plain `assert`.

    import mptest
    mptest.main(["test_core_pulse"])

Each test function of each module runs in name order; a failure is any exception. One line of
JSON per test goes to stdout, {"mod", "test", "ok", "err"}, then a summary line
{"summary": {"passed": n, "failed": n}}. pytest runs the same files on CPython.
"""

import json
import sys


def run_module(name):
    mod = __import__(name)
    names = sorted(k for k in dir(mod) if k.startswith("test_"))
    results = []
    for k in names:
        fn = getattr(mod, k)
        if not callable(fn):
            continue
        try:
            fn()
            err = None
        except Exception as e:  # noqa: BLE001 - every failure is reported
            err = "%s: %s" % (type(e).__name__, e)
            sys.print_exception(e)
        results.append({"mod": name, "test": k, "ok": err is None, "err": err})
        print(json.dumps(results[-1]))
    return results


def main(modules):
    passed = failed = 0
    for name in modules:
        for r in run_module(name):
            if r["ok"]:
                passed += 1
            else:
                failed += 1
    print(json.dumps({"summary": {"passed": passed, "failed": failed}}))
    return failed == 0

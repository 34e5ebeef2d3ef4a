"""`stimctl sim --scenario FILE [--trace OUT.jsonl] [--board B]`: a scenario, headless.

Exit status: 0 when the run saw no safety violation, 1 when it saw at least one (the trace and
the summary name them), 2 when the scenario file is invalid (the message names the line and key).
"""

from __future__ import annotations

import sys
from contextlib import ExitStack

from . import scenario as sc


def main(args) -> int:
    try:
        s = sc.load(args.scenario, board=args.board)
    except sc.ScenarioError as e:
        print("stimctl sim: %s" % e, file=sys.stderr)
        return 2
    with ExitStack() as stack:
        out = None
        if args.trace == "-":
            out = sys.stdout
        elif args.trace:
            try:
                out = stack.enter_context(open(args.trace, "w"))
            except OSError as e:
                print(
                    "stimctl sim: cannot write %s: %s" % (args.trace, e.strerror), file=sys.stderr
                )
                return 2
        res = sc.run(s, out)
    say = sys.stderr if out is sys.stdout else sys.stdout
    print(
        "%s: %g s simulated on board %s in %.1f s (x%.0f), %d trace records%s"
        % (
            args.scenario,
            s.duration_s,
            s.board_name,
            res.wall_s,
            res.speedup,
            res.written,
            " in " + args.trace if args.trace and out is not sys.stdout else "",
        ),
        file=say,
    )
    for r in res.summary:
        viol = ", ".join("%s x%d" % kv for kv in r["violations"].items()) or "none"
        print(
            "  ch%d: %d pulses (%d driven), max %.2f mA, %.3f uC per phase, net %.3g nC, "
            "violations: %s"
            % (
                r["ch"],
                r["pulses"],
                r["driven_pulses"],
                r["max_peak_ma"],
                r["max_phase_charge_uc"],
                r["net_charge_nc"],
                viol,
            ),
            file=say,
        )
    if res.violations:
        print("VIOLATIONS: %d (see the trace)" % res.violations, file=say)
        return 1
    return 0

"""`stimctl history [--port P] [--plot out.png] [--json]`: the unit's session history.

Downloads the records of /history.jsonl with the protocol's `history` command
(docs/protocol.md), prints a table (date, program, minutes, highest step, faults, how it ended)
and, with --plot, draws adherence over days: minutes of stimulation per calendar day, days
without a session at zero, so gaps in the routine show.

Dates: a record's `start` is the unit's clock (seconds) when the session began; the `history`
reply also gives the unit's clock now. A record is dated `host now - (unit now - start)`, which
is right as long as the unit's clock ran on since that session. The RP2040's clock starts again
at power-up, so sessions from before the last power-up are dated too late; a record that
starts after the unit's "now" (an earlier run of the clock) cannot be dated and shows "?".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from .device import DeviceError, DeviceIO, fail
from .link import CommandError, UnitLink, open_link
from .logstream import finite_number


@dataclass
class Session:
    when: datetime | None
    program: str
    minutes: float
    max_step: list[int] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    end: str = ""

    @property
    def highest_step(self) -> int:
        return max(self.max_step, default=0)


def fetch(link: UnitLink) -> tuple[list[dict], int]:
    """(records, the unit's clock now) from the unit."""
    got = link.request("history")
    recs = [r["rec"] for r in got if r.get("r") == "rec" and isinstance(r.get("rec"), dict)]
    return recs, int(got[-1].get("now", 0))


def sessions(recs: list[dict], unit_now: float, host_now: datetime) -> list[Session]:
    out = []
    for r in recs:
        start = finite_number(r.get("start"))
        when = None
        if start is not None and start <= unit_now:
            when = host_now - timedelta(seconds=unit_now - start)
        steps = r.get("max_step")
        out.append(
            Session(
                when=when,
                program=str(r.get("program", "?")),
                minutes=finite_number(r.get("min")) or 0.0,
                max_step=[int(s) for s in steps if isinstance(s, int)]
                if isinstance(steps, list)
                else [],
                faults=[str(f) for f in r.get("faults", []) if isinstance(f, str)]
                if isinstance(r.get("faults"), list)
                else [],
                end=str(r.get("end", "")),
            )
        )
    return out


def per_day(rows: list[Session], until: date | None = None) -> list[tuple[date, float, int]]:
    """(day, minutes, sessions) for every day from the first dated session to `until` (default:
    the last one), days without a session included."""
    dated = [s for s in rows if s.when is not None]
    if not dated:
        return []
    first = min(s.when.date() for s in dated if s.when)
    last = until or max(s.when.date() for s in dated if s.when)
    days: dict[date, list[float]] = {}
    d = first
    while d <= last:
        days[d] = [0.0, 0]
        d += timedelta(days=1)
    for s in dated:
        assert s.when is not None
        day = s.when.date()
        if day in days:
            days[day][0] += s.minutes
            days[day][1] += 1
    return [(d, v[0], int(v[1])) for d, v in days.items()]


def _steps(s: Session) -> str:
    """The highest step, and each channel's when there are several."""
    per_ch = " (%s)" % "/".join(map(str, s.max_step)) if len(s.max_step) > 1 else ""
    return "%d%s" % (s.highest_step, per_ch)


def table(rows: list[Session]):
    from rich.table import Table

    t = Table(title="session history (%d)" % len(rows))
    t.add_column("date")
    t.add_column("program")
    t.add_column("minutes", justify="right")
    t.add_column("highest step", justify="right")
    t.add_column("faults")
    t.add_column("ended")
    for s in rows:
        t.add_row(
            s.when.strftime("%Y-%m-%d %H:%M") if s.when else "?",
            s.program,
            "%.1f" % s.minutes,
            _steps(s),
            ", ".join(s.faults) or "-",
            s.end or "-",
        )
    return t


def plot(rows: list[Session], out: str | Path, until: date | None = None) -> Path:
    """Adherence: minutes per day as bars, days with a session counted in the title."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    days = per_day(rows, until)
    if not days:
        raise ValueError("no dated sessions to plot")
    fig = Figure(figsize=(10, 4), constrained_layout=True)
    ax = fig.add_subplot(1, 1, 1)
    xs: list = [d for d, _, _ in days]  # matplotlib plots dates; its stubs want numbers
    ax.bar(xs, [m for _, m, _ in days], width=0.8, color="tab:green")
    used = sum(1 for _, m, _ in days if m > 0)
    ax.set_title(
        "Adherence: minutes of stimulation per day (sessions on %d of %d days)" % (used, len(days))
    )
    ax.set_ylabel("minutes")
    ax.set_xlabel("day")
    ax.grid(True, axis="y", alpha=0.3)
    fig.autofmt_xdate()
    out = Path(out)
    fig.savefig(out, dpi=100)
    return out


def main(args, dio: DeviceIO, *, host_now: datetime | None = None) -> int:
    from rich.console import Console

    con = Console(highlight=False)
    try:
        link = open_link(dio, args.port)
    except DeviceError as e:
        return fail(e, 2)
    try:
        recs, unit_now = fetch(link)
    except CommandError as e:
        return fail(e, 1)
    except DeviceError as e:
        return fail(e, 2)
    finally:
        link.close()
    now = host_now or datetime.now()
    rows = sessions(recs, unit_now, now)
    if args.json:
        for r in recs:
            print(json.dumps(r, separators=(",", ":")))
    elif not rows:
        con.print("no sessions recorded on the unit yet")
    else:
        con.print(table(rows))
        undated = sum(1 for s in rows if s.when is None)
        if undated:
            con.print(
                "%d session(s) from an earlier run of the unit's clock: no date" % undated,
                style="yellow",
            )
    if args.plot:
        try:
            out = plot(rows, args.plot, until=now.date())
        except ValueError as e:
            return fail("cannot plot: %s" % e, 1)
        print("wrote %s" % out)
    return 0

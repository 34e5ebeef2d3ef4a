"""`stimctl history [--port P] [--plot out.png] [--json]`: the unit's session history.

Downloads the records of /history.jsonl with the protocol's `history` command
(docs/protocol.md), prints a table (date, program, minutes, highest step, faults, how it ended)
and, with --plot, draws adherence over days: minutes of stimulation per calendar day, days
without a session at zero, so gaps in the routine show.

Dates: a record's `start` is the unit's clock (seconds since 1970, UTC) when the session began,
and `clock` says whether that clock had been set by a host (the `time` command, which every
stimctl connection sends: host_tools/link.py). The RP2040 has no battery-backed clock: the rp2
port starts it at 2021-01-01 at every power-up and hard reset, so a record made before a host
set it again carries no date, only its place in the history: it is shown as "unknown date",
with the next dated record it came before when there is one (records are stored in the order
the sessions ended). No date is guessed from how long ago the unit's clock says it was. Dates
are shown in the laptop's time zone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from .device import DeviceError, DeviceIO, fail
from .link import CommandError, UnitLink, open_link
from .logstream import finite_number


@dataclass
class Session:
    when: datetime | None  # None: made on an unset clock (or an older firmware's record)
    program: str
    minutes: float
    max_step: list[int] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    end: str = ""
    before: datetime | None = None  # undated: the next dated session, which began after it

    @property
    def highest_step(self) -> int:
        return max(self.max_step, default=0)


def fetch(link: UnitLink) -> tuple[list[dict], int]:
    """(records, the unit's clock now) from the unit."""
    got = link.request("history")
    recs = [r["rec"] for r in got if r.get("r") == "rec" and isinstance(r.get("rec"), dict)]
    return recs, int(got[-1].get("now", 0))


def sessions(recs: list[dict], tz=None) -> list[Session]:
    """The records as sessions, dated (in `tz`, default the laptop's zone) only when the
    unit's clock was set when they began."""
    out = []
    for r in recs:
        start = finite_number(r.get("start"))
        when = None
        if start is not None and r.get("clock") is True:
            when = datetime.fromtimestamp(start, UTC).astimezone(tz)
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
    nxt = None
    for row in reversed(out):  # each undated session began before the next dated one
        if row.when is None:
            row.before = nxt
        else:
            nxt = row.when
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


def date_text(s: Session) -> str:
    if s.when is not None:
        return s.when.strftime("%Y-%m-%d %H:%M")
    if s.before is not None:
        return "unknown date (before %s)" % s.before.strftime("%Y-%m-%d %H:%M")
    return "unknown date"


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
            date_text(s),
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
        recs, _unit_now = fetch(link)
    except CommandError as e:
        return fail(e, 1)
    except DeviceError as e:
        return fail(e, 2)
    finally:
        link.close()
    now = host_now or datetime.now()
    rows = sessions(recs)
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
                "%d session(s) without a date: the unit's clock had not been set when they "
                "began (it starts again at every power-up; stimctl sets it whenever it "
                "connects)" % undated,
                style="yellow",
            )
    if args.plot:
        try:
            out = plot(rows, args.plot, until=now.date())
        except ValueError as e:
            return fail("cannot plot: %s" % e, 1)
        print("wrote %s" % out)
    return 0

"""`stimctl logs`: the unit's log, live and readable; saved as JSON Lines; plotted.

    stimctl logs [--port P] [--json] [--save FILE] [--level L] [--event E] [--raw]
    stimctl logs --plot FILE [-o out.png]

The firmware prints one JSON object per line on the USB console, always starting with `{"t":`
(firmware/stim/log.py, README "Log format"); anything else on the console (REPL banner,
tracebacks) is shown only with --raw. The stream survives unplugging and resets: when the port
goes away the tool says so, waits for the board to come back (the same --port, or the only
RP2040 board), and carries on.

--save appends every record (unfiltered: --level/--event only choose what is shown) to FILE as
JSON Lines, each with `host_t`, the laptop's clock (ISO 8601), added.

--plot draws, per channel, the intensity and the electrode load over time. It is tolerant of
what it reads, so older and newer firmware logs plot alike:
- intensity: any record with a `ch` and a numeric `ma` (mA; preferred) or `step`, except
  `refused` (a step that was not applied). `stop` sets that channel to 0; `program`, `boot`,
  `interrupted`, `crash` and `outputs_off` set every channel to 0 (SR-1);
- electrode load: any record with a `ch` and a numeric `ohm` (`load` every 10 s, `check`,
  `electrode`, `electrode_lift`); `ohm` null (an open electrode) leaves a gap, and so does a
  stopped channel (nothing is measured). Drawn as steps, each reading held until the next: the
  unit reports the load every 10 s and at once when it changes (a lift, a short), so a line
  between two readings would draw a change that happened at once as a slow ramp. Both axes
  start at zero and the load axis reaches at least 2 kohm: a 981-988 ohm wobble stays flat;
- faults and stops are marked and labelled on the channel's plot: `electrode` (its fault),
  `electrode_lift` (reduce), `stop` (its reason), and for every channel `fatal`,
  `interrupted`, `crash`, a battery `cutoff` and the end of a session;
- the device clock `t` restarts at every boot: the plot continues across, a dotted line marks
  each restart; lines that are not JSON objects with a `t` are skipped.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from pathlib import Path

from .device import DeviceError, DeviceIO, fail, pick_port
from .protocol import LOG_PREFIX, json_line

LEVELS = ("debug", "info", "warn", "error")
STYLE = {"debug": "dim", "info": "", "warn": "yellow", "error": "bold red"}
ZERO_ALL = ("program", "boot", "interrupted", "crash", "outputs_off")
LOAD_FLOOR_OHM = 2000.0  # the load axis shows at least 0-2 kohm (good skin contact: 0.5-8 kohm)
WAIT_KINDS = ("no_device", "open_failed")  # gone for now: wait; anything else: stop and say


def parse(line: str) -> dict | None:
    """The record of a log line, or None for any other console output."""
    return json_line(line.strip(), LOG_PREFIX)


class Filter:
    def __init__(self, level: str | None = None, events=None):
        self.min = LEVELS.index(level) if level else 0
        evs: set[str] = set()
        for e in events or ():
            evs.update(x.strip() for x in e.split(",") if x.strip())
        self.events = evs

    def __call__(self, rec: dict) -> bool:
        lvl = rec.get("lvl", "info")
        if lvl in LEVELS and LEVELS.index(lvl) < self.min:
            return False
        return not self.events or rec.get("ev") in self.events


def format_record(rec: dict, *, compact: bool = False):
    """A record as one readable line: time, level, event, then the fields as key=value.

    `compact` (the log pane of `stimctl sim`, tui.py): the time to 10 ms, the level only when it
    is a warning or an error, the event unpadded, the values in the level's colour, and the
    simulator's `sim_t` left out instead of the laptop's `host_t`."""
    from rich.text import Text

    t = rec.get("t")
    lvl = str(rec.get("lvl", ""))
    style = STYLE.get(lvl, "")
    if compact:
        txt = Text("%7.2f " % t if isinstance(t, int | float) else "      ? ", style="dim")
        if lvl in ("warn", "error"):
            txt.append(lvl.upper() + " ", style=style)
        txt.append(str(rec.get("ev", "?")), style="bold " + style)
        hidden: tuple[str, ...] = ("t", "lvl", "ev", "sim_t")
    else:
        txt = Text()
        txt.append("%10.3f " % t if isinstance(t, int | float) else "%10s " % "?", style="dim")
        txt.append("%-5s " % lvl.upper(), style=style)
        txt.append("%-14s" % rec.get("ev", "?"), style="bold " + style)
        hidden = ("t", "lvl", "ev", "host_t")
    for k, v in rec.items():
        if k in hidden:
            continue
        txt.append(" %s=" % k, style="cyan")
        val = v if isinstance(v, str) else json.dumps(v)
        if compact:
            txt.append(val, style=style)
        else:
            txt.append(val)
    return txt


def stream(
    dio: DeviceIO,
    port: str | None,
    on_line,
    *,
    status=lambda msg: None,
    stop=lambda: False,
    sleep=time.sleep,
    retry_s: float = 0.5,
) -> None:
    """Call on_line(text) for every console line, reconnecting whenever the board goes away,
    until stop() is true. Errors waiting cannot cure (permission, busy, several boards) raise."""
    import serial

    waiting = connected = False
    while not stop():
        try:
            p = pick_port(dio, port)
            s = dio.serial(p)
        except DeviceError as e:
            # Just after a replug the port can be briefly unreadable (udev has not yet applied
            # its permissions) or still held: after the first connection, wait for those too.
            transient = connected and e.kind in ("permission", "busy")
            if e.kind not in WAIT_KINDS and not transient:
                raise
            if not waiting:
                status("waiting for the board%s: plug it in" % (" on " + port if port else ""))
                waiting = True
            sleep(retry_s)
            continue
        waiting, connected = False, True
        status("connected to %s" % p)
        buf = b""
        try:
            while not stop():
                chunk = s.readline()
                if not chunk:
                    continue
                buf += chunk
                if not buf.endswith(b"\n"):
                    continue  # a line cut by the read timeout: wait for the rest
                on_line(buf.decode("utf-8", errors="replace").rstrip("\r\n"))
                buf = b""
        except (serial.SerialException, OSError) as e:
            status("%s disconnected (%s); waiting for it to come back" % (p, e))
            waiting = True
        finally:
            try:
                s.close()
            except Exception:  # noqa: BLE001 - the port is already gone
                pass


class Saver:
    def __init__(self, path: str | Path):
        self.f = open(path, "a", encoding="utf-8")

    def write(self, rec: dict) -> None:
        out = dict(rec)
        out["host_t"] = datetime.now().astimezone().isoformat(timespec="milliseconds")
        self.f.write(json.dumps(out, separators=(",", ":")) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def run_logs(args, dio: DeviceIO, console=None, **stream_kw) -> int:
    from rich.console import Console

    con = console or Console(highlight=False)
    err = Console(stderr=True, highlight=False) if console is None else console
    keep = Filter(args.level, args.event)
    saver = Saver(args.save) if args.save else None

    def on_line(line: str) -> None:
        rec = parse(line)
        if rec is None:
            if args.raw and not args.json and line.strip():
                con.print(line, style="dim", markup=False)
            return
        if saver:
            saver.write(rec)
        if keep(rec):
            if args.json:
                # soft_wrap: one record per line whatever the terminal's width (piped: 80)
                con.print(json.dumps(rec, separators=(",", ":")), markup=False, soft_wrap=True)
            else:
                con.print(format_record(rec))

    def status(msg: str) -> None:
        err.print("[stimctl] " + msg, style="italic blue", markup=False)

    try:
        stream(dio, args.port, on_line, status=status, **stream_kw)
    except KeyboardInterrupt:
        pass
    except DeviceError as e:
        return fail(e, 2)
    finally:
        if saver:
            saver.close()
    return 0


def main(args, dio: DeviceIO) -> int:
    if args.plot:
        try:
            out = plot_log(args.plot, args.out)
        except PlotLogError as e:
            return fail(e, 1)
        print("wrote %s" % out)
        return 0
    return run_logs(args, dio)


# ---- plot ----------------------------------------------------------------------------------
class PlotLogError(ValueError):
    pass


def finite_number(v) -> float | None:
    """v as a float if it is a finite JSON number (not a bool), else None."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def read_records(path: str | Path) -> list[dict]:
    recs = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and finite_number(rec.get("t")) is not None:
                recs.append(rec)
    return recs


def _mark(rec: dict) -> str | None:
    """The label of a fault or stop worth marking on the plot, or None."""
    ev = rec.get("ev")
    if ev == "electrode":
        return "%s" % rec.get("fault", "fault")
    if ev == "electrode_lift" and rec.get("action") == "reduce":
        return "lift: halved"
    if ev == "stop":
        return "stop" + (": %s" % rec["reason"] if rec.get("reason") else "")
    if ev in ("fatal", "interrupted", "crash"):
        return str(ev)
    if ev == "battery" and rec.get("state") == "cutoff":
        return "battery cut-off"
    if ev == "session" and rec.get("state") == "end":
        return "session end" + (": %s" % rec["reason"] if rec.get("reason") else "")
    return None


def series(recs: list[dict]) -> dict:
    """Per-channel step series from the records: {"intensity": {ch: (unit, [(t, v)])},
    "load": {ch: [(t, ohm or nan)]}, "marks": [(t, ch or None, label)], "restarts": [t],
    "end": t}. Times continue across boots."""
    offset, prev = 0.0, None
    restarts: list[float] = []
    inten: dict[int, dict[str, list]] = {}
    load: dict[int, list] = {}
    marks: list[tuple[float, int | None, str]] = []
    t = 0.0
    for rec in recs:
        t_dev = float(rec["t"])
        if prev is not None and t_dev < prev - 1e-6:
            offset += prev
            restarts.append(offset)
        prev = t_dev
        t = offset + t_dev
        ev = rec.get("ev")
        ch = rec.get("ch")
        is_ch = isinstance(ch, int) and not isinstance(ch, bool)
        label = _mark(rec)
        if label is not None:
            marks.append((t, ch if is_ch else None, label))
        if ev in ZERO_ALL:
            for c in inten.values():
                for pts in c.values():
                    pts.append((t, 0.0))
            for lpts in load.values():
                lpts.append((t, math.nan))  # nothing is measured on a stopped channel
        if not is_ch:
            continue
        if ev == "stop":
            for pts in inten.get(ch, {}).values():
                pts.append((t, 0.0))
            if ch in load:
                load[ch].append((t, math.nan))
        elif ev != "refused":
            for key in ("ma", "step"):
                v = finite_number(rec.get(key))
                if v is not None:
                    inten.setdefault(ch, {}).setdefault(key, []).append((t, v))
        if "ohm" in rec:
            v = finite_number(rec.get("ohm"))
            load.setdefault(ch, []).append((t, v if v is not None else math.nan))
    out_i = {}
    for ch, by in inten.items():
        key = "ma" if by.get("ma") else "step"
        out_i[ch] = (key, by[key])
    return {"intensity": out_i, "load": load, "marks": marks, "restarts": restarts, "end": t}


def log_figure(s: dict, title: str = "log"):
    """The figure of a series() result: intensity and load per channel as steps, faults and
    stops marked and labelled, axes from zero."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6), constrained_layout=True)
    ax_i, ax_l = fig.subplots(2, 1, sharex=True)
    end = s["end"]
    units = set()
    colour = {}
    for ch, (key, pts) in sorted(s["intensity"].items()):
        xs = [p[0] for p in pts] + [end]
        ys = [p[1] for p in pts] + [pts[-1][1]]
        (line,) = ax_i.step(xs, ys, where="post", label="ch %d" % ch)
        colour[ch] = line.get_color()
        units.add(key)
    ax_i.set_ylabel("intensity (%s)" % " / ".join("mA" if u == "ma" else "step" for u in units))
    ax_i.set_title("%s: intensity and electrode load per channel" % title)
    top_i = max((p[1] for _, pts in s["intensity"].values() for p in pts), default=0.0)
    ax_i.set_ylim(0, max(1.0, top_i * 1.15))
    top_l = LOAD_FLOOR_OHM
    for ch, pts in sorted(s["load"].items()):
        xs = [p[0] for p in pts] + [end]
        ys = [p[1] for p in pts] + [pts[-1][1]]
        ax_l.step(xs, ys, where="post", label="ch %d" % ch, color=colour.get(ch))
        ax_l.plot(xs[:-1], ys[:-1], ".", color=colour.get(ch))  # the readings themselves
        top_l = max([top_l] + [y for y in ys if y == y])
    ax_l.set_ylim(0, top_l * 1.15)
    ax_l.set_ylabel("electrode load (ohm)")
    ax_l.set_xlabel("time (s, device clock; dotted: restart)")
    at: dict[float, list[tuple[int | None, str]]] = {}  # one label per instant: no overprint
    for t, ch, label in s["marks"]:
        at.setdefault(t, []).append((ch, label if ch is None else "ch %d %s" % (ch, label)))
    for t, items in at.items():
        chs = {ch for ch, _ in items}
        c = colour.get(next(iter(chs)), "black") if len(chs) == 1 and None not in chs else "black"
        for ax in (ax_i, ax_l):
            ax.axvline(t, color=c, linestyle="--", linewidth=1, alpha=0.8)
        ax_i.annotate(
            "; ".join(text for _, text in items), (t, 0.98), xycoords=("data", "axes fraction"),
            rotation=90, va="top", ha="right", fontsize=8, color=c,
        )  # fmt: skip
    for ax in (ax_i, ax_l):
        for r in s["restarts"]:
            ax.axvline(r, color="grey", linestyle=":", linewidth=1)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left")
        ax.grid(True, alpha=0.3)
    if not s["load"]:
        ax_l.text(0.5, 0.5, "no load records", ha="center", va="center", transform=ax_l.transAxes)
    return fig


def plot_log(path: str | Path, out: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")

    path = Path(path)
    if not path.is_file():
        raise PlotLogError("%s: no such file (save one with `stimctl logs --save FILE`)" % path)
    s = series(read_records(path))
    if not s["intensity"] and not s["load"]:
        raise PlotLogError(
            "%s: no intensity (`ch` with `ma` or `step`) or load (`ch` with `ohm`) records to "
            "plot" % path
        )
    out = Path(out) if out else path.with_suffix(".png")
    fig = log_figure(s, path.name)
    fig.savefig(out, dpi=100)
    return out

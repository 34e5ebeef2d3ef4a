"""Waveform pictures: a program run by the real pulse engine on the simulated board, drawn.

    stimctl plot --board pico --program tens_burst -o out.png [--window 1.0] [--channel 1]

The firmware's pulse engine (stim/engine.py) plays the program's plan (stim/modulation.py) on
one channel of the simulated RP2040, boost on, LEVEL set for LEVEL_MA into a LOAD_OHM load. The
amplitude envelope of EMS work/rest programs is applied the way the app does it: LEVEL updated
between pulses every ENVELOPE_TICK_S. The soft start of a real session is left out, so the
picture shows the program itself.

The current drawn is the current into the load as the board model computes it from the pin
levels (I = min(I_set, V_compliance / Z)), sampled at every edge of the channel's PHASE_A/B pins
and every LEVEL change: a step waveform, exact to the system-clock cycle. The figure has the
delivered current over the window, a zoom on one pulse (A phase, gap, B phase, in
microseconds), and the pulse-by-pulse phase width and rate.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path

from . import boards
from .sim.edges import pulses_from_edges

LEVEL_MA = 20.0
LOAD_OHM = 1000.0
ENVELOPE_TICK_S = 0.020  # the picture steps the EMS envelope every 20 ms (the unit: each cycle)


class PlotError(ValueError):
    pass


@dataclass
class Trace:
    """What one run delivered into the load of one channel."""

    board: str
    program: dict
    channel: int  # 1-based
    window_s: float
    sysclk_hz: int
    t0: int  # cycle the channel was started
    samples: list[tuple[int, float]] = field(default_factory=list)  # (cycle, signed mA)
    pulses: list[tuple[int, int, int, int]] = field(default_factory=list)  # A/B edges, cycles
    malformed_edges: int = 0

    def t_s(self, cycle: int) -> float:
        return (cycle - self.t0) / self.sysclk_hz

    def current_at(self, cycle: int) -> float:
        """The signed current (mA) flowing at `cycle` (step waveform: last sample at or before)."""
        i = bisect.bisect_right(self.samples, (cycle, float("inf"))) - 1
        return self.samples[i][1] if i >= 0 else 0.0

    def peak_ma(self, a0: int, a1: int) -> float:
        lo = bisect.bisect_left(self.samples, (a0, float("-inf")))
        hi = bisect.bisect_left(self.samples, (a1, float("-inf")))
        vals = [abs(s[1]) for s in self.samples[lo:hi]]
        return max(vals, default=abs(self.current_at(a0)))


def _program_ids(programs) -> list[str]:
    return [p["id"] for p in programs.PROGRAMS]


def play(chip, chan, modulation, prog, plan, level_ma, window_s, stop=lambda: False) -> int:
    """Play `plan` on engine channel `chan` for `window_s` of simulated time as the app does:
    LEVEL for `level_ma` times the program's envelope, updated every ENVELOPE_TICK_S (no more
    once `stop()` is true). Returns the end (sysclk cycles); the channel is left running."""
    t0 = chip.now
    t_end = t0 + chip.cycles(window_s)
    chan.start(plan, int(level_ma * 1000 * modulation.envelope(prog, 0.0)))
    while chip.now < t_end:
        chip.advance_to(min(t_end, chip.now + chip.cycles(ENVELOPE_TICK_S)))
        if chip.now < t_end and not stop():
            env = modulation.envelope(prog, (chip.now - t0) / chip.sysclk_hz)
            chan.set_level_ua(int(level_ma * 1000 * env))
    return t_end


def record(
    program_id: str,
    board: str = "pico",
    window_s: float = 1.0,
    channel: int = 1,
    level_ma: float = LEVEL_MA,
    load_ohm: float = LOAD_OHM,
) -> Trace:
    """Run `program_id` on channel `channel` (1-based) for `window_s` and record the current."""
    from .sim.rig import FirmwareRig

    if not window_s > 0 or window_s > 600:
        raise PlotError("window must be more than 0 and at most 600 s, not %s" % window_s)
    try:
        b = boards.load_board(board)
    except boards.BoardError as e:
        raise PlotError("board %s: %s" % (board, e)) from None
    n_ch = len(b["channels"])
    if not 1 <= channel <= n_ch:
        raise PlotError("board %s has channels 1..%d, not %s" % (b["name"], n_ch, channel))
    rig = FirmwareRig(b, load_ohm={channel: load_ohm})
    programs = rig.import_module("stim.programs")
    modulation = rig.import_module("stim.modulation")
    try:
        prog = programs.by_id(program_id)
    except programs.ProgramError:
        raise PlotError(
            "unknown program %r; valid programs: %s"
            % (program_id, ", ".join(_program_ids(programs)))
        ) from None
    try:
        programs.validate(prog, b["limits"]["max_session_min"])
    except programs.ProgramError as e:
        raise PlotError(
            "program %s refused on board %s: %s" % (program_id, b["name"], e)
        ) from None
    plan = modulation.plan(prog)

    chip = rig.chip
    cm = rig.model.channels[channel - 1]
    cfg = b["channels"][channel - 1]
    pins = (cfg["phase_a"], cfg["phase_b"])
    edges: list[tuple[int, int, int]] = []
    trace = Trace(b["name"], prog, channel, window_s, chip.sysclk_hz, 0)

    def sample(t: int) -> None:
        # The board model observes first (it was attached when the rig was built), so its
        # segment current is already the one flowing from this instant.
        sign = 1 if cm.phase == 1 else -1 if cm.phase == -1 else 0
        trace.samples.append((t, sign * cm.seg_i_a * 1000.0))

    def on_pin(pin: int, level: int, t: int) -> None:
        if pin in pins:
            edges.append((t, pin, level))
            sample(t)

    def on_analog(pin: int, t: int) -> None:
        if pin == cfg["level_pwm"] and cm.phase:
            sample(t)

    rig.boost(True)
    chan = rig.channel(channel - 1)
    chip.pin_observers.append(on_pin)
    chip.analog_observers.append(on_analog)
    try:
        trace.t0 = chip.now
        trace.samples.append((chip.now, 0.0))
        t_end = play(chip, chan, modulation, prog, plan, level_ma, window_s)
        chan.stop()
    finally:
        chip.pin_observers.remove(on_pin)
        chip.analog_observers.remove(on_analog)
    pulses, bad = pulses_from_edges(edges, *pins)
    trace.pulses = [p for p in pulses if p[3] <= t_end]
    trace.malformed_edges = bad
    trace.samples = [s for s in trace.samples if s[0] <= t_end]
    return trace


def describe(p: dict) -> str:
    """One line of what a program asks for: rate, widths, gap, burst/sweep/cycle."""
    gap = "gap %s µs" % p["gap_us"]
    if "burst" in p:
        b = p["burst"]
        return "bursts of %d pulses at %s Hz, %s bursts/s, phase %s µs, %s" % (
            b["pulses"],
            p["rate_hz"],
            b["rate_hz"],
            p["phase_us"],
            gap,
        )
    if "sweep" in p:
        s = p["sweep"]
        sweep = "%s sweep over %s s" % (s["shape"], s["period_s"])
        if s["param"] == "phase_us":
            return "%s Hz, phase %s–%s µs (%s), %s" % (
                p["rate_hz"],
                s["min"],
                s["max"],
                sweep,
                gap,
            )
        return "%s–%s Hz (%s), phase %s µs, %s" % (s["min"], s["max"], sweep, p["phase_us"], gap)
    text = "%s Hz, phase %s µs, %s" % (p["rate_hz"], p["phase_us"], gap)
    if "cycle" in p:
        c = p["cycle"]
        text += "; %g s on (ramps %g s up, %g s down), %g s off" % (
            c["on_s"],
            c["ramp_up_s"],
            c["ramp_down_s"],
            c["off_s"],
        )
    return text


def draw(trace: Trace, out: str | Path, level_ma: float = LEVEL_MA, load_ohm=LOAD_OHM) -> Path:
    """Draw a recorded trace into a PNG (matplotlib, Agg, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    if not trace.pulses:
        raise PlotError(
            "no complete pulse in a %g s window: make --window longer" % trace.window_s
        )
    f = trace.sysclk_hz
    p = trace.program
    fig = Figure(figsize=(11, 7.2), dpi=110, layout="constrained")
    gs = fig.add_gridspec(2, 2, height_ratios=(1.15, 1))
    ax = fig.add_subplot(gs[0, :])
    az = fig.add_subplot(gs[1, 0])
    ar = fig.add_subplot(gs[1, 1])
    fig.suptitle(
        "%s (%s): %s\nboard %s, channel %d, %g mA set into %g kΩ; current into the load at "
        "the simulated pins"
        % (p["name"], p["id"], describe(p), trace.board, trace.channel, level_ma, load_ohm / 1000),
        fontsize=11,
    )

    # -- the whole window: a step waveform through every sample --
    xs, ys = [], []
    prev = 0.0
    for t, i in trace.samples:
        x = trace.t_s(t)
        xs += [x, x]
        ys += [prev, i]
        prev = i
    xs.append(trace.window_s)
    ys.append(prev)
    ax.plot(xs, ys, color="tab:blue", linewidth=0.8)
    ax.axhline(0, color="0.6", linewidth=0.5)
    ax.set_xlim(-0.01 * trace.window_s, trace.window_s)
    lim = max(abs(y) for y in ys) * 1.25 or 1.0
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("current into the load (mA)")
    ax.set_title(
        "delivered current over %g s: %d pulse%s (positive: phase A, negative: phase B)"
        % (trace.window_s, len(trace.pulses), "" if len(trace.pulses) == 1 else "s"),
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)

    # -- zoom on one pulse: the first of the strongest (and, in a sweep, widest) --
    peaks = [trace.peak_ma(q[0], q[1]) for q in trace.pulses]
    k = max(
        range(len(peaks)),
        key=lambda j: (round(peaks[j], 6), trace.pulses[j][1] - trace.pulses[j][0], -j),
    )
    a0, a1, b0, b1 = trace.pulses[k]
    span = b1 - a0
    lo, hi = a0 - span * 0.25, b1 + span * 0.25
    zx, zy = [(lo - a0) / f * 1e6], [trace.current_at(int(lo))]
    for t, i in trace.samples:
        if lo < t < hi:
            zx += [(t - a0) / f * 1e6] * 2
            zy += [zy[-1], i]
    zx.append((hi - a0) / f * 1e6)
    zy.append(zy[-1])
    az.plot(zx, zy, color="tab:blue", linewidth=1.5)
    az.axhline(0, color="0.6", linewidth=0.5)
    ia, ib = trace.current_at(a0), trace.current_at(b0)
    zl = max(abs(ia), abs(ib), 1e-3) * 1.8
    az.set_ylim(-zl, zl)
    az.set_xlim(zx[0], zx[-1])
    us = [(e - a0) / f * 1e6 for e in (a0, a1, b0, b1)]
    for x0, x1, y, color, label in (
        (us[0], us[1], ia, "tab:blue", "phase A %.2f µs" % (us[1] - us[0])),
        (us[2], us[3], ib, "tab:red", "phase B %.2f µs" % (us[3] - us[2])),
    ):
        az.fill_between([x0, x1], [y, y], color=color, alpha=0.2, linewidth=0)
        yy = y + (0.15 if y >= 0 else -0.15) * zl
        az.annotate("", (x0, yy), (x1, yy), arrowprops={"arrowstyle": "<->", "color": "0.2"})
        ty = yy + (0.03 if y >= 0 else -0.03) * zl
        az.text((x0 + x1) / 2, ty, label, ha="center", va="bottom" if y >= 0 else "top")
        az.text((x0 + x1) / 2, y / 2, "%+.1f mA" % y, ha="center", va="center", color="0.15")
    gx = (us[1] + us[2]) / 2
    az.annotate(
        "gap %.2f µs" % (us[2] - us[1]),
        xy=(gx, 0),
        xytext=(gx + 0.12 * (us[3] - us[0]), 0.45 * zl),
        ha="left",
        arrowprops={"arrowstyle": "->", "color": "0.2"},
    )
    q_uc = trace.peak_ma(a0, a1) * (a1 - a0) / f * 1e3
    az.set_xlabel("µs from the start of phase A")
    az.set_ylabel("current into the load (mA)")
    ta = trace.t_s(a0)
    when = "%.4f s" % ta if ta >= 1 else "%.2f ms" % (ta * 1e3)
    az.set_title("one pulse (#%d, at %s): %.2f µC per phase" % (k + 1, when, q_uc), fontsize=10)
    az.grid(True, alpha=0.3)

    # -- pulse by pulse: phase width and rate --
    tp = [trace.t_s(q[0]) for q in trace.pulses]
    widths = [(q[1] - q[0]) / f * 1e6 for q in trace.pulses]
    ar.plot(tp, widths, "o", color="tab:blue", markersize=3, label="phase width (µs)")
    ar.set_xlabel("time since start (s)")
    ar.set_ylabel("phase width (µs)", color="tab:blue")
    wlo, whi = min(widths), max(widths)
    pad = max((whi - wlo) * 0.15, 0.1 * whi)
    ar.set_ylim(max(wlo - pad, 0), whi + pad)
    ar.set_xlim(-0.01 * trace.window_s, trace.window_s)
    ar.grid(True, alpha=0.3)
    title = "pulse by pulse"
    if len(trace.pulses) > 1:
        starts = [q[0] for q in trace.pulses]
        rates = [f / (t1 - t0) for t0, t1 in zip(starts, starts[1:], strict=False)]
        ar2 = ar.twinx()
        ar2.plot(tp[:-1], rates, "s", color="tab:orange", markersize=3, label="rate (Hz)")
        ar2.set_ylabel("rate to the next pulse (Hz)", color="tab:orange")
        ar2.set_ylim(0, max(rates) * 1.2)
        title += ": phase width (blue), rate to the next pulse (orange)"
    ar.set_title(title, fontsize=10)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def plot_program(
    program_id: str,
    out: str | Path,
    board: str = "pico",
    window_s: float = 1.0,
    channel: int = 1,
) -> Path:
    """Record and draw: what `stimctl plot` does."""
    trace = record(program_id, board=board, window_s=window_s, channel=channel)
    return draw(trace, out)

"""The scenario runner, its file validator, the trace's semantics, and the violation detector
shown catching deliberately broken firmware (host_tools/sim/scenario.py, trace.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from host_tools import cli
from host_tools.sim import scenario
from host_tools.sim.linejson import LDict, LList, loads
from host_tools.sim.trace import TIMING_REL

pytestmark = pytest.mark.req("FR-24")

ON = [{"t": 0.5, "press": "power", "hold_s": 1.7}, {"t": 2.5, "press": "plus", "times": 4}]


def doc(duration_s=8.0, events=(), program="tens_conventional", **initial) -> str:
    ini = {"settings": {"program": program, "session_min": 30, "channels": "both"}}
    ini.update(initial)
    return json.dumps(
        {"board": "pico", "duration_s": duration_s, "initial": ini, "events": ON + list(events)},
        indent=1,
    )


def run_text(text: str, **kw) -> scenario.RunResult:
    return scenario.run(scenario.parse(text), keep=True, **kw)


def outputs(res, ch=1, t0=0.0, t1=1e9):
    return [r for r in res.of("output", ch=ch) if t0 <= r["t"] < t1]


def next_pulse(res, t, ch=1) -> float:
    """The start of the first pulse of channel ch at or after t, for a channel running one
    continuous program since its last output record before t: its pulses are at exactly that
    record's time plus whole periods (the PIO's timing; a level change never moves them)."""
    last = [r for r in outputs(res, ch, 0.0, t) if r["rate_hz"] > 0][-1]
    t0, period = last["t"], 1 / last["rate_hz"]
    k = -(-(t - t0) // period)
    return t0 + k * period


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


# ---- JSON with line numbers ----------------------------------------------------------------
def test_linejson_remembers_lines_of_keys_and_items():
    v = loads('{\n "a": 1,\n "b": [\n  {"c": 2},\n  3\n ]\n}')
    assert isinstance(v, LDict) and v.key_line == {"a": 2, "b": 3}
    assert isinstance(v["b"], LList) and v["b"].item_line == [4, 5]
    assert v["b"][0].key_line == {"c": 4}
    assert v == {"a": 1, "b": [{"c": 2}, 3]}


# ---- the validator --------------------------------------------------------------------------
BAD = [
    # (scenario text, line, key named, words in the message)
    ('{"duration_s": 5,\n "events": [],\n "colour": 1}', 3, "colour", "unknown key"),
    ('{"duration_s": 5, "events": [\n {"t": 1, "press": "plus", "hold": 2}]}', 2, "events[0].hold",
     "unknown key"),
    ('{"duration_s": 5, "events": [\n {"t": 1,\n  "press": "start"}]}', 3, "events[0].press",
     "not a button"),
    ('{"duration_s": 5, "events": [\n {"t": 1, "press": "plus",\n  "hold_s": -1}]}', 3,
     "events[0].hold_s", "outside"),
    ('{"duration_s": 5, "events": [\n {"t": 9, "press": "plus"}]}', 2, "events[0].t", "outside"),
    ('{"duration_s": 5, "events": [\n {"t": 1, "press": "plus",\n "times": 0}]}', 3,
     "events[0].times", "whole number"),
    ('{"duration_s": 5, "events": [\n {"t": 1}]}', 2, "events[0]", "no action"),
    ('{"duration_s": 5, "events": [\n {"t": 1, "battery_v": 3, "ctrl_c": true}]}', 2, "events[0]",
     "more than one action"),
    ('{"duration_s": 5, "events": [\n {"t": 1,\n "load_ohm": {"3": 100}}]}', 3,
     "events[0].load_ohm.3", "no such channel"),
    ('{"duration_s": 5, "events": [\n {"t": 1,\n "load_ohm": {"1": "lifted"}}]}', 3,
     "events[0].load_ohm.1", "open"),
    ('{"duration_s": 5, "events": [\n {"t": 1, "battery_v": "3.1"}]}', 2,
     "events[0].battery_v", "must be a number"),
    ('{"duration_s": 5, "events": [\n {"t": 1, "ctrl_c": true, "gap_s": 1}]}', 2,
     "events[0].gap_s", "only for a press"),
    ('{"duration_s": 5, "events": [],\n "initial": {\n  "load_ohm": {"1": 0}}}', 3,
     "initial.load_ohm.1", "ohms"),
    ('{"duration_s": 5, "events": [],\n "initial": {"battery": 3}}', 2, "initial.battery",
     "unknown key"),
    ('{"duration_s": 5, "events": [],\n "initial": {"settings": 3}}', 2, "initial.settings",
     "text or an object"),
    ('{"duration_s": 5, "events": [\n {"t": 1,\n "host": 7}]}', 3, "events[0].host",
     "must be text"),
    ('{"duration_s": 5, "events": [\n {"t": 1,\n "host": "\\u0100"}]}', 3, "events[0].host",
     "one byte each"),
    ('{"events": []}', 1, "duration_s", "missing"),
    ('{"duration_s": 0, "events": []}', 1, "duration_s", "outside"),
    ('{"duration_s": 5,\n "board": "nope", "events": []}', 2, "board", "no board named"),
    ('{"duration_s": 5,\n "events": [\n {"t": 1, "press": "plus"},\n ]}', 4, "", "not valid JSON"),
    ('{"duration_s": 5,\n "duration_s": 6, "events": []}', 2, "", "given twice"),
    ('{"duration_s": NaN, "events": []}', 1, "", "not valid JSON"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "key", "words"), BAD)
def test_a_bad_scenario_is_rejected_naming_line_and_key(text, line, key, words):
    with pytest.raises(scenario.ScenarioError) as ei:
        scenario.parse(text, "x.json")
    e = ei.value
    assert (e.line, e.key) == (line, key), str(e)
    assert words in str(e)
    assert str(e).startswith("x.json:%d: " % line)


def test_a_scenario_parses_into_scheduled_presses_and_stimuli():
    text = doc(20, [{"t": 5, "load_ohm": {"1": "open", "2": 2200}}, {"t": 6, "battery_v": 3.2}])
    s = scenario.parse(text)
    assert s.duration_s == 20 and s.battery_v == 3.9 and s.load_ohm == {1: 1000.0, 2: 1000.0}
    press = s.events[1]
    assert (press.action, press.value, press.times, press.hold_s, press.gap_s) == (
        "press",
        "plus",
        4,
        0.1,
        0.2,
    )
    assert s.events[2].value == {1: 1e9, 2: 2200.0}
    assert json.loads(s.files()["/settings.json"])["program"] == "tens_conventional"


# ---- the command line -----------------------------------------------------------------------
def test_cli_runs_a_scenario_writes_the_trace_and_exits_0(tmp_path, capsys):
    f = tmp_path / "s.json"
    f.write_text(doc(6))
    out = tmp_path / "t.jsonl"
    assert cli.main(["sim", "--scenario", str(f), "--trace", str(out)]) == 0
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    ts = [r["t"] for r in recs]
    assert ts == sorted(ts)
    assert {r["kind"] for r in recs} == {"log", "led", "feedback", "output", "summary"}
    assert [r["ch"] for r in recs if r["kind"] == "summary"] == [1, 2]
    said = capsys.readouterr().out
    assert "violations: none" in said and "6 s simulated on board pico" in said


def test_cli_rejects_a_bad_file_with_exit_2_naming_the_line(tmp_path, capsys):
    f = tmp_path / "bad.json"
    f.write_text('{"duration_s": 5,\n "events": [{"t": 1, "press": "jump"}]}')
    assert cli.main(["sim", "--scenario", str(f)]) == 2
    assert "bad.json:2: events[0].press" in capsys.readouterr().err


# ---- trace semantics ------------------------------------------------------------------------
def test_a_stop_is_stamped_at_the_end_of_the_last_pulse_even_at_2_hz():
    t_press = 8.3  # 2 Hz: the last pulse was about 0.1 s before, the next would be 0.4 s after
    res = run_text(
        doc(10, [{"t": t_press, "press": "power"}], program="tens_acupuncture"),
        record_pulses=True,
    )
    assert res.violations == 0
    for ch in (1, 2):
        driven = [p for p in res.model.driven(ch) if p.t_a < t_press]
        last = driven[-1]
        zero = outputs(res, ch, t_press - 1.0)[-1]
        assert zero["drive_ma"] == 0.0 and zero["peak_ma"] == 0.0
        assert zero["t"] == pytest.approx(last.end_s, abs=1e-6)
        assert zero["t"] < t_press  # visible at the last pulse, not at the next missing one
        assert not res.model.driven(ch, t_press)
    ts = [r["t"] for r in res.records]
    assert ts == sorted(ts)


def test_output_records_are_stamped_at_the_first_pulse_of_the_new_state():
    res = run_text(doc(9, [{"t": 7.0, "press": "minus"}]), record_pulses=True)
    down = outputs(res, 1, 7.0)[0]
    first = [p for p in res.model.driven(1, 7.0) if p.drive_ma < 5.0][0]
    assert down["t"] == pytest.approx(first.t_a, abs=1e-6)
    assert down["peak_ma"] == pytest.approx(first.peak_a_ma, abs=0.001)
    # Nothing between the end of the soft start and the press: a steady output is one record.
    assert not outputs(res, 1, 5.2, 7.0)


def test_a_lift_makes_peak_zero_at_once_while_drive_stays_until_the_firmware_stops(fw_copy):
    def lift(**kw):
        # between two pulses (2 ms before one), wherever this firmware's CPU time puts the
        # pulse grid (a firmware that differs loads in a different time: its own grid)
        t = round(next_pulse(run_text(doc(6.1), **kw), 6.0) - 0.002, 6)
        return t, [{"t": t, "load_ohm": {"1": "open"}}]

    t_lift, events = lift()
    res = run_text(doc(8, events))
    recs = outputs(res, 1, t_lift)
    assert recs[0]["peak_ma"] == 0.0 and recs[0]["drive_ma"] > 5.0
    assert recs[1]["drive_ma"] == 0.0  # the firmware tripped after that very pulse
    assert res.violations == 0
    # A firmware whose running checks never trip (neither the per-pulse judgement nor the
    # partial-lift watch): the source keeps driving into nothing to the end of the run.
    edit(fw_copy / "stim" / "engine.py", '        """Fault code for a post-pulse reading m',
         "        return electrode.OK\n        # broken\n" + '        """Fault code')  # fmt: skip
    edit(fw_copy / "stim" / "electrode.py", "    def update(self, ohm, dt_ms):\n",
         "    def update(self, ohm, dt_ms):\n        return None  # broken\n")  # fmt: skip
    t_lift, events = lift(firmware_dir=fw_copy)
    res = run_text(doc(8, events), firmware_dir=fw_copy)
    recs = outputs(res, 1, t_lift)
    assert recs and all(r["peak_ma"] == 0.0 and r["drive_ma"] > 2.0 for r in recs)  # to the end
    v = res.of("violation", rule="SR-6")
    assert [x["what"] for x in v] == ["output into a bad load"]
    second = next_pulse(res, next_pulse(res, t_lift) + 0.001)
    assert v[0]["t"] == pytest.approx(second, abs=1e-4)  # the second pulse after the lift


def test_modulated_output_settles_to_a_range_after_one_sweep():
    res = run_text(doc(12, program="tens_modulated"))
    assert not outputs(res, 1, 6.0)  # steady after the soft start and the first sweep
    last = outputs(res, 1)[-1]
    # the range is recorded when it grows by more than TIMING_REL: its ends to that
    assert last["phase_us"] == pytest.approx(330.0, rel=TIMING_REL)
    assert last["phase_min_us"] == pytest.approx(200.0, rel=TIMING_REL)
    assert last["peak_ma"] == pytest.approx(5.92)


# ---- deliberately broken engines are caught -------------------------------------------------
def _broken_run(fw_copy, monkeypatch, tmp_path, capsys, text):
    orig = scenario.run
    monkeypatch.setattr(
        scenario, "run", lambda s, out=None, **kw: orig(s, out, firmware_dir=fw_copy, **kw)
    )
    f = tmp_path / "s.json"
    f.write_text(text)
    out = tmp_path / "t.jsonl"
    rc = cli.main(["sim", "--scenario", str(f), "--trace", str(out)])
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert "VIOLATIONS" in capsys.readouterr().out
    return rc, [r for r in recs if r["kind"] == "violation"], recs


@pytest.mark.req("SR-5")
def test_shoot_through_from_a_broken_pio_program_is_reported(
    fw_copy, monkeypatch, tmp_path, capsys
):
    edit(fw_copy / "stim" / "engine.py", "    set(pins, 0b00)  # 12 interphase gap",
         "    set(pins, 0b11)  # 12 interphase gap: BROKEN, both high")  # fmt: skip
    rc, v, recs = _broken_run(fw_copy, monkeypatch, tmp_path, capsys, doc(5))
    assert rc == 1
    assert {x["rule"] for x in v} >= {"SR-5"}
    assert len([x for x in v if x["rule"] == "SR-5"]) == 2 * 10  # capped per channel
    summary = [r for r in recs if r["kind"] == "summary"]
    assert all(s["violations"]["SR-5"] > 10 for s in summary)


@pytest.mark.req("SR-4")
def test_unequal_phases_from_a_broken_pio_program_are_reported(
    fw_copy, monkeypatch, tmp_path, capsys
):
    edit(fw_copy / "stim" / "engine.py", '    jmp(y_dec, "b")  # 18',
         '    jmp(y_dec, "b")[1]  # 18 BROKEN: phase B twice as long')  # fmt: skip
    rc, v, _ = _broken_run(fw_copy, monkeypatch, tmp_path, capsys, doc(5))
    assert rc == 1
    sr4 = [x for x in v if x["rule"] == "SR-4"]
    assert sr4 and sr4[0]["what"] == "unequal phase widths"
    assert sr4[0]["phase_b_us"] > 1.9 * sr4[0]["phase_a_us"]


@pytest.mark.req("SR-6")
def test_output_without_an_electrode_check_is_reported(fw_copy, monkeypatch, tmp_path, capsys):
    edit(
        fw_copy / "stim" / "stimulator.py",
        "        self._boost_on(now)\n\n    def _advance_check",
        "        self._boost_on(now)\n"
        "        # BROKEN: straight to output, no probe pulses, no verdict\n"
        "        c.state = DELIVERING\n"
        "        c.t_start = now\n"
        "        c.t_load_log = now\n"
        "        c.lift.reset(1000)\n"
        "        self.channels[ch].start(self._plan, 0)\n\n"
        "    def _advance_check",
    )
    rc, v, _ = _broken_run(fw_copy, monkeypatch, tmp_path, capsys, doc(6))
    assert rc == 1
    assert sorted((x["rule"], x["ch"], x["what"]) for x in v) == [
        ("SR-6", 1, "output without a passed electrode check"),
        ("SR-6", 2, "output without a passed electrode check"),
    ]


@pytest.mark.req("SR-3")
def test_a_current_over_the_cap_from_a_broken_engine_is_reported(
    fw_copy, monkeypatch, tmp_path, capsys
):
    # The engine's LEVEL duty for a current is twice what the calibration says: step 25
    # (37.5 mA asked) pushes 75 mA, over the pico's 60 mA cap.
    good = "                d -= self.lsb\n"
    edit(fw_copy / "stim" / "level.py", good, "                d = min(65535, 2 * d)\n")
    text = doc(12, [{"t": 4.0, "press": "plus", "times": 21, "gap_s": 0.1}])
    rc, v, recs = _broken_run(fw_copy, monkeypatch, tmp_path, capsys, text)
    assert rc == 1
    sr3 = [x for x in v if x["rule"] == "SR-3"]
    assert sr3 and sr3[0]["what"] == "peak current" and sr3[0]["peak_ma"] > 60.0
    assert max(r["peak_ma"] for r in recs if r["kind"] == "output") > 60.0


@pytest.mark.req("SR-4", "SR-8")
def test_a_pulse_cut_short_leaves_charge_the_account_reports_once():
    # Just as channel 1's pulse starts (found from a first run: the pulses keep to a grid): a
    # soft reset makes the firmware re-claim the pins in its `finally` (on the port's time,
    # a hundred-odd microseconds of unwinding later), in the middle of the pulse; Ctrl-C
    # stops at the pulse boundary (stim.engine hold) and leaves nothing.
    t_cut = next_pulse(run_text(doc(7.5)), 7.0) + 0.00004
    cut = [{"t": round(t_cut, 6), "soft_reset": True},
           {"t": 10.5, "press": "power", "hold_s": 1.7}, {"t": 12.5, "press": "plus"}]  # fmt: skip
    res = run_text(doc(15, cut))
    first = res.of("violation")[0]
    assert first["rule"] == "SR-4" and first["ch"] == 1 and t_cut - 0.001 < first["t"] < t_cut
    # whichever phase the re-claim cut (A: charge left; B: unequal widths), reported once
    assert first["what"] in ("net charge left by a pulse cut short", "unequal phase widths")
    assert res.summary[0]["violations"] == {"SR-4": 1}  # not again when the next pulse starts
    clean = run_text(doc(9, [{"t": round(t_cut, 6), "ctrl_c": True}]))
    assert clean.violations == 0
    assert all(abs(s["net_charge_nc"]) < 1e-6 for s in clean.summary)


@pytest.mark.req("SR-4")
def test_a_look_at_the_account_between_a_pulses_phases_is_no_cut():
    # The account is read between the scenario's steps; one read may fall into a pulse's
    # interphase gap, where phase A is in the account and B is yet to come. That is a pulse in
    # progress, not a cut: nothing may be reported (the trace once reported such a read as a
    # pulse cut short, and went on miscounting every later one).
    from host_tools.sim.trace import Tracer, TraceWriter
    from host_tools.sim.unit import SimulatedUnit

    t_gap = next_pulse(run_text(doc(7.5)), 7.0) + 0.000100 + 0.000010  # 100 us A, 20 us gap
    sc = scenario.parse(doc(8))
    unit = SimulatedUnit(sc.board, load_ohm=dict(sc.load_ohm), files=sc.files())
    tracer = Tracer(unit, TraceWriter(keep=True))
    try:
        for ev in sc.events:
            scenario.schedule(unit, tracer, ev)
        unit.run_until(t_gap)
        cm = unit.model.channels[0]
        assert cm.phase == 0 and "a_end" in cm._cur and "b_end" not in cm._cur  # in the gap
        tracer.poll()
        unit.run_until(7.9)
        tracer.poll()
        assert tracer.violation_count == 0
    finally:
        unit.close()

"""Custom programs (FR-30; SR-3, SR-13, SR-14, SR-15): installed from the host as key=value
lines, checked by the built-ins' validator and the board's caps, stored in /programs.json (at
most four), cycled by MODE after the built-ins. The whole firmware on the simulated pico; what
counts is the pulses at the load, the flash and the replies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from host_tools import progtool
from host_tools.rp2sim.port_math import PWRON_RESET
from host_tools.testing.hostproto import err, keep_alive, ok, pair, pulses, send, unit_on

pytestmark = pytest.mark.req("FR-30")

GENTLE = json.loads(
    (Path(__file__).resolve().parents[2] / "programs" / "example_gentle.json").read_text()
)


def install(unit, p):
    ok(unit, "program clear")
    for line in progtool.set_lines(p):
        ok(unit, line)
    return send(unit, "program add")[-1]


def stored(unit):
    data = unit.fs.files.get("/programs.json")
    return None if data is None else json.loads(data)


@pytest.mark.req("FR-30", "SR-3", "SR-15")
def test_an_installed_program_runs_after_the_built_ins_and_is_capped_at_every_step(make_unit):
    unit = unit_on(make_unit)
    rep = install(unit, GENTLE)
    assert rep["r"] == "ok" and rep["program"] == "gentle_mod" and rep["n"] == 1
    assert ok(unit, "program list")["custom"] == ["gentle_mod"]
    assert stored(unit) == [GENTLE]
    # MODE cycles through the six built-ins, then to it (counted: program 7).
    for i in range(6):
        unit.press("mode", at=unit.chip.t_s + 0.1 + 0.5 * i)
    unit.run_for(3.5)
    assert [e["id"] for e in unit.logs("program")][-1] == "gentle_mod"
    unit.press("plus")
    unit.run_for(4.0)
    got = pulses(unit, 1, unit.chip.t_s - 2.0)
    widths = [p.width_a_s * 1e6 for p in got]
    assert got and 149 <= min(widths) and max(widths) <= 251  # its sweep, 150-250 us
    gaps = [b.t_a - a.t_a for a, b in zip(got, got[1:], strict=False)]
    assert min(gaps) == pytest.approx(1 / 60, rel=0.01)  # 60 Hz
    # Raised from the host one step at a time until a cap refuses, naming it (SR-3): the
    # host asks again (its consent ended when it went quiet) and the wearer allows it.
    pair(unit)
    code, step = None, 1
    while code is None and step < 45:
        step += 1
        unit.run_for(0.45)
        rep = send(unit, "intensity 1 %d" % step)[-1]
        code = rep.get("code") if rep["r"] == "err" else None
    # On the pico no physical cap binds before its top step (40 x 1.5 mA = its 60 mA peak
    # cap): the step cap names itself, and the load never saw more than the board allows.
    assert code == "limit" and rep["limit"] == "step" and step == 41
    top = max(p.peak_ma for p in pulses(unit, 1))
    assert top <= unit.board["limits"]["max_peak_ma"] + 0.3


@pytest.mark.req("FR-30", "SR-3")
@pytest.mark.parametrize(
    "change,key",
    [
        ({"phase_us": 900}, "phase_us"),
        ({"rate_hz": "fast"}, "rate_hz"),
        ({"colour": "red"}, "colour"),
        ({"kind": "laser"}, "kind"),
        ({"id": "tens_burst"}, "id"),
        ({"session_min": 600}, "session_min"),
        ({"burst": {"pulses": 30, "rate_hz": 2}}, "burst"),
    ],
)
def test_a_bad_program_is_refused_naming_the_key_and_changes_nothing(make_unit, change, key):
    unit = unit_on(make_unit)
    install(unit, GENTLE)
    before = dict(unit.fs.files)
    p = {**GENTLE, "id": "other", **change}
    if "burst" in change:
        p.pop("sweep")
    rep = install(unit, p)
    assert rep["r"] == "err" and rep["code"] == "range" and rep["msg"].startswith(key), rep
    assert unit.fs.files == before and ok(unit, "program list")["custom"] == ["gentle_mod"]


def test_at_most_four_and_a_removed_one_is_gone(make_unit):
    unit = unit_on(make_unit)
    for i in range(4):
        assert install(unit, {**GENTLE, "id": "p%d" % i})["r"] == "ok"
    before = stored(unit)
    rep = install(unit, {**GENTLE, "id": "p4"})
    assert rep["r"] == "err" and "4 installed" in rep["msg"]
    assert stored(unit) == before
    assert ok(unit, "program remove p1")["n"] == 3
    assert [p["id"] for p in stored(unit)] == ["p0", "p2", "p3"]
    assert err(unit, "program remove p1")["code"] == "range"
    assert err(unit, "program remove tens_burst")["code"] == "range"  # built-ins stay


def test_each_program_command_answers_what_it_did_and_logs_it(make_unit):
    unit = unit_on(make_unit)
    assert ok(unit, "program set id=p0")["keys"] == 1
    assert "stim.custom" not in unit.runtime.modules  # its code leaves the heap after each use
    ok(unit, "program clear")
    assert err(unit, "program add")["code"] == "bad_args"  # the clear dropped what was sent
    for i in range(2):
        assert install(unit, {**GENTLE, "id": "p%d" % i})["r"] == "ok"
    assert [e["id"] for e in unit.logs("program_added")] == ["p0", "p1"]
    e = err(unit, "@q7 program add x")
    assert (e["code"], e["cmd"], e["id"]) == ("bad_args", "program", "q7")
    assert e["msg"] == "program set|add|list|remove ID|clear"  # not taken for an add
    assert err(unit, "program remove")["code"] == "bad_args"
    e = err(unit, "program remove " + "x" * 30)
    assert (e["code"], e["msg"]) == ("range", "no installed program " + "x" * 24)
    # Removing one not in use leaves the selection; removing the one in use goes back to the
    # first built-in, not to a program no longer there.
    ok(unit, "set program=p1")
    assert ok(unit, "program remove p0")["n"] == 1
    assert ok(unit, "status")["program"] == "p1"
    assert ok(unit, "program remove p1")["n"] == 0
    assert ok(unit, "status")["program"] == "tens_conventional"
    assert [e["id"] for e in unit.logs("program_removed")] == ["p0", "p1"]


def test_a_program_is_sent_from_the_first_set_and_add_needs_one(make_unit):
    """Right after power-up nothing is half sent: `program add` says so, and the first `set`
    starts a program without a `clear` before it."""
    unit = unit_on(make_unit)
    assert err(unit, "program add")["code"] == "bad_args"
    lines = progtool.set_lines(GENTLE)
    for line in lines:
        ok(unit, line)
    assert ok(unit, "program add")["program"] == GENTLE["id"]
    assert err(unit, "program add")["code"] == "bad_args"  # added once, then nothing is pending


@pytest.mark.req("FR-30", "SR-13")
def test_a_program_the_flash_cannot_hold_is_an_io_error_and_nothing_is_installed(make_unit):
    unit = unit_on(make_unit)
    unit.fs.capacity = unit.fs.used() + 5  # room for a few bytes only
    rep = install(unit, GENTLE)
    assert (rep["r"], rep["code"], rep["cmd"]) == ("err", "io", "program")
    assert stored(unit) is None
    assert ok(unit, "program list")["custom"] == []
    unit.fs.capacity = 1_400_000
    assert install(unit, GENTLE)["r"] == "ok"  # with room again, the same program installs


@pytest.mark.req("FR-30", "SR-15", "SR-14")
def test_installing_needs_consent_and_no_session(make_unit):
    unit = unit_on(make_unit, paired=False)
    assert err(unit, "program set id=x")["code"] == "consent"
    assert ok(unit, "program list")["custom"] == []  # reading needs nothing
    unit.press("plus")  # the wearer's own session
    unit.run_for(2.5)
    assert err(unit, "program add")["code"] == "state"
    assert "/programs.json" not in unit.fs.files


@pytest.mark.req("FR-30", "SR-13")
def test_a_damaged_file_leaves_the_built_ins_and_is_kept(make_unit):
    board_files = {"/programs.json": json.dumps([GENTLE])[:-9]}  # a cut write
    from host_tools.boards import load_board

    b = load_board("pico")
    unit = make_unit(b, load_ohm={1: 1000.0, 2: 1000.0},
                     files={"/board.json": json.dumps(b), **board_files})  # fmt: skip
    unit.press("power", at=0.5, hold_s=1.7)
    unit.run_until(2.5)
    warn = unit.logs("programs")
    assert warn and warn[0]["lvl"] == "warn" and "unreadable" in warn[0]["msg"]
    assert ok(unit, "program list")["custom"] == []
    assert unit.fs.files["/programs.json"] == board_files["/programs.json"].encode()


def test_installed_programs_survive_a_power_cycle_and_a_saved_selection_too(make_unit):
    unit = unit_on(make_unit)
    install(unit, GENTLE)
    ok(unit, "set program=gentle_mod")
    unit.at(unit.chip.t_s + 0.5, unit.chip.hard_reset, PWRON_RESET)  # battery out and in
    unit.press("power", at=unit.chip.t_s + 1.0, hold_s=1.7)
    keep_alive(unit, unit.chip.t_s + 3.5)
    assert ok(unit, "status")["program"] == "gentle_mod"
    assert [e for e in unit.logs("programs") if e.get("custom") == ["gentle_mod"]]


BOOT_ONLY = ("stim.custom", "stim.progcheck", "stim.board", "stim.update", "stim.version")


def test_the_boot_time_modules_leave_the_heap_once_the_unit_runs(make_unit):
    """The RP2040's heap is about 190 kB. What runs only at boot (the installed programs'
    loader and their check, the board file's validator, the update check, the version file)
    is dropped from the module table once used, so the garbage collector takes it back."""
    unit = unit_on(make_unit)
    install(unit, GENTLE)
    unit.at(unit.chip.t_s + 0.5, unit.chip.hard_reset, PWRON_RESET)  # boot with it installed
    unit.press("power", at=unit.chip.t_s + 1.0, hold_s=1.7)
    keep_alive(unit, unit.chip.t_s + 3.5)
    assert [e for e in unit.logs("programs") if e.get("custom") == ["gentle_mod"]]
    loaded = set(unit.runtime.modules)
    assert {"stim.app", "stim.unit", "stim.engine"} <= loaded
    assert sorted(loaded & set(BOOT_ONLY)) == []

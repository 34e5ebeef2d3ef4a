"""`stimctl program add FILE | list | remove ID` against the whole firmware on the simulated
unit (host_tools/testing/unit_serial.py), with a wearer who allows the laptop (SR-15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from host_tools import cli, progtool
from host_tools.testing.hostproto import unit_on

pytestmark = pytest.mark.req("FR-30")

EXAMPLE = Path(__file__).resolve().parents[2] / "programs" / "example_gentle.json"


def test_add_list_remove_with_the_wearers_press(make_unit, dio_for, capsys):
    unit = unit_on(make_unit, paired=False)
    unit.answer_hosts("plus")
    dio_for(unit)
    assert cli.main(["program", "add", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "press PLUS on the unit" in out and "installed gentle_mod (1 of at most 4)" in out
    assert json.loads(unit.fs.files["/programs.json"]) == [json.loads(EXAMPLE.read_text())]
    assert cli.main(["program", "list"]) == 0
    assert "installed: gentle_mod" in capsys.readouterr().out
    assert cli.main(["program", "remove", "gentle_mod"]) == 0
    assert json.loads(unit.fs.files["/programs.json"]) == []


def test_a_refusal_names_the_key_and_a_bad_file_never_reaches_the_unit(
    make_unit, dio_for, capsys, tmp_path
):
    unit = unit_on(make_unit)
    unit.answer_hosts("plus")
    dio_for(unit)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(EXAMPLE.read_text()), "phase_us": 900}))
    assert cli.main(["program", "add", str(bad)]) == 1
    assert "phase_us" in capsys.readouterr().err
    assert "/programs.json" not in unit.fs.files
    bad.write_text('{"id": "x", "name": "50% off"')  # not even JSON
    sent = unit.usb_rx[:]
    assert cli.main(["program", "add", str(bad)]) == 1
    assert "not JSON" in capsys.readouterr().err and unit.usb_rx == sent


def test_set_lines_fit_the_protocol_and_encode_spaces():
    p = json.loads(EXAMPLE.read_text())
    lines = progtool.set_lines(p)
    assert all(len(x) <= progtool.LINE_ROOM and len(x.split()) <= 8 for x in lines)
    assert "name=Gentle%20modulated" in " ".join(lines)
    assert "sweep.shape=sine" in " ".join(lines)
    with pytest.raises(progtool.ProgramFileError):
        progtool.set_lines({**p, "name": "100% sure"})

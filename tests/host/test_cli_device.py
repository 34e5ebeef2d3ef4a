"""The device commands through `stimctl` itself, with the fake board behind cli._dio()."""

from __future__ import annotations

import errno

import pytest

from host_tools import cli
from host_tools.device import PortInfo
from host_tools.rp2sim.vfs import FlashFs
from host_tools.testing.fake_transport import FakeBoard, FakeDeviceIO

pytestmark = pytest.mark.req("FR-13")


@pytest.fixture
def dio(monkeypatch):
    d = FakeDeviceIO([FakeBoard(FlashFs())], other_ports=[PortInfo("/dev/ttyS0", "ttyS0")])
    monkeypatch.setattr(cli, "_dio", lambda: d)
    return d


def test_devices_marks_rp2040_boards(dio, capsys):
    assert cli.main(["devices"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any("/dev/ttyACM0" in x and "MicroPython RP2040" in x for x in out)
    assert any("/dev/ttyS0" in x and "RP2040" not in x for x in out)


def test_devices_with_nothing_plugged_in(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_dio", lambda: FakeDeviceIO([]))
    assert cli.main(["devices"]) == 0
    assert "data cable" in capsys.readouterr().out


def test_flash_then_flash_again(dio, capsys):
    assert cli.main(["flash"]) == 0
    out = capsys.readouterr().out
    assert "MicroPython 1.29.0" in out and "verified" in out and "reset" in out
    assert cli.main(["flash", "--port", "/dev/ttyACM0"]) == 0
    assert "0 file(s) written" in capsys.readouterr().out


def test_flash_error_says_what_to_do(dio, capsys):
    dio.open_errors["/dev/ttyACM0"] = OSError(errno.EACCES, "Permission denied")
    assert cli.main(["flash"]) == 2
    err = capsys.readouterr().err
    assert "permission denied" in err and "what to do:" in err and "dialout" in err


def test_flash_refuses_an_invalid_board_file(dio, tmp_path, capsys):
    bad = tmp_path / "b.json"
    bad.write_text('{"name": "x"}')
    assert cli.main(["flash", "--board", str(bad)]) == 2
    assert "is invalid: key" in capsys.readouterr().err
    assert dio.transports == []


def test_runtime_refuses_a_file_that_is_not_uf2(dio, tmp_path, capsys):
    img = tmp_path / "mp.uf2"
    img.write_bytes(b"x" * 100)
    assert cli.main(["runtime", "--uf2", str(img)]) == 2
    assert "not a UF2 image" in capsys.readouterr().err

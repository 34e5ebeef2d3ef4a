"""boot.py and stim/update.py on the simulated unit: the real boot.py finishes a committed
switch-over before main.py runs, ignores an uncommitted one, never raises, and keeps the outputs
safe even when the stim package is damaged; a tree left by a cut flash boots the app."""

from __future__ import annotations

import json

import pytest

from host_tools import flash as fl
from host_tools.boards import load_board
from host_tools.rp2sim.chip import F_SIO
from host_tools.rp2sim.vfs import FlashFs
from host_tools.testing.fake_transport import FakeBoard, FakeDeviceIO

pytestmark = pytest.mark.req("SR-8", "FR-10", "FR-11")

BOARD = load_board("pico")
BOARD_FILE = {"/board.json": json.dumps(BOARD)}


def test_boot_finishes_a_committed_switch_over_before_main_runs(make_unit):
    files = dict(BOARD_FILE)
    files.update(
        {
            "/stim/retired.py": "X = 1\n",
            "/stim/extra.py": "OLD = 1\n",
            "/.staging/stim/extra.py": "NEW = 1\n",
            "/.staging/lib/tool.py": "T = 1\n",
            "/.staging/MANIFEST": "d /stim\nd /lib\np /stim/extra.py\np /lib/tool.py\n"
            "r /stim/retired.py\n",
        }
    )
    unit = make_unit(files=files)
    unit.run_until(1.0)  # boot.py, the switch-over (each rename a flash commit), the app
    fs = unit.fs
    assert fs.read("/stim/extra.py") == b"NEW = 1\n"
    assert fs.read("/lib/tool.py") == b"T = 1\n"
    assert "/stim/retired.py" not in fs.files
    assert not any(p.startswith("/.staging") for p in list(fs.files) + list(fs.dirs))
    assert unit.logs("app_start"), unit.console.lines


def test_boot_ignores_an_uncommitted_staging_area(make_unit):
    files = dict(BOARD_FILE)
    files.update({"/stim/extra.py": "OLD = 1\n", "/.staging/stim/extra.py": "NEW"})
    unit = make_unit(files=files)
    unit.run_until(1.0)
    assert unit.fs.read("/stim/extra.py") == b"OLD = 1\n"
    assert unit.fs.read("/.staging/stim/extra.py") == b"NEW"
    assert unit.logs("app_start")


def test_a_damaged_stim_package_still_drives_every_user_pin_low(make_unit, fw_copy):
    (fw_copy / "stim" / "safe.py").write_text("raise ImportError('half-written file')\n")
    unit = make_unit(firmware_dir=fw_copy)
    unit.run_until(0.5)  # main.py then fails to import stim.safe too: that is reported, not hung
    for n in range(23):
        g = unit.chip.gpio[n]
        assert (g.func, g.sio_oe, unit.pin(n)) == (F_SIO, 1, 0), "GPIO %d" % n
    assert unit.state == "repl"
    assert any("half-written file" in line for line in unit.console.lines)


def test_a_broken_update_module_does_not_stop_the_boot(make_unit, fw_copy):
    (fw_copy / "stim" / "update.py").write_text("def boot():\n    raise OSError(5)\n")
    unit = make_unit(firmware_dir=fw_copy)
    unit.run_until(1.0)
    assert unit.logs("app_start")


def _materialize(fs: FlashFs, root):
    for path, data in fs.files.items():
        if fl._managed(path):
            dst = root / path.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
    return root


@pytest.mark.parametrize("cut_at", [4000, 20_000, None])
def test_the_tree_a_cut_flash_leaves_boots_the_app(cut_at, make_unit, tmp_path):
    """Old firmware (the current one with a marker) flashed with the current one, the link cut
    part way; after a power cycle the board's files run: the app starts, nothing crashes."""
    old = {f.path: f.data for f in fl.firmware_files()}
    old["/stim/app.py"] += b"\n# old release\n"
    old["/board.json"] = (fl.ROOT / "boards" / "pico.json").read_bytes()
    b = FakeBoard(FlashFs(old))
    try:
        fl.flash(FakeDeviceIO([b], cut_at_byte=cut_at))
    except fl.DeviceError:
        pass
    b.reset()
    unit = make_unit(firmware_dir=_materialize(b.fs, tmp_path / "device"))
    unit.run_until(1.0)
    assert unit.logs("app_start")
    assert not unit.logs("crash")

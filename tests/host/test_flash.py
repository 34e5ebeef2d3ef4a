"""`stimctl flash` against a fake board: the commands it sends run on the simulated flash
filesystem (sim/vfs.py FlashFs) through mpremote's own Transport code.

The central property: cut the link anywhere (at any byte, after any exec) and power the board
up again, and its firmware files are exactly the old set or exactly the new set.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest

from host_tools import flash as fl
from host_tools.device import DeviceError, PortInfo
from host_tools.rp2sim.vfs import FlashFs
from host_tools.testing.fake_transport import FakeBoard, FakeDeviceIO

WEARABLE = "Wearable TENS v1 with RP2040"  # what wearable_v1.json names as its hardware

pytestmark = pytest.mark.req("FR-11")

FIRMWARE = fl.FIRMWARE_DIR
BOARD_JSON = (fl.ROOT / "boards" / "pico.json").read_bytes()


def tree(fw_dir: Path, board: bytes = BOARD_JSON, mpy=False, mpy_dir=None) -> dict[str, bytes]:
    ident = fl.identity_of(fw_dir)  # stim/version.py, as flash writes it
    files = fl.firmware_files(mpy, fw_dir, mpy_dir or fl.MPY_DIR, ident)
    t = {f.path: f.data for f in files}
    t["/board.json"] = board
    return t


def managed(fs: FlashFs) -> dict[str, bytes]:
    return {p: d for p, d in fs.files.items() if fl._managed(p)}


@pytest.fixture
def old_fw(tmp_path) -> Path:
    """An older firmware: a different app.py and a module the new one no longer has."""
    d = tmp_path / "old_fw"
    shutil.copytree(FIRMWARE, d)
    app = d / "stim" / "app.py"
    app.write_text(app.read_text() + "\n# old release\n")
    (d / "stim" / "retired.py").write_text("X = 1\n")
    return d


@pytest.fixture
def legacy_fw(old_fw, tmp_path) -> Path:
    """An older firmware from before switch-over support: no update.py, the old boot.py."""
    d = tmp_path / "legacy_fw"
    shutil.copytree(old_fw, d)
    (d / "stim" / "update.py").unlink()
    (d / "boot.py").write_text("import stim.safe\n\nstim.safe.boot_safe()\n")
    return d


def board_with(files: dict[str, bytes | str], **kw) -> FakeBoard:
    return FakeBoard(FlashFs(files, capacity=kw.pop("capacity", 1_400_000)), **kw)


def test_fresh_board_gets_every_file_verified_and_is_reset():
    b = board_with({})
    rep = fl.flash(FakeDeviceIO([b]))
    assert managed(b.fs) == tree(FIRMWARE)
    assert sorted(rep.written) == sorted(tree(FIRMWARE))
    assert rep.skipped == [] and rep.removed == []
    # Ctrl-C first (main.py makes the outputs safe), a soft reset into the raw REPL, and a
    # hard reset at the end so the new firmware starts.
    assert b.events[:2] == ["interrupt", "soft_reset"]
    assert b.events[-2:] == ["reset", "boot"]
    assert not any(p.startswith("/.staging") for p in b.fs.files)
    assert "/.staging" not in b.fs.dirs


def test_unchanged_board_is_not_written():
    b = board_with(tree(FIRMWARE))
    dio = FakeDeviceIO([b])
    writes = b.fs.writes
    rep = fl.flash(dio)
    assert rep.written == [] and rep.bytes_written == 0
    assert sorted(rep.skipped) == sorted(tree(FIRMWARE))
    assert b.fs.writes == writes
    # Hash-skip: the host sent a few kilobytes of commands, not the firmware.
    assert dio.transports[0].sent < 6000 < sum(len(v) for v in tree(FIRMWARE).values())
    assert b.events[-2:] == ["reset", "boot"]


def test_only_changed_files_are_written_and_retired_files_removed(old_fw):
    b = board_with(tree(old_fw))
    rep = fl.flash(FakeDeviceIO([b]))
    # app.py, and the build identity (the old tree is no checkout: "unknown")
    assert rep.written == ["/stim/app.py", "/stim/version.py"]
    assert rep.removed == ["/stim/retired.py"]
    assert managed(b.fs) == tree(FIRMWARE)


def test_other_files_on_the_board_are_kept(old_fw):
    files = tree(old_fw)
    files["/settings.json"] = b'{"program": 2}'
    b = board_with(files)
    fl.flash(FakeDeviceIO([b]))
    assert b.fs.read("/settings.json") == b'{"program": 2}'


def test_other_board_file_is_installed_as_board_json():
    b = board_with(tree(FIRMWARE), machine="Wearable TENS v1 with RP2040")
    rep = fl.flash(FakeDeviceIO([b]), board="wearable_v1")
    assert rep.written == ["/board.json"]
    assert b.fs.read("/board.json") == (fl.ROOT / "boards" / "wearable_v1.json").read_bytes()


def test_invalid_board_file_is_refused_naming_the_key_before_touching_the_board(tmp_path):
    bad = json.loads(BOARD_JSON)
    bad["channels"][0]["phase_b"] = bad["channels"][0]["phase_a"] + 5
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    dio = FakeDeviceIO([board_with({})])
    with pytest.raises(DeviceError) as ei:
        fl.flash(dio, board=str(path))
    assert ei.value.kind == "board_invalid"
    assert "channels[0].phase_b" in str(ei.value) or "phase_b" in str(ei.value)
    assert "boards --check" in ei.value.hint
    assert dio.transports == []


def test_unknown_board_name_is_refused():
    with pytest.raises(DeviceError) as ei:
        fl.flash(FakeDeviceIO([board_with({})]), board="no_such_board")
    assert ei.value.kind == "board_invalid"


# ---- --mpy ---------------------------------------------------------------------------------
def test_mpy_without_a_build_says_to_run_make_mpy(tmp_path):
    with pytest.raises(DeviceError) as ei:
        fl.flash(FakeDeviceIO([board_with({})]), mpy=True, mpy_dir=tmp_path / "nothing")
    assert ei.value.kind == "mpy_missing" and "make mpy" in ei.value.hint


def test_mpy_tree_replaces_the_sources(tmp_path):
    mpy = tmp_path / "mpy"
    (mpy / "stim").mkdir(parents=True)
    for p in (FIRMWARE / "stim").glob("*.py"):
        (mpy / "stim" / (p.stem + ".mpy")).write_bytes(b"M\x06" + p.stem.encode())
    b = board_with(tree(FIRMWARE))
    rep = fl.flash(FakeDeviceIO([b]), mpy=True, mpy_dir=mpy)
    got = managed(b.fs)
    # A stale .py would shadow its .mpy (MicroPython tries .py first): all are removed.
    assert not any(p.startswith("/stim/") and p.endswith(".py") for p in got)
    assert got["/stim/app.mpy"] == b"M\x06app"
    assert got["/boot.py"] == (FIRMWARE / "boot.py").read_bytes()
    assert got["/main.py"] == (FIRMWARE / "main.py").read_bytes()
    assert "/stim/app.py" in rep.removed


# ---- errors, each with what to do ----------------------------------------------------------
@pytest.mark.req("FR-13")
def test_no_device():
    with pytest.raises(DeviceError) as ei:
        fl.flash(FakeDeviceIO([], other_ports=[PortInfo("/dev/ttyS0", "serial")]))
    assert ei.value.kind == "no_device"
    assert "data cable" in ei.value.hint and "stimctl runtime" in ei.value.hint


@pytest.mark.req("FR-13")
def test_several_devices_and_no_port():
    a, b = board_with({}, port="/dev/ttyACM0"), board_with({}, port="/dev/ttyACM1")
    with pytest.raises(DeviceError) as ei:
        fl.flash(FakeDeviceIO([a, b]))
    assert ei.value.kind == "several_devices"
    assert "/dev/ttyACM0" in str(ei.value) and "/dev/ttyACM1" in str(ei.value)
    assert "--port" in ei.value.hint
    fl.flash(FakeDeviceIO([a, b]), port="/dev/ttyACM1")  # naming one works
    assert managed(b.fs) == tree(FIRMWARE) and managed(a.fs) == {}


@pytest.mark.req("FR-13")
def test_named_port_that_does_not_exist():
    with pytest.raises(DeviceError) as ei:
        fl.flash(FakeDeviceIO([board_with({})]), port="/dev/ttyACM7")
    assert ei.value.kind == "no_device" and "stimctl devices" in ei.value.hint


@pytest.mark.req("FR-13")
@pytest.mark.parametrize(
    "exc, kind, hint",
    [
        (OSError(errno.EACCES, "Permission denied"), "permission", "dialout"),
        (OSError(errno.EBUSY, "Device or resource busy"), "busy", "close the other program"),
        (
            OSError(errno.EAGAIN, "Could not exclusively lock port /dev/ttyACM0"),
            "busy",
            "fuser",
        ),
    ],
)
def test_port_open_errors(exc, kind, hint):
    dio = FakeDeviceIO([board_with({})])
    dio.open_errors["/dev/ttyACM0"] = exc
    with pytest.raises(DeviceError) as ei:
        fl.flash(dio)
    assert ei.value.kind == kind and hint in ei.value.hint


@pytest.mark.req("FR-13")
def test_pyserial_errors_are_classified():
    """The real messages pyserial raises (serialposix.py), errno included."""
    import serial

    from host_tools.device import classify_open_error

    e = serial.SerialException(
        13, "could not open port /dev/ttyACM0: [Errno 13] Permission denied"
    )
    assert classify_open_error("/dev/ttyACM0", e).kind == "permission"
    e = serial.SerialException(11, "Could not exclusively lock port /dev/ttyACM0: [Errno 11]")
    assert classify_open_error("/dev/ttyACM0", e).kind == "busy"
    e = serial.SerialException(2, "could not open port /dev/x: [Errno 2] No such file")
    assert classify_open_error("/dev/x", e).kind == "no_device"


@pytest.mark.req("FR-13")
def test_not_micropython():
    dio = FakeDeviceIO([board_with({}, micropython=False)])
    with pytest.raises(DeviceError) as ei:
        fl.flash(dio)
    assert ei.value.kind == "not_micropython"
    assert "stimctl runtime" in ei.value.hint
    assert dio.transports[0].closed


@pytest.mark.req("FR-13")
def test_micropython_on_another_chip_is_refused():
    b = board_with({}, platform="esp32", machine="Generic ESP32 module with ESP32")
    with pytest.raises(DeviceError) as ei:
        fl.flash(FakeDeviceIO([b]))
    assert ei.value.kind == "wrong_platform"
    assert managed(b.fs) == {}


def test_filesystem_full_is_found_before_writing(old_fw):
    files = tree(old_fw)
    b = board_with(files, capacity=sum(len(v) for v in files.values()) + 2000, machine=WEARABLE)
    with pytest.raises(DeviceError) as ei:
        fl.flash(FakeDeviceIO([b]), board="wearable_v1")
    assert ei.value.kind == "fs_full"
    assert "make mpy" in ei.value.hint and "old firmware is still installed" in ei.value.hint
    assert managed(b.fs) == files


def test_filesystem_full_while_writing_leaves_the_old_firmware(old_fw):
    files = tree(old_fw)
    b = board_with(files, capacity=sum(len(v) for v in files.values()) + 100, machine=WEARABLE)
    b.fs.os_module_orig = b.fs.os_module

    def lying_os():  # a filesystem that reports more free space than it has (metadata, wear)
        m = b.fs.os_module_orig()
        m.statvfs = lambda path="/": (4096, 4096, 1000, 900, 900, 0, 0, 0, 0, 255)
        return m

    b.fs.os_module = lying_os
    with pytest.raises(DeviceError) as ei:
        fl.flash(FakeDeviceIO([b]), board="wearable_v1")
    assert ei.value.kind == "fs_full"
    assert managed(b.fs) == files
    assert not any(p.startswith("/.staging/") for p in b.fs.files)  # the space is given back


@pytest.mark.req("FR-13")
def test_link_lost_mid_write_is_reported_with_what_to_do():
    b = board_with({})
    with pytest.raises(DeviceError) as ei:
        fl.flash(FakeDeviceIO([b], cut_at_byte=9000))
    assert ei.value.kind == "link_lost"
    assert "old firmware is untouched" in str(ei.value)
    assert "plugged in" in ei.value.hint


# ---- a cut anywhere leaves old or new, complete ------------------------------------------
def _exchange_size(files) -> tuple[int, int]:
    """Bytes and exec calls of one complete flash onto a board holding `files`."""
    b = board_with(files)
    dio = FakeDeviceIO([b])
    fl.flash(dio)
    return dio.transports[0].sent, dio.transports[0].execs


def _cut_points(total: int) -> list[int]:
    step = max(1, total // 150)
    return sorted(set(range(0, total, step)) | {total - 1})


def _after_power_cycle(start: dict[str, bytes | str], **cut) -> tuple[FakeBoard, bool]:
    b = board_with(start)
    try:
        fl.flash(FakeDeviceIO([b], **cut), board="pico")
        done = True
    except DeviceError as e:
        assert e.kind == "link_lost", e
        done = False
    b.attached = True
    b.reset()  # plugged back in: power-up, boot.py
    return b, done


@pytest.mark.parametrize("firmware", ["old", "legacy"])
def test_cut_at_any_byte_boots_old_or_new_complete_firmware(firmware, old_fw, legacy_fw):
    old = tree(old_fw if firmware == "old" else legacy_fw)
    new = tree(FIRMWARE)
    total, _ = _exchange_size(old)
    seen = set()
    for n in _cut_points(total):
        b, _ = _after_power_cycle(old, cut_at_byte=n)
        got = managed(b.fs)
        if firmware == "legacy" and got != new:
            # The first rename of a switch-over gives a board without switch-over support the
            # update module (which nothing of the old firmware imports); boot.py comes next.
            got.pop("/stim/update.py", None)
        assert got in (old, new), "cut at byte %d of %d" % (n, total)
        seen.add("new" if got == new else "old")
        # Plugging it back in and flashing again always ends with the new firmware.
        fl.flash(FakeDeviceIO([b]))
        assert managed(b.fs) == new
    assert seen == {"old", "new"}


@pytest.mark.parametrize("firmware", ["old", "legacy"])
def test_cut_after_any_exec_boots_old_or_new_complete_firmware(firmware, old_fw, legacy_fw):
    """The board ran the command; the answer was lost (a cut between command and reply)."""
    old = tree(old_fw if firmware == "old" else legacy_fw)
    new = tree(FIRMWARE)
    _, execs = _exchange_size(old)
    for k in range(1, execs + 1):
        b, _ = _after_power_cycle(old, cut_after_exec=k)
        got = managed(b.fs)
        if firmware == "legacy" and got != new:
            got.pop("/stim/update.py", None)
        assert got in (old, new), "cut after exec %d of %d" % (k, execs)


def test_power_loss_during_the_boot_time_switch_over_is_finished_at_the_next_boot(old_fw):
    """Committed manifest, switch-over cut after each rename, at boot, again and again."""
    old, new = tree(old_fw), tree(FIRMWARE)
    _, execs = _exchange_size(old)
    # Find the cut that leaves a committed manifest and nothing moved yet.
    for k in range(1, execs + 1):
        b = board_with(old)
        with pytest.raises(DeviceError):
            fl.flash(FakeDeviceIO([b], cut_after_exec=k))
        if "/.staging/MANIFEST" in b.fs.files:
            break
    else:
        pytest.fail("no cut leaves a committed manifest")
    fs = b.fs
    real_os = fs.os_module
    committed = (dict(fs.files), set(fs.dirs))
    n_renames = sum(
        1 for line in fs.read("/.staging/MANIFEST").decode().splitlines() if line[:2] == "p "
    )
    for allowed in range(0, n_renames + 1):
        fs.files, fs.dirs = dict(committed[0]), set(committed[1])
        _flaky_renames(fs, allowed)
        FakeBoard(fs).boot()  # cut short at rename `allowed`
        fs.os_module = real_os
        FakeBoard(fs).boot()  # the next boot finishes it
        assert managed(fs) == new, "power lost after rename %d" % allowed


def _flaky_renames(fs: FlashFs, allowed: int):
    """From now on, power is lost at rename number `allowed` + 1."""
    real = fs.os_module
    calls = [0]

    def os_module():
        m = real()
        ren = m.rename

        def rename(a, b):
            calls[0] += 1
            if calls[0] > allowed:
                raise OSError(errno.EIO, "EIO")
            ren(a, b)

        m.rename = rename
        return m

    fs.os_module = os_module  # type: ignore[method-assign]
    return real


@pytest.mark.parametrize("firmware", ["old", "legacy"])
def test_power_loss_at_any_rename_of_the_switch_over(firmware, old_fw, legacy_fw):
    """Power lost during the renames the host drives: rename 1 commits the manifest, then one
    per file. A board whose boot.py finishes the switch-over always ends with the new firmware
    once committed; one from before switch-over support gets the new boot.py and update module
    first, so from its second file on it ends with the new firmware too."""
    old, new = tree(old_fw if firmware == "old" else legacy_fw), tree(FIRMWARE)
    n_files = len([p for p in new if new[p] != old.get(p)])
    for allowed in range(0, n_files + 2):
        b = board_with(old)
        real = _flaky_renames(b.fs, allowed)
        try:
            fl.flash(FakeDeviceIO([b]))
        except DeviceError as e:
            assert e.kind == "device_error" and "switching over" in str(e) or allowed == 0
        b.fs.os_module = real
        b.reset()  # power back
        got = managed(b.fs)
        if firmware == "old":
            assert got == (old if allowed == 0 else new), allowed
        elif allowed <= 1:
            assert got == old, allowed
        elif allowed == 2 and "/stim/update.py" not in old:
            assert got == old | {"/stim/update.py": new["/stim/update.py"]}
        else:
            assert got == new, allowed


def test_incomplete_staging_is_ignored_at_boot_and_cleared_by_the_next_flash(old_fw):
    old, new = tree(old_fw), tree(FIRMWARE)
    total, _ = _exchange_size(old)
    for n in _cut_points(total):  # the first cut that leaves a half-written staging area
        b = board_with(old)
        with pytest.raises(DeviceError):
            fl.flash(FakeDeviceIO([b], cut_at_byte=n))
        if any(p.startswith("/.staging/stim/") for p in b.fs.files):
            break
    assert any(p.startswith("/.staging/") for p in b.fs.files)
    assert "/.staging/MANIFEST" not in b.fs.files
    b.attached = True  # plugged back in
    b.reset()
    assert managed(b.fs) == old
    fl.flash(FakeDeviceIO([b]))
    assert managed(b.fs) == new
    assert not any(p.startswith("/.staging") for p in b.fs.files), sorted(
        p for p in b.fs.files if p.startswith("/.staging")
    )


def test_manifest_puts_the_switch_over_code_first():
    files = [
        fl.FwFile(p, b"") for p in ("/main.py", "/boot.py", "/stim/app.py", "/stim/update.py")
    ]
    m = fl.manifest(files, ["/stim/old.py"]).splitlines()
    assert m == [
        "d /stim",
        "p /stim/update.py",
        "p /boot.py",
        "p /main.py",
        "p /stim/app.py",
        "r /stim/old.py",
    ]


@pytest.mark.req("FR-11")
def test_a_board_file_for_other_hardware_is_refused_without_force():
    # Issue 21: `--board wearable_v1` onto a Pico was accepted; the unit then sat in battery
    # cut-off. The Pico reports "Raspberry Pi Pico with RP2040" (sys.implementation._machine).
    files = tree(FIRMWARE)
    files["/board.json"] = (fl.ROOT / "boards" / "pico.json").read_bytes()
    b = board_with(files)
    before = dict(b.fs.files)
    with pytest.raises(DeviceError) as e:
        fl.flash(FakeDeviceIO([b]), board="wearable_v1")
    assert e.value.kind == "wrong_hardware"
    assert "'Raspberry Pi Pico with RP2040'" in str(e.value)
    assert "'Wearable TENS v1 with RP2040'" in str(e.value) and "--force" in e.value.hint
    assert b.fs.files == before  # nothing written
    assert b.events[-2:] == ["reset", "boot"]  # back into the firmware it had
    said = []
    rep = fl.flash(FakeDeviceIO([b]), board="wearable_v1", force=True, say=said.append)
    assert rep.written == ["/board.json"]
    assert any(x.startswith("warning: ") and "--force" in x for x in said)


@pytest.mark.req("FR-11")
def test_stimctl_flash_refuses_other_hardware_and_names_force(monkeypatch, capsys):
    from host_tools import cli

    b = board_with({}, machine="Wearable TENS v1 with RP2040")
    monkeypatch.setattr(cli, "_dio", lambda: FakeDeviceIO([b]))
    assert cli.main(["flash", "--board", "pico"]) == 2
    err = capsys.readouterr().err
    assert "is for 'Raspberry Pi Pico with RP2040'" in err and "--force" in err
    assert managed(b.fs) == {}
    assert cli.main(["flash", "--board", "pico", "--force"]) == 0
    assert managed(b.fs) == tree(FIRMWARE)

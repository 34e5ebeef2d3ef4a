"""Which firmware a unit runs (issue: a field report must name it): `stimctl flash` writes the
tree's git identity into stim/version.py; the firmware logs it at boot and reports it in
`status` and in every history record; `stimctl --version` names the host tools'."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from host_tools import cli, identity
from host_tools import flash as fl
from host_tools.rp2sim.vfs import FlashFs
from host_tools.testing.fake_transport import FakeBoard, FakeDeviceIO
from host_tools.testing.hostproto import keep_alive, ok, unit_on

pytestmark = pytest.mark.req("FR-29")


def git(root: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A git checkout holding the firmware and the boards, one commit, tagged v1.2.0."""
    root = tmp_path / "repo"
    shutil.copytree(fl.FIRMWARE_DIR, root / "firmware")
    shutil.copytree(fl.ROOT / "boards", root / "boards")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "release")
    git(root, "tag", "v1.2.0")
    return root


def test_a_clean_checkout_is_its_tag_and_commit_and_a_changed_one_is_dirty(checkout):
    head = git(checkout, "rev-parse", "HEAD")
    ident = fl.identity_of(checkout / "firmware")
    assert ident == identity.Identity("v1.2.0", head) and not ident.dirty
    app = checkout / "firmware" / "stim" / "app.py"
    app.write_text(app.read_text() + "# a local change\n")
    ident = fl.identity_of(checkout / "firmware")
    assert ident.version == "v1.2.0-dirty" and ident.dirty and ident.commit == head


def test_outside_a_checkout_the_identity_is_unknown(tmp_path):
    shutil.copytree(fl.FIRMWARE_DIR, tmp_path / "firmware")
    assert fl.identity_of(tmp_path / "firmware") == identity.Identity("unknown", "")


def test_the_module_reads_back_from_source_and_from_mpy(tmp_path):
    from host_tools.dev import mpybuild

    ident = identity.Identity("v1.2.0-3-gabcdef012345-dirty", "ab" * 20)
    src = tmp_path / "version.py"
    src.write_bytes(ident.module())
    assert identity.parse_module(src.read_bytes()) == ident
    mpybuild.compile_file(src, tmp_path / "version.mpy", "stim/version.py")
    assert identity.parse_module((tmp_path / "version.mpy").read_bytes()) == ident
    assert identity.parse_module(b"") is None
    none = identity.Identity("unknown", "")
    assert identity.parse_module(none.module()) == none


def test_flash_writes_the_identity_and_says_it_before_and_after(checkout):
    said: list[str] = []
    b = FakeBoard(FlashFs({}))
    rep = fl.flash(FakeDeviceIO([b]), firmware_dir=checkout / "firmware", say=said.append)
    head = git(checkout, "rev-parse", "HEAD")
    assert b.fs.files["/stim/version.py"] == identity.Identity("v1.2.0", head).module()
    assert rep.before is None and rep.after == identity.Identity("v1.2.0", head)
    assert "firmware on the board: no version" in said
    assert "flashing v1.2.0" in said and "firmware on the board now: v1.2.0" in said
    # A build from uncommitted changes says so, and the board then reports it as -dirty.
    app = checkout / "firmware" / "stim" / "app.py"
    app.write_text(app.read_text() + "# a local change\n")
    said.clear()
    rep = fl.flash(FakeDeviceIO([b]), firmware_dir=checkout / "firmware", say=said.append)
    assert rep.before == identity.Identity("v1.2.0", head)
    assert "flashing v1.2.0-dirty (built from uncommitted changes)" in said
    assert rep.after is not None and rep.after.version == "v1.2.0-dirty"


def test_stimctl_version_names_the_host_tools(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("stimctl ") and "commit" in out


def test_the_firmware_reports_its_identity_at_boot_in_status_and_in_history(make_unit, tmp_path):
    fw = tmp_path / "firmware"
    shutil.copytree(fl.FIRMWARE_DIR, fw)
    ident = identity.Identity("v1.2.0-3-gabcdef012345", "cd" * 20)
    (fw / "stim" / "version.py").write_bytes(ident.module())
    unit = unit_on(make_unit, firmware_dir=fw)
    boot = unit.logs("boot")[0]
    assert (boot["version"], boot["commit"]) == (ident.version, ident.commit)
    st = ok(unit, "status")
    assert (st["version"], st["commit"]) == (ident.version, ident.commit)
    ok(unit, "start")
    keep_alive(unit, unit.chip.t_s + 3.0, every_s=0.5)
    ok(unit, "stop")
    unit.run_for(0.5)
    recs = [json.loads(line) for line in unit.fs.files["/history.jsonl"].decode().splitlines()]
    assert recs[-1]["fw"] == ident.version


def test_a_damaged_identity_never_stops_the_firmware(make_unit, tmp_path):
    fw = tmp_path / "firmware"
    shutil.copytree(fl.FIRMWARE_DIR, fw)
    (fw / "stim" / "version.py").write_text("BUILD = 'build one-token'\n")
    unit = unit_on(make_unit, firmware_dir=fw, paired=False)
    assert unit.logs("boot")[0]["version"] == "unknown"
    assert ok(unit, "status")["state"] == "idle"

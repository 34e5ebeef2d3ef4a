"""`stimctl runtime` against fake ports and a fake RPI-RP2 drive (a directory)."""

from __future__ import annotations

import hashlib
import io
import struct

import pytest

from host_tools import runtime as rt
from host_tools.device import DeviceError
from host_tools.testing.fake_transport import FakeBoard, FakeDeviceIO

pytestmark = pytest.mark.req("FR-14")

INFO = "UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n"


def uf2_image(blocks: int = 4, family: int = rt.RP2040_FAMILY) -> bytes:
    out = b""
    for i in range(blocks):
        head = struct.pack(
            "<8I",
            rt.UF2_MAGIC0,
            rt.UF2_MAGIC1,
            0x2000,
            0x10000000 + 256 * i,
            256,
            i,
            blocks,
            family,
        )
        out += head + bytes(476) + struct.pack("<I", rt.UF2_MAGIC_END)
    return out


class Rig:
    """A Pico on a laptop: its serial port, its boot drive under tmp/media/user/RPI-RP2, and a
    clock that only moves when the tool sleeps."""

    def __init__(self, tmp_path, version=(1, 28, 0, ""), micropython=True):
        self.board = FakeBoard(version=version, micropython=micropython)
        self.dio = FakeDeviceIO([self.board])
        self.media = tmp_path / "media"
        self.globs = (str(self.media / "*" / "RPI-RP2"),)
        self.drive = self.media / "user" / "RPI-RP2"
        self.now = 0.0
        self.copied: bytes | None = None
        self.board.on_bootloader = lambda b: self.show_drive()

    def show_drive(self):
        self.drive.mkdir(parents=True)
        (self.drive / "INFO_UF2.TXT").write_text(INFO)
        (self.drive / "INDEX.HTM").write_text("<html>")

    def sleep(self, s):
        self.now += s
        uf2s = list(self.drive.glob("*.uf2")) if self.drive.exists() else []
        if uf2s:  # the boot ROM took the image: the drive goes, MicroPython comes up
            self.copied = uf2s[0].read_bytes()
            for p in self.drive.iterdir():
                p.unlink()
            self.drive.rmdir()
            self.board.version = (1, 29, 0, "")
            self.board.micropython = True
            self.board.attached = True

    def install(self, image, **kw):
        return rt.install(
            self.dio,
            uf2=image,
            globs=self.globs,
            timeout=kw.pop("timeout", 10),
            sleep=self.sleep,
            clock=lambda: self.now,
            **kw,
        )


@pytest.fixture
def image(tmp_path):
    p = tmp_path / rt.UF2_NAME
    p.write_bytes(uf2_image())
    return p


def test_running_board_goes_to_its_bootloader_gets_the_uf2_and_comes_back(tmp_path, image):
    rig = Rig(tmp_path)
    said = []
    info = rig.install(image, say=said.append)
    assert "bootloader" in rig.board.events
    assert rig.board.events.index("interrupt") < rig.board.events.index("bootloader")
    assert rig.copied == image.read_bytes()
    assert info["version"] == (1, 29, 0) and info["port"] == "/dev/ttyACM0"
    assert any("1.28.0" in s for s in said)


def test_board_already_in_bootsel_mode(tmp_path, image):
    rig = Rig(tmp_path)
    rig.board.attached = False
    rig.show_drive()
    info = rig.install(image)
    assert "bootloader" not in rig.board.events
    assert info["version"] == (1, 29, 0)


def test_no_board_and_no_drive_says_to_hold_bootsel_and_times_out(tmp_path, image):
    rig = Rig(tmp_path)
    rig.board.attached = False
    said = []
    with pytest.raises(DeviceError) as ei:
        rig.install(image, timeout=3, say=said.append)
    assert ei.value.kind == "drive_not_found"
    assert "--drive" in ei.value.hint and "BOOTSEL" in ei.value.hint
    assert any("BOOTSEL" in s for s in said)
    assert rig.now >= 3


def test_drive_given_by_hand(tmp_path, image):
    rig = Rig(tmp_path)
    rig.globs = ()  # not where the scan looks
    rig.board.attached = False
    rig.show_drive()
    info = rig.install(image, drive=str(rig.drive))
    assert info["version"] == (1, 29, 0)


def test_board_that_does_not_come_back(tmp_path, image):
    rig = Rig(tmp_path)
    rig.board.on_bootloader = lambda b: rig.show_drive()
    real_sleep = rig.sleep

    def sleep_but_never_boot(s):
        real_sleep(s)
        rig.board.attached = False

    rig.sleep = sleep_but_never_boot
    with pytest.raises(DeviceError) as ei:
        rig.install(image, timeout=2)
    assert ei.value.kind == "board_not_back" and "stimctl devices" in ei.value.hint


def test_default_image_must_report_the_pinned_version(tmp_path, image):
    rig = Rig(tmp_path)
    orig = rig.sleep

    def sleep(s):
        orig(s)
        rig.board.version = (1, 27, 0, "")

    rig.sleep = sleep
    with pytest.raises(DeviceError) as ei:
        rig.install(None, fetch=lambda: image)
    assert ei.value.kind == "wrong_version" and "1.27.0" in str(ei.value)


def test_invalid_images_are_refused_before_touching_the_board(tmp_path):
    rig = Rig(tmp_path)
    bad = tmp_path / "firmware.bin"
    bad.write_bytes(b"\x7fELF" + bytes(1020))
    with pytest.raises(DeviceError) as ei:
        rig.install(bad)
    assert ei.value.kind == "uf2_invalid" and "micropython.org" in ei.value.hint
    other = tmp_path / "esp.uf2"
    other.write_bytes(uf2_image(family=0x1C5F21B0))
    with pytest.raises(DeviceError) as ei:
        rig.install(other)
    assert "another chip" in str(ei.value)
    with pytest.raises(DeviceError):
        rig.install(tmp_path / "missing.uf2")
    assert rig.board.events == []


class _Resp(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def test_fetch_downloads_once_and_checks_sha256(tmp_path):
    data = uf2_image()
    sha = hashlib.sha256(data).hexdigest()
    calls = []

    def opener(url, timeout):
        calls.append(url)
        return _Resp(data)

    p = rt.fetch_uf2(tmp_path, url="https://x/RPI_PICO-1.uf2", sha256=sha, opener=opener)
    assert p.read_bytes() == data and p.name == "RPI_PICO-1.uf2"
    assert rt.fetch_uf2(tmp_path, url="https://x/RPI_PICO-1.uf2", sha256=sha, opener=opener) == p
    assert len(calls) == 1  # the cached copy is used


def test_fetch_refuses_a_wrong_checksum_and_a_failed_download(tmp_path):
    def opener(url, timeout):
        return _Resp(b"tampered")

    with pytest.raises(DeviceError) as ei:
        rt.fetch_uf2(tmp_path, url="https://x/a.uf2", sha256="0" * 64, opener=opener)
    assert ei.value.kind == "uf2_checksum" and "--uf2" in ei.value.hint
    assert not list(tmp_path.iterdir())

    def offline(url, timeout):
        raise OSError("Name or service not known")

    with pytest.raises(DeviceError) as ei:
        rt.fetch_uf2(tmp_path, url="https://x/a.uf2", sha256="0" * 64, opener=offline)
    assert ei.value.kind == "download_failed" and rt.DOWNLOAD_PAGE in ei.value.hint


def test_pinned_release_names_match():
    assert rt.UF2_URL.endswith("/" + rt.UF2_NAME)
    assert "v%d.%d.%d" % rt.UF2_VERSION in rt.UF2_NAME
    assert len(rt.UF2_SHA256) == 64

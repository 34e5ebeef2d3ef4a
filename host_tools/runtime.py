"""`stimctl runtime`: install MicroPython on the board through the RP2040's USB bootloader.

    stimctl runtime [--port P] [--uf2 FILE] [--drive DIR] [--timeout S]

1. The .uf2: --uf2 FILE, or the pinned release (UF2_NAME) downloaded once into the cache
   (~/.cache/stimctl, or $XDG_CACHE_HOME/stimctl) and checked against UF2_SHA256.
2. The board is put into its bootloader: a board running MicroPython is interrupted (its
   firmware makes the outputs safe) and told `machine.bootloader()`, as `mpremote bootloader`
   does. A board without MicroPython must be started with BOOTSEL held while plugging it in.
3. The RPI-RP2 drive is found by scanning the usual mount points (DRIVE_GLOBS) or given by
   --drive; the .uf2 is copied onto it and the board restarts into MicroPython.
4. The tool waits for a MicroPython serial port (USB VID 0x2E8A) and checks the version the board
   reports (sys.implementation).
"""

from __future__ import annotations

import glob
import hashlib
import os
import struct
import time
import urllib.request
from pathlib import Path

from .device import (
    BOOTROM_PID,
    DeviceError,
    DeviceIO,
    close_quietly,
    fail,
    open_board,
    pick_port,
    version_str,
)

UF2_NAME = "RPI_PICO-20260824-v1.29.0.uf2"
UF2_URL = "https://micropython.org/resources/firmware/" + UF2_NAME
UF2_SHA256 = "e1160e602e277d85920adb5fe741435edccba9ba6ecadc85fdab75252eeff4e9"
UF2_VERSION = (1, 29, 0)
DOWNLOAD_PAGE = "https://micropython.org/download/RPI_PICO/"
DRIVE_LABEL = "RPI-RP2"
DRIVE_GLOBS = (
    "/media/*/RPI-RP2",
    "/run/media/*/RPI-RP2",
    "/media/RPI-RP2",
    "/mnt/RPI-RP2",
    "/Volumes/RPI-RP2",
)
UF2_MAGIC0, UF2_MAGIC1, UF2_MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
RP2040_FAMILY = 0xE48BFF56
POLL_S = 0.5


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stimctl"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            h.update(block)
    return h.hexdigest()


def check_uf2(path: Path) -> None:
    """A readable UF2 image for the RP2040: 512-byte blocks with the UF2 magic and family."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DeviceError(
            "uf2_invalid", "%s: cannot read: %s" % (path, e.strerror or e),
            "give the path of a MicroPython .uf2 file, or leave --uf2 out to download %s"
            % UF2_NAME,
        ) from None  # fmt: skip
    ok = len(data) >= 512 and len(data) % 512 == 0
    if ok:
        m0, m1, flags, _addr, _size, _n, _total, family = struct.unpack_from("<8I", data, 0)
        end = struct.unpack_from("<I", data, 508)[0]
        ok = (m0, m1, end) == (UF2_MAGIC0, UF2_MAGIC1, UF2_MAGIC_END)
        if ok and flags & 0x2000 and family != RP2040_FAMILY:
            raise DeviceError(
                "uf2_invalid",
                "%s is a UF2 image for another chip (family 0x%08x)" % (path, family),
                "use the Raspberry Pi Pico (RP2040) build from %s" % DOWNLOAD_PAGE,
            )  # fmt: skip
    if not ok:
        raise DeviceError(
            "uf2_invalid", "%s is not a UF2 image" % path,
            "download the .uf2 (not the .elf or .bin) from %s" % DOWNLOAD_PAGE,
        )  # fmt: skip


def fetch_uf2(
    cache: Path | None = None,
    url: str = UF2_URL,
    sha256: str = UF2_SHA256,
    opener=urllib.request.urlopen,
) -> Path:
    """The pinned MicroPython .uf2 from the cache, downloaded and checked if not there yet."""
    cache = Path(cache) if cache else cache_dir()
    dst = cache / url.rsplit("/", 1)[-1]
    if dst.is_file() and _sha256(dst) == sha256:
        return dst
    manual = "download %s by hand from %s and run `stimctl runtime --uf2 FILE`" % (
        dst.name,
        DOWNLOAD_PAGE,
    )
    cache.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".part")
    try:
        with opener(url, timeout=60) as r, open(tmp, "wb") as f:
            while block := r.read(65536):
                f.write(block)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DeviceError("download_failed", "cannot download %s: %s" % (url, e), manual) from None
    got = _sha256(tmp)
    if got != sha256:
        tmp.unlink(missing_ok=True)
        raise DeviceError(
            "uf2_checksum", "%s: sha256 %s, expected %s" % (url, got, sha256),
            "the download was corrupted or the file changed on the server: try again; " + manual,
        )  # fmt: skip
    tmp.replace(dst)
    return dst


def is_boot_drive(path: Path) -> bool:
    info = Path(path) / "INFO_UF2.TXT"
    try:
        return DRIVE_LABEL in info.read_text(errors="replace")
    except OSError:
        return False


def find_drives(globs=DRIVE_GLOBS) -> list[Path]:
    found = []
    for g in globs:
        found += [Path(p) for p in sorted(glob.glob(g)) if is_boot_drive(Path(p))]
    return found


class _Clock:
    def __init__(self, timeout: float, sleep, clock):
        self.sleep, self.clock = sleep, clock
        self.deadline = clock() + timeout

    def wait(self) -> bool:
        """Sleep one poll; False once the time is up."""
        if self.clock() >= self.deadline:
            return False
        self.sleep(POLL_S)
        return True


def install(
    dio: DeviceIO,
    uf2: str | Path | None = None,
    port: str | None = None,
    drive: str | Path | None = None,
    globs=DRIVE_GLOBS,
    timeout: float = 60.0,
    sleep=time.sleep,
    clock=time.monotonic,
    say=lambda msg: None,
    fetch=fetch_uf2,
) -> dict:
    """Install MicroPython; returns what the board reports afterwards (device_info)."""
    if uf2:
        image = Path(uf2)
    else:
        say("MicroPython %s: %s" % (version_str(UF2_VERSION), UF2_NAME))
        image = fetch()
    check_uf2(image)

    def drives():
        if drive:
            return [Path(drive)] if is_boot_drive(Path(drive)) else []
        return find_drives(globs)

    found = drives()
    before = {p.device for p in dio.ports() if p.is_rp2040}
    if not found:
        try:
            p = pick_port(dio, port)
        except DeviceError as e:
            if e.kind != "no_device":
                raise
            say(
                "no MicroPython board found: hold the board's BOOTSEL button while plugging it "
                "in, then release it; waiting for the %s drive" % DRIVE_LABEL
            )
        else:
            _to_bootloader(dio, p, say)
        t = _Clock(timeout, sleep, clock)
        while not (found := drives()):
            if not t.wait():
                raise DeviceError(
                    "drive_not_found",
                    "no %s drive appeared within %.0f s" % (DRIVE_LABEL, timeout),
                    "if the drive is not mounted automatically, mount it (e.g. `udisksctl mount "
                    "-b /dev/sdX1`) and give --drive DIR; or unplug the board, hold BOOTSEL, "
                    "plug it back in and run `stimctl runtime` again",
                )  # fmt: skip
    if len(found) > 1:
        raise DeviceError(
            "several_devices", "several %s drives: %s" % (DRIVE_LABEL, ", ".join(map(str, found))),
            "leave one board in its bootloader, or choose one with --drive DIR",
        )  # fmt: skip
    target = found[0] / image.name
    say("copying %s to %s" % (image.name, found[0]))
    _copy(image, target)
    say("waiting for the board to restart into MicroPython")
    t = _Clock(timeout, sleep, clock)
    while True:
        new = [
            p.device
            for p in dio.ports()
            if p.is_rp2040 and p.pid != BOOTROM_PID and (port is None or p.device == port)
        ]
        if new:
            try:
                # Prefer a port that was not there before (another board may be plugged in).
                p = sorted(new, key=lambda d: d in before)[0]
                p, tr, info = open_board(dio, p, soft_reset=False)
                close_quietly(tr)
                break
            except DeviceError as e:
                # udev may not have set the new port's permissions yet: keep trying a while.
                if e.kind not in ("permission", "busy", "no_device", "not_micropython"):
                    raise
                last = e
        else:
            last = None
        if not t.wait():
            raise DeviceError(
                "board_not_back", "the board did not come back as a MicroPython serial port "
                "within %.0f s%s" % (timeout, (" (%s)" % last.msg) if last else ""),
                "unplug it and plug it back in (without BOOTSEL), then check `stimctl devices`; "
                "if the copy was interrupted, run `stimctl runtime` again",
            )  # fmt: skip
    if uf2 is None and tuple(info["version"]) != UF2_VERSION:
        raise DeviceError(
            "wrong_version", "%s reports MicroPython %s after installing %s"
            % (p, version_str(info["version"]), UF2_NAME),
            "run `stimctl runtime` again; if it repeats, copy the .uf2 onto the drive by hand",
        )  # fmt: skip
    info["port"] = p
    return info


def _to_bootloader(dio: DeviceIO, port: str, say) -> None:
    from mpremote.transport import TransportError

    port, t, info = open_board(dio, port, soft_reset=False, say=say)
    say("%s: MicroPython %s; entering its bootloader" % (port, version_str(info["version"])))
    try:
        t.exec_raw_no_follow("import time, machine; time.sleep_ms(100); machine.bootloader()")
    except (TransportError, OSError):
        pass  # the board left for its bootloader as the command ended
    finally:
        close_quietly(t)


def _copy(image: Path, target: Path) -> None:
    data = image.read_bytes()
    written = False
    try:
        with open(target, "wb") as f:
            f.write(data)
            f.flush()
            written = True
            os.fsync(f.fileno())
    except OSError as e:
        # The boot ROM restarts the chip as soon as it has the last block; the drive can vanish
        # before the file is closed. That is success once every byte was handed over.
        if not written:
            raise DeviceError(
                "copy_failed", "cannot write %s: %s" % (target, e.strerror or e),
                "check that the drive is mounted writable for your user, or copy the .uf2 "
                "onto it by hand",
            ) from None  # fmt: skip


def main(args, dio: DeviceIO) -> int:
    try:
        info = install(
            dio,
            uf2=args.uf2,
            port=args.port,
            drive=args.drive,
            timeout=args.timeout,
            say=print,
        )
    except DeviceError as e:
        return fail(e, 2)
    print(
        "%s: MicroPython %s on %s; next: `stimctl flash`"
        % (info["port"], version_str(info["version"]), info["machine"])
    )
    return 0

"""`stimctl flash`: put firmware/ and a board file onto a board, so that a cut never bricks it.

    stimctl flash [--port P] [--board pico] [--mpy] [--force]

1. The board file is validated on the laptop by the firmware's own validator (host_tools/boards);
   an invalid one is refused before the board is touched, naming the bad key.
2. mpremote's transport interrupts the firmware (Ctrl-C: main.py makes the outputs safe in its
   `finally`), enters the raw REPL with a soft reset (boot.py runs again: outputs safe, and an
   earlier interrupted switch-over finished) and checks the board runs MicroPython on rp2, on
   the hardware the board file is for: its `hardware` must be what MicroPython reports there
   (sys.implementation._machine). Other hardware is refused, nothing written, and the board
   reset back into its firmware; `--force` flashes anyway, with a warning.
3. The board hashes its copy of every file (sha256 in chunks, on the device); files whose hash
   already matches are skipped.
4. Changed files are written under /.staging/ (a progress bar shows the bytes), each verified by
   hash on the device, then /.staging/MANIFEST is committed by a rename. The switch-over
   (firmware/stim/update.py) moves the staged files into place with atomic renames and removes
   files the new firmware no longer has. Every file is verified again in its final place.
5. The board is reset (machine.reset()) and starts the new firmware.

If the link drops before the manifest is committed, the board still has its old firmware,
untouched. If it drops after, boot.py finishes the switch-over at the next boot, before main.py
runs. Either way the unit boots one complete firmware, old or new.

With --mpy the package is taken precompiled from build/mpy (`make mpy`), boot.py and main.py as
source (MicroPython runs only those two from source at boot).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from . import boards
from .device import DeviceError, DeviceIO, close_quietly, link_lost, open_board
from .identity import VERSION_PATH, Identity, of_tree, parse_module

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE_DIR = ROOT / "firmware"
MPY_DIR = ROOT / "build" / "mpy"
UPDATE_SRC = FIRMWARE_DIR / "stim" / "update.py"
STAGING = "/.staging"
CHUNK = 256  # bytes per raw-REPL write, as `mpremote cp`

# Defined in the board's REPL once per flash: hash a file in chunks, list a directory tree.
DEVICE_HELPERS = """\
import os, hashlib, binascii
def _sha(p):
 try:
  f = open(p, 'rb')
 except OSError:
  return None
 h = hashlib.sha256()
 b = bytearray(512)
 m = memoryview(b)
 while True:
  n = f.readinto(b)
  if not n:
   break
  h.update(m[:n])
 f.close()
 return binascii.hexlify(h.digest()).decode()
def _walk(d, out):
 try:
  names = os.listdir(d)
 except OSError:
  return out
 for n in names:
  p = d + '/' + n
  if os.stat(p)[0] & 0x4000:
   _walk(p, out)
  else:
   out.append(p)
 return out
def _mkdirs(d):
 c = ''
 for part in d.split('/')[1:]:
  c += '/' + part
  try:
   os.mkdir(c)
  except OSError:
   pass
def _free():
 s = os.statvfs('/')
 return s[0] * s[3]
def _head(p):
 try:
  with open(p, 'rb') as f:
   return f.read(512)
 except OSError:
  return b''
"""


@dataclass(frozen=True)
class FwFile:
    path: str  # absolute path on the device, e.g. /stim/app.py
    data: bytes

    @property
    def sha(self) -> str:
        return sha256(self.data).hexdigest()


@dataclass
class FlashReport:
    port: str = ""
    info: dict = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    finished_earlier: bool = False  # an interrupted switch-over found on the board and finished
    bytes_written: int = 0
    before: Identity | None = None  # the firmware the board had (None: no identity written)
    after: Identity | None = None  # the firmware it has now


def board_file(board: str) -> FwFile:
    """The board file as /board.json, refused (DeviceError board_invalid) if invalid."""
    try:
        path = boards.board_path(board)
        boards.load_board(path)
    except boards.BoardError as e:
        raise DeviceError(
            "board_invalid", "board file %s is invalid: key %s: %s" % (board, e.key, e.msg),
            "fix that key (boards/README.md has the schema) and check it with "
            "`stimctl boards --check FILE`; nothing was written to the board",
        ) from None  # fmt: skip
    except OSError as e:
        raise DeviceError(
            "board_invalid", "board file %s cannot be read: %s" % (board, e),
            "give a board name (`stimctl boards` lists them) or a path to a .json file",
        ) from None  # fmt: skip
    return FwFile("/board.json", path.read_bytes())


def firmware_files(
    mpy: bool = False, firmware_dir=FIRMWARE_DIR, mpy_dir=MPY_DIR, ident: Identity | None = None
) -> list[FwFile]:
    """Everything that goes onto the board besides the board file, as device paths; `ident`:
    the build identity written as stim/version.py (identity.py)."""
    firmware_dir, mpy_dir = Path(firmware_dir), Path(mpy_dir)
    src = firmware_dir
    if mpy:
        if not (mpy_dir / "stim").is_dir():
            raise DeviceError(
                "mpy_missing", "no precompiled firmware in %s" % mpy_dir,
                "run `make mpy` first, or flash the source with `stimctl flash` (no --mpy)",
            )  # fmt: skip
        src = mpy_dir
    files = {}
    for p in sorted(src.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".mpy"):
            files["/" + p.relative_to(src).as_posix()] = p.read_bytes()
    for top in ("boot.py", "main.py"):  # always from source
        files.setdefault("/" + top, (firmware_dir / top).read_bytes())
    files.pop(VERSION_PATH, None)  # a stale one in the tree: the identity below is the truth
    files.pop(VERSION_PATH[:-3] + ".mpy", None)
    if ident is not None:
        if mpy:  # precompiled like the rest: a .py would be the package's only source file
            files[VERSION_PATH[:-3] + ".mpy"] = _compiled(ident.module(), "stim/version.py")
        else:
            files[VERSION_PATH] = ident.module()
    return [FwFile(k, v) for k, v in sorted(files.items())]


def _compiled(source: bytes, name: str) -> bytes:
    import tempfile

    from .dev import mpybuild

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "m.py", Path(tmp) / "m.mpy"
        src.write_bytes(source)
        mpybuild.compile_file(src, out, name)
        return out.read_bytes()


def identity_of(firmware_dir=FIRMWARE_DIR) -> Identity:
    """The build identity of a firmware tree: its checkout's, dirty when the firmware or the
    board files have uncommitted changes; "unknown" outside a git checkout."""
    return of_tree(Path(firmware_dir).resolve().parent, ("firmware", "boards"))


def _managed(path: str) -> bool:
    return path in ("/boot.py", "/main.py", "/board.json") or path.startswith("/stim/")


def _switch_order(path: str) -> tuple:
    # The update module and boot.py first: from the first rename on, a board with an older
    # firmware has the code that finishes the switch-over at its next boot.
    name = path.rsplit("/", 1)[-1]
    if path.startswith("/stim/") and name.split(".")[0] == "update":
        return (0, path)
    if path == "/boot.py":
        return (1, path)
    return (2, path)


def manifest(files: list[FwFile], remove: list[str]) -> str:
    dirs: set[str] = set()
    for f in files:
        parts = f.path.split("/")[1:-1]
        dirs.update("/" + "/".join(parts[: i + 1]) for i in range(len(parts)))
    lines = ["d " + d for d in sorted(dirs)]
    lines += ["p " + f.path for f in sorted(files, key=lambda f: _switch_order(f.path))]
    lines += ["r " + p for p in sorted(remove)]
    return "\n".join(lines) + "\n"


class _NoProgress:
    def __init__(self, total: int):
        pass

    def advance(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class RichProgress:
    def __init__(self, total: int, console=None):
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._p = Progress(
            TextColumn("[bold]writing"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = self._p.add_task("flash", total=total)
        self._p.start()

    def advance(self, n: int) -> None:
        self._p.advance(self._task, n)

    def close(self) -> None:
        self._p.stop()


def flash(
    dio: DeviceIO,
    port: str | None = None,
    board: str = "pico",
    mpy: bool = False,
    progress=_NoProgress,
    say=lambda msg: None,
    firmware_dir=FIRMWARE_DIR,
    mpy_dir=MPY_DIR,
    force: bool = False,
) -> FlashReport:
    """Flash a board; see the module docstring. Raises DeviceError with a hint on failure."""
    ident = identity_of(firmware_dir)
    files = firmware_files(mpy, firmware_dir, mpy_dir, ident) + [board_file(board)]
    hardware = boards.load_board(boards.board_path(board))["hardware"]
    port, t, info = open_board(dio, port, say=say)
    rep = FlashReport(port=port, info=info)
    say("%s: MicroPython %s on %s" % (port, ".".join(map(str, info["version"])), info["machine"]))
    if info["machine"] != hardware:
        msg = "%s reports %r, but board file %s is for %r" % (
            port, info["machine"], board, hardware)  # fmt: skip
        if not force:
            _reset_quietly(t)
            raise DeviceError(
                "wrong_hardware", msg + "; nothing was written, the board was reset",
                "choose the board file for this hardware (`stimctl boards` lists what each is "
                "for), or flash with --force if you are sure the pins and limits fit it",
            )  # fmt: skip
        say("warning: %s; flashing anyway (--force)" % msg)
    stage = "while reading the board's files"
    try:
        t.exec(DEVICE_HELPERS)
        t.exec(Path(firmware_dir, "stim", "update.py").read_text())
        # A switch-over cut short under a firmware whose boot.py does not finish it: do it now.
        rep.finished_earlier = bool(t.eval("apply()"))
        rep.before = _board_identity(t)
        say("firmware on the board: %s" % (rep.before.version if rep.before else "no version"))
        say(
            "flashing %s%s"
            % (ident.version, " (built from uncommitted changes)" if ident.dirty else "")
        )
        remote = dict(t.eval("[(p, _sha(p)) for p in %r]" % [f.path for f in files]))
        on_board = [p for p in t.eval("_walk('/stim', [])") if _managed(p)]
        wanted = {f.path for f in files}
        changed = [f for f in files if remote.get(f.path) != f.sha]
        rep.skipped = [f.path for f in files if f not in changed]
        rep.removed = sorted(p for p in on_board if p not in wanted)
        if changed or rep.removed:
            stage = "while writing the new files (the old firmware is untouched)"
            _stage(t, port, changed, progress, rep)
            stage = "while committing the update (the board finishes it when it next boots)"
            t.fs_writefile(STAGING + "/MANIFEST.tmp", manifest(changed, rep.removed).encode())
            t.exec("os.rename(%r, %r)" % (STAGING + "/MANIFEST.tmp", STAGING + "/MANIFEST"))
            stage = "while switching over (the board finishes it when it next boots)"
            t.eval("apply()")
        # Nothing may stay staged once the new firmware is in place (a cut flash of an
        # unchanged tree leaves no manifest, so apply() alone would keep it).
        t.exec("_clear(STAGING)")
        stage = "while verifying the installed files"
        final = dict(t.eval("[(p, _sha(p)) for p in %r]" % sorted(wanted)))
        bad = [f.path for f in files if final.get(f.path) != f.sha]
        if bad:
            raise DeviceError(
                "verify_failed", "%s: files differ from the laptop's after flashing: %s"
                % (port, ", ".join(bad)),
                "run `stimctl flash` again; if it repeats, try another cable or USB port",
            )  # fmt: skip
        rep.after = _board_identity(t)
        say("firmware on the board now: %s" % (rep.after.version if rep.after else "?"))
        stage = "while resetting the board"
        t.exec_raw_no_follow("import time, machine; time.sleep_ms(100); machine.reset()")
    except DeviceError:
        raise
    except OSError as e:
        if getattr(e, "errno", None) == errno.ENOSPC:
            raise _fs_full(port, "the board's filesystem filled up " + stage) from None
        raise link_lost(port, e, stage) from None
    except Exception as e:
        from mpremote.transport import TransportError, TransportExecError

        if isinstance(e, TransportExecError):  # the board ran the code and it failed
            last = (e.error_output.strip().splitlines() or ["?"])[-1]
            raise DeviceError(
                "device_error", "%s: the board reported %s %s" % (port, last, stage),
                "run `stimctl flash` again; if it repeats, report it with this message",
            ) from None  # fmt: skip
        if isinstance(e, TransportError):  # no answer, or garbled: the link is gone
            raise link_lost(port, e, stage) from None
        raise
    finally:
        close_quietly(t)
    rep.written = [f.path for f in changed]
    return rep


def _board_identity(t) -> Identity | None:
    """The identity of the firmware on the board, from stim/version.py or its .mpy (which
    stores the string as it is)."""
    for path in (VERSION_PATH, VERSION_PATH[:-3] + ".mpy"):
        got = parse_module(t.eval("_head(%r)" % path))
        if got is not None:
            return got
    return None


def _reset_quietly(t) -> None:
    """Back into the firmware the board had (it was interrupted to read its identity)."""
    try:
        t.exec_raw_no_follow("import machine; machine.reset()")
    except Exception:  # noqa: BLE001 - the refusal is what matters; the board can be replugged
        pass
    close_quietly(t)


def _fs_full(port: str, what: str) -> DeviceError:
    return DeviceError(
        "fs_full", "%s: %s" % (port, what),
        "free space on the board (`mpremote df`, `mpremote fs ls`, `mpremote fs rm FILE` for "
        "files that are not the firmware's), or flash the smaller precompiled build: "
        "`make mpy` then `stimctl flash --mpy`; the old firmware is still installed",
    )  # fmt: skip


def _stage(t, port: str, changed: list[FwFile], progress, rep: FlashReport) -> None:
    t.exec("import os\ntry:\n _clear(STAGING)\nexcept OSError:\n pass")
    need = sum(len(f.data) for f in changed)
    free = t.eval("_free()")
    if need > free:
        raise _fs_full(
            port,
            "not enough free space for the update: %d bytes needed, %d free" % (need, free),
        )
    bar = progress(need)
    try:
        for d in sorted({f.path.rsplit("/", 1)[0] for f in changed}):
            t.exec("_mkdirs(%r)" % (STAGING + d))
        for f in changed:
            done = [0]

            def cb(written, _size, done=done):
                bar.advance(written - done[0])
                done[0] = written

            try:
                t.fs_writefile(STAGING + f.path, f.data, chunk_size=CHUNK, progress_callback=cb)
            except OSError as e:
                if getattr(e, "errno", None) == errno.ENOSPC:
                    t.exec("_clear(STAGING)")  # give the space back; the old firmware stays
                    msg = "the board's filesystem filled up writing " + f.path
                    raise _fs_full(port, msg) from None
                raise
            rep.bytes_written += len(f.data)
    finally:
        bar.close()
    staged = dict(t.eval("[(p, _sha(STAGING + p)) for p in %r]" % [f.path for f in changed]))
    bad = [f.path for f in changed if staged.get(f.path) != f.sha]
    if bad:
        t.exec("_clear(STAGING)")
        raise DeviceError(
            "verify_failed", "%s: written files do not match (%s); the old firmware is untouched"
            % (port, ", ".join(bad)),
            "run `stimctl flash` again; if it repeats, try another cable or USB port",
        )  # fmt: skip

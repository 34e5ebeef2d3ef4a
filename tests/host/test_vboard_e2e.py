"""End to end on the virtual board (`stimctl vboard`: MicroPython's own VM behind a pseudo-
terminal): the real `mpremote` CLI and `stimctl` run as subprocesses against it, as a developer
runs them against a Pico.

The board's flash is a host file (host_tools/vboard), so the tests read what is on the board
independently of the tools under test, and can prepare a board that holds an older firmware.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from host_tools import mpvm
from host_tools.vboard import VBoard

pytestmark = pytest.mark.req("FR-25")

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"

try:
    mpvm.node()
except mpvm.VmError as e:  # CI has Node and runs `npm ci`; a laptop may not
    pytest.skip("virtual board needs Node and the MicroPython VM: %s" % e, allow_module_level=True)

MPREMOTE = [sys.executable, "-m", "mpremote"]
STIMCTL = [sys.executable, "-m", "host_tools"]


def run(cmd: list[str], timeout: float = 60, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def firmware_files() -> dict[str, bytes]:
    """What `stimctl flash` installs, as device path -> contents: the tree, the board file and
    the build identity (stim/version.py)."""
    from host_tools import flash

    out = {vm: Path(host).read_bytes() for vm, host in mpvm.firmware_files(FIRMWARE, "pico")}
    out["/stim/version.py"] = flash.identity_of(FIRMWARE).module()
    return out


@contextlib.contextmanager
def logs_running(port: str, save: Path):
    """`stimctl logs --json --save` on the board, connected; yields the lines it prints so far."""
    p = subprocess.Popen(
        STIMCTL + ["logs", "--port", port, "--json", "--save", str(save)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    lines: list[str] = []
    t = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while not save.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # connected (the log tool prints that on stderr)
        yield lines
    finally:
        p.terminate()
        p.wait(timeout=10)


def poke(port: str, *chunks: bytes, gap_s: float = 0.0) -> None:
    """Write to the board's terminal as a second writer (no reader), `gap_s` between chunks."""
    fd = os.open(port, os.O_WRONLY | os.O_NOCTTY)
    try:
        for i, data in enumerate(chunks):
            if i:
                time.sleep(gap_s)
            os.write(fd, data)
    finally:
        os.close(fd)


def flash_contents(path: Path) -> dict[str, bytes]:
    """The files on a virtual board's flash, read from its host file."""
    doc = json.loads(Path(path).read_text())
    return {p: base64.b64decode(b) for p, b in doc["files"].items()}


def write_flash(path: Path, files: dict[str, bytes]) -> None:
    """A board flash image holding `files` (as a completed flash leaves it)."""
    dirs = sorted({p.rsplit("/", 1)[0] for p in files if p.count("/") > 1})
    doc = {
        "format": "stimctl-vboard-flash-1",
        "dirs": dirs,
        "files": {p: base64.b64encode(b).decode() for p, b in sorted(files.items())},
    }
    Path(path).write_text(json.dumps(doc))


class Console:
    """The board's console, opened as a terminal program would (for Ctrl-C and its output)."""

    def __init__(self, path: str):
        import serial

        self.s = serial.Serial(path, 115200, timeout=0.1)
        self.seen = b""

    def read_until(self, marker: bytes, timeout: float = 10) -> bytes:
        end = time.monotonic() + timeout
        while marker not in self.seen and time.monotonic() < end:
            self.seen += self.s.read(4096)
        assert marker in self.seen, "no %r from the board; it sent:\n%s" % (
            marker, self.seen.decode(errors="replace")[-2000:])  # fmt: skip
        return self.seen

    def write(self, data: bytes) -> None:
        self.s.write(data)

    def close(self) -> None:
        self.s.close()


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """One virtual board for the module, with an empty flash (a Pico with only MicroPython)."""
    b = VBoard(tmp_path_factory.mktemp("vboard") / "flash.json").start()
    try:
        r = None
        for _ in range(50):  # Node loads the VM in well under a second
            r = run(MPREMOTE + ["connect", b.path, "exec", "print('up')"], timeout=20)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        assert r is not None and "up" in r.stdout, r and r.stderr
        yield b
    finally:
        b.close()


# ---- plain mpremote --------------------------------------------------------------------------
def test_raw_paste_mode_as_the_rp2_port_answers_it(board):
    """mpremote sends code in raw-paste mode when the board takes it (shared/runtime/pyexec.c:
    "R\x01", a 128-byte window, \x01 per window read): no fixed pause per 256 bytes."""
    from mpremote.transport_serial import SerialTransport

    t = SerialTransport(board.path, baudrate=115200)
    try:
        t.enter_raw_repl(soft_reset=False)
        code = "x = 0\n" + "x += 1\n" * 400 + "print(x)"  # 2.8 KB: many windows
        assert t.exec(code).strip() == b"400"
        assert t.use_raw_paste  # the board said yes: mpremote did not fall back
        assert t.read_until(1, b">", timeout=10).endswith(b">")  # the raw REPL's prompt
        t.serial.write(b"\x05A\x01")
        assert t.serial.read(2) == b"R\x01"
        assert t.serial.read(3) == b"\x80\x00\x01"  # window 128, and a second one free
        t.serial.write(b"print(6 * 7)\x04")
        out = t.read_until(1, b"\x04>", timeout=10)
        assert out == b"\x0442\r\n\x04\x04>", out  # acknowledged, then as the raw REPL
        t.exit_raw_repl()
    finally:
        t.close()


def test_mpremote_exec_ls_cp_sha256_rm(board, tmp_path):
    r = run(MPREMOTE + ["connect", board.path, "exec", "import sys; print(sys.platform, 6 * 7)"])
    assert r.returncode == 0, r.stderr
    assert "rp2 42" in r.stdout
    data = bytes(range(256)) * 9 + b"tail"
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    r = run(
        MPREMOTE + ["connect", board.path, "cp", str(src), ":blob.bin", "+", "ls", ":", "+",
                    "fs", "sha256sum", ":blob.bin"]
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "%d blob.bin" % len(data) in " ".join(r.stdout.split())
    assert hashlib.sha256(data).hexdigest() in r.stdout
    assert flash_contents(board.flash)["/blob.bin"] == data  # on the flash, byte for byte
    back = tmp_path / "back.bin"
    cmd = ["connect", board.path, "cp", ":blob.bin", str(back), "+", "rm", ":blob.bin"]
    r = run(MPREMOTE + cmd)
    assert r.returncode == 0, r.stderr
    assert back.read_bytes() == data
    assert "/blob.bin" not in flash_contents(board.flash)


def test_mpremote_reports_missing_file_as_such(board):
    """The board's filesystem raises MicroPython's errno values, so mpremote names the error."""
    r = run(MPREMOTE + ["connect", board.path, "cat", ":no_such_file.txt"])
    assert r.returncode != 0
    assert "No such file" in r.stderr + r.stdout


def test_mpremote_soft_reset_clears_the_heap(board):
    r = run(
        MPREMOTE + ["connect", board.path, "exec", "marker = 1", "+", "soft-reset", "+", "exec",
                    "print('marker' in globals())"]
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("False")


# ---- stimctl flash, logs -----------------------------------------------------------------------
def test_flash_then_verify_by_hash(board):
    r = run(STIMCTL + ["flash", "--port", board.path, "--board", "pico"], timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    want = firmware_files()
    assert "%d file(s) written" % len(want) in r.stdout
    on_board = flash_contents(board.flash)
    for p, data in want.items():
        sha = hashlib.sha256(on_board.get(p, b"")).hexdigest()
        assert sha == hashlib.sha256(data).hexdigest(), p
    assert not any(p.startswith("/.staging") for p in on_board)
    # and the board itself agrees (mpremote hashes on the device)
    r = run(MPREMOTE + ["connect", board.path, "fs", "sha256sum", ":/stim/app.py", ":/main.py"])
    assert r.returncode == 0, r.stderr
    for p in ("/stim/app.py", "/main.py"):
        assert hashlib.sha256(want[p]).hexdigest() in r.stdout


def test_reflash_unchanged_copies_nothing(board):
    # flashed once here too: pytest-xdist may run this test on a board of its own
    r = run(STIMCTL + ["flash", "--port", board.path, "--board", "pico"], timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    before = board.flash.stat().st_mtime_ns
    r = run(STIMCTL + ["flash", "--port", board.path, "--board", "pico"], timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "0 file(s) written (0 bytes), %d unchanged" % len(firmware_files()) in r.stdout
    assert flash_contents(board.flash) == {**flash_contents(board.flash), **firmware_files()}
    assert board.flash.stat().st_mtime_ns >= before


@pytest.mark.req("SR-8")
def test_logs_stream_and_ctrl_c_makes_outputs_safe(board, tmp_path):
    """The flashed firmware runs; `stimctl logs` shows its records live; a Ctrl-C from the host
    stops it with the outputs off first; a soft reset starts it again."""
    # The firmware on the board whatever ran before here (pytest-xdist may give this test a
    # worker, and so a board, of its own): copying an unchanged tree writes nothing.
    r = run(STIMCTL + ["flash", "--port", board.path, "--board", "pico"], timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    save = tmp_path / "log.jsonl"
    with logs_running(board.path, save) as lines:
        # Ctrl-C: main.py's handler turns the outputs off; then a soft reset in the friendly
        # REPL: boot.py, main.py again
        poke(board.path, b"\x03", b"\x04", gap_s=1.0)
        deadline = time.monotonic() + 15

        def restarted():
            text = "".join(lines)
            return '"app_start"' in text[text.find('"outputs_off"') :]

        while time.monotonic() < deadline and not restarted():
            time.sleep(0.1)
    evs = [json.loads(x)["ev"] for x in lines if x.startswith("{")]
    assert "interrupted" in evs and "outputs_off" in evs, lines
    assert evs.index("outputs_off") > evs.index("interrupted")
    after = evs[evs.index("outputs_off") :]
    assert "boot" in after and "app_start" in after, evs
    saved = [json.loads(x) for x in save.read_text().splitlines()]
    assert [r["ev"] for r in saved] == evs and all("host_t" in r for r in saved)


# ---- a flash cut short -------------------------------------------------------------------------
OLD_MARK = b"\n# old firmware, for the cut-flash test\n"
CHANGED = ("/main.py", "/stim/log.py", "/stim/leds.py", "/stim/update.py")


@pytest.fixture(scope="module")
def cut_setup(tmp_path_factory):
    """A board image holding an older firmware (4 files differ), and the number of bytes the
    host sends to flash the current one over it."""
    d = tmp_path_factory.mktemp("cut")
    new = firmware_files()
    old = dict(new)
    for p in CHANGED:
        old[p] = new[p] + OLD_MARK
    image = d / "old.json"
    write_flash(image, old)
    flash = d / "full.json"
    shutil.copy(image, flash)
    with VBoard(flash, record=True) as b:
        time.sleep(0.3)
        r = run(STIMCTL + ["flash", "--port", b.path, "--board", "pico"], timeout=60)
        assert r.returncode == 0, r.stderr + r.stdout
        assert "%d file(s) written" % len(CHANGED) in r.stdout
        total = b.rx_bytes
        log = bytes(b.rx_log or b"")
    assert {p: flash_contents(flash)[p] for p in new} == new
    # The commit: the raw-REPL command renaming the manifest into place, ended by Ctrl-D.
    commit = log.index(b"\x04", log.index(b"os.rename('/.staging/MANIFEST.tmp'")) + 1
    return image, old, new, total, commit


def boots_whole_firmware(flash: Path, old: dict, new: dict) -> str:
    """Power the board on again: it must run one complete firmware. Returns "old" or "new"."""
    with VBoard(flash) as b:
        con = Console(b.path)  # opened at once: the boot log is not missed
        try:
            con.read_until(b'"ev":"app_start"', timeout=15)
            con.write(b"\x03")
            con.read_until(b'"ev":"outputs_off"', timeout=10)
        finally:
            con.close()
    files = flash_contents(flash)
    if all(files.get(p) == new[p] for p in new):
        which = "new"
    elif all(files.get(p) == old[p] for p in old):
        which = "old"
    else:
        state = {p: "old" if files.get(p) == old[p] else "new" if files.get(p) == new[p] else "?"
                 for p in CHANGED}  # fmt: skip
        pytest.fail("a mix of firmwares on the board: %s" % state)
    # A committed switch-over was finished by boot.py (an uncommitted one is left for the next
    # flash to clear).
    assert "/.staging/MANIFEST" not in files
    return which


def test_flash_cut_midway_leaves_a_bootable_unit(cut_setup, tmp_path):
    """The power goes (the board is unplugged) at points all through a flash; each time the
    unit then boots the old firmware or the new one, whole. Cuts late in the flash fall after
    the commit, so both outcomes must be seen (else the cut points miss the switch-over)."""
    image, old, new, total, commit = cut_setup
    outcomes = {}
    # Staging, just before the commit, just after it (the switch-over not yet done: boot.py
    # finishes it), and late (verifying, resetting).
    for cut in (total // 3, (total * 2) // 3, commit - 1, commit, total - 150):
        flash = tmp_path / ("cut-%d.json" % cut)
        shutil.copy(image, flash)
        b = VBoard(flash, cut_after=cut).start()
        try:
            r = run(STIMCTL + ["flash", "--port", b.path, "--board", "pico"], timeout=60)
        finally:
            b.close()
        assert b.rx_bytes == cut
        if r.returncode == 0:
            outcomes[cut] = "completed: " + boots_whole_firmware(flash, old, new)
            continue
        assert "what to do" in r.stderr, r.stderr  # a clear error for the user
        outcomes[cut] = boots_whole_firmware(flash, old, new)
    assert outcomes[commit - 1] == "old" and outcomes[commit] == "new", outcomes


# ---- the host command protocol (docs/protocol.md) on the console ------------------------------
# The running firmware reads the host's command lines from sys.stdin.buffer (stim/host.py); on
# the virtual board those bytes come through the pseudo-terminal as on a Pico's USB serial. The
# board's unit stays switched off (nobody can hold its POWER button), so the commands that need
# a session (`start`, `intensity`) are refused with `state`: the tests check that honestly, and
# everything that works with the unit off (status, ping, stop, settings, set, history).


def firmware_answers(board, timeout: float = 15) -> bool:
    """True once the firmware on the board answers `ping` (it runs, reading the console)."""
    from host_tools.link import UnitLink

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            import serial

            link = UnitLink(serial.Serial(board.path, 115200, timeout=0.2), board.path)
        except OSError:
            time.sleep(0.2)
            continue
        try:
            link.command("ping")
            return True
        except Exception:  # noqa: BLE001 - not running yet: no reply
            time.sleep(0.2)
        finally:
            link.close()
    return False


@pytest.fixture
def running(board):
    """The module's board with the firmware flashed and running (so each test also runs alone)."""
    if not board.flash.exists() or "/main.py" not in flash_contents(board.flash):
        r = run(STIMCTL + ["flash", "--port", board.path, "--board", "pico"], timeout=120)
        assert r.returncode == 0, r.stderr + r.stdout
    if not firmware_answers(board, timeout=5):
        r = run(MPREMOTE + ["connect", board.path, "reset"])  # left at the REPL: start it
        assert r.returncode == 0, r.stderr
        assert firmware_answers(board), "the firmware does not answer after a reset"
    return board


class Link:
    """The console opened by the test: UnitLink requests, and raw lines with their reply."""

    def __init__(self, path: str):
        import serial

        from host_tools.link import UnitLink

        self.s = serial.Serial(path, 115200, timeout=0.2)
        self.host = UnitLink(self.s, path)

    def raw(self, data: bytes, timeout: float = 5) -> dict:
        """Send bytes as they are; the next reply line (`{"r":...`), skipping log lines."""
        self.s.write(data)
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            buf += self.s.readline()
            if buf.endswith(b"\n"):
                if buf.startswith(b'{"r":'):
                    return json.loads(buf)
                buf = b""
        pytest.fail("no reply to %r within %g s" % (data[:40], timeout))

    def status(self) -> dict:
        rep = dict(self.host.command("status"))
        rep.pop("id")
        return rep

    def close(self) -> None:
        self.s.close()


def test_send_status_and_ping_get_replies(running):
    r = run(STIMCTL + ["send", "--port", running.path, "status"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok status") and "state=off" in r.stdout, r.stdout
    assert "program=tens_conventional" in r.stdout and "keepalive_ms=3000" in r.stdout
    r = run(STIMCTL + ["send", "--port", running.path, "--json", "ping"])
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["r"] == "ok" and rep["cmd"] == "ping" and rep["id"]


def test_bad_commands_get_an_error_and_change_nothing(running):
    """Garbage bytes, unknown commands, values out of range, over-long lines: each gets an error
    reply; the unit's status and everything on its flash (the settings file included) stay as
    they were; the link still works after each."""
    r = run(STIMCTL + ["send", "--port", running.path, "set", "session_min=25"])
    assert r.returncode == 0, r.stderr  # a valid `set` does change the settings file
    saved = json.loads(flash_contents(running.flash)["/settings.json"])
    assert saved["session_min"] == 25
    flash_before = flash_contents(running.flash)
    link = Link(running.path)
    try:
        before = link.status()
        assert before["state"] == "off" and before["steps"] == [0, 0]
        bad = [
            # raw bytes: everything but Ctrl-C reaches the firmware, which refuses the line
            (bytes(b for b in range(256) if b not in (3, 10, 13)) + b"\n", "bad_bytes"),
            (b"\x00\x01\x02\x04\x05\x1b[A status\r\n", "bad_bytes"),
            (b"status" + b"Z" * 300 + b"\n", "too_long"),
            (b"@x1 STATUS\n", "unknown"),
            (b"@x2 reboot now\n", "unknown"),
            (b"@x3 status please\n", "bad_args"),
            (b"@x4 intensity 1 99\n", "limit"),
            (b"@x5 intensity 3 1\n", "range"),
            (b"@x6 intensity 1 -1\n", "bad_args"),
            (b"@x7 intensity 1 5\n", "state"),  # no session: the unit is off
            (b"@x8 start\n", "state"),
            (b"@x9 start no_such_program\n", "range"),
            (b"@xa set session_min=9999\n", "range"),
            (b"@xb set channels=3\n", "range"),
            (b"@xc set colour=red\n", "bad_args"),
            (b"@xd set session_min=20 session_min=30\n", "bad_args"),
            (b"@toolongid99 ping\n", "bad_args"),
        ]
        for data, code in bad:
            rep = link.raw(data)
            assert rep["r"] == "err" and rep["code"] == code, (data, rep)
            assert link.status() == before, data
        # The host tools refuse such lines themselves; stimctl reports the unit's refusals.
        r = run(STIMCTL + ["send", "--port", running.path, "intensity", "2", "41"])
        assert r.returncode == 1 and "(limit)" in r.stderr, r.stderr
        r = run(STIMCTL + ["send", "--port", running.path, "frobnicate"])
        assert r.returncode == 1 and "unknown command" in r.stderr, r.stderr
        assert link.status() == before
    finally:
        link.close()
    assert flash_contents(running.flash) == flash_before  # nothing written: settings the same
    digest = hashlib.sha256(flash_before["/settings.json"]).hexdigest()
    assert hashlib.sha256(flash_contents(running.flash)["/settings.json"]).hexdigest() == digest


def test_logs_shows_host_events(running, tmp_path):
    """`stimctl logs` (the one program reading the console) shows the firmware's `host` log
    events for commands another writer sends, and leaves their reply lines out."""
    save = tmp_path / "log.jsonl"
    with logs_running(running.path, save) as lines:
        poke(running.path, b"@lg1 bogus\n@lg2 stop\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and '"host"' not in "".join(lines):
            time.sleep(0.1)
    recs = [json.loads(x) for x in lines if x.startswith("{")]
    host = [r for r in recs if r["ev"] == "host"]
    assert host and host[0]["cmd"] == "stop" and host[0]["lvl"] == "info", lines
    assert len(host) == 1  # the refused line is answered, not logged
    assert not any(x.startswith('{"r":') for x in lines)


def test_history_table_and_adherence_plot(running, tmp_path):
    """A history on the board's flash (put there with mpremote, as sessions would leave it):
    `stimctl history` downloads it through the firmware (setting the board's clock first),
    dates each session made on a set clock, prints the table, and `--plot` draws adherence."""
    from datetime import datetime, timedelta

    now = int(time.time())
    day = 86400
    recs = [
        {"start": now - 3 * day - 600, "clock": True, "program": "tens_burst",
         "max_step": [7, 5], "faults": [], "min": 30.0, "end": "timer"},
        {"start": now - day - 1200, "clock": True, "program": "ems_relax", "max_step": [12, 0],
         "faults": ["2:open"], "min": 12.5, "end": "stopped"},
        {"start": 1_609_459_200 + 500, "clock": False, "program": "tens_burst",
         "max_step": [3, 3], "faults": [], "min": 5.0, "end": "timer"},  # after a power cycle
        {"start": now - 900, "clock": True, "program": "tens_conventional", "max_step": [4, 4],
         "faults": [], "min": 10.0, "end": "host"},
    ]  # fmt: skip
    src = tmp_path / "history.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in recs))
    r = run(MPREMOTE + ["connect", running.path, "cp", str(src), ":/history.jsonl", "+", "reset"])
    assert r.returncode == 0, r.stderr
    assert flash_contents(running.flash)["/history.jsonl"] == src.read_bytes()
    assert firmware_answers(running), "the firmware does not answer after the reset"
    png = tmp_path / "adherence.png"
    wide = {**os.environ, "COLUMNS": "160"}  # the whole table, as on a wide terminal
    r = run(STIMCTL + ["history", "--port", running.path, "--plot", str(png)], env=wide)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "session history (4)" in out, out
    for name in ("tens_burst", "ems_relax", "tens_conventional", "2:open", "stopped", "host"):
        assert name in out, (name, out)
    for back in (3 * day + 600, day + 1200, 900):
        when = datetime.now() - timedelta(seconds=back)
        assert when.strftime("%Y-%m-%d") in out, (when, out)
    assert (
        "unknown date (before %s" % (datetime.now() - timedelta(seconds=900)).strftime("%Y-%m-%d")
        in out
    ), out
    assert "1 session(s) without a date" in " ".join(out.split())
    assert "wrote %s" % png in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.mark.req("FR-23")
def test_send_right_after_flash_and_after_logs_gets_its_reply(running, tmp_path):
    """Issue 21: the first command after `stimctl flash` reached a firmware still booting and
    was lost ("no reply within 2 s", every time on this board); the link now waits until the
    unit answers. Then a logs session, and commands again, three times over."""
    for _ in range(3):
        r = run(STIMCTL + ["flash", "--port", running.path, "--board", "pico"], timeout=120)
        assert r.returncode == 0, r.stderr
        r = run(STIMCTL + ["send", "--port", running.path, "status"])
        assert r.returncode == 0 and r.stdout.startswith("ok status"), r.stderr
        with logs_running(running.path, tmp_path / "log.jsonl"):
            pass
        r = run(STIMCTL + ["history", "--port", running.path])
        assert r.returncode == 0, r.stderr


@pytest.mark.req("FR-23")
def test_send_reports_who_refused_a_line(running):
    r = run(STIMCTL + ["send", "--port", running.path, "stat\x01us"])
    assert r.returncode == 1
    assert "unit refused `stat\x01us`" in r.stderr and "(bad_bytes)" in r.stderr, r.stderr
    r = run(STIMCTL + ["send", "--port", running.path, "x" * 130])
    assert r.returncode == 1 and "refused by stimctl, not by the unit" in r.stderr, r.stderr
    assert "unit refused" not in r.stderr


@pytest.mark.req("FR-23")
def test_console_streams_the_log_and_takes_commands_on_one_connection(running):
    """`stimctl console`: a command typed at its prompt, the log event it causes and its reply
    come out together, in the order the unit sent them, on the port the console alone holds."""
    p = subprocess.Popen(
        STIMCTL + ["console", "--port", running.path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines: list[str] = []
    t = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
    t.start()

    def wait_for(text: str, timeout: float = 20) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for i, x in enumerate(list(lines)):
                if text in x:
                    return i
            time.sleep(0.05)
        raise AssertionError("no %r; the console printed:\n%s" % (text, "".join(lines)))

    try:
        wait_for("type a command")
        assert p.stdin is not None
        p.stdin.write("set session_min=20\n")
        p.stdin.flush()
        i_ok = wait_for("< ok set")
        i_cmd = wait_for("> set session_min=20")
        i_ev = wait_for("set by host")  # the `settings` log event the command caused
        assert i_cmd < i_ev < i_ok, lines
        assert "session_min=20" in lines[i_ok]
        p.stdin.write("stat\x01us\nquit\n")
        p.stdin.flush()
        p.wait(timeout=20)
        assert p.returncode == 0
        assert "(bad_bytes)" in lines[wait_for("< unit refused `stat\\x01us`")]
    finally:
        if p.poll() is None:
            p.kill()
    r = run(STIMCTL + ["send", "--port", running.path, "set", "session_min=25"])
    assert r.returncode == 0, r.stderr


# ---- a locked console on the real VM (SR-16, SR-15) --------------------------------------------
@pytest.mark.req("SR-16", "SR-15")
def test_a_locked_unit_on_micropython_ignores_ctrl_c_and_is_not_flashed_without_maintenance(
    tmp_path,
):
    """The wearable's board file (console locked) flashed onto a virtual board reporting the
    wearable's hardware: the firmware runs on MicroPython's VM with micropython.kbd_intr(-1),
    so Ctrl-C and the raw-REPL bytes are data for its host link; the unit asks its wearer when a
    host asks while it is off; `stimctl flash` asks for maintenance, says what to do on the
    unit, and writes nothing without it."""
    from host_tools.boards import load_board

    hardware = load_board("wearable_v1")["hardware"]
    b = VBoard(tmp_path / "flash.json", machine=hardware).start()
    try:
        r = None
        for _ in range(50):
            r = run(MPREMOTE + ["connect", b.path, "exec", "print('up')"], timeout=20)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        assert r is not None and r.returncode == 0, r and r.stderr
        r = run(STIMCTL + ["flash", "--port", b.path, "--board", "wearable_v1"], timeout=120)
        assert r.returncode == 0, r.stderr + r.stdout
        assert firmware_answers(b), "the flashed firmware does not answer"
        link = Link(b.path)
        try:
            # Ctrl-C, raw REPL, raw paste, soft reset: one unreadable line for the host link.
            rep = link.raw(b"\x03\x03\x01\x05A\x01\x04\x02status\n")
            assert rep["r"] == "err" and rep["code"] == "bad_bytes", rep
            assert link.status()["state"] == "off"  # the firmware runs on
            assert link.raw(b"pair\n")["code"] == "state"  # off: PLUS could not answer
            assert link.raw(b"start\n")["code"] == "state"
        finally:
            link.close()
        before = flash_contents(b.flash)
        r = run(STIMCTL + ["flash", "--port", b.path, "--board", "wearable_v1"], timeout=120)
        # Switched off (this board has no buttons to press): the unit refuses to ask, and the
        # tool says what to do on the unit.
        out = r.stdout + r.stderr
        assert r.returncode != 0
        assert "console is locked" in out and "hold POWER" in out and "MODE held" in out, out
        assert flash_contents(b.flash) == before  # nothing written
        assert firmware_answers(b)  # and the firmware still runs
    finally:
        b.close()

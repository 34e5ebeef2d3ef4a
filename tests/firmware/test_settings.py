"""Settings and session history on flash (firmware/stim/settings.py): SR-13 and SR-1.

settings.py runs in the simulated MicroPython runtime with `os` and `open()` bound to a
simulated littlefs (host_tools/rp2sim/vfs.py FlashFs), as on the unit: MicroPython errno values,
atomic rename, a capacity. A power cut is simulated by an exception that stops the firmware
code at the chosen point (the flash keeps what was written so far), then a fresh runtime on the
same flash plays the next boot.

- SR-13: a missing, corrupt, truncated, wrongly typed or out-of-range file gives the defaults
  for the bad keys, names each bad key, and never raises; a save is atomic (temp file, then
  rename), so a power cut at any point leaves the old or the new settings, never neither.
- SR-1: the intensity is never part of the settings: not in the defaults, not taken from a file.
- History: at most 100 records, the oldest dropped; a damaged line is skipped; records
  round-trip.
"""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_tools.boards import load_board
from host_tools.rp2sim.chip import Chip
from host_tools.rp2sim.fakes import build_modules
from host_tools.rp2sim.mploader import MPLIB_DIR, MpRuntime
from host_tools.rp2sim.vfs import ENOSPC, FlashFs
from host_tools.sim.unit import FIRMWARE_DIR

pytestmark = pytest.mark.req("FR-8")

BOARD = load_board("pico")
PATH = "/settings.json"
TMP = PATH + ".tmp"
HPATH = "/history.jsonl"


class PowerCut(BaseException):
    """Stops the firmware code where the power went (not an Exception: nothing catches it)."""


def boot(fs: FlashFs):
    """A fresh firmware runtime on `fs`; returns its stim.settings module."""
    chip = Chip(BOARD["sysclk_hz"])
    mods = build_modules(chip, fs, io.StringIO())
    rt = MpRuntime([FIRMWARE_DIR, MPLIB_DIR], mods, builtins_overrides={"open": fs.open})
    return rt.import_module("stim.settings")


@pytest.fixture
def fs():
    return FlashFs()


@pytest.fixture
def S(fs):
    return boot(fs)


def programs_ids(S):
    return [p["id"] for p in S.programs.PROGRAMS]


GOOD = {"program": "tens_burst", "session_min": 45, "channels": "1", "feedback": "haptic",
        "auto_off_min": 20}  # fmt: skip
KEYS = {"program", "session_min", "channels", "feedback", "auto_off_min"}
# Keys added after the first settings files: a file without them is not a bad file.
LATER_KEYS = {"feedback", "auto_off_min"}


def valid(S, cfg):
    """Every value within its bounds, and nothing else in it."""
    assert set(cfg) == KEYS
    assert cfg["program"] in programs_ids(S)
    m = cfg["session_min"]
    assert type(m) is int and 1 <= m <= BOARD["limits"]["max_session_min"]
    assert cfg["channels"] in S.SELECTIONS
    assert cfg["feedback"] in S.FEEDBACK
    assert S.AUTO_OFF_MIN[0] <= cfg["auto_off_min"] <= S.AUTO_OFF_MIN[1]
    return True


# ---- defaults -------------------------------------------------------------------------------
@pytest.mark.req("SR-13", "SR-1")
def test_defaults_are_valid_and_hold_no_intensity(S):
    d = S.defaults(BOARD)
    assert valid(S, d)
    assert not any("intens" in k or "step" in k or "level" in k for k in d)
    assert d["program"] == programs_ids(S)[0]


def test_defaults_take_the_boards_session_length(S):
    # limits.default_session_min, which the board validator keeps within max_session_min
    b = json.loads(json.dumps(BOARD))
    b["limits"]["default_session_min"] = 20
    assert S.defaults(b)["session_min"] == 20
    assert S.defaults(BOARD)["session_min"] == BOARD["limits"]["default_session_min"]


@pytest.mark.req("SR-13")
def test_missing_file_gives_defaults(fs, S):
    assert S.load(BOARD) == (S.defaults(BOARD), ["missing"])
    assert fs.files == {}  # loading never writes


@pytest.mark.req("SR-13")
def test_good_file_round_trips(fs, S):
    S.save(dict(GOOD))
    assert S.load(BOARD) == (GOOD, [])
    assert boot(fs).load(BOARD) == (GOOD, [])  # and after a reboot
    assert set(fs.files) == {PATH}  # no temp file left


@pytest.mark.req("FR-28", "SR-13")
@pytest.mark.parametrize("minutes,ok", [(0, False), (1, True), (60, True), (61, False)])
def test_auto_off_takes_1_to_60_minutes_exactly(S, minutes, ok):
    """FR-28 and docs/protocol.md: auto_off_min is 1..60 minutes, both ends included; one
    past either end is a bad value (the default kept, the key named)."""
    cfg, problems = S.check(BOARD, dict(GOOD, auto_off_min=minutes))
    if ok:
        assert (cfg["auto_off_min"], problems) == (minutes, [])
    else:
        assert cfg["auto_off_min"] == S.defaults(BOARD)["auto_off_min"]
        assert problems == ["auto_off_min"]


@pytest.mark.req("SR-14")
def test_while_output_can_run_every_flash_write_is_refused_and_the_flash_is_untouched(fs, S):
    """The write path's own guard (stim.unit installs it with the stimulator's
    output_possible): while output can run, saving the settings and adding a history record
    raise OutputOn (EBUSY) before the flash is erased or programmed; once it cannot, they
    write as usual."""
    S.save(dict(GOOD))
    S.append_history({"program": "tens_burst", "min": 30})
    files, flash_ops = dict(fs.files), []  # (erases, page programs, path) of each operation
    fs.busy = lambda _cpu_us, erases, pages, path: flash_ops.append((erases, pages, path))
    output_on = [True]
    S.guard(lambda: output_on[0])
    with pytest.raises(S.OutputOn) as refused:
        S.save(dict(GOOD, channels="2"))
    assert refused.value.args[0] == 16  # MicroPython's errno.EBUSY (py/mperrno.h MP_EBUSY)
    with pytest.raises(S.OutputOn):
        S.append_history({"program": "ems_relax", "min": 20})
    assert fs.files == files and flash_ops == []  # nothing erased or programmed
    output_on[0] = False
    S.save(dict(GOOD, channels="2"))
    assert S.load(BOARD) == (dict(GOOD, channels="2"), [])
    assert any(pages for _e, pages, _p in flash_ops)


# ---- bad files ------------------------------------------------------------------------------
CORRUPT = [
    b"",
    b"{",
    b"}",
    b"not json",
    b"\x00" * 64,  # erased/zeroed block
    b"\xff" * 64,  # erased flash
    b"\xc3\x28 invalid utf-8",
    b'{"program": "tens_burst", "session_min": 45,',
    b'{"program": "tens_burst"}}',
    b"[1, 2",
    b"NaN",
]


@pytest.mark.req("SR-13")
@pytest.mark.parametrize("data", CORRUPT, ids=range(len(CORRUPT)))
def test_corrupt_file_gives_defaults(fs, S, data):
    fs.write(PATH, data)
    assert S.load(BOARD) == (S.defaults(BOARD), ["file"])


@pytest.mark.req("SR-13")
def test_every_truncation_of_a_good_file_gives_defaults(fs, S):
    text = json.dumps(GOOD).encode()
    for n in range(len(text)):
        fs.write(PATH, text[:n])
        cfg, problems = S.load(BOARD)
        assert cfg == S.defaults(BOARD) and problems == ["file"], text[:n]


@pytest.mark.req("SR-13")
@pytest.mark.parametrize("data", ["[]", "[1, 2]", "5", '"x"', "null", "true", "3.5"])
def test_json_that_is_not_an_object_gives_defaults(fs, S, data):
    fs.write(PATH, data)
    assert S.load(BOARD) == (S.defaults(BOARD), ["file"])


@pytest.mark.req("SR-13")
def test_settings_path_is_a_directory(fs, S):
    fs.dirs.add(PATH)
    assert S.load(BOARD) == (S.defaults(BOARD), ["file"])


MAXM = BOARD["limits"]["max_session_min"]
BAD_VALUES = [
    ("program", "no_such_program"),
    ("program", ""),
    ("program", 5),
    ("program", None),
    ("program", ["tens_burst"]),
    ("program", {"id": "tens_burst"}),
    ("program", "TENS_BURST"),
    ("session_min", 0),
    ("session_min", -5),
    ("session_min", MAXM + 1),
    ("session_min", 10**12),
    ("session_min", 30.0),
    ("session_min", 30.5),
    ("session_min", "30"),
    ("session_min", True),
    ("session_min", None),
    ("session_min", [30]),
    ("channels", "3"),
    ("channels", 1),
    ("channels", None),
    ("channels", "BOTH"),
    ("channels", ["1", "2"]),
]


@pytest.mark.req("SR-13")
@pytest.mark.parametrize("key,value", BAD_VALUES, ids=lambda x: repr(x)[:20])
def test_one_bad_key_gives_its_default_and_is_named(fs, S, key, value):
    data = dict(GOOD)
    data[key] = value
    fs.write(PATH, json.dumps(data))
    cfg, problems = S.load(BOARD)
    assert problems == [key]
    expected = dict(GOOD)
    expected[key] = S.defaults(BOARD)[key]
    assert cfg == expected
    assert valid(S, cfg)


@pytest.mark.req("SR-13")
@pytest.mark.parametrize("key", sorted(KEYS))
def test_missing_key_gives_its_default_and_is_named(fs, S, key):
    data = dict(GOOD)
    del data[key]
    fs.write(PATH, json.dumps(data))
    cfg, problems = S.load(BOARD)
    assert problems == ([] if key in LATER_KEYS else [key])
    assert cfg[key] == S.defaults(BOARD)[key]


@pytest.mark.req("SR-13")
def test_all_keys_bad_all_named(fs, S):
    fs.write(PATH, json.dumps({"program": 1, "session_min": 999, "channels": "x"}))
    cfg, problems = S.load(BOARD)
    assert cfg == S.defaults(BOARD)
    assert sorted(problems) == sorted(KEYS - LATER_KEYS)


@pytest.mark.req("SR-13", "SR-1")
@pytest.mark.parametrize("extra", ["intensity", "step", "level_ma", "zzz", ""])
def test_extra_keys_are_named_and_dropped(fs, S, extra):
    data = dict(GOOD)
    data[extra] = 80
    fs.write(PATH, json.dumps(data))
    cfg, problems = S.load(BOARD)
    assert cfg == GOOD
    assert problems == [extra]
    assert extra not in cfg


@pytest.mark.req("SR-1")
def test_intensity_never_comes_back_from_a_save(fs, S):
    # Even if a caller hands save() more than the settings, load() gives only the settings.
    S.save(dict(GOOD, intensity=[40, 40]))
    cfg, problems = boot(fs).load(BOARD)
    assert "intensity" not in cfg and cfg == GOOD and problems == ["intensity"]


@pytest.mark.parametrize("m", [1, MAXM])
def test_session_min_bounds_accepted(fs, S, m):
    fs.write(PATH, json.dumps(dict(GOOD, session_min=m)))
    assert S.load(BOARD) == (dict(GOOD, session_min=m), [])


def test_every_program_and_selection_accepted(fs, S):
    for pid in programs_ids(S):
        for ch in S.SELECTIONS:
            fs.write(PATH, json.dumps(dict(GOOD, program=pid, channels=ch)))
            assert S.load(BOARD) == (dict(GOOD, program=pid, channels=ch), [])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip


@pytest.mark.req("SR-13", "SR-1")
@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    data=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {},
            optional={
                "program": st.sampled_from(["tens_burst", "ems_relax", "x"]) | json_values,
                "session_min": st.integers(-5, 200) | json_values,
                "channels": st.sampled_from(["both", "1", "2", "3"]) | json_values,
                "feedback": st.sampled_from(["both", "haptic", "tone", "off", "loud"])
                | json_values,
                "auto_off_min": st.integers(-5, 100) | json_values,
                "intensity": json_values,
            },
        ),
    ),
    cut=st.none() | st.integers(0, 200),
)
def test_any_file_content_loads_to_valid_settings(fs, S, data, cut):
    text = json.dumps(data).encode()
    if cut is not None:
        text = text[:cut]
    fs.write(PATH, text)
    cfg, problems = S.load(BOARD)  # never raises
    assert valid(S, cfg)
    assert isinstance(problems, list)
    if isinstance(data, dict) and text == json.dumps(data).encode():
        for k in KEYS:
            if k in problems or (k in LATER_KEYS and k not in data):
                assert cfg[k] == S.defaults(BOARD)[k]
            else:
                assert cfg[k] == data[k]
        # every key not taken is named, and only keys of the file (or missing ones) are named
        assert set(data) - KEYS <= set(problems) <= KEYS | set(data)
        assert len(problems) == len(set(problems))
    elif problems == ["file"]:
        assert cfg == S.defaults(BOARD)


# ---- atomic save ------------------------------------------------------------------------------
@pytest.mark.req("SR-13")
def test_save_writes_temp_then_renames(fs, S, monkeypatch):
    calls = []
    real_open, real_rename = fs.open, S.os.rename

    def spy_open(path, mode="r", *a, **kw):
        calls.append(("open", path, mode))
        return real_open(path, mode, *a, **kw)

    def spy_rename(a, b):
        calls.append(("rename", a, b, fs.read(a)))
        return real_rename(a, b)

    monkeypatch.setattr(fs, "open", spy_open)
    S2 = boot(fs)  # its open() is the spy
    monkeypatch.setattr(S2.os, "rename", spy_rename)
    S2.save(dict(GOOD))
    assert calls == [("open", TMP, "w"), ("rename", TMP, PATH, json.dumps(GOOD).encode())]


@pytest.mark.req("SR-13")
def test_power_cut_before_rename_keeps_old_settings(fs, S, monkeypatch):
    S.save(dict(GOOD))
    new = dict(GOOD, program="ems_relax", session_min=20)

    def cut(a, b):
        raise PowerCut()

    monkeypatch.setattr(S.os, "rename", cut)
    with pytest.raises(PowerCut):
        S.save(new)
    monkeypatch.undo()
    # The temp file holds the new settings, the real one is untouched.
    assert json.loads(fs.read(TMP)) == new
    assert json.loads(fs.read(PATH)) == GOOD
    # Next boot: the old settings, and the leftover temp file is no problem.
    S2 = boot(fs)
    assert S2.load(BOARD) == (GOOD, [])
    # A later save replaces both cleanly.
    S2.save(new)
    assert S2.load(BOARD) == (new, [])
    assert TMP not in fs.files


@pytest.mark.req("SR-13")
@pytest.mark.parametrize("written", [0, 1, 10, 30])
def test_power_cut_while_writing_temp_keeps_old_settings(fs, S, written):
    S.save(dict(GOOD))
    new_text = json.dumps(dict(GOOD, program="ems_relax"))
    fs.write(TMP, new_text[:written])  # what a cut part-way through the write leaves
    S2 = boot(fs)
    assert S2.load(BOARD) == (GOOD, [])


@pytest.mark.req("SR-13")
def test_power_cut_on_first_ever_save_gives_defaults(fs, S, monkeypatch):
    monkeypatch.setattr(S.os, "rename", lambda a, b: (_ for _ in ()).throw(PowerCut()))
    with pytest.raises(PowerCut):
        S.save(dict(GOOD))
    monkeypatch.undo()
    assert boot(fs).load(BOARD) == (S.defaults(BOARD), ["missing"])


@pytest.mark.req("SR-13")
def test_full_flash_save_fails_with_oserror_and_keeps_old(fs, S):
    S.save(dict(GOOD))
    fs.capacity = fs.used() + 5  # room for a few bytes only
    with pytest.raises(OSError) as e:
        S.save(dict(GOOD, program="ems_relax"))
    assert e.value.args[0] == ENOSPC  # an OSError the app catches and logs
    assert S.load(BOARD) == (GOOD, [])


@pytest.mark.req("SR-13")
def test_every_cut_point_of_a_save_leaves_old_or_new(fs, S, monkeypatch):
    """Cut the power after each flash operation of save(): the next boot loads old or new."""
    old = dict(GOOD)
    new = dict(GOOD, program="ems_strength", session_min=15, channels="2")
    S.save(old)
    ops = 0
    while True:
        snapshot = (dict(fs.files), set(fs.dirs))
        count = [0]
        real_store = fs._store
        real_rename = S.os.rename

        def store(path, data, _c=count, _lim=ops, _real=real_store):
            if _c[0] >= _lim:
                raise PowerCut()
            _c[0] += 1
            return _real(path, data)

        def rename(a, b, _c=count, _lim=ops, _real=real_rename):
            if _c[0] >= _lim:
                raise PowerCut()
            _c[0] += 1
            return _real(a, b)

        monkeypatch.setattr(fs, "_store", store)
        monkeypatch.setattr(S.os, "rename", rename)
        try:
            S.save(new)
            done = True
        except PowerCut:
            done = False
        monkeypatch.undo()
        cfg, problems = boot(fs).load(BOARD)
        assert problems == [] and cfg in (old, new), ops
        if done:
            assert cfg == new
            break
        fs.files, fs.dirs = snapshot
        ops += 1
    assert ops >= 2


# ---- history ----------------------------------------------------------------------------------
def rec(i):
    return {"n": i, "program": "tens_burst", "min": 30.0, "end": "timer", "max_step": [i, 0]}


def records(S):
    return [json.loads(x) for x in S.read_history_lines()]


def test_history_empty_when_missing(S):
    assert S.read_history_lines() == []


def test_history_round_trip(fs, S):
    for i in range(5):
        S.append_history(rec(i))
    assert records(S) == [rec(i) for i in range(5)]
    assert records(boot(fs)) == [rec(i) for i in range(5)]


@pytest.mark.req("SR-13")
def test_history_bounded_keeps_newest(fs, S):
    """The last 100 sessions (README), the oldest dropped first."""
    keep = 100  # written out: this is the check of stim.settings.HISTORY_MAX
    n = keep + 37
    for i in range(n):
        S.append_history(rec(i))
        got = S.read_history_lines()
        assert len(got) == min(i + 1, keep)
    assert records(S) == [rec(i) for i in range(n - keep, n)]
    # and the file itself holds no more than that
    assert fs.read(HPATH).decode().count("\n") == keep
    assert TMP.replace("settings.json", "history.jsonl") not in fs.files


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_history_small_limits(S, limit):
    for i in range(12):
        S.append_history(rec(i), limit=limit)
    assert records(S) == [rec(i) for i in range(12 - limit, 12)]


@pytest.mark.req("SR-13")
@pytest.mark.parametrize("tail", ['{"n": 9, "pro', "{", "\x00\x00\x00", '{"n": 9}x'])
def test_history_damaged_last_line_skipped(fs, S, tail):
    body = "".join(json.dumps(rec(i)) + "\n" for i in range(3))
    fs.write(HPATH, body + tail)
    assert records(S) == [rec(i) for i in range(3)]


@pytest.mark.req("SR-13")
@pytest.mark.parametrize("tail", ['{"n": 9, "pro', "{", json.dumps(rec(9))])
def test_history_append_after_damaged_last_line_keeps_the_new_record(fs, S, tail):
    """A power cut during an append leaves a part line without its newline (a whole record
    but for its newline, too); the next record must still be stored and readable, not glued
    onto the broken line, and a whole record before it is kept."""
    body = "".join(json.dumps(rec(i)) + "\n" for i in range(3))
    fs.write(HPATH, body + tail)
    S.append_history(rec(3))
    S.append_history(rec(4))
    kept = [rec(9)] if tail == json.dumps(rec(9)) else []
    assert records(S) == [rec(i) for i in range(3)] + kept + [rec(3), rec(4)]


@pytest.mark.req("SR-13")
def test_history_append_drops_a_damaged_line_from_the_file(fs, S):
    """A line that is no record (bad bytes, with its newline) is dropped from the file at the
    next append, which rewrites the good lines, so the file holds only records again."""
    body = "".join(json.dumps(rec(i)) + "\n" for i in range(3))
    fs.write(HPATH, body + "garbage\n")
    S.append_history(rec(3))
    assert fs.read(HPATH).decode() == "".join(json.dumps(rec(i)) + "\n" for i in range(4))


def test_a_record_added_to_a_sound_history_is_appended_not_rewritten(fs, S):
    """A sound history below its 100 records takes a new one at its end: one small write to
    the file itself, not a rewrite of every record through a temporary file (more flash
    erased, and a longer time with interrupts masked)."""
    for i in range(5):
        S.append_history(rec(i))
    ops = []
    fs.busy = lambda _cpu_us, erases, pages, path: ops.append(path)
    S.append_history(rec(5))
    assert HPATH in ops and not [p for p in ops if p.endswith(".tmp")], ops
    assert records(S) == [rec(i) for i in range(6)]


def test_history_blank_and_bad_middle_lines_skipped(fs, S):
    fs.write(HPATH, json.dumps(rec(0)) + "\n\n garbage\n" + json.dumps(rec(1)) + "\n")
    assert records(S) == [rec(0), rec(1)]


@pytest.mark.req("SR-13")
def test_history_power_cut_during_rewrite_keeps_old(fs, S, monkeypatch):
    for i in range(4):
        S.append_history(rec(i), limit=4)
    before = fs.read(HPATH)
    monkeypatch.setattr(S.os, "rename", lambda a, b: (_ for _ in ()).throw(PowerCut()))
    with pytest.raises(PowerCut):
        S.append_history(rec(4), limit=4)
    monkeypatch.undo()
    assert fs.read(HPATH) == before
    S2 = boot(fs)
    assert records(S2) == [rec(i) for i in range(4)]
    S2.append_history(rec(4), limit=4)
    assert records(S2) == [rec(i) for i in range(1, 5)]

"""SR-16: on a board whose console is locked (the wearable), the USB console carries only the
host protocol while the firmware runs: Ctrl-C and the raw-REPL control bytes are data, a crash
resets the chip, and the REPL opens only in maintenance, which a press on the unit allows. The
whole firmware runs on the simulated chip, whose USB receive path interrupts on the character
micropython.kbd_intr set (as shared/tinyusb/mp_usbd_cdc.c does); what counts is the pins, the
load and what the host reads on the console.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from host_tools.mpvm import FIRMWARE_DIR
from host_tools.sim.unit import REPL_BANNER
from host_tools.testing.hostproto import err, keep_alive, ok, pulses, send, unit_on
from host_tools.testing.safe_pins import at_log_line, not_reclaimed

pytestmark = pytest.mark.req("SR-16")

PROMPT = REPL_BANNER.splitlines()[0]  # "MicroPython v...; Raspberry Pi Pico with RP2040"
# Control bytes that reach the REPL of an open unit: Ctrl-A raw REPL, Ctrl-B friendly REPL,
# Ctrl-C interrupt, Ctrl-D soft reset, Ctrl-E paste mode, and mpremote's raw-paste request.
CONTROL = (b"\x01", b"\x02", b"\x03", b"\x04", b"\x05", b"\x05A\x01", b"\x03\x03\x01\x04")


def no_repl(unit):
    return unit.state == "main" and not any(PROMPT in x for x in unit.console.lines)


def output_pins_low(unit):
    return all(unit.pin(c[k]) == 0 for c in unit.board["channels"] for k in ("phase_a", "phase_b"))


def test_the_boards_say_which_console_they_have():
    from host_tools.boards import load_board

    assert load_board("wearable_v1")["console"] == "locked"
    assert load_board("pico")["console"] == "open"


def test_control_bytes_are_data_on_a_locked_unit_and_the_session_runs_on(make_unit):
    unit = unit_on(make_unit, "wearable_v1")
    ok(unit, "start")
    keep_alive(unit, unit.chip.t_s + 2.5, every_s=0.5)
    steps = ok(unit, "status")["steps"]
    for data in CONTROL:
        got = send(unit, data + b"status\n")
        assert got and got[-1]["r"] == "err" and got[-1]["code"] == "bad_bytes", data
        assert ok(unit, "status")["steps"] == steps  # nothing changed
        t = unit.chip.t_s
        keep_alive(unit, t + 0.3, every_s=0.1)
        assert pulses(unit, 1, t) and pulses(unit, 2, t), data  # the session runs on
        assert no_repl(unit), data
    flood = b"\x03" * 500
    unit.send(flood)
    keep_alive(unit, unit.chip.t_s + 1.0, every_s=0.3)
    assert no_repl(unit)
    assert not unit.logs("interrupted")


def test_ctrl_c_still_stops_an_open_unit(make_unit):
    unit = unit_on(make_unit, "pico")
    unit.send(b"\x03")
    unit.run_for(0.5)
    assert unit.logs("interrupted") and unit.state == "repl"
    assert any(PROMPT in x for x in unit.console.lines)
    assert output_pins_low(unit)


def test_maintenance_opens_the_repl_only_after_the_wearers_press(make_unit):
    unit = unit_on(make_unit, "wearable_v1", paired=False)
    rep = ok(unit, "maintenance")
    assert rep["asking"]
    keep_alive(unit, unit.chip.t_s + 1.0, every_s=0.5)
    assert no_repl(unit)  # asking is not allowing
    unit.press("plus")
    unit.run_for(1.0)
    assert unit.state == "repl" and any(PROMPT in x for x in unit.console.lines)
    assert unit.logs("maintenance") and output_pins_low(unit)
    boots = unit.boots
    unit.run_for(5.0)  # the watchdog is off: the REPL stays
    assert unit.boots == boots and unit.state == "repl"
    unit.send(b"\x03")  # and Ctrl-C is the REPL's again
    unit.run_for(0.2)
    assert unit.state == "repl"


@pytest.mark.req("SR-15", "SR-16")
def test_a_host_allowed_control_must_still_ask_for_maintenance(make_unit):
    """The wearer's yes to host control is not a yes to maintenance: that one is asked."""
    unit = unit_on(make_unit, "wearable_v1")  # paired: control allowed
    rep = ok(unit, "maintenance")
    assert rep["asking"] and "consent" not in rep
    keep_alive(unit, unit.chip.t_s + 1.0, every_s=0.5)
    assert no_repl(unit)


@pytest.mark.req("SR-8", "SR-16")
def test_maintenance_reclaims_the_output_pins_before_it_is_logged(make_unit):
    # No output was on when the wearer allowed it; still every output pin is a plain output
    # driven low, and every state machine stopped, before the REPL is announced (SR-8's order).
    unit = unit_on(make_unit, "wearable_v1", paired=False)
    seen = at_log_line(unit, "maintenance", not_reclaimed)
    ok(unit, "maintenance")
    keep_alive(unit, unit.chip.t_s + 0.5, every_s=0.5)
    unit.press("plus")
    unit.run_for(1.0)
    assert unit.state == "repl" and seen == [[]]


def test_maintenance_refused_or_unanswered_leaves_the_firmware_running(make_unit):
    unit = unit_on(make_unit, "wearable_v1", paired=False)
    ok(unit, "maintenance")
    unit.press("minus")
    keep_alive(unit, unit.chip.t_s + 1.0, every_s=0.5)
    assert no_repl(unit) and unit.logs("consent")[-1]["state"] == "refused"
    t = unit.chip.t_s
    ok(unit, "maintenance")
    keep_alive(unit, t + 16.0, every_s=1.0)
    assert no_repl(unit) and unit.logs("consent")[-1]["reason"] == "timeout"


def test_no_maintenance_during_a_session(make_unit):
    unit = unit_on(make_unit, "wearable_v1")
    ok(unit, "start")
    keep_alive(unit, unit.chip.t_s + 1.0, every_s=0.5)
    assert err(unit, "maintenance")["code"] == "state"
    assert no_repl(unit)


def test_mode_held_at_power_up_is_maintenance_on_a_locked_unit(make_unit):
    unit = make_unit("wearable_v1", load_ohm={1: 1000.0, 2: 1000.0})
    unit.model.press("mode")  # held from power-up
    unit.run_until(1.5)
    assert unit.logs("safe_mode") and unit.state == "repl"
    assert output_pins_low(unit)


def crashing_firmware(tmp_path: Path, at_ms: int) -> Path:
    """A copy of the firmware whose main task (the watchdog loop that asyncio.run waits for)
    raises at_ms after boot: an unhandled exception that reaches stim.main."""
    fw = tmp_path / "firmware"
    shutil.copytree(FIRMWARE_DIR, fw)
    app = fw / "stim" / "app.py"
    text = app.read_text()
    old = "            await asyncio.sleep_ms(_WDT_FEED_MS)\n"
    assert text.count(old) == 1
    app.write_text(
        text.replace(
            old,
            old + "            if time.ticks_ms() > %d:\n"
            "                raise RuntimeError('injected')\n" % at_ms,
        )
    )
    return fw


def test_a_crash_on_a_locked_unit_resets_into_the_firmware_not_the_repl(make_unit, tmp_path):
    unit = unit_on(make_unit, "wearable_v1", firmware_dir=crashing_firmware(tmp_path, 6000))
    ok(unit, "start")
    keep_alive(unit, 5.9, every_s=0.5)
    assert pulses(unit, 1, 5.4)
    boots = unit.boots
    unit.run_until(6.6)
    crash = unit.logs("crash")
    assert [e["msg"] for e in crash] == ["injected"]
    t = crash[0]["sim_t"]
    assert not [p for p in pulses(unit, 1) if p.end_s > t]  # outputs off before the log line
    assert unit.boots == boots + 1 and unit.state == "main"  # reset, the firmware again
    assert not any(PROMPT in x for x in unit.console.lines)


def test_a_crash_on_an_open_unit_leaves_the_repl_as_before(make_unit, tmp_path):
    unit = unit_on(make_unit, "pico", firmware_dir=crashing_firmware(tmp_path, 4000))
    boots = unit.boots
    unit.run_until(4.6)
    assert unit.logs("crash") and unit.state == "repl" and unit.boots == boots
    assert any(PROMPT in x for x in unit.console.lines)
    assert output_pins_low(unit)

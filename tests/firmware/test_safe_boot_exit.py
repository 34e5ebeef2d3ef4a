"""SR-8 (fail safe): boot.py and main.py leave the bridge low and the boost off on every path.

Each test observes the simulated pins: the bridge PHASE pins, the LEVEL pin's filtered duty and
BOOST_EN. A stand-in app turns the output stage on through the same peripherals the pulse engine
uses (a PIO state machine holding PHASE_A high, LEVEL PWM at full duty, boost enabled), so that
"safe" has to be achieved against hardware that is really driving.
"""

from __future__ import annotations

import json

import pytest

from host_tools.boards import load_board
from host_tools.testing.safe_pins import (
    at_log_line,
    is_output,
    not_driven_low,
    not_reclaimed,
    output_pins,
)

pytestmark = pytest.mark.req("SR-8")

STAND_IN_APP = """
import time
import rp2
from machine import Pin, PWM, WDT

@rp2.asm_pio(set_init=(rp2.PIO.OUT_LOW, rp2.PIO.OUT_LOW))
def hold_a():
    set(pins, 1)
    label("spin")
    jmp("spin")

@rp2.asm_pio()
def idle():
    label("spin")
    jmp("spin")

class App:  # built by stim.main with the hardware layer handed in, as the real one is
    def __init__(self, hw, unit, wearer, host, *rest):
        self.board = host.board


def run(app):
    board = app.board
    ch = board["channels"][0]
    sm = rp2.StateMachine(0, hold_a, set_base=Pin(ch["phase_a"]))
    sm.active(1)
    rp2.StateMachine(7, idle).active(1)  # the last one too: all_off stops all eight
    PWM(Pin(ch["level_pwm"]), freq=100000, duty_u16=65535)
    Pin(board["boost_en"], Pin.OUT, value=1)
    print("OUTPUT_ON")
    MODE
"""


def stand_in(fw, mode: str) -> None:
    tail = {
        "sleep": "time.sleep(3600)",
        "crash": "time.sleep_ms(500)\n    raise RuntimeError('boom')",
        "hang": "WDT(timeout=200)\n    while True:\n        time.sleep_ms(50)",
    }[mode]
    (fw / "stim" / "app.py").write_text(STAND_IN_APP.replace("MODE", tail))


def outputs(unit) -> dict:
    b = unit.board
    ch = b["channels"][0]
    return {
        "phase_a": unit.pin(ch["phase_a"]),
        "phase_b": unit.pin(ch["phase_b"]),
        "level": unit.chip.analog_level(ch["level_pwm"]),
        "boost": unit.pin(b["boost_en"]),
    }


SAFE = {"phase_a": 0, "phase_b": 0, "level": 0.0, "boost": 0}
ON = {"phase_a": 1, "phase_b": 0, "level": 1.0, "boost": 1}


def run_until_on(unit, limit_s: float = 2.0) -> float:
    """Run until the stand-in has the output stage on (boot and imports take the time they
    take on the port, about half a second); returns that instant."""
    t = unit.chip.t_s
    while outputs(unit) != ON:
        t += 0.01
        assert t < limit_s, "the stand-in never turned the output on"
        unit.run_until(t)
    return t


def assert_reclaimed(unit) -> None:
    bad = not_reclaimed(unit)
    assert bad == [], bad


def test_ctrl_c_makes_outputs_safe_before_the_repl(make_unit, fw_copy, recorder):
    stand_in(fw_copy, "sleep")
    unit = make_unit("pico", firmware_dir=fw_copy)
    rec = recorder(unit)
    t = run_until_on(unit) + 0.1
    unit.interrupt(at=t)
    unit.run_until(t + 0.005)  # Ctrl-C is taken at the next bytecode; all_off takes ~0.3 ms
    assert outputs(unit) == SAFE
    assert unit.state == "repl"
    assert_reclaimed(unit)
    # Outputs went low before the firmware said anything about it.
    i = rec.index_of_line('"ev":"interrupted"')
    pa = unit.board["channels"][0]["phase_a"]
    assert rec.level_at_index(pa, i) == 0


@pytest.mark.parametrize("at_s", [0.2, 0.3, 0.4])
def test_ctrl_c_while_the_firmware_starts_leaves_a_clean_repl(make_unit, at_s):
    """Ctrl-C before the app runs (the board file read, the clock set, the buttons looked
    at): outputs low, the interruption logged, and the REPL reached without a traceback of
    the exit path's own."""
    unit = make_unit("pico")
    unit.interrupt(at=at_s)
    unit.run_until(at_s + 0.3)
    assert unit.state == "repl" and outputs(unit) == SAFE
    assert unit.logs("interrupted") and unit.logs("outputs_off")
    assert not [ln for ln in unit.console.lines if "Traceback" in ln]


def test_unhandled_exception_makes_outputs_safe(make_unit, fw_copy, recorder):
    stand_in(fw_copy, "crash")
    unit = make_unit("pico", firmware_dir=fw_copy)
    rec = recorder(unit)
    t = run_until_on(unit)
    unit.run_until(t + 0.4)
    assert outputs(unit) == ON
    unit.run_until(t + 0.55)  # the stand-in raises 500 ms after turning the output on
    assert outputs(unit) == SAFE
    crash = unit.logs("crash")
    assert crash and crash[0]["type"] == "RuntimeError" and crash[0]["lvl"] == "error"
    assert unit.state == "repl"
    # ... and the traceback for whoever is at the console (not only the log line's summary)
    assert "Traceback (most recent call last):" in unit.console.lines
    assert "RuntimeError: boom" in unit.console.lines
    # Outputs low before anything is said about the crash, as on the Ctrl-C path ("before
    # anything else"), and every state machine stopped, not merely overridden at the pins.
    i = rec.index_of_line('"ev":"crash"')
    b = unit.board
    for pin in (b["channels"][0]["phase_a"], b["boost_en"]):
        assert rec.level_at_index(pin, i) == 0
    assert not any(sm.enabled for block in unit.chip.pio for sm in block.sms)


def test_outputs_stay_on_while_nothing_goes_wrong(make_unit, fw_copy):
    """The control for the tests above: the stand-in really does hold the output stage on."""
    stand_in(fw_copy, "sleep")
    unit = make_unit("pico", firmware_dir=fw_copy)
    run_until_on(unit)
    unit.run_until(5.0)
    assert outputs(unit) == ON


def test_a_soft_reset_makes_outputs_safe_on_the_way_out_and_again_at_boot(
    make_unit, fw_copy, recorder
):
    """A soft reset (SystemExit through main.py) is a way out like any other: the outputs are
    low when the firmware has ended, before the port's soft reset path ("MPY: soft reboot")
    stops the state machines. That path leaves PIO and PWM pins where they were (it does not
    touch the pads), so boot.py brings them down again before main.py starts."""
    stand_in(fw_copy, "sleep")
    unit = make_unit("pico", firmware_dir=fw_copy)
    t = run_until_on(unit)
    rec = recorder(unit)
    unit.soft_reset(at=t)
    unit.run_until(t + 0.3)
    b = unit.board
    for line in ("MPY: soft reboot", '"ev":"boot"'):
        i = rec.index_of_line(line)
        for pin in (b["channels"][0]["phase_a"], b["boost_en"]):
            assert rec.level_at_index(pin, i, initial=1) == 0, (line, pin)
    assert unit.boots == 2


def test_watchdog_reset_leaves_outputs_safe_and_is_logged(make_unit, fw_copy):
    stand_in(fw_copy, "hang")
    unit = make_unit("pico", firmware_dir=fw_copy)
    t = run_until_on(unit)
    # Never fed: the watchdog resets the chip 200 ms after it was started.
    unit.run_until(t + 0.6)  # the reset at 0.2 s; the next boot logs its cause about 0.2 s later
    assert unit.boots == 2
    boots = unit.logs("boot")
    assert [b["cause"] for b in boots] == ["power_on", "watchdog"]
    # Between the reset and the stand-in re-enabling output, the pins were low: check at the
    # instant of the reset through the recorded pin history.
    assert unit.chip.reset_cause == 3 or boots[-1]["cause"] == "watchdog"


def test_boot_with_a_good_board_file_claims_only_its_outputs(make_unit, fw_copy):
    # boot.py alone (an empty main.py): the board's outputs driven low, nothing else touched
    # (the fallback to every user pin is for a board file it cannot read)
    (fw_copy / "main.py").write_text("")
    unit = make_unit("pico", firmware_dir=fw_copy)
    unit.run_until(0.5)
    assert unit.state == "repl"
    outs = output_pins(unit.board)
    assert {n for n in range(30) if is_output(unit, n)} == outs
    assert all(unit.pin(n) == 0 for n in outs)


@pytest.mark.req("SR-3", "SR-4")
def test_a_board_with_its_own_clock_gets_it_before_any_pulse_is_timed(make_unit):
    """The port boots at 125 MHz (the simulated chip too: rp2sim.chip.PORT_BOOT_HZ); the
    wearable_v1 board runs at 100 MHz and its dividers are worked out for that. stim.main sets
    the clock (hw.use_clock) before any PIO or PWM is set up, so the therapy pulses at the load
    are tens_conventional's 100 us phases 10 ms apart, to a clock cycle. Without it they would
    be a fifth shorter and come a quarter faster (the simulated chip refuses a PIO or PWM set
    up at the boot clock: rp2sim.chip.ClockMismatch)."""
    unit = make_unit("wearable_v1", load_ohm={1: 1000.0, 2: 1000.0})
    unit.run_until(0.2)
    assert unit.chip.freq_hz == 125_000_000  # booting: the port's clock, nothing set up yet
    unit.press("power", at=0.5, hold_s=1.7)
    unit.press("plus", at=2.5)
    unit.run_until(5.5)
    assert unit.chip.freq_hz == 100_000_000
    cycle_s = 1 / 100e6
    therapy = [p for p in unit.model.channels[0].pulse_log if p.t_a > 4.0]
    assert len(therapy) > 100
    for p in therapy:
        assert abs(p.width_a_s - 100e-6) <= cycle_s and abs(p.width_b_s - 100e-6) <= cycle_s
    for a, b in zip(therapy, therapy[1:], strict=False):
        assert abs((b.t_a - a.t_a) - 0.010) <= cycle_s


@pytest.mark.req("FR-10", "FR-9")
def test_missing_board_file_gives_safe_state_fault_led_and_error(make_unit):
    unit = make_unit("pico", files={})
    unit.run_until(0.5)
    err = unit.logs("board_invalid")
    assert err and err[0]["lvl"] == "error"
    assert err[0]["key"] == "<file>" and "/board.json" in err[0]["msg"]
    assert all(unit.pin(n) == 0 for n in range(23))
    assert unit.pin(25) == 1  # no trustworthy board: the Pico's own LED shows the fault
    assert not unit.logs("app_start")
    # The fallback drives GP0-22 low (an input pulled down is not enough: a board's own pull-up
    # could raise it), and only those: GP23 (the Pico's regulator mode), GP24 (VBUS sense) and
    # the ADC pins GP26-29 (VSYS/3 among them) are not outputs on any board and stay inputs.
    low = not_driven_low(unit, range(23))
    assert low == [], "GP%s not driven low" % low
    for n in (23, 24, 26, 27, 28, 29):
        assert not is_output(unit, n), "GP%d driven by the fallback" % n


@pytest.mark.req("SR-8")
def test_a_bad_board_file_drives_the_user_pins_low_before_the_error_is_logged(make_unit):
    # SR-8's order on this path too: outputs first, words after.
    bad = json.loads(json.dumps(load_board("pico")))
    bad["channels"][0]["phase_b"] = 9
    unit = make_unit("pico", files={"/board.json": json.dumps(bad)})
    seen = at_log_line(unit, "board_invalid", lambda u: not_driven_low(u, range(23)))
    unit.run_until(0.5)
    assert seen == [[]], "GP%s not yet driven low when the error was logged" % seen


@pytest.mark.req("FR-10", "FR-9")
def test_invalid_board_file_names_the_key_and_lights_the_fault_led(make_unit):
    board = load_board("pico")
    bad = json.loads(json.dumps(board))
    bad["channels"][0]["phase_b"] = 9
    unit = make_unit(board, files={"/board.json": json.dumps(bad)})
    unit.run_until(0.5)
    err = unit.logs("board_invalid")
    assert err and err[0]["key"] == "channels[0].phase_b"
    assert unit.pin(board["status_led"]["r"]) == 1
    for ch in board["channels"]:
        assert unit.pin(ch["phase_a"]) == 0 and unit.pin(ch["phase_b"]) == 0
    assert unit.pin(board["boost_en"]) == 0


@pytest.mark.req("FR-10", "FR-9")
@pytest.mark.parametrize("red", [0, 29])
def test_the_fault_led_takes_any_gpio_number_the_chip_has(make_unit, red):
    # GP0 and GP29, the ends of the RP2040's GPIO range: a board file broken elsewhere still
    # gets its own red LED
    board = load_board("pico")
    bad = json.loads(json.dumps(board))
    bad["status_led"]["r"] = red
    bad["channels"][0]["phase_b"] = 9
    unit = make_unit(board, files={"/board.json": json.dumps(bad)})
    unit.run_until(0.5)
    assert unit.logs("board_invalid")
    assert unit.pin(red) == 1 and unit.pin(25) == 0


@pytest.mark.req("FR-10", "FR-9")
@pytest.mark.parametrize("red", [30, 40, -1, "7"])
def test_a_fault_led_pin_that_cannot_exist_lights_the_pico_led_instead(make_unit, red):
    board = load_board("pico")
    bad = json.loads(json.dumps(board))
    bad["status_led"]["r"] = red
    unit = make_unit(board, files={"/board.json": json.dumps(bad)})
    unit.run_until(0.5)
    assert unit.logs("board_invalid") and not unit.logs("crash")
    assert unit.pin(25) == 1
    assert all(unit.pin(n) == 0 for n in range(23))


@pytest.mark.req("FR-10", "FR-9")
def test_corrupt_board_json_is_an_error_not_a_crash(make_unit):
    unit = make_unit("pico", files={"/board.json": '{"name": "pico", "chan'})
    unit.run_until(0.5)
    err = unit.logs("board_invalid")
    assert err and err[0]["key"] == "<json>"
    assert unit.pin(25) == 1
    assert not unit.logs("crash")


@pytest.mark.req("FR-10", "FR-9")
def test_mode_held_at_boot_skips_the_app(make_unit):
    unit = make_unit("pico")
    unit.press("mode", at=0.0, hold_s=2.0)
    unit.run_until(1.0)
    assert unit.logs("safe_mode")
    assert not unit.logs("app_start")
    assert unit.state == "repl"


@pytest.mark.parametrize("button", ["power", "plus", "minus"])
def test_only_mode_held_at_boot_skips_the_app(make_unit, button):
    # POWER held through a boot is the wearer switching on; PLUS or MINUS held is no sign
    # either: only MODE asks for the REPL.
    unit = make_unit("pico")
    unit.press(button, at=0.0, hold_s=2.0)
    unit.run_until(1.0)
    assert unit.logs("app_start") and not unit.logs("safe_mode")
    assert unit.state != "repl"


def test_real_app_ctrl_c_ends_in_safe_state(make_unit):
    unit = make_unit("pico")
    unit.run_until(1.0)
    assert unit.logs("app_start")
    unit.interrupt(at=1.0)
    unit.run_until(1.02)
    assert unit.logs("interrupted")
    assert outputs(unit) == SAFE
    assert unit.state == "repl"

"""Start the firmware (main.py calls run()): load the board, build the unit from it, run the
app, and make the outputs safe on every way out (SR-8), including Ctrl-C from the host, before
the REPL gets control.

SR-16: on a board whose `console` is "locked" the USB console carries only the host protocol
while the app runs (Ctrl-C is data: micropython.kbd_intr(-1)), a crash makes the outputs safe
and resets the chip instead of returning to the REPL, and the REPL opens only in maintenance:
MODE held at power-up, or a host's `maintenance` that the wearer accepted with a press.

The only place that builds the hardware layer (stim.hw, stim.engine) and hands it to the logic
(stimulator, unit, wearer, host link, app): nothing below this module makes its own pins.

This lives in the package, not in main.py itself: MicroPython compiles main.py from source at
every boot, and code compiled on the device keeps several times the heap of the same code
loaded from a .mpy file (README, "Memory").
"""

import time

import micropython

from stim import firmware_version, load_board, log, safe


def _raw_board():
    # For the fault LED only: whatever the broken file says, if it says anything.
    try:
        import json

        with open("/board.json") as f:
            return json.load(f)
    except Exception:  # noqa: BLE001
        return None


def build(board, held=None, console=None, version=("unknown", "")):
    """The app for a validated board: hardware built here and handed in. `held`: the buttons
    held at boot (ignored until released, SR-11); `console`: the host's byte stream or None."""
    from stim import app, feedback, gestures, hw, settings
    from stim.electrode import Scale
    from stim.engine import Channel
    from stim.host import HostLink
    from stim.level import Level
    from stim.stimulator import Stimulator
    from stim.unit import Unit
    from stim.wearer import Wearer

    log.info("app_start", board=board["name"], channels=len(board["channels"]))
    hardware = hw.Hardware(board)
    _install_programs(board)  # before the settings: the saved program may be an installed one
    cfg, problems = settings.load(board)
    if problems == ["missing"]:
        log.info("settings", msg="no settings file: defaults")
    elif problems:
        log.warn("settings", msg="bad settings: defaults used", keys=problems)
    sysclk = board["sysclk_hz"]
    # One LEVEL calibration and one SENSE scale for every channel: the board has one of each.
    lvl = Level(board, sysclk)
    scale = Scale(board)
    channels = [Channel(i, c, board, sysclk, lvl, scale) for i, c in enumerate(board["channels"])]
    now = time.ticks_ms()
    # The saved program from the start: one `program` log line at boot, not two.
    stim = Stimulator(board, channels, hw.Boost(board), cfg["program"], now)
    unit = Unit(board, stim, cfg, now, feedback.Player(), version)
    wearer = Wearer(unit, gestures.Gestures(held, hw.power_down_ms()))
    host = HostLink(unit, board, console, hw.set_clock)
    return app.App(hardware, unit, wearer, host, hw.start_watchdog)


def _install_programs(board):
    import stim
    from stim import custom

    try:
        ids, why = custom.boot(board)
    finally:
        stim.forget("custom")  # boot-time only, as the validators
    if why:
        log.warn("programs", msg="stored programs not used: %s" % why)
    elif ids:
        log.info("programs", custom=ids)


def run():
    board = None
    fatal = None  # a board file we cannot trust: show the fault LED once outputs are off
    locked = False  # SR-16: no way back to the REPL but maintenance
    try:
        from stim import hw

        version = firmware_version()
        log.info("boot", cause=hw.reset_cause_name(), version=version[0], commit=version[1])
        board, e = load_board("/board.json")  # the validator is dropped again after use
        if e is not None:
            fatal = _raw_board() or {}
            safe.all_off(None)
            log.error("board_invalid", key=e.key, msg=str(e))
            return
        hw.use_clock(board["sysclk_hz"])  # before any PIO or PWM divider is worked out
        hw.watch_power(board)  # then the buttons down now: a press from here on is one
        held = hw.buttons_held(board)
        if held & 2:
            # Safe mode: MODE held at boot skips the app, so a unit whose firmware misbehaves
            # can still be reached from the host.
            log.warn("safe_mode", msg="MODE held at boot: app not started, REPL available")
            return
        from stim import app
        from stim.host import console_stream

        locked = board["console"] == "locked"
        if locked:
            micropython.kbd_intr(-1)  # SR-16: Ctrl-C is data for the host link, not an exit
        app.run(build(board, held, console_stream(), version))
        # The app ends only when the wearer accepted maintenance (SR-16): no output was on.
        safe.all_off(board)
        safe.watchdog_off()  # nothing feeds it in the REPL
        locked = False
        micropython.kbd_intr(3)
        log.warn("maintenance", msg="accepted on the unit: app stopped, REPL open until reset")
    except KeyboardInterrupt:
        safe.all_off(board)  # SR-8: outputs first, words after
        safe.watchdog_off()  # a deliberate exit to the REPL: nothing feeds the watchdog now
        log.warn("interrupted", msg="stopped by Ctrl-C; outputs off")
    except Exception as e:  # noqa: BLE001 - any crash must end in the safe state, logged
        safe.all_off(board)
        log.error("crash", type=type(e).__name__, msg=str(e))
        try:
            import sys

            sys.print_exception(e)
        except Exception:  # noqa: BLE001
            pass
    finally:
        safe.all_off(board)
        if fatal is not None:
            safe.fault_led(fatal)
    log.info("outputs_off")
    if locked:
        # SR-16: a locked unit never returns to the REPL: after a crash (outputs already
        # safe, logged) the chip restarts into the firmware.
        safe.reset()

"""Start the firmware (main.py calls run()): load the board, build the unit from it, run the
app, and make the outputs safe on every way out (SR-8), including Ctrl-C from the host, before
the REPL gets control.

The only place that builds the hardware layer (stim.hw, stim.engine) and hands it to the logic
(stimulator, unit, wearer, host link, app): nothing below this module makes its own pins.

This lives in the package, not in main.py itself: MicroPython compiles main.py from source at
every boot, and code compiled on the device keeps several times the heap of the same code
loaded from a .mpy file (README, "Memory").
"""

import time

from stim import load_board, log, safe


def _raw_board():
    # For the fault LED only: whatever the broken file says, if it says anything.
    try:
        import json

        with open("/board.json") as f:
            return json.load(f)
    except Exception:  # noqa: BLE001
        return None


def build(board, held=None, console=None):
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
    unit = Unit(board, stim, cfg, now, feedback.Player())
    wearer = Wearer(unit, gestures.Gestures(held, hw.power_down_ms()))
    host = HostLink(unit, board, console, hw.set_clock)
    return app.App(hardware, unit, wearer, host, hw.start_watchdog)


def run():
    board = None
    fatal = None  # a board file we cannot trust: show the fault LED once outputs are off
    try:
        from stim import hw

        log.info("boot", cause=hw.reset_cause_name())
        board, e = load_board("/board.json")  # the validator is dropped again after use
        if e is not None:
            fatal = _raw_board() or {}
            safe.all_off(None)
            log.error("board_invalid", key=e.key, msg=str(e))
            return
        hw.watch_power(board)  # then the buttons down now: a press from here on is one
        held = hw.buttons_held(board)
        if held & 2:
            # Safe mode: MODE held at boot skips the app, so a unit whose firmware misbehaves
            # can still be reached from the host.
            log.warn("safe_mode", msg="MODE held at boot: app not started, REPL available")
            return
        from stim import app
        from stim.host import console_stream

        app.run(build(board, held, console_stream()))
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

"""Start the firmware (main.py calls run()): load the board, start the app, and make the outputs
safe on every way out (SR-8), including Ctrl-C from the host, before the REPL gets control.

This lives in the package, not in main.py itself: MicroPython compiles main.py from source at
every boot, and code compiled on the device keeps several times the heap of the same code
loaded from a .mpy file (README, "Memory").
"""

import machine

from stim import load_board, log, safe

_CAUSES = {machine.PWRON_RESET: "power_on", machine.WDT_RESET: "watchdog"}


def _buttons_held(board):
    """Bit n set for each button (stim.hw.BUTTONS order) held down at boot. MODE held means
    safe mode; any other is ignored by the app until released (SR-11). Active low."""
    bits = 0
    names = ("power", "mode", "plus", "minus")
    for i in range(4):
        pin = machine.Pin(board["buttons"][names[i]], machine.Pin.IN, machine.Pin.PULL_UP)
        if pin.value() == 0:
            bits |= 1 << i
    return bits


def _raw_board():
    # For the fault LED only: whatever the broken file says, if it says anything.
    try:
        import json

        with open("/board.json") as f:
            return json.load(f)
    except Exception:  # noqa: BLE001
        return None


def run():
    board = None
    fatal = None  # a board file we cannot trust: show the fault LED once outputs are off
    try:
        log.info("boot", cause=_CAUSES.get(machine.reset_cause(), "other"))
        board, e = load_board("/board.json")  # the validator is dropped again after use
        if e is not None:
            fatal = _raw_board() or {}
            safe.all_off(None)
            log.error("board_invalid", key=e.key, msg=str(e))
            return
        held = _buttons_held(board)
        if held & 2:
            # Safe mode: MODE held at boot skips the app, so a unit whose firmware misbehaves
            # can still be reached from the host.
            log.warn("safe_mode", msg="MODE held at boot: app not started, REPL available")
            return
        from stim import app

        app.run(board, held)
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

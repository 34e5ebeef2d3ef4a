# main.py only wires: load the board, start the app, and make the outputs safe on every way out
# (SR-8), including Ctrl-C from the host, before the REPL gets control.
import machine
import stim.safe as safe
from stim import log

_CAUSES = {machine.PWRON_RESET: "power_on", machine.WDT_RESET: "watchdog"}


def _mode_held(board):
    # Safe mode: MODE held at boot skips the app, so a unit whose firmware misbehaves can still
    # be reached from the host. Buttons are active low.
    pin = machine.Pin(board["buttons"]["mode"], machine.Pin.IN, machine.Pin.PULL_UP)
    return pin.value() == 0


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
        from stim import board as boardcfg

        log.info("boot", cause=_CAUSES.get(machine.reset_cause(), "other"))
        try:
            board = boardcfg.load("/board.json")
        except boardcfg.BoardError as e:
            fatal = _raw_board() or {}
            safe.all_off(None)
            log.error("board_invalid", key=e.key, msg=str(e))
            return
        if _mode_held(board):
            log.warn("safe_mode", msg="MODE held at boot: app not started, REPL available")
            return
        from stim import app

        app.run(board)
    except KeyboardInterrupt:
        safe.all_off(board)  # SR-8: outputs first, words after
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


run()

"""Safe state of the outputs (SR-8): bridge pins low, LEVEL low, boost off.

Stopping a PWM slice or a PIO state machine leaves its pins wherever they were, so the only
reliable way to make an output safe is to re-claim the pin as a plain output driven low. Every
output of the board is designed to be safe when low (boards/README.md), so when the board file
cannot be trusted we drive every user GPIO low instead.
"""

from machine import Pin, mem32, reset  # noqa: F401 - reset: stim.main (SR-16)
from micropython import const

# RP2040 datasheet 4.7.6: WATCHDOG_BASE 0x40058000, CTRL at offset 0 with ENABLE in bit 30;
# 2.1.2: writing a register's address + 0x3000 clears the bits written (the pico-sdk's
# watchdog_disable() does exactly this: hw_clear_bits(&watchdog_hw->ctrl, ENABLE)).
# machine.WDT has no way to stop the watchdog once started.
_WATCHDOG_CTRL_CLR = const(0x40058000 + 0x3000)
_WATCHDOG_ENABLE = const(1 << 30)

# GPIO 0..22 are the RP2040 user pins that reach a board's connectors; 23..29 are either the
# Pico's internal signals or ADC inputs, which never drive the output stage.
_FALLBACK_PINS = tuple(range(23))


def output_pins(board):
    """Every pin whose level can put energy into the electrodes, boost enable last."""
    pins = []
    for ch in board["channels"]:
        pins.append(ch["phase_a"])
        pins.append(ch["phase_b"])
        pins.append(ch["level_pwm"])
    pins.append(board["boost_en"])
    return pins


def stop_state_machines():
    try:
        import rp2

        for i in range(8):
            rp2.StateMachine(i).active(0)
    except Exception:  # noqa: BLE001 - never let cleanup stop the pins going low
        pass


def all_off(board=None):
    """Drive every output low. Safe to call at any time, any number of times."""
    pins = _FALLBACK_PINS
    if board is not None:
        try:
            pins = output_pins(board)
        except Exception:  # noqa: BLE001 - a malformed board dict: fall back to all pins
            pins = _FALLBACK_PINS
    # Pins first: re-claiming them as SIO outputs overrides the PIO/PWM function at once;
    # stopping the state machines afterwards changes no pin.
    for n in pins:
        Pin(n, Pin.OUT, value=0)
    stop_state_machines()


def watchdog_off():
    """Stop the hardware watchdog (SR-8): on a deliberate way out to the REPL (Ctrl-C, a soft
    reset), so that the prompt, mpremote and `stimctl flash` are not reset under the user by a
    watchdog that nothing feeds any more. A hung or crashed app never comes here: the watchdog
    then resets the unit into the safe state."""
    try:
        mem32[_WATCHDOG_CTRL_CLR] = _WATCHDOG_ENABLE
    except Exception:  # noqa: BLE001 - never let this stop the outputs going low
        pass


def fault_led(board_obj=None):
    """Light a red fault LED: the board's status red if we can find it, else the Pico LED."""
    pin = 25
    try:
        r = board_obj["status_led"]["r"]
        if isinstance(r, int) and 0 <= r <= 29:
            pin = r
    except Exception:  # noqa: BLE001 - a broken board file still gets a fault LED
        pass
    Pin(pin, Pin.OUT, value=1)
    return pin


def boot_safe(path="/board.json"):
    """boot.py's first act: outputs low from the board file, or every user pin if unreadable."""
    board = None
    try:
        from stim import load_board

        board = load_board(path)[0]
    except Exception:  # noqa: BLE001 - main.py reports the error; here we only make it safe
        board = None
    all_off(board)
    return board

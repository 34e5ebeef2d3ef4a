"""LED patterns. Pure module (no `machine`): what the RGB status LED and each channel LED show
at a moment.

Each state has its own rhythm, so a wearer who cannot tell the colours apart can still read it
(README, "What the lights mean"). Overlays for "locked" and "battery low" take their own slot
at the end of a 4-second cycle, so they never hide the state underneath.
"""

from micropython import const

from stim import electrode, session

# Status LED colours as bits: 1 red, 2 green, 4 blue (small ints: no object per colour).
OFF = 0
RED = 1
GREEN = 2
AMBER = 3
BLUE = 4
WHITE = 7

# Overlay flags for status(), combined with |.
LOCKED = 1
BATTERY_LOW = 2
CUTOFF = 4
ENDED = 8
ACK = 16
ASKING = 32

CYCLE_MS = 4000
_LOCK_FROM = const(3000)  # blue blip while locked: from, to (ms into the cycle)
_LOCK_TO = const(3300)
_LOW_FROM = const(3500)  # amber blip while the battery is low
_LOW_TO = const(3800)


def _on(t, period, width):
    return (t % period) < width


def status(state, t_ms, flags):
    """The status LED's colour (bits: 1 red, 2 green, 4 blue) at t_ms for a session state and
    the overlay flags."""
    locked = flags & LOCKED
    battery_low = flags & BATTERY_LOW
    if state == session.OFF:
        return OFF
    if state == session.FAULT:
        return RED if _on(t_ms, 200, 100) else OFF  # fast red blink: fatal fault
    if flags & ACK:
        return WHITE  # a brief flash on every press
    if flags & ASKING:
        # A host asks for the wearer's consent (SR-15): blue double flash every second.
        x = t_ms % 1000
        return BLUE if x < 400 and (x % 200) < 100 else OFF
    c = t_ms % CYCLE_MS
    if flags & CUTOFF:
        # Battery empty: three short red flashes every 2 s; nothing can start.
        x = t_ms % 2000
        return RED if x < 900 and (x % 300) < 120 else OFF
    if locked and _LOCK_FROM <= c < _LOCK_TO:
        return BLUE
    if battery_low and _LOW_FROM <= c < _LOW_TO:
        return AMBER
    if locked and _LOCK_FROM - 200 <= c < _LOW_TO + 200:
        # A gap around the overlays so they stand out; also before the lock blip, else while
        # running (steady) it merges with the state and "locked" shows by colour alone.
        return OFF
    if battery_low and _LOCK_TO <= c < _LOW_TO + 200:
        return OFF
    if state == session.RUNNING:
        return GREEN  # steady
    if state == session.PAUSED:
        return GREEN if _on(t_ms, 1000, 150) else OFF  # short blip every second
    if state == session.ENDING:
        return GREEN if _on(t_ms, 250, 125) else OFF  # fast blink while fading out
    if flags & ENDED:
        # Session finished: three quick flashes every 2 s (until a press or 30 s).
        x = t_ms % 2000
        return GREEN if x < 600 and (x % 200) < 100 else OFF
    return GREEN if _on(t_ms, 2000, 1000) else OFF  # idle: slow blink


def channel(fault, lifting, active, tick):
    """A channel LED's level at a 10 ms tick: on while the channel runs, a distinct blink per
    electrode fault (stim.electrode codes; any other code blinks slowly)."""
    phase = tick % 100  # one second
    if fault == electrode.LIMIT and active:
        # held at the compliance limit: on, with a double dip every second
        return 0 if phase < 8 or 16 <= phase < 24 else 1
    if fault == electrode.OPEN:
        return 1 if (tick // 12) % 2 == 0 else 0  # fast blink, 4 per second
    if fault == electrode.SHORT:
        return 1 if phase < 10 or 20 <= phase < 30 else 0  # double flash every second
    if fault:
        return 1 if phase < 50 else 0  # slow blink: sense, boost or lift fault
    if lifting and active:
        return 0 if phase < 15 else 1  # on, dipping off once a second: electrode lifting
    return 1 if active else 0

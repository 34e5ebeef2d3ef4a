# boot.py runs first after every reset and soft reset (SR-8): make the outputs safe before
# anything else, whatever the previous program left on the pins, and stop the watchdog a soft
# reset leaves running (the app arms it again; after a raw-REPL soft reset nothing would feed
# it). Then finish a firmware update that a reset cut short (stim/update.py), so main.py starts
# one complete firmware. Nothing here may raise: main.py must still run, and the REPL stay
# reachable, whatever state the files are in.
try:
    import stim.safe

    stim.safe.boot_safe()
    stim.safe.watchdog_off()
except Exception:  # noqa: BLE001 - a damaged stim package: every user GPIO low, directly
    try:
        from machine import Pin

        for _n in range(23):
            Pin(_n, Pin.OUT, value=0)
    except Exception:  # noqa: BLE001
        pass
try:
    import stim.update

    stim.update.boot()
except Exception:  # noqa: BLE001 - an unfinished update is retried at the next boot
    pass
try:
    stim.forget("update")  # boot-time only: its code need not stay on the heap
except Exception:  # noqa: BLE001
    pass

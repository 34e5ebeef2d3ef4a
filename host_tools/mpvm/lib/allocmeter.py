"""Heap allocation of a callable, measured on the MicroPython VM.

    from allocmeter import measure
    r = measure(chan._irq_handler, arg=sm)            # an IRQ handler, called as the port would
    r = measure(stimulator.tick)                      # one control-loop cycle

`measure` calls `fn` (with `arg` if given) `warm` times, then `calls` times with the collector
disabled, and reads gc.mem_alloc() before and after: `bytes` is what those calls allocated (in
whole 16-byte GC blocks, as on the device), `per_call` that over `calls`. Then, with `locked`, it
calls `fn` `calls` more times under micropython.heap_lock(), as a hard IRQ runs on the rp2
port: `locked_ok` is False if any call raised MemoryError (the heap is locked), and `error`
names whatever was raised. The loop itself allocates nothing, so any byte counted is `fn`'s.
"""

import gc

import micropython

_NO_ARG = object()


def _calls(fn, arg, n):
    if arg is _NO_ARG:
        for _ in range(n):
            fn()
    else:
        for _ in range(n):
            fn(arg)


def measure(fn, arg=_NO_ARG, calls=100, warm=5, locked=True):
    _calls(fn, arg, warm)
    gc.collect()
    gc.disable()
    try:
        a0 = gc.mem_alloc()
        _calls(fn, arg, calls)
        a1 = gc.mem_alloc()
    finally:
        gc.enable()
    out = {"calls": calls, "bytes": a1 - a0, "per_call": (a1 - a0) / calls}
    if locked:
        err = None
        micropython.heap_lock()
        try:
            _calls(fn, arg, calls)
        except Exception as e:  # noqa: BLE001 - reported, not handled
            err = e
        micropython.heap_unlock()
        out["locked_ok"] = err is None
        out["error"] = None if err is None else "%s: %s" % (type(err).__name__, err)
    return out

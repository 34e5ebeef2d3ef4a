"""MicroPython's own asyncio (vendored in host_tools/rp2sim/mplib) on a virtual clock, and the
MpRuntime loader that runs MicroPython-side source in isolation under CPython."""

from __future__ import annotations

import heapq
import io
import itertools
import sys
import time as pytime
import types
from pathlib import Path

import pytest

from host_tools.rp2sim.mploader import MPLIB_DIR, MpRuntime, load_mplib_shims

pytestmark = pytest.mark.req("FR-17")

TICKS_PERIOD = 1 << 30
TICKS_MAX = TICKS_PERIOD - 1
TICKS_HALFPERIOD = TICKS_PERIOD >> 1


class FakeCpu:
    """Virtual time in µs and a list of scheduled "interrupts" (time, handler)."""

    def __init__(self, start_us: int = 0):
        self.now_us = start_us
        self._irqs: list = []
        self._seq = itertools.count()
        self.idles = 0

    def ticks_us(self) -> int:
        return self.now_us

    def ticks_ms(self) -> int:
        return self.now_us // 1000

    def at(self, t_us: int, handler) -> None:
        heapq.heappush(self._irqs, (t_us, next(self._seq), handler))

    def idle(self, timeout_us: int | None) -> None:
        self.idles += 1
        end = None if timeout_us is None else self.now_us + max(0, timeout_us)
        if self._irqs and (end is None or self._irqs[0][0] <= end):
            t, _, handler = heapq.heappop(self._irqs)
            self.now_us = max(self.now_us, t)
            handler()
            return
        if end is not None:
            self.now_us = end


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


def make_time(cpu: FakeCpu) -> types.ModuleType:
    """MicroPython's `time` ticks functions: 30-bit wrapping ticks, as on the rp2 port."""

    def ticks_diff(a, b):
        return ((a - b + TICKS_HALFPERIOD) & TICKS_MAX) - TICKS_HALFPERIOD

    def ticks_add(a, delta):
        return (a + delta) & TICKS_MAX

    def sleep_ms(ms):
        cpu.now_us += int(ms) * 1000

    return _module(
        "time",
        ticks_ms=lambda: cpu.ticks_ms() & TICKS_MAX,
        ticks_us=lambda: cpu.ticks_us() & TICKS_MAX,
        ticks_diff=ticks_diff,
        ticks_add=ticks_add,
        sleep_ms=sleep_ms,
    )


def make_runtime(cpu: FakeCpu, search_paths=(), stderr=None) -> MpRuntime:
    def print_exception(exc, file=None):
        (file or stderr).write(f"{type(exc).__name__}: {exc}\n")

    stderr = stderr if stderr is not None else io.StringIO()
    mods = {
        "time": make_time(cpu),
        "sys": _module(
            "sys",
            stderr=stderr,
            stdout=stderr,
            print_exception=print_exception,
            implementation=types.SimpleNamespace(name="micropython"),
        ),
        "micropython": _module(
            "micropython", const=lambda x: x, schedule=lambda fn, arg: cpu.at(cpu.now_us, fn)
        ),
    }
    mods.update(load_mplib_shims(cpu))
    return MpRuntime([*search_paths, MPLIB_DIR], mods)


@pytest.fixture
def cpu():
    return FakeCpu()


@pytest.fixture
def asyncio(cpu):
    return make_runtime(cpu).import_module("asyncio")


# ---- asyncio on the virtual clock ------------------------------------------------------------
def test_pure_python_taskqueue_is_used(asyncio):
    assert asyncio.Task.__module__ == "asyncio.task"
    assert asyncio.TaskQueue.__module__ == "asyncio.task"
    assert "_asyncio" not in asyncio.__dict__


def test_sleeps_wake_at_exact_virtual_times(asyncio, cpu):
    woke = []

    async def sleeper(name, ms):
        await asyncio.sleep_ms(ms)
        woke.append((name, cpu.now_us))

    async def main():
        for name, ms in (("a", 10), ("b", 25), ("c", 7), ("d", 0), ("e", 1000)):
            asyncio.create_task(sleeper(name, ms))
        await asyncio.sleep(1.5)
        woke.append(("main", cpu.now_us))

    asyncio.run(main())
    assert woke == [
        ("d", 0),
        ("c", 7_000),
        ("a", 10_000),
        ("b", 25_000),
        ("e", 1_000_000),
        ("main", 1_500_000),
    ]


def test_sleep_started_between_ms_ticks_waits_like_the_port(asyncio, cpu):
    """Tasks wake on the ms tick they were due at; the port waits (timeout - elapsed) ms."""
    cpu.now_us = 1_900  # ticks_ms() == 1
    times = []

    async def main():
        await asyncio.sleep_ms(10)  # due at tick 11; poll(10) waits 10 ms from 1.9 ms
        times.append(cpu.now_us)

    asyncio.run(main())
    assert times == [11_900]


def test_two_tasks_interleave_in_time_order(asyncio, cpu):
    log = []

    async def ticker(name, period_ms, until_ms):
        while cpu.now_us < until_ms * 1000:
            log.append((cpu.now_us // 1000, name))
            await asyncio.sleep_ms(period_ms)

    async def main():
        a = asyncio.create_task(ticker("A", 3, 14))
        b = asyncio.create_task(ticker("B", 5, 14))
        await a
        await b

    asyncio.run(main())
    assert log == [
        (0, "A"),
        (0, "B"),
        (3, "A"),
        (5, "B"),
        (6, "A"),
        (9, "A"),
        (10, "B"),
        (12, "A"),
    ]


def test_sleep_zero_yields_round_robin_without_time_passing(asyncio, cpu):
    log = []

    async def worker(name):
        for i in range(3):
            log.append(name + str(i))
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(worker("a"), worker("b"))

    asyncio.run(main())
    assert log == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert cpu.now_us == 0


def test_event_wakes_waiters(asyncio, cpu):
    log = []

    async def waiter(ev, name):
        r = await ev.wait()
        log.append((name, r, cpu.now_us))

    async def main():
        ev = asyncio.Event()
        t1 = asyncio.create_task(waiter(ev, "w1"))
        t2 = asyncio.create_task(waiter(ev, "w2"))
        await asyncio.sleep_ms(42)
        assert not ev.is_set()
        ev.set()
        await asyncio.gather(t1, t2)
        assert ev.is_set()
        await ev.wait()  # already set: returns at once
        log.append(("again", cpu.now_us))

    asyncio.run(main())
    assert log == [("w1", True, 42_000), ("w2", True, 42_000), ("again", 42_000)]


def test_threadsafeflag_set_from_interrupt_wakes_waiter_at_that_time(asyncio, cpu):
    ticks = []
    woke = []

    async def background():  # keeps the loop busy with timed sleeps meanwhile
        while True:
            await asyncio.sleep_ms(100)
            ticks.append(cpu.now_us)

    async def main():
        flag = asyncio.ThreadSafeFlag()
        cpu.at(1_234_000, flag.set)
        asyncio.create_task(background())
        await flag.wait()
        woke.append(cpu.now_us)
        assert flag.state == 0  # self-clearing

    asyncio.run(main())
    assert woke == [1_234_000]
    assert ticks == [100_000 * i for i in range(1, 13)]


def test_threadsafeflag_alone_idles_until_the_interrupt(asyncio, cpu):
    woke = []

    async def main():
        flag = asyncio.ThreadSafeFlag()
        cpu.at(7_654_321, flag.set)
        await flag.wait()
        woke.append(cpu.now_us)
        flag.set()  # set before wait: returns without waiting
        await flag.wait()
        woke.append(cpu.now_us)

    asyncio.run(main())
    assert woke == [7_654_321, 7_654_321]
    assert cpu.idles == 1  # poll without timeout: one idle(None), no busy polling


def test_interrupt_that_sets_nothing_does_not_wake_the_waiter(asyncio, cpu):
    woke = []

    async def main():
        flag = asyncio.ThreadSafeFlag()
        cpu.at(1_000, lambda: None)
        cpu.at(2_000, flag.set)
        await flag.wait()
        woke.append(cpu.now_us)

    asyncio.run(main())
    assert woke == [2_000]


def test_waiting_forever_raises_a_clear_error(asyncio, cpu):
    async def main():
        await asyncio.ThreadSafeFlag().wait()  # nothing will ever set it

    with pytest.raises(RuntimeError, match="all tasks are waiting forever"):
        asyncio.run(main())


def test_wait_for_ms_times_out_and_returns(asyncio, cpu):
    log = []

    async def slow(ms, value):
        try:
            await asyncio.sleep_ms(ms)
        except asyncio.CancelledError:
            log.append(("slow cancelled", cpu.now_us))
            raise
        return value

    async def main():
        try:
            await asyncio.wait_for_ms(slow(1000, "late"), 50)
        except asyncio.TimeoutError:
            log.append(("timeout", cpu.now_us))
        r = await asyncio.wait_for_ms(slow(20, "ok"), 50)
        log.append((r, cpu.now_us))
        r = await asyncio.wait_for(slow(30, "s"), 0.5)
        log.append((r, cpu.now_us))

    asyncio.run(main())
    assert log == [
        ("slow cancelled", 50_000),
        ("timeout", 50_000),
        ("ok", 70_000),
        ("s", 100_000),
    ]


def test_gather_returns_results_in_order(asyncio, cpu):
    async def job(ms, value):
        await asyncio.sleep_ms(ms)
        return value

    async def boom(ms):
        await asyncio.sleep_ms(ms)
        raise ValueError("boom")

    async def main():
        r = await asyncio.gather(job(30, "a"), job(10, "b"), job(20, "c"))
        assert cpu.now_us == 30_000
        r2 = await asyncio.gather(job(5, 1), boom(1), return_exceptions=True)
        try:
            await asyncio.gather(job(50, 1), boom(2))
        except ValueError as e:
            r3 = ("raised", str(e), cpu.now_us)
        return r, r2, r3

    r, r2, r3 = asyncio.run(main())
    assert r == ["a", "b", "c"]
    assert r2[0] == 1 and type(r2[1]).__name__ == "ValueError"
    assert r3 == ("raised", "boom", 37_000)


def test_cancel_a_sleeping_task(asyncio, cpu):
    log = []

    async def sleeper():
        try:
            await asyncio.sleep_ms(10_000)
        except asyncio.CancelledError:
            log.append(("cancelled", cpu.now_us))
            raise
        finally:
            log.append(("finally", cpu.now_us))

    async def main():
        t = asyncio.create_task(sleeper())
        await asyncio.sleep_ms(10)
        assert t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            log.append(("await raised", cpu.now_us))
        assert t.done()
        assert not t.cancel()  # already finished

    asyncio.run(main())
    assert log == [("cancelled", 10_000), ("finally", 10_000), ("await raised", 10_000)]


def test_cancel_a_task_waiting_on_threadsafeflag(asyncio, cpu):
    log = []

    async def waiter(flag):
        try:
            await flag.wait()
        except asyncio.CancelledError:
            log.append(("cancelled", cpu.now_us))

    async def main():
        flag = asyncio.ThreadSafeFlag()
        t = asyncio.create_task(waiter(flag))
        await asyncio.sleep_ms(5)
        t.cancel()
        await t
        assert not asyncio.core._io_queue.map  # unregistered from the poller

    asyncio.run(main())
    assert log == [("cancelled", 5_000)]


def test_exception_in_awaited_task_propagates_from_run(asyncio, cpu):
    async def bad():
        await asyncio.sleep_ms(3)
        raise ValueError("bad thing")

    async def main():
        await asyncio.create_task(bad())

    with pytest.raises(ValueError, match="bad thing"):
        asyncio.run(main())
    assert cpu.now_us == 3_000

    async def main_raises():
        await asyncio.sleep_ms(1)
        raise KeyError("k")

    with pytest.raises(KeyError):
        asyncio.run(main_raises())


def test_unretrieved_task_exception_goes_to_the_exception_handler(cpu):
    stderr = io.StringIO()
    asyncio = make_runtime(cpu, stderr=stderr).import_module("asyncio")

    async def bad():
        raise OSError(5, "EIO")

    async def main():
        asyncio.create_task(bad())
        await asyncio.sleep_ms(10)
        return "done"

    assert asyncio.run(main()) == "done"
    out = stderr.getvalue()
    assert "Task exception wasn't retrieved" in out
    assert "OSError" in out


def test_lock_serialises_tasks(asyncio, cpu):
    log = []

    async def user(lock, name):
        async with lock:
            log.append((name, "in", cpu.now_us))
            await asyncio.sleep_ms(10)
            log.append((name, "out", cpu.now_us))

    async def main():
        lock = asyncio.Lock()
        await asyncio.gather(user(lock, "a"), user(lock, "b"))
        assert not lock.locked()

    asyncio.run(main())
    assert log == [
        ("a", "in", 0),
        ("a", "out", 10_000),
        ("b", "in", 10_000),
        ("b", "out", 20_000),
    ]


def test_new_event_loop_and_run_until_complete(asyncio, cpu):
    async def job():
        await asyncio.sleep_ms(5)
        return 7

    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(job()) == 7
    assert asyncio.get_event_loop() is loop

    async def stopper():
        await asyncio.sleep_ms(10)
        loop.stop()

    loop.create_task(stopper())
    loop.run_forever()
    assert cpu.now_us == 15_000


def test_ticks_wrap_around_2_pow_30_ms():
    start_us = (TICKS_PERIOD - 20) * 1000  # ticks_ms() wraps 20 ms from now
    cpu = FakeCpu(start_us)
    asyncio = make_runtime(cpu).import_module("asyncio")
    woke = []

    async def main():
        for _ in range(3):
            await asyncio.sleep_ms(15)
            woke.append(cpu.now_us - start_us)

    asyncio.run(main())
    assert woke == [15_000, 30_000, 45_000]


def test_ten_virtual_minutes_of_a_10ms_task_run_fast(asyncio, cpu):
    count = 0

    async def periodic():
        nonlocal count
        while True:
            await asyncio.sleep_ms(10)
            count += 1

    async def main():
        asyncio.create_task(periodic())
        await asyncio.sleep(600)

    t0 = pytime.perf_counter()
    asyncio.run(main())
    wall = pytime.perf_counter() - t0
    print(f"\n10 virtual minutes of a 10 ms task: {wall:.3f} s wall ({count} wakeups)")
    assert cpu.now_us == 600_000_000
    # The last tick and main's wakeup are both due at t=600 s; main was queued first, so the
    # run ends before that last tick.
    assert count == 59_999
    assert wall < 30


# ---- the loader -------------------------------------------------------------------------------
def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_runtimes_are_isolated(tmp_path, cpu):
    _write(
        tmp_path, {"counter.py": "n = 0\n\ndef bump():\n    global n\n    n += 1\n    return n\n"}
    )
    before = set(sys.modules)
    rt1 = make_runtime(cpu, [tmp_path])
    rt2 = make_runtime(cpu, [tmp_path])
    c1, c2 = rt1.import_module("counter"), rt2.import_module("counter")
    assert c1 is not c2
    c1.bump()
    c1.bump()
    assert (c1.n, c2.n) == (2, 0)
    assert rt1.import_module("counter") is c1  # cached within a runtime
    a1, a2 = rt1.import_module("asyncio"), rt2.import_module("asyncio")
    assert a1 is not a2 and a1.core is not a2.core and a1.Event is not a2.Event
    assert rt1.modules["asyncio.core"] is a1.core
    # Python's own sys.modules is never touched (CPython's asyncio may be there: not ours).
    assert set(sys.modules) - before <= {"json", "errno"}
    assert "counter" not in sys.modules
    assert sys.modules.get("asyncio") is not a1


def test_relative_imports_in_a_package(tmp_path, cpu):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .a import f\nfrom . import b\nNAME = 'pkg'\n",
            "pkg/a.py": "def f():\n    return 'f'\n",
            "pkg/b.py": "from .sub import c\nfrom .sub.c import G\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": "from .. import a\nfrom ..a import f\nG = f() + '!'\n",
            "nsdir/m.py": "X = 1\n",  # a directory without __init__.py is a package too
            "user.py": "import pkg.sub.c\nimport nsdir.m\nTOP = pkg\nC = pkg.sub.c\n",
        },
    )
    rt = make_runtime(cpu, [tmp_path])
    user = rt.import_module("user")
    pkg = rt.modules["pkg"]
    assert user.TOP is pkg and user.C is rt.modules["pkg.sub.c"]
    assert pkg.f() == "f" and pkg.b.G == "f!" and pkg.b.c.a is pkg.a
    assert rt.import_module("nsdir.m").X == 1
    assert rt.import_module("pkg.sub.c") is user.C


def test_forbidden_import_gives_a_clear_error(tmp_path, cpu):
    _write(tmp_path, {"net.py": "import socket\n", "ok.py": "import json, math, struct\n"})
    rt = make_runtime(cpu, [tmp_path])
    with pytest.raises(ImportError, match="no module named 'socket' on MicroPython"):
        rt.import_module("net")
    assert "net" not in rt.modules  # a failed import is not left half-done
    with pytest.raises(ImportError, match="no module named '_asyncio' on MicroPython"):
        rt.import_module("_asyncio")
    with pytest.raises(ImportError, match="no module named 'threading' on MicroPython"):
        rt.import_module("threading")
    assert rt.import_module("ok").json.dumps([1]) == "[1]"


def test_import_time_in_loaded_module_gets_the_fake(tmp_path, cpu):
    _write(
        tmp_path,
        {
            "uses_time.py": (
                "import time\nfrom time import ticks_ms, ticks_diff\n"
                "T0 = ticks_ms()\n"
                "def later():\n    time.sleep_ms(250)\n    return ticks_diff(ticks_ms(), T0)\n"
            )
        },
    )
    cpu.now_us = 5_000_000
    rt = make_runtime(cpu, [tmp_path])
    m = rt.import_module("uses_time")
    assert m.time is rt.builtin_modules["time"] and m.time is not pytime
    assert m.T0 == 5_000
    assert m.later() == 250
    assert cpu.now_us == 5_250_000


def test_exec_file_runs_as_main(tmp_path, cpu):
    _write(
        tmp_path,
        {
            "main.py": (
                "import asyncio\nimport helper\nout = []\n"
                "async def go():\n    await asyncio.sleep_ms(5)\n    out.append(helper.X)\n"
                "if __name__ == '__main__':\n    asyncio.run(go())\n"
            ),
            "helper.py": "X = 'helped'\n",
        },
    )
    rt = make_runtime(cpu, [tmp_path])
    main = rt.exec_file(tmp_path / "main.py", "__main__")
    assert main.out == ["helped"] and cpu.now_us == 5_000
    assert rt.modules["__main__"] is main


def test_select_shim_binds_to_a_runtime_cpu_module(cpu):
    """Without a `select` built-in, mplib/select.py is imported and binds to `_cpu`."""
    mods = {
        "time": make_time(cpu),
        "sys": _module("sys", stderr=io.StringIO()),
        "_cpu": _module("_cpu", cpu=cpu),
    }
    rt = MpRuntime([MPLIB_DIR], mods)
    asyncio = rt.import_module("asyncio")
    assert rt.modules["select"]._cpu is cpu

    async def main():
        flag = asyncio.ThreadSafeFlag()
        cpu.at(3_000, flag.set)
        await flag.wait()

    asyncio.run(main())
    assert cpu.now_us == 3_000

"""A whole simulated unit: the real firmware (boot.py, main.py, stim/) on the simulated RP2040
and board model, driven in lock-step by a test, a scenario or the terminal simulator.

The firmware runs on its own thread, exactly as it would on the chip: `boot.py`, then `main.py`,
then (when main returns) an idle REPL. Virtual time only moves inside that thread. A caller says
`unit.run_until(t)`: the unit schedules a pause event at t, lets the firmware thread run, and
waits until the thread reaches the pause. Only one of the two threads ever runs at a time, so a
run is deterministic.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from pathlib import Path

from ..boards import load_board
from ..protocol import FIRMWARE_DIR, LOG_PREFIX, REPLY_PREFIX, json_line
from ..rp2sim.chip import PORT_BOOT_HZ, Chip, ChipReset, SimulationStall
from ..rp2sim.fakes import build_modules
from ..rp2sim.mploader import MPLIB_DIR, MpRuntime
from ..rp2sim.vfs import FlashFs
from .board_model import BoardModel

USB_PACKET = 64  # bytes per full-speed bulk packet, one per 1 ms frame


# What the rp2 port's friendly REPL prints when main.py has ended (pyexec_friendly_repl: the
# banner, its build date left out here, and the prompt).
REPL_BANNER = (
    "MicroPython v1.29.0; Raspberry Pi Pico with RP2040\r\n"
    'Type "help()" for more information.\r\n>>> '
)


class _External:
    """A scheduled stimulus from outside the chip: survives resets of the chip."""

    _survives_reset = True

    def __init__(self, fn: Callable, *args):
        self.fn, self.args = fn, args

    def __call__(self, *_):
        self.fn(*self.args)


class _Shutdown(BaseException):
    pass


class _SoftReset(BaseException):
    pass


class _RawSoftReset(BaseException):
    pass


class Console(io.TextIOBase):
    """The USB serial console as the host sees it: text lines, log lines parsed."""

    def __init__(self, unit: SimulatedUnit):
        self.unit = unit
        self._partial = ""
        self.lines: list[str] = []
        self.logs: list[dict] = []
        self.replies: list[dict] = []  # host-command replies: lines starting {"r":
        self.listeners: list[Callable[[str, dict | None], None]] = []

    def write(self, s: str) -> int:
        self._partial += s
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            self._line(line.rstrip("\r"))
        return len(s)

    def _line(self, line: str) -> None:
        self.lines.append(line)
        rec = json_line(line, LOG_PREFIX)
        if rec is not None:
            rec["sim_t"] = self.unit.chip.t_s
            self.logs.append(rec)
        else:
            reply = json_line(line, REPLY_PREFIX)
            if reply is not None:
                reply["sim_t"] = self.unit.chip.t_s
                self.replies.append(reply)
        for fn in self.listeners:
            fn(line, rec)

    def events(self, name: str) -> list[dict]:
        return [r for r in self.logs if r.get("ev") == name]


class SimulatedUnit:
    def __init__(
        self,
        board: str | dict = "pico",
        *,
        files: dict[str, bytes | str] | None = None,
        load_ohm: dict[int, float] | None = None,
        battery_v: float = 3.9,
        firmware_dir: Path = FIRMWARE_DIR,
        record_pulses: bool = True,
        seed: int = 0,
        stall_timeout_s: float = 60.0,
        fast_forward: bool | None = None,
    ):
        self.board = load_board(board) if isinstance(board, str | Path) else board
        # fast_forward: replay steady PIO loops (None: RP2SIM_FAST_FORWARD, default on)
        # Powered up at the port's clock: the firmware sets the board's (stim.hw.use_clock).
        self.chip = Chip(self.board["sysclk_hz"], fast_forward=fast_forward, boot_hz=PORT_BOOT_HZ)
        self.model = BoardModel(
            self.chip,
            self.board,
            load_ohm=load_ohm,
            battery_v=battery_v,
            record_pulses=record_pulses,
            seed=seed,
        )
        if files is None:
            files = {"/board.json": json.dumps(self.board)}
        self.fs = FlashFs(files)
        self.fs.busy = self._flash_busy
        self.firmware_dir = Path(firmware_dir)
        self.console = Console(self)
        # The USB CDC receive buffer: what the host sent that the firmware has not read yet
        # (sys.stdin / sys.stdin.buffer read from it; see send()).
        self.usb_rx = bytearray()
        self.boots = 0
        self.runtime: MpRuntime | None = None
        self.state = "off"  # off / boot / main / repl
        self.stall_timeout_s = stall_timeout_s
        self._go = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closing = False

    # ---- lifecycle ----------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._thread_main, daemon=True, name="fw")
            self._thread.start()

    def _thread_main(self) -> None:
        self._go.wait()
        self._go.clear()
        try:
            run_main = True
            while not self._closing:
                try:
                    self._boot_once(run_main)
                    self.state = "repl"
                    self._idle()
                except ChipReset:
                    run_main = True
                except _SoftReset:
                    self._soft_reset_hardware()
                    run_main = True
                except _RawSoftReset:
                    # The raw REPL's soft reset (mpremote, stimctl flash): boot.py runs, main.py
                    # does not (ports/rp2/main.c runs main.py in the friendly REPL only).
                    self._soft_reset_hardware()
                    run_main = False
        except _Shutdown:
            pass
        except BaseException as e:  # noqa: BLE001 - hand any simulator failure to the caller
            self._error = e
        finally:
            self.state = "dead"
            self._paused.set()

    def _boot_once(self, run_main: bool = True) -> None:
        self.boots += 1
        self.usb_rx.clear()  # the USB device restarts with the chip
        modules = build_modules(self.chip, self.fs, self.console, self.usb_rx)
        self.runtime = MpRuntime(
            [self.firmware_dir, MPLIB_DIR],
            modules,
            builtins_overrides={"print": self._print, "open": self.fs.open},
            cpu=self.chip.cpu,
        )
        self.state = "boot"
        try:
            self.chip.interrupt_char = 3  # pyexec: Ctrl-C interrupts each file it runs
            self._run_file("boot.py", "boot")
            if run_main:
                self.state = "main"
                self.chip.interrupt_char = 3
                self._run_file("main.py", "__main__")
        except (ChipReset, _SoftReset, _RawSoftReset, _Shutdown):
            raise
        except SystemExit:
            raise _SoftReset() from None
        except KeyboardInterrupt:
            self.console.write("KeyboardInterrupt\n")
        except Exception as e:  # noqa: BLE001 - an uncaught error ends main, as on the board
            self.console.write("Traceback: %s: %s\n" % (type(e).__name__, e))

    def _run_file(self, name: str, module_name: str) -> None:
        path = self.firmware_dir / name
        if path.exists():
            assert self.runtime is not None
            self.runtime.exec_file(path, module_name)

    def _flash_busy(self, cpu_us: float, erases: int, pages: int, path: str) -> None:
        """A file operation's time on the chip: littlefs in C (busy, interrupts on), then each
        erase and each program of up to four pages (littlefs's 1 KB cache) in the boot ROM,
        interrupts masked (flashmodel.py)."""
        chip = self.chip
        cpu = chip.cpu
        timing = self.fs.timing
        cpu.sync()
        if cpu_us:
            cpu.work(chip.us_to_cycles(cpu_us) if cpu.scale else 0)
        for _ in range(erases):
            c = chip.us_to_cycles(timing.erase_us)
            self.fs.rom_log.append((chip.now, "erase", path, c))
            cpu.rom(c)
        while pages > 0:
            n = min(4, pages)
            pages -= n
            c = chip.us_to_cycles(timing.page_us * n)
            self.fs.rom_log.append((chip.now, "program", path, c))
            cpu.rom(c)

    def _print(self, *args, sep=" ", end="\n", file=None) -> None:
        cpu = self.chip.cpu
        cpu.sync()
        out = file if file is not None else self.console
        text = sep.join(str(a) for a in args) + end
        out.write(text)
        cpu.spend("print_base")
        cpu.spend("print_byte", len(text))

    def _idle(self) -> None:
        """The REPL waiting for input: hardware keeps running, nothing else happens. It greets
        the host as the port's friendly REPL does (pyexec_friendly_repl) and reads Ctrl-C as a
        character of its own (a new prompt)."""
        chip = self.chip
        chip.interrupt_char = 3  # the sim's REPL takes Ctrl-C through the same path
        self.console.write(REPL_BANNER)
        while True:
            try:
                chip.cpu.sleep_cycles(chip.cycles(3600))
            except KeyboardInterrupt:
                self.console.write("\r\n>>> \r\n")

    def _soft_reset_hardware(self) -> None:
        """What a soft reset (Ctrl-D) does to the peripherals on the rp2 port.

        The heap is cleared and the state machines stopped, but pins keep their levels (PIO and
        PWM pins stay where they were), the watchdog keeps running and reset_cause() keeps its
        value. boot.py must therefore make the outputs safe again. Every machine.Timer is gone
        (soft_timer_deinit): their callbacks belong to the old heap (fakes.Timer checks the
        generation), and the VM's scheduler starts empty.
        """
        # ports/rp2/main.c, soft_reset_exit: the banner first, then the peripherals' deinit.
        self.console.write("MPY: soft reboot\n")
        chip = self.chip
        chip.generation += 1
        chip.cpu.reset()
        chip.pin_irqs.clear()
        chip.pio_irq_handlers.clear()
        for block in chip.pio:
            for sm in block.sms:
                sm.set_enabled(False, chip.now)
        # machine_pwm_deinit_all() clears every slice's freq_set but, in the port source this
        # follows, disables machine_pwm_obj[i].slice for i < 8, i.e. slices 0..3 only: slices
        # 4..7 keep running through a soft reset (PORT_NOTES.md, "machine.PWM").
        for sl in chip.pwm:
            sl.freq_set = False
        for i in range(8):
            sl = chip.pwm[i // 2]
            if sl.enabled:
                sl.set_enabled(False)

    def _pause(self) -> None:
        self._paused.set()
        self._go.wait()
        self._go.clear()
        if self._closing:
            raise _Shutdown()

    # ---- driving ------------------------------------------------------------------------
    def run_until(self, t_s: float) -> None:
        """Run the firmware and hardware until simulated time t_s (seconds since power-on)."""
        if self._error is not None:
            raise self._error
        target = max(self.chip.now, self.chip.cycles(t_s))
        self.chip.schedule(target, _External(self._pause))
        self._ensure_thread()
        self._paused.clear()
        self._go.set()
        if not self._paused.wait(self.stall_timeout_s):
            raise SimulationStall(
                "the firmware has not let simulated time pass for %.0f s of wall time "
                "(at t=%.6f s): an endless loop without sleep?"
                % (self.stall_timeout_s, self.chip.t_s)
            )
        if self._error is not None:
            raise self._error

    def run_for(self, seconds: float) -> None:
        self.run_until(self.chip.t_s + seconds)

    def at(self, t_s: float, fn: Callable, *args) -> None:
        """Schedule a stimulus (any callable) at simulated time t_s."""
        self.chip.schedule(self.chip.cycles(t_s), _External(fn, *args))

    def answer_hosts(self, button: str | None = "plus", after_s: float = 1.0) -> None:
        """A wearer who answers every host's question (the unit's `consent` log line, state
        `asked`, SR-15) with a press of `button` (plus: yes, minus: no) `after_s` later; None:
        stop answering."""

        def answer(_line: str, rec: dict | None) -> None:
            if rec and rec.get("ev") == "consent" and rec.get("state") == "asked":
                self.press(button, at=self.chip.t_s + after_s)

        old = getattr(self, "_answerer", None)
        if old is not None:
            self.console.listeners.remove(old)
        self._answerer = answer if button else None
        if button:
            self.console.listeners.append(answer)

    def press(self, name: str, at: float | None = None, hold_s: float = 0.1) -> None:
        t = self.chip.t_s if at is None else at
        self.at(t, self.model.press, name)
        self.at(t + hold_s, self.model.release, name)

    def interrupt(self, at: float | None = None) -> None:
        """Ctrl-C from the host: KeyboardInterrupt raised in whatever the firmware is doing."""
        t = self.chip.t_s if at is None else at
        self.at(t, self.chip.cpu.raise_async, KeyboardInterrupt)

    def send(self, data: bytes | str, at: float | None = None) -> None:
        """Bytes from the host on the USB serial console, arriving from simulated time `at`
        (default now) as USB full-speed does: one packet of up to USB_PACKET bytes per 1 ms
        frame, each raising the USB interrupt (a CPU waiting in poll wakes). A Ctrl-C byte
        (0x03) does what the rp2 port's CDC receive callback does while code runs: it empties
        the receive buffer and raises KeyboardInterrupt, unless the firmware turned that off
        (micropython.kbd_intr(-1)): then it is a byte like any other."""
        b = data.encode() if isinstance(data, str) else bytes(data)
        t = self.chip.t_s if at is None else at
        for i in range(0, len(b), USB_PACKET):
            self.at(t + i // USB_PACKET * 0.001, self._usb_rx, b[i : i + USB_PACKET])

    def _usb_rx(self, packet: bytes) -> None:
        self.chip.irq_serviced += 1
        for c in packet:
            if c == self.chip.interrupt_char:
                self.usb_rx.clear()
                self.chip.cpu.raise_async(KeyboardInterrupt)
                return
            self.usb_rx.append(c)

    def soft_reset(self, at: float | None = None, raw: bool = False) -> None:
        """Ctrl-D: at the friendly REPL (boot.py and main.py run again), or `raw`, the raw
        REPL's soft reset that mpremote and `stimctl flash` use (boot.py only)."""
        t = self.chip.t_s if at is None else at
        self.at(t, self.chip.cpu.raise_async, _RawSoftReset if raw else _SoftReset)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._closing = True
            self.chip.schedule(self.chip.now, _External(lambda: None))
            self._go.set()
            self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- observation --------------------------------------------------------------------
    def pin(self, n: int) -> int:
        return self.chip.level(n)

    def pin_trace(self, n: int, t0_s: float, t1_s: float, dt_s: float = 0.01) -> list[int]:
        """Pin n's level every dt_s from t0_s to t1_s, running the unit up to each sample."""
        out = []
        t = t0_s
        while t < t1_s:
            self.run_until(t)
            out.append(self.pin(n))
            t += dt_s
        return out

    def logs(self, ev: str | None = None) -> list[dict]:
        return self.console.logs if ev is None else self.console.events(ev)

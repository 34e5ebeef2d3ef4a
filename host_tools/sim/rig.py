"""A simulated board with firmware modules importable one by one: for tests, the benchmark and
waveform plots that exercise a part of the firmware (the pulse engine, say) without booting the
whole app. `SimulatedUnit` is the whole-unit equivalent."""

from __future__ import annotations

import io
from pathlib import Path

from ..boards import load_board
from ..rp2sim.chip import Chip
from ..rp2sim.fakes import build_modules
from ..rp2sim.mploader import MPLIB_DIR, MpRuntime
from ..rp2sim.vfs import FlashFs
from .board_model import BoardModel
from .unit import FIRMWARE_DIR


class FirmwareRig:
    def __init__(
        self,
        board: str | dict = "pico",
        *,
        load_ohm: dict[int, float] | None = None,
        battery_v: float = 3.9,
        record_pulses: bool = True,
        firmware_dir: Path = FIRMWARE_DIR,
    ):
        self.board = load_board(board) if isinstance(board, str | Path) else board
        self.chip = Chip(self.board["sysclk_hz"])
        loads = load_ohm or {i + 1: 1000.0 for i in range(len(self.board["channels"]))}
        self.model = BoardModel(
            self.chip, self.board, load_ohm=loads, battery_v=battery_v, record_pulses=record_pulses
        )
        self.console = io.StringIO()
        self.modules = build_modules(self.chip, FlashFs(), self.console)
        self.machine = self.modules["machine"]
        self.runtime = MpRuntime([Path(firmware_dir), MPLIB_DIR], self.modules, cpu=self.chip.cpu)

    def import_module(self, name: str):
        return self.runtime.import_module(name)

    def boost(self, on: bool = True, settle_s: float = 0.05) -> None:
        m = self.machine
        m.Pin(self.board["boost_en"], m.Pin.OUT, value=1 if on else 0)
        self.run_for(settle_s)

    def channel(self, index: int = 0):
        """A firmware pulse-engine Channel for channel `index` (0-based)."""
        eng = self.import_module("stim.engine")
        return eng.Channel(
            index, self.board["channels"][index], self.board, self.board["sysclk_hz"]
        )

    def run_for(self, seconds: float) -> None:
        self.chip.advance_to(self.chip.now + self.chip.cycles(seconds))

    @property
    def t_s(self) -> float:
        return self.chip.t_s

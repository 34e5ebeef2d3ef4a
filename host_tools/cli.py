"""stimctl: one command for the laptop side of the stimulator.

stimctl boards [--check FILE]     list the board definitions, or validate one
stimctl devices                   list serial ports, marking MicroPython RP2040 boards
stimctl flash [--port P] [--board B] [--mpy] [--force]   firmware + board file, verified, reset
stimctl logs [--port P] [--json] [--save F]    stream the unit's log lines (--plot F: draw one)
stimctl runtime [--uf2 FILE]      install MicroPython on the board through its USB bootloader
stimctl send [--port P] CMD ...   one host command to the running firmware, its reply
stimctl console [--port P]        the log and a command prompt on one connection
stimctl history [--port P] [--plot F]   the unit's session history as a table; adherence plot
stimctl sim [--board B]           the firmware on the simulated board, in the terminal
stimctl sim --scenario F [--trace T.jsonl]     run a scripted scenario headless, with a trace
stimctl vboard [--board B]        a virtual board (MicroPython's VM) on a pseudo-terminal
stimctl plot --program P -o F     draw a program's waveform, run on the simulated board
"""

from __future__ import annotations

import argparse
import sys

from . import boards
from .device import fail


def cmd_boards(args) -> int:
    if args.check:
        try:
            b = boards.load_board(args.check)
        except boards.BoardError as e:
            return fail("%s: %s" % (args.check, e), 1)
        print("%s: ok (%s, %d channels)" % (args.check, b["name"], len(b["channels"])))
        return 0
    for name in boards.board_names():
        b = boards.load_board(name)
        print("%-14s %d channels  %s" % (name, len(b["channels"]), b.get("description", "")))
    return 0


def _dio():
    """Every device I/O of the commands goes through this (tests substitute a fake)."""
    from .device import DeviceIO

    return DeviceIO()


def cmd_devices(args) -> int:
    ports = _dio().ports()
    if not ports:
        print("no serial ports found: plug the board in with a data cable (not charge-only)")
        return 0
    for p in sorted(ports, key=lambda p: p.device):
        mark = ("  <- " + p.label) if p.is_rp2040 else ""
        print("%-20s %s%s" % (p.device, p.description or "", mark))
    return 0


def cmd_flash(args) -> int:
    from rich.console import Console

    from . import flash
    from .device import DeviceError

    err = Console(stderr=True)

    def progress(total):
        return flash.RichProgress(total, console=err)

    try:
        rep = flash.flash(
            _dio(),
            args.port,
            board=args.board,
            mpy=args.mpy,
            progress=progress,
            say=print,
            force=args.force,
        )
    except DeviceError as e:
        return fail(e)
    if rep.finished_earlier:
        print("finished a switch-over an earlier flash left on the board")
    print(
        "%d file(s) written (%d bytes), %d unchanged, %d removed; all verified by sha256"
        % (len(rep.written), rep.bytes_written, len(rep.skipped), len(rep.removed))
    )
    print("%s reset: the new firmware is starting (`stimctl logs` to watch it)" % rep.port)
    return 0


def cmd_logs(args) -> int:
    from . import logstream

    return logstream.main(args, _dio())


def cmd_runtime(args) -> int:
    from . import runtime

    return runtime.main(args, _dio())


def cmd_send(args) -> int:
    from . import link

    return link.send_main(args, _dio())


def cmd_console(args) -> int:
    from . import console

    return console.run_console(args, _dio())


def cmd_program(args) -> int:
    from . import progtool

    return progtool.main(args, _dio())


def cmd_history(args) -> int:
    from . import history

    return history.main(args, _dio())


def cmd_sim(args) -> int:
    if args.scenario:
        from .sim.runner import main as run_scenario

        return run_scenario(args)
    if args.trace:
        return fail("--trace needs --scenario FILE", 1)
    from .tui import run_interactive

    return run_interactive(args.board or "pico")


def cmd_vboard(args) -> int:
    from . import vboard

    return vboard.main(args)


def cmd_plot(args) -> int:
    from .plot import PlotError, plot_program

    try:
        out = plot_program(
            args.program, args.out, board=args.board, window_s=args.window, channel=args.channel
        )
    except PlotError as e:
        return fail(str(e), 1)
    print("wrote %s" % out)
    return 0


class _Version(argparse.Action):
    """--version: the package and the checkout (git describe, commit), looked up only when
    asked for."""

    def __call__(self, parser, namespace, values, option_string=None):
        from .identity import host_tools

        print(host_tools())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stimctl", description="Host tools for the wearable TENS/EMS unit."
    )
    p.add_argument(
        "--version", action=_Version, nargs=0, help="print the host tools' version and exit"
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("boards", help="list board definitions or validate one")
    s.add_argument("--check", metavar="FILE", help="validate a board JSON file")
    s.set_defaults(fn=cmd_boards)
    s = sub.add_parser("devices", help="list serial ports, marking RP2040 boards")
    s.set_defaults(fn=cmd_devices)
    port_help = "serial port (default: the only RP2040 board connected)"
    s = sub.add_parser("flash", help="copy the firmware and board file to a board, then reset it")
    s.add_argument("--port", help=port_help)
    s.add_argument("--board", default="pico", help="board name or JSON file (default pico)")
    s.add_argument("--mpy", action="store_true", help="install the .mpy build from build/mpy")
    s.add_argument(
        "--force", action="store_true", help="flash even if the board reports other hardware"
    )
    s.set_defaults(fn=cmd_flash)
    s = sub.add_parser("logs", help="stream the unit's log lines, or plot a saved log")
    s.add_argument("--port", help=port_help)
    s.add_argument("--json", action="store_true", help="print the log records as JSON Lines")
    s.add_argument("--save", metavar="FILE", help="also append the records to FILE (JSON Lines)")
    s.add_argument("--level", choices=["debug", "info", "warn", "error"], help="minimum level")
    s.add_argument(
        "--event", action="append", metavar="EV", help="only these events (repeat, or a,b,c)"
    )
    s.add_argument("--raw", action="store_true", help="also show console lines that are not log")
    s.add_argument("--plot", metavar="FILE", help="plot a saved log (JSON Lines) instead")
    s.add_argument("-o", "--out", help="output PNG for --plot (default FILE with .png)")
    s.set_defaults(fn=cmd_logs)
    s = sub.add_parser("runtime", help="install MicroPython on the board (its USB bootloader)")
    s.add_argument("--port", help=port_help)
    s.add_argument("--uf2", metavar="FILE", help="MicroPython .uf2 to install (default: download)")
    s.add_argument("--drive", metavar="DIR", help="the RPI-RP2 drive's mount point")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each step")
    s.set_defaults(fn=cmd_runtime)
    s = sub.add_parser("send", help="send one host command to the running firmware")
    s.add_argument("--port", help=port_help)
    s.add_argument("--json", action="store_true", help="print the reply lines as JSON")
    s.add_argument(
        "--hold",
        type=float,
        nargs="?",
        const=0.0,
        metavar="S",
        help="then keep the session alive for S seconds (default: until Ctrl-C) and stop it",
    )
    s.add_argument("words", nargs="+", metavar="CMD", help="e.g. status, start ems_relax")
    s.set_defaults(fn=cmd_send)
    s = sub.add_parser("console", help="stream the log and send host commands, one connection")
    s.add_argument("--port", help=port_help)
    s.add_argument("--save", metavar="FILE", help="also append the records to FILE (JSON Lines)")
    s.add_argument("--level", choices=["debug", "info", "warn", "error"], help="minimum level")
    s.add_argument(
        "--event", action="append", metavar="EV", help="only these events (repeat, or a,b,c)"
    )
    s.set_defaults(fn=cmd_console)
    s = sub.add_parser("program", help="custom programs on the unit: add FILE, list, remove ID")
    s.add_argument("--port", help=port_help)
    ps = s.add_subparsers(dest="op", required=True)
    a = ps.add_parser("add", help="install a program file (JSON, the built-ins' fields)")
    a.add_argument("file", metavar="FILE")
    ps.add_parser("list", help="the installed programs")
    r = ps.add_parser("remove", help="remove an installed program")
    r.add_argument("id", metavar="ID")
    s.set_defaults(fn=cmd_program)

    s = sub.add_parser("history", help="the unit's session history; --plot draws adherence")
    s.add_argument("--port", help=port_help)
    s.add_argument("--plot", metavar="PNG", help="draw minutes per day into this PNG")
    s.add_argument("--json", action="store_true", help="print the records as JSON Lines")
    s.set_defaults(fn=cmd_history)
    s = sub.add_parser("sim", help="run the firmware on the simulated board")
    s.add_argument(
        "--board", help="board name or JSON file (default pico, or the scenario's own board)"
    )
    s.add_argument("--scenario", metavar="FILE", help="run this scenario headless (JSON)")
    s.add_argument("--trace", metavar="OUT", help="write the trace as JSON Lines ('-': stdout)")
    s.set_defaults(fn=cmd_sim)
    s = sub.add_parser("vboard", help="a virtual board on a pseudo-terminal, until Ctrl-C")
    s.add_argument("--board", default="pico", help="board name or JSON file (default pico)")
    s.add_argument("--flash", metavar="FILE", help="host file holding the board's flash")
    s.add_argument("--fresh", action="store_true", help="start with an empty flash")
    s.set_defaults(fn=cmd_vboard)
    s = sub.add_parser("plot", help="draw a program's waveform from the simulated board (PNG)")
    s.add_argument("--board", default="pico", help="board name or JSON file (default pico)")
    s.add_argument("--program", required=True, help="program id, e.g. tens_burst")
    s.add_argument("-o", "--out", required=True, help="output PNG file")
    s.add_argument("--window", type=float, default=1.0, help="seconds to draw (default 1.0)")
    s.add_argument("--channel", type=int, default=1, help="channel, from 1 (default 1)")
    s.set_defaults(fn=cmd_plot)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

"""The `egoworld` command line.

Each subcommand lives in its own module under `egoworld.commands` and exposes
`register(subparsers)`, which adds an argparse parser whose default `func` runs it.
Modules are discovered, so adding a command means adding one file.
Heavy imports (torch, diffusers, mujoco, open3d) happen inside the command's `run`, after its
arguments are checked, so `egoworld --help` and argument errors stay fast.

Library code raises; this module reports: a `ValueError`, `OSError` (`FileNotFoundError`,
`PermissionError`, `IsADirectoryError`, …), `KeyError` or `EgoworldError` becomes one line on
stderr and exit code 2, and so does an argument error (no usage block: `egoworld CMD --help`
shows it). The argument types below (`int_in`, `float_in`, `device_name`) check numeric ranges
while parsing.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import pkgutil
import re
import sys
import textwrap
from pathlib import Path

from egoworld import commands
from egoworld.errors import EgoworldError

_REPORTED = (EgoworldError, ValueError, OSError, KeyError)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: `PROG: error: MESSAGE (see PROG --help)`."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


class HelpFormatter(argparse.HelpFormatter):
    """Wraps each line of a description on its own (line breaks kept); indented lines (examples) stay."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines: list[str] = []
        for line in text.splitlines():
            if not line.strip() or line.startswith(" "):
                lines.append(indent + line)
            else:
                lines.extend(textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent))
        return "\n".join(lines)


def add_command(subparsers, name: str, *, help: str, description: str, examples: str, **kw):
    """A subcommand parser with a description and an `examples:` epilog (every command has both)."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + "\n".join("  " + line for line in examples.strip().splitlines()),
        formatter_class=HelpFormatter,
        **kw,
    )


def int_in(lo: int, hi: int | None = None):
    """argparse type: an integer in [lo, hi] (hi None: no upper bound)."""
    expect = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer; expected {expect}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value}; expected {expect}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open=False):
    """argparse type: a finite number in the interval (bounds None = unbounded; *_open excludes them)."""
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    expect = "a finite number" + (f" {' and '.join(parts)}" if parts else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected {expect}") from None
        ok = math.isfinite(value)
        if ok and lo is not None:
            ok = value > lo if lo_open else value >= lo
        if ok and hi is not None:
            ok = value < hi if hi_open else value <= hi
        if not ok:
            raise argparse.ArgumentTypeError(f"{text}; expected {expect}")
        return value

    parse.__name__ = "number"
    return parse


DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?|mps|xpu(:\d+)?)$")


def need_path(path: Path | None, flag: str, kind: str, expected: str) -> None:
    """FileNotFoundError unless `path` (when given) is an existing "file" / "folder" (`kind`); the
    message names the flag and what was expected."""
    if path is None:
        return
    ok = path.is_file() if kind == "file" else path.is_dir()
    if not ok:
        what = "does not exist" if not path.exists() else f"is not a {kind}"
        raise FileNotFoundError(f"{flag} {path} {what}; expected {expected}")


def device_name(text: str) -> str:
    """argparse type: a torch device name (whether it exists here is checked after torch loads)."""
    if not DEVICE_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}; expected cpu, cuda, cuda:N, mps or xpu")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="egoworld", description="Egocentric world models (EgoWM, EgoSim).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def _one_line(err: BaseException) -> str:
    if isinstance(err, KeyError):
        text = str(err.args[0]) if err.args else ""
        if text and " " not in text.strip():  # a bare key is no sentence
            text = f"missing entry {err.args[0]!r} (an input lacks a field it needs)"
    elif (
        isinstance(err, OSError)
        and err.strerror
        and not isinstance(err, (FileNotFoundError, FileExistsError))
    ):
        where = f": {err.filename}" if err.filename is not None else ""
        also = f" -> {err.filename2}" if err.filename2 is not None else ""
        text = f"{err.strerror}{where}{also}"
    elif isinstance(err, (FileNotFoundError, FileExistsError)) and err.strerror and err.filename:
        text = f"{err.strerror}: {err.filename}"
    else:
        text = str(err)
    return " ".join(text.split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or an argument error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except _REPORTED as err:
        print(f"egoworld {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"egoworld {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())

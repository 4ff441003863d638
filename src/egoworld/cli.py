"""The `egoworld` command line.

Each subcommand lives in its own module under `egoworld.commands` and exposes
`register(subparsers)`, which adds an argparse parser whose default `func` runs it.
Modules are discovered, so adding a command means adding one file.
Heavy imports (torch, diffusers, mujoco, open3d) happen inside the command's `run`,
so `egoworld --help` stays fast.

Library code raises; this module reports: a `ValueError`, `FileNotFoundError`,
`FileExistsError`, `KeyError` or `EgoworldError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from egoworld import commands
from egoworld.errors import EgoworldError

_REPORTED = (EgoworldError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, KeyError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="egoworld", description="Egocentric world models (EgoWM, EgoSim).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def _one_line(err: BaseException) -> str:
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(text.split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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

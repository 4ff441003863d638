"""CLI subcommands, one module each (discovered by `egoworld.cli`).

A module defines `register(subparsers)` and keeps heavy imports inside its `run(args)`.
"""

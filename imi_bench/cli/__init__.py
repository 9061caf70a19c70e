"""The ``imi-bench`` command line: a thin layer over the Python API.

Each capability registers its subcommands from its own module; heavy imports
happen inside the command handlers, so ``imi-bench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import ImiBenchError
from . import data, featurize, leaderboard, models, report, run, sim

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="imi-bench",
        description="Benchmark proxy predictors of human interpretability of vision-network units (IMI).",
    )
    parser.add_argument("--version", action="version", version=f"imi-bench {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data.register(sub)
    models.register(sub)
    sim.register(sub)
    featurize.register(sub)
    report.register(sub)
    run.register(sub)
    leaderboard.register(sub)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except ImiBenchError as e:
        print(f"imi-bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imi-bench: interrupted", file=sys.stderr)
        return 130

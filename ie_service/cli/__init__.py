"""``ie-service`` command line: serve, and the tools around the service.

One module per command, each with ``register(sub)`` that adds its parser and sets ``func``
(the command: args → exit code) on every leaf. A command raises :class:`UsageError` for
arguments that do not fit together; its parser reports it (exit 2). Every other failure is
one ``error:`` line too (:mod:`.failures`: exit 2 for bad input, 1 for runtime failures)."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from . import eval as eval_command
from . import extract, failures, kg, serve, train, weights
from . import inspect as inspect_command
from .common import UsageError

COMMANDS = (serve, inspect_command, weights, eval_command, kg, train, extract)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ie-service",
        description="Instruction-driven information extraction (NER / RE / EE) served by vLLM.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    _remember_parsers(parser)
    return parser


def _remember_parsers(parser: argparse.ArgumentParser) -> None:
    """Each leaf parser sets itself as ``_parser``, so a UsageError names the right command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child.set_defaults(_parser=child)
                _remember_parsers(child)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (tests swap it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging() -> None:
    """Text logs for humans; the access log is one JSON object per line (``ie_service.access``).
    Once per process: ``main`` may run many times in one (tests), and each handler added would
    write every access line again, to the stderr of its time."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    access = logging.getLogger("ie_service.access")
    if access.handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter('{"ts": "%(asctime)s", "access": %(message)s}'))
    access.addHandler(handler)
    access.propagate = False


# Libraries whose INFO lines would run through a client command's progress bar (one per request).
QUIET_UNLESS_VERBOSE = ("httpx", "httpcore")


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    if not getattr(args, "verbose", True):
        for name in QUIET_UNLESS_VERBOSE:
            logging.getLogger(name).setLevel(logging.WARNING)
    return failures.run(args.func, args, args._parser.error)


__all__ = ["UsageError", "build_parser", "main"]

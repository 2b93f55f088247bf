"""Command-line interface: the window's work, headless (batch, evaluation, automation).

One module per group of commands; each command is a class with ``name``, ``help``, ``add_arguments(parser)``
and ``run(args) -> exit code``; :func:`main` only dispatches and applies the one exit-code rule:

* ``0`` (:data:`EXIT_OK`): done;
* ``1`` (:data:`EXIT_NEGATIVE`): the command ran and its answer is negative: a probe of a batch failed, a case
  is not intact, a replay differs;
* ``2`` (:data:`EXIT_ERROR`): it could not run: bad arguments or input, a :class:`ForensicFaceError` (the
  message says which file, what is wrong and what to do), or a failure of the machine rather than of the program
  (a full disk, a read-only file, too little memory: :func:`forensic_face.faults.describe_failure`). Only a bug
  shows a traceback; ``--verbose`` logs the traceback of the others too;
* ``130``: interrupted or cancelled.

Results go to stdout (``--json`` gives one JSON document), progress and messages to stderr. File names, notes
and other user-supplied text are printed through :func:`forensic_face.faults.printable` (control characters
escaped).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol

from forensic_face import __version__
from forensic_face.engine import Cancelled
from forensic_face.faults import describe_failure, printable
from forensic_face.paths import keep_matplotlib_in_cache

log = logging.getLogger("forensic_face")

EXIT_OK = 0
EXIT_NEGATIVE = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class Command(Protocol):
    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def commands() -> list[Command]:
    """Every command, in the order ``--help`` lists them: the pipeline, cases, large galleries, evaluation,
    training."""
    from forensic_face.cli.calibrate import CalibrateCommand
    from forensic_face.cli.case import (
        CaseCommand,
        DecideCommand,
        ReplayCommand,
        ReportCommand,
        ReviewCommand,
        VerifyCommand,
    )
    from forensic_face.cli.evaluate import (
        EvalCommand,
        EvalCompareCommand,
        EvalDecomposeCommand,
        EvalVideoCommand,
    )
    from forensic_face.cli.large_gallery import IndexCommand, ShortlistSearchCommand
    from forensic_face.cli.search import DetectCommand, EnrollCommand, SearchCommand
    from forensic_face.cli.training import (
        ConvertTfjsRecognizerCommand,
        EvalSrCommand,
        PackRecognizerDataCommand,
        TrainRecognizerCommand,
        TrainSrCommand,
    )
    from forensic_face.cli.video import SearchVideoCommand

    return [DetectCommand(), EnrollCommand(), SearchCommand(), SearchVideoCommand(), CaseCommand(), DecideCommand(),
            ReviewCommand(), VerifyCommand(), ReplayCommand(), ReportCommand(), IndexCommand(), ShortlistSearchCommand(), EvalCommand(),
            EvalCompareCommand(), EvalDecomposeCommand(), EvalVideoCommand(), CalibrateCommand(), TrainSrCommand(), EvalSrCommand(),
            TrainRecognizerCommand(), PackRecognizerDataCommand(), ConvertTfjsRecognizerCommand()]


class CommandLineParser(argparse.ArgumentParser):
    """argparse, with a hint when a file name that starts with '-' was taken for an option (argparse then
    only says that the files are missing). Sub-command parsers are of this class too."""

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        self._arguments_seen = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        dashed = [a for a in getattr(self, "_arguments_seen", []) if a.startswith("-") and a != "--"
                  and a.split("=", 1)[0] not in self._option_string_actions]
        if dashed and "arguments are required" in message:
            message += (f"; {printable(dashed[0])} was read as an option: put file names that start with '-' "
                        f"after '--' ({self.prog} [options] -- {printable(dashed[0])}) or write them as "
                        f"./{printable(dashed[0])}")
        super().error(message)


class _EscapingFormatter(logging.Formatter):
    """Log lines on stderr with user-supplied text escaped (:func:`printable`); a traceback stays as it is."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = printable(record.message)
        return super().formatMessage(record)


def build_parser(command_list: Sequence[Command] | None = None) -> argparse.ArgumentParser:
    parser = CommandLineParser(prog="forensic-face", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"forensic-face {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in command_list if command_list is not None else commands():
        command.add_arguments(sub.add_parser(command.name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    command_list = commands()
    args = build_parser(command_list).parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_EscapingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    command = next(c for c in command_list if c.name == args.command)
    keep_matplotlib_in_cache()
    try:
        return command.run(args)
    except (KeyboardInterrupt, Cancelled):
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): not an error of ours; keep Python quiet at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        message = describe_failure(exc)
        if message is None:
            raise  # a bug: its traceback is what a report of it needs
        log.info("%s failed; details:", args.command, exc_info=True)
        print(f"forensic-face {args.command}: error: {printable(message)}", file=sys.stderr)
        return EXIT_ERROR

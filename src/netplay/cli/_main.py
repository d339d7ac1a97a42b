"""The ``netplay`` command: its parser, built from the command table, and
turning errors into one sentence.

Every error is one line on stderr (``netplay: what went wrong (what to do)``)
and a distinct exit status (see :mod:`netplay.errors`); ``--debug`` adds the
traceback.  ``exec`` and ``shell`` replace this process with the command
inside the host (``ssh`` with OpenSSH's client, in the host's network), so
stdin, the tty and the exit status pass straight through.
In hosts, ``python3`` is the Python that runs netplay (:func:`_this_python_first`).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from netplay import __version__, fabric
from netplay.cli._commands import COMMANDS, Command, Session
from netplay.errors import NetplayError, UsageError

INTERNAL_ERROR = 70

EPILOG = """examples:
  netplay up --detach                      start the book playground and return
  netplay exec h1 -- traceroute -n www     run a command on h1
  netplay shell h1                         an interactive shell on h1
  netplay ssh www -- id                    log in to www with OpenSSH (as brandon in the book)
  netplay link modemA isp --loss 20%       disturb a link (see: netplay link -h)
  netplay logs www/https -f                follow a service's log
  netplay service restart www/https        and stop, start
  netplay ca                               the CA certificate's path, to trust it elsewhere
  netplay down                             remove everything
"""


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=f"see `{self.prog} --help`")


def subparser(command: Command, add: argparse._SubParsersAction[Parser]) -> Parser:
    """The parser of one command of the table."""
    parser: Parser = add.add_parser(
        command.name, help=command.help, description=command.description or command.help
    )
    command.arguments(parser)
    return parser


def _parser() -> Parser:
    parser = Parser(
        prog="netplay",
        description="A miniature Internet on this machine: hosts, routers, NAT and links "
        "in network namespaces.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logs (anywhere before --)"
    )
    parser.add_argument("--version", action="version", version=f"netplay {__version__}")
    add = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    add.required = True
    for command in COMMANDS:
        sub = subparser(command, add)
        if command.named:
            sub.add_argument("--name", default=None, help=command.name_help)
    return parser


def _debug(argv: Sequence[str]) -> tuple[bool, list[str]]:
    """Whether --debug is given anywhere before a ``--`` (what follows is a
    command's own), and the arguments without it."""
    cut = argv.index("--") if "--" in argv else len(argv)
    kept = [a for i, a in enumerate(argv) if i >= cut or a != "--debug"]
    return len(kept) != len(argv), kept


def _this_python_first() -> None:
    """Put the virtual environment netplay runs from first on PATH, for what it
    runs in hosts (``exec``, ``shell``, the console, inetd's commands): there,
    ``python3 -m netplay.programs.udp_local`` finds netplay and its libraries,
    as in an activated environment, however ``netplay`` was found."""
    if sys.prefix == sys.base_prefix:  # not in a virtual environment
        return
    fabric.prepare_names()  # before PATH, maybe the environment's first entry, changes
    own = str(Path(sys.executable).parent)
    rest = [d for d in os.environ.get("PATH", os.defpath).split(os.pathsep) if d != own]
    os.environ["PATH"] = os.pathsep.join([own, *rest])


def _standard_fds() -> None:
    """Open /dev/null on whichever of fds 0, 1 and 2 this process was started
    without, as OpenSSH does (sanitise_stdfd): else the first files it opens
    take their numbers, and what it prints goes into them, or fails."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free number: fd, as those below are open
    # Python started without them has None for these
    sys.stdin = sys.stdin or open(0, closefd=False)
    sys.stdout = sys.stdout or open(1, "w", closefd=False)
    sys.stderr = sys.stderr or open(2, "w", closefd=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (the same with --debug, which adds
    the traceback)."""
    _standard_fds()
    debug, rest = _debug(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="netplay: %(message)s"
    )
    _this_python_first()
    try:
        args = _parser().parse_args(rest)
        command = next(c for c in COMMANDS if c.name == args.command)
        return command.run(args, Session(sys.stdout))
    except NetplayError as exc:
        if debug:
            traceback.print_exc()
        hint = f" ({exc.hint})" if exc.hint else ""
        print(_one_line(f"netplay: {exc}{hint}"), file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("netplay: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(
            _one_line(
                f"netplay: internal error: {exc.__class__.__name__}: {exc} "
                "(run again with --debug and report the traceback)"
            ),
            file=sys.stderr,
        )
        return INTERNAL_ERROR


def command() -> int:
    """The ``netplay`` executable: :func:`main`, then its exit status, with the
    objects made so far frozen (:func:`gc.freeze`).  Python's last collection,
    at exit, would walk all of them once more: after ``up``, the modules of
    every engine (asyncssh, aiosmtpd, Flask, httpbin), 0.2 s of a shell's
    wait for nothing."""
    status = main()
    gc.freeze()
    return status


def _one_line(message: str) -> str:
    """An error is one line, whatever a name or path in it holds."""
    return message.replace("\r", "\\r").replace("\n", "\\n")

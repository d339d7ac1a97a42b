"""The foreground console of ``netplay up``, in the spirit of Mininet's CLI.

netplay> h1 ping -c1 www        # a command on a host
netplay> status                 # hosts, interfaces, networks, faults, services
netplay> link modemA isp --loss 20%
netplay> logs www/https -n 5    # every command of the table marked for the console
netplay> exit                   # (or Ctrl-D, or Ctrl-C) tears the playground down

Its commands are those of :data:`netplay.cli._commands.COMMANDS` marked
``console``, parsed by the same argument definitions as on the command
line, so they and their help cannot disagree.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import NoReturn, TextIO

from netplay import Playground
from netplay.cli._commands import COMMANDS, Command, Session
from netplay.cli._main import Parser
from netplay.errors import NetplayError


class _Said(Exception):
    """argparse was asked for a command's help (-h)."""


class _ConsoleParser(Parser):
    def print_help(self, file: object = None) -> NoReturn:
        raise _Said


def _parsers() -> dict[str, tuple[Command, _ConsoleParser]]:
    found = {}
    for command in COMMANDS:
        if command.console:
            parser = _ConsoleParser(
                prog=command.name, description=command.description or command.help
            )
            command.arguments(parser)
            found[command.name] = (command, parser)
    return found


def help_text(parsers: dict[str, tuple[Command, _ConsoleParser]]) -> str:
    """The console's help: a command on a host, then the table's commands."""
    rows = [("HOST COMMAND [ARGS...]", "run a command on a host, e.g. h1 ping -c1 www")]
    rows += [(name, command.help.replace("%%", "%")) for name, (command, _p) in parsers.items()]
    rows += [
        ("hosts", "the host names"),
        ("help [COMMAND]", "this text, or a command's options"),
        ("exit", "tear the playground down and leave (also Ctrl-D, Ctrl-C)"),
    ]
    width = max(len(left) for left, _right in rows)
    return "commands:\n" + "".join(f"  {left:<{width}}  {right}\n" for left, right in rows)


def run_console(pg: Playground, out: TextIO, read: Callable[[str], str] = input) -> None:
    """Read commands until exit, EOF or Ctrl-C at the prompt."""
    names = {h.name for h in pg.topology.hosts}
    parsers = _parsers()
    session = Session(out, console=pg)
    out.write(f"playground {pg.name} is up: {len(names)} hosts. Type help for the commands.\n")
    while True:
        try:
            line = read(f"{pg.name}> ")
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return
        try:
            words = shlex.split(line)
        except ValueError as exc:
            out.write(f"error: {exc}\n")
            continue
        if not words:
            continue
        command, rest = words[0], words[1:]
        try:
            if command in ("exit", "quit"):
                return
            if command == "help":
                if rest and rest[0] in parsers:
                    out.write(parsers[rest[0]][1].format_help())
                else:
                    out.write(help_text(parsers))
            elif command == "hosts":
                out.write(" ".join(h.name for h in pg.topology.hosts) + "\n")
            elif command in parsers:
                entry, parser = parsers[command]
                try:
                    args = parser.parse_args(rest)
                except _Said:
                    out.write(parser.format_help())
                    continue
                entry.run(args, session)
            elif command in names:
                if not rest:
                    out.write(f"usage: {command} COMMAND [ARGS...]\n")
                    continue
                _foreground(pg, command, rest, out)
            else:
                out.write(f"unknown command or host {command!r}; type help\n")
        except NetplayError as exc:
            out.write(f"error: {exc}" + (f" ({exc.hint})" if exc.hint else "") + "\n")
        out.flush()


def _foreground(pg: Playground, host: str, argv: list[str], out: TextIO) -> None:
    """Run a command with the terminal; Ctrl-C stops the command, not the console."""
    out.flush()
    proc = pg.host(host).popen(argv)  # one that cannot start: CommandFailedError, said
    while True:
        try:
            proc.wait()
            return
        except KeyboardInterrupt:
            continue  # the command got the SIGINT too; wait for it to end

"""The foreground console of ``netplay up``, in the spirit of Mininet's CLI.

netplay> h1 ping -c1 www        # a command on a host
netplay> status                 # hosts, interfaces, networks, faults
netplay> link modemA isp --loss 20%
netplay> exit                   # (or Ctrl-D, or Ctrl-C) tears the playground down
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TextIO

from netplay._playground import Playground
from netplay.cli._format import format_status
from netplay.errors import NetplayError

HELP = """commands:
  HOST COMMAND [ARGS...]   run a command on a host, e.g. h1 ping -c1 www
  status                   hosts, interfaces, networks and link faults
  link A B [--loss P%] [--rate R] [--down|--up] [--clear]
  hosts                    the host names
  help                     this text
  exit                     tear the playground down and leave (also Ctrl-D, Ctrl-C)
"""


def run_console(
    pg: Playground,
    out: TextIO,
    read: Callable[[str], str] = input,
    link: Callable[[Playground, list[str]], str] | None = None,
) -> None:
    """Read commands until exit, EOF or Ctrl-C at the prompt."""
    names = {h.name for h in pg.topology.hosts}
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
        command = words[0]
        try:
            if command in ("exit", "quit"):
                return
            if command == "help":
                out.write(HELP)
            elif command == "hosts":
                out.write(" ".join(h.name for h in pg.topology.hosts) + "\n")
            elif command == "status":
                out.write(format_status(pg.status()))
            elif command == "link" and link is not None:
                out.write(link(pg, words[1:]))
            elif command in names:
                if len(words) == 1:
                    out.write(f"usage: {command} COMMAND [ARGS...]\n")
                    continue
                _foreground(pg, command, words[1:], out)
            else:
                out.write(f"unknown command or host {command!r}; type help\n")
        except NetplayError as exc:
            out.write(f"error: {exc}" + (f" ({exc.hint})" if exc.hint else "") + "\n")
        out.flush()


def _foreground(pg: Playground, host: str, argv: list[str], out: TextIO) -> None:
    """Run a command with the terminal; Ctrl-C stops the command, not the console."""
    out.flush()
    proc = pg.host(host).popen(argv)
    while True:
        try:
            proc.wait()
            return
        except KeyboardInterrupt:
            continue  # the command got the SIGINT too; wait for it to end

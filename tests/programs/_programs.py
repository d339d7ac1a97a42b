"""Running the programs in the playground, for the tests of tests/programs.

A server is spawned in a host and is ready once it prints the line it
prints when bound ("Listening at ..."), never after a fixed time; clients
and one-shot programs run in h1 and return their CompletedProcess.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from netplay import Playground


def argv_of(module: str, *args: str) -> list[str]:
    """How to run the program ``module`` of netplay.programs."""
    return [sys.executable, "-m", f"netplay.programs.{module}", *args]


@contextmanager
def server_in(pg: Playground, host: str, module: str, *args: str) -> Iterator[list[str]]:
    """Run a program's server in ``host``; yield the lines it prints (its
    stdout, then its stderr), filled in once it is stopped at the end."""
    with pg.host(host).spawn(argv_of(module, "server", *args)) as server:
        first = server.first_line or ""
        assert first.startswith("Listening at"), first
        lines = [first]
        try:
            yield lines
        finally:
            out, err = server.stop()
            lines += [*out.splitlines(), *err.splitlines()]


def client(
    pg: Playground, module: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A program's client in h1."""
    return pg.host("h1").run(argv_of(module, "client", *args), timeout=timeout)


def program(pg: Playground, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A program that is neither server nor client, in h1."""
    return pg.host("h1").run(argv_of(module, *args), timeout=60)

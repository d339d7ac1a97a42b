"""What every program's ``main`` shares: one-line errors and exit statuses.

A program's useful parts raise :class:`ProgramError` (or let an ``OSError``
through); :func:`run` turns either into one line on stderr, ``PROG:
what happened``, and exit status 1; Ctrl-C is status 130.  Nothing else
prints a traceback.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable


class ProgramError(Exception):
    """An expected failure, said in one line."""


def describe(exc: OSError) -> str:
    """An OSError as a person would say it."""
    if isinstance(exc, socket.gaierror):
        return f"name not found ({exc.strerror})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    names = {
        errno.ECONNREFUSED: "connection refused",
        errno.ECONNRESET: "connection reset by the peer",
        errno.EHOSTUNREACH: "no route to the host",
        errno.ENETUNREACH: "the network is unreachable",
        errno.EADDRINUSE: "the address is already in use",
        errno.EACCES: "permission denied",
    }
    return names.get(exc.errno or 0, exc.strerror or str(exc))


def run(prog: str, body: Callable[[], int | None]) -> int:
    """Call ``body``; return its status, or print its error in one line."""
    try:
        return body() or 0
    except ProgramError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"{prog}: {describe(exc)}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 1

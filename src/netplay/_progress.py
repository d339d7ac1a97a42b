"""Progress of long work, as a bar on a terminal.

Off unless a front end turns it on (``netplay up`` does when its stderr is
a terminal): a library caller's stderr is its own, and a pipe or a log file
gets nothing.  Work of fewer than MIN_STEPS steps draws nothing, as it ends
before a bar would help.  The bar is one line, redrawn at most every
REDRAW_S and erased when the work ends, so what the command prints next
starts on a clean line.

It is module state on purpose: the build may run in a forked child (the
rootless keeper's), which inherits it and writes to the same terminal.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TextIO

MIN_STEPS = 500
REDRAW_S = 0.1
WIDTH = 30  # characters of the bar itself

_out: TextIO | None = None


def show_on(stream: TextIO | None) -> None:
    """Draw progress on ``stream`` from now on (None: nowhere)."""
    global _out
    _out = stream


@contextlib.contextmanager
def steps(what: str, total: int) -> Iterator[Callable[[], None]]:
    """A function to call once per step of ``total``, with a bar saying ``what``."""
    out = _out
    if out is None or total < MIN_STEPS:
        yield _nothing
        return
    done = 0
    drawn = 0.0

    def step() -> None:
        nonlocal done, drawn
        done += 1
        now = time.monotonic()
        if now - drawn >= REDRAW_S or done == total:
            drawn = now
            filled = WIDTH * done // total
            bar = "#" * filled + "-" * (WIDTH - filled)
            out.write(f"\r{what} [{bar}] {done:,}/{total:,}")
            out.flush()

    try:
        yield step
    finally:
        out.write("\r\033[K")  # erase the line
        out.flush()


def _nothing() -> None:
    pass

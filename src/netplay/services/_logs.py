"""Reading services' logs: the whole, the last lines, or following what is added."""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Iterator
from pathlib import Path

FOLLOW_INTERVAL_S = 0.2
TAIL_BYTES = 16384


def read_log(path: Path, *, lines: int | None = None, follow: bool = False) -> Iterator[str]:
    """The log's text (its last ``lines`` lines only, if given), in pieces; with
    ``follow``, then what is added to it, until the file goes (the playground
    went down) or the caller stops iterating."""
    if lines is not None and lines < 0:
        raise ValueError("lines must be 0 or more")
    with open(path, "rb") as f:
        text = f.read().decode(errors="replace")
        if lines is not None:
            text = "".join(text.splitlines(keepends=True)[-lines:]) if lines else ""
        if text:
            yield text
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while follow:  # a character may be cut between two reads: decode as a stream
            chunk = f.read()
            if chunk:
                yield decoder.decode(chunk)
            elif not path.exists():
                return
            else:
                time.sleep(FOLLOW_INTERVAL_S)


def last_words(path: os.PathLike[str] | str, lines: int) -> list[str]:
    """The server's last words: its last lines that are neither the runner's
    nor informational."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    said = [
        line
        for line in text.splitlines()
        if line.strip() and " netplay: " not in line and not line.startswith("[INFO]")
    ]
    return said[-lines:]

"""Progress bars: on a terminal for long work, never on a pipe."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys

from netplay import Playground
from netplay import _progress as progress


def test_a_bar_for_long_work_erased_at_its_end() -> None:
    out = io.StringIO()
    progress.show_on(out)
    try:
        with progress.steps("counting", progress.MIN_STEPS) as step:
            for _ in range(progress.MIN_STEPS):
                step()
        drawn = out.getvalue()
        assert drawn.startswith("\rcounting [")
        assert f"] {progress.MIN_STEPS}/{progress.MIN_STEPS}\r\033[K" in drawn
        assert drawn.endswith("\r\033[K")
        out.truncate(0)
        with progress.steps("counting", progress.MIN_STEPS - 1) as step:
            step()
        assert out.getvalue() == ""  # short work: no bar
    finally:
        progress.show_on(None)
    with progress.steps("counting", 10 * progress.MIN_STEPS) as step:
        step()  # nowhere to draw: nothing happens


def _read_all(fd: int) -> bytes:
    data = b""
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        data += chunk
    return data


def test_up_draws_on_a_terminal_and_not_on_a_pipe() -> None:
    up = [sys.executable, "-m", "netplay", "up", "line:600", "--name", "bar", "--detach"]
    main_fd, terminal = pty.openpty()
    try:
        on_terminal = subprocess.run(
            up, stderr=terminal, stdout=subprocess.PIPE, text=True, timeout=300, check=True
        )
        os.close(terminal)
        drawn = _read_all(main_fd).decode()
    finally:
        os.close(main_fd)
        Playground.remove("bar")
    assert "making namespaces [" in drawn and "600/600" in drawn
    assert "is up" in on_terminal.stdout and "\r" not in on_terminal.stdout
    try:
        on_pipe = subprocess.run(up, capture_output=True, text=True, timeout=300, check=True)
    finally:
        Playground.remove("bar")
    assert on_pipe.stderr == ""

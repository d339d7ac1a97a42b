"""What a test session needs around its playgrounds: can this machine build
them, where their CAs go, and cleaning up after a session that was killed.

Every playground the plugin makes is tagged ``netplay.testing`` in its
state file and named after the session's process (``t<pid>f0``,
``t<pid>s0``, ...).  Its CA
and certificates go to the session's data directory,
``<runtime dir>/testing-<pid>-<start time>``, which names its owner, so a
later session removes exactly what a killed one left: the tagged
playgrounds whose owner is dead, and the data directories whose owner is
dead.  Nothing is removed by a pattern alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from functools import cache
from pathlib import Path

from netplay import Playground, fabric
from netplay.errors import StateError

TAG = "netplay.testing"
DATA_PREFIX = "testing-"
TOOLS = (("nft", "nftables"), ("ip", "iproute2"))


@cache
def cannot_build() -> str | None:
    """Why this machine cannot build playgrounds for tests, or None if it can."""
    if not sys.platform.startswith("linux"):
        return "netplay playgrounds need Linux network namespaces"
    for tool, package in TOOLS:
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            return f"{tool} is not installed (apt-get install {package})"
    if not fabric.namespaces_available():
        if os.geteuid() == 0:
            return "this system refuses root a network namespace (a container without SYS_ADMIN?)"
        return "not root, and this system allows no unprivileged user namespaces"
    return None


def session_data_dir() -> Path:
    """This session's data directory (made on first use), naming its owner."""
    me = fabric.process(os.getpid())
    path = fabric.base_dir() / f"{DATA_PREFIX}{me.pid}-{me.start}"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def clean_after_killed_sessions() -> list[str]:
    """Remove what sessions that were killed left: their playgrounds and data
    directories.  Returns the names of the playgrounds removed."""
    removed = []
    for name in Playground.names():
        paths = fabric.Paths.of(name)
        try:
            state = fabric.read_state(paths)
        except StateError:
            continue  # not ours to judge: `netplay down` deals with it
        if state is None or state.tag != TAG or fabric.alive(state.owner.pid, state.owner.start):
            continue
        Playground.remove(name, purge=True)
        removed.append(name)
    base = fabric.base_dir()
    with contextlib.suppress(FileNotFoundError):
        for entry in base.iterdir():
            owner = _owner(entry.name)
            if owner is not None and not fabric.alive(*owner):
                with contextlib.suppress(OSError):
                    fabric.remove_tree(entry)
    return removed


def _owner(name: str) -> tuple[int, int] | None:
    if not name.startswith(DATA_PREFIX):
        return None
    pid, _, start = name.removeprefix(DATA_PREFIX).partition("-")
    if not (pid.isdigit() and start.isdigit()):
        return None
    return int(pid), int(start)


def remove_session_data_dir(path: Path) -> None:
    """Remove this session's data directory (only one named after this process),
    and the runtime directory it was in if nothing else is there now."""
    if _owner(path.name) == (os.getpid(), fabric.process(os.getpid()).start):
        with contextlib.suppress(OSError):
            fabric.remove_tree(path)  # rootless, an overlay's work directories too
        with contextlib.suppress(OSError):
            path.parent.rmdir()

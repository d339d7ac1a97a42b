"""Processes: is a recorded pid still the same process, and which processes
live in a playground's namespaces.

A pid alone can be reused, so a process is named by (pid, start time).
Processes are found by the inode of their network or mount namespace,
never by name.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable

from netplay._model import Process

KILLED_WAIT_S = 5.0  # SIGKILL cannot be caught: only a process stuck in the kernel takes long


_name = ""  # what name_process last named this process


def name_process(title: str) -> None:
    """What ``ps`` and ``top`` show for this process, as daemons name theirs
    (``netplay: book www/https server``): else every process of every
    playground would show the command line that made it."""
    global _name
    import setproctitle  # a small C extension: only processes that name themselves load it

    setproctitle.setproctitle(title)
    _name = title


def process_name() -> str:
    """The name :func:`name_process` gave this process (or its parent, before
    the fork), whether or not ``ps`` shows it (see :func:`prepare_names`)."""
    return _name


def prepare_names() -> None:
    """Let this process's children be named, before it changes its own
    environment.  setproctitle renames a process in the memory of its
    command line and environment, which it finds from the environment's
    first entry: changed first (PATH, where the environment is PATH alone),
    no child could be named, and ``ps`` would show each as the command that
    made the playground."""
    import setproctitle

    setproctitle.getproctitle()  # finds that memory now, and keeps it


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    return int(fields[19])


def process(pid: int) -> Process:
    """``pid`` as a :class:`Process`, with its start time."""
    return Process(pid=pid, start=start_time(pid))


def alive(pid: int | None, start: int | None) -> bool:
    """Whether the process recorded as (pid, start) is still running."""
    if not pid:
        return False
    now = start_time(pid)
    if now is None:
        return False
    if start is not None and now != start:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


def in_namespaces(inodes: Iterable[int]) -> list[int]:
    """Pids of the processes whose network or mount namespace is one of ``inodes``."""
    return _having(inodes, ("net", "mnt"))


def in_user_namespace(inode: int) -> list[int]:
    """Pids of the processes in the user namespace ``inode`` (a rootless playground's)."""
    return _having([inode], ("user",))


def in_session(sid: int) -> list[int]:
    """Pids of the processes in the session ``sid`` (a service's runner and its server)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            if int(raw[raw.rindex(b")") + 2 :].split()[3]) == sid:
                found.append(int(entry.name))
    return found


def _having(inodes: Iterable[int], kinds: tuple[str, ...]) -> list[int]:
    wanted = set(inodes)
    if not wanted:
        return []
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        for kind in kinds:
            try:
                inode = os.stat(f"/proc/{entry.name}/ns/{kind}").st_ino
            except OSError:
                break
            if inode in wanted:
                found.append(int(entry.name))
                break
    return found


def terminate(pids: Iterable[int], grace: float = 1.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL what is left and wait
    until it has ended (up to KILLED_WAIT_S); reap those that are this
    process's children (a playground's runners are)."""
    targets = {pid: start_time(pid) for pid in pids}
    for pid in targets:
        _signal(pid, signal.SIGTERM)
    left = _wait_ended(targets, grace)
    for pid in left:
        _signal(pid, signal.SIGKILL)
    # a killed process runs its exit after kill() returns (a server with a large
    # heap, for a while): returning before would leave it to whoever looks next
    _wait_ended(left, KILLED_WAIT_S)
    for pid in targets:
        _reap(pid)


def _wait_ended(processes: dict[int, int | None], timeout: float) -> dict[int, int | None]:
    """Wait up to ``timeout`` seconds for the (pid: start) ``processes`` to end;
    those still alive."""
    left = dict(processes)
    deadline = time.monotonic() + timeout
    while True:
        left = {p: s for p, s in left.items() if alive(p, s)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.01)


def _reap(pid: int) -> None:
    """Collect an ended process if it is a child of this one (SIGKILL has been
    sent to any that was still alive, so the wait is short)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # not ours to reap


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass

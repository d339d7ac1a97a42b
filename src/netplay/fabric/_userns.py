"""Rootless playgrounds: a user namespace that the playground makes for itself.

As an ordinary user, ``up`` forks a *keeper*: it makes a user namespace (in
which the user is root, mapped to the user's own uid and gid, as rootless
container tools do), a mount namespace and an empty network namespace, then
becomes ``sleep infinity`` holding them.  Every netplay process of that playground (``up`` itself,
``exec``, ``shell``, ``status``, ``down`` from any terminal) joins the
keeper's namespaces before doing anything else, and then works exactly as
it would as root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil

from netplay.errors import NoPrivilegesError
from netplay.fabric import _linux as linux


def _deny(exc: OSError) -> NoPrivilegesError:
    if exc.errno == errno.ENOSPC:
        return NoPrivilegesError(
            "netplay needs root or a user namespace, and this user may make no more "
            "user namespaces (the limit user.max_user_namespaces is reached)",
            hint="run it as root (sudo), or raise the limit "
            "(sysctl user.max_user_namespaces=15000)",
        )
    return NoPrivilegesError(
        f"netplay needs root or unprivileged user namespaces, and this system "
        f"refused a user namespace ({exc.strerror})"
    )


def start_keeper() -> int:
    """Fork the keeper; return its pid once its namespaces are ready."""
    uid, gid = os.geteuid(), os.getegid()
    sleep = shutil.which("sleep") or "/bin/sleep"
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through the pipe
        try:
            os.close(ready_r)
            allowed = linux.ordered_namespaces_cpu()
            linux.unshare(linux.CLONE_NEWUSER | linux.CLONE_NEWNS | linux.CLONE_NEWNET)
            os.sched_setaffinity(0, allowed)
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            with open("/proc/self/uid_map", "w") as f:
                f.write(f"0 {uid} 1")
            with open("/proc/self/gid_map", "w") as f:
                f.write(f"0 {gid} 1")
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE)
            os.setsid()
            os.write(ready_w, b"r")
            os.close(ready_w)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.execv(sleep, [sleep, "infinity"])
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.write(ready_w, f"e{exc.errno}".encode())
        os._exit(1)
    os.close(ready_w)
    try:
        answer = os.read(ready_r, 64)
    finally:
        os.close(ready_r)
    if answer != b"r":
        os.waitpid(pid, 0)
        code = int(answer[1:] or errno.EPERM)
        raise _deny(OSError(code, os.strerror(code)))
    return pid


def join(pid: int) -> None:
    """Enter the keeper's user, mount and network namespaces (single-threaded callers only).

    The keeper's own network namespace is empty; joining it matters because a
    process in the user namespace can no longer enter the machine's network
    namespace, and the fabric returns to "home" after configuring each host.
    """
    fds = [
        (os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY), flag)
        for kind, flag in (
            ("user", linux.CLONE_NEWUSER),
            ("mnt", linux.CLONE_NEWNS),
            ("net", linux.CLONE_NEWNET),
        )
    ]
    try:
        for fd, flag in fds:
            linux.setns(fd, flag)
    except OSError as exc:
        raise _deny(exc) from exc
    finally:
        for fd, _flag in fds:
            os.close(fd)

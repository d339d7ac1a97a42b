"""Rootless playgrounds: a user namespace that the playground makes for itself.

As an ordinary user, ``up`` forks a *keeper*: it makes a user namespace (in
which the user is root, mapped to the user's own uid and gid, as rootless
container tools do), a mount namespace and an empty network namespace, then
becomes ``sleep infinity`` holding them.

Where the system gives the user subordinate ids (``/etc/subuid`` and
``/etc/subgid``, with ``newuidmap`` and ``newgidmap`` of the uidmap
package), the namespace maps :data:`SUBORDINATE_IDS` of them too, as ids 1
and up, as podman does: the hosts' accounts are then users of their own,
and a program can become one.  Files such a user owns belong to a
subordinate id outside, which the user cannot remove as itself:
:func:`as_root` removes them in a namespace of the same map.  Otherwise
the namespace maps the user alone, and every account is that one id.

A :class:`Realm` is how a process reaches a playground's namespaces.  As
root it is this very process.  Rootless, joining the keeper's user
namespace cannot be undone, and a process that joined one playground could
never make or use another; so the calling process never joins: work that
needs the namespaces runs in a forked child that joins and reports its
result back (:meth:`Realm.call`), and a program started in a host joins in
its own child between fork and exec (:meth:`Realm.join`).  Only ``netplay
exec`` and ``shell``, which become the command, join in place.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import pickle
import pwd
import selectors
import shutil
import struct
import subprocess
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from netplay._model import Process
from netplay.errors import NoPrivilegesError, NotRunningError
from netplay.fabric import _linux as linux
from netplay.fabric._procs import alive, start_time

T = TypeVar("T")
LENGTH = struct.Struct("!Q")
log = logging.getLogger("netplay")

#: how many subordinate ids a user namespace maps, as ids 1 to 65536: what
#: useradd gives each user (SUB_UID_COUNT), and room for every account of a
#: Debian system (nobody is 65534)
SUBORDINATE_IDS = 65536
SUBUID, SUBGID = Path("/etc/subuid"), Path("/etc/subgid")


@dataclass(frozen=True, slots=True)
class IdMap:
    """A user namespace's ids: the user's own as root, and, from 1, a range
    of its subordinate ids."""

    uid: int
    gid: int
    first_uid: int
    first_gid: int

    def commands(self, pid: int) -> list[list[str]]:
        """The uidmap commands that give process ``pid``'s new user namespace this map."""
        return [
            [tool, str(pid), "0", str(own), "1", "1", str(first), str(SUBORDINATE_IDS)]
            for tool, own, first in (
                ("newuidmap", self.uid, self.first_uid),
                ("newgidmap", self.gid, self.first_gid),
            )
        ]


def _first_subordinate(table: Path, name: str, number: int) -> int | None:
    """The first id of the user's first range in ``table`` (``/etc/subuid``) that
    has :data:`SUBORDINATE_IDS` ids, if it has one; lines name the user or its number."""
    try:
        lines = table.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (name, str(number)):
            continue
        with contextlib.suppress(ValueError):
            first, count = int(fields[1]), int(fields[2])
            if count >= SUBORDINATE_IDS:
                return first
    return None


@functools.cache
def subordinate_ids() -> IdMap | None:
    """The map a user namespace of this user's gets: None if the system gives
    it no subordinate ids (or has no uidmap tools), or as root."""
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0 or not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        return None
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return None
    first_uid = _first_subordinate(SUBUID, name, uid)
    first_gid = _first_subordinate(SUBGID, name, uid)
    if first_uid is None or first_gid is None:
        return None
    return IdMap(uid, gid, first_uid, first_gid)


def one_user_mapped(pid: int | None = None) -> bool:
    """Whether this process (or ``pid``) is in a user namespace that maps one
    user (a rootless playground's without subordinate ids: its root, outside
    the user who made it), where no file can be given to another user and no
    program can become one."""
    try:
        lines = Path(f"/proc/{pid or 'self'}/uid_map").read_text().splitlines()
    except OSError:
        return False
    return sum(int(line.split()[2]) for line in lines) == 1


def many_users() -> bool:
    """Whether this process's playgrounds have users besides their root, so
    that a daemon may become one: as root, or in a rootless playground's
    user namespace that maps subordinate ids, or outside one, as a user
    with subordinate ids to map."""
    if os.geteuid() == 0:
        return not one_user_mapped()
    return subordinate_ids() is not None


def _unshare(flags: int, ids: IdMap | None, tell: int, told: int) -> None:
    """In a child: make a user namespace (and the namespaces of ``flags``) in
    which this user is root.  With ``ids`` the parent maps them (it says "u"
    on ``tell`` and waits for "m" on ``told``: only a process outside the
    namespace may); otherwise, or if the parent could not, it maps the user
    alone."""
    uid, gid = os.geteuid(), os.getegid()
    linux.unshare(linux.CLONE_NEWUSER | flags)
    if ids is not None:
        os.write(tell, b"u")
        if os.read(told, 1) == b"m":
            return
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def _map(pid: int, ids: IdMap, heard: int, tell: int) -> bytes | None:
    """The parent's half of :func:`_unshare` with ``ids``: once the child says
    its namespace is made, map the ids (or tell it to map itself alone, with
    a warning).  Returns what the child said instead if it failed first."""
    said = os.read(heard, 64)
    if said != b"u":
        return said
    for command in ids.commands(pid):
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            log.warning(
                "%s failed (%s): the user namespace maps your user alone",
                command[0],
                run.stderr.strip() or f"exit status {run.returncode}",
            )
            os.write(tell, b"1")
            return None
    os.write(tell, b"m")
    return None


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


@contextlib.contextmanager
def start_keeper(name: str) -> Iterator[tuple[Process, int]]:
    """Fork the keeper of playground ``name``; give it and its user namespace
    once they are ready, for the state file to name them.  The keeper stays
    only if the block ends without an exception: until then it waits for a go
    ahead, and a process killed before it could record the keeper takes the
    keeper along (the pipe closes with no go)."""
    ids = subordinate_ids()
    sleep = shutil.which("sleep") or "/bin/sleep"
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through the pipe
        try:
            os.close(ready_r)
            os.close(go_w)
            allowed = linux.ordered_namespaces_cpu()
            _unshare(linux.CLONE_NEWNS | linux.CLONE_NEWNET, ids, ready_w, go_r)
            os.sched_setaffinity(0, allowed)
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE)
            os.setsid()
            os.chdir("/")  # as a daemon does: not holding the directory ``up`` was run in
            os.write(ready_w, b"r")
            os.close(ready_w)
            if os.read(go_r, 1) != b"g":  # recorded in no state file: no one would end it
                os._exit(0)
            os.close(go_r)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.execv(sleep, [f"netplay: {name} keeper", "infinity"])  # its name in ps
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.write(ready_w, f"e{exc.errno}".encode())
        os._exit(1)
    os.close(ready_w)
    os.close(go_r)
    try:
        try:
            answer = (ids and _map(pid, ids, ready_r, go_w)) or os.read(ready_r, 64)
        finally:
            os.close(ready_r)
        if answer != b"r":
            os.waitpid(pid, 0)
            code = int(answer[1:] or errno.EPERM)
            raise _deny(OSError(code, os.strerror(code)))
        yield Process(pid=pid, start=start_time(pid)), os.stat(f"/proc/{pid}/ns/user").st_ino
        os.write(go_w, b"g")
    finally:
        os.close(go_w)


def as_root(fn: Callable[..., object], *args: Any) -> None:
    """``fn(*args)`` in a child that is root of a user namespace of its own,
    with the map of :func:`subordinate_ids`: where files a rootless
    playground's users made (their subordinate ids', outside) can be removed.
    The child's exception, if any, is raised here."""
    ids = subordinate_ids()
    tell_r, tell_w = os.pipe()
    told_r, told_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through the pipe
        outcome: BaseException | None = None
        try:
            os.close(tell_r)
            os.close(told_w)
            _unshare(0, ids, tell_w, told_r)
            fn(*args)
        except BaseException as exc:
            outcome = exc
        with contextlib.suppress(BaseException):
            os.write(tell_w, pickle.dumps(outcome))
        os._exit(0)
    os.close(tell_w)
    os.close(told_r)
    try:
        said = (ids and _map(pid, ids, tell_r, told_w)) or b""
        with open(tell_r, "rb", closefd=False) as answer:
            said += answer.read()
    finally:
        os.close(tell_r)
        os.close(told_w)
        os.waitpid(pid, 0)
    outcome = pickle.loads(said) if said else OSError(errno.EIO, "the remover died")
    if outcome is not None:
        raise outcome


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


def available() -> bool:
    """Whether this process may make the namespaces a playground needs: as
    root, network namespaces (a container may forbid them); as a user, a user
    namespace to make them in.  Tried in a child."""
    flags = linux.CLONE_NEWNET | linux.CLONE_NEWNS
    if os.geteuid() != 0:
        flags |= linux.CLONE_NEWUSER
    pid = os.fork()
    if pid == 0:  # pragma: no cover - answers with its exit status
        status = 1
        try:
            linux.unshare(flags)
            status = 0
        finally:
            os._exit(status)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _user_namespace() -> int:
    return os.stat("/proc/self/ns/user").st_ino


@dataclass(frozen=True, slots=True)
class Realm:
    """Where a playground's namespaces are: the machine's (root), or the keeper's user namespace."""

    keeper: Process | None = None
    userns: int | None = None

    @property
    def inside(self) -> bool:
        """Whether this process can reach the namespaces as it is."""
        return self.keeper is None or _user_namespace() == self.userns

    def join(self) -> None:
        """Join the keeper's namespaces unless already there (single-threaded processes only)."""
        if not self.inside:
            assert self.keeper is not None
            if not alive(self.keeper.pid, self.keeper.start):  # its pid may be another's now
                raise NotRunningError(
                    "the process holding the playground's user namespace is gone",
                    hint="remove what is left with `netplay down`",
                )
            join(self.keeper.pid)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` where the namespaces are; rootless, in a child that joins them.

        The child sends back the result, or the exception (with its traceback
        as a note), pickled."""
        if self.inside:
            return fn(*args)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - reports through the pipe
            status = 0
            try:
                os.close(read_end)
                try:
                    self.join()
                    outcome: tuple[bool, Any] = (True, fn(*args))
                except BaseException as exc:
                    exc.add_note("".join(traceback.format_exc()))
                    outcome = (False, exc)
                try:
                    data = pickle.dumps(outcome)
                except Exception as exc:
                    data = pickle.dumps((False, RuntimeError(f"{outcome[1]!r} ({exc})")))
                # length first: processes forked by ``fn`` (service runners) may
                # hold the pipe open, so its end is no sign that all was said
                with open(write_end, "wb") as out:
                    out.write(LENGTH.pack(len(data)) + data)
            except BaseException:
                status = 1
            finally:
                os._exit(status)
        os.close(write_end)
        try:
            answer = _reply(read_end, pid)
        finally:
            os.close(read_end)
            os.waitpid(pid, 0)
        if answer is None:
            raise OSError(errno.EIO, "the process working in the playground's namespaces died")
        ok, value = pickle.loads(answer)
        if not ok:
            raise value
        result: T = value
        return result


def _reply(read_end: int, pid: int) -> bytes | None:
    """The child's whole answer (its length first), or None if it ended without one.

    It waits on the pipe and on the child's end together: processes the
    child started (service runners) may hold the pipe open after it ends."""
    received = bytearray()
    pidfd = os.pidfd_open(pid)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(read_end, selectors.EVENT_READ)
            selector.register(pidfd, selectors.EVENT_READ)
            ended = False
            while not ended:
                for key, _events in selector.select():
                    if key.fd == pidfd:
                        ended = True  # what it wrote is in the pipe: read it below
                        os.set_blocking(read_end, False)
                    chunk = _read_some(read_end)
                    received += chunk
                    if key.fd == read_end and not chunk:
                        ended = True
                whole = _whole(received)
                if whole is not None:
                    return whole
            while chunk := _read_some(read_end):
                received += chunk
    finally:
        os.close(pidfd)
    return _whole(received)


def _read_some(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


def _whole(received: bytearray) -> bytes | None:
    if len(received) < LENGTH.size:
        return None
    (size,) = LENGTH.unpack_from(received)
    end = LENGTH.size + size
    return bytes(received[LENGTH.size : end]) if len(received) >= end else None

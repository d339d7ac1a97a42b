"""Thin ctypes wrappers for the Linux calls that Python 3.11 lacks.

``os.setns`` and ``os.unshare`` arrived in Python 3.12 and ``mount`` is not
in the standard library at all, so the fabric reaches libc directly.  Every
wrapper raises :class:`OSError` with the real errno, like the ``os`` module.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20

MNT_DETACH = 0x2

# open_tree(2) and move_mount(2) (Linux 5.2), numbered alike on every architecture
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4

# the C library this process is linked with: ctypes.util.find_library would run
# ldconfig (5 ms, at every start of netplay)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]
_libc.syscall.restype = ctypes.c_long

PR_SET_PDEATHSIG = 1


def _check(result: int, what: str, path: str | None = None) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(
    source: str | None,
    target: str,
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    """mount(2); ``source``, ``fstype`` and ``data`` may be None."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount(target: str, flags: int = MNT_DETACH) -> None:
    """umount2(2), lazily by default so that busy mounts still go."""
    _check(_libc.umount2(_b(target), flags), "umount", target)


def clone_tree(path: str) -> int:
    """open_tree(2) with OPEN_TREE_CLONE and AT_RECURSIVE: a detached copy of
    the mount at ``path`` and of every mount below it, as an fd."""
    flags = OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC
    fd = _libc.syscall(SYS_OPEN_TREE, AT_FDCWD, _b(path), ctypes.c_uint(flags))
    _check(0 if fd >= 0 else -1, "open_tree", path)
    return int(fd)


def attach_tree(fd: int, target: str) -> None:
    """move_mount(2): mount the detached tree ``fd`` (:func:`clone_tree`) at ``target``."""
    result = _libc.syscall(
        SYS_MOVE_MOUNT,
        ctypes.c_int(fd),
        b"",
        ctypes.c_int(AT_FDCWD),
        _b(target),
        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH),
    )
    _check(0 if result == 0 else -1, "move_mount", target)


def setns(fd: int, nstype: int) -> None:
    """setns(2): move the calling thread into the namespace behind ``fd``."""
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_libc.unshare(flags), "unshare")


def sethostname(name: str) -> None:
    """sethostname(2) in the current UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def ordered_namespaces_cpu() -> set[int]:
    """Keep this process on one CPU, so that the namespaces it makes are numbered in order.

    The kernel refuses to bind-mount a mount namespace's file (the pins of
    :mod:`netplay.fabric._namespaces`) unless that namespace is newer than the
    mounter's, and recent kernels (seen on 6.18) number namespaces from
    per-CPU batches: two namespaces made on different CPUs may be numbered out
    of order.  The rootless keeper and the namespace factory both call this
    before making namespaces, so the hosts' mount namespaces are always newer
    than the keeper's.  Returns the CPUs allowed before, to restore them.
    """
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    return allowed


def die_with_parent(sig: int) -> None:
    """prctl(PR_SET_PDEATHSIG): the kernel sends ``sig`` to this process when
    its parent ends (if the parent is already gone, it exits now)."""
    parent = os.getppid()
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl")
    if os.getppid() != parent:  # it ended before the call: no signal will come
        os._exit(1)

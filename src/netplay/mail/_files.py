"""The few file steps every part of the mail store takes, in one place: a
file written whole before it is seen, and an fsync of the directory that
makes a rename or an unlink last (the lock is :func:`netplay.fabric.locked`)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def owned_like(fd: int, directory: Path) -> None:
    """Give a file we create the owner of the folder it is in, when we may (as root):
    a store another server reads as its own user (Dovecot's mail processes never run
    as root) must stay readable by it."""
    if os.geteuid() != 0:
        return
    owner = os.stat(directory)
    if owner.st_uid != 0 or owner.st_gid != 0:
        os.fchown(fd, owner.st_uid, owner.st_gid)


def write_new(path: Path, data: bytes) -> None:
    """Create ``path`` exclusively with ``data``, fsynced, owned like its directory;
    removed again if writing fails half-way."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        owned_like(fd, path.parent)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def replace(path: Path, data: bytes) -> None:
    """Write ``path`` whole: a temporary file, fsynced, renamed over it (readers see
    the old bytes or the new, never a part)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)  # left by a crash
    write_new(temporary, data)
    os.replace(temporary, path)

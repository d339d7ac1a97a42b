"""Each host's own writable view of the machine's files.

A host is a separate machine: what a program in it writes to /etc, /tmp or
a home directory is that host's alone, never the machine's and never
another host's.  Each of the directories in :data:`KEPT` and
:data:`FRESH` is an overlay filesystem in the host's mount namespace
(:mod:`netplay.fabric` mounts them): the machine's directory below,
unchanged, and an upper layer of the host's own above, which takes every
change (a deleted file is a whiteout there).  Binaries and libraries
(/usr) stay shared, read as they are.

The upper layers of :data:`KEPT` are in ``DATA/NAME/hosts/HOST/``, one
directory each, with the overlays' work directories in ``.work/``: they
outlive ``down``, as a machine's disk outlives a reboot (``down --purge``
removes them), and what a host changed can be read from the machine there:
``hosts/h1/etc`` holds h1's changed files of /etc (its /etc/hostname, from
the start).  Those of :data:`FRESH` are in a tmpfs of the playground's
(:func:`netplay.fabric.fresh_layers`), gone at ``down``, as a machine's
/tmp and /run are at boot.  Each upper layer has the mode and owner of
the machine's directory (/tmp is 1777, /root 0700): an overlay's top
directory is its upper layer's.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from netplay.fabric import Overlay, Paths, fresh_layers, remove_tree

HOSTS_DATA = "hosts"  # in the playground's data directory
WORK = ".work"
KEPT = ("/etc", "/root", "/home", "/var", "/srv")
FRESH = ("/tmp", "/run")


def filesystem(data: Path, host: str) -> Path:
    """Where the upper layers of ``host`` are, in the data directory ``data``."""
    return data / HOSTS_DATA / host


def upper(data: Path, host: str, directory: str) -> Path:
    """The upper layer of one of the host's kept directories (``"/etc"``)."""
    return filesystem(data, host) / directory.lstrip("/")


def prepare(paths: Paths, hosts: Iterable[str]) -> dict[str, tuple[Overlay, ...]]:
    """Make each host's layers; return its overlays."""
    fresh = fresh_layers(paths)
    machine = {directory: _mode(directory) for directory in (*KEPT, *FRESH)}
    overlays = {}
    for host in hosts:
        own = filesystem(paths.data, host)
        made = []
        for directory in (*KEPT, *FRESH):
            name = directory.lstrip("/")
            top = fresh / host if directory in FRESH else own
            layer, work = top / name, top / WORK / name
            layer.mkdir(parents=True, exist_ok=True)
            work.mkdir(parents=True, exist_ok=True)
            _like(layer, machine[directory], paths.root)
            made.append((Path(directory), layer, work))
        overlays[host] = tuple(made)
        _name(own / "etc" / "hostname", host)
    return overlays


def _mode(directory: str) -> os.stat_result | None:
    try:
        return os.stat(directory)
    except OSError:
        return None


def _like(layer: Path, machine: os.stat_result | None, root: bool) -> None:
    """Give an upper layer the mode (and, as root, the owner) of the machine's directory."""
    if machine is None:
        return
    have = layer.stat()
    if stat.S_IMODE(have.st_mode) != stat.S_IMODE(machine.st_mode):
        os.chmod(layer, stat.S_IMODE(machine.st_mode))
    if root and (have.st_uid, have.st_gid) != (machine.st_uid, machine.st_gid):
        os.chown(layer, machine.st_uid, machine.st_gid)


def _name(path: Path, host: str) -> None:
    """The host's /etc/hostname (its UTS namespace has the name already)."""
    text = host + "\n"
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == text:
            return
    path.write_text(text)


def forget(data: Path) -> None:
    """Delete every host's layers: what the hosts wrote, all of it."""
    remove_tree(data / HOSTS_DATA)

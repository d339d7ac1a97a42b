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
/tmp and /run are at boot.  The fabric makes the layers as it mounts the
overlays, with the modes and owners of the machine's directories, and
the host's /etc/hostname: at ``up``, or when a program first enters a
host without services, so that a host never entered costs no directory.
"""

from __future__ import annotations

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
    """Each host's overlays: what they cover, their upper layers and their work
    directories (see the module's docstring)."""
    layers = [
        (Path(directory), directory.lstrip("/"), directory in FRESH)
        for directory in (*KEPT, *FRESH)
    ]
    fresh, own = fresh_layers(paths), paths.data / HOSTS_DATA
    overlays = {}
    for host in hosts:
        made = []
        for target, name, forgotten in layers:
            top = f"{fresh if forgotten else own}/{host}"
            made.append((target, f"{top}/{name}", f"{top}/{WORK}/{name}"))
        overlays[host] = tuple(made)
    return overlays


def forget(data: Path) -> None:
    """Delete every host's layers: what the hosts wrote, all of it."""
    remove_tree(data / HOSTS_DATA)

"""Building a topology into namespaces, and removing what was built.

:func:`made_by` says, before anything exists, which pins and ``ip netns``
links a topology will make, so that the state file names them first.
:func:`build` makes the namespaces, wires them over rtnetlink and applies
NAT; :func:`teardown` ends every process inside them, unpins and unlinks
them, and :func:`remove_state` removes the playground's state file and
directories once every layer has removed its own files.  Both removals
are idempotent and touch only what the state names.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import resource
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from netplay._model import State
from netplay.errors import FabricError, StateError
from netplay.fabric import _linux as linux
from netplay.fabric import _namespaces as namespaces
from netplay.fabric import _netlink as nl
from netplay.fabric import _nft as nft
from netplay.fabric import _procs as procs
from netplay.fabric._namespaces import HostSetup, Privacy
from netplay.fabric._state import TMP_PREFIX, Paths, list_names, read_state
from netplay.fabric._userns import as_root, subordinate_ids
from netplay.topology import Topology

log = logging.getLogger("netplay")
RUN_NETNS = Path("/run/netns")
SPARE_FDS = 256  # what the build holds open besides the namespaces' fds
RUN_NETNS_MARK = ".made-run-netns"  # in the playgrounds' directory: netplay made /run/netns


def _specs(topology: Topology, setup: HostSetup) -> list[namespaces.NsSpec]:
    specs = [
        namespaces.NsSpec(
            key=h.name,
            host=True,
            forward=h.forward,
            ttl=h.ttl,
            overlays=setup.overlays.get(h.name, ()),
            mounts=setup.mounts.get(h.name, ()),
            privacy=setup.privacy.get(h.name, Privacy()),
            later=setup.later.get(h.name),
        )
        for h in topology.hosts
    ]
    specs += [
        namespaces.NsSpec(key=nl.switch_key(n.name), host=False)
        for n in topology.networks
        if n.kind == "lan"
    ]
    return specs


def made_by(paths: Paths, topology: Topology) -> tuple[list[str], list[str]]:
    """The pins and the ``ip netns`` links that building ``topology`` makes."""
    specs = _specs(topology, HostSetup())
    pins = [pin for s in specs for pin in namespaces.pins_of(paths, s)]
    links = [str(p) for s in specs if (p := paths.netns_link(s.key))]
    return pins, links


def hosts_pinned(pins: Sequence[str]) -> int:
    """How many hosts the pins name (a host has UTS namespace; a switch has not)."""
    return sum(1 for pin in pins if Paths.kind_of(pin) == "uts")


def build(
    paths: Paths,
    topology: Topology,
    setup: HostSetup,
    meanwhile: Callable[[], object] = lambda: None,
) -> None:
    """Make every namespace (hosts as ``setup`` says), wire them together, and
    set up NAT in the hosts that do it.  ``meanwhile`` is the caller's work,
    done in this thread while the namespace factory (a child) works."""
    specs = _specs(topology, setup)
    _may_open(len(specs))
    namespaces.create(paths, specs, setup.template, meanwhile)
    for net in topology.networks:  # before a host comes up and reports its groups
        if net.kind == "lan" and nl.Switch(len(net.attachments)).large:
            sw = nl.switch_key(net.name)
            nft.apply(paths.net_pin(sw), nft.quiet_switch(), f"the switch of {net.name}")
    fds: dict[str, int] = {}
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)

    def socket_in(key: str) -> nl.Socket:
        # by the fds held for the veths' other ends, not namespaces.netns: opening
        # the pin and this thread's namespace was half the cost, 40,000 times in line:10000
        linux.setns(fds[key], linux.CLONE_NEWNET)
        try:
            return nl.Socket()
        finally:
            linux.setns(home, linux.CLONE_NEWNET)

    try:
        for spec in specs:
            fds[spec.key] = os.open(paths.net_pin(spec.key), os.O_RDONLY)
        nl.execute(nl.plan(topology, fds), socket_in)
    finally:
        for fd in [home, *fds.values()]:
            os.close(fd)
    for host in topology.hosts:
        if host.nat:
            outside = topology.network(host.nat).attachment(host.name)
            assert outside is not None
            nft.apply(paths.net_pin(host.name), nft.home_router(outside.ifname), host.name)


def _may_open(namespaces: int) -> None:
    """Let this process hold an fd of every namespace at once (the build
    does, for the veths' other ends), or say why it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = namespaces + SPARE_FDS
    if wanted <= soft:
        return
    if hard != resource.RLIM_INFINITY and wanted > hard:
        raise FabricError(
            f"{namespaces} namespaces need {wanted} open files at once, "
            f"and this process may open at most {hard}",
            hint="raise the limit (ulimit -n as root, or LimitNOFILE) or make the topology smaller",
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def note_run_netns(paths: Paths) -> bool:
    """As root, before the first ``ip netns`` link: if /run/netns does not exist
    yet, say that netplay makes it (a marker among the playgrounds), so that
    whichever playground goes down last removes it; whether it was made now."""
    if not paths.root or RUN_NETNS.exists():
        return False
    (paths.base / RUN_NETNS_MARK).touch()
    return True


def teardown(paths: Paths, pins: Sequence[str], links: Sequence[str]) -> None:
    """End every process in the pinned namespaces, then unpin and unlink them
    (run where the namespaces are: see :class:`~netplay.fabric.Realm`)."""
    pinned = [Path(p) for p in pins]
    inodes = namespaces.inodes(pinned)
    if inodes:
        procs.terminate(procs.in_namespaces(inodes))
    namespaces.remove(paths, pinned, [Path(p) for p in links])
    mark = paths.base / RUN_NETNS_MARK
    if mark.exists():
        with contextlib.suppress(OSError):  # not while other links are in it
            with contextlib.suppress(FileNotFoundError):  # an up that failed before making it
                RUN_NETNS.rmdir()
            mark.unlink()


def namespaces_of(pins: Sequence[str]) -> list[int]:
    """The inodes of the namespaces behind a playground's pins (where they are)."""
    return sorted(namespaces.inodes([Path(p) for p in pins]))


def end_keeper(state: State) -> None:
    """Rootless: end the playground's keeper and every process left in its user
    namespace.  Only while the keeper lives is that namespace surely this
    playground's (a namespace's number is reused once it is freed).  Without
    it, what is ended is the services' runners and their sessions, each
    recognised by its pid and start time, and what else is in its user
    namespace *and* in one of its hosts' (``state.namespaces``): what ``exec``
    or ``shell`` started.  Two numbers both reused for one process, by a
    namespace that no living playground of this user holds, is not a risk
    worth a process of someone else's."""
    keeper = state.keeper
    if keeper is not None and procs.alive(keeper.pid, keeper.start):
        if state.userns is not None:
            procs.terminate(procs.in_user_namespace(state.userns))
        procs.terminate([keeper.pid], grace=0)
    elif keeper is not None:
        live = [r.pid for r in state.runners.values() if procs.alive(r.pid, r.start)]
        left = {pid for runner in live for pid in procs.in_session(runner)}
        if state.userns is not None and state.userns not in _held_by_others(state):
            inside = set(procs.in_namespaces(state.namespaces))
            left |= inside & set(procs.in_user_namespace(state.userns))
        procs.terminate(left)


def _held_by_others(state: State) -> set[int]:
    """The user namespaces of this user's other playgrounds whose keepers live."""
    held = set()
    base = Paths.of(state.name).base
    for name in list_names(base):
        if name == state.name:
            continue
        with contextlib.suppress(StateError):
            other = read_state(Paths.of(name))
            keeper = other.keeper if other else None
            if other and other.userns and keeper and procs.alive(keeper.pid, keeper.start):
                held.add(other.userns)
    return held


def remove_state(paths: Paths, *, keep_dir: bool = False, keep_base: bool = False) -> None:
    """Remove the state file and the playground's directories, once the other
    layers have removed their files; a directory holding files netplay did not
    make is left, with a warning.  ``keep_dir``: the directory stays (it holds
    the logs of an ``up`` that failed).  ``keep_base``: the playgrounds'
    directory stays, even empty (an ``up`` holds it: see :func:`claim`)."""
    unfinished = sorted(paths.dir.glob(f"{TMP_PREFIX}*")) if paths.dir.is_dir() else []
    for path in (paths.ns_dir, paths.fresh_dir, paths.state, paths.lock, *unfinished):
        remove_path(path)
    if keep_dir:
        return
    remove_path(paths.dir)
    if keep_base:
        return
    with contextlib.suppress(OSError):
        paths.base.rmdir()  # not while other playgrounds live there


def remove_path(path: Path) -> None:
    """Remove a file or an empty directory; missing is fine, a full directory is left."""
    try:
        path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            raise
        log.warning("left %s: it holds files netplay did not make", path)


def remove_tree(path: Path) -> None:
    """Remove a tree; missing is fine.  Without root's right to enter any
    directory, those without permissions in it (an overlay leaves such in
    its work directory) are opened to their owner first; and where this user
    has subordinate ids, which a rootless playground's accounts own files
    as, it is removed as root of a user namespace that maps them."""
    if not (path.exists() or path.is_symlink()):
        return
    if os.geteuid() != 0:
        if subordinate_ids() is not None:
            as_root(shutil.rmtree, path)
            return
        for top, directories, _files in os.walk(path):
            for name in directories:
                inner = os.path.join(top, name)
                if not os.path.islink(inner):
                    with contextlib.suppress(OSError):
                        os.chmod(inner, stat.S_IRWXU)
    shutil.rmtree(path)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive use of what ``path`` (a lock file, made if missing) stands for,
    across processes; let go when the block ends or the process dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

"""Making and removing a playground, layer by layer: what :class:`Playground` orchestrates.

:func:`begin` checks what can be checked before anything exists and
writes the state file naming all that will be made; :func:`make` then has
each layer make its part, in order: the CA and certificates
(:mod:`netplay.pki`), the hosts' files (:mod:`netplay.hosts`), the
namespaces, links and NAT (:mod:`netplay.fabric`), and the services
(:mod:`netplay.services`).  :func:`teardown` asks each layer to remove
what it made, the processes and namespaces first; :func:`remove` does it
for a playground found by name, even one whose state file is damaged or
of another version.  A crash at any point leaves nothing that ``down``
cannot find.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import gc
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from netplay import _status, fabric, hosts, pki, services
from netplay import topology as topologies
from netplay._model import Mode, PlaygroundState, Source, State
from netplay.errors import AlreadyRunningError, NotRunningError, StateError, UsageError
from netplay.fabric import Paths, Realm
from netplay.topology import Topology

log = logging.getLogger("netplay")


def begin(paths: Paths, topology: Topology, source: Source, tag: str | None) -> State:
    """Check what can be checked, clean up after a crash of the same name,
    and write the state file naming everything that is about to be made."""
    if any(h.nat for h in topology.hosts):
        fabric.nft_path()
    topologies.dns_zones(topology)  # its records, checked
    services.contexts(topology, pki.Store(paths.data), paths.service_data)
    try:
        return _claim(paths, topology, source, tag)
    except BaseException:
        # The playgrounds' directory, which claim made if it was missing, goes as
        # `down` of the last playground removes it: only if empty, so never while
        # a playground (one running under this name, say) is in it.
        with contextlib.suppress(OSError):
            paths.base.rmdir()
        raise


def _claim(paths: Paths, topology: Topology, source: Source, tag: str | None) -> State:
    with fabric.claim(paths):
        clear_crashed(paths)
        _forget_failed_up(paths, keep_base=True)
        state = State(
            name=paths.name,
            mode=Mode.ROOT if paths.root else Mode.ROOTLESS,
            source=source,
            owner=fabric.process(os.getpid()),
            created=time.time(),
            data=str(paths.data),
            tag=tag,
        )
        state.pins, state.links = fabric.made_by(paths, topology)
        state.made_run_netns = fabric.note_run_netns(paths)
        if paths.root:
            fabric.write_state(paths, state)
            return state
        try:
            with fabric.start_keeper(paths.name) as (state.keeper, state.userns):
                fabric.write_state(paths, state)
        except BaseException:
            fabric.end_keeper(state)
            raise
    return state


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector for the body.

    Building a large playground allocates millions of objects that live
    until it ends (the topology, the requests that wire it), and the
    collector's passes over them were more than half the time of generating
    and planning line:10000.  Nothing built makes cycles worth collecting.
    A process forked in the body inherits the collector off: services and
    the rootless keeper start outside it.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def make(paths: Paths, topology: Topology, state: State) -> State:
    """Make everything, where the namespaces are; return the state with the runners."""
    with collector_off():
        store = pki.Store(paths.data)
        now = dt.datetime.now(dt.UTC)
        wanted = pki.wanted(topology, topologies.dns_zones(topology))
        # a host with services is entered at once; one without, maybe never: its
        # view and certificate are made at its first entry
        later = frozenset(h.name for h in topology.hosts if not h.services)
        plan = store.ensure(paths.name, wanted, topology.domain or "localhost", now, later)
        if plan.issued:
            log.info("issued %d certificates in %s", len(plan.issued), store.dir)
        setup = hosts.write_files(paths, topology, store)
        groups = services.by_engine(services.contexts(topology, store, paths.service_data))
        # the first engine's imports (the book's: SSH's, for twelve servers) while
        # the kernel makes the namespaces; the others', each as its runners fork
        preload = functools.partial(services.preload, groups[:1])
        fabric.build(paths, topology, dataclasses.replace(setup, later=plan.later), preload)
        if not paths.root:  # what only a rootless down may need (State.namespaces)
            state.namespaces = fabric.namespaces_of(state.pins)
    try:
        services.start_all(paths, groups, state.runners, preloaded=1)
    finally:
        fabric.write_state(paths, state)
    return state


def teardown(
    paths: Paths, state: State, *, keep_logs: bool = False, keep_base: bool = False
) -> None:
    """Ask each layer to remove what it made, the namespaces and processes
    first; a step that fails does not keep the others from their work (the
    first failure is raised once all have run).  With ``keep_logs`` the
    services' logs stay, for an ``up`` that failed (the next ``up`` or
    ``down`` removes them); with ``keep_base`` the playgrounds' directory,
    which an ``up`` holds (:func:`fabric.claim`)."""
    realm = Realm(state.keeper, state.userns)
    steps: list[Callable[[], object]] = []
    if state.keeper is None or fabric.alive(state.keeper.pid, state.keeper.start):
        pins, links = state.pins, state.links
        steps.append(lambda: realm.call(fabric.teardown, paths, pins, links))
    steps += [
        lambda: fabric.end_keeper(state),
        lambda: services.remove_files(paths, keep_logs=keep_logs),
        lambda: hosts.remove_files(paths),
        lambda: fabric.remove_state(paths, keep_dir=keep_logs, keep_base=keep_base),
    ]
    all_of(steps)


def all_of(steps: Iterable[Callable[[], object]]) -> None:
    """Run every step, even after one fails; then raise the first failure."""
    failure: BaseException | None = None
    for step in steps:
        try:
            step()
        except BaseException as exc:
            failure = failure or exc
    if failure is not None:
        raise failure


def remove(paths: Paths, purge: bool) -> bool:
    """Remove a playground, running or left by a crash, and with ``purge`` its
    CA and certificates; whether there was anything to remove."""
    data = kept_in(paths)
    state = read_any(paths)
    # purged first: where the data directory is inside the playgrounds'
    # (netplay.testing's), the last one's teardown then removes both
    purged = purge and purge_data(data)
    if state is not None:
        teardown(paths, state)
    else:
        _forget_failed_up(paths)
    return state is not None or purged


def _forget_failed_up(paths: Paths, *, keep_base: bool = False) -> None:
    """The logs an ``up`` that failed kept, and the directory they were in."""
    services.remove_files(paths)
    fabric.remove_state(paths, keep_base=keep_base)


def purge_data(data: Path) -> bool:
    """Delete all a playground keeps in the data directory ``data``: the
    hosts' layers first (only their remover opens the directories an overlay
    leaves without permissions, rootless), then the CA, the certificates and
    the rest; whether there was anything."""
    hosts.forget(data)
    return pki.Store(data).purge()


def forget(data: Path) -> None:
    """Delete what the services and hosts kept across ``down`` in the data
    directory ``data`` (not the CA and certificates)."""
    fabric.remove_tree(data / fabric.SERVICE_DATA)  # rootless, the hosts' users' files too
    hosts.forget(data)


def clear_crashed(paths: Paths) -> None:
    """Before ``up``: refuse if the name is in use, clean up if a crash left it."""
    old = read_any(paths)
    if old is None:
        return
    if _status.running(old):
        raise AlreadyRunningError(
            f"a playground named {paths.name!r} is already running",
            hint=f"use it, stop it with `netplay down --name {paths.name}`, "
            "or start another with --name",
        )
    log.info("removing what a crashed playground %s left", paths.name)
    teardown(paths, old, keep_base=True)  # called in claim()


def read_any(paths: Paths) -> State | None:
    """The state of the playground at ``paths``, or what can be known of it
    when its state file is damaged or of another version (:func:`fabric.salvage`)."""
    try:
        return fabric.read_state(paths)
    except StateError:
        raw = fabric.read_raw(paths)
        return None if raw is None else fabric.salvage(paths, raw)


def kept_in(paths: Paths) -> Path:
    """The CA and certificates: where the state says they are (the environment
    that chose the data directory may differ now), else where they would be."""
    with contextlib.suppress(StateError):
        state = fabric.read_state(paths)
        if state is not None:
            return Path(state.data)
    return paths.data


def only_name() -> str:
    names = fabric.list_names(fabric.base_dir())
    running = [n for n in names if _status.summary(n).state is PlaygroundState.RUNNING]
    if len(running) == 1:
        return running[0]
    if not running:
        if names:
            raise NotRunningError(
                f"no playground is running (left by a crash: {', '.join(names)})",
                hint="clean up with `netplay down --name NAME`, or start one with `netplay up`",
            )
        raise NotRunningError("no playground is running")
    raise UsageError(
        f"several playgrounds are running ({', '.join(running)})",
        hint="choose one with --name",
    )

"""The service layer as the playground uses it: check, start all, status, control.

``preload`` has engines prepare what their servers share (their imports);
``start_all`` then forks every runner at once and waits until each has
reported healthy or failed; the first failure names the service, its
reason and the last lines of its log.  Control (restart, stop, start) is a
signal to the service's runner, followed by waiting for the state it leads
to.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import time
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

from netplay._model import Process, ServiceState, ServiceStatus
from netplay.errors import ServiceError, TopologyError, UnknownHostError, UsageError
from netplay.fabric import Paths, alive, process, remove_path
from netplay.pki import Store
from netplay.services import _runner as runner
from netplay.services._base import Context, Engine
from netplay.services._logs import last_words
from netplay.services._registry import engine_of
from netplay.topology import Topology

REPORT_SLACK_S = 5.0  # beyond the longest health timeout, for starting the runners
CONTROL_TIMEOUT_S = runner.HEALTH_TIMEOUT_S + runner.STOP_GRACE_S + REPORT_SLACK_S
LOG_LINES_IN_ERRORS = 3
ACTIONS = {"restart": signal.SIGHUP, "stop": signal.SIGUSR1, "start": signal.SIGUSR2}

Group = tuple[Engine, list[Context]]  # an engine and its services (by_engine)


def contexts(topology: Topology, store: Store, data: Path) -> list[tuple[Context, Engine]]:
    """Every declared service with its engine, checked (TopologyError names the field):
    its options, and that no two services of a host listen on one port."""
    found = []
    for host in topology.hosts:
        taken: dict[str, str] = {}
        for i, service in enumerate(host.services):
            where = f"hosts.{host.name}.services[{i}]"
            ctx = Context(topology, host.name, service, store, data / host.name)
            _name, engine = engine_of(service, where)
            engine.check(ctx, where)
            # tcp/80 and tcp6/80 may be one dual-stack socket: count them as one port
            parts = (listen.partition("/") for listen in engine.listens(ctx))
            keys = {f"{protocol.rstrip('6')}/{port}" for protocol, _, port in parts}
            for key in sorted(keys):
                if key in taken:
                    raise TopologyError(
                        f"{key} is taken by {host.name}/{taken[key]} already",
                        field=f"{where}.ports",
                    )
                taken[key] = service.name
            found.append((ctx, engine))
    return found


def by_engine(declared: Sequence[tuple[Context, Engine]]) -> list[Group]:
    """The services of ``declared`` (:func:`contexts`) by engine, in the order
    each engine first appears."""
    groups: dict[int, Group] = {}
    for ctx, engine in declared:
        groups.setdefault(id(engine), (engine, []))[1].append(ctx)
    return list(groups.values())


def preload(groups: Sequence[Group]) -> None:
    """Have each engine of ``groups`` prepare, once, in this process, what its
    servers need (:meth:`Engine.preload`: their imports), before the runners fork."""
    for engine, theirs in groups:
        engine.preload(theirs)


def start_all(
    paths: Paths,
    groups: Sequence[Group],
    runners: MutableMapping[str, Process],
    *,
    preloaded: int = 0,
) -> None:
    """Start every service of ``groups`` (:func:`by_engine`) in parallel;
    return once all are healthy.

    The engines after the first ``preloaded`` are preloaded here, each just
    before its runners fork: a server inherits the modules of its own engine
    and of those before it, not of those after (the book's idle SSH servers,
    forked first, were a sixth larger when forked after www's Flask and
    httpbin were imported).  Each runner is recorded in ``runners`` as soon
    as it exists (the caller writes the state file); raise ServiceError for
    the first service that did not become healthy.
    """
    reports: dict[int, Context] = {}
    try:
        try:
            for i, (engine, theirs) in enumerate(groups):
                if i >= preloaded:
                    engine.preload(theirs)
                # What this process holds (its imports, the preloads) stays shared
                # with the runners and servers: frozen, their garbage collector's
                # passes do not write to each object's header, and so copy its
                # page (the gc module's advice for a fork without exec).
                gc.freeze()
                for ctx in theirs:
                    pid, report = runner.spawn(ctx, engine, paths)
                    runners[ctx.id] = process(pid)
                    reports[report] = ctx
        finally:
            gc.unfreeze()
        longest = max(
            [float(c.option("health_timeout", runner.HEALTH_TIMEOUT_S)) for c in reports.values()],
            default=0.0,
        )
        failures = _wait_reports(reports, longest + REPORT_SLACK_S)
    finally:
        for fd in reports:
            os.close(fd)
    if failures:
        ctx, reason = failures[0]
        log = runner.Files.of(paths, ctx.host, ctx.service.name).log
        tail = " | ".join(line.strip() for line in last_words(log, LOG_LINES_IN_ERRORS))
        raise ServiceError(
            f"the service {ctx.id} did not start: {reason}" + (f" (log: {tail})" if tail else ""),
            hint=f"its whole log is {log} until the next up; check the service's declaration",
        )


def _wait_reports(reports: dict[int, Context], timeout: float) -> list[tuple[Context, str]]:
    waiting = dict(reports)
    buffers = {fd: b"" for fd in waiting}
    failures = []
    deadline = time.monotonic() + timeout
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            failures += [(ctx, "its runner did not report") for ctx in waiting.values()]
            break
        readable, _, _ = select.select(list(waiting), [], [], left)
        for fd in readable:
            chunk = os.read(fd, 4096)
            buffers[fd] += chunk
            if chunk and b"\n" not in buffers[fd]:
                continue
            line = buffers[fd].decode(errors="replace").strip()
            ctx = waiting.pop(fd)
            if line != "ready":
                failures.append((ctx, line.removeprefix("failed ") or "its runner died"))
    return failures


def status(
    paths: Paths, topology: Topology, runners: Mapping[str, Process]
) -> tuple[ServiceStatus, ...]:
    """Every declared service: host, name, kind, engine, where it listens, state, restarts."""
    found = []
    for host in topology.hosts:
        for i, service in enumerate(host.services):
            ident = f"{host.name}/{service.name}"
            files = runner.Files.of(paths, host.name, service.name)
            seen = runner.read(files) or runner.RunnerState(id=ident)
            known = runners.get(ident)
            live = known is not None and alive(known.pid, known.start)
            found.append(
                ServiceStatus(
                    id=ident,
                    host=host.name,
                    name=service.name,
                    kind=service.kind,
                    engine=engine_of(service, f"hosts.{host.name}.services[{i}]")[0],
                    listens=seen.listens,
                    state=seen.state if live else ServiceState.STOPPED,
                    pid=seen.pid if live else None,
                    restarts=seen.restarts,
                    reason=seen.reason if live or known is None else "its runner is gone",
                    log=str(files.log),
                )
            )
    return tuple(found)


def control(
    paths: Paths, topology: Topology, runners: Mapping[str, Process], ident: str, action: str
) -> ServiceStatus:
    """Restart, stop or start one service; return its status once settled."""
    if action not in ACTIONS:
        raise UsageError(f"{action!r} is not one of {', '.join(ACTIONS)}")
    known = runners.get(ident)
    if known is None:
        raise UnknownHostError(f"there is no service {ident!r} (there are: {_names(runners)})")
    if not alive(known.pid, known.start):
        raise ServiceError(f"the runner of {ident} is gone", hint="restart the playground")
    host, name = ident.split("/", 1)
    files = runner.Files.of(paths, host, name)
    before = runner.read(files)
    handled = before.handled if before else 0
    os.kill(known.pid, ACTIONS[action])
    deadline = time.monotonic() + CONTROL_TIMEOUT_S
    while (now := runner.read(files)) is None or now.handled <= handled:
        if time.monotonic() > deadline:
            raise ServiceError(f"{ident} did not {action} in {CONTROL_TIMEOUT_S:.0f} s")
        time.sleep(0.05)
    return next(s for s in status(paths, topology, runners) if s.id == ident)


def _names(runners: Mapping[str, Process]) -> str:
    return ", ".join(runners) or "none"


def remove_files(paths: Paths, *, keep_logs: bool = False) -> None:
    """Remove the runners' states and logs (and only those); with ``keep_logs``,
    the logs stay (an ``up`` that failed keeps them for the user to read)."""
    where = runner.directory(paths)
    if where.is_dir():
        kept = (".log",) if keep_logs else ()
        for path in sorted(where.iterdir()):
            if path.suffix in (".json", ".log", ".tmp") and path.suffix not in kept:
                remove_path(path)
    if not keep_logs:
        remove_path(where)

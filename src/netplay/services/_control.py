"""The service layer as the playground uses it: check, start all, status, control.

``start_all`` forks every runner at once and waits until each has reported
healthy or failed; the first failure names the service, its reason and
the last lines of its log.  Control (restart, stop, start) is a signal to
the service's runner, followed by waiting for the state it leads to.
"""

from __future__ import annotations

import os
import select
import signal
import time
from typing import Any

from netplay import dns
from netplay.errors import ServiceError
from netplay.fabric import _namespaces as namespaces
from netplay.fabric import _procs as procs
from netplay.fabric._state import Paths
from netplay.pki import Store
from netplay.services import _runner as runner
from netplay.services._base import Context, Engine, engine_name, engine_of
from netplay.topology import Topology

REPORT_SLACK_S = 5.0  # beyond the longest health timeout, for starting the runners
CONTROL_TIMEOUT_S = runner.HEALTH_TIMEOUT_S + runner.STOP_GRACE_S + REPORT_SLACK_S
LOG_LINES_IN_ERRORS = 3
ACTIONS = {"restart": signal.SIGHUP, "stop": signal.SIGUSR1, "start": signal.SIGUSR2}


def contexts(topology: Topology, store: Store, zones: dns.Zones) -> list[tuple[Context, Engine]]:
    """Every declared service with its engine, checked (TopologyError names the field)."""
    found = []
    for host in topology.hosts:
        for i, service in enumerate(host.services):
            where = f"hosts.{host.name}.services[{i}]"
            ctx = Context(topology, host.name, service, store, zones)
            engine = engine_of(service, where)
            engine.check(ctx, where)
            found.append((ctx, engine))
    return found


def _tail(path: os.PathLike[str] | str, lines: int) -> list[str]:
    """The server's last words: its last lines that are neither the runner's
    nor informational."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    said = [
        line
        for line in text.splitlines()
        if line.strip() and " netplay: " not in line and not line.startswith("[INFO]")
    ]
    return said[-lines:]


def start_all(
    paths: Paths, topology: Topology, store: Store, zones: dns.Zones, state: dict[str, Any]
) -> None:
    """Start every service in parallel; return once all are healthy.

    Each runner is recorded in ``state["services"]`` as soon as it exists
    (the caller writes the state file); raise ServiceError for the first
    service that did not become healthy.
    """
    reports: dict[int, Context] = {}
    recorded: dict[str, Any] = state.setdefault("services", {})
    try:
        for ctx, engine in contexts(topology, store, zones):
            fds = namespaces.open_host(paths, ctx.host)
            try:
                files = runner.Files.of(paths, ctx.host, ctx.service.name)
                pid, report = runner.spawn(ctx, engine, files, fds)
            finally:
                for fd, _kind in fds:
                    os.close(fd)
            recorded[ctx.id] = {"runner": pid, "start": procs.start_time(pid)}
            reports[report] = ctx
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
        tail = " | ".join(line.strip() for line in _tail(log, LOG_LINES_IN_ERRORS))
        raise ServiceError(
            f"the service {ctx.id} did not start: {reason}" + (f" (log: {tail})" if tail else ""),
            hint="check the service's declaration; `netplay up --debug` shows more",
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


def status(paths: Paths, topology: Topology, state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every declared service: host, name, kind, engine, where it listens, state, restarts."""
    found = []
    for host in topology.hosts:
        for service in host.services:
            ident = f"{host.name}/{service.name}"
            files = runner.Files.of(paths, host.name, service.name)
            seen = runner.read(files)
            known = state.get("services", {}).get(ident)
            alive = known is not None and procs.alive(known["runner"], known.get("start"))
            found.append(
                {
                    "id": ident,
                    "host": host.name,
                    "name": service.name,
                    "kind": service.kind,
                    "engine": engine_name(service),
                    "listens": seen.get("listens", []),
                    "state": seen.get("state", "stopped") if alive else "stopped",
                    "pid": seen.get("pid") if alive else None,
                    "restarts": seen.get("restarts", 0),
                    "reason": seen.get("reason", ""),
                    "log": str(files.log),
                }
            )
    return found


def control(
    paths: Paths, topology: Topology, state: dict[str, Any], ident: str, action: str
) -> dict[str, Any]:
    """Restart, stop or start one service; return its status once settled."""
    known = state.get("services", {}).get(ident)
    if known is None:
        names = ", ".join(state.get("services", {})) or "none"
        raise ServiceError(f"there is no service {ident!r} (there are: {names})")
    if not procs.alive(known["runner"], known.get("start")):
        raise ServiceError(f"the runner of {ident} is gone", hint="restart the playground")
    host, name = ident.split("/", 1)
    files = runner.Files.of(paths, host, name)
    handled = runner.read(files).get("handled", 0)
    os.kill(known["runner"], ACTIONS[action])
    deadline = time.monotonic() + CONTROL_TIMEOUT_S
    while runner.read(files).get("handled", 0) <= handled:
        if time.monotonic() > deadline:
            raise ServiceError(f"{ident} did not {action} in {CONTROL_TIMEOUT_S:.0f} s")
        time.sleep(0.05)
    return next(s for s in status(paths, topology, state) if s["id"] == ident)

"""Pure formatting of what the CLI prints: status and list tables, faults, a service.

rich, which draws the tables, is imported by the functions that draw one:
every command imports this module, and rich took a fifth of the time
``netplay up`` spends on its imports before it starts any work.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from netplay import CableFaults, Mode, ServiceState, ServiceStatus, Status, Summary

if TYPE_CHECKING:
    from rich.table import Table


def _render(*tables: Table) -> str:
    from rich.console import Console

    out = io.StringIO()
    console = Console(
        file=out, width=120, color_system=None, emoji=False, markup=False, highlight=False
    )
    for table in tables:
        console.print(table)
    return out.getvalue()


ROOTLESS_SHARED = (
    "rootless: a directory with the machine's mounts below it (/run, on most systems) "
    "is every host's, shared (docs/topology.md, Users)\n"
)
ROOTLESS_ONE_USER = (
    "rootless without subordinate ids (/etc/subuid): the hosts' accounts share one "
    "user id (yours; root inside), so no program can become another user and files "
    "are root's there\n"
)


def format_status(status: Status) -> str:
    """The status of one playground as text tables (and, rootless, what differs)."""
    text = _tables(status)
    if status.mode == Mode.ROOTLESS:
        text += ROOTLESS_SHARED + (ROOTLESS_ONE_USER if status.one_user else "")
    return text


def _tables(status: Status) -> str:
    from rich.table import Table

    hosts = Table(title=f"playground {status.name} ({status.topology}, {status.mode})")
    for column in ("host", "interface", "network", "addresses", "state", "role"):
        hosts.add_column(column)
    for host in status.hosts:
        role = "nat router" if host.nat else "router" if host.forward else ""
        for i, iface in enumerate(host.interfaces):
            hosts.add_row(
                host.name if i == 0 else "",
                iface.name,
                iface.network,
                " ".join(iface.addresses),
                iface.state,
                role if i == 0 else "",
            )
    networks = Table(title="networks")
    for column in ("network", "kind", "mtu", "hosts", "faults"):
        networks.add_column(column)
    for net in status.networks:
        here = [
            f"{cable.split('/')[0]}: {describe_faults(faults)}"
            for cable, faults in status.faults.items()
            if cable.split("/", 1)[1] == net.name
        ]
        networks.add_row(net.name, net.kind, str(net.mtu), " ".join(net.hosts), "; ".join(here))
    if not status.services:
        return _render(hosts, networks)
    services = Table(title="services")
    for column in ("service", "kind", "engine", "listens on", "state", "pid", "restarts"):
        services.add_column(column)
    for service in status.services:
        services.add_row(
            service.id,
            service.kind,
            service.engine,
            " ".join(service.listens),
            _state(service),
            str(service.pid or ""),
            str(service.restarts),
        )
    return _render(hosts, networks, services)


def _state(service: ServiceStatus) -> str:
    if service.reason and service.state in (ServiceState.FAILED, ServiceState.RESTARTING):
        return f"{service.state}: {service.reason}"
    return str(service.state)


def format_service(service: ServiceStatus) -> str:
    """One line for a service after it was controlled: ``www/https: running, pid 42``."""
    pid = f", pid {service.pid}" if service.pid else ""
    reason = f" ({service.reason})" if service.reason else ""
    return f"{service.id}: {service.state}{pid}{reason}\n"


def describe_faults(faults: CableFaults) -> str:
    """One line for a cable's faults, e.g. ``loss 20%, rate 1mbit (only what isp sends)``."""
    parts = []
    if faults.loss:
        parts.append(f"loss {faults.loss:g}%")
    if faults.rate:
        parts.append(f"rate {faults.rate}")
    if faults.delay:
        parts.append(f"delay {faults.delay}")
    if faults.jitter:
        parts.append(f"jitter {faults.jitter}")
    if faults.only_from and parts:
        parts[-1] += f" (only what {faults.only_from} sends)"
    if faults.down:
        parts.append("down")
    return ", ".join(parts) or "clear"


def format_list(rows: Sequence[Summary]) -> str:
    """The playgrounds of this user, one row each."""
    if not rows:
        return "no playground is running\n"
    from rich.table import Table

    table = Table()
    for column in ("name", "state", "mode", "topology", "hosts"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, row.state, row.mode or "?", row.spec, str(row.hosts))
    return _render(table)

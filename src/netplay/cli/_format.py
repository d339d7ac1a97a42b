"""Pure formatting of what the CLI prints: status and list tables."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def _render(*tables: Table) -> str:
    out = io.StringIO()
    console = Console(
        file=out, width=120, color_system=None, emoji=False, markup=False, highlight=False
    )
    for table in tables:
        console.print(table)
    return out.getvalue()


def format_status(status: dict[str, Any]) -> str:
    """The status of one playground as text tables."""
    hosts = Table(title=f"playground {status['name']} ({status['topology']}, {status['mode']})")
    for column in ("host", "interface", "network", "addresses", "state", "role"):
        hosts.add_column(column)
    for host in status["hosts"]:
        role = "nat router" if host["nat"] else "router" if host["forward"] else ""
        for i, iface in enumerate(host["interfaces"]):
            hosts.add_row(
                host["name"] if i == 0 else "",
                iface["name"],
                iface["network"],
                " ".join(iface["addresses"]),
                iface["state"],
                role if i == 0 else "",
            )
    networks = Table(title="networks")
    for column in ("network", "kind", "mtu", "hosts", "faults"):
        networks.add_column(column)
    faults = status.get("faults", {})
    for net in status["networks"]:
        here = [
            f"{cable.split('/')[0]}: {describe_faults(f)}"
            for cable, f in faults.items()
            if cable.split("/", 1)[1] == net["name"]
        ]
        networks.add_row(
            net["name"], net["kind"], str(net["mtu"]), " ".join(net["hosts"]), "; ".join(here)
        )
    if not status.get("services"):
        return _render(hosts, networks)
    services = Table(title="services")
    for column in ("service", "kind", "engine", "listens on", "state", "pid", "restarts"):
        services.add_column(column)
    for service in status["services"]:
        state = service["state"]
        if service.get("reason") and state in ("failed", "restarting"):
            state = f"{state}: {service['reason']}"
        services.add_row(
            service["id"],
            service["kind"],
            service["engine"],
            " ".join(service["listens"]),
            state,
            str(service["pid"] or ""),
            str(service["restarts"]),
        )
    return _render(hosts, networks, services)


def describe_faults(faults: dict[str, Any]) -> str:
    """One line for a cable's faults, e.g. ``loss 20%, rate 1mbit``."""
    if not faults:
        return "clear"
    parts = []
    if "loss" in faults:
        parts.append(f"loss {faults['loss']:g}%")
    if "rate" in faults:
        parts.append(f"rate {faults['rate']}")
    if faults.get("delay"):
        parts.append(f"delay {faults['delay']}")
    if faults.get("jitter"):
        parts.append(f"jitter {faults['jitter']}")
    if faults.get("down"):
        parts.append("down")
    return ", ".join(parts)


def format_list(rows: Sequence[dict[str, Any]]) -> str:
    """The playgrounds of this user, one row each."""
    if not rows:
        return "no playground is running\n"
    table = Table()
    for column in ("name", "state", "mode", "topology", "hosts"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["state"], row["mode"], row["topology"], str(row["hosts"]))
    return _render(table)

"""Reading interfaces back from the kernel: their state, MTU and global addresses."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netplay._model import InterfaceState
from netplay.fabric import _netlink as nl
from netplay.fabric._namespaces import netns
from netplay.fabric._state import Paths


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveInterface:
    state: InterfaceState
    mtu: int
    addresses: tuple[str, ...]


def interfaces(paths: Paths, hosts: Iterable[str]) -> dict[str, dict[str, LiveInterface]]:
    """Host -> interface name -> what the kernel says of it (run where the namespaces are)."""
    return {host: _read(paths, host) for host in hosts}


def _read(paths: Paths, host: str) -> dict[str, LiveInterface]:
    from pyroute2 import IPRoute  # on first use: importing it takes about 0.2 s

    links: dict[int, tuple[str, InterfaceState, int]] = {}
    addresses: dict[int, list[str]] = {}
    with netns(paths.net_pin(host)), IPRoute() as ipr:
        for link in ipr.get_links():
            up = link["flags"] & nl.IFF_UP
            state = InterfaceState.UP if up else InterfaceState.DOWN
            links[link["index"]] = (link.get_attr("IFLA_IFNAME"), state, link.get_attr("IFLA_MTU"))
        for addr in ipr.get_addr():
            if addr["scope"] != 0:  # global only, not link-local
                continue
            local = addr.get_attr("IFA_LOCAL") or addr.get_attr("IFA_ADDRESS")
            addresses.setdefault(addr["index"], []).append(f"{local}/{addr['prefixlen']}")
    return {
        name: LiveInterface(state=state, mtu=mtu, addresses=tuple(addresses.get(index, ())))
        for index, (name, state, mtu) in links.items()
    }

"""Wiring namespaces together over rtnetlink (pyroute2).

The whole network is planned first as netlink messages, per namespace and
per phase (create veths, bring links up, add addresses, add routes), then
each namespace's messages of a phase go to the kernel as one batch.  Every
interface gets a fixed ifindex (in a host, ethN is N+2; in a switch, br0 is
2 and port i is i+3), so no message waits for the answer of another.  veth
pairs are created with each end directly in its namespace.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netplay.errors import FabricError
from netplay.topology import Host, Topology

CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
CHANGE = NLM_F_REQUEST | NLM_F_ACK
REPLACE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
IFF_UP = 1
IFA_F_NODAD = 0x02  # IPv6 addresses usable at once, whatever the DAD sysctls say
BRIDGE_INDEX = 2
PHASES = ("create", "up", "addresses", "routes")


def switch_key(lan: str) -> str:
    """The namespace key of a LAN's switch ('.' never occurs in host names)."""
    return f"{lan}.sw"


def host_index(ifname: str) -> int:
    return int(ifname.removeprefix("eth")) + 2


def port_name(i: int) -> str:
    return f"p{i}"


def port_index(i: int) -> int:
    return i + 3


@dataclass(slots=True)
class Plan:
    """Netlink messages per phase and namespace, with a description each."""

    batches: dict[str, dict[str, list[tuple[Any, str]]]] = field(
        default_factory=lambda: {phase: {} for phase in PHASES}
    )

    def add(self, phase: str, ns: str, msg: Any, what: str) -> None:
        self.batches[phase].setdefault(ns, []).append((msg, what))


def _msg(cls: type, kind: int, nlflags: int, **fields: Any) -> Any:
    msg = cls()
    msg["header"] = {"type": kind, "flags": nlflags}
    attrs = fields.pop("attrs", [])
    for key, value in fields.items():
        msg[key] = value
    msg["attrs"] = attrs
    return msg


def veth(ifname: str, index: int, peer: str, peer_index: int, peer_fd: int, mtu: int) -> Any:
    peer_msg = {
        "index": peer_index,
        "attrs": [("IFLA_IFNAME", peer), ("IFLA_NET_NS_FD", peer_fd), ("IFLA_MTU", mtu)],
    }
    info = {
        "attrs": [
            ("IFLA_INFO_KIND", "veth"),
            ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer_msg)]}),
        ]
    }
    attrs = [("IFLA_IFNAME", ifname), ("IFLA_MTU", mtu), ("IFLA_LINKINFO", info)]
    return _msg(ifinfmsg, RTM_NEWLINK, CREATE, index=index, attrs=attrs)


def bridge(index: int) -> Any:
    info = {
        "attrs": [
            ("IFLA_INFO_KIND", "bridge"),
            (
                "IFLA_INFO_DATA",
                {"attrs": [("IFLA_BR_STP_STATE", 0), ("IFLA_BR_FORWARD_DELAY", 0)]},
            ),
        ]
    }
    attrs = [("IFLA_IFNAME", "br0"), ("IFLA_LINKINFO", info)]
    return _msg(ifinfmsg, RTM_NEWLINK, CREATE, index=index, attrs=attrs)


def link_state(index: int, up: bool) -> Any:
    flags = IFF_UP if up else 0
    return _msg(ifinfmsg, RTM_NEWLINK, CHANGE, index=index, flags=flags, change=IFF_UP)


def link_up(index: int, master: int | None = None) -> Any:
    attrs = [("IFLA_MASTER", master)] if master is not None else []
    return _msg(
        ifinfmsg, RTM_NEWLINK, CHANGE, index=index, flags=IFF_UP, change=IFF_UP, attrs=attrs
    )


def address(index: int, local: str, prefixlen: int, version: int, peer: str | None) -> Any:
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    attrs = [("IFA_LOCAL", local), ("IFA_ADDRESS", peer or local)]
    return _msg(
        ifaddrmsg,
        RTM_NEWADDR,
        CREATE,
        family=family,
        prefixlen=prefixlen,
        flags=IFA_F_NODAD if version == 6 else 0,
        index=index,
        attrs=attrs,
    )


def route(dst: str, dst_len: int, via: str, version: int, nlflags: int = CREATE) -> Any:
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    attrs = [("RTA_GATEWAY", via)]
    if dst_len:
        attrs.insert(0, ("RTA_DST", dst))
    return _msg(
        rtmsg,
        RTM_NEWROUTE,
        nlflags,
        family=family,
        dst_len=dst_len,
        table=254,  # main
        proto=4,  # static
        scope=0,  # universe
        type=1,  # unicast
        attrs=attrs,
    )


def plan(topology: Topology, fds: Mapping[str, int]) -> Plan:
    """Every message that builds ``topology``; ``fds`` maps namespace keys to open fds."""
    p = Plan()
    for ns in fds:
        p.add("up", ns, link_up(1), "bring lo up")
    for net in topology.networks:
        if net.kind == "lan":
            sw = switch_key(net.name)
            p.add("create", sw, bridge(BRIDGE_INDEX), f"create the switch of {net.name}")
            p.add("up", sw, link_up(BRIDGE_INDEX), f"bring the switch of {net.name} up")
            for i, att in enumerate(net.attachments):
                p.add(
                    "create",
                    att.host,
                    veth(
                        att.ifname,
                        host_index(att.ifname),
                        port_name(i),
                        port_index(i),
                        fds[sw],
                        net.mtu,
                    ),
                    f"connect {att.host} to {net.name}",
                )
                p.add(
                    "up",
                    sw,
                    link_up(port_index(i), BRIDGE_INDEX),
                    f"plug {att.host} into {net.name}",
                )
        else:
            a, b = net.attachments
            p.add(
                "create",
                a.host,
                veth(
                    a.ifname,
                    host_index(a.ifname),
                    b.ifname,
                    host_index(b.ifname),
                    fds[b.host],
                    net.mtu,
                ),
                f"link {a.host} and {b.host}",
            )
        for att in net.attachments:
            index = host_index(att.ifname)
            p.add("up", att.host, link_up(index), f"bring {att.host} {att.ifname} up")
            for addr in att.addresses:
                peer = net.peer_of(att, addr)
                p.add(
                    "addresses",
                    att.host,
                    address(
                        index,
                        str(addr.ip),
                        addr.network.prefixlen,
                        addr.version,
                        str(peer) if peer else None,
                    ),
                    f"add {addr} to {att.host} {att.ifname}",
                )
    for host in topology.hosts:
        for msg, what in routes(host):
            p.add("routes", host.name, msg, what)
    return p


def routes(host: Host, nlflags: int = CREATE) -> list[tuple[Any, str]]:
    """The host's static routes (REPLACE puts back what a link going down removed)."""
    return [
        (
            route(str(r.to.network_address), r.to.prefixlen, str(r.via), r.to.version, nlflags),
            f"add the route to {r.to} via {r.via} on {host.name}",
        )
        for r in host.routes
    ]


def execute(p: Plan, sockets: Mapping[str, IPRoute]) -> None:
    """Send the plan, phase by phase, one batch per namespace."""
    for phase in PHASES:
        for ns, items in p.batches[phase].items():
            send(sockets[ns], ns, items)


def send(sock: IPRoute, ns: str, items: list[tuple[Any, str]]) -> None:
    """Send one batch; a refusal names what was being done."""
    try:
        sock.nlm_request_batch([msg for msg, _ in items])
    except NetlinkError as exc:
        first, last = items[0][1], items[-1][1]
        raise FabricError(
            f"the kernel refused a step between '{first}' and '{last}' on {ns} "
            f"({exc.args[1] if len(exc.args) > 1 else exc})"
        ) from exc

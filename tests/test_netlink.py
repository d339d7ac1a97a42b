"""Our rtnetlink encoding, read back by pyroute2's decoder, and refusals from a real kernel."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_interface

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netplay import Playground, errors
from netplay.fabric import _netlink as nl
from netplay.fabric import netns
from netplay.topology import star


def decode(cls: type, request: nl.Request) -> dict[str, object]:
    """Parse a request the way pyroute2 parses what the kernel sends."""
    header = nl.NLMSGHDR.pack(nl.NLMSGHDR.size + len(request.body), request.kind, 0, 1, 0)
    msg = cls(header + request.body)
    msg.decode()
    return dict(msg)


def test_veth_request() -> None:
    request = nl.veth("eth1", 3, "p4", 7, 42, 1400)
    msg = decode(ifinfmsg, request)
    assert request.kind == nl.RTM_NEWLINK and request.flags == nl.CREATE
    attrs = dict(msg["attrs"])  # type: ignore[call-overload]
    assert msg["index"] == 3 and attrs["IFLA_IFNAME"] == "eth1" and attrs["IFLA_MTU"] == 1400
    info = dict(attrs["IFLA_LINKINFO"]["attrs"])
    assert info["IFLA_INFO_KIND"] == "veth"
    peer = info["IFLA_INFO_DATA"].get_attr("VETH_INFO_PEER")
    assert peer["index"] == 7
    assert peer.get_attr("IFLA_IFNAME") == "p4" and peer.get_attr("IFLA_NET_NS_FD") == 42


def test_link_up_with_master() -> None:
    msg = decode(ifinfmsg, nl.link_up(5, master=2))
    assert (msg["index"], msg["flags"], msg["change"]) == (5, nl.IFF_UP, nl.IFF_UP)
    assert dict(msg["attrs"])["IFLA_MASTER"] == 2  # type: ignore[call-overload]


def test_a_switch_of_several_bridges() -> None:
    """Ports 0..999 on br0, the next thousand on br1...; every ifindex once."""
    assert nl.Switch(1000).bridges == 1 and nl.Switch(1).bridges == 1
    switch = nl.Switch(2500)
    assert switch.bridges == 3
    masters = [switch.master_of(i) for i in (0, 999, 1000, 1999, 2000, 2499)]
    bridges = [nl.BRIDGE_INDEX, switch.bridge_index(1), switch.bridge_index(2)]
    assert masters == [bridge for bridge in bridges for _ in range(2)]
    indexes = [nl.BRIDGE_INDEX] + [nl.port_index(i) for i in range(switch.ports)]
    for k in range(1, switch.bridges):
        indexes += [switch.bridge_index(k), *switch.uplink_indexes(k)]
    assert len(set(indexes)) == len(indexes) and min(indexes) == nl.BRIDGE_INDEX


def test_a_large_lans_ports_deliver_through_napi() -> None:
    """Past LARGE_LAN hosts: TSO off on every switch port, GRO on every host's
    end, bridges without snooping; a smaller LAN keeps the kernel's defaults."""
    for count, large in ((nl.LARGE_LAN, False), (nl.LARGE_LAN + 1, True)):
        topology = star(count)
        fds = {key: 0 for key in [nl.switch_key("star"), *(h.name for h in topology.hosts)]}
        p = nl.plan(topology, fds)
        ports = p.offloads.get(nl.switch_key("star"), [])
        assert [(o.ifname, o.command, o.on) for o in ports] == (
            [(nl.port_name(i), nl.ETHTOOL_STSO, False) for i in range(count)] if large else []
        )
        ends = [o for h in topology.hosts for o in p.offloads.get(h.name, [])]
        assert [(o.ifname, o.command, o.on) for o in ends] == (
            [("eth0", nl.ETHTOOL_SGRO, True)] * count if large else []
        )
        (created,) = [
            r
            for r in p.batches["create"][nl.switch_key("star")]
            if r.what.startswith("create the switch")
        ]
        linkinfo = dict(decode(ifinfmsg, created)["attrs"])["IFLA_LINKINFO"]  # type: ignore[call-overload]
        data = dict(linkinfo["attrs"])["IFLA_INFO_DATA"]
        assert data.get_attr("IFLA_BR_MCAST_SNOOPING") == (0 if large else None)


def test_address_requests() -> None:
    v4 = decode(ifaddrmsg, nl.address(2, ip_interface("10.25.1.65/16"), None))
    assert (v4["family"], v4["prefixlen"], v4["index"], v4["flags"]) == (socket.AF_INET, 16, 2, 0)
    assert dict(v4["attrs"])["IFA_LOCAL"] == "10.25.1.65"  # type: ignore[call-overload]
    peer = IPv6Address("fd6e:7000:1::2")
    v6 = decode(ifaddrmsg, nl.address(3, ip_interface("fd6e:7000:1::1/128"), peer))
    attrs = dict(v6["attrs"])  # type: ignore[call-overload]
    assert v6["flags"] == nl.IFA_F_NODAD and v6["prefixlen"] == 128
    assert (attrs["IFA_LOCAL"], attrs["IFA_ADDRESS"]) == ("fd6e:7000:1::1", "fd6e:7000:1::2")


def test_route_requests() -> None:
    msg = decode(rtmsg, nl.route(IPv4Network("10.130.0.0/16"), IPv4Address("10.1.1.2")))
    attrs = dict(msg["attrs"])  # type: ignore[call-overload]
    assert (msg["dst_len"], msg["table"], msg["proto"]) == (16, 254, nl.RTPROT_STATIC)
    assert (attrs["RTA_DST"], attrs["RTA_GATEWAY"]) == ("10.130.0.0", "10.1.1.2")
    default = decode(rtmsg, nl.route(IPv4Network("0.0.0.0/0"), IPv4Address("192.168.1.1")))
    assert default["dst_len"] == 0 and "RTA_DST" not in dict(default["attrs"])  # type: ignore[call-overload]
    peer = nl.peer_route(IPv6Address("fd6e:7000:1::2"), 4)
    assert peer.flags == nl.REPLACE
    attrs = dict(decode(rtmsg, peer)["attrs"])  # type: ignore[call-overload]
    assert (attrs["RTA_DST"], attrs["RTA_OIF"], attrs["RTA_PRIORITY"]) == ("fd6e:7000:1::2", 4, 256)


def test_refusal_names_the_step_and_the_kernels_reason(book: Playground) -> None:
    request = nl.route(IPv4Network("10.99.0.0/16"), IPv4Address("10.98.0.1"))
    with netns(book.paths.net_pin("h1")), nl.Socket() as sock:
        with pytest.raises(errors.FabricError) as caught:
            sock.send("h1", [nl.link_up(1).saying("bring lo up"), request.saying("add a route")])
    message = str(caught.value)
    assert message.startswith("the kernel refused to add a route on h1 (")
    assert "gateway" in message.lower() or "unreachable" in message.lower()


def test_many_requests_in_one_batch(book: Playground) -> None:
    """More requests than one datagram carries: every one is sent and acknowledged."""
    gateway = IPv4Address("10.130.1.1")
    requests = [nl.route(IPv4Network(f"10.200.{i}.0/24"), gateway) for i in range(200)]
    www = book.host("www")
    try:
        with netns(book.paths.net_pin("www")), nl.Socket() as sock:
            sock.send("www", requests)
        table = www.run(["ip", "-4", "route", "show", "root", "10.200.0.0/16"], check=True)
        assert len(table.stdout.splitlines()) == 200
    finally:  # the book is shared: take the routes away again
        www.run(["ip", "-4", "route", "flush", "root", "10.200.0.0/16"], check=True)
    assert www.run(["ip", "-4", "route", "show", "root", "10.200.0.0/16"]).stdout == ""


RTM_GETLINK = 18


def _link_attrs(index: int) -> dict[int, bytes]:
    """The kernel's attributes of link ``index`` in this thread's network namespace."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nl.NETLINK_ROUTE) as sock:
        body = nl.IFINFOMSG.pack(0, 0, index, 0, 0)
        header = nl.NLMSGHDR.pack(nl.NLMSGHDR.size + len(body), RTM_GETLINK, nl.NLM_F_REQUEST, 1, 0)
        sock.send(header + body)
        reply = sock.recv(65536)
    return dict(nl.attributes(reply, nl.NLMSGHDR.size + nl.IFINFOMSG.size))


def test_both_ends_of_a_link_take_big_ipv4_segments(book: Playground) -> None:
    """h1's eth0 and its switch port let a TCP sender hand them 185,000 bytes at a time."""
    for key, index in (("h1", nl.host_index("eth0")), ("homeA.sw", nl.port_index(1))):
        with netns(book.paths.net_pin(key)):
            attrs = _link_attrs(index)
        assert nl.U32.unpack(attrs[nl.IFLA_GSO_IPV4_MAX_SIZE]) == (nl.GSO_IPV4_MAX_SIZE,)

"""Wiring namespaces together over rtnetlink.

The whole network is planned first as netlink requests, per namespace and
per phase (create veths, bring links up, add addresses, add routes), then
each namespace's requests of a phase go to the kernel as one batch on one
socket.  Every interface gets a fixed ifindex (in a host, ethN is N+2; in a
switch, br0 is 2 and port i is i+3), so no request waits for the answer of
another.  veth pairs are created with each end directly in its namespace.

A bridge numbers its ports in 10 bits, so a LAN of more than
PORTS_PER_BRIDGE hosts is a switch of several bridges: br1, br2, ... each
take the next PORTS_PER_BRIDGE ports and hang from br0 by a veth pair
(``upK`` on br0, ``dnK`` on brK), numbered after the ports.  A tree has no
loop, so no spanning tree is needed; a frame crosses at most three bridges.

A switch floods a broadcast (an ARP request, an IPv6 neighbour
solicitation) to every port at once.  A veth end hands what it receives to
the kernel's per-CPU backlog, which takes net.core.netdev_max_backlog
(1,000) frames and drops the rest, so a flood to more than that many hosts
lost frames at random.  On a LARGE_LAN, each host's end receives through a
NAPI ring of its own instead (GRO on; the kernel uses it only for frames
from a port without TSO, so the switch's ports go without), and no flood
overruns anything.

The requests are encoded here with :mod:`struct` rather than with
pyroute2's message classes: those cost about 165 us to encode a route on
the development machine, and 1,000 routers in a line need some 28,000
requests (docs/dependencies.md).  pyroute2 still reads the kernel's state
and drives the qdiscs, where a few messages are all there is.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import NamedTuple

from netplay import _progress as progress
from netplay.errors import FabricError
from netplay.topology import (
    Attachment,
    Host,
    IPAddress,
    IPInterface,
    IPNetwork,
    Network,
    Topology,
)

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_ACK_TLVS = 0x200  # in an ack: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1
NLA_TYPE_MASK = 0x3FFF  # without the nested and byte-order flags

RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24

IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_NUM_TX_QUEUES = 31
IFLA_NUM_RX_QUEUES = 32
IFLA_GSO_IPV4_MAX_SIZE = 63  # kernel 6.3; older kernels ignore it
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
IFLA_BR_FORWARD_DELAY = 1
IFLA_BR_STP_STATE = 5
IFLA_BR_MCAST_SNOOPING = 23
IFA_ADDRESS = 1
IFA_LOCAL = 2
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTPROT_KERNEL = 2
RTPROT_STATIC = 4
IP6_RT_PRIO_ADDRCONF = 256

CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
CHANGE = NLM_F_REQUEST | NLM_F_ACK
ASK = NLM_F_REQUEST | NLM_F_ACK  # acknowledged after the answer
REPLACE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
IFF_UP = 1
IFA_F_NODAD = 0x02  # IPv6 addresses usable at once, whatever the DAD sysctls say
BRIDGE_INDEX = 2
# of a bridge's 1,023 ports, so that br0 keeps 23 for the others' uplinks
# (24,000 hosts: MAX_LAN_HOSTS in netplay.topology)
PORTS_PER_BRIDGE = 1000
# IPv4 "BIG TCP": a TCP sender may hand each veth end 185,000-byte segments
# (the kernel's default is 65,536).  A forwarded segment costs every router
# and switch on the way the same whatever its size, so bigger segments make a
# path of many hops as fast as one veth pair: h1 to www went from 0.68-0.89x
# of one to about 1.1x (benchmarks/throughput.py).  IPv4 only: IPv6 routers on
# kernel 6.18 answer such segments with Packet Too Big instead of forwarding.
GSO_IPV4_MAX_SIZE = 185_000
# the LAN beyond which a switch is built for floods: see the module's doc, and
# nft.quiet_switch for the listener reports
LARGE_LAN = 256
PHASES = ("create", "up", "addresses", "routes")
SIOCETHTOOL = 0x8946
ETHTOOL_STSO = 0x1F
ETHTOOL_SGRO = 0x2C
ETHTOOL_VALUE = struct.Struct("=II")  # cmd, data
IFREQ = struct.Struct("@16sP16x")  # name, then a pointer to the ethtool request
CHUNK = 64  # requests per datagram: their acks must fit the socket's receive buffer
ASK_CHUNK = 8  # questions per datagram: each answer is a whole link's (kilobytes)

NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, seq, pid
NLMSGERR = struct.Struct("=i")
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst/src len, tos, table, proto, scope, type, flags
NLA = struct.Struct("=HH")
U32 = struct.Struct("=I")


class Request(NamedTuple):
    """One rtnetlink request: message type, flags and body (without the
    header), and what it does, as a :meth:`str.format` template and its
    arguments: said only if the kernel refuses it (formatting the addresses
    of every request cost seconds at 10,000 hosts)."""

    kind: int
    flags: int
    body: bytes
    template: str = ""
    args: tuple[object, ...] = ()

    @property
    def what(self) -> str:
        return self.template.format(*self.args)

    def saying(self, template: str, *args: object) -> Request:
        return Request(self.kind, self.flags, self.body, template, args)


@dataclass(frozen=True, slots=True)
class Offload:
    """An ethtool feature of an interface turned on or off (SIOCETHTOOL)."""

    ifname: str
    command: int
    on: bool
    what: str = ""


def _attr(kind: int, payload: bytes) -> bytes:
    length = NLA.size + len(payload)
    return NLA.pack(length, kind) + payload + bytes(-length % 4)


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, U32.pack(value))


def _str(kind: int, value: str) -> bytes:
    return _attr(kind, value.encode() + b"\0")


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def switch_key(lan: str) -> str:
    """The namespace key of a LAN's switch ('.' never occurs in host names)."""
    return f"{lan}.sw"


def host_index(ifname: str) -> int:
    return int(ifname.removeprefix("eth")) + 2


def port_name(i: int) -> str:
    return f"p{i}"


def port_index(i: int) -> int:
    return i + 3


@dataclass(frozen=True, slots=True)
class Switch:
    """The bridges of a LAN's switch, for its number of ports."""

    ports: int

    @property
    def bridges(self) -> int:
        return max(1, -(-self.ports // PORTS_PER_BRIDGE))

    def bridge_index(self, k: int) -> int:
        return BRIDGE_INDEX if k == 0 else self.ports + 3 * k

    def uplink_indexes(self, k: int) -> tuple[int, int]:
        """The ifindexes of brK's uplink: its end on br0, its end on brK."""
        return self.ports + 3 * k + 1, self.ports + 3 * k + 2

    def master_of(self, i: int) -> int:
        """The ifindex of the bridge port i is plugged into."""
        return self.bridge_index(i // PORTS_PER_BRIDGE)

    @property
    def large(self) -> bool:
        return self.ports > LARGE_LAN


@dataclass(slots=True)
class Plan:
    """Requests per phase and namespace, each with a description, the
    offloads per namespace, set between the phases "create" and "up", and
    each namespace's veth ends (their ifindexes), whose link events
    :func:`execute` settles."""

    batches: dict[str, dict[str, list[Request]]] = field(
        default_factory=lambda: {phase: {} for phase in PHASES}
    )
    offloads: dict[str, list[Offload]] = field(default_factory=dict)
    veths: dict[str, list[int]] = field(default_factory=dict)

    def add(self, phase: str, ns: str, request: Request, template: str = "", *args: object) -> None:
        """Add ``request`` saying ``template`` with ``args`` (see :class:`Request`),
        or, without one, what it says already."""
        if template:
            request = request.saying(template, *args)
        self.batches[phase].setdefault(ns, []).append(request)

    def offload(self, ns: str, ifname: str, command: int, on: bool, what: str) -> None:
        self.offloads.setdefault(ns, []).append(Offload(ifname, command, on, what))

    def veth_ends(self, ns: str, *indexes: int) -> None:
        self.veths.setdefault(ns, []).extend(indexes)


def _link(flags: int, index: int, attrs: bytes, up: int = 0, change: int = 0) -> Request:
    return Request(RTM_NEWLINK, flags, IFINFOMSG.pack(0, 0, index, up, change) + attrs)


def veth(ifname: str, index: int, peer: str, peer_index: int, peer_fd: int, mtu: int) -> Request:
    # One queue each way, as the kernel would leave it: a veth made with one per
    # CPU is cut down to one once registered, and that waits for an expedited RCU
    # grace period under the rtnl lock (1,500 pairs: 0.6 s made so, 1.0 to 1.7 s not)
    queues = _u32(IFLA_NUM_TX_QUEUES, 1) + _u32(IFLA_NUM_RX_QUEUES, 1)
    peer_msg = (
        IFINFOMSG.pack(0, 0, peer_index, 0, 0)
        + _str(IFLA_IFNAME, peer)
        + _u32(IFLA_NET_NS_FD, peer_fd)
        + _u32(IFLA_MTU, mtu)
        + _u32(IFLA_GSO_IPV4_MAX_SIZE, GSO_IPV4_MAX_SIZE)
        + queues
    )
    info = _str(IFLA_INFO_KIND, "veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_msg))
    attrs = (
        _str(IFLA_IFNAME, ifname)
        + _u32(IFLA_MTU, mtu)
        + _u32(IFLA_GSO_IPV4_MAX_SIZE, GSO_IPV4_MAX_SIZE)
        + queues
        + _attr(IFLA_LINKINFO, info)
    )
    return _link(CREATE, index, attrs)


def bridge(index: int, name: str = "br0", snooping: bool = True) -> Request:
    data = _u32(IFLA_BR_STP_STATE, 0) + _u32(IFLA_BR_FORWARD_DELAY, 0)
    if not snooping:
        data += _attr(IFLA_BR_MCAST_SNOOPING, b"\0")
    info = _str(IFLA_INFO_KIND, "bridge") + _attr(IFLA_INFO_DATA, data)
    return _link(CREATE, index, _str(IFLA_IFNAME, name) + _attr(IFLA_LINKINFO, info))


def link_get(index: int) -> Request:
    body = IFINFOMSG.pack(0, 0, index, 0, 0)
    return Request(RTM_GETLINK, ASK, body, "ask for interface {}", (index,))


def link_state(index: int, up: bool) -> Request:
    return _link(CHANGE, index, b"", IFF_UP if up else 0, IFF_UP)


def link_up(index: int, master: int | None = None) -> Request:
    attrs = _u32(IFLA_MASTER, master) if master is not None else b""
    return _link(CHANGE, index, attrs, IFF_UP, IFF_UP)


def address(index: int, iface: IPInterface, peer: IPAddress | None) -> Request:
    flags = IFA_F_NODAD if iface.version == 6 else 0
    body = IFADDRMSG.pack(_family(iface.version), iface.network.prefixlen, flags, 0, index)
    body += _attr(IFA_LOCAL, iface.ip.packed) + _attr(IFA_ADDRESS, (peer or iface.ip).packed)
    return Request(RTM_NEWADDR, CREATE, body)


def route(to: IPNetwork, via: IPAddress, nlflags: int = CREATE) -> Request:
    # table main, protocol static, scope universe, type unicast
    body = RTMSG.pack(_family(to.version), to.prefixlen, 0, 0, 254, RTPROT_STATIC, 0, 1, 0)
    if to.prefixlen:
        body += _attr(RTA_DST, to.network_address.packed)
    return Request(RTM_NEWROUTE, nlflags, body + _attr(RTA_GATEWAY, via.packed))


def peer_route(peer: IPv6Address, index: int) -> Request:
    """The route to the other end of an IPv6 point-to-point link, as the kernel makes it.

    The kernel adds it by itself, but later, from a work queue, once the
    link's carrier is seen; a route via that peer cannot wait for that.
    REPLACE, so that it makes no difference which of the two comes first.
    """
    body = RTMSG.pack(socket.AF_INET6, 128, 0, 0, 254, RTPROT_KERNEL, 0, 1, 0)
    body += _attr(RTA_DST, peer.packed) + _u32(RTA_OIF, index)
    return Request(RTM_NEWROUTE, REPLACE, body + _u32(RTA_PRIORITY, IP6_RT_PRIO_ADDRCONF))


def plan(topology: Topology, fds: Mapping[str, int]) -> Plan:
    """Every request that builds ``topology``; ``fds`` maps namespace keys to open fds."""
    p = Plan()
    for ns in fds:
        p.add("up", ns, link_up(1), "bring lo up")
    for net in topology.networks:
        if net.kind == "lan":
            sw = switch_key(net.name)
            switch = Switch(len(net.attachments))
            _plan_switch(p, sw, switch, fds[sw], net)
            for i, att in enumerate(net.attachments):
                p.veth_ends(att.host, host_index(att.ifname))
                p.veth_ends(sw, port_index(i))
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
                    "connect {} to {}",
                    att.host,
                    net.name,
                )
                p.add(
                    "up",
                    sw,
                    link_up(port_index(i), switch.master_of(i)),
                    "plug {} into {}",
                    att.host,
                    net.name,
                )
                if switch.large:
                    p.offload(sw, port_name(i), ETHTOOL_STSO, False, f"turn TSO off on {net.name}")
                    p.offload(att.host, att.ifname, ETHTOOL_SGRO, True, f"turn GRO on {att.ifname}")
        else:
            a, b = net.attachments
            p.veth_ends(a.host, host_index(a.ifname))
            p.veth_ends(b.host, host_index(b.ifname))
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
                "link {} and {}",
                a.host,
                b.host,
            )
        for att in net.attachments:
            index = host_index(att.ifname)
            p.add("up", att.host, link_up(index), "bring {} up", att.ifname)
            for addr in att.addresses:
                peer = net.peer_of(att, addr)
                p.add(
                    "addresses",
                    att.host,
                    address(index, addr, peer),
                    "add {} to {}",
                    addr,
                    att.ifname,
                )
    interfaces = topology.by_host()
    for host in topology.hosts:
        for request in routes(host, interfaces[host.name]):
            p.add("routes", host.name, request)
    return p


def _plan_switch(p: Plan, sw: str, switch: Switch, fd: int, net: Network) -> None:
    """The bridges of a LAN's switch, the others hanging from br0."""
    lan = net.name
    # a large switch has no querier to make snooping worth its memory: see nft.quiet_switch
    snooping = not switch.large
    p.add("create", sw, bridge(BRIDGE_INDEX, snooping=snooping), "create the switch of {}", lan)
    p.add("up", sw, link_up(BRIDGE_INDEX), "bring the switch of {} up", lan)
    for k in range(1, switch.bridges):
        index = switch.bridge_index(k)
        up, down = switch.uplink_indexes(k)
        p.add(
            "create",
            sw,
            bridge(index, f"br{k}", snooping=snooping),
            "create bridge {} of the switch of {}",
            k,
            lan,
        )
        p.add("create", sw, veth(f"up{k}", up, f"dn{k}", down, fd, net.mtu), "join bridge {}", k)
        p.veth_ends(sw, up, down)
        p.add("up", sw, link_up(index), "bring bridge {} of the switch of {} up", k, lan)
        p.add("up", sw, link_up(up, BRIDGE_INDEX), "plug bridge {} into br0", k)
        p.add("up", sw, link_up(down, index), "plug bridge {} into its uplink", k)


def routes(
    host: Host, interfaces: Sequence[tuple[Network, Attachment]], nlflags: int = CREATE
) -> list[Request]:
    """The host's routes: to its IPv6 link peers, then its static routes.

    ``interfaces`` are the host's, as :meth:`Topology.by_host` gives them;
    ``nlflags`` REPLACE puts back what a link going down removed.
    """
    found = []
    for net, att in interfaces:
        for addr in att.addresses:
            peer = net.peer_of(att, addr)
            if isinstance(peer, IPv6Address):
                request = peer_route(peer, host_index(att.ifname))
                found.append(request.saying("add the route to {} on {}", peer, att.ifname))
    for r in host.routes:
        found.append(route(r.to, r.via, nlflags).saying("add the route to {} via {}", r.to, r.via))
    return found


class Socket:
    """A rtnetlink socket in the network namespace of the thread that opens it."""

    def __init__(self) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        # acks without a copy of the request, and with the kernel's reason on errors
        self._sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        with contextlib.suppress(OSError):
            self._sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self._sock.bind((0, 0))
        self._seq = 0

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def send(self, ns: str, requests: Sequence[Request], chunk: int = CHUNK) -> None:
        """Send the requests in order, ``chunk`` to a datagram; a refusal names
        the step and the kernel's reason."""
        for start in range(0, len(requests), chunk):
            self._send_chunk(ns, requests[start : start + chunk])

    def _send_chunk(self, ns: str, requests: Sequence[Request]) -> None:
        pending: dict[int, Request] = {}
        datagram = bytearray()
        for request in requests:
            self._seq += 1
            pending[self._seq] = request
            length = NLMSGHDR.size + len(request.body)
            datagram += NLMSGHDR.pack(length, request.kind, request.flags, self._seq, 0)
            datagram += request.body
        self._sock.send(datagram)
        refused: tuple[Request, int, str] | None = None
        while pending:
            data = self._sock.recv(65536)
            offset = 0
            while offset + NLMSGHDR.size <= len(data):
                length, kind, flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
                if kind == NLMSG_ERROR and seq in pending:
                    request = pending.pop(seq)
                    (code,) = NLMSGERR.unpack_from(data, offset + NLMSGHDR.size)
                    if code and refused is None:
                        reason = _ext_ack(data[offset : offset + length], flags)
                        refused = (request, -code, reason)
                offset += (length + 3) & ~3 or len(data)
        if refused is not None:
            request, code, reason = refused
            detail = reason or os.strerror(code)
            raise FabricError(
                f"the kernel refused to {request.what or 'change the network'} on {ns} ({detail})"
            )

    def settle(self, ns: str, indexes: Sequence[int]) -> None:
        """Have the kernel take the interfaces' pending link events now (see
        :func:`execute`): asking for a link does (rtnl_getlink)."""
        self.send(ns, [link_get(index) for index in indexes], ASK_CHUNK)

    def offload(self, ns: str, offloads: Sequence[Offload]) -> None:
        """Turn the features on or off, by ioctl on this socket: its namespace is theirs."""
        for offload in offloads:
            value = ctypes.create_string_buffer(ETHTOOL_VALUE.pack(offload.command, offload.on))
            ifreq = IFREQ.pack(offload.ifname.encode(), ctypes.addressof(value))
            try:
                fcntl.ioctl(self._sock.fileno(), SIOCETHTOOL, ifreq)
            except OSError as e:
                raise FabricError(
                    f"the kernel refused to {offload.what} on {ns} ({e.strerror})"
                ) from None


def attributes(data: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    """Each attribute in ``data`` from ``offset`` on: its type (without flags) and payload."""
    while offset + NLA.size <= len(data):
        length, kind = NLA.unpack_from(data, offset)
        if length < NLA.size:
            return
        yield kind & NLA_TYPE_MASK, data[offset + NLA.size : offset + length]
        offset += (length + 3) & ~3


def _ext_ack(message: bytes, flags: int) -> str:
    """The kernel's own words for an error, when it gave them."""
    if not flags & NLM_F_ACK_TLVS:
        return ""
    offset = NLMSGHDR.size + NLMSGERR.size + NLMSGHDR.size  # capped: the request's header only
    for kind, payload in attributes(message, offset):
        if kind == NLMSGERR_ATTR_MSG:
            return payload.rstrip(b"\0").decode(errors="replace")
    return ""


def execute(p: Plan, socket_in: Callable[[str], Socket]) -> None:
    """Send the plan: every namespace's "create" batch first (a veth's other
    end may be in any namespace); then, namespace by namespace, what makes
    the kernel take the veths' link events (:meth:`Socket.settle`); then
    every namespace's offloads and "up" batch; then, namespace by namespace,
    the veths' events again and the other phases; each on a socket from
    ``socket_in(ns)``.

    Each end of a veth made leaves a link event, which the kernel's
    linkwatch takes at a hundred a second while its link is down, and each
    link brought up makes it walk all those waiting, holding the RTNL lock:
    wiring cost the square of the links (two thirds of line:10000's).  Taken
    before any link is up, there are none to walk.  Every link is up before
    any address is added, so that linkwatch takes the events of their
    carrier in large batches; what it has not taken when the last is up it
    would take at a hundred a second, and a link's traffic is dropped until
    it has.  One socket is open at a time: with one per namespace, 10,000
    hosts needed more open files than a process may have.
    """
    create = p.batches["create"]
    up = dict.fromkeys([*p.offloads, *p.batches["up"]])
    rest = dict.fromkeys([*p.veths, *(ns for phase in PHASES[2:] for ns in p.batches[phase])])
    steps = len(create) + len(p.veths) + len(up) + len(rest)
    with progress.steps("wiring namespaces", steps) as step:
        for ns, requests in create.items():
            with socket_in(ns) as sock:
                sock.send(ns, requests)
            step()
        for ns, ifnames in p.veths.items():
            with socket_in(ns) as sock:
                sock.settle(ns, ifnames)
            step()
        for ns in up:
            with socket_in(ns) as sock:
                sock.offload(ns, p.offloads.get(ns, ()))
                sock.send(ns, p.batches["up"].get(ns, ()))
            step()
        for ns in rest:
            with socket_in(ns) as sock:
                sock.settle(ns, p.veths.get(ns, ()))
                for phase in PHASES[2:]:
                    sock.send(ns, p.batches[phase].get(ns, ()))
            step()

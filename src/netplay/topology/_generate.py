"""Generated topologies for scale work: ``line:N`` and ``star:N``.

``star:N`` is N hosts on one LAN (one switch).  ``line:N`` is N routers in a
chain of point-to-point links, each numbered with one router address (IPv4
10.64.0.0/10, IPv6 fd6e:7000:ffff::/64, host i at offset i); every host
reaches every other through the chain, with a default route pointing right
and the hosts beyond its left neighbour summarised into at most log2(N) + 1
prefixes (the neighbours themselves are reached through the peer routes).
Past 64 hosts, its hosts send with the largest TTL and hop limit (255)
rather than the kernel's 64, so that the ends reach each other up to
``line:256``; beyond, IP itself cannot carry a packet that far.
"""

from __future__ import annotations

import ipaddress

from netplay.topology._model import (
    MAX_TTL,
    Attachment,
    Host,
    IPNetwork,
    Network,
    Route,
    Topology,
)

STAR_V4 = ipaddress.IPv4Network("10.0.0.0/16")
KERNEL_TTL = 64  # what a host sends with unless told
STAR_V6 = ipaddress.IPv6Network("fd6e:7000:fffe::/64")
LINE_V4 = ipaddress.IPv4Network("10.64.0.0/10")
LINE_V6 = ipaddress.IPv6Network("fd6e:7000:ffff::/64")


def star(count: int) -> Topology:
    """N hosts h1..hN on one LAN, 10.0.0.1.. and fd6e:7000:fffe::1.."""
    hosts = tuple(Host(name=f"h{i}") for i in range(1, count + 1))
    attachments = tuple(
        Attachment(
            host=f"h{i}",
            ifname="eth0",
            addresses=(
                ipaddress.IPv4Interface(f"{STAR_V4[i]}/{STAR_V4.prefixlen}"),
                ipaddress.IPv6Interface(f"{STAR_V6[i]}/{STAR_V6.prefixlen}"),
            ),
        )
        for i in range(1, count + 1)
    )
    lan = Network(name="star", kind="lan", attachments=attachments)
    return Topology(name=f"star{count}", hosts=hosts, networks=(lan,))


DEFAULTS = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}


def _blocks(first: int, last: int, bits: int) -> list[tuple[int, int]]:
    """The fewest aligned blocks that cover ``first``..``last`` (offsets in a
    network of ``bits``-bit addresses): (offset, prefix length) of each, as
    :func:`ipaddress.summarize_address_range` finds them, without its objects
    (it was most of generating line:10000)."""
    found = []
    while first <= last:
        size = min(first & -first or 1 << bits, 1 << ((last - first + 1).bit_length() - 1))
        found.append((first, bits - size.bit_length() + 1))
        first += size
    return found


def _line_routes(
    i: int, count: int, prefixes: dict[tuple[int, int, int], IPNetwork]
) -> tuple[Route, ...]:
    """Host i: default to the right (or left, at the end), the far left
    summarised; ``prefixes`` holds the prefixes made so far (most hosts share
    most of theirs).  The far left is summarised from offset 0, the network's
    own address and no host's: blocks from 0 are one per bit set in i - 1
    (6.5 a family on average in line:10000), where from 1, the first host,
    they were about twice log2(i) (16.8), and every route is the kernel's work."""
    routes: list[Route] = []
    for net in (LINE_V4, LINE_V6):
        default = DEFAULTS[net.version]
        if i < count:
            routes.append(Route(to=default, via=net[i + 1]))
            if i > 2:
                base, bits = int(net.network_address), net.max_prefixlen
                left = net[i - 1]
                for offset, prefixlen in _blocks(0, i - 2, bits):
                    key = (net.version, offset, prefixlen)
                    prefix = prefixes.get(key)
                    if prefix is None:
                        prefix = prefixes[key] = ipaddress.ip_network((base + offset, prefixlen))
                    routes.append(Route(to=prefix, via=left))
        elif i > 1:
            routes.append(Route(to=default, via=net[i - 1]))
    return tuple(routes)


def line(count: int) -> Topology:
    """N routers h1..hN in a chain of point-to-point links."""
    ttl = MAX_TTL if count - 2 >= KERNEL_TTL else None  # h1 to hN: N - 2 routers, one hop each
    prefixes: dict[tuple[int, int, int], IPNetwork] = {}
    hosts = tuple(
        Host(name=f"h{i}", forward=True, routes=_line_routes(i, count, prefixes), ttl=ttl)
        for i in range(1, count + 1)
    )
    links = []
    for i in range(1, count):
        ends = []
        for j, ifname in ((i, "eth1" if i > 1 else "eth0"), (i + 1, "eth0")):
            ends.append(
                Attachment(
                    host=f"h{j}",
                    ifname=ifname,
                    addresses=(
                        ipaddress.IPv4Interface((int(LINE_V4[j]), 32)),
                        ipaddress.IPv6Interface((int(LINE_V6[j]), 128)),
                    ),
                )
            )
        links.append(Network(name=f"l{i}", kind="link", attachments=tuple(ends)))
    return Topology(name=f"line{count}", hosts=hosts, networks=tuple(links))

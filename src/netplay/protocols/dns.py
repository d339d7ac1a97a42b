"""The DNS server's core: ``answer(query, zones) -> response``, bytes in and bytes out.

A message-oriented core with no connection state, so in the
:mod:`netplay.protocols` vocabulary a plain function: no sockets and no
clock; the drivers in :mod:`netplay.services.engines.dns` call it for every UDP
datagram and every TCP message (TCP's two-byte length framing is theirs).
It needs dnspython, so unlike the rest of the toolkit it is imported
explicitly (``from netplay.protocols.dns import answer``).  ``zones`` maps
each zone's origin to its zone, as :func:`netplay.topology.dns_zones` makes them.
What it guarantees:

- authoritative answers (AA) from our zones only; REFUSED for a name no
  zone holds (no recursion: nothing ever leaves the playground).  The
  playground's zones include the root, so every name is answered, and
  one that does not exist is NXDOMAIN;
- NXDOMAIN for names that do not exist, NODATA (NOERROR, empty answer) for
  names that exist without that type, both with the zone's SOA in the
  authority section; empty non-terminals are names that exist;
- CNAME chains followed inside our zones; names compared without case;
- ANY answered minimally (one RRset, as RFC 8482 allows);
- the response fits ``max_size`` (512, or the client's EDNS payload size
  over UDP): when it does not, an empty response with TC set, so the
  client retries over TCP;
- malformed input: FORMERR when the header can be read, silence when not
  (None); responses (QR set) are ignored.

:class:`Answers` is ``answer`` with a memory, for the drivers: a response
depends only on the query after its two-byte ID (and on the transport), so
it is computed once and then only the ID is changed.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

CACHE_BUDGET = 1 << 20  # bytes of queries and responses kept, in all
CACHE_MAX_BYTES = 4096  # queries and responses larger than this are not kept
KEPT_RCODES = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
UDP_DEFAULT = 512
UDP_MAX = 4096  # the most we send over UDP, whatever a client offers
TCP_MAX = 65535
MAX_CHAIN = 8
HEADER = struct.Struct("!HHHHHH")

Zones = Mapping[dns.name.Name, dns.zone.Zone]  # origin -> zone


def _formerr(wire: bytes) -> bytes | None:
    """FORMERR echoing the ID and opcode, if there is a header to echo."""
    if len(wire) < HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", wire)
    if flags & dns.flags.QR:
        return None
    reply_flags = dns.flags.QR | (flags & 0x7800) | (flags & dns.flags.RD) | dns.rcode.FORMERR
    return HEADER.pack(ident, reply_flags, 0, 0, 0, 0)


def _zone_of(zones: Zones, name: dns.name.Name) -> dns.zone.Zone | None:
    """The zone with the longest origin that contains ``name``."""
    while True:
        zone = zones.get(name)
        if zone is not None:
            return zone
        if name == dns.name.root or len(name) <= 1:
            return None
        name = name.parent()


def _origin(zone: dns.zone.Zone) -> dns.name.Name:
    assert zone.origin is not None  # our zones are all made with one
    return zone.origin


def _to_rrset(name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))


def _exists(zone: dns.zone.Zone, name: dns.name.Name) -> bool:
    """A node of its own, or an empty non-terminal above other names."""
    relative = name.relativize(_origin(zone))
    if zone.get_node(relative) is not None:
        return True
    return any(n.is_subdomain(relative) for n in zone.nodes if n != relative)


def _soa(zone: dns.zone.Zone) -> dns.rrset.RRset:
    rdataset = zone.find_rdataset(dns.name.empty, dns.rdatatype.SOA)
    rrset = _to_rrset(_origin(zone), rdataset)
    # negative answers are cached for the SOA's minimum (RFC 2308)
    rrset.ttl = min(rdataset.ttl, rdataset[0].minimum)
    return rrset


def _rrset(
    zone: dns.zone.Zone, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    node = zone.get_node(name.relativize(_origin(zone)))
    if node is None:
        return None
    rdataset = node.get_rdataset(dns.rdataclass.IN, rdtype)
    return None if rdataset is None else _to_rrset(name, rdataset)


def _any(zone: dns.zone.Zone, name: dns.name.Name) -> dns.rrset.RRset | None:
    node = zone.get_node(name.relativize(_origin(zone)))
    if node is None or not node.rdatasets:
        return None
    return _rrset(zone, name, node.rdatasets[0].rdtype)


def _resolve(response: dns.message.Message, zones: Zones, zone: dns.zone.Zone) -> None:
    question = response.question[0]
    name, rdtype = question.name, question.rdtype
    for _ in range(MAX_CHAIN):
        found = _any(zone, name) if rdtype == dns.rdatatype.ANY else _rrset(zone, name, rdtype)
        if found is not None:
            response.answer.append(found)
            return
        cname = _rrset(zone, name, dns.rdatatype.CNAME)
        if cname is None:
            if not response.answer:
                if not _exists(zone, name):
                    response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(_soa(zone))
            return
        response.answer.append(cname)
        name = cname[0].target
        next_zone = _zone_of(zones, name)
        if next_zone is None:
            return  # the chain leaves our zones: the client resolves the rest
        zone = next_zone


def _additional(response: dns.message.Message, zones: Zones) -> None:
    """Addresses of the names that MX and NS answers point to, where we have them."""
    for rrset in response.answer:
        if rrset.rdtype not in (dns.rdatatype.MX, dns.rdatatype.NS):
            continue
        for rdata in rrset:
            target = rdata.exchange if rrset.rdtype == dns.rdatatype.MX else rdata.target
            zone = _zone_of(zones, target)
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                found = _rrset(zone, target, rdtype) if zone is not None else None
                if found is not None and found not in response.additional:
                    response.additional.append(found)


def answer(wire: bytes, zones: Zones, *, tcp: bool = False) -> bytes | None:
    """The response to the query ``wire``, or None when nothing should be sent."""
    try:
        query = dns.message.from_wire(wire)
    except dns.message.ShortHeader:
        return None
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
        return _formerr(wire)
    if query.flags & dns.flags.QR:
        return None
    try:
        response = dns.message.make_response(query)
    except dns.exception.DNSException:
        return _formerr(wire)
    response.flags &= ~dns.flags.RA
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response.to_wire()
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    zone = _zone_of(zones, question.name)
    if question.rdclass != dns.rdataclass.IN or zone is None:
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    if dns.rdatatype.is_metatype(question.rdtype) and question.rdtype != dns.rdatatype.ANY:
        response.set_rcode(dns.rcode.NOTIMP)  # AXFR, IXFR, ...: no zone transfers
        return response.to_wire()
    response.flags |= dns.flags.AA
    _resolve(response, zones, zone)
    _additional(response, zones)
    if tcp:
        limit = TCP_MAX
    elif query.edns >= 0:
        limit = max(UDP_DEFAULT, min(query.payload, UDP_MAX))
    else:
        limit = UDP_DEFAULT
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit)


class Answers:
    """``answer(wire, tcp=...)`` for fixed zones, remembering recent responses.

    Only answers to well-formed queries are kept (NOERROR and NXDOMAIN: a
    malformed query is cheap to refuse again, and a stream of distinct ones
    must not fill the memory), none larger than CACHE_MAX_BYTES, and at most
    CACHE_BUDGET bytes of them in all, the oldest going first.
    """

    def __init__(self, zones: Zones) -> None:
        self.zones = zones
        self._kept: dict[tuple[bytes, bool], bytes] = {}
        self._size = 0

    def __call__(self, wire: bytes, *, tcp: bool = False) -> bytes | None:
        if len(wire) < HEADER.size or len(wire) > CACHE_MAX_BYTES:
            return answer(wire, self.zones, tcp=tcp)
        key = (wire[2:], tcp)
        rest = self._kept.get(key)
        if rest is None:
            reply = answer(wire, self.zones, tcp=tcp)
            if reply is None or reply[3] & 0x0F not in KEPT_RCODES or len(reply) > CACHE_MAX_BYTES:
                return reply
            rest = reply[2:]
            self._keep(key, rest)
        return wire[:2] + rest

    def _keep(self, key: tuple[bytes, bool], rest: bytes) -> None:
        size = len(key[0]) + len(rest)
        while self._kept and self._size + size > CACHE_BUDGET:
            oldest = next(iter(self._kept))
            self._size -= len(oldest[0]) + len(self._kept.pop(oldest))
        self._kept[key] = rest
        self._size += size

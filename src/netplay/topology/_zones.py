"""The playground's DNS data, made from its topology (pure: no sockets, no files).

Zones:

- the topology's domain (example.com in the book): SOA and NS naming the
  host that serves DNS, A and AAAA for every host's full name (its eth0
  addresses), then the records the topology file declares under
  ``[dns] records`` in master-file syntax (``"www MX 10 smtp"``);
- reverse zones for every address of every host: one per IPv4 /16
  (``25.10.in-addr.arpa``) and per IPv6 /32 (``0.0.0.7.e.6.d.f.ip6.arpa``),
  with a PTR to the host's full name;
- the further zones of ``[dns.zones]``, each with its own SOA and NS;
- the root zone: the playground is an Internet of its own, so every name
  outside the zones above does not exist (NXDOMAIN, with the root's SOA);
  it delegates each zone above (so ``com`` exists, having example.com), and
  holds the names of the topology's sites that no zone above holds, with
  the addresses of the host serving each.

:func:`aliases` reads the forward zones back: every name that leads to an
address, which is what a host's certificate must name.
"""

from __future__ import annotations

import ipaddress

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.reversename
import dns.zone

from netplay.errors import TopologyError
from netplay.topology._model import Topology

TTL = 300
SOA_TIMERS = "1 3600 600 86400 300"  # serial refresh retry expire negative-TTL
Zones = dict[dns.name.Name, dns.zone.Zone]
REVERSE_V4 = dns.name.from_text("in-addr.arpa")
REVERSE_V6 = dns.name.from_text("ip6.arpa")
MAX_CNAME_HOPS = 8


def _reverse_origin(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> dns.name.Name:
    labels = dns.reversename.from_address(str(address)).labels
    keep = 2 if address.version == 4 else 8  # a /16, a /32
    return dns.name.Name(labels[-(keep + 3) :])  # and in-addr.arpa or ip6.arpa, and the root


def _new_zone(origin: dns.name.Name, server: dns.name.Name) -> dns.zone.Zone:
    zone = dns.zone.Zone(origin)
    hostmaster = dns.name.Name((b"hostmaster", *server.parent().labels))
    soa = f"{server} {hostmaster} {SOA_TIMERS}"
    _add(zone, dns.name.empty, "SOA", soa)
    _add(zone, dns.name.empty, "NS", str(server))
    return zone


def _add(zone: dns.zone.Zone, name: dns.name.Name, rdtype: str, text: str) -> None:
    rdata = dns.rdata.from_text(
        dns.rdataclass.IN, rdtype, text, origin=zone.origin, relativize=False
    )
    rdataset = zone.find_rdataset(name, rdata.rdtype, create=True)
    rdataset.add(rdata, TTL)


def _add_records(zone: dns.zone.Zone, records: tuple[str, ...], where: str) -> None:
    for i, record in enumerate(records):
        words = record.split(None, 2)
        try:
            if len(words) < 3:
                raise ValueError("write NAME TYPE DATA")
            origin = zone.origin
            assert origin is not None
            name = dns.name.from_text(words[0], origin).relativize(origin)
            if name.is_absolute():
                raise ValueError(f"{words[0]} is outside the zone {origin}")
            kind = words[1].upper()
            node = zone.get_node(name)
            held = {dns.rdatatype.to_text(r.rdtype) for r in node} if node is not None else set()
            if (kind == "CNAME" and held - {"CNAME"}) or (kind != "CNAME" and "CNAME" in held):
                raise ValueError(  # RFC 1034: a CNAME stands alone, it would hide the rest
                    f"{words[0]} cannot have a CNAME and other records "
                    f"(it has {', '.join(sorted(held))})"
                )
            _add(zone, name, kind, words[2])
        except Exception as exc:  # dnspython raises many kinds for bad text
            raise TopologyError(f"bad record {record!r}: {exc}", field=f"{where}[{i}]") from exc


def dns_zones(topology: Topology) -> Zones:
    """Every zone the playground's server is authoritative for (none without DNS)."""
    server_host = topology.dns_host()
    if server_host is None or topology.domain is None:
        return {}
    origin = dns.name.from_text(topology.domain)
    server = dns.name.from_text(topology.fqdn(server_host))
    zones: Zones = {origin: _new_zone(origin, server)}
    forward = zones[origin]
    for host in topology.hosts:
        name = dns.name.from_text(host.name, origin).relativize(origin)
        for address in topology.primary_addresses(host.name):
            _add(forward, name, "A" if address.version == 4 else "AAAA", str(address))
    _add_records(forward, topology.records, "dns.records")
    for net in topology.networks:
        for att in net.attachments:
            target = f"{topology.fqdn(att.host)}."
            for iface in att.addresses:
                rev = _reverse_origin(iface.ip)
                if rev not in zones:
                    zones[rev] = _new_zone(rev, server)
                ptr = dns.reversename.from_address(str(iface.ip)).relativize(rev)
                if target not in {str(r) for r in zones[rev].get_rdataset(ptr, "PTR") or ()}:
                    _add(zones[rev], ptr, "PTR", target)
    for text, records in topology.zones.items():
        extra = dns.name.from_text(text)
        zones[extra] = _new_zone(extra, server)
        _add_records(zones[extra], records, f"dns.zones.{text}.records")
    root = _new_zone(dns.name.root, server)
    for delegated in zones:  # so that `com` exists (it has example.com under it)
        _add(root, delegated.relativize(dns.name.root), "NS", str(server))
    zones[dns.name.root] = root
    by_depth = sorted(zones, key=len, reverse=True)  # the zone a name is in: the longest origin
    for site in topology.sites:
        name = dns.name.from_text(site.name)
        holder = next(o for o in by_depth if name.is_subdomain(o))
        for address in topology.primary_addresses(site.host):
            kind = "A" if address.version == 4 else "AAAA"
            _add(zones[holder], name.relativize(holder), kind, str(address))
    return zones


def aliases(zones: Zones) -> dict[str, list[str]]:
    """Address -> every forward name that resolves to it, directly or through CNAMEs.

    Names are written without the final dot, in zone order; with the book's
    records, 10.130.1.3 gets mail.example.com and smtp.example.com.
    """
    direct: dict[dns.name.Name, list[str]] = {}
    cnames: dict[dns.name.Name, dns.name.Name] = {}
    for origin, zone in zones.items():
        if origin.is_subdomain(REVERSE_V4) or origin.is_subdomain(REVERSE_V6):
            continue
        for name, _ttl, rdata in zone.iterate_rdatas():
            owner = name.derelativize(origin)
            if rdata.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                direct.setdefault(owner, []).append(str(ipaddress.ip_address(rdata.to_text())))
            elif rdata.rdtype == dns.rdatatype.CNAME:
                cnames[owner] = dns.name.from_text(rdata.to_text())
    found: dict[str, list[str]] = {}
    for owner in [*direct, *cnames]:
        target, hops = owner, 0
        while target in cnames and hops < MAX_CNAME_HOPS:
            target, hops = cnames[target], hops + 1
        for address in direct.get(target, ()):
            names = found.setdefault(address, [])
            text = owner.to_text(omit_final_dot=True)
            if text not in names:
                names.append(text)
    return found

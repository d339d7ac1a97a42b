"""The mail domains a host receives mail for, as the playground's DNS routes mail
(RFC 5321 5.1): every domain whose MX record names the host (by any of the
names of its address, CNAMEs included), and every name of its address that
has no MX record of its own (the implicit MX).  With the book's records,
mail.example.com receives for example.com (``@ MX 10 mail``),
www.example.com (``www MX 10 smtp``, ``smtp CNAME mail``), mail.example.com
and smtp.example.com; www.example.com's mail goes to mail, not to www."""

from __future__ import annotations

import dns.rdatatype

from netplay.topology import Topology, aliases, dns_zones


def mail_domains(topology: Topology, host: str) -> set[str]:
    """The domains (lowercase, no final dot) whose mail ``host`` receives."""
    mine = {topology.fqdn(host).lower()}
    zones = dns_zones(topology)
    names = aliases(zones)
    for address in topology.primary_addresses(host):
        mine.update(name.lower() for name in names.get(str(address), ()))
    exchanges: dict[str, set[str]] = {}  # domain -> the names its MX records give
    for origin, zone in zones.items():
        for name, _ttl, rdata in zone.iterate_rdatas(dns.rdatatype.MX):
            owner = name.derelativize(origin).to_text(omit_final_dot=True).lower()
            exchange = rdata.exchange.derelativize(origin)  # type: ignore[attr-defined]
            exchanges.setdefault(owner, set()).add(exchange.to_text(omit_final_dot=True).lower())
    found = {domain for domain, names_of in exchanges.items() if names_of & mine}
    found.update(name for name in mine if name not in exchanges)
    return found

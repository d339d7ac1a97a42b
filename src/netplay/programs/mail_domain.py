"""Where mail for a domain goes, as RFC 5321 (section 5.1) says to find it.

1. Ask for the domain's MX records; try their hosts in order of
   preference (lowest first).  A single MX of "." means the domain takes
   no mail (RFC 7505).
2. With no MX records at all, the domain itself is the mail host (the
   "implicit MX"), through its A and AAAA records.
3. Each mail host's addresses come from A and AAAA, following a CNAME
   chain if there is one (www.example.com's MX names smtp.example.com, a
   CNAME of mail.example.com).

    netplay exec h1 -- python3 -m netplay.programs.mail_domain example.com
    netplay exec h1 -- python3 -m netplay.programs.mail_domain www.example.com
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from netplay.programs._cli import ProgramError, run


@dataclass(frozen=True, slots=True)
class MailHost:
    preference: int | None  # None: the implicit MX
    name: str
    chain: tuple[str, ...]  # the CNAMEs followed, in order
    addresses: tuple[str, ...]


def _resolve(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> dns.resolver.Answer:
    try:
        return resolver.resolve(name, rdtype, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        raise ProgramError(f"{name}: no such name") from None
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
        raise ProgramError(f"{name}: the DNS server did not answer ({exc})") from None


def addresses(
    name: str, resolver: dns.resolver.Resolver | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the CNAMEs followed, the A and AAAA addresses) of ``name``."""
    resolver = resolver or dns.resolver.Resolver()
    chain: list[str] = []
    found: list[str] = []
    for rdtype in ("AAAA", "A"):
        wanted = dns.rdatatype.from_text(rdtype)
        for rrset in _resolve(resolver, name, rdtype).response.answer:  # CNAMEs come first
            if rrset.rdtype == dns.rdatatype.CNAME:
                target = rrset[0].target.to_text(omit_final_dot=True)
                if target not in chain:
                    chain.append(target)
            elif rrset.rdtype == wanted:
                found += sorted(r.address for r in rrset)
    return tuple(chain), tuple(found)


def mail_hosts(domain: str, resolver: dns.resolver.Resolver | None = None) -> list[MailHost]:
    """The hosts that take mail for ``domain``, in the order to try them."""
    resolver = resolver or dns.resolver.Resolver()
    answer = _resolve(resolver, domain, "MX")
    if answer.rrset is None:
        chain, found = addresses(domain, resolver)
        if not found:
            raise ProgramError(f"{domain} has neither MX nor address records: it takes no mail")
        return [MailHost(None, domain, chain, found)]
    records = sorted(answer.rrset, key=lambda r: (r.preference, r.exchange.to_text()))
    if len(records) == 1 and records[0].exchange == dns.name.root:
        raise ProgramError(f"{domain} declares that it takes no mail (null MX)")
    hosts = []
    for record in records:
        name = record.exchange.to_text(omit_final_dot=True)
        chain, found = addresses(name, resolver)
        hosts.append(MailHost(record.preference, name, chain, found))
    return hosts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mail_domain", description="The mail hosts of a domain, in the order RFC 5321 gives."
    )
    parser.add_argument("domain", help="e.g. example.com")
    args = parser.parse_args(argv)

    def body() -> None:
        for host in mail_hosts(args.domain):
            label = "implicit MX" if host.preference is None else f"MX {host.preference}"
            via = "".join(f" -> {c}" for c in host.chain)
            print(f"{label}: {host.name}{via} -> {', '.join(host.addresses) or '(no address)'}")

    return run("mail_domain", body)


if __name__ == "__main__":
    sys.exit(main())

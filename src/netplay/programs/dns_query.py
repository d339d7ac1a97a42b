"""DNS queries with dnspython: A, AAAA, CNAME, MX, NS and PTR, from the host's resolver.

dnspython reads /etc/resolv.conf (the playground's server on backbone) and
asks for each record type in turn; "no answer" (the name exists without
that type) and "no such name" are different results, as in DNS itself.
An address is asked for its PTR record.

    netplay exec h1 -- python3 -m netplay.programs.dns_query example.com
    netplay exec h1 -- python3 -m netplay.programs.dns_query smtp.example.com --type CNAME
    netplay exec h1 -- python3 -m netplay.programs.dns_query 10.130.1.4
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence

import dns.exception
import dns.resolver
import dns.reversename

from netplay.programs._cli import ProgramError, run

TYPES = ("A", "AAAA", "CNAME", "MX", "NS")


def lookup(name: str, rdtype: str, resolver: dns.resolver.Resolver | None = None) -> list[str]:
    """The records of ``name`` of type ``rdtype`` as text; [] when it has none of them."""
    resolver = resolver or dns.resolver.Resolver()
    try:
        answer = resolver.resolve(name, rdtype, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        raise ProgramError(f"{name}: no such name") from None
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
        raise ProgramError(f"{name}: the DNS server did not answer ({exc})") from None
    if answer.rrset is None:
        return []
    return sorted(rdata.to_text() for rdata in answer.rrset)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dns_query", description="Ask DNS for a name's records (or an address's PTR)."
    )
    parser.add_argument("name", help="a name, or an address for its PTR record")
    parser.add_argument(
        "--type", action="append", dest="types", metavar="TYPE",
        help=f"a record type to ask for (repeatable; default: {' '.join(TYPES)})",
    )  # fmt: skip
    args = parser.parse_args(argv)

    def body() -> None:
        name, types = args.name, [t.upper() for t in args.types or TYPES]
        try:
            name = dns.reversename.from_address(str(ipaddress.ip_address(name))).to_text()
            types = ["PTR"]
        except ValueError:
            pass
        for rdtype in types:
            records = lookup(name, rdtype)
            if not records:
                print(f"{rdtype:<6} (none)")
            for record in records:
                print(f"{rdtype:<6} {record}")

    return run("dns_query", body)


if __name__ == "__main__":
    sys.exit(main())

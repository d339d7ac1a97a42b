"""Names and addresses: canonical names, and reverse look-ups with forward confirmation.

For a name: its canonical name (CNAMEs followed) and addresses, from
getaddrinfo() with AI_CANONNAME.  For an address: the name its PTR record
gives, then that name looked up forward: only if the address is among the
name's own addresses is the reverse name *confirmed* (anyone who controls
a reverse zone can claim any name).

    netplay exec h1 -- python3 -m netplay.programs.names smtp.example.com
    netplay exec h1 -- python3 -m netplay.programs.names 10.130.1.4
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from netplay.programs._cli import ProgramError, describe, run


@dataclass(frozen=True, slots=True)
class Forward:
    canonical: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reverse:
    name: str
    confirmed: bool


def forward(name: str) -> Forward:
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME)
    except socket.gaierror as exc:
        raise ProgramError(f"{name}: {describe(exc)}") from None
    canonical = next((info[3] for info in infos if info[3]), name)
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    return Forward(canonical, addresses)


def reverse(address: str) -> Reverse:
    try:
        name, _aliases, _addresses = socket.gethostbyaddr(address)
    except socket.herror as exc:
        raise ProgramError(f"{address} has no reverse name ({exc.strerror})") from None
    try:
        confirmed = ipaddress.ip_address(address) in {
            ipaddress.ip_address(a) for a in forward(name).addresses
        }
    except ProgramError:
        confirmed = False
    return Reverse(name, confirmed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="names", description="Canonical names, addresses and confirmed reverse names."
    )
    parser.add_argument("what", nargs="+", help="names or addresses")
    args = parser.parse_args(argv)

    def body() -> None:
        for what in args.what:
            try:
                ipaddress.ip_address(what)
            except ValueError:
                found = forward(what)
                print(f"{what}: canonical name {found.canonical}")
                for address in found.addresses:
                    print(f"  address {address}")
                continue
            back = reverse(what)
            verdict = "confirmed" if back.confirmed else "NOT confirmed by its forward look-up"
            print(f"{what}: {back.name} ({verdict})")

    return run("names", body)


if __name__ == "__main__":
    sys.exit(main())

"""Connect by name: every address getaddrinfo() gives, in order, each failure reported.

A name may stand for several addresses (IPv6 and IPv4 here); getaddrinfo
orders them as RFC 6724 prefers, and a careful client tries each in turn
until one connects, rather than giving up on the first.

    netplay exec h1 -- python3 -m netplay.programs.connect_by_name www 80
    netplay exec h1 -- python3 -m netplay.programs.connect_by_name www 81    # refused, twice
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from netplay.programs._cli import ProgramError, describe, run

TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One address tried: None for success, or what went wrong."""

    family: str
    address: str
    error: str | None


def attempts(host: str, port: int, timeout: float = TIMEOUT_S) -> Iterator[Attempt | socket.socket]:
    """Try every address of ``host`` in order; yield each failure, then the connected socket."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProgramError(f"{host}: {describe(exc)}") from None
    for family, kind, proto, _name, address in infos:
        label = "IPv6" if family == socket.AF_INET6 else "IPv4"
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            yield Attempt(label, str(address[0]), describe(exc))
            continue
        yield Attempt(label, str(address[0]), None)
        yield sock
        return


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="connect_by_name",
        description="Connect to HOST:PORT trying every address of the name in order.",
    )
    parser.add_argument("host", help="a name (or an address)")
    parser.add_argument("port", type=int, help="a TCP port")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per address")
    args = parser.parse_args(argv)

    def body() -> int:
        for outcome in attempts(args.host, args.port, args.timeout):
            if isinstance(outcome, socket.socket):
                outcome.close()
                return 0
            result = "connected" if outcome.error is None else f"failed: {outcome.error}"
            print(f"{outcome.family} [{outcome.address}]:{args.port} {result}")
        raise ProgramError(f"could not connect to any address of {args.host}")

    return run("connect_by_name", body)


if __name__ == "__main__":
    sys.exit(main())

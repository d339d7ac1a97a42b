"""Path MTU: the largest IP packet that crosses every link to a host unfragmented.

The socket asks the kernel not to fragment (IP_MTU_DISCOVER set to
IP_PMTUDISC_DO, or the IPv6 equivalents) and sends datagrams as large as
the MTU it currently knows for the path.  A router whose next link is
narrower drops such a packet and answers with ICMP "fragmentation needed"
(IPv6: "packet too big") naming its MTU; the kernel lowers the path's MTU,
the next large send fails with EMSGSIZE, and the socket's IP_MTU reports
the new value.  When a datagram of the known MTU goes out and nothing
lowers it again, that is the path MTU.

    netplay exec h1 -- python3 -m netplay.programs.udp_mtu www
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
import time
from collections.abc import Sequence

from netplay.programs._cli import ProgramError, run
from netplay.programs._net import family_options

# Linux's values; Python's socket module does not name them all.
IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)
IP_MTU = getattr(socket, "IP_MTU", 14)
IPV6_MTU_DISCOVER = getattr(socket, "IPV6_MTU_DISCOVER", 23)
IPV6_PMTUDISC_DO = getattr(socket, "IPV6_PMTUDISC_DO", 2)
IPV6_MTU = getattr(socket, "IPV6_MTU", 24)
HEADERS = {socket.AF_INET: 20 + 8, socket.AF_INET6: 40 + 8}  # IP and UDP headers
PORT = 9  # discard: nobody needs to listen
SETTLE_S = 0.2  # time for a router's ICMP answer to come back
ROUNDS = 20


def path_mtu(host: str, port: int = PORT, family: int = 0) -> tuple[int, list[int]]:
    """The path MTU to ``host``, and every value the kernel reported on the way."""
    fam, kind, proto, _name, address = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0]
    level, discover, mtu_option = (
        (socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_MTU)
        if fam == socket.AF_INET
        else (socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_MTU)
    )
    with socket.socket(fam, kind, proto) as sock:
        sock.setsockopt(level, discover, IP_PMTUDISC_DO)
        sock.connect(address)
        seen = [sock.getsockopt(level, mtu_option)]
        for _ in range(ROUNDS):
            try:
                sock.send(b"#" * (seen[-1] - HEADERS[fam]))
            except OSError as exc:
                if exc.errno != errno.EMSGSIZE:
                    raise
            time.sleep(SETTLE_S)
            now = sock.getsockopt(level, mtu_option)
            if now == seen[-1]:
                return now, seen
            seen.append(now)
    raise ProgramError(f"the path MTU did not settle in {ROUNDS} rounds: {seen}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="udp_mtu", description="Report the path MTU to a host (Linux)."
    )
    parser.add_argument("host", help="name or address")
    parser.add_argument("-p", "--port", type=int, default=PORT, help=f"UDP port (default {PORT})")
    family_options(parser, "probe the path")
    args = parser.parse_args(argv)

    def body() -> None:
        mtu, seen = path_mtu(args.host, args.port, args.family)
        steps = " -> ".join(map(str, seen))
        print(f"path MTU to {args.host}: {mtu} bytes (the kernel's estimates: {steps})")

    return run("udp_mtu", body)


if __name__ == "__main__":
    sys.exit(main())

"""UDP broadcast: one datagram, heard by every host on the LAN and no further.

Receivers bind a port on every address; the sender sets SO_BROADCAST and
sends to the LAN's broadcast address.  From h1, h2 and h3 (homeA) hear it;
h4 (homeB, behind another modem) does not: routers do not forward
broadcasts.

    netplay exec h2 -- python3 -m netplay.programs.udp_broadcast server &
    netplay exec h1 -- python3 -m netplay.programs.udp_broadcast client 192.168.1.255
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

from netplay.programs._cli import run

PORT = 1070
MAX_BYTES = 65535


def receiver(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", port))
    return sock


def broadcast(address: str, port: int, text: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.sendto(text.encode("utf-8"), (address, port))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="udp_broadcast", description="Send and hear UDP broadcasts on a LAN."
    )
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server", help="print every datagram heard")
    server.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    client = sub.add_parser("client", help="broadcast one datagram")
    client.add_argument("address", help="the broadcast address, e.g. 192.168.1.255")
    client.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    client.add_argument("--text", default="Broadcast message!", help="what to send")
    args = parser.parse_args(argv)

    def listen() -> None:
        sock = receiver(args.port)
        print(f"Listening for broadcasts at {sock.getsockname()}", flush=True)
        while True:
            data, address = sock.recvfrom(MAX_BYTES)
            print(f"The client at {address} says: {data.decode('utf-8', 'replace')!r}", flush=True)

    def send() -> None:
        broadcast(args.address, args.port, args.text)
        print(f"Sent {args.text!r} to {args.address} port {args.port}")

    return run("udp_broadcast", listen if args.role == "server" else send)


if __name__ == "__main__":
    sys.exit(main())

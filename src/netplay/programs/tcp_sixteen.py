"""TCP: a client and server that exchange exactly sixteen bytes each way.

TCP is a stream, not messages: ``recv(16)`` may return fewer bytes, so both
sides loop until they have all sixteen (:func:`recvall`).  The server says
whom it accepted: from h1 over IPv4 that is 10.25.1.65, modemA's address,
because the connection crossed NAT; over IPv6 (no NAT) it is h1's own.

    netplay exec www -- python3 -m netplay.programs.tcp_sixteen server &
    netplay exec h1 -- python3 -m netplay.programs.tcp_sixteen client -4 www
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

from netplay.programs._cli import ProgramError, run
from netplay.programs._net import bind, client_server, connect, family_options, peer_name

PORT = 1060
QUESTION = b"Hi there, server"
ANSWER = b"Farewell, client"


def recvall(sock: socket.socket, length: int) -> bytes:
    """Exactly ``length`` bytes from ``sock``; ProgramError if it closes first."""
    data = b""
    while len(data) < length:
        more = sock.recv(length - len(data))
        if not more:
            raise ProgramError(f"the peer closed after {len(data)} of {length} bytes")
        data += more
    return data


def _parser() -> argparse.ArgumentParser:
    parser, _server_parser, client = client_server(
        "tcp_sixteen",
        "Send and receive sixteen bytes over TCP.",
        PORT,
        server_help="accept connections, forever",
        client_help="connect once",
    )
    family_options(client, "connect")
    return parser


def _server(args: argparse.Namespace) -> None:
    listener = bind(args.host, args.port)
    print(f"Listening at {listener.getsockname()[:2]}", flush=True)
    while True:
        sock, address = listener.accept()
        with sock:
            print(f"We have accepted a connection from {peer_name(address)}", flush=True)
            try:
                message = recvall(sock, len(QUESTION))
            except ProgramError as exc:
                print(f"  that client broke off: {exc}", flush=True)
                continue
            print(f"  Incoming sixteen-octet message: {message!r}", flush=True)
            sock.sendall(ANSWER)
            print("  Reply sent, socket closed", flush=True)


def _client(args: argparse.Namespace) -> None:
    with connect(args.host, args.port, args.family) as sock:
        print(f"Client has been assigned the address {sock.getsockname()[:2]}")
        sock.sendall(QUESTION)
        print(f"The server said {recvall(sock, len(ANSWER))!r}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run("tcp_sixteen", lambda: _server(args) if args.role == "server" else _client(args))


if __name__ == "__main__":
    sys.exit(main())

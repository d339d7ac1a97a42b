"""TCP deadlock: a client and server that both send without reading stall.

The server reads the client's data in chunks and sends each back in
capitals.  The client sends everything first and reads afterwards.  With a
large enough transfer, the client's receive buffer fills (it is not
reading), so the server blocks in ``sendall`` and stops reading, so the
server's receive buffer fills too, and the client blocks in its own send:
neither moves again.  The client notices that it has been unable to send
for a while, reports how far each side got, and gives up.  With ``--fix``
it reads while it sends (with ``selectors``) and the transfer completes.

    netplay exec www -- python3 -m netplay.programs.tcp_deadlock server &
    netplay exec h1 -- python3 -m netplay.programs.tcp_deadlock client www 100000000
    netplay exec h1 -- python3 -m netplay.programs.tcp_deadlock client www 100000000 --fix
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from netplay.programs._cli import ProgramError, run
from netplay.programs._net import bind, client_server, serve_each

PORT = 1061
CHUNK = 16 * 1024
STALL_S = 2.0


@dataclass(frozen=True, slots=True)
class Transfer:
    """How far a client got."""

    sent: int
    received: int
    stalled: bool


def serve_one(sock: socket.socket) -> int:
    """Echo the client's bytes in capitals until it has finished; return the count."""
    total = 0
    while True:
        data = sock.recv(CHUNK)
        if not data:
            return total
        sock.sendall(data.upper())
        total += len(data)


def transfer(sock: socket.socket, count: int, *, fix: bool, stall_s: float = STALL_S) -> Transfer:
    """Send ``count`` bytes and collect the echo; read only after sending unless ``fix``."""
    sock.setblocking(False)
    block = b"capitalize this!" * (CHUNK // 16)
    sent = received = 0
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE | (selectors.EVENT_READ if fix else 0))
        while sent < count:
            events = selector.select(stall_s)
            if not events:
                return Transfer(sent, received, stalled=True)
            for _key, mask in events:
                if mask & selectors.EVENT_READ:
                    received += _read(sock)
                if mask & selectors.EVENT_WRITE:
                    sent += sock.send(block[: count - sent])
        sock.shutdown(socket.SHUT_WR)
        selector.modify(sock, selectors.EVENT_READ)
        while received < count:
            if not selector.select(stall_s):
                return Transfer(sent, received, stalled=True)
            more = _read(sock)
            if not more:
                raise ProgramError(f"the server closed after {received} of {count} bytes")
            received += more
    return Transfer(sent, received, stalled=False)


def _read(sock: socket.socket) -> int:
    try:
        return len(sock.recv(1 << 20))
    except BlockingIOError:
        return 0


def _parser() -> argparse.ArgumentParser:
    parser, _server, client = client_server(
        "tcp_deadlock",
        "Show how two peers that send without reading stall, and the fix.",
        PORT,
        server_help="echo in capitals, one client at a time",
        client_help="send BYTECOUNT bytes, then read the echo",
    )
    client.add_argument("bytecount", type=int, help="how many bytes to send")
    client.add_argument("--fix", action="store_true", help="read while sending: no deadlock")
    client.add_argument(
        "--stall", type=float, default=STALL_S, help="seconds without progress that mean stalled"
    )
    return parser


def _server(args: argparse.Namespace) -> None:
    def echo(sock: socket.socket) -> str:
        return f"{serve_one(sock)} bytes echoed in chunks of up to {CHUNK}"

    serve_each(bind(args.host, args.port), echo)


def _client(args: argparse.Namespace) -> int:
    if args.bytecount <= 0:
        raise ProgramError("bytecount must be positive")
    with socket.create_connection((args.host, args.port), timeout=10) as sock:
        done = transfer(sock, args.bytecount, fix=args.fix, stall_s=args.stall)
    if done.stalled:
        print(
            f"stalled: sent {done.sent} of {args.bytecount} bytes and received {done.received}; "
            "both sides' buffers are full and each waits for the other "
            "(run again with --fix to read while sending)"
        )
        return 2
    print(f"sent {done.sent} bytes and received all {done.received} back")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run("tcp_deadlock", lambda: _server(args) if args.role == "server" else _client(args))


if __name__ == "__main__":
    sys.exit(main())

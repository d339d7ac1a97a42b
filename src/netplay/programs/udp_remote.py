"""UDP across the network: a client that retries with exponential back-off.

UDP promises nothing: a request or its reply may be lost, and a reply
that does arrive may be a late answer to an earlier try.  The client tags
each request with a random ID, waits for a reply carrying that ID (others
are ignored, and counted), and when none comes it sends again, doubling
its wait each time up to a limit.  It reports how many tries it took.

    netplay exec www -- python3 -m netplay.programs.udp_remote server &
    netplay link modemA isp --loss 30%
    netplay exec h1 -- python3 -m netplay.programs.udp_remote client www --count 10
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from netplay.programs._cli import ProgramError, run

PORT = 1060
MAX_SIZE = 65535
FIRST_WAIT_S = 0.1
MAX_WAIT_S = 2.0
ATTEMPTS = 12


def make_request(ident: bytes, text: str) -> bytes:
    return ident.hex().encode() + b" " + text.encode()


def make_reply(request: bytes) -> bytes | None:
    """The server's answer to ``request``, or None for a malformed one."""
    ident, space, data = request.partition(b" ")
    if not space or len(ident) != 16 or not all(c in b"0123456789abcdef" for c in ident):
        return None
    return ident + b" " + f"Your data was {len(data)} bytes long".encode()


def parse_reply(reply: bytes) -> tuple[bytes, str]:
    """(ID, text) of a reply; ProgramError if it is not one."""
    ident, space, text = reply.partition(b" ")
    try:
        if not space or len(ident) != 16:
            raise ValueError("no ID")
        return bytes.fromhex(ident.decode("ascii")), text.decode()
    except (UnicodeDecodeError, ValueError):
        raise ProgramError(f"not a reply: {reply[:40]!r}") from None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request took."""

    text: str
    tries: int
    ignored: int  # replies that were not to this request


def request(
    sock: socket.socket,
    text: str,
    *,
    first_wait: float = FIRST_WAIT_S,
    max_wait: float = MAX_WAIT_S,
    attempts: int = ATTEMPTS,
) -> Outcome:
    """Send ``text`` on the connected UDP ``sock`` until its reply comes back."""
    ident = os.urandom(8)
    data = make_request(ident, text)
    wait, ignored = first_wait, 0
    for tries in range(1, attempts + 1):
        sock.send(data)
        sock.settimeout(wait)
        try:
            while True:
                reply = sock.recv(MAX_SIZE)
                try:
                    got, answer = parse_reply(reply)
                except ProgramError:
                    ignored += 1
                    continue
                if got == ident:
                    return Outcome(answer, tries, ignored)
                ignored += 1  # a late reply to an earlier request
        except TimeoutError:
            wait = min(wait * 2, max_wait)
        except ConnectionRefusedError:  # ICMP port unreachable from an earlier try
            raise ProgramError("the server is not listening (port unreachable)") from None
    raise ProgramError(f"no reply after {attempts} tries; the server may be down")


def serve(sock: socket.socket) -> None:
    """Answer every well-formed request on the bound ``sock``, forever."""
    while True:
        data, address = sock.recvfrom(MAX_SIZE)
        reply = make_reply(data)
        if reply is not None:
            sock.sendto(reply, address)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="udp_remote",
        description="A UDP server, and a client that retries with exponential back-off.",
    )
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server", help="answer requests")
    server.add_argument("host", nargs="?", default="::", help="address to bind (default: all)")
    server.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    client = sub.add_parser("client", help="send requests and report the tries")
    client.add_argument("host", help="the server's name or address")
    client.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    client.add_argument("-n", "--count", type=int, default=1, help="requests to send")
    client.add_argument("--text", default="This is another message", help="what to send")
    client.add_argument(
        "--max-wait", type=float, default=MAX_WAIT_S, help="longest wait for one try, seconds"
    )
    client.add_argument("--attempts", type=int, default=ATTEMPTS, help="tries per request")
    return parser


def _server(args: argparse.Namespace) -> None:
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((args.host, args.port))
    print(f"Listening at {sock.getsockname()[:2]}", flush=True)
    serve(sock)


def _client(args: argparse.Namespace) -> None:
    info = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_DGRAM)
    family, kind, proto, _name, address = info[0]
    with socket.socket(family, kind, proto) as sock:
        sock.connect(address)  # replies from anyone else are dropped by the kernel
        total = 0
        for i in range(args.count):
            outcome = request(sock, args.text, max_wait=args.max_wait, attempts=args.attempts)
            total += outcome.tries
            note = f", ignored {outcome.ignored} stray replies" if outcome.ignored else ""
            print(f"{i + 1}: the server says {outcome.text!r} after {outcome.tries} tries{note}")
        print(f"{args.count} requests, {total} tries, {total - args.count} retries")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run("udp_remote", lambda: _server(args) if args.role == "server" else _client(args))


if __name__ == "__main__":
    sys.exit(main())

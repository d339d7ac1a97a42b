"""Blocks: messages of any size sent as length-prefixed chunks with an end marker.

Each message goes as chunks (``Chunked``, from :mod:`netplay.protocols.framing`):
a 4-byte length, that many bytes, and finally an empty chunk that ends the
message, so the sender can start before it knows the total.  The server
decodes the messages with the framing library and answers each with its
size and SHA-256, one line each (``Delimited``).

    netplay exec www -- python3 -m netplay.programs.blocks server &
    netplay exec h1 -- python3 -m netplay.programs.blocks client www --size 10 --size 1000000
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from collections.abc import Sequence

from netplay.programs._cli import ProgramError, run
from netplay.programs._net import bind, client_server, connect, serve_each
from netplay.protocols import END, NEED_DATA
from netplay.protocols.framing import Chunked, Delimited, FramingError

PORT = 1065
MAX_MESSAGE = 16 << 20


def summary(message: bytes) -> bytes:
    return f"{len(message)} bytes sha256 {hashlib.sha256(message).hexdigest()}".encode()


def serve_one(sock: socket.socket) -> int:
    """Answer every message of one client; return how many."""
    decoder, lines, count = Chunked(MAX_MESSAGE), Delimited(), 0
    while True:
        message = decoder.next_event()
        if message is END:
            return count
        if message is NEED_DATA:
            decoder.receive_data(sock.recv(65536))
            continue
        assert isinstance(message, bytes)
        sock.sendall(lines.send(summary(message)))
        count += 1


def main(argv: Sequence[str] | None = None) -> int:
    parser, _server, client = client_server(
        "blocks",
        "Send messages as chunks.",
        PORT,
        server_help="answer each message with its size and hash",
        client_help="send random messages and check the answers",
    )
    client.add_argument(
        "--size", type=int, action="append", help="a message's size (repeatable; default 1000)"
    )
    args = parser.parse_args(argv)

    def report(sock: socket.socket) -> str:
        return f"{serve_one(sock)} messages"

    def serve() -> None:
        serve_each(bind(args.host, args.port), report, broken=(FramingError,))

    def send() -> None:
        encoder, replies = Chunked(MAX_MESSAGE), Delimited()
        with connect(args.host, args.port) as sock:
            for size in args.size or [1000]:
                message = os.urandom(size)
                sock.sendall(encoder.send(message))
                reply = replies.next_event()
                while reply is NEED_DATA:
                    data = sock.recv(4096)
                    if not data:
                        raise ProgramError("the server closed the connection")
                    replies.receive_data(data)
                    reply = replies.next_event()
                if reply != summary(message):
                    raise ProgramError(f"wrong answer for {size} bytes: {reply!r}")
                print(f"sent {size} bytes; the server agrees on their SHA-256")
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):  # until the server, done with us, closes
                pass

    return run("blocks", serve if args.role == "server" else send)


if __name__ == "__main__":
    sys.exit(main())

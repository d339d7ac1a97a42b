"""A stream of lines to the end: the sender shuts its side down to say "that is all".

The client sends lines (``framing.Delimited``) and then ``shutdown(SHUT_WR)``:
the server's ``recv`` returns b"" (the end of the stream), and the server,
which has decoded every line as its bytes arrived, in whatever pieces,
answers with how many lines and bytes it got.  The connection stays open
for that answer, in the other direction.

    netplay exec www -- python3 -m netplay.programs.streamer server &
    netplay exec h1 -- python3 -m netplay.programs.streamer client www --lines 10000
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

from netplay.programs._cli import ProgramError, run
from netplay.programs.framing import END, NEED_DATA, Delimited, FramingError
from netplay.programs.tcp_sixteen import bind, connect, peer_name

PORT = 1064


def receive_lines(sock: socket.socket) -> tuple[int, int]:
    """Decode lines until the peer ends its stream; return (lines, bytes)."""
    decoder = Delimited(max_size=64 * 1024)
    lines = size = 0
    while True:
        message = decoder.next()
        if message is END:
            return lines, size
        if message is NEED_DATA:
            decoder.feed(sock.recv(65536))
            continue
        assert isinstance(message, bytes)
        lines, size = lines + 1, size + len(message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamer", description="Send lines until EOF.")
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server", help="count each client's lines")
    server.add_argument("host", nargs="?", default="::", help="address to bind (default: all)")
    server.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    client = sub.add_parser("client", help="send lines, then end the stream")
    client.add_argument("host", help="the server's name or address")
    client.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    client.add_argument("--lines", type=int, default=1000, help="how many lines to send")
    args = parser.parse_args(argv)

    def serve() -> None:
        listener = bind(args.host, args.port)
        print(f"Listening at {listener.getsockname()[:2]}", flush=True)
        while True:
            sock, address = listener.accept()
            with sock:
                try:
                    lines, size = receive_lines(sock)
                except (FramingError, ConnectionError) as exc:
                    print(f"{peer_name(address)}: broken stream ({exc})", flush=True)
                    continue
                print(f"{peer_name(address)}: {lines} lines, {size} bytes", flush=True)
                sock.sendall(f"{lines} lines, {size} bytes\n".encode())

    def send() -> None:
        encoder = Delimited()
        with connect(args.host, args.port) as sock:
            for i in range(args.lines):
                sock.sendall(encoder.encode(f"line {i} of the stream".encode()))
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        if not reply:
            raise ProgramError("the server closed without answering")
        print(f"The server got {reply.decode().strip()}")

    return run("streamer", serve if args.role == "server" else send)


if __name__ == "__main__":
    sys.exit(main())

"""A stream of lines to the end: the sender shuts its side down to say "that is all".

The client sends lines (``Delimited``, from :mod:`netplay.protocols.framing`)
and then ``shutdown(SHUT_WR)``: the server's ``recv`` returns b"" (the end
of the stream), and the server, which has decoded every line as its bytes
arrived, in whatever pieces, answers with how many lines and bytes it got.
The connection stays open for that answer, in the other direction.

    netplay exec www -- python3 -m netplay.programs.streamer server &
    netplay exec h1 -- python3 -m netplay.programs.streamer client www --lines 10000
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence

from netplay.programs._cli import ProgramError, run
from netplay.programs._net import bind, client_server, connect, serve_each
from netplay.protocols import END, NEED_DATA
from netplay.protocols.framing import Delimited, FramingError

PORT = 1064


def receive_lines(sock: socket.socket) -> tuple[int, int]:
    """Decode lines until the peer ends its stream; return (lines, bytes)."""
    decoder = Delimited(max_size=64 * 1024)
    lines = size = 0
    while True:
        message = decoder.next_event()
        if message is END:
            return lines, size
        if message is NEED_DATA:
            decoder.receive_data(sock.recv(65536))
            continue
        assert isinstance(message, bytes)
        lines, size = lines + 1, size + len(message)


def main(argv: Sequence[str] | None = None) -> int:
    parser, _server, client = client_server(
        "streamer",
        "Send lines until EOF.",
        PORT,
        server_help="count each client's lines",
        client_help="send lines, then end the stream",
    )
    client.add_argument("--lines", type=int, default=1000, help="how many lines to send")
    args = parser.parse_args(argv)

    def count(sock: socket.socket) -> str:
        lines, size = receive_lines(sock)
        sock.sendall(f"{lines} lines, {size} bytes\n".encode())
        return f"{lines} lines, {size} bytes"

    def serve() -> None:
        serve_each(bind(args.host, args.port), count, broken=(FramingError,))

    def send() -> None:
        encoder = Delimited()
        with connect(args.host, args.port) as sock:
            for i in range(args.lines):
                sock.sendall(encoder.send(f"line {i} of the stream".encode()))
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

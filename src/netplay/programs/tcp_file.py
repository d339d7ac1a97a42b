"""A TCP stream used as a file: ``makefile()`` and lines instead of recv and send.

``sock.makefile("rwb")`` wraps a connected socket in a buffered file, so a
protocol of lines reads like a file of lines: ``readline()`` gathers bytes
from as many ``recv`` calls as a line needs and keeps the rest for the
next.  The server answers each line with its words counted; the client
sends its lines (from ``--line`` or stdin) and prints the answers.

    netplay exec www -- python3 -m netplay.programs.tcp_file server &
    netplay exec h1 -- python3 -m netplay.programs.tcp_file client www --line "one line"
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from netplay.programs._cli import ProgramError, run
from netplay.programs._net import bind, client_server, connect, serve_each

PORT = 1062
MAX_LINE = 64 * 1024


class Stream(Protocol):
    """What a socket's ``makefile("rwb")`` gives (and io.BytesIO, for tests)."""

    def readline(self, size: int | None = -1, /) -> bytes: ...
    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...


def answer(line: bytes) -> bytes:
    """The server's answer to one line (without its newline)."""
    return f"{len(line.split())} words, {len(line)} bytes\n".encode("ascii")


def serve_lines(stream: Stream) -> int:
    """Answer every line of ``stream`` until it ends; return how many."""
    count = 0
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return count
        if len(line) > MAX_LINE:
            stream.write(b"error: line too long\n")
            stream.flush()
            return count
        stream.write(answer(line.rstrip(b"\r\n")))
        stream.flush()
        count += 1


def ask_lines(stream: Stream, lines: Iterable[str]) -> Iterator[str]:
    """Send each line and yield the server's answer to it."""
    for line in lines:
        stream.write(line.rstrip("\n").encode("utf-8") + b"\n")
        stream.flush()
        reply = stream.readline()
        if not reply:
            raise ProgramError("the server closed the connection")
        yield reply.decode("ascii").rstrip("\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser, _server, client = client_server(
        "tcp_file",
        "A TCP stream used as a file.",
        PORT,
        server_help="answer lines, one client at a time",
        client_help="send lines (from --line or stdin)",
    )
    client.add_argument("--line", action="append", help="a line to send (repeatable)")
    args = parser.parse_args(argv)

    def answer_lines(sock: socket.socket) -> str:
        with sock.makefile("rwb") as stream:
            return f"{serve_lines(stream)} lines answered"

    def serve() -> None:
        serve_each(bind(args.host, args.port), answer_lines)

    def ask() -> None:
        with connect(args.host, args.port) as sock, sock.makefile("rwb") as stream:
            for reply in ask_lines(stream, args.line or sys.stdin):
                print(reply)
            sock.shutdown(socket.SHUT_WR)  # no more lines; wait until the server is done
            stream.read()

    return run("tcp_file", serve if args.role == "server" else ask)


if __name__ == "__main__":
    sys.exit(main())

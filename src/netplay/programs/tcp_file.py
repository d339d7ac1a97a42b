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

import argparse
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from netplay.programs._cli import ProgramError, run
from netplay.programs.tcp_sixteen import bind, connect, peer_name

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
    parser = argparse.ArgumentParser(prog="tcp_file", description="A TCP stream used as a file.")
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server", help="answer lines, one client at a time")
    server.add_argument("host", nargs="?", default="::", help="address to bind (default: all)")
    server.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    client = sub.add_parser("client", help="send lines (from --line or stdin)")
    client.add_argument("host", help="the server's name or address")
    client.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    client.add_argument("--line", action="append", help="a line to send (repeatable)")
    args = parser.parse_args(argv)

    def serve() -> None:
        listener = bind(args.host, args.port)
        print(f"Listening at {listener.getsockname()[:2]}", flush=True)
        while True:
            sock, address = listener.accept()
            with sock, sock.makefile("rwb") as stream:
                try:
                    count = serve_lines(stream)
                except ConnectionError:
                    count = -1
                print(f"{peer_name(address)}: {count} lines answered", flush=True)

    def ask() -> None:
        with connect(args.host, args.port) as sock, sock.makefile("rwb") as stream:
            for reply in ask_lines(stream, args.line or sys.stdin):
                print(reply)

    return run("tcp_file", serve if args.role == "server" else ask)


if __name__ == "__main__":
    sys.exit(main())

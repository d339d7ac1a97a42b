"""zlib on a stream: compressed data knows where it ends.

The client compresses text with ``zlib.compressobj`` and sends it, then a
plain trailer line, then ends the stream.  The server feeds whatever
arrives to a ``zlib.decompressobj`` until it reports ``eof``: the
compressed stream has ended, and whatever followed it in the same
``recv`` is in ``unused_data``: the start of the trailer.  So compressed
data frames itself, and the two can share one connection.

    netplay exec www -- python3 -m netplay.programs.zlib_stream server &
    netplay exec h1 -- python3 -m netplay.programs.zlib_stream client www --repeat 1000
"""

from __future__ import annotations

import argparse
import socket
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from netplay.programs._cli import ProgramError, run
from netplay.programs.tcp_sixteen import bind, connect, peer_name

PORT = 1066
TEXT = "Those who can make you believe absurdities can make you commit atrocities. "
TRAILER = b"and this line was not compressed\n"
MAX_OUTPUT = 64 << 20


@dataclass(frozen=True, slots=True)
class Received:
    compressed: int
    text: bytes
    trailer: bytes


def receive(recv: Callable[[int], bytes]) -> Received:
    """Decompress until the compressed stream ends, then read the rest to EOF."""
    decompressor = zlib.decompressobj()
    text, compressed = b"", 0
    while not decompressor.eof:
        data = recv(65536)
        if not data:
            raise ProgramError("the stream ended inside the compressed data")
        compressed += len(data)
        text += decompressor.decompress(data, MAX_OUTPUT - len(text))
        if decompressor.unconsumed_tail:
            raise ProgramError(f"more than {MAX_OUTPUT} bytes once decompressed")
    trailer = decompressor.unused_data
    compressed -= len(trailer)
    while data := recv(65536):
        trailer += data
    return Received(compressed, text, trailer)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zlib_stream", description="zlib on a TCP stream.")
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server", help="decompress what each client sends")
    server.add_argument("host", nargs="?", default="::", help="address to bind (default: all)")
    server.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    client = sub.add_parser("client", help="send compressed text, then a plain trailer")
    client.add_argument("host", help="the server's name or address")
    client.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    client.add_argument("--repeat", type=int, default=100, help="copies of the text to send")
    args = parser.parse_args(argv)

    def serve() -> None:
        listener = bind(args.host, args.port)
        print(f"Listening at {listener.getsockname()[:2]}", flush=True)
        while True:
            sock, address = listener.accept()
            with sock:
                try:
                    got = receive(sock.recv)
                except (ProgramError, zlib.error, ConnectionError) as exc:
                    print(f"{peer_name(address)}: broken stream ({exc})", flush=True)
                    continue
                report = (
                    f"{got.compressed} compressed bytes became {len(got.text)}; "
                    f"then {len(got.trailer)} plain bytes: {got.trailer!r}"
                )
                print(f"{peer_name(address)}: {report}", flush=True)

    def send() -> None:
        data = (TEXT * args.repeat).encode()
        compressor = zlib.compressobj()
        packed = compressor.compress(data) + compressor.flush()
        with connect(args.host, args.port) as sock:
            sock.sendall(packed + TRAILER)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):  # until the server, done with us, closes
                pass
        print(f"sent {len(data)} bytes as {len(packed)} compressed, then {len(TRAILER)} plain")

    return run("zlib_stream", serve if args.role == "server" else send)


if __name__ == "__main__":
    sys.exit(main())

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

import socket
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from netplay.programs._cli import ProgramError, run
from netplay.programs._net import bind, client_server, connect, serve_each

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
    parser, _server, client = client_server(
        "zlib_stream",
        "zlib on a TCP stream.",
        PORT,
        server_help="decompress what each client sends",
        client_help="send compressed text, then a plain trailer",
    )
    client.add_argument("--repeat", type=int, default=100, help="copies of the text to send")
    args = parser.parse_args(argv)

    def report(sock: socket.socket) -> str:
        got = receive(sock.recv)
        return (
            f"{got.compressed} compressed bytes became {len(got.text)}; "
            f"then {len(got.trailer)} plain bytes: {got.trailer!r}"
        )

    def serve() -> None:
        serve_each(bind(args.host, args.port), report, broken=(ProgramError, zlib.error))

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

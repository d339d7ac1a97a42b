"""Streams with an end: streamer (lines to EOF), blocks (chunked messages) and zlib_stream
(compressed data that frames itself).
"""

from __future__ import annotations

import socket
import zlib

import pytest
from _programs import client, server_in

from netplay import Playground
from netplay.programs import zlib_stream
from netplay.programs._cli import ProgramError


def test_zlib_stream_finds_the_end_of_compressed_data() -> None:
    compressor = zlib.compressobj()
    packed = compressor.compress(b"spam " * 1000) + compressor.flush()
    a, b = socket.socketpair()
    with a, b:
        for i in range(0, len(packed), 7):  # in small pieces
            a.sendall(packed[i : i + 7])
        a.sendall(b"TRAILER")
        a.shutdown(socket.SHUT_WR)
        got = zlib_stream.receive(b.recv)
    assert got == zlib_stream.Received(len(packed), b"spam " * 1000, b"TRAILER")
    c, d = socket.socketpair()
    with c, d:
        c.sendall(packed[:10])
        c.shutdown(socket.SHUT_WR)
        with pytest.raises(ProgramError, match="inside the compressed data"):
            zlib_stream.receive(d.recv)


def test_streamer_blocks_and_zlib_over_the_network(book: Playground) -> None:
    with server_in(book, "www", "streamer") as said:
        streamed = client(book, "streamer", "www", "--lines", "20000")
    assert streamed.stdout.startswith("The server got 20000 lines, "), streamed.stderr
    assert any("20000 lines" in line for line in said)
    with server_in(book, "www", "blocks") as said:
        sizes = ["--size", "0", "--size", "10", "--size", "3000000"]
        blocks = client(book, "blocks", "www", *sizes)
    assert blocks.returncode == 0, blocks.stderr
    assert blocks.stdout.count("the server agrees on their SHA-256") == 3
    assert any("3 messages" in line for line in said)
    with server_in(book, "www", "zlib_stream") as said:
        packed = client(book, "zlib_stream", "www", "--repeat", "1000")
    assert packed.returncode == 0, packed.stderr
    report = next(line for line in said if "compressed bytes became" in line)
    assert "became 75000;" in report and "b'and this line was not compressed\\n'" in report

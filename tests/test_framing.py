"""The framing library: every decoder fed whole, byte by byte and in random pieces."""

from __future__ import annotations

import socket
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netplay.programs import zlib_stream
from netplay.programs._cli import ProgramError
from netplay.programs.framing import (
    END,
    NEED_DATA,
    Chunked,
    Decoder,
    Delimited,
    FixedSize,
    FramingError,
    LengthPrefixed,
    StructHeader,
)

messages = st.lists(st.binary(max_size=300), max_size=8)


def decode_all(decoder: Decoder[Any], wire: bytes, cuts: list[int]) -> list[Any]:
    """Feed ``wire`` cut at ``cuts``, then the end; collect every message until END."""
    got: list[Any] = []
    points = sorted({c for c in cuts if 0 < c < len(wire)})
    for start, stop in zip([0, *points], [*points, len(wire)], strict=True):
        if stop > start:  # feed(b"") would say the stream has ended
            decoder.feed(wire[start:stop])
            got += list(decoder)
    decoder.feed(b"")
    while (message := decoder.next()) is not END:
        assert message is not NEED_DATA
        got.append(message)
    return got


def byte_by_byte(wire: bytes) -> list[int]:
    return list(range(1, len(wire)))


MAKERS: dict[str, Callable[[], Decoder[Any]]] = {
    "length": LengthPrefixed,
    "length16": lambda: LengthPrefixed(prefix="!H", max_size=1000),
    "chunked": Chunked,
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
@settings(max_examples=200, deadline=None)
@given(items=messages, cuts=st.lists(st.integers(0, 3000), max_size=20))
def test_length_and_chunked_round_trip(kind: str, items: list[bytes], cuts: list[int]) -> None:
    encoder: Any = MAKERS[kind]()  # each framing's encode() has its own signature
    wire = b"".join(
        encoder.encode(m, 7) if isinstance(encoder, Chunked) else encoder.encode(m) for m in items
    )
    assert decode_all(MAKERS[kind](), wire, cuts) == items
    assert decode_all(MAKERS[kind](), wire, byte_by_byte(wire)) == items


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(st.binary(max_size=200).filter(lambda m: b"\r\n" not in m), max_size=8),
    cuts=st.lists(st.integers(0, 2000), max_size=20),
)
def test_delimited_round_trip(items: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(Delimited(delimiter=b"\r\n").encode(m) for m in items)
    assert decode_all(Delimited(delimiter=b"\r\n"), wire, cuts) == items
    assert decode_all(Delimited(delimiter=b"\r\n"), wire, byte_by_byte(wire)) == items


@settings(max_examples=100, deadline=None)
@given(count=st.integers(0, 10), cuts=st.lists(st.integers(0, 200), max_size=10))
def test_fixed_size_round_trip(count: int, cuts: list[int]) -> None:
    items = [bytes([i]) * 16 for i in range(count)]
    wire = b"".join(items)
    assert decode_all(FixedSize(16), wire, cuts) == items


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(
        st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 65535), st.binary()),
        max_size=6,
    ),
    cuts=st.lists(st.integers(0, 2000), max_size=20),
)
def test_struct_header_round_trip(
    items: list[tuple[int, int, int, bytes]], cuts: list[int]
) -> None:
    wire = b"".join(StructHeader().encode((v, k, f), payload) for v, k, f, payload in items)
    expected = [((v, k, f), payload) for v, k, f, payload in items]
    assert decode_all(StructHeader(), wire, cuts) == expected


@settings(max_examples=300, deadline=None)
@given(junk=st.binary(max_size=600))
def test_any_bytes_give_messages_or_framing_error_only(junk: bytes) -> None:
    makers: list[Callable[[], Decoder[Any]]] = [
        *MAKERS.values(),
        Delimited,
        lambda: FixedSize(5),
        StructHeader,
    ]
    for make in makers:
        decoder = make()
        try:
            decode_all(decoder, junk, [1, 7, 100])
        except FramingError:
            pass


def test_limits_and_broken_streams() -> None:
    small = LengthPrefixed(max_size=10)
    small.feed(b"\x00\x00\x10\x00")  # announces 4096 bytes
    with pytest.raises(FramingError, match="announced 4096"):
        small.next()
    lines = Delimited(max_size=8)
    lines.feed(b"x" * 100)  # no delimiter in sight: not buffered forever
    with pytest.raises(FramingError, match="larger than 8"):
        lines.next()
    chunks = Chunked(max_size=10)
    chunks.feed(Chunked.CHUNK.pack(6) + b"abcdef" + Chunked.CHUNK.pack(6) + b"ghijkl")
    with pytest.raises(FramingError, match="larger than 10"):
        chunks.next()
    half = LengthPrefixed()
    half.feed(LengthPrefixed().encode(b"hello")[:-1])
    half.feed(b"")
    with pytest.raises(FramingError, match="ended inside a message"):
        half.next()
    unended = Chunked()
    unended.feed(Chunked.CHUNK.pack(1) + b"a")  # a chunk, but never the end marker
    assert unended.next() is NEED_DATA
    unended.feed(b"")
    with pytest.raises(FramingError, match="ended inside"):
        unended.next()
    done = Delimited()
    done.feed(b"")
    assert done.next() is END
    with pytest.raises(FramingError, match="after the end"):
        done.feed(b"more")
    with pytest.raises(FramingError, match="cannot hold the delimiter"):
        Delimited().encode(b"a\nb")


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

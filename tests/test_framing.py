"""The framing cores: every decoder fed whole, byte by byte, in random pieces and random junk."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netplay.protocols import END, NEED_DATA, LocalProtocolError, RemoteProtocolError
from netplay.protocols.framing import (
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
        if stop > start:  # receive_data(b"") would say the stream has ended
            decoder.receive_data(wire[start:stop])
            got += list(decoder)
    decoder.receive_data(b"")
    while (message := decoder.next_event()) is not END:
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
    encoder: Any = MAKERS[kind]()  # each framing's send() has its own signature
    wire = b"".join(
        encoder.send(m, 7) if isinstance(encoder, Chunked) else encoder.send(m) for m in items
    )
    assert decode_all(MAKERS[kind](), wire, cuts) == items
    assert decode_all(MAKERS[kind](), wire, byte_by_byte(wire)) == items


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(st.binary(max_size=200).filter(lambda m: b"\r\n" not in m), max_size=8),
    cuts=st.lists(st.integers(0, 2000), max_size=20),
)
def test_delimited_round_trip(items: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(Delimited(delimiter=b"\r\n").send(m) for m in items)
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
    wire = b"".join(StructHeader().send((v, k, f), payload) for v, k, f, payload in items)
    expected = [((v, k, f), payload) for v, k, f, payload in items]
    assert decode_all(StructHeader(), wire, cuts) == expected


JUNK_MAKERS: list[Callable[[], Decoder[Any]]] = [
    *MAKERS.values(),
    lambda: LengthPrefixed(max_size=40),
    Delimited,
    lambda: Delimited(max_size=16, delimiter=b"\r\n"),
    lambda: FixedSize(5),
    lambda: Chunked(max_size=30),
    StructHeader,
    lambda: StructHeader(max_size=20),
]


@settings(max_examples=300, deadline=None)
@given(junk=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=30))
def test_any_bytes_in_any_pieces_give_messages_or_framing_error_only(
    junk: bytes, cuts: list[int]
) -> None:
    """The fuzz rule: random bytes, cut anyhow, give messages or FramingError, nothing else."""
    for make in JUNK_MAKERS:
        for pieces in (cuts, byte_by_byte(junk), []):
            try:
                decode_all(make(), junk, pieces)
            except FramingError:
                pass


def test_limits_and_broken_streams() -> None:
    small = LengthPrefixed(max_size=10)
    small.receive_data(b"\x00\x00\x10\x00")  # announces 4096 bytes
    with pytest.raises(FramingError, match="announced 4096"):
        small.next_event()
    lines = Delimited(max_size=8)
    lines.receive_data(b"x" * 100)  # no delimiter in sight: not buffered forever
    with pytest.raises(FramingError, match="larger than 8"):
        lines.next_event()
    chunks = Chunked(max_size=10)
    chunks.receive_data(Chunked.CHUNK.pack(6) + b"abcdef" + Chunked.CHUNK.pack(6) + b"ghijkl")
    with pytest.raises(FramingError, match="larger than 10"):
        chunks.next_event()
    half = LengthPrefixed()
    half.receive_data(LengthPrefixed().send(b"hello")[:-1])
    half.receive_data(b"")
    with pytest.raises(FramingError, match="ended inside a message"):
        half.next_event()
    unended = Chunked()
    unended.receive_data(Chunked.CHUNK.pack(1) + b"a")  # a chunk, but never the end marker
    assert unended.next_event() is NEED_DATA
    unended.receive_data(b"")
    with pytest.raises(FramingError, match="ended inside"):
        unended.next_event()
    done = Delimited()
    done.receive_data(b"")
    assert done.next_event() is END
    assert done.next_event() is END  # and stays so


def test_local_misuse_is_a_local_protocol_error() -> None:
    done = Delimited()
    done.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="after the end"):
        done.receive_data(b"more")
    with pytest.raises(LocalProtocolError, match="cannot hold the delimiter"):
        Delimited().send(b"a\nb")
    with pytest.raises(LocalProtocolError, match="larger than 4"):
        LengthPrefixed(max_size=4).send(b"hello")
    with pytest.raises(LocalProtocolError, match="exactly 5"):
        FixedSize(5).send(b"four")
    with pytest.raises(LocalProtocolError, match="do not fit"):
        StructHeader().send((1, 2), b"one field short")
    with pytest.raises(LocalProtocolError, match="cannot be empty"):
        Delimited(delimiter=b"")


def test_framing_errors_are_remote_protocol_errors() -> None:
    assert issubclass(FramingError, RemoteProtocolError)
    assert not issubclass(FramingError, LocalProtocolError)
    assert repr(NEED_DATA) == "NEED_DATA" and repr(END) == "END"

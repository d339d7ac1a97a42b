"""Framing: where one message ends and the next begins in a byte stream (sans-IO).

TCP delivers bytes, not messages: one ``recv`` may hold half a message or
three.  Each decoder here speaks the :mod:`netplay.protocols` vocabulary:
it is given bytes as they come (``receive_data(data)``; ``b""`` means the
stream ended) and hands out whole messages (``next_event()``: a message,
NEED_DATA, or END once the stream has ended cleanly; iterating over a
decoder gives the whole messages available now).  None of them touches a
socket, so they are tested with bytes fed whole, byte by byte and in
random pieces.  The framings:

- ``LengthPrefixed``: a fixed-size big-endian length, then that many bytes;
- ``Delimited``: messages ended by a delimiter (b"\\n"), which no message holds;
- ``FixedSize``: every message exactly N bytes;
- ``Chunked``: a message sent as length-prefixed chunks, ended by an empty
  chunk (the end marker), so a sender need not know the length in advance;
- ``StructHeader``: a ``struct``-packed binary header whose last field is
  the payload's length (``!BBH I``: version, kind, flags, length), giving
  (header fields, payload).

Every decoder has a maximum message size: a peer that announces or sends
more gets FramingError (a RemoteProtocolError), not an unbounded buffer, as
does a stream that ends inside a message.  ``send`` makes the bytes a
decoder expects; asking it for what the framing cannot carry, or giving
data after the end, is a LocalProtocolError.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Generic, TypeVar

from netplay.errors import LocalProtocolError, RemoteProtocolError
from netplay.protocols._sansio import END, NEED_DATA, Sentinel

T = TypeVar("T")
DEFAULT_MAX = 1 << 20


class FramingError(RemoteProtocolError):
    """The peer broke the framing: too large, or the stream ended inside a message."""


class Decoder(Generic[T]):
    """The buffer, receive_data and next_event; subclasses say how to cut a message."""

    def __init__(self, max_size: int = DEFAULT_MAX) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._ended = False

    def receive_data(self, data: bytes) -> None:
        """Add bytes received; ``b""`` says the stream has ended."""
        if self._ended:
            raise LocalProtocolError("data after the end of the stream")
        if not data:
            self._ended = True
        self._buffer += data

    def next_event(self) -> T | Sentinel:
        """The next whole message, NEED_DATA, or END (FramingError if broken)."""
        message = self._cut()
        if message is not None:
            return message
        if len(self._buffer) > self._limit():
            raise FramingError(f"a message is larger than {self.max_size} bytes")
        if self._ended:
            if self._buffer or self._inside():
                raise FramingError(f"the stream ended inside a message ({len(self._buffer)} bytes)")
            return END
        return NEED_DATA

    def __iter__(self) -> Iterator[T]:
        """The whole messages available now."""
        while True:
            message = self.next_event()
            if isinstance(message, Sentinel):
                return
            yield message

    def _take(self, count: int) -> bytes:
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken

    def _limit(self) -> int:
        return self.max_size

    def _inside(self) -> bool:
        return False

    def _cut(self) -> T | None:
        raise NotImplementedError


class LengthPrefixed(Decoder[bytes]):
    def __init__(self, max_size: int = DEFAULT_MAX, prefix: str = "!I") -> None:
        super().__init__(max_size)
        self.prefix = struct.Struct(prefix)

    def send(self, message: bytes) -> bytes:
        if len(message) > self.max_size:
            raise LocalProtocolError(f"a message is larger than {self.max_size} bytes")
        return self.prefix.pack(len(message)) + message

    def _limit(self) -> int:
        return self.max_size + self.prefix.size

    def _cut(self) -> bytes | None:
        if len(self._buffer) < self.prefix.size:
            return None
        (length,) = self.prefix.unpack_from(self._buffer)
        if length > self.max_size:
            raise FramingError(f"the peer announced {length} bytes (at most {self.max_size})")
        if len(self._buffer) < self.prefix.size + length:
            return None
        return self._take(self.prefix.size + length)[self.prefix.size :]


class Delimited(Decoder[bytes]):
    def __init__(self, max_size: int = DEFAULT_MAX, delimiter: bytes = b"\n") -> None:
        super().__init__(max_size)
        if not delimiter:
            raise LocalProtocolError("the delimiter cannot be empty")
        self.delimiter = delimiter

    def send(self, message: bytes) -> bytes:
        if self.delimiter in message:
            raise LocalProtocolError("a message cannot hold the delimiter")
        return message + self.delimiter

    def _limit(self) -> int:
        return self.max_size + len(self.delimiter) - 1

    def _cut(self) -> bytes | None:
        end = self._buffer.find(self.delimiter)
        if end < 0:
            return None
        if end > self.max_size:
            raise FramingError(f"a message is larger than {self.max_size} bytes")
        return self._take(end + len(self.delimiter))[:end]


class FixedSize(Decoder[bytes]):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size

    def send(self, message: bytes) -> bytes:
        if len(message) != self.size:
            raise LocalProtocolError(f"a message must be exactly {self.size} bytes")
        return message

    def _cut(self) -> bytes | None:
        return self._take(self.size) if len(self._buffer) >= self.size else None


class Chunked(Decoder[bytes]):
    """Messages as chunks ``!I`` length + data, each message ended by an empty chunk."""

    CHUNK = struct.Struct("!I")

    def __init__(self, max_size: int = DEFAULT_MAX) -> None:
        super().__init__(max_size)
        self._message = bytearray()
        self._started = False

    def send(self, message: bytes, chunk_size: int = 4096) -> bytes:
        if len(message) > self.max_size:
            raise LocalProtocolError(f"a message is larger than {self.max_size} bytes")
        if chunk_size < 1:
            raise LocalProtocolError("a chunk holds at least one byte")
        pieces = [message[i : i + chunk_size] for i in range(0, len(message), chunk_size)]
        return b"".join(self.CHUNK.pack(len(p)) + p for p in pieces) + self.CHUNK.pack(0)

    def _limit(self) -> int:
        return self.max_size + 2 * self.CHUNK.size

    def _inside(self) -> bool:
        return self._started

    def _cut(self) -> bytes | None:
        while len(self._buffer) >= self.CHUNK.size:
            (length,) = self.CHUNK.unpack_from(self._buffer)
            if len(self._message) + length > self.max_size:
                raise FramingError(f"a message is larger than {self.max_size} bytes")
            if len(self._buffer) < self.CHUNK.size + length:
                return None
            chunk = self._take(self.CHUNK.size + length)[self.CHUNK.size :]
            self._started = True
            if not chunk:
                message, self._message, self._started = bytes(self._message), bytearray(), False
                return message
            self._message += chunk
        return None


class StructHeader(Decoder[tuple[tuple[int, ...], bytes]]):
    """A binary header packed with ``struct`` whose last field is the payload length."""

    def __init__(self, header: str = "!BBHI", max_size: int = DEFAULT_MAX) -> None:
        super().__init__(max_size)
        self.header = struct.Struct(header)

    def send(self, fields: tuple[int, ...], payload: bytes) -> bytes:
        if len(payload) > self.max_size:
            raise LocalProtocolError(f"a payload is larger than {self.max_size} bytes")
        try:
            return self.header.pack(*fields, len(payload)) + payload
        except struct.error as exc:
            raise LocalProtocolError(f"header fields {fields!r} do not fit: {exc}") from exc

    def _limit(self) -> int:
        return self.max_size + self.header.size

    def _cut(self) -> tuple[tuple[int, ...], bytes] | None:
        if len(self._buffer) < self.header.size:
            return None
        *fields, length = self.header.unpack_from(self._buffer)
        if length > self.max_size:
            raise FramingError(f"the peer announced {length} bytes (at most {self.max_size})")
        if len(self._buffer) < self.header.size + length:
            return None
        whole = self._take(self.header.size + length)
        return tuple(fields), whole[self.header.size :]

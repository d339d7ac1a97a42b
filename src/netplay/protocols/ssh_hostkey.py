"""SSH's key exchange, sans-IO, from the client's side: which host key a server proves it holds.

:class:`HostKeyClient` speaks RFC 4253's transport from the version line
to the server's signed key-exchange reply (curve25519-sha256, RFC 8731,
with an Ed25519 host key, RFC 8709), checks the server's signature over
the exchange hash with the host key it sent, and gives that key as its
one event; it never derives session keys or sends a password.  It is what
``ssh-keyscan`` does, with the signature checked (``ssh-keyscan`` does
not), and what the ssh kind's health check asks::

    client = HostKeyClient()
    while (event := client.next_event()) is NEED_DATA:
        out(client.data_to_send())            # our version line, KEXINIT, then our key share
        client.receive_data(read())
    out(client.data_to_send())                # a DISCONNECT: nothing more to say
    event.blob                                # the host key, as a .pub line encodes it

Limits: the server may send at most MAX_PREAMBLE bytes of lines before
its version line (RFC 4253 4.2 allows such lines), a version line of at
most 255 bytes, packets of at most MAX_PACKET bytes (the size RFC 4253
6.1 requires every implementation to take) and MAX_RECEIVED bytes in all
before its reply (IGNORE and DEBUG messages are skipped, not without
end).  A host key of small order, which anyone can "prove", is refused.
Whatever breaks the protocol, a DISCONNECT from the server, an algorithm
it lacks or a signature that does not verify is a
:class:`RemoteProtocolError` saying which (with at most SAID bytes of
what the server wrote).
"""

from __future__ import annotations

import enum
import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from netplay.errors import LocalProtocolError, RemoteProtocolError
from netplay.protocols._sansio import NEED_DATA, Sentinel

VERSION = b"SSH-2.0-netplay_hostkey"
MAX_VERSION = 255  # the version line with its CR LF (RFC 4253 4.2)
MAX_PREAMBLE = 8192  # bytes of other lines before it
MAX_PACKET = 35000  # RFC 4253 6.1
MAX_RECEIVED = 1 << 16  # bytes from the server before its reply, all told
SAID = 200  # bytes of the server's own words quoted in an error

MSG_DISCONNECT, MSG_IGNORE, MSG_UNIMPLEMENTED, MSG_DEBUG = 1, 2, 3, 4
MSG_KEXINIT = 20
MSG_KEX_ECDH_INIT, MSG_KEX_ECDH_REPLY = 30, 31
DISCONNECT_BY_APPLICATION = 11

KEX = (b"curve25519-sha256", b"curve25519-sha256@libssh.org")  # one method, two names
HOST_KEY = b"ssh-ed25519"
# never used (the exchange ends before keys are derived), but a server that
# finds none of ours in its lists ends the exchange: what OpenSSH and asyncssh offer
CIPHERS = b"chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr,aes128-gcm@openssh.com"
MACS = b"hmac-sha2-256-etm@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1"
#: the Ed25519 public keys of small order (libsodium's list, the sign bit
#: cleared): a signature that verifies with one of them proves nothing
SMALL_ORDER = frozenset(
    bytes.fromhex(key)
    for key in (
        "00" * 32,
        "01" + "00" * 31,
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ec" + "ff" * 30 + "7f",  # p - 1
        "ed" + "ff" * 30 + "7f",  # p, which is 0
        "ee" + "ff" * 30 + "7f",  # p + 1, which is 1
    )
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HostKey:
    """The host key the server proved it holds: its algorithm and its public key
    blob (the second field of a ``.pub`` line, the third of a known_hosts line)."""

    algorithm: bytes
    blob: bytes


class State(enum.Enum):
    VERSION = "the server's version line"
    KEXINIT = "the server's KEXINIT"
    REPLY = "the server's key exchange reply"
    DONE = "nothing more"


def string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def mpint(value: bytes) -> bytes:
    """An unsigned big-endian number as RFC 4251's mpint."""
    value = value.lstrip(b"\0")
    if value and value[0] & 0x80:
        value = b"\0" + value
    return string(value)


def packet(payload: bytes) -> bytes:
    """``payload`` in an unencrypted binary packet (RFC 4253 6): padded to a
    multiple of eight with at least four bytes."""
    padding = 8 - (len(payload) + 5) % 8
    if padding < 4:
        padding += 8
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + os.urandom(padding)


def _quoted(said: bytes) -> str:
    return repr(said[:SAID])


class Reader:
    """The fields of one message, in order; a short or a long one is the server's fault."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise RemoteProtocolError("the server sent a truncated message")
        value = self.data[self.at : self.at + n]
        self.at += n
        return value

    def byte(self) -> int:
        return self.take(1)[0]

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.uint32())

    def names(self) -> list[bytes]:
        return self.string().split(b",")

    def end(self) -> None:
        if self.at != len(self.data):
            raise RemoteProtocolError("the server sent a message with bytes after its end")


class HostKeyClient:
    """One connection's key exchange, up to the server's verified host key."""

    def __init__(self) -> None:
        self._state = State.VERSION
        self._in = bytearray()
        self._out = bytearray(VERSION + b"\r\n")
        self._ephemeral = X25519PrivateKey.generate()
        self._share = self._ephemeral.public_key().public_bytes_raw()
        self._kexinit = self._our_kexinit()
        self._out += packet(self._kexinit)
        self._server_version = b""
        self._server_kexinit = b""
        self._preamble = 0  # bytes of the lines before the version line
        self._received = 0
        self._ended = False
        #: (state, message) -> what to do with it; what the table lacks is an error
        self._handlers: dict[tuple[State, int], Callable[[bytes], HostKey | None]] = {
            (State.KEXINIT, MSG_KEXINIT): self._kexinit_received,
            (State.REPLY, MSG_KEX_ECDH_REPLY): self._reply,
        }

    def receive_data(self, data: bytes) -> None:
        """Bytes from the server; ``b""`` when it closed the connection."""
        if not data:
            self._ended = True
        self._received += len(data)
        self._in += data

    def data_to_send(self) -> bytes:
        """What to write to the server now (maybe nothing)."""
        out, self._out = bytes(self._out), bytearray()
        return out

    def next_event(self) -> HostKey | Literal[Sentinel.NEED_DATA]:
        """The server's verified host key once its reply has come, else NEED_DATA."""
        while self._state is not State.DONE:
            if self._state is State.VERSION:
                if not self._version_line():
                    return self._need()
                continue
            payload = self._packet()
            if payload is None:
                return self._need()
            kind = payload[0]
            if kind == MSG_DISCONNECT:
                reader = Reader(payload[1:])
                code, said = reader.uint32(), reader.string()
                raise RemoteProtocolError(
                    f"the server disconnected (reason {code}): {_quoted(said)}"
                )
            if kind in (MSG_IGNORE, MSG_DEBUG):
                continue
            handler = self._handlers.get((self._state, kind))
            if handler is None:
                raise RemoteProtocolError(
                    f"the server sent message {kind}, not {self._state.value}"
                )
            if (key := handler(payload)) is not None:
                return key
        raise LocalProtocolError("the key exchange is over: its host key was given")

    # -- what the server sends -------------------------------------------

    def _need(self) -> Literal[Sentinel.NEED_DATA]:
        if self._ended:
            raise RemoteProtocolError(
                f"the server closed the connection before {self._state.value}"
            )
        if self._received > MAX_RECEIVED:
            raise RemoteProtocolError(
                f"the server sent {self._received} bytes without {self._state.value}"
            )
        return NEED_DATA

    def _version_line(self) -> bool:
        """Consume lines up to the server's version line; whether it has come."""
        while (end := self._in.find(b"\n")) >= 0:
            line = bytes(self._in[: end + 1])
            del self._in[: end + 1]
            if line.startswith(b"SSH-"):
                if len(line) > MAX_VERSION:
                    raise RemoteProtocolError("the server's version line is too long")
                self._server_version = line.removesuffix(b"\n").removesuffix(b"\r")
                if not self._server_version.startswith((b"SSH-2.0-", b"SSH-1.99-")):
                    raise RemoteProtocolError(
                        "the server speaks another protocol version: "
                        + _quoted(self._server_version)
                    )
                self._state = State.KEXINIT
                return True
            self._preamble += len(line)
        if self._in.startswith(b"SSH-") and len(self._in) > MAX_VERSION:
            raise RemoteProtocolError("the server's version line is too long")
        if self._preamble + len(self._in) > MAX_PREAMBLE:
            raise RemoteProtocolError("the server sent no SSH version line")
        return False

    def _packet(self) -> bytes | None:
        """The next packet's payload, or None until it has all come."""
        if len(self._in) < 5:
            return None
        length, padding = struct.unpack_from(">IB", self._in)
        if length + 4 > MAX_PACKET or not 4 <= padding <= length - 2:
            raise RemoteProtocolError(f"the server sent a malformed packet (length {length})")
        if len(self._in) < length + 4:
            return None
        payload = bytes(self._in[5 : 4 + length - padding])
        del self._in[: length + 4]
        return payload

    def _kexinit_received(self, payload: bytes) -> None:
        reader = Reader(payload[1:])
        reader.take(16)  # the cookie
        kex, host_keys, *_others = (reader.names() for _ in range(10))
        reader.byte()  # first_kex_packet_follows: a server never guesses in ECDH
        reader.uint32()  # reserved
        reader.end()
        if not any(name in kex for name in KEX):
            raise RemoteProtocolError(
                f"the server offers no curve25519-sha256 key exchange: {_quoted(b','.join(kex))}"
            )
        if HOST_KEY not in host_keys:
            raise RemoteProtocolError(
                f"the server has no {HOST_KEY.decode()} host key: {_quoted(b','.join(host_keys))}"
            )
        self._server_kexinit = payload
        self._out += packet(bytes([MSG_KEX_ECDH_INIT]) + string(self._share))
        self._state = State.REPLY

    def _reply(self, payload: bytes) -> HostKey:
        reader = Reader(payload[1:])
        host_key, share, signature = reader.string(), reader.string(), reader.string()
        reader.end()
        key_reader, signature_reader = Reader(host_key), Reader(signature)
        if key_reader.string() != HOST_KEY or signature_reader.string() != HOST_KEY:
            raise RemoteProtocolError("the server's reply is not signed with an ssh-ed25519 key")
        public, signed = key_reader.string(), signature_reader.string()
        key_reader.end()
        signature_reader.end()
        if len(share) != 32 or len(public) != 32 or len(signed) != 64:
            raise RemoteProtocolError(
                "the server's key share, host key or signature has the wrong size"
            )
        if public[:31] + bytes([public[31] & 0x7F]) in SMALL_ORDER:
            raise RemoteProtocolError("the server's host key is of small order: it proves nothing")
        try:
            secret = self._ephemeral.exchange(X25519PublicKey.from_public_bytes(share))
        except ValueError:  # a share of small order: the secret would be zero
            raise RemoteProtocolError("the server's key share is not a usable point") from None
        exchange_hash = hashlib.sha256(
            string(VERSION)
            + string(self._server_version)
            + string(self._kexinit)
            + string(self._server_kexinit)
            + string(host_key)
            + string(self._share)
            + string(share)
            + mpint(secret)
        ).digest()
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(signed, exchange_hash)
        except (InvalidSignature, ValueError):
            raise RemoteProtocolError(
                "the server's signature does not verify with the host key it sent"
            ) from None
        self._state = State.DONE
        self._out += packet(
            bytes([MSG_DISCONNECT])
            + struct.pack(">I", DISCONNECT_BY_APPLICATION)
            + string(b"host key received")
            + string(b"")
        )
        return HostKey(algorithm=HOST_KEY, blob=host_key)

    def _our_kexinit(self) -> bytes:
        lists = (b",".join(KEX), HOST_KEY, CIPHERS, CIPHERS, MACS, MACS, b"none", b"none", b"", b"")
        return (
            bytes([MSG_KEXINIT])
            + os.urandom(16)
            + b"".join(string(names) for names in lists)
            + b"\0"  # no guessed key-exchange packet follows
            + struct.pack(">I", 0)
        )

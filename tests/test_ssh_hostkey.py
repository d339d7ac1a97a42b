"""The SSH host-key core (netplay.protocols.ssh_hostkey): against real servers
(asyncssh's on loopback, OpenSSH's sshd on a socket pair), and without sockets
against a server made here from RFC 4253's bytes, fed whole, byte by byte,
broken and fuzzed."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from _sshserver import asyncssh_server
from netplay.errors import LocalProtocolError, RemoteProtocolError
from netplay.protocols import NEED_DATA
from netplay.protocols.ssh_hostkey import (
    MAX_PACKET,
    MAX_PREAMBLE,
    MAX_RECEIVED,
    VERSION,
    HostKey,
    HostKeyClient,
    mpint,
    packet,
)
from netplay.services.engines.ssh import host_key_of

SSHD = "/usr/sbin/sshd"
PRIVSEP = Path("/run/sshd")


# -- real servers ----------------------------------------------------------------


def test_asyncssh_proves_its_host_key() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    with asyncssh_server(key) as port:
        found = host_key_of("127.0.0.1", port, 5.0)
    assert found == HostKey(algorithm=b"ssh-ed25519", blob=key.public_data)


@pytest.fixture
def privsep() -> Iterator[None]:
    """sshd's privilege separation directory, made for the test if missing."""
    made = not PRIVSEP.exists()
    PRIVSEP.mkdir(mode=0o755, exist_ok=True)
    try:
        yield
    finally:
        if made:
            shutil.rmtree(PRIVSEP, ignore_errors=True)


@pytest.mark.skipif(
    not os.access(SSHD, os.X_OK) or os.geteuid() != 0,
    reason="needs OpenSSH's sshd (openssh-server), as root",
)
@pytest.mark.usefixtures("privsep")
def test_openssh_proves_its_host_key_and_logs_our_disconnect(tmp_path: Path) -> None:
    """sshd in inetd mode (-i) on one end of a socket pair: no port to race for."""
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {key}\nPidFile none\nUsePAM no\n")
    ours, theirs = socket.socketpair()
    with ours:
        sshd = subprocess.Popen(
            [SSHD, "-i", "-e", "-f", config], stdin=theirs, stdout=theirs, stderr=subprocess.PIPE
        )
        theirs.close()
        try:
            ours.settimeout(10)
            client = HostKeyClient()
            while (found := client.next_event()) is NEED_DATA:
                ours.sendall(client.data_to_send())
                client.receive_data(ours.recv(65536))
            ours.sendall(client.data_to_send())
        finally:
            _, said = sshd.communicate(timeout=10)
    assert base64.b64encode(found.blob).decode() == key.with_suffix(".pub").read_text().split()[1]
    assert b"host key received" in said  # our DISCONNECT, in sshd's log


def test_a_silent_server_is_a_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(TimeoutError):
            host_key_of("127.0.0.1", listener.getsockname()[1], 0.2)


def test_a_server_that_drips_bytes_is_a_timeout_all_told() -> None:
    """Each byte comes well within the timeout, the reply never: the timeout
    is for the whole exchange, not for each read."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def drip() -> None:
            conn, _ = listener.accept()
            with conn:
                try:
                    for byte in b"x" * 500:  # a preamble of five seconds
                        conn.sendall(bytes([byte]))
                        time.sleep(0.01)
                except OSError:
                    pass  # the client gave up: what is tested

        dripping = threading.Thread(target=drip)
        dripping.start()
        try:
            with pytest.raises(TimeoutError):
                host_key_of("127.0.0.1", listener.getsockname()[1], 0.3)
        finally:
            dripping.join(10)


# -- a server made here ------------------------------------------------------------

SERVER_VERSION = b"SSH-2.0-TestServer_1.0"


def _string(data: bytes) -> bytes:  # written out again: the encodings are what is tested
    return struct.pack(">I", len(data)) + data


def _ecdh_reply(
    key: bytes, share: bytes, signature: bytes = _string(b"ssh-ed25519") + _string(bytes(64))
) -> bytes:
    """An SSH_MSG_KEX_ECDH_REPLY payload: the host key, the key share, the signature."""
    return b"\x1f" + _string(key) + _string(share) + _string(signature)


def _packet(payload: bytes) -> bytes:
    padding = 4 + (-(len(payload) + 9)) % 8
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + bytes(padding)


def _mpint(value: int) -> bytes:
    data = value.to_bytes((value.bit_length() + 8) // 8, "big").lstrip(b"\0") if value else b""
    if data and data[0] & 0x80:
        data = b"\0" + data
    return _string(data)


def _client_share(client_bytes: bytes) -> bytes:
    """The X25519 share in the client's KEX_ECDH_INIT (after its version and KEXINIT)."""
    init = _payloads(client_bytes.partition(b"\r\n")[2])[1]
    assert init[:5] == b"\x1e" + struct.pack(">I", 32)
    return init[5:]


def _payloads(data: bytes) -> list[bytes]:
    found = []
    while data:
        length, padding = struct.unpack_from(">IB", data)
        found.append(data[5 : 4 + length - padding])
        data = data[4 + length :]
    return found


def server_kexinit(kex: bytes = b"curve25519-sha256", host_keys: bytes = b"ssh-ed25519") -> bytes:
    lists = (kex, host_keys, b"aes128-ctr", b"aes128-ctr", b"hmac-sha2-256", b"hmac-sha2-256")
    names = (*lists, b"none", b"none", b"", b"")
    return b"\x14" + bytes(16) + b"".join(_string(n) for n in names) + b"\0" + bytes(4)


class Server:
    """The server's side of the exchange, from the bytes the client sent."""

    def __init__(self, host_key: Ed25519PrivateKey | None = None) -> None:
        self.host_key = host_key or Ed25519PrivateKey.generate()
        self.signer = self.host_key
        self.kexinit = server_kexinit()
        self.version = SERVER_VERSION
        self.extra = b""  # bytes after the signature blob

    @property
    def blob(self) -> bytes:
        return _string(b"ssh-ed25519") + _string(self.host_key.public_key().public_bytes_raw())

    def greeting(self) -> bytes:
        return self.version + b"\r\n" + _packet(self.kexinit)

    def reply(
        self, client_bytes: bytes, *, tamper: bool = False, ours: X25519PrivateKey | None = None
    ) -> bytes:
        """The KEX_ECDH_REPLY to everything the client sent (its version line,
        KEXINIT and KEX_ECDH_INIT), with the key share ``ours`` or a new one."""
        version, _, rest = client_bytes.partition(b"\r\n")
        assert version == VERSION
        client_kexinit, _init = _payloads(rest)
        client_share = _client_share(client_bytes)
        ours = ours or X25519PrivateKey.generate()
        share = ours.public_key().public_bytes_raw()
        secret = ours.exchange(X25519PublicKey.from_public_bytes(client_share))
        exchange_hash = hashlib.sha256(
            _string(version)
            + _string(self.version)
            + _string(client_kexinit)
            + _string(self.kexinit)
            + _string(self.blob)
            + _string(client_share)
            + _string(share)
            + _mpint(int.from_bytes(secret, "big"))
        ).digest()
        signed = self.signer.sign(exchange_hash)
        if tamper:
            signed = bytes([signed[0] ^ 1]) + signed[1:]
        signature = _string(b"ssh-ed25519") + _string(signed) + self.extra
        return _packet(_ecdh_reply(self.blob, share, signature))


def exchange(server: Server, *, chunk: int | None = None, tamper: bool = False) -> HostKey:
    """A whole exchange with ``server``, its bytes given ``chunk`` at a time."""
    client = HostKeyClient()
    sent = bytearray()
    incoming = server.greeting()
    replied = False
    while True:
        event = client.next_event()
        sent += client.data_to_send()
        if event is not NEED_DATA:
            return event
        if not incoming:
            assert not replied, "the client wants more than the reply"
            incoming, replied = server.reply(bytes(sent), tamper=tamper), True
        piece, incoming = incoming[: chunk or len(incoming)], incoming[chunk or len(incoming) :]
        client.receive_data(piece)


def test_the_encodings_are_rfc_4251s_and_4253s() -> None:
    # RFC 4251 5: the examples of mpint (the non-negative ones)
    assert mpint(b"") == mpint(b"\0\0") == bytes.fromhex("00000000")
    assert mpint(bytes.fromhex("09a378f9b2e332a7")) == bytes.fromhex("0000000809a378f9b2e332a7")
    assert mpint(b"\x80") == bytes.fromhex("000000020080")
    for size in range(64):  # RFC 4253 6: a multiple of eight, four to 255 bytes of padding
        made = packet(bytes(size))
        length, padding = struct.unpack_from(">IB", made)
        assert len(made) % 8 == 0 and len(made) == length + 4 and 4 <= padding <= 255
        assert made[5 : 5 + size] == bytes(size)


def test_the_exchange_whole_and_byte_by_byte_gives_the_signed_key() -> None:
    server = Server()
    for chunk in (None, 1, 7):
        assert exchange(server, chunk=chunk) == HostKey(algorithm=b"ssh-ed25519", blob=server.blob)


def test_secrets_with_a_high_bit_or_a_leading_zero_byte_are_encoded_right() -> None:
    """K is an mpint: a zero byte before a first byte of 0x80 or more, none
    left of a leading zero (about one exchange in 256)."""
    server = Server()
    seen = set()
    while seen != {"high", "zero"}:
        client = HostKeyClient()
        sent = client.data_to_send()
        client.receive_data(server.greeting())
        assert client.next_event() is NEED_DATA
        sent += client.data_to_send()
        ours = X25519PrivateKey.generate()
        first = ours.exchange(X25519PublicKey.from_public_bytes(_client_share(sent)))[0]
        kind = "zero" if first == 0 else "high" if first >= 0x80 else ""
        if kind and kind not in seen:
            seen.add(kind)
            client.receive_data(server.reply(sent, ours=ours))
            assert client.next_event() == HostKey(algorithm=b"ssh-ed25519", blob=server.blob)


def test_the_client_ends_with_a_disconnect_and_asks_nothing_more() -> None:
    server = Server()
    client = HostKeyClient()
    sent = client.data_to_send()
    client.receive_data(server.greeting())
    assert client.next_event() is NEED_DATA
    sent += client.data_to_send()
    client.receive_data(server.reply(sent))
    assert isinstance(client.next_event(), HostKey)
    bye = client.data_to_send()
    assert bye[5] == 1 and b"host key received" in bye  # SSH_MSG_DISCONNECT
    with pytest.raises(LocalProtocolError):
        client.next_event()


def test_a_signature_that_does_not_verify_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="signature does not verify"):
        exchange(Server(), tamper=True)
    other = Server()
    other.signer = Ed25519PrivateKey.generate()  # the blob of one key, signed by another
    with pytest.raises(RemoteProtocolError, match="signature does not verify"):
        exchange(other)


def test_lines_before_the_version_and_an_lf_only_version_line_are_taken() -> None:
    server = Server()
    client = HostKeyClient()
    sent = client.data_to_send()
    client.receive_data(b"hello\r\nthere\n" + SERVER_VERSION + b"\n" + _packet(server.kexinit))
    assert client.next_event() is NEED_DATA
    client.receive_data(server.reply(sent + client.data_to_send()))
    assert client.next_event() == HostKey(algorithm=b"ssh-ed25519", blob=server.blob)


def test_lines_before_the_version_are_skipped_within_a_limit() -> None:
    client = HostKeyClient()
    with pytest.raises(RemoteProtocolError, match="no SSH version line"):
        for _ in range(MAX_PREAMBLE // 82 + 1):
            client.receive_data(b"y" * 80 + b"\r\n")
            assert client.next_event() is NEED_DATA
    client = HostKeyClient()
    client.receive_data(b"z" * (MAX_PREAMBLE + 1))  # one endless line
    with pytest.raises(RemoteProtocolError, match="no SSH version line"):
        client.next_event()
    client = HostKeyClient()
    client.receive_data(b"SSH-2.0-" + b"v" * 300)  # a version line that does not end
    with pytest.raises(RemoteProtocolError, match="version line is too long"):
        client.next_event()


def _replying(payload: bytes) -> bytes:
    return SERVER_VERSION + b"\r\n" + _packet(server_kexinit()) + _packet(payload)


SMALL_ORDER_KEY = _string(b"ssh-ed25519") + _string(bytes.fromhex("01" + "00" * 31))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"SSH-1.5-old\r\n", "another protocol version"),
        (b"SSH-2.0-" + b"v" * 300 + b"\r\n", "version line is too long"),
        (SERVER_VERSION + b"\r\n" + (MAX_PACKET).to_bytes(4, "big") + b"\x04", "malformed packet"),
        (SERVER_VERSION + b"\r\n" + bytes([0, 0, 0, 12, 2]) + bytes(12), "malformed packet"),
        (SERVER_VERSION + b"\r\n" + _packet(b"\x15"), "message 21, not the server's KEXINIT"),
        (SERVER_VERSION + b"\r\n" + _packet(b"\x1f"), "message 31, not the server's KEXINIT"),
        (SERVER_VERSION + b"\r\n" + _packet(b"\x14" + bytes(20)), "truncated message"),
        (SERVER_VERSION + b"\r\n" + _packet(server_kexinit()[:-4]), "truncated message"),
        (SERVER_VERSION + b"\r\n" + _packet(server_kexinit() + b"x"), "bytes after its end"),
        (
            SERVER_VERSION
            + b"\r\n"
            + _packet(server_kexinit(kex=b"diffie-hellman-group14-sha256")),
            "no curve25519-sha256 key exchange",
        ),
        (
            SERVER_VERSION + b"\r\n" + _packet(server_kexinit(host_keys=b"rsa-sha2-512")),
            "no ssh-ed25519 host key",
        ),
        (
            SERVER_VERSION
            + b"\r\n"
            + _packet(b"\x01" + (2).to_bytes(4, "big") + _string(b"go away") + _string(b"")),
            r"disconnected \(reason 2\): b'go away'",
        ),
        (SERVER_VERSION + b"\r\n" + _packet(b"\x01\x00\x00"), "truncated message"),
        (_replying(b"\x03" + bytes(4)), "message 3, not the server's key exchange reply"),
        (
            _replying(b"\x01" + (3).to_bytes(4, "big") + _string(b"no") + _string(b"")),
            r"disconnected \(reason 3\)",
        ),
        (
            _replying(
                _ecdh_reply(
                    _string(b"ssh-rsa") + _string(bytes(32)),
                    bytes(32),
                    _string(b"ssh-rsa") + _string(bytes(64)),
                )
            ),
            "not signed with an ssh-ed25519 key",
        ),
        (_replying(_ecdh_reply(SMALL_ORDER_KEY, bytes(31))), "wrong size"),
        (_replying(_ecdh_reply(SMALL_ORDER_KEY, bytes(range(32)))), "small order"),
        (
            _replying(_ecdh_reply(SMALL_ORDER_KEY + b"junk", bytes(32))),
            "bytes after its end",
        ),
    ],
)
def test_broken_servers_are_one_remote_protocol_error(data: bytes, error: str) -> None:
    client = HostKeyClient()
    client.receive_data(data)
    with pytest.raises(RemoteProtocolError, match=error):
        client.next_event()


def test_junk_after_the_signature_is_refused() -> None:
    server = Server()
    server.extra = b"junk"
    with pytest.raises(RemoteProtocolError, match="bytes after its end"):
        exchange(server)


def test_ignore_and_debug_messages_are_skipped_but_not_without_end() -> None:
    server = Server()
    client = HostKeyClient()
    sent = client.data_to_send()
    noise = _packet(b"\x02" + _string(b"ignore me")) + _packet(
        b"\x04\x00" + _string(b"") + _string(b"")
    )
    client.receive_data(SERVER_VERSION + b"\r\n" + noise + _packet(server.kexinit) + noise)
    assert client.next_event() is NEED_DATA
    client.receive_data(server.reply(sent + client.data_to_send()))
    assert client.next_event() == HostKey(algorithm=b"ssh-ed25519", blob=server.blob)
    client = HostKeyClient()
    client.receive_data(SERVER_VERSION + b"\r\n")
    ignore = _packet(b"\x02" + _string(bytes(30000)))
    with pytest.raises(RemoteProtocolError, match="bytes without"):
        for _ in range(MAX_RECEIVED // len(ignore) + 2):
            client.receive_data(ignore)
            assert client.next_event() is NEED_DATA


def test_a_close_before_the_reply_is_an_error() -> None:
    client = HostKeyClient()
    client.receive_data(SERVER_VERSION + b"\r\n")
    client.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed the connection before"):
        client.next_event()


def test_a_key_share_of_small_order_is_refused() -> None:
    server = Server()
    client = HostKeyClient()
    client.receive_data(server.greeting())
    assert client.next_event() is NEED_DATA
    client.receive_data(_packet(_ecdh_reply(server.blob, bytes(32))))
    with pytest.raises(RemoteProtocolError, match="not a usable point"):
        client.next_event()


def _mangled(rng: random.Random, data: bytes) -> bytes:
    """``data`` with one to three bytes flipped, cut or added."""
    mangled = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(mangled))
        change = rng.choice(("flip", "cut", "add"))
        if change == "flip":
            mangled[at] ^= 1 << rng.randrange(8)
        elif change == "cut":
            del mangled[at]
        else:
            mangled[at:at] = bytes([rng.randrange(256)])
    return bytes(mangled)


def test_mangled_servers_give_the_key_or_a_remote_protocol_error() -> None:
    """Bytes changed, cut or added anywhere in the server's greeting or reply:
    never another exception, and never another key."""
    rng = random.Random(4253)
    server = Server()
    for _ in range(300):
        client = HostKeyClient()
        client.receive_data(_mangled(rng, server.greeting()))
        client.receive_data(b"")
        with pytest.raises(RemoteProtocolError):
            client.next_event()  # a good greeting alone ends in a close before the reply
    for _ in range(300):
        client = HostKeyClient()
        sent = client.data_to_send()
        client.receive_data(server.greeting())
        assert client.next_event() is NEED_DATA
        client.receive_data(_mangled(rng, server.reply(sent + client.data_to_send())))
        client.receive_data(b"")
        try:
            key = client.next_event()
        except RemoteProtocolError:
            continue
        assert key == HostKey(algorithm=b"ssh-ed25519", blob=server.blob)

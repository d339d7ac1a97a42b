"""The SSH host-key core (netplay.protocols.ssh_hostkey): against real servers
(asyncssh's and OpenSSH's sshd, on loopback), and without sockets against a
server made here from RFC 4253's bytes, fed whole, byte by byte and broken."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import time
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
    VERSION,
    HostKey,
    HostKeyClient,
    Reader,
    mpint,
    packet,
    string,
)
from netplay.services.engines.ssh import host_key_of

SSHD = "/usr/sbin/sshd"


# -- real servers ----------------------------------------------------------------


def test_asyncssh_proves_its_host_key() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    with asyncssh_server(key) as port:
        found = host_key_of("127.0.0.1", port, 5.0)
    assert found == HostKey(algorithm=b"ssh-ed25519", blob=key.public_data)


@pytest.mark.skipif(not os.access(SSHD, os.X_OK), reason="needs OpenSSH's sshd (openssh-server)")
def test_openssh_proves_its_host_key_and_logs_our_disconnect(tmp_path: Path) -> None:
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    config = tmp_path / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile none\nUsePAM no\n"
    )
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation
    sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                found = host_key_of("127.0.0.1", port, 5.0)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "sshd did not listen"
                time.sleep(0.05)
    finally:
        sshd.terminate()
        _, said = sshd.communicate(timeout=10)
    assert base64.b64encode(found.blob).decode() == key.with_suffix(".pub").read_text().split()[1]
    assert "host key received" in said  # our DISCONNECT, in sshd's log


def test_a_silent_server_is_a_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(TimeoutError):
            host_key_of("127.0.0.1", listener.getsockname()[1], 0.2)


# -- a server made here ------------------------------------------------------------

SERVER_VERSION = b"SSH-2.0-TestServer_1.0"


def server_kexinit(kex: bytes = b"curve25519-sha256", host_keys: bytes = b"ssh-ed25519") -> bytes:
    lists = (kex, host_keys, b"aes128-ctr", b"aes128-ctr", b"hmac-sha2-256", b"hmac-sha2-256")
    names = (*lists, b"none", b"none", b"", b"")
    return b"\x14" + bytes(16) + b"".join(string(n) for n in names) + b"\0" + bytes(4)


class Server:
    """The server's side of the exchange, from the bytes the client sent."""

    def __init__(self, host_key: Ed25519PrivateKey | None = None) -> None:
        self.host_key = host_key or Ed25519PrivateKey.generate()
        self.kexinit = server_kexinit()

    @property
    def blob(self) -> bytes:
        return string(b"ssh-ed25519") + string(self.host_key.public_key().public_bytes_raw())

    def greeting(self) -> bytes:
        return SERVER_VERSION + b"\r\n" + packet(self.kexinit)

    def reply(self, client_bytes: bytes, *, tamper: bool = False) -> bytes:
        """The KEX_ECDH_REPLY to everything the client sent (its version line,
        KEXINIT and KEX_ECDH_INIT)."""
        version, _, rest = client_bytes.partition(b"\r\n")
        assert version == VERSION
        payloads = []
        while rest:
            length, padding = int.from_bytes(rest[:4], "big"), rest[4]
            payloads.append(rest[5 : 4 + length - padding])
            rest = rest[4 + length :]
        client_kexinit, init = payloads
        client_share = Reader(init[1:]).string()
        ours = X25519PrivateKey.generate()
        share = ours.public_key().public_bytes_raw()
        secret = ours.exchange(X25519PublicKey.from_public_bytes(client_share))
        exchange_hash = hashlib.sha256(
            string(version)
            + string(SERVER_VERSION)
            + string(client_kexinit)
            + string(self.kexinit)
            + string(self.blob)
            + string(client_share)
            + string(share)
            + mpint(secret)
        ).digest()
        signed = self.host_key.sign(exchange_hash)
        if tamper:
            signed = bytes([signed[0] ^ 1]) + signed[1:]
        signature = string(b"ssh-ed25519") + string(signed)
        return packet(b"\x1f" + string(self.blob) + string(share) + string(signature))


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


def test_the_exchange_whole_and_byte_by_byte_gives_the_signed_key() -> None:
    server = Server()
    for chunk in (None, 1, 7):
        assert exchange(server, chunk=chunk) == HostKey(algorithm=b"ssh-ed25519", blob=server.blob)


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


def test_lines_before_the_version_are_skipped_within_a_limit() -> None:
    client = HostKeyClient()
    client.receive_data(b"hello\r\nthere\r\n" + SERVER_VERSION + b"\r\n")
    assert client.next_event() is NEED_DATA
    client = HostKeyClient()
    with pytest.raises(RemoteProtocolError, match="no SSH version line"):
        client.receive_data(b"x" * 80 + b"\r\n")
        for _ in range(MAX_PREAMBLE // 82 + 1):
            client.receive_data(b"y" * 80 + b"\r\n")
            assert client.next_event() is NEED_DATA
    client = HostKeyClient()
    client.receive_data(b"z" * (MAX_PREAMBLE + 1))  # one endless line
    with pytest.raises(RemoteProtocolError, match="no SSH version line"):
        client.next_event()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"SSH-1.5-old\r\n", "another protocol version"),
        (b"SSH-2.0-" + b"v" * 300 + b"\r\n", "version line is too long"),
        (SERVER_VERSION + b"\r\n" + (MAX_PACKET).to_bytes(4, "big") + b"\x04", "malformed packet"),
        (SERVER_VERSION + b"\r\n" + bytes([0, 0, 0, 12, 2]) + bytes(12), "malformed packet"),
        (SERVER_VERSION + b"\r\n" + packet(b"\x15"), "message 21, not the server's KEXINIT"),
        (SERVER_VERSION + b"\r\n" + packet(b"\x14" + bytes(20)), "truncated message"),
        (
            SERVER_VERSION + b"\r\n" + packet(server_kexinit(kex=b"diffie-hellman-group14-sha256")),
            "no curve25519-sha256 key exchange",
        ),
        (
            SERVER_VERSION + b"\r\n" + packet(server_kexinit(host_keys=b"rsa-sha2-512")),
            "no ssh-ed25519 host key",
        ),
        (
            SERVER_VERSION
            + b"\r\n"
            + packet(b"\x01" + (2).to_bytes(4, "big") + string(b"go away") + string(b"")),
            r"disconnected \(reason 2\): go away",
        ),
    ],
)
def test_broken_servers_are_one_remote_protocol_error(data: bytes, error: str) -> None:
    client = HostKeyClient()
    client.receive_data(data)
    with pytest.raises(RemoteProtocolError, match=error):
        client.next_event()


def test_ignore_and_debug_messages_are_skipped() -> None:
    server = Server()
    client = HostKeyClient()
    sent = client.data_to_send()
    noise = packet(b"\x02" + string(b"ignore me")) + packet(b"\x04\x00" + string(b"") + string(b""))
    client.receive_data(SERVER_VERSION + b"\r\n" + noise + packet(server.kexinit) + noise)
    assert client.next_event() is NEED_DATA
    client.receive_data(server.reply(sent + client.data_to_send()))
    assert client.next_event() == HostKey(algorithm=b"ssh-ed25519", blob=server.blob)


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
    signature = string(b"ssh-ed25519") + string(bytes(64))
    client.receive_data(
        packet(b"\x1f" + string(server.blob) + string(bytes(32)) + string(signature))
    )
    with pytest.raises(RemoteProtocolError, match="not a usable point"):
        client.next_event()

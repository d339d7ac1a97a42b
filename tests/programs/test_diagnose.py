"""diagnose: each failure a client can meet, caused for real and named in one line."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from _programs import program

from netplay import CableFaults, Playground, Spawned
from netplay.programs import diagnose


def test_diagnose_on_loopback() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again: nothing listens there
    assert diagnose.diagnose("127.0.0.1", port).kind == "refused"
    with socket.create_server(("127.0.0.1", 0)) as listening:
        where = listening.getsockname()
        found = diagnose.diagnose(*where)
        assert found == diagnose.Diagnosis("ok", "connected to 127.0.0.1")


RESETTER = """
import socket, struct
listener = socket.create_server(("::", 1067), family=socket.AF_INET6, dualstack_ipv6=True)
print("Listening at", listener.getsockname()[:2], flush=True)
while True:
    conn, _ = listener.accept()
    conn.recv(100)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # with a zero linger: RST, not FIN
"""


def test_diagnose_names_each_failure(
    book: Playground,
    tmp_path: Path,
    spawn: Callable[..., Spawned],
    link_fault: Callable[..., CableFaults],
) -> None:
    def diagnose(*args: str) -> str:
        result = program(book, "diagnose", *args, "--timeout", "2")
        assert result.returncode == (0 if result.stdout.startswith("ok") else 1), result.stderr
        return result.stdout.strip()

    assert diagnose("www.example.com", "443", "--tls").startswith("ok: connected to ")
    assert diagnose("nosuch.example.com", "80").startswith("name not found")
    assert diagnose("www", "81") == "refused: nothing listens on that port"
    mismatch = diagnose("www", "443", "--tls", "--servername", "mail.example.com")
    assert mismatch.startswith("hostname mismatch: Hostname mismatch")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=www.example.com", "-addext", "subjectAltName=DNS:www.example.com"],
        check=True, capture_output=True,
    )  # fmt: skip
    s_server = ["openssl", "s_server", "-quiet", "-accept", "4444", "-cert", str(cert)]
    spawn(book.host("www"), [*s_server, "-key", str(key)], ready=4444)  # once it listens
    resetter = spawn(book.host("www"), [sys.executable, "-c", RESETTER])
    assert resetter.first_line is not None and resetter.first_line.startswith("Listening")
    untrusted = diagnose("www.example.com", "4444", "--tls")
    assert untrusted == "TLS verification failed: self-signed certificate"
    assert diagnose("www", "1067", "--send", "hello") == "reset: the peer aborted the connection"
    link_fault(book, "modemA", "isp", loss="100%")
    assert diagnose("10.130.1.4", "80") == "timed out: no answer"

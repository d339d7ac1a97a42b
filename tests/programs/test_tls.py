"""TLS: tls_app verified by name with the host's own certificate, and tls_inspect's reports
of a server, a client with its certificate, and the local library.
"""

from __future__ import annotations

from collections.abc import Callable

from _programs import argv_of, client, program, server_in

from netplay import Playground, Spawned
from netplay.programs import tls_inspect


def test_tls_inspect_name_matching() -> None:
    names = ["*.example.com", "www", "10.0.0.1", "fd00::1"]
    assert tls_inspect._name_matches("mail.example.com", names)
    assert not tls_inspect._name_matches("a.b.example.com", names)  # one label only
    assert tls_inspect._name_matches("WWW", names)
    assert tls_inspect._name_matches("fd00:0::1", names)
    assert not tls_inspect._name_matches("10.0.0.2", names)


def test_tls_app_verified_by_name_with_the_hosts_own_certificate(book: Playground) -> None:
    with server_in(book, "www", "tls_app") as said:  # NETPLAY_CERT and NETPLAY_KEY by default
        by_name = client(book, "tls_app", "www.example.com")
        by_address = client(book, "tls_app", "10.130.1.4")
        wrong = client(book, "tls_app", "mail.example.com", "-p", "1068")
    assert by_name.stdout == "TLSv1.3: SIMPLE IS BETTER THAN COMPLEX.\n", by_name.stderr
    assert by_address.stdout == by_name.stdout  # the certificate names the address too
    # mail.example.com is another host: nothing listens there on 1068
    assert wrong.returncode == 1 and wrong.stderr == "tls_app: connection refused\n"
    assert sum("TLSv1.3, answered" in line for line in said) == 2


def test_tls_inspect_reports_the_connection(book: Playground) -> None:
    seen = program(book, "tls_inspect", "connect", "www.example.com").stdout.splitlines()
    fields = {line[:12].strip(): line[12:] for line in seen}
    assert fields["protocol"] == "TLSv1.3"
    assert fields["compression"] == "none"
    assert fields["key"] == "EC secp256r1 (256 bits)"
    sites = "httpbin.org, maps.googleapis.com, nominatim.openstreetmap.org, example.org"
    assert fields["names"] == (
        f"www.example.com, www, {sites}, www.example.org, 10.130.1.4, fd6e:7000:130::4"
    )  # its own names, the sites it serves, its addresses
    assert fields["matches"] == "yes (www.example.com)"
    assert fields["chain"] == f"CN=www.example.com,O=netplay <- CN=netplay {book.name} CA,O=netplay"
    assert " UTC to " in fields["valid"]
    old = program(
        book, "tls_inspect", "connect", "www", "--max", "TLSv1_2",
        "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256",
    ).stdout  # fmt: skip
    assert old.startswith("protocol    TLSv1.2\ncipher      ECDHE-ECDSA-AES128-GCM-SHA256 (128")
    refused = program(book, "tls_inspect", "connect", "www", "--servername", "mail.example.com")
    assert refused.returncode == 1 and "Hostname mismatch" in refused.stderr
    anyway = program(
        book, "tls_inspect", "connect", "www", "--servername", "mail.example.com", "--no-verify"
    )
    assert "matches     NO (mail.example.com)" in anyway.stdout
    local = program(book, "tls_inspect", "local").stdout
    assert local.startswith("library     OpenSSL") and "TLSv1_3" in local


def test_tls_inspect_serves_and_sees_brandons_certificate(
    book: Playground, spawn: Callable[..., Spawned]
) -> None:
    serve = argv_of("tls_inspect", "serve", "--require-client-cert", "--cafile", str(book.ca))
    server = spawn(book.host("www"), serve)
    assert server.first_line is not None and server.first_line.startswith("Listening at")
    cert, key = book.pki.client()
    argv = ["openssl", "s_client", "-connect", "www:1069", "-cert", str(cert), "-key", str(key)]
    book.host("h1").run(argv, input="", timeout=30)
    assert server.proc.wait(timeout=30) == 0  # it serves one client, reports and ends
    seen, _ = server.stop()
    assert "client      ('10.25.1.65'," in seen or "client      ('fd6e:7000:25:a::11'," in seen
    assert "subject     CN=brandon,O=netplay" in seen
    assert "names       (none)" in seen  # its only name is an e-mail address

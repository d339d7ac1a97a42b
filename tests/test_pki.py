"""The playground's CA: what it issues, how it is kept, and trust inside the hosts.

Certificates are checked by OpenSSL's own ``verify -x509_strict`` and by
Python handshakes with VERIFY_X509_STRICT; inside the playground a real
TLS server in www is reached from h1 by openssl s_client, curl, Python's
ssl and requests, none of them told where the CA is.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from netplay import Playground, Spawned, pki
from netplay.errors import PkiError
from netplay.pki._store import PER_WORKER
from netplay.topology import dns_zones, load

Spawn = Callable[..., Spawned]

NOW = dt.datetime.now(dt.UTC)

SERVER = r"""
import http.server, socket, ssl, sys
cert, key, ca = sys.argv[1:4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
if ca != "-":
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(ca)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        peer = dict(x[0] for x in (self.connection.getpeercert() or {}).get("subject", ()))
        body = f"hello {peer.get('commonName', 'stranger')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6

server = Server(("::", 0), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"""

CLIENT = r"""
import socket, ssl, sys
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context()
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
try:
    with ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=name) as s:
        print("ok", s.version(), s.getpeercert()["subject"][-1][0][1])
except ssl.SSLCertVerificationError as exc:
    print("rejected", exc.verify_message)
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> pki.Store:
    """A CA and the book's certificates, made without a playground."""
    book = load("book")
    made = pki.Store(tmp_path_factory.mktemp("pki"))
    made.ensure("unit", pki.wanted(book, dns_zones(book)), "example.com", NOW)
    return made


def _openssl_verify(store: pki.Store, cert: Path, purpose: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-x509_strict", "-purpose", purpose, "-CAfile", store.ca, cert],
        capture_output=True,
        text=True,
        check=False,
    )


def test_certificates_name_every_way_to_reach_the_host() -> None:
    book = load("book")
    wanted = pki.wanted(book, dns_zones(book))
    assert wanted["mail"] == pki.Wanted(
        ("mail.example.com", "mail", "smtp.example.com"), ("10.130.1.3", "fd6e:7000:130::3")
    )
    assert "example.com" in wanted["example"].names
    assert wanted["www"].names == (
        "www.example.com",
        "www",
        "httpbin.org",  # the sites www serves, by their real names
        "maps.googleapis.com",
        "nominatim.openstreetmap.org",
        "example.org",
        "www.example.org",
    )
    assert set(wanted) == {h.name for h in book.hosts}
    assert set(wanted["modemA"].addresses) >= {"10.25.1.65", "192.168.1.1"}


def test_openssl_strict_verify_passes_for_every_certificate(store: pki.Store) -> None:
    for host in [h.name for h in load("book").hosts]:
        result = _openssl_verify(store, store.server(host)[0], "sslserver")
        assert result.returncode == 0 and ": OK" in result.stdout, result.stdout + result.stderr
    result = _openssl_verify(store, store.client()[0], "sslclient")
    assert result.returncode == 0, result.stdout + result.stderr
    # and the purposes are not interchangeable
    assert _openssl_verify(store, store.client()[0], "sslserver").returncode != 0
    assert _openssl_verify(store, store.server("www")[0], "sslclient").returncode != 0


def test_ca_extensions_as_strict_verifiers_require(store: pki.Store) -> None:
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", store.ca],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0" in text
    assert "X509v3 Key Usage: critical" in text and "Certificate Sign" in text
    assert "X509v3 Subject Key Identifier" in text
    leaf = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", store.server("www")[0]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "X509v3 Authority Key Identifier" in leaf and "TLS Web Server Authentication" in leaf
    assert "DNS:www.example.com, DNS:www, DNS:httpbin.org, " in leaf
    assert "DNS:www.example.org, IP Address:10.130.1.4" in leaf


def _handshake(store: pki.Store, name: str, client_cert: bool = False) -> ssl.SSLObject:
    """A TLS handshake in memory: www's certificate against a strict client."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*store.server("www"))
    if client_cert:
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        server_ctx.load_verify_locations(store.ca)
    client_ctx = ssl.create_default_context(cafile=store.ca)
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    if client_cert:
        client_ctx.load_cert_chain(*store.client())
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        done = 0
        for side, out, peer_in in ((client, c_out, s_in), (server, s_out, c_in)):
            try:
                side.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
            peer_in.write(out.read())
        if done == 2:
            return server
    raise AssertionError("the handshake did not finish")


def test_python_strict_verification_and_hostname_checks(store: pki.Store) -> None:
    for name in ("www.example.com", "www", "10.130.1.4", "fd6e:7000:130::4"):
        _handshake(store, name)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(store, "mail.example.com")


def test_mutual_tls_with_the_demo_users_certificate(store: pki.Store) -> None:
    server = _handshake(store, "www.example.com", client_cert=True)
    peer = server.getpeercert()
    assert peer is not None
    assert ("commonName", pki.DEMO_USER) in [pair for rdn in peer["subject"] for pair in rdn]


def test_keys_are_private_and_nothing_is_reissued_needlessly(tmp_path: Path) -> None:
    book = load("book")
    wanted = pki.wanted(book, dns_zones(book))
    made = pki.Store(tmp_path / "pki")
    first = made.ensure("unit", wanted, "example.com", NOW)
    assert len(first.issued) == len(book.hosts) + 1 and first.later == {}
    for key in [made.dir / "ca.key", *made.dir.glob("*/*.key")]:
        assert key.stat().st_mode & 0o777 == 0o600, key
    ca = made.ca.read_bytes()
    assert made.ensure("unit", wanted, "example.com", NOW).issued == []
    changed = dict(wanted, www=pki.Wanted(("www.example.com", "www", "shop.example.com")))
    del changed["h4"]
    assert made.ensure("unit", changed, "example.com", NOW).issued == ["servers/www"]
    assert not made.server("h4")[0].exists() and not made.server("h4")[1].exists()
    later = NOW + dt.timedelta(days=380)  # within a month of the leaves' end
    assert len(made.ensure("unit", changed, "example.com", later).issued) == len(changed) + 1
    assert made.ca.read_bytes() == ca
    assert made.purge() and not made.dir.exists()


def test_a_certificate_half_written_by_a_crash_is_issued_again(tmp_path: Path) -> None:
    """A new host's files are written in place, named by the manifest only
    after: what a crash leaves half written is not trusted at the next up."""
    book = load("book")
    wanted = pki.wanted(book, dns_zones(book))
    made = pki.Store(tmp_path / "pki")
    without_www = {host: want for host, want in wanted.items() if host != "www"}
    made.ensure("unit", without_www, "example.com", NOW)
    cert, key = made.server("www")
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB")  # where the crash cut it
    key.write_bytes(b"")
    assert made.ensure("unit", wanted, "example.com", NOW).issued == ["servers/www"]
    assert _openssl_verify(made, cert, "sslserver").returncode == 0
    assert key.stat().st_mode & 0o777 == 0o600
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    assert not list(made.dir.glob("*/.*.tmp"))


def test_a_host_planned_later_gets_its_certificate_when_asked_and_keeps_it(
    tmp_path: Path,
) -> None:
    """A host without services: up plans its certificate, the first entry
    issues it as of the up, the next up keeps it, and one that names
    something else is deleted at up and issued anew at the next entry."""
    book = load("book")
    wanted = pki.wanted(book, dns_zones(book))
    made = pki.Store(tmp_path / "pki")
    plan = made.ensure("unit", wanted, "example.com", NOW, later={"h1", "h2"})
    assert sorted(plan.later) == ["h1", "h2"] and "servers/h1" not in plan.issued
    cert, key = made.server("h1")
    assert not cert.exists() and not key.exists()
    made.issue_later("h1", plan.later["h1"])
    assert _openssl_verify(made, cert, "sslserver").returncode == 0
    assert key.stat().st_mode & 0o777 == 0o600
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", cert], capture_output=True, text=True
    ).stdout
    assert "DNS:h1.example.com, DNS:h1" in text and "IP Address:192.168.1.11" in text
    ends = json.loads((made.dir / "manifest.json").read_text())["certs"]["servers/h1"]
    issued = x509.load_pem_x509_certificate(cert.read_bytes())
    assert issued.not_valid_after_utc.timestamp() == ends["not_after"]  # as of the up
    pem = cert.read_bytes()
    made.issue_later("h1", plan.later["h1"])  # issued already: kept
    assert cert.read_bytes() == pem

    again = made.ensure("unit", wanted, "example.com", NOW, later={"h1", "h2"})
    assert again.issued == [] and again.later == plan.later and cert.read_bytes() == pem
    moved = dict(wanted, h1=pki.Wanted(("h1.example.com", "h1"), ("10.0.1.99",)))
    replanned = made.ensure("unit", moved, "example.com", NOW, later={"h1", "h2"})
    assert replanned.issued == [] and not cert.exists() and not key.exists()
    made.issue_later("h1", replanned.later["h1"])
    assert (
        "IP Address:10.0.1.99"
        in subprocess.run(
            ["openssl", "x509", "-noout", "-text", "-in", cert], capture_output=True, text=True
        ).stdout
    )
    # a host that gets services is issued at up; its certificate kept if it has one
    assert made.ensure("unit", moved, "example.com", NOW, later={"h2"}).issued == []
    assert made.ensure("unit", moved, "example.com", NOW).issued == ["servers/h2"]


def _many(count: int) -> dict[str, pki.Wanted]:
    return {
        f"h{i}": pki.Wanted((f"h{i}.example.com", f"h{i}"), ("10.0.0.1",)) for i in range(count)
    }


workers = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: no workers")


@workers
def test_many_certificates_are_issued_by_workers_as_one_would(tmp_path: Path) -> None:
    wanted = _many(2 * PER_WORKER)
    made = pki.Store(tmp_path / "pki")
    assert len(made.ensure("unit", wanted, "example.com", NOW).issued) == len(wanted) + 1
    for host in ("h0", f"h{len(wanted) - 1}"):
        cert, key = made.server(host)
        assert _openssl_verify(made, cert, "sslserver").returncode == 0
        assert key.stat().st_mode & 0o777 == 0o600
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    assert made.ensure("unit", wanted, "example.com", NOW).issued == []  # all in the manifest


@workers
def test_a_worker_that_cannot_issue_is_one_clear_error(tmp_path: Path) -> None:
    wanted = _many(2 * PER_WORKER)
    wanted["h7"] = pki.Wanted(("h7.example.com",), ("not an address",))
    with pytest.raises(PkiError, match="not an address"):
        pki.Store(tmp_path / "pki").ensure("unit", wanted, "example.com", NOW)


def test_a_data_directory_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(PkiError, match="Not a directory") as caught:
        pki.Store(tmp_path / "file" / "pki").ensure("unit", {}, "example.com", NOW)
    assert caught.value.hint is not None and "NETPLAY_DATA_DIR" in caught.value.hint


# -- inside the playground -----------------------------------------------------


def test_hosts_trust_the_ca_and_the_machine_does_not(book: Playground) -> None:
    assert book.ca == book.pki.ca
    ca = book.ca.read_text()
    run = book.host("h1").run
    listed = run(
        [sys.executable, "-c", "import ssl; print(ssl.create_default_context().get_ca_certs())"],
        check=True,
    ).stdout
    assert f"netplay {book.name} CA" in listed
    bundle = run(["cat", "/etc/ssl/certs/ca-certificates.crt"], check=True).stdout
    assert ca in bundle
    certifi = run([sys.executable, "-c", "import certifi; print(open(certifi.where()).read())"])
    assert ca in certifi.stdout, certifi.stderr
    for target in pki.trust_targets():
        assert ca not in target.read_text(), f"the machine's {target} was changed"


@pytest.fixture
def www_tls(book: Playground, spawn: Spawn) -> int:
    """A TLS server in www with www's certificate (stopped after the test); its port."""
    cert, key = book.pki.server("www")
    server = spawn(book.host("www"), [sys.executable, "-c", SERVER, str(cert), str(key), "-"])
    assert server.first_line is not None
    return int(server.first_line)


def test_openssl_s_client_verifies_www_from_h1(book: Playground, www_tls: int) -> None:
    argv = ["openssl", "s_client", "-connect", f"www:{www_tls}", "-verify_return_error"]
    good = book.host("h1").run([*argv, "-verify_hostname", "www.example.com"], input="")
    assert good.returncode == 0 and "Verification: OK" in good.stdout, good.stdout + good.stderr
    bad = book.host("h1").run([*argv, "-verify_hostname", "mail.example.com"], input="")
    assert bad.returncode != 0 and "hostname mismatch" in bad.stdout + bad.stderr


def test_curl_verifies_www_without_k(book: Playground, www_tls: int) -> None:
    run = book.host("h1").run
    good = run(["curl", "-sS", f"https://www.example.com:{www_tls}/"])
    assert good.returncode == 0 and good.stdout == "hello stranger\n", good.stderr
    v6 = run(["curl", "-sS", "-6", f"https://www:{www_tls}/"])
    assert v6.returncode == 0, v6.stderr
    wrong = run(
        [
            "curl",
            "-sS",
            "--resolve",
            f"mail.example.com:{www_tls}:10.130.1.4",
            f"https://mail.example.com:{www_tls}/",
        ]
    )
    assert wrong.returncode == 60, wrong.stderr  # peer certificate cannot be authenticated


def test_python_strict_and_requests_verify_www_from_h1(book: Playground, www_tls: int) -> None:
    run = book.host("h1").run
    ok = run([sys.executable, "-c", CLIENT, "www", str(www_tls), "www.example.com"], check=True)
    assert ok.stdout.startswith("ok TLSv1.3 www.example.com")
    wrong = run([sys.executable, "-c", CLIENT, "www", str(www_tls), "mail.example.com"])
    assert wrong.stdout.startswith("rejected") and "mismatch" in wrong.stdout, wrong.stderr
    fetch = f"import requests; print(requests.get('https://www:{www_tls}/', timeout=5).text)"
    assert run([sys.executable, "-c", fetch], check=True).stdout == "hello stranger\n\n"


def test_mutual_tls_from_h1_with_brandons_certificate(book: Playground, spawn: Spawn) -> None:
    cert, key = book.pki.server("www")
    argv = [sys.executable, "-c", SERVER, str(cert), str(key), str(book.ca)]
    url = f"https://www:{spawn(book.host('www'), argv).first_line}/"
    client, client_key = book.pki.client()
    run = book.host("h1").run
    good = run(["curl", "-sS", "--cert", str(client), "--key", str(client_key), url])
    assert good.stdout == f"hello {pki.DEMO_USER}\n", good.stderr
    assert run(["curl", "-sS", url]).returncode != 0  # no client certificate


def test_netplay_ca_command(book: Playground) -> None:
    def netplay(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "netplay", *args, "--name", book.name]
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)

    assert netplay("ca").stdout == f"{book.ca}\n"
    assert netplay("ca", "--pem").stdout == book.ca.read_text()
    cert, key = book.pki.server("www")
    assert netplay("ca", "--host", "www").stdout == f"{cert}\n{key}\n"
    assert netplay("ca", "--client").stdout.startswith(str(book.pki.client()[0]))
    unknown = netplay("ca", "--host", "nosuchhost")
    assert unknown.returncode == 7 and unknown.stderr.startswith("netplay: ")


@pytest.mark.needs_playground
def test_a_host_without_services_gets_its_certificate_at_its_first_entry(spawn: Spawn) -> None:
    with Playground.up("line:3", name=f"later{os.getpid()}", purge=True) as pg:
        cert, key = pg.pki.server("h2")
        assert not cert.exists() and not key.exists()  # nothing has entered h2
        show = ["sh", "-c", 'cat "$NETPLAY_CERT"']
        first = [pg.host("h2").popen(show, stdout=subprocess.PIPE, text=True) for _ in range(3)]
        assert {p.communicate()[0] for p in first} == {cert.read_text()}  # one, for all three
        server = spawn(pg.host("h2"), [sys.executable, "-c", SERVER, str(cert), str(key), "-"])
        assert server.first_line is not None
        reach = [sys.executable, "-c", CLIENT, "h2", server.first_line, "h2"]
        assert pg.host("h1").run(reach, check=True).stdout.startswith("ok TLSv1.3 h2")
        h3 = pg.pki.server("h3")
        assert not h3[0].exists()  # a host never entered has none
        asked = subprocess.run(
            [sys.executable, "-m", "netplay", "ca", "--host", "h3", "--name", pg.name],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert asked.stdout == f"{h3[0]}\n{h3[1]}\n" and h3[0].exists(), asked.stderr


@pytest.mark.needs_playground
def test_a_certificate_that_cannot_be_issued_fails_that_entry_only() -> None:
    """Nothing is mounted when it fails: the next entry tries again, and works."""
    with Playground.up("line:2", name=f"unissued{os.getpid()}", purge=True) as pg:
        cert, _key = pg.pki.server("h2")
        cert.mkdir()  # where the certificate goes: it cannot be written
        failed = pg.host("h2").run(["hostname"])
        assert failed.returncode == 126, failed
        assert "cannot keep the playground's certificates" in failed.stderr
        cert.rmdir()
        assert pg.host("h2").run(["hostname"], check=True).stdout == "h2\n"
        assert cert.is_file()


@pytest.mark.needs_playground
def test_the_ca_outlives_down_until_purged() -> None:
    name = f"ca{os.getpid()}"
    with Playground.up("line:2", name=name) as pg:
        store = pg.pki
        ca = store.ca.read_bytes()
    assert store.ca.read_bytes() == ca
    with Playground.up("line:2", name=name) as pg:
        assert pg.pki.ca.read_bytes() == ca
    assert Playground.remove(name, purge=True) == name
    assert not store.dir.exists()
    with Playground.up("line:2", name=name, purge=True) as pg:  # a throwaway playground
        assert pg.pki.ca.exists()
    assert not store.dir.exists()

"""The programs of part 1 so far: first steps, UDP (local, remote, broadcast, path MTU), TCP
(sixteen bytes, deadlock, a stream as a file).

Each has unit tests of its pieces (loopback only) and an end-to-end test
in the book playground: the server in www, the client in h1, through NAT.
"""

from __future__ import annotations

import io
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from netplay import Playground
from netplay.programs import (
    _net,
    geocode,
    tcp_deadlock,
    tcp_file,
    tcp_sixteen,
    text_bytes,
    udp_local,
    udp_remote,
)
from netplay.programs._cli import ProgramError

# -- pieces ----------------------------------------------------------------------


def test_http_response_parsing() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello and more"
    assert geocode.parse_response(raw) == (200, {"content-length": "5", "x-a": "b"}, b"hello")
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    assert geocode.parse_response(chunked)[2] == b"abcde"
    with pytest.raises(ProgramError, match="inside its headers"):
        geocode.parse_response(b"HTTP/1.1 200 OK\r\nContent-Le")
    with pytest.raises(ProgramError, match="not an HTTP response"):
        geocode.parse_response(b"SSH-2.0-OpenSSH\r\n\r\n")
    request = geocode.http_request("www.example.com", "/geocode?q=x")
    assert request.startswith(b"GET /geocode?q=x HTTP/1.1\r\nHost: www.example.com\r\n")
    assert request.endswith(b"\r\n\r\n")


def test_udp_request_and_reply_format() -> None:
    ident = bytes(range(8))
    reply = udp_remote.make_reply(udp_remote.make_request(ident, "four"))
    assert reply is not None
    assert udp_remote.parse_reply(reply) == (ident, "Your data was 4 bytes long")
    for junk in (b"", b"no space", b"zz" * 8 + b" x", b"0123 short id"):
        assert udp_remote.make_reply(junk) is None
    with pytest.raises(ProgramError):
        udp_remote.parse_reply(b"garbage")


def test_udp_client_ignores_replies_that_are_not_its_own() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))

    def answer_twice() -> None:
        data, address = server.recvfrom(65535)
        server.sendto(b"0000000000000000 a stale reply", address)
        server.sendto(b"not even a reply", address)
        reply = udp_remote.make_reply(data)
        assert reply is not None
        server.sendto(reply, address)

    thread = threading.Thread(target=answer_twice)
    thread.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.connect(server.getsockname())
        outcome = udp_remote.request(client, "hello")
    thread.join()
    server.close()
    assert outcome == udp_remote.Outcome("Your data was 5 bytes long", tries=1, ignored=2)


def test_udp_client_with_no_server_is_one_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "netplay.programs.udp_remote", "client", "127.0.0.1", "-p",
         str(port), "--attempts", "3"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("udp_remote: ") and len(result.stderr.splitlines()) == 1


def test_recvall_and_early_close() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"Hi there, ")
        b.sendall(b"server")
        assert tcp_sixteen.recvall(a, 16) == b"Hi there, server"
        b.sendall(b"short")
        b.shutdown(socket.SHUT_WR)
        with pytest.raises(ProgramError, match="after 5 of 16 bytes"):
            tcp_sixteen.recvall(a, 16)
    assert _net.peer_name(("::ffff:10.25.1.65", 5, 0, 0)) == ("10.25.1.65", 5)
    assert _net.peer_name(("fd6e::11", 5, 0, 0)) == ("fd6e::11", 5)


def test_deadlock_pieces_over_a_socketpair() -> None:
    a, b = socket.socketpair()
    server = threading.Thread(target=tcp_deadlock.serve_one, args=(b,))
    server.start()
    with a:
        done = tcp_deadlock.transfer(a, 20_000_000, fix=True)
    server.join()
    b.close()
    assert done == tcp_deadlock.Transfer(20_000_000, 20_000_000, stalled=False)


def test_udp_local_on_loopback() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))

    def answer_once() -> None:
        data, address = server.recvfrom(65535)
        server.sendto(udp_local.reply_to(data), address)

    thread = threading.Thread(target=answer_once)
    thread.start()
    where = server.getsockname()
    text, address = udp_local.ask(where[1], "twelve bytes")
    thread.join()
    server.close()
    assert (text, address) == ("Your data was 12 bytes long", where)


def test_lines_over_a_stream_byte_by_byte() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"one")  # a line may arrive in pieces
        b.sendall(b" two\nthree\n")
        b.shutdown(socket.SHUT_WR)
        with a.makefile("rwb") as server_side:
            assert tcp_file.serve_lines(server_side) == 2
        a.shutdown(socket.SHUT_WR)
        with b.makefile("rb") as answers:
            assert answers.read() == b"2 words, 7 bytes\n1 words, 5 bytes\n"
    too_long = io.BytesIO(b"x" * (tcp_file.MAX_LINE + 10) + b"\n")
    assert tcp_file.serve_lines(too_long) == 0
    assert too_long.getvalue().endswith(b"error: line too long\n")


# -- in the playground ------------------------------------------------------------


@contextmanager
def server_in(pg: Playground, host: str, module: str, *args: str) -> Iterator[list[str]]:
    """Run a program's server in ``host``; yield the lines it prints (filled at the end)."""
    argv = [sys.executable, "-m", f"netplay.programs.{module}", "server", *args]
    proc = pg.host(host).popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("Listening at"), first
    lines = [first]
    try:
        yield lines
    finally:
        proc.kill()
        lines += proc.stdout.read().splitlines()
        proc.wait()
        proc.stdout.close()


def client(
    pg: Playground, module: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", f"netplay.programs.{module}", "client", *args]
    return pg.host("h1").run(argv, timeout=timeout)


@pytest.mark.playground
def test_geocode_three_ways_agree(book: Playground) -> None:
    argv = [sys.executable, "-m", "netplay.programs.geocode", "207 N Defiance St, Archbold, OH"]
    result = book.host("h1").run(argv, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["requests", "http.client", "socket"]
    assert {line.split(None, 1)[1] for line in lines} == {"41.5215, -84.3067"}
    missing = book.host("h1").run([*argv[:3], "Atlantis"], timeout=60)
    assert missing.returncode == 1 and missing.stderr.startswith("geocode: no coordinates")


@pytest.mark.playground
def test_udp_remote_succeeds_under_30_percent_loss(book: Playground) -> None:
    with server_in(book, "www", "udp_remote"):
        book.link("modemA", "isp", loss="30%")
        try:
            result = client(book, "udp_remote", "10.130.1.4", "-n", "20")
        finally:
            book.link("modemA", "isp", clear=True)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.splitlines()[-1]
    tries = int(summary.split()[2])
    assert summary.startswith("20 requests") and tries > 20  # some were retried, all answered


@pytest.mark.playground
def test_tcp_sixteen_server_sees_the_nat_address(book: Playground) -> None:
    with server_in(book, "www", "tcp_sixteen") as said:
        v4 = client(book, "tcp_sixteen", "-4", "www")
        v6 = client(book, "tcp_sixteen", "-6", "www")
    assert v4.stdout.endswith("The server said b'Farewell, client'\n"), v4.stderr
    assert v6.returncode == 0, v6.stderr
    accepted = [line for line in said if line.startswith("We have accepted")]
    assert "('10.25.1.65'," in accepted[0]  # modemA: the connection crossed NAT
    assert "('fd6e:7000:25:a::11'," in accepted[1]  # IPv6 is not translated
    refused = client(book, "tcp_sixteen", "-4", "www", "-p", "1079")
    assert (refused.returncode, refused.stderr) == (1, "tcp_sixteen: connection refused\n")


@pytest.mark.playground
def test_tcp_deadlock_stalls_and_the_fix_completes(book: Playground) -> None:
    with server_in(book, "www", "tcp_deadlock"):
        stuck = client(book, "tcp_deadlock", "www", "100000000")
        fixed = client(book, "tcp_deadlock", "www", "100000000", "--fix")
    assert stuck.returncode == 2 and stuck.stdout.startswith("stalled: sent "), stuck.stderr
    sent = int(stuck.stdout.split()[2])
    assert 0 < sent < 100_000_000 and "received 0" in stuck.stdout
    assert fixed.returncode == 0
    assert fixed.stdout == "sent 100000000 bytes and received all 100000000 back\n"


@pytest.mark.playground
def test_udp_local_inside_a_host(book: Playground) -> None:
    server = [sys.executable, "-m", "netplay.programs.udp_local", "server", "-p", "1063"]
    proc = book.host("h2").popen(server, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().startswith("Listening at ('127.0.0.1', 1063)")
        argv = [sys.executable, "-m", "netplay.programs.udp_local", "client", "-p", "1063"]
        said = book.host("h2").run(argv, timeout=30)
        assert "replied 'Your data was" in said.stdout, said.stderr
        assert proc.stdout.readline().startswith("The client at ('127.0.0.1',")
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.mark.playground
def test_broadcast_is_heard_on_the_lan_only(book: Playground) -> None:
    listeners = {}
    for host in ("h2", "h3", "h4"):
        argv = [sys.executable, "-m", "netplay.programs.udp_broadcast", "server"]
        proc = book.host(host).popen(argv, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().startswith("Listening")
        listeners[host] = proc
    send = [sys.executable, "-m", "netplay.programs.udp_broadcast", "client", "192.168.1.255"]
    assert book.host("h1").run(send, timeout=30).returncode == 0
    heard = {}
    for host, proc in listeners.items():
        assert proc.stdout is not None
        ready = select.select([proc.stdout], [], [], 3 if host != "h4" else 1)[0]
        heard[host] = proc.stdout.readline() if ready else ""
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert "192.168.1.11" in heard["h2"] and "Broadcast message!" in heard["h2"]
    assert "192.168.1.11" in heard["h3"]
    assert heard["h4"] == ""  # another LAN, behind another router


MTU_TOPOLOGY = """
name = "mtu"
[hosts.a]
routes = [{ to = "default", via = "10.7.1.1" }]
[hosts.r1]
forward = true
routes = [{ to = "10.7.3.0/24", via = "10.7.2.2" }]
[hosts.r2]
forward = true
routes = [{ to = "10.7.1.0/24", via = "10.7.2.1" }]
[hosts.b]
routes = [{ to = "default", via = "10.7.3.1" }]
[lans.left]
hosts = { a = ["10.7.1.2/24"], r1 = ["10.7.1.1/24"] }
[lans.right]
hosts = { r2 = ["10.7.3.1/24"], b = ["10.7.3.2/24"] }
[links.middle]
mtu = 1400
hosts = { r1 = ["10.7.2.1/24"], r2 = ["10.7.2.2/24"] }
"""


@pytest.mark.playground
def test_path_mtu_through_a_narrow_middle_link(tmp_path: Path) -> None:
    path = tmp_path / "mtu.toml"
    path.write_text(MTU_TOPOLOGY)
    argv = [sys.executable, "-m", "netplay.programs.udp_mtu"]
    with Playground.up(str(path), name=f"mtu{os.getpid()}") as pg:
        far = pg.host("a").run([*argv, "10.7.3.2"], timeout=60)
        near = pg.host("a").run([*argv, "10.7.1.1"], timeout=60)
    assert far.stdout.startswith("path MTU to 10.7.3.2: 1400 bytes"), far.stderr
    assert "1500 -> 1400" in far.stdout
    assert near.stdout.startswith("path MTU to 10.7.1.1: 1500 bytes"), near.stderr


@pytest.mark.playground
def test_tcp_stream_as_a_file(book: Playground) -> None:
    with server_in(book, "www", "tcp_file") as said:
        result = client(
            book, "tcp_file", "www", "--line", "hello there", "--line", "", "--line", "a b c d"
        )
    assert result.stdout == "2 words, 11 bytes\n0 words, 0 bytes\n4 words, 7 bytes\n"
    assert any("3 lines answered" in line for line in said)


def program(pg: Playground, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return pg.host("h1").run(
        [sys.executable, "-m", f"netplay.programs.{module}", *args], timeout=60
    )


@pytest.mark.playground
def test_connect_by_name_tries_every_address(book: Playground) -> None:
    good = program(book, "connect_by_name", "www", "80")
    assert good.stdout == "IPv6 [fd6e:7000:130::4]:80 connected\n"
    closed = program(book, "connect_by_name", "www", "81")
    assert closed.stdout.splitlines() == [
        "IPv6 [fd6e:7000:130::4]:81 failed: connection refused",
        "IPv4 [10.130.1.4]:81 failed: connection refused",
    ]
    assert closed.returncode == 1 and closed.stderr.startswith("connect_by_name: could not")
    unknown = program(book, "connect_by_name", "nosuchhost.example.com", "80")
    assert unknown.returncode == 1 and "name not found" in unknown.stderr


@pytest.mark.playground
def test_canonical_names_and_confirmed_reverse_names(book: Playground) -> None:
    said = program(book, "names", "smtp.example.com", "10.130.1.4", "192.168.1.1").stdout
    lines = said.splitlines()
    assert lines[:4] == [
        "smtp.example.com: canonical name mail.example.com",
        "  address fd6e:7000:130::3",
        "  address 10.130.1.3",
        "10.130.1.4: www.example.com (confirmed)",
    ]
    # both modems are 192.168.1.1 inside their homes: its PTR records name both, and
    # neither name's forward look-up (their outside addresses) confirms it
    assert lines[4] in {
        f"192.168.1.1: {modem}.example.com (NOT confirmed by its forward look-up)"
        for modem in ("modemA", "modemB")
    }


@pytest.mark.playground
def test_dns_queries_with_dnspython(book: Playground) -> None:
    apex = program(book, "dns_query", "example.com").stdout.splitlines()
    assert apex == [
        "A      10.130.1.1",
        "AAAA   fd6e:7000:130::1",
        "CNAME  (none)",
        "MX     10 mail.example.com.",
        "MX     50 mail.example.com.",
        "NS     backbone.example.com.",
    ]
    cname = program(book, "dns_query", "smtp.example.com", "--type", "CNAME").stdout
    assert cname == "CNAME  mail.example.com.\n"
    assert program(book, "dns_query", "10.130.1.4").stdout == "PTR    www.example.com.\n"
    v6 = program(book, "dns_query", "fd6e:7000:130::4").stdout
    assert v6 == "PTR    www.example.com.\n"
    missing = program(book, "dns_query", "nosuch.example.com")
    assert (missing.returncode, missing.stderr) == (
        1,
        "dns_query: nosuch.example.com: no such name\n",
    )


@pytest.mark.playground
def test_mail_domain_resolution_as_rfc_5321_says(book: Playground) -> None:
    assert program(book, "mail_domain", "example.com").stdout.splitlines() == [
        "MX 10: mail.example.com -> fd6e:7000:130::3, 10.130.1.3",
        "MX 50: mail.example.com -> fd6e:7000:130::3, 10.130.1.3",
    ]
    assert program(book, "mail_domain", "www.example.com").stdout == (
        "MX 10: smtp.example.com -> mail.example.com -> fd6e:7000:130::3, 10.130.1.3\n"
    )
    assert program(book, "mail_domain", "ftp.example.com").stdout == (
        "implicit MX: ftp.example.com -> fd6e:7000:130::2, 10.130.1.2\n"
    )
    missing = program(book, "mail_domain", "nosuch.example.com")
    assert missing.returncode == 1 and missing.stderr.endswith("no such name\n")


@pytest.mark.playground
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


@pytest.mark.playground
def test_diagnose_names_each_failure(book: Playground, tmp_path: Path) -> None:
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
    selfsigned = book.host("www").popen(
        ["openssl", "s_server", "-quiet", "-accept", "4444", "-cert", str(cert), "-key", str(key)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    resetter = book.host("www").popen([sys.executable, "-c", RESETTER], stdout=subprocess.PIPE)
    try:
        assert resetter.stdout is not None and resetter.stdout.readline().startswith(b"Listening")
        for _ in range(50):  # until s_server listens
            if program(book, "diagnose", "www", "4444", "--timeout", "1").returncode == 0:
                break
        untrusted = diagnose("www.example.com", "4444", "--tls")
        assert untrusted == "TLS verification failed: self-signed certificate"
        assert (
            diagnose("www", "1067", "--send", "hello") == "reset: the peer aborted the connection"
        )
    finally:
        for proc in (selfsigned, resetter):
            proc.kill()
            proc.wait()
        assert resetter.stdout is not None
        resetter.stdout.close()
    book.link("modemA", "isp", loss="100%")
    try:
        assert diagnose("10.130.1.4", "80") == "timed out: no answer"
    finally:
        book.link("modemA", "isp", clear=True)


@pytest.mark.playground
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


@pytest.mark.playground
def test_tls_inspect_reports_the_connection(book: Playground) -> None:
    seen = program(book, "tls_inspect", "connect", "www.example.com").stdout.splitlines()
    fields = {line[:12].strip(): line[12:] for line in seen}
    assert fields["protocol"] == "TLSv1.3"
    assert fields["compression"] == "none"
    assert fields["key"] == "EC secp256r1 (256 bits)"
    assert fields["names"] == "www.example.com, www, 10.130.1.4, fd6e:7000:130::4"
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


@pytest.mark.playground
def test_tls_inspect_serves_and_sees_brandons_certificate(book: Playground) -> None:
    ca = str(book.pki.ca)
    serve = [sys.executable, "-m", "netplay.programs.tls_inspect", "serve", "--require-client-cert"]
    proc = book.host("www").popen([*serve, "--cafile", ca], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().startswith("Listening at")
        cert, key = book.pki.client()
        argv = ["openssl", "s_client", "-connect", "www:1069", "-cert", str(cert), "-key", str(key)]
        book.host("h1").run(argv, input="", timeout=30)
        seen = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert "client      ('10.25.1.65'," in seen or "client      ('fd6e:7000:25:a::11'," in seen
    assert "subject     CN=brandon,O=netplay" in seen
    assert "names       (none)" in seen  # its only name is an e-mail address


def test_text_and_bytes_tour() -> None:
    assert text_bytes.decode_pieces([b"Gr\xc3", b"\xbc\xc3", b"\x9fe"]) == "Grüße"
    every_cut = "€uro".encode()
    for i in range(len(every_cut) + 1):
        assert text_bytes.decode_pieces([every_cut[:i], every_cut[i:]]) == "€uro"
    encoded = dict(text_bytes.encodings("Grüße"))
    assert encoded["utf-8"] == b"Gr\xc3\xbc\xc3\x9fe" and encoded["latin-1"] == b"Gr\xfc\xdfe"
    assert encoded["ascii"] is None
    tour = "\n".join(text_bytes.tour())
    assert "24 characters, 46 bytes in UTF-8" in tour and "incremental decoder:   'Grü" in tour
    assert text_bytes.tour("plain")[-1].startswith("all ASCII")


@pytest.mark.playground
def test_text_and_bytes_tour_in_a_host(book: Playground) -> None:
    result = book.host("h1").run([sys.executable, "-m", "netplay.programs.text_bytes"])
    assert result.returncode == 0 and "an incremental decoder:   'Grüße'" in result.stdout


def test_pieces_of_names_errors_and_tls_on_loopback() -> None:
    from netplay.programs import connect_by_name, diagnose, tls_inspect

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again: nothing listens there
    tried = list(connect_by_name.attempts("127.0.0.1", port, timeout=2))
    assert tried == [connect_by_name.Attempt("IPv4", "127.0.0.1", "connection refused")]
    assert diagnose.diagnose("127.0.0.1", port).kind == "refused"
    with socket.create_server(("127.0.0.1", 0)) as listening:
        where = listening.getsockname()
        found = diagnose.diagnose(*where)
        assert found == diagnose.Diagnosis("ok", "connected to 127.0.0.1")
    names = ["*.example.com", "www", "10.0.0.1", "fd00::1"]
    assert tls_inspect._name_matches("mail.example.com", names)
    assert not tls_inspect._name_matches("a.b.example.com", names)  # one label only
    assert tls_inspect._name_matches("WWW", names)
    assert tls_inspect._name_matches("fd00:0::1", names)
    assert not tls_inspect._name_matches("10.0.0.2", names)

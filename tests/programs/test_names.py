"""Names and DNS: connect_by_name, names, dns_query and mail_domain, from h1 in the book."""

from __future__ import annotations

import socket

from _programs import program

from netplay import Playground
from netplay.programs import connect_by_name


def test_connect_by_name_on_loopback() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again: nothing listens there
    tried = list(connect_by_name.attempts("127.0.0.1", port, timeout=2))
    assert tried == [connect_by_name.Attempt("IPv4", "127.0.0.1", "connection refused")]


def test_connect_by_name_tries_every_address(book: Playground) -> None:
    good = program(book, "connect_by_name", "www", "80")
    assert good.stdout == "IPv4 [10.130.1.4]:80 connected\n"  # RFC 6724: IPv4 before ULA
    closed = program(book, "connect_by_name", "www", "81")
    assert closed.stdout.splitlines() == [
        "IPv4 [10.130.1.4]:81 failed: connection refused",
        "IPv6 [fd6e:7000:130::4]:81 failed: connection refused",
    ]
    assert closed.returncode == 1 and closed.stderr.startswith("connect_by_name: could not")
    unknown = program(book, "connect_by_name", "nosuchhost.example.com", "80")
    assert unknown.returncode == 1 and "name not found" in unknown.stderr


def test_canonical_names_and_confirmed_reverse_names(book: Playground) -> None:
    said = program(book, "names", "smtp.example.com", "10.130.1.4", "192.168.1.1").stdout
    lines = said.splitlines()
    assert lines[:4] == [
        "smtp.example.com: canonical name mail.example.com",
        "  address 10.130.1.3",
        "  address fd6e:7000:130::3",
        "10.130.1.4: www.example.com (confirmed)",
    ]
    # both modems are 192.168.1.1 inside their homes: its PTR records name both, and
    # neither name's forward look-up (their outside addresses) confirms it
    assert lines[4] in {
        f"192.168.1.1: {modem}.example.com (NOT confirmed by its forward look-up)"
        for modem in ("modemA", "modemB")
    }


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

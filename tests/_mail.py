"""The mail tests' playgrounds (the book with its mail kinds served by an engine), and
the raw sessions their scripts open."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

import netplay
from _net import run_json
from netplay.services import registered
from netplay.topology import Host, Topology, load


def book_with(engine: str, smtp: str = "aiosmtpd") -> Topology:
    """The book, its mail host's pop3 and imap served by ``engine``, smtp by ``smtp``."""
    book = load("book")
    engines = {"pop3": engine, "imap": engine, "smtp": smtp}

    def swapped(host: Host) -> Host:
        services = tuple(
            dataclasses.replace(s, engine=engines[s.kind]) if s.kind in engines else s
            for s in host.services
        )
        return dataclasses.replace(host, services=services)

    return dataclasses.replace(book, hosts=tuple(map(swapped, book.hosts)))


def unavailable(engine: str, kind: str = "imap") -> str | None:
    """Why the mail ``engine`` of ``kind`` cannot run here (not installed, rootless)."""
    return registered()[kind][engine].unavailable()


def mail_engine(engine: str) -> Any:
    """A parameter of a test run against each engine: the book as is for the builtin
    engine, else the book with ``engine``, skipped (saying why) where it cannot run."""
    if engine == "builtin":
        return pytest.param(engine)
    marks = [pytest.mark.netplay_topology(book_with(engine))]
    why = unavailable(engine)
    if why is not None:
        marks.append(pytest.mark.skip(reason=why))
    return pytest.param(engine, marks=marks)


#: the start of a script that reads brandon's mail over IMAP: ``session()`` logs in
#: over implicit TLS, the certificate verified
IMAP_LOGIN = r"""
import imaplib, json, smtplib, ssl, sys
ctx = ssl.create_default_context()
def session():
    m = imaplib.IMAP4_SSL("mail.example.com", ssl_context=ctx)
    m.login("brandon", "abc123")
    return m
"""

SMTP_SESSION = r"""
import json, socket, ssl, sys
port, tls, script = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
ctx = ssl.create_default_context()
sock = socket.create_connection(("mail.example.com", port), timeout=20)
if tls == "implicit":
    sock = ctx.wrap_socket(sock, server_hostname="mail.example.com")
file = sock.makefile("rb")

def answer():
    lines = []
    while True:
        line = file.readline()
        if not line:
            lines.append("(closed)")
            return lines
        lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
        if line[3:4] != b"-":
            return lines

said = [answer()]
for step in script:
    if step == "STARTTLS-UPGRADE":
        sock = ctx.wrap_socket(sock, server_hostname="mail.example.com")
        file = sock.makefile("rb")
        continue
    sock.sendall(step.encode("utf-8", "surrogateescape") if isinstance(step, str) else bytes(step))
    said.append(answer())
print(json.dumps(said))
"""


def smtp_session(host: netplay.Host, port: int, *steps: str, tls: str = "") -> list[list[str]]:
    """One raw SMTP conversation with mail.example.com from ``host``: each step's bytes
    sent, then its whole answer read (a reply's lines); the greeting first.  A step
    of STARTTLS-UPGRADE starts TLS; ``tls="implicit"`` starts with it (465)."""
    said = run_json(host, SMTP_SESSION, str(port), tls, json.dumps(list(steps)))
    return [[str(line) for line in lines] for lines in said]

"""The mail tests' playgrounds: the book with its pop3 and imap served by an engine."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

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

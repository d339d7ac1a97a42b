"""geocode: an HTTP response parsed by hand, and the same coordinates asked three ways."""

from __future__ import annotations

import sys

import pytest

from netplay import Playground
from netplay.programs import geocode
from netplay.programs._cli import ProgramError


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


def test_geocode_three_ways_agree(book: Playground) -> None:
    argv = [sys.executable, "-m", "netplay.programs.geocode", "207 N Defiance St, Archbold, OH"]
    result = book.host("h1").run(argv, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["requests", "http.client", "socket"]
    assert {line.split(None, 1)[1] for line in lines} == {"41.5215, -84.3067"}
    missing = book.host("h1").run([*argv[:3], "Atlantis"], timeout=60)
    assert missing.returncode == 1 and missing.stderr.startswith("geocode: no coordinates")

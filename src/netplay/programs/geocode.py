"""First steps: ask www's geocoding API for coordinates, three ways.

The same question at three levels of the stack, with the same answer:

- ``requests``: a URL and parameters in, JSON out (HTTPS, certificate verified);
- ``http.client``: the standard library's HTTP, where we build the path,
  read the status and decode the body ourselves (HTTPS too);
- a raw socket: HTTP/1.1 written by hand, bytes on a TCP connection to
  port 80, the response parsed from bytes.

    netplay exec h1 -- python3 -m netplay.programs.geocode "207 N Defiance St, Archbold, OH"
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from netplay.programs._cli import ProgramError, run

HOST = "www.example.com"
PATH = "/geocode"
MAX_RESPONSE = 1 << 20


def _location(reply: dict[str, Any], address: str) -> tuple[float, float]:
    if reply.get("status") != "OK" or not reply.get("results"):
        raise ProgramError(f"no coordinates for {address!r} ({reply.get('status')})")
    location = reply["results"][0]["geometry"]["location"]
    return float(location["lat"]), float(location["lng"])


def with_requests(address: str, host: str = HOST) -> tuple[float, float]:
    import requests

    response = requests.get(f"https://{host}{PATH}", params={"q": address}, timeout=10)
    return _location(response.json(), address)


def with_http_client(address: str, host: str = HOST) -> tuple[float, float]:
    connection = http.client.HTTPSConnection(host, timeout=10)
    try:
        connection.request("GET", f"{PATH}?{urlencode({'q': address})}")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise ProgramError(f"the server answered {response.status} {response.reason}")
    return _location(json.loads(body.decode("utf-8")), address)


def http_request(host: str, path: str) -> bytes:
    """A GET request, byte for byte."""
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "User-Agent: netplay-geocode\r\n"
        "Accept: application/json\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode("ascii")


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of a whole HTTP/1.1 response."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        raise ProgramError("the response ended inside its headers")
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProgramError(f"not an HTTP response: {lines[0][:60]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    elif "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return int(parts[1]), headers, body


def _dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2 :]


def with_socket(address: str, host: str = HOST) -> tuple[float, float]:
    path = f"{PATH}?{urlencode({'q': address})}"
    with socket.create_connection((host, 80), timeout=10) as sock:
        sock.sendall(http_request(host, path))
        raw = b""
        while len(raw) < MAX_RESPONSE:
            more = sock.recv(65536)
            if not more:
                break
            raw += more
    status, _headers, body = parse_response(raw)
    if status != 200:
        raise ProgramError(f"the server answered {status}")
    return _location(json.loads(body.decode("utf-8")), address)


WAYS: dict[str, Callable[[str, str], tuple[float, float]]] = {
    "requests": with_requests,
    "http.client": with_http_client,
    "socket": with_socket,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="geocode",
        description="Coordinates of an address from www's geocoding API, asked three ways.",
    )
    parser.add_argument("address", help='e.g. "207 N Defiance St, Archbold, OH"')
    parser.add_argument(
        "--way", choices=[*WAYS, "all"], default="all", help="which client (default: all three)"
    )
    parser.add_argument("--host", default=HOST, help=f"the API's host (default {HOST})")
    args = parser.parse_args(argv)

    def body() -> None:
        for name, way in WAYS.items():
            if args.way in (name, "all"):
                lat, lng = way(args.address, args.host)
                print(f"{name:<12} {lat:.4f}, {lng:.4f}")

    return run("geocode", body)


if __name__ == "__main__":
    sys.exit(main())

"""The Internet as the book shows it: names resolve IPv4 first (RFC 6724), inetd
hands a program a socket of its own family, and the outside world's sites
answer by their real names, with verified certificates, from inside."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from _net import TCP_ASK, TCP_ECHO_PEER, python
from netplay import Playground, Spawned
from netplay.topology import loads

Spawn = Callable[..., Spawned]
BOOK = resources.files("netplay.topology").joinpath("book.toml").read_text()

# an inetd program written for an IPv4 inetd line: it wraps fd 0 as AF_INET
PEER_AS_IPV4 = (
    "import socket; s = socket.fromfd(0, socket.AF_INET, socket.SOCK_STREAM); "
    "s.sendall(s.getpeername()[0].encode())"
)
WITH_INETD = loads(
    BOOK
    + f"""
[[hosts.ftp.services]]
kind = "inetd"
name = "peer"
ports = [1079]
command = [{json.dumps(sys.executable)}, "-c", {json.dumps(PEER_AS_IPV4)}]

[[hosts.ftp.services]]
kind = "inetd"
name = "peer4"
ports = [1080]
family = "tcp"
command = [{json.dumps(sys.executable)}, "-c", {json.dumps(PEER_AS_IPV4)}]
""",
    source="book with inetd",
)


def test_names_resolve_ipv4_first_as_rfc_6724_orders_them(book: Playground) -> None:
    h1 = book.host("h1")
    listed = h1.run(["getent", "ahosts", "www"]).stdout.split()
    assert listed[0] == "10.130.1.4" and "fd6e:7000:130::4" in listed
    first = "import socket; print(socket.getaddrinfo('www.example.com', 80)[0][4][0])"
    assert h1.run([sys.executable, "-c", first]).stdout == "10.130.1.4\n"


@pytest.mark.parametrize(
    ("client", "seen_as"),
    [
        (["curl", "-s", "http://www/ip"], "10.25.1.65"),  # through modemA's NAT
        (["curl", "-s", "-6", "http://www/ip"], "fd6e:7000:25:a::11"),  # when asked for
        (
            [sys.executable, "-c", "import requests; print(requests.get('http://www/ip').text)"],
            "10.25.1.65",
        ),
    ],
    ids=["curl", "curl -6", "requests"],
)
def test_web_clients_by_name_go_through_the_nat(
    book: Playground, client: list[str], seen_as: str
) -> None:
    said = book.host("h1").run(client, timeout=30)
    assert json.loads(said.stdout)["origin"] == seen_as, said.stderr


@pytest.mark.parametrize("server", ["mail", "www"])
def test_tcp_clients_by_name_reach_servers_over_ipv4(
    book: Playground, spawn: Spawn, server: str
) -> None:
    """As an SMTP or SSH client would: connect by name, the server sees the modem."""
    peer = spawn(book.host(server), python(TCP_ECHO_PEER, "0.0.0.0", 0, 1))
    said = book.host("h1").run(python(TCP_ASK, server, peer.first_line, 5), timeout=30)
    assert said.stdout == "10.25.1.65\n", said.stderr


@pytest.mark.netplay_topology(loads('address_selection = "ipv6-first"\n' + BOOK, source="v6"))
def test_a_topology_may_put_ipv6_first(playground: Playground) -> None:
    listed = playground.host("h1").run(["getent", "ahosts", "www"]).stdout.split()
    assert listed[0] == "fd6e:7000:130::4"
    said = playground.host("h1").run(["curl", "-s", "http://www/ip"], timeout=30)
    assert json.loads(said.stdout)["origin"] == "fd6e:7000:25:a::11"


@pytest.mark.netplay_topology(WITH_INETD)
def test_an_ipv4_inetd_program_reads_the_nat_address(playground: Playground) -> None:
    h1 = playground.host("h1")
    assert h1.run(["nc", "-4", "-w", "5", "ftp", "1079"]).stdout == "10.25.1.65"
    assert h1.run(["nc", "-w", "5", "ftp", "1080"]).stdout == "10.25.1.65"  # by name: IPv4
    refused = h1.run(["nc", "-6", "-w", "5", "ftp", "1080"])  # tcp: no IPv6 listener
    assert refused.returncode != 0 and refused.stdout == ""
    assert playground.service("ftp/peer").listens == ("tcp/1079", "tcp6/1079")
    assert playground.service("ftp/peer4").listens == ("tcp/1080",)


GEOCODE = """
import requests
reply = requests.get(
    "https://maps.googleapis.com/maps/api/geocode/json",
    params={"address": "207 N. Defiance St, Archbold, OH", "sensor": "false"},
)
print(reply.json()["results"][0]["geometry"]["location"])
"""

NOMINATIM = """
import requests
places = requests.get(
    "https://nominatim.openstreetmap.org/search",
    params={"q": "207 N Defiance St, Archbold, OH", "format": "json"},
).json()
print(places[0]["lat"], places[0]["lon"], places[0]["display_name"])
"""


def test_programs_for_the_internet_run_unmodified(book: Playground) -> None:
    h1 = book.host("h1")
    got = h1.run(["curl", "-s", "https://httpbin.org/get"], timeout=30)  # verified, no -k
    assert json.loads(got.stdout)["url"] == "https://httpbin.org/get", got.stderr
    where = h1.run([sys.executable, "-c", GEOCODE], timeout=30)
    assert where.stdout == "{'lat': 41.5215, 'lng': -84.3067}\n", where.stderr
    place = h1.run([sys.executable, "-c", NOMINATIM], timeout=30)
    assert place.stdout.startswith("41.5215000 -84.3067000 207 N Defiance St"), place.stderr
    page = h1.run(["curl", "-s", "https://example.org/products.html"], timeout=30)
    assert "<title>" in page.stdout and "Gizmo" in page.stdout
    moved = h1.run(["curl", "-s", "-o", "/dev/null", "-w", "%{redirect_url}",
                    "http://www.example.org/news/?x=1"])  # fmt: skip
    assert moved.stdout == "http://example.org/news/?x=1"


def test_a_name_that_does_not_exist_is_not_found(book: Playground) -> None:
    h1 = book.host("h1")
    assert h1.run(["getent", "hosts", "python.org"]).returncode == 2  # not found
    probe = (
        "import socket\ntry: socket.getaddrinfo('python.org', 80)\nexcept OSError as e: print(e)"
    )
    assert h1.run([sys.executable, "-c", probe]).stdout == "[Errno -2] Name or service not known\n"
    assert (
        "Could not resolve host: python.org" in h1.run(["curl", "-sS", "http://python.org/"]).stderr
    )


OWN_SITES = """
[sites."api.payments.example"]
app = "wsgiref.simple_server:demo_app"

[sites."docs.example.net"]
static = "{directory}"

[sites."shop.example.com"]
redirect = "https://api.payments.example/checkout"
"""


def test_a_topology_s_own_sites(
    tmp_path: Path, playground_factory: Callable[..., Playground]
) -> None:
    (tmp_path / "secret.txt").write_text("not served from outside the directory\n")
    files = tmp_path / "files"
    files.mkdir()
    (files / "index.html").write_text("<p>the docs</p>\n")
    pg = playground_factory(loads(BOOK + OWN_SITES.format(directory=files), source="sites"))
    h1 = pg.host("h1")
    api = h1.run(["curl", "-s", "https://api.payments.example/pay?amount=3"], timeout=30)
    assert "Hello world!" in api.stdout and "HTTP_HOST = 'api.payments.example'" in api.stdout
    assert h1.run(["curl", "-s", "https://docs.example.net/"]).stdout == "<p>the docs</p>\n"
    escape = h1.run(["curl", "-s", "--path-as-is", "https://docs.example.net/../secret.txt"])
    assert "not served" not in escape.stdout
    moved = h1.run(["curl", "-s", "-o", "/dev/null", "-w", "%{redirect_url}",
                    "http://shop.example.com/cart"])  # fmt: skip
    assert moved.stdout == "https://api.payments.example/checkout/cart"
    listed = h1.run(["getent", "ahosts", "shop.example.com"]).stdout.split()
    assert listed[0] == "10.130.1.4"  # a site in example.com's zone is served from there

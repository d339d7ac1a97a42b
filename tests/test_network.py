"""The book playground behaves like the network it draws (real namespaces)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from _net import TCP_ASK, TCP_ECHO_PEER, UDP_COUNT, UDP_SEND, python, run
from netplay import Playground, Spawned, fabric
from netplay.topology import loads

Spawn = Callable[..., Spawned]


def test_h1_reaches_www_by_icmp(book: Playground) -> None:
    result = book.host("h1").run(["ping", "-c", "1", "-W", "2", "www"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 received" in result.stdout


def test_traceroute_from_h1_lists_the_routers_in_order(book: Playground) -> None:
    result = book.host("h1").run(["traceroute", "-n", "-q", "1", "-w", "2", "www.example.com"])
    assert result.returncode == 0, result.stderr
    hops = [line.split()[1] for line in result.stdout.splitlines()[1:]]
    assert hops == ["192.168.1.1", "10.25.1.1", "10.1.1.1", "10.130.1.1", "10.130.1.4"]


@pytest.mark.parametrize(
    ("client", "seen_as"), [("h1", "10.25.1.65"), ("h2", "10.25.1.65"), ("h4", "10.25.1.66")]
)
def test_www_sees_home_hosts_as_their_modem(
    book: Playground, spawn: Spawn, client: str, seen_as: str
) -> None:
    server = spawn(book.host("www"), python(TCP_ECHO_PEER, "0.0.0.0", 0, 1))
    result = run(book.host(client), TCP_ASK, "www", server.first_line, 5)
    assert result.stdout.strip() == seen_as, result.stderr


def test_www_cannot_connect_to_h1(book: Playground, spawn: Spawn) -> None:
    server = spawn(book.host("h1"), python(TCP_ECHO_PEER, "0.0.0.0", 0, 1))
    result = run(book.host("www"), TCP_ASK, "192.168.1.11", server.first_line, 2)
    assert result.returncode != 0
    assert "Error" in result.stderr  # unreachable or timed out, never connected
    assert "192.168.1.11" not in result.stdout


def test_h1_cannot_reach_h4_in_the_other_home(book: Playground) -> None:
    result = book.host("h1").run(["ping", "-c", "1", "-W", "1", "192.168.1.14"])
    assert result.returncode != 0


def test_broadcast_reaches_the_home_lan_only(book: Playground, spawn: Spawn) -> None:
    receivers = {
        name: spawn(book.host(name), python(UDP_COUNT, "0.0.0.0", 5005, 1.5))
        for name in ("h2", "h3", "h4")
    }
    run(book.host("h1"), UDP_SEND, "192.168.1.255", 5005, 5)
    counts = {name: int(receiver.readline(10)) for name, receiver in receivers.items()}
    assert counts["h2"] == 5 and counts["h3"] == 5
    assert counts["h4"] == 0


def test_ipv6_h1_reaches_www(book: Playground, spawn: Spawn) -> None:
    server = spawn(book.host("www"), python(TCP_ECHO_PEER, "::", 0, 1))
    result = run(book.host("h1"), TCP_ASK, "fd6e:7000:130::4", server.first_line, 5)
    # no NAT for IPv6: www sees h1's own routed address
    assert result.stdout.strip() == "fd6e:7000:25:a::11", result.stderr


def test_ipv6_www_cannot_open_a_connection_to_h1(book: Playground, spawn: Spawn) -> None:
    server = spawn(book.host("h1"), python(TCP_ECHO_PEER, "::", 0, 1))
    result = run(book.host("www"), TCP_ASK, "fd6e:7000:25:a::11", server.first_line, 2)
    assert result.returncode != 0
    assert "timed out" in result.stderr  # the modem's firewall drops it silently
    # and the route itself exists: ICMPv6 from inside gets answers
    assert book.host("h1").run(["ping", "-6", "-c", "1", "-W", "2", "www"]).returncode == 0


def test_hostname_and_etc_files_are_the_hosts_own(book: Playground) -> None:
    assert book.host("h1").run(["hostname"]).stdout.strip() == "h1"
    assert book.host("www").run(["hostname"]).stdout.strip() == "www"
    hosts = book.host("h1").run(["cat", "/etc/hosts"]).stdout
    assert "192.168.1.11\th1.example.com h1" in hosts and "www" not in hosts  # names: DNS
    resolv = book.host("h1").run(["cat", "/etc/resolv.conf"]).stdout
    assert "nameserver 10.1.1.1\nnameserver fd6e:7000:1::1\nsearch example.com" in resolv
    assert Path("/etc/hosts").read_text() != hosts


def test_the_machines_etc_is_untouched(playground_factory: Callable[..., Playground]) -> None:
    before = {p: Path(p).read_bytes() for p in ("/etc/hosts", "/etc/resolv.conf")}
    pg = playground_factory("book")
    assert pg.host("h1").run(["hostname"]).stdout.strip() == "h1"
    pg.down()
    after = {p: Path(p).read_bytes() for p in ("/etc/hosts", "/etc/resolv.conf")}
    assert before == after


def test_every_host_has_the_sysctls_of_a_playground_and_routers_forward(
    book: Playground,
) -> None:
    every_host = {
        "net.ipv6.conf.default.accept_dad": "0",
        "net.ipv6.conf.all.accept_ra": "0",
        "net.ipv6.conf.default.keep_addr_on_down": "1",
        "net.ipv4.icmp_ratelimit": "0",
        "net.ipv4.ping_group_range": "0\t2147483647",
    }
    if not fabric.many_users():  # one user mapped: the kernel refuses a range of other groups
        del every_host["net.ipv4.ping_group_range"]
    forwarding = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"]
    keys = [*every_host, *forwarding]
    for name, router in (("h1", False), ("isp", True), ("www", False)):
        said = book.host(name).run(["sysctl", "-n", *keys], check=True).stdout.splitlines()
        expected = [*every_host.values(), *["1" if router else "0"] * len(forwarding)]
        assert said == expected, name


def test_a_failing_command_reports_its_status(book: Playground) -> None:
    result = book.host("h1").run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


TTL_PAIR = """
[hosts.far]
ttl = 7
[hosts.near]
[lans.lan.hosts]
far = ["10.9.0.1/24", "fd6e:7000:99::1/64"]
near = ["10.9.0.2/24", "fd6e:7000:99::2/64"]
"""


def test_a_host_s_ttl_is_what_it_sends_with(playground_factory: Callable[..., Playground]) -> None:
    pg = playground_factory(loads(TTL_PAIR), services=False)
    near = pg.host("near")
    for target in ("10.9.0.1", "fd6e:7000:99::1"):  # far's replies: IPv4 TTL, IPv6 hop limit
        reply = near.run(["ping", "-c", "1", "-W", "2", target])
        assert "ttl=7 " in reply.stdout, reply.stdout
    assert "ttl=64 " in pg.host("far").run(["ping", "-c", "1", "-W", "2", "10.9.0.2"]).stdout


def test_the_ends_of_a_long_line_reach_each_other(
    playground_factory: Callable[..., Playground],
) -> None:
    pg = playground_factory("line:100", services=False)  # 98 routers: past the kernel's 64
    for target in ("10.64.0.100", "fd6e:7000:ffff::64"):
        reply = pg.host("h1").run(["ping", "-c", "1", "-W", "5", target])
        assert reply.returncode == 0, reply.stdout + reply.stderr

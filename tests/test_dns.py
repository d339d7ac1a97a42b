"""The DNS server: answer() without sockets, then the real server from h1 with dig and dnspython."""

from __future__ import annotations

import asyncio
import random
import struct
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netplay import Playground, TopologyError
from netplay.protocols.dns import CACHE_BUDGET, CACHE_MAX_BYTES, Answers, answer
from netplay.services.engines import dns as dns_engine
from netplay.topology import Topology, dns_zones, load, loads

BOOK = dns_zones(load("book"))


def ask(name: str, rdtype: str, **kwargs: object) -> dns.message.Message:
    wire = answer(dns.message.make_query(name, rdtype, **kwargs).to_wire(), BOOK)  # type: ignore[arg-type]
    assert wire is not None
    return dns.message.from_wire(wire)


def texts(response: dns.message.Message) -> list[str]:
    return [rr.to_text() for rrset in response.answer for rr in rrset.to_rdataset()]


# -- answer(), no sockets -------------------------------------------------------


def test_addresses_case_insensitive_and_authoritative() -> None:
    response = ask("WwW.ExAmPlE.cOm", "A")
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    assert texts(response) == ["10.130.1.4"]
    assert texts(ask("www.example.com", "AAAA")) == ["fd6e:7000:130::4"]
    assert texts(ask("example.com", "A")) == ["10.130.1.1"]  # the gateway


def test_mx_cname_and_additional_addresses() -> None:
    mx = ask("example.com", "MX")
    assert sorted(texts(mx)) == ["10 mail.example.com.", "50 mail.example.com."]
    assert {rr.to_text() for rrset in mx.additional for rr in rrset} >= {"10.130.1.3"}
    assert texts(ask("www.example.com", "MX")) == ["10 smtp.example.com."]
    assert texts(ask("smtp.example.com", "A")) == ["mail.example.com.", "10.130.1.3"]


def test_nodata_nxdomain_refused() -> None:
    nodata = ask("www.example.com", "TXT")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    nx = ask("nosuch.example.com", "A")
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].rdtype == dns.rdatatype.SOA
    refused = answer(dns.message.make_query("www.example.com", "A").to_wire(), {})
    assert refused is not None
    assert dns.message.from_wire(refused).rcode() == dns.rcode.REFUSED


def test_the_playground_is_the_root_of_its_name_space() -> None:
    """Names outside its zones do not exist (NXDOMAIN, the root's SOA), but
    `com` does (example.com is under it), and so do the topology's sites."""
    outside = ask("python.org", "A")
    assert outside.rcode() == dns.rcode.NXDOMAIN and outside.flags & dns.flags.AA
    assert not outside.flags & dns.flags.RA
    (soa,) = outside.authority
    assert soa.name == dns.name.root and soa.rdtype == dns.rdatatype.SOA
    com = ask("com", "A")
    assert com.rcode() == dns.rcode.NOERROR and not com.answer
    assert texts(ask("httpbin.org", "A")) == ["10.130.1.4"]
    assert texts(ask("maps.googleapis.com", "AAAA")) == ["fd6e:7000:130::4"]
    assert ask("org", "A").rcode() == dns.rcode.NOERROR  # it has httpbin.org under it


def test_ptr_for_every_address_of_every_host() -> None:
    topology = load("book")
    for net in topology.networks:
        for att in net.attachments:
            for iface in att.addresses:
                name = dns.reversename.from_address(str(iface.ip))
                assert f"{att.host}.example.com." in texts(ask(str(name), "PTR"))


def test_any_is_answered_minimally() -> None:
    assert len(ask("example.com", "ANY").answer) == 1


def test_truncation_over_udp_and_whole_over_tcp() -> None:
    zones = dns_zones(many_records_topology())
    query = dns.message.make_query("many.big.test", "A")
    udp = dns.message.from_wire(answer(query.to_wire(), zones) or b"")
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = dns.message.from_wire(answer(query.to_wire(), zones, tcp=True) or b"")
    assert len(tcp.answer[0]) == 60
    edns = dns.message.make_query("many.big.test", "A", use_edns=0, payload=4096)
    big = dns.message.from_wire(answer(edns.to_wire(), zones) or b"")
    assert not big.flags & dns.flags.TC and len(big.answer[0]) == 60


def test_malformed_input() -> None:
    assert answer(b"", BOOK) is None and answer(b"\x12", BOOK) is None
    formerr = answer(b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff", BOOK)
    assert formerr is not None and formerr[:2] == b"\xab\xcd"
    assert dns.message.from_wire(formerr).rcode() == dns.rcode.FORMERR
    response = dns.message.make_response(dns.message.make_query("www.example.com", "A"))
    assert answer(response.to_wire(), BOOK) is None  # never answer an answer


def _mutations(seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    valid = [
        dns.message.make_query(n, t, use_edns=rng.choice([None, 0])).to_wire()
        for n in ("www.example.com", "example.com", "4.1.130.10.in-addr.arpa", "python.org")
        for t in ("A", "AAAA", "MX", "ANY", "PTR", "TXT")
    ]
    for _ in range(count):
        kind = rng.random()
        if kind < 0.2:
            yield rng.randbytes(rng.randrange(0, 600))
            continue
        data = bytearray(rng.choice(valid))
        for _ in range(rng.randrange(1, 6)):
            op = rng.random()
            position = rng.randrange(len(data) + 1)
            if op < 0.5 and data:
                data[min(position, len(data) - 1)] = rng.randrange(256)
            elif op < 0.7:
                data[position:position] = rng.randbytes(rng.randrange(1, 20))
            elif op < 0.9:
                del data[position : position + rng.randrange(1, 8)]
            else:
                data[4:12] = struct.pack("!HHHH", *(rng.randrange(3) for _ in range(4)))
        yield bytes(data)


def test_fuzz_100000_random_and_mutated_packets() -> None:
    """Only bytes or None come out: no exception escapes answer()."""
    replies = 0
    for packet in _mutations(seed=20261121, count=100_000):
        result = answer(packet, BOOK)
        assert result is None or isinstance(result, bytes)
        replies += result is not None
    assert replies > 50_000  # most mutations still get an answer (often FORMERR)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=512))
def test_hypothesis_any_bytes(packet: bytes) -> None:
    result = answer(packet, BOOK)
    assert result is None or dns.message.from_wire(result).flags & dns.flags.QR


def test_remembered_answers_equal_fresh_ones_whatever_the_id() -> None:
    """Answers (what the server uses) changes only the ID of a remembered response."""
    answers = Answers(BOOK)
    for i, packet in enumerate(_mutations(seed=7, count=3000)):
        for ident in (b"\x00\x01", b"\xfe\xdc"):
            wire = ident + packet[2:] if len(packet) >= 2 else packet
            tcp = i % 2 == 0
            remembered, fresh = answers(wire, tcp=tcp), answer(wire, BOOK, tcp=tcp)
            if remembered is None or fresh is None:
                assert remembered is fresh is None
            else:  # equal as messages: dnspython shuffles the records of an RRset
                assert remembered[:2] == ident
                assert dns.message.from_wire(remembered) == dns.message.from_wire(fresh)


def _kept_bytes(answers: Answers) -> int:
    return sum(len(query) + len(reply) for (query, _tcp), reply in answers._kept.items())


def test_remembered_answers_are_bounded() -> None:
    answers = Answers(BOOK)
    for i in range(20_000):  # distinct names: far more than the budget holds
        answers(dns.message.make_query(f"h{i}.example.com", "A").to_wire())
    assert 0 < _kept_bytes(answers) <= CACHE_BUDGET
    assert _kept_bytes(answers) == answers._size
    huge = dns.message.make_query("www.example.com", "A").to_wire() + bytes(CACHE_MAX_BYTES)
    answers(huge)
    assert all(len(key[0]) < CACHE_MAX_BYTES for key in answers._kept)


def test_malformed_queries_are_not_remembered() -> None:
    """A flood of distinct malformed queries (FORMERR) costs no memory."""
    answers = Answers(BOOK)
    rng = random.Random(7)
    for _ in range(5_000):
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(12, 600)))
        answers(junk[:2] + bytes([junk[2] & 0x7F]) + junk[3:])  # queries (QR clear), broken
    kept = {dns.message.from_wire(b"\0\0" + reply).rcode() for reply in answers._kept.values()}
    assert kept <= {dns.rcode.NOERROR, dns.rcode.NXDOMAIN}


def test_bad_record_names_its_field() -> None:
    text = TOPOLOGY.replace('"many A 10.0.0.1"', '"many A not-an-address"')
    with pytest.raises(TopologyError) as caught:
        dns_zones(loads(text, source="bad.toml"))
    assert caught.value.field == "dns.records[0]"


TOPOLOGY = """
name = "big"
domain = "big.test"
[dns]
records = ["many A 10.0.0.1"]
[hosts.ns]
services = [{ kind = "dns", ports = [53] }]
[hosts.client]
[lans.lan]
hosts = { ns = ["10.0.0.53/24"], client = ["10.0.0.2/24"] }
"""


def many_records_topology() -> Topology:
    records = ", ".join(f'"many A 10.0.1.{i}"' for i in range(1, 61))
    return loads(TOPOLOGY.replace('"many A 10.0.0.1"', records), source="big.toml")


# -- the real server, from h1 through NAT ---------------------------------------------


def dig(book: Playground, *args: str) -> str:
    result = book.host("h1").run(["dig", "+time=2", "+tries=1", *args], check=True)
    return result.stdout


def test_dig_through_nat(book: Playground) -> None:
    assert dig(book, "+short", "www.example.com").split() == ["10.130.1.4"]
    assert dig(book, "+short", "AAAA", "www").split() == []  # no search list without +search
    assert dig(book, "+short", "+search", "AAAA", "www").split() == ["fd6e:7000:130::4"]
    assert sorted(dig(book, "+short", "MX", "example.com").splitlines()) == [
        "10 mail.example.com.",
        "50 mail.example.com.",
    ]
    assert dig(book, "+short", "smtp.example.com").split() == ["mail.example.com.", "10.130.1.3"]
    assert dig(book, "+short", "-x", "10.130.1.4").split() == ["www.example.com."]
    assert dig(book, "+short", "-x", "fd6e:7000:25:a::11").split() == ["h1.example.com."]
    full = dig(book, "www.example.com", "TXT")
    assert "status: NOERROR" in full and "ANSWER: 0" in full and "flags: qr aa" in full
    assert "SOA" in full.split("AUTHORITY SECTION:")[1]
    assert "status: NXDOMAIN" in dig(book, "nosuch.example.com")
    outside = dig(book, "python.org")
    assert "status: NXDOMAIN" in outside and "flags: qr aa rd;" in outside
    assert ".\t\t\t300\tIN\tSOA\tbackbone.example.com." in outside
    assert "EDNS: version: 0, flags:; udp: " in dig(book, "+edns=0", "www.example.com")
    assert dig(book, "+tcp", "+short", "mail.example.com").split() == ["10.130.1.3"]


def test_dnspython_and_glibc_in_h1(book: Playground) -> None:
    script = """
import socket, dns.resolver
r = dns.resolver.Resolver()
print(r.resolve("www.example.com", "A")[0])
print(sorted(str(x) for x in r.resolve("example.com", "MX")))
print(r.resolve_address("10.130.1.3")[0])
print(socket.getaddrinfo("www", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
print(socket.gethostbyaddr("10.130.1.4")[0])
"""
    out = book.host("h1").run([sys.executable, "-c", script], check=True).stdout.splitlines()
    assert out == [
        "10.130.1.4",
        "['10 mail.example.com.', '50 mail.example.com.']",
        "mail.example.com.",
        "10.130.1.4",
        "www.example.com",
    ]


def _tcp_queries(book: Playground, names: list[str]) -> list[str]:
    """Several queries on one TCP connection, from h1."""
    script = """
import socket, struct, sys, dns.message
s = socket.create_connection(("10.1.1.1", 53), timeout=5)
for name in sys.argv[1:]:
    wire = dns.message.make_query(name, "A").to_wire()
    s.sendall(struct.pack("!H", len(wire)) + wire)
for name in sys.argv[1:]:
    size = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
    reply = dns.message.from_wire(s.recv(size, socket.MSG_WAITALL))
    print(reply.answer[-1][0])
"""
    run = book.host("h1").run([sys.executable, "-c", script, *names], check=True)
    return run.stdout.split()


def test_several_queries_on_one_tcp_connection(book: Playground) -> None:
    names = ["www.example.com", "mail.example.com", "ftp.example.com"]
    assert _tcp_queries(book, names) == ["10.130.1.4", "10.130.1.3", "10.130.1.2"]


def test_hostile_burst_then_still_answers(book: Playground) -> None:
    packets = list(_mutations(seed=7, count=3000))
    sender = """
import socket, sys
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
data = sys.stdin.buffer.read()
i = 0
while i < len(data):
    n = int.from_bytes(data[i:i+2], "big"); s4.sendto(data[i+2:i+2+n], ("10.1.1.1", 53)); i += 2 + n
for size in (0, 1, 70000):
    t = socket.create_connection(("10.1.1.1", 53), timeout=5)
    t.sendall(size.to_bytes(3, "big")[1:] + b"x" * min(size, 100)); t.close()
"""
    stream = b"".join(len(p).to_bytes(2, "big") + p for p in packets)
    proc = book.host("h1").popen([sys.executable, "-c", sender], stdin=subprocess.PIPE)
    proc.communicate(stream, timeout=60)
    assert proc.returncode == 0
    assert dig(book, "+short", "www.example.com").split() == ["10.130.1.4"]
    assert _tcp_queries(book, ["mail.example.com"]) == ["10.130.1.3"]


async def _open(port: int, client: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(client, 0))


async def _ask(port: int, client: str) -> list[str]:
    reader, writer = await _open(port, client)
    query = dns.message.make_query("www.example.com", "A").to_wire()
    writer.write(len(query).to_bytes(2, "big") + query)
    size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 5), "big")
    reply = dns.message.from_wire(await reader.readexactly(size))
    writer.close()
    await writer.wait_closed()
    return [rr.to_text() for rrset in reply.answer for rr in rrset]


async def _closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server has closed this idle connection (it sends nothing else)."""
    try:
        return await asyncio.wait_for(reader.read(1), 0.5) == b""
    except TimeoutError:
        return False


def _idle_clients_scenario(
    monkeypatch: pytest.MonkeyPatch, limit: int, clients: list[str]
) -> tuple[list[str], int]:
    monkeypatch.setattr(dns_engine, "MAX_CONNECTIONS", limit)

    async def scenario() -> tuple[list[str], int]:
        tcp = dns_engine._Tcp(Answers(BOOK))
        server = await asyncio.start_server(tcp.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        idle = [await _open(port, client) for client in clients]
        await asyncio.sleep(0.1)  # the server takes them all before the question
        answered = await _ask(port, "127.0.0.9")
        closed = sum(await asyncio.gather(*(_closed(reader) for reader, _writer in idle)))
        for _reader, writer in idle:  # the rest end too, and the server with them
            writer.close()
            await writer.wait_closed()
        while len(tcp.connections):
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
        return answered, closed

    return asyncio.run(scenario())


def test_a_client_s_idle_connections_make_room_for_its_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """40 idle connections from one client: the idlest beyond 16 are closed, one by
    one, as new ones come, and its next question is answered."""
    answered, closed = _idle_clients_scenario(monkeypatch, 256, ["127.0.0.2"] * 40)
    assert answered == ["10.130.1.4"]
    assert closed == 40 - dns_engine.MAX_PER_CLIENT


def test_when_all_connections_are_taken_the_idlest_makes_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answered, closed = _idle_clients_scenario(
        monkeypatch, 8, [f"127.0.0.{10 + i}" for i in range(8)]
    )
    assert answered == ["10.130.1.4"] and closed == 1


@pytest.mark.netplay_topology(many_records_topology())
def test_truncated_over_udp_then_retried_over_tcp(playground: Playground) -> None:
    client = playground.host("client")
    ignored = client.run(["dig", "+ignore", "+noedns", "many.big.test"], check=True).stdout
    assert " tc" in ignored.split("flags:")[1].split(";")[0]
    retried = client.run(["dig", "+noedns", "+short", "many.big.test"], check=True).stdout
    assert len(retried.split()) == 60
    assert "nameserver 10.0.0.53" in client.run(["cat", "/etc/resolv.conf"]).stdout


def test_no_dns_without_a_dns_host() -> None:
    assert dns_zones(load("line:3")) == {}
    assert "nameserver" not in load("line:3").etc_resolv_conf()


def test_a_cname_cannot_hide_a_host_s_addresses() -> None:
    book = resources.files("netplay.topology").joinpath("book.toml").read_text()
    hidden = loads(book.replace('"smtp CNAME mail",', '"smtp CNAME mail",\n    "www CNAME mail",'))
    with pytest.raises(TopologyError) as caught:
        dns_zones(hidden)
    assert caught.value.field == "dns.records[6]"
    assert "www cannot have a CNAME and other records (it has A, AAAA, MX)" in str(caught.value)

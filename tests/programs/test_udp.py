"""UDP: udp_local and udp_remote (its request format, stale replies, retries under loss), and
udp_broadcast heard on one LAN only.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest
from _programs import argv_of, client, server_in

from netplay import CableFaults, CommandFailedError, Playground, Spawned
from netplay.programs import udp_local, udp_remote
from netplay.programs._cli import ProgramError

Spawn = Callable[..., Spawned]


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


def test_udp_remote_succeeds_under_30_percent_loss(
    book: Playground, link_fault: Callable[..., CableFaults]
) -> None:
    with server_in(book, "www", "udp_remote"):
        link_fault(book, "modemA", "isp", loss="30%")
        result = client(book, "udp_remote", "10.130.1.4", "-n", "20")
    assert result.returncode == 0, result.stderr
    summary = result.stdout.splitlines()[-1]
    tries = int(summary.split()[2])
    assert summary.startswith("20 requests") and tries > 20  # some were retried, all answered


def test_udp_local_inside_a_host(book: Playground, spawn: Spawn) -> None:
    server = spawn(book.host("h2"), argv_of("udp_local", "server", "-p", "1063"))
    assert server.first_line is not None
    assert server.first_line.startswith("Listening at ('127.0.0.1', 1063)")
    said = book.host("h2").run(argv_of("udp_local", "client", "-p", "1063"), timeout=30)
    assert "replied 'Your data was" in said.stdout, said.stderr
    assert server.readline().startswith("The client at ('127.0.0.1',")


def test_broadcast_is_heard_on_the_lan_only(book: Playground, spawn: Spawn) -> None:
    listeners = {}
    for host in ("h2", "h3", "h4"):
        listeners[host] = spawn(book.host(host), argv_of("udp_broadcast", "server"))
        assert (listeners[host].first_line or "").startswith("Listening")
    send = argv_of("udp_broadcast", "client", "192.168.1.255")
    assert book.host("h1").run(send, timeout=30).returncode == 0
    heard = {host: listeners[host].readline(3) for host in ("h2", "h3")}
    assert "192.168.1.11" in heard["h2"] and "Broadcast message!" in heard["h2"]
    assert "192.168.1.11" in heard["h3"]
    with pytest.raises(CommandFailedError, match="printed no line within 1 s"):
        listeners["h4"].readline(1)  # another LAN, behind another router: nothing heard

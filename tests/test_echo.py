"""The echo kind (the example of how a kind is added): what RFC 862 says, from a
real client, and the limits that keep hostile clients from hurting others.

The engine conformance suite (test_engines.py) checks its life as a
service; this module checks its protocol and its limits.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from netplay import Playground, Spawned
from netplay.topology import loads

pytestmark = [
    pytest.mark.needs_playground,
    pytest.mark.netplay_topology(
        loads(
            """
name = "echo"

[hosts.server]
services = [
    { kind = "echo", idle_timeout = 1 },
    { kind = "echo", name = "few", ports = [8], max_connections = 3 },
]

[hosts.client]

[lans.lan.hosts]
server = ["10.9.0.1/24", "fd6e:7000:99::1/64"]
client = ["10.9.0.2/24", "fd6e:7000:99::2/64"]
"""
        )
    ),
]

CLIENT = r"""
import socket, sys, time
actions = sys.argv[2:]
host, _, port = sys.argv[1].rpartition(":")
sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
for action in actions:
    verb, _, arg = action.partition("=")
    if verb == "send":
        sock.sendall(arg.encode())
    elif verb == "big":                        # send N bytes, reading the echo as it comes
        total, got = int(arg), 0
        block = b"x" * 65536
        sock.setblocking(False)
        sent = 0
        while got < total:
            if sent < total:
                try:
                    sent += sock.send(block[: total - sent])
                except BlockingIOError:
                    pass
            try:
                data = sock.recv(1 << 20)
                if not data:
                    break
                got += len(data)
            except BlockingIOError:
                time.sleep(0.001)
        print("echoed", got, flush=True)
        sock.setblocking(True)
    elif verb == "recv":
        want, data = int(arg), b""
        while len(data) < want and (chunk := sock.recv(want - len(data))):
            data += chunk
        print("got", data.decode(), flush=True)
    elif verb == "wait-close":                 # until the server closes (or 10 s)
        start = time.monotonic()
        data = sock.recv(100)
        print("closed", repr(data), round(time.monotonic() - start), flush=True)
"""


def _client(pg: Playground, *actions: str, to: str = "10.9.0.1:7") -> str:
    result = pg.host("client").run([sys.executable, "-c", CLIENT, to, *actions], timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_what_is_sent_comes_back_to_netcat(shared_playground: Playground) -> None:
    said = shared_playground.host("client").run(
        ["nc", "-N", "-w", "5", "server", "7"], input="hello, echo\n", timeout=30
    )
    assert said.stdout == "hello, echo\n", said.stderr


def test_over_ipv6_and_in_pieces(shared_playground: Playground) -> None:
    out = _client(shared_playground, "send=ab", "send=cd", "recv=4", to="[fd6e:7000:99::1]:7")
    assert out == "got abcd\n"


def test_a_megabytes_long_stream_comes_back_whole(shared_playground: Playground) -> None:
    assert _client(shared_playground, f"big={8 << 20}") == f"echoed {8 << 20}\n"


def test_an_idle_client_is_closed(shared_playground: Playground) -> None:
    assert _client(shared_playground, "wait-close") == "closed b'' 1\n"


def test_past_the_limit_the_idlest_connection_makes_room(
    shared_playground: Playground, spawn: Callable[..., Spawned]
) -> None:
    client = shared_playground.host("client")
    hold = [sys.executable, "-c", CLIENT, "10.9.0.1:8", "send=x", "recv=1", "wait-close"]
    holders = []
    for _ in range(3):  # one after another: the first is the idlest
        holders.append(spawn(client, hold))
    assert [h.first_line for h in holders] == ["got x"] * 3
    # a new connection is always taken (idle clients cannot keep others out) ...
    assert _client(shared_playground, "send=z", "recv=1", to="10.9.0.1:8") == "got z\n"
    # ... and the idlest held one gave way
    assert holders[0].readline(10) == "closed b'' 0"
    assert [h.running for h in holders[1:]] == [True, True]
    assert shared_playground.service("server/few").restarts == 0

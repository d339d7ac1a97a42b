"""The memcached kind (Debian's daemon): the cache from a real client in another
host, the text protocol's answers to hostile clients, and where it listens.

The engine conformance suite (test_engines.py) checks its life as a service
(restarts, stop and start, logs, idle, slow and garbage clients); this
module checks what the caching chapter relies on, and the limits the
engine sets: the default service, and a ``tight`` one with small limits.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netplay import Playground, Spawned, TopologyError
from netplay.services.engines import memcached
from netplay.testing import wait_for_service
from netplay.topology import loads

SERVER, SERVER6, CLIENT = "10.9.0.1", "fd6e:7000:99::1", "10.9.0.2"
DEFAULT, TIGHT = 11211, 11212
TIGHT_IDLE_S, TIGHT_CONNECTIONS, TIGHT_ITEM = 2, 8, 4096

TIGHT_LIMITS = (
    f"memory = 8, idle_timeout = {TIGHT_IDLE_S}, max_connections = {TIGHT_CONNECTIONS}, "
    f"max_item_size = {TIGHT_ITEM}"
)
TOPOLOGY = f"""
name = "memcached"

[hosts.server]
services = [
    {{ kind = "memcached" }},
    {{ kind = "memcached", name = "tight", ports = [{TIGHT}], {TIGHT_LIMITS} }},
]

[hosts.client]

[lans.lan.hosts]
server = ["{SERVER}/24", "{SERVER6}/64"]
client = ["{CLIENT}/24", "fd6e:7000:99::2/64"]
"""

pytestmark = [pytest.mark.needs_playground, pytest.mark.netplay_topology(loads(TOPOLOGY))]

#: what a client does, in the text protocol: ``ask`` sends and reads reply lines
RAW = r"""
import json, socket, sys, time
address, port = sys.argv[1], int(sys.argv[2])
sock = socket.create_connection((address, port), timeout=15)
reply = sock.makefile("rb")
def ask(data, lines=1):
    sock.sendall(data)
    return [reply.readline(4096).decode() for _ in range(lines)]
"""


def _run_all(pg: Playground, host: str, code: str, *args: object) -> list[Any]:
    """``code`` (after RAW) run in ``host``; each line it printed, as JSON."""
    argv = [sys.executable, "-c", RAW + code, *map(str, args)]
    done = pg.host(host).run(argv, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _run(pg: Playground, host: str, code: str, *args: object) -> Any:
    """``code`` (after RAW) run in ``host``; the one line it printed, as JSON."""
    (out,) = _run_all(pg, host, code, *args)
    return out


PYMEMCACHE = r"""
import json, sys, time
from pymemcache.client.base import Client
cache = Client((sys.argv[1], int(sys.argv[2])), connect_timeout=5, timeout=5,
               default_noreply=False)
out = {}
cache.set("greeting", b"hello, cache")
out["get"] = cache.get("greeting").decode()
out["add over a key"] = cache.add("greeting", b"other")
out["replace"] = cache.replace("greeting", b"bonjour")
out["after replace"] = cache.get("greeting").decode()
cache.set("counter", b"41")
out["incr"] = cache.incr("counter", 1)
out["decr"] = cache.decr("counter", 40)
out["incr of a missing key"] = cache.incr("nothing-here", 1)
out["delete"] = cache.delete("greeting")
out["after delete"] = cache.get("greeting")
out["delete again"] = cache.delete("greeting")
cache.set("brief", b"soon gone", expire=1)
out["before expiry"] = cache.get("brief").decode()
start = time.monotonic()
while cache.get("brief") is not None and time.monotonic() - start < 10:
    time.sleep(0.1)
out["expired after"] = time.monotonic() - start
print(json.dumps(out))
"""


@pytest.mark.parametrize("address", ["server", SERVER6])
def test_set_get_delete_incr_and_expiry_with_pymemcache(
    shared_playground: Playground, address: str
) -> None:
    if importlib.util.find_spec("pymemcache") is None:
        pytest.skip("needs pymemcache (pip install pymemcache==4.0.0; in the test extras)")
    argv = [sys.executable, "-c", PYMEMCACHE, address, str(DEFAULT)]
    done = shared_playground.host("client").run(argv, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    expired_after = out.pop("expired after")
    assert out == {
        "get": "hello, cache",
        "add over a key": False,
        "replace": True,
        "after replace": "bonjour",
        "incr": 42,
        "decr": 2,
        "incr of a missing key": None,
        "delete": True,
        "after delete": None,
        "delete again": False,
        "before expiry": "soon gone",
    }
    assert expired_after < 3, "memcached's clock ticks once a second: gone within two"


@pytest.mark.parametrize(("port", "limit"), [(DEFAULT, 1 << 20), (TIGHT, TIGHT_ITEM)])
def test_a_value_over_the_item_size_is_refused_and_the_connection_goes_on(
    shared_playground: Playground, port: int, limit: int
) -> None:
    out = _run(
        shared_playground,
        "client",
        f"""
size = {limit} + 1
print(json.dumps([
    ask(b"set big 0 0 %d\\r\\n%s\\r\\n" % (size, b"x" * size)),
    ask(b"get big\\r\\n"),
    ask(b"set small 0 0 2\\r\\nok\\r\\n"),
]))
""",
        SERVER,
        port,
    )
    assert out == [
        ["SERVER_ERROR object too large for cache\r\n"],
        ["END\r\n"],  # the value's bytes were read and dropped, not taken for commands
        ["STORED\r\n"],
    ]


def test_garbage_gets_error_and_the_connection_goes_on(shared_playground: Playground) -> None:
    out, endless = _run_all(
        shared_playground,
        "client",
        """
print(json.dumps([
    ask(b"this is not memcached\\r\\n"),
    ask(b"\\x00\\xff\\xfe\\r\\n"),
    ask(b"get " + b"k" * 251 + b"\\r\\n"),
    ask(b"incr\\r\\n"),
    ask(b"version\\r\\n"),
]))
endless = socket.create_connection((address, port), timeout=15)
endless.sendall(b"x" * 4096)  # a line that never ends: cut off after 2 KiB
try:
    print(json.dumps(endless.recv(100).decode()))
except ConnectionResetError:
    print(json.dumps(""))
""",
        SERVER,
        DEFAULT,
    )
    assert out[:4] == [
        ["ERROR\r\n"],
        ["ERROR\r\n"],
        ["CLIENT_ERROR bad command line format\r\n"],  # a key is at most 250 bytes
        ["ERROR\r\n"],
    ]
    assert out[4][0].startswith("VERSION 1.6.")
    assert endless == "", "closed, not answered"


def test_an_idle_connection_is_closed_and_a_busy_one_is_not(
    shared_playground: Playground,
) -> None:
    out = _run(
        shared_playground,
        "client",
        f"""
idle = sock
idle.setblocking(False)
busy = socket.create_connection((address, port), timeout=15)
busy_reply = busy.makefile("rb")
start, closed, answers = time.monotonic(), None, set()
while time.monotonic() - start < {TIGHT_IDLE_S} + 4:
    busy.sendall(b"version\\r\\n")
    answers.add(busy_reply.readline(4096).decode())
    try:
        if closed is None and idle.recv(100) == b"":
            closed = round(time.monotonic() - start, 1)
    except BlockingIOError:
        pass
    time.sleep(0.25)
print(json.dumps([closed, sorted(answers)]))
""",
        SERVER,
        TIGHT,
    )
    closed, answers = out
    assert closed is not None and TIGHT_IDLE_S - 1 <= closed <= TIGHT_IDLE_S + 3, closed
    assert len(answers) == 1 and answers[0].startswith("VERSION "), "the busy one goes on"


HOLD = r"""
import socket, sys, time
address, port, amount, busy_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
held = []
for _ in range(amount):
    sock = socket.create_connection((address, port), timeout=15)
    sock.sendall(b"version\r\n")
    if sock.recv(100).startswith(b"VERSION"):
        held.append(sock)
print("holding", len(held), flush=True)
start = time.monotonic()
while time.monotonic() - start < busy_s:  # busy: no idle timeout
    for sock in held:
        sock.sendall(b"version\r\n")
        sock.recv(100)
    time.sleep(0.3)
start = time.monotonic()  # then idle, until the server closes them
print("closed", sum(sock.recv(100) == b"" for sock in held), "after",
      round(time.monotonic() - start), flush=True)
time.sleep(3600)
"""


def test_many_idle_connections_do_not_stop_another_client(
    shared_playground: Playground, spawn: Callable[..., Spawned]
) -> None:
    """Under max_connections (1024 by default), idle connections cost another client
    nothing; memcached has no limit per client (docs/services.md)."""
    argv = [sys.executable, "-c", HOLD, SERVER, str(DEFAULT), "600", "3600"]
    holder = spawn(shared_playground.host("client"), argv, timeout=60)
    assert holder.first_line == "holding 600"
    other = 'print(json.dumps(ask(b"set k 0 0 2\\r\\nok\\r\\nget k\\r\\n", 4)))'
    assert _run(shared_playground, "server", other, SERVER, DEFAULT) == [
        "STORED\r\n",
        "VALUE k 0 2\r\n",
        "ok\r\n",
        "END\r\n",
    ]
    assert holder.running


def test_past_max_connections_a_client_is_told_and_served_once_idle_ones_are_closed(
    shared_playground: Playground, spawn: Callable[..., Spawned]
) -> None:
    argv = [sys.executable, "-c", HOLD, SERVER, str(TIGHT), str(TIGHT_CONNECTIONS + 4), "6"]
    holder = spawn(shared_playground.host("client"), argv, timeout=60)
    assert holder.first_line == f"holding {TIGHT_CONNECTIONS}", "max_connections, exactly"
    other = 'print(json.dumps(ask(b"version\\r\\n")))'  # another client, from another host
    assert _run(shared_playground, "server", other, SERVER, TIGHT) == [
        "ERROR Too many open connections\r\n"
    ]
    assert holder.readline(TIGHT_IDLE_S + 15).startswith(f"closed {TIGHT_CONNECTIONS} after ")
    (answer,) = _run(shared_playground, "server", other, SERVER, TIGHT)
    assert answer.startswith("VERSION ")


def test_a_client_in_the_middle_of_a_value_is_not_timed_out(
    shared_playground: Playground,
) -> None:
    """memcached's idle timeout does not reach a connection whose value is still
    coming (a gap docs/services.md names): its end, long after, is stored."""
    out = _run(
        shared_playground,
        "client",
        f"""
sock.sendall(b"set slow 0 0 6\\r\\nabc")
time.sleep({TIGHT_IDLE_S} + 3)
print(json.dumps(ask(b"def\\r\\n")))
""",
        SERVER,
        TIGHT,
    )
    assert out == ["STORED\r\n"]


def _listening(pg: Playground, protocol: str) -> set[str]:
    done = pg.host("server").run(["ss", "-Hln", f"-{protocol}"], timeout=30, check=True)
    return {line.split()[3] for line in done.stdout.splitlines() if line.strip()}


def test_it_listens_only_on_the_host_s_addresses_over_tcp(shared_playground: Playground) -> None:
    pg = shared_playground
    for port in (DEFAULT, TIGHT):
        found = {where for where in _listening(pg, "t") if where.endswith(f":{port}")}
        assert found == {
            f"{SERVER}:{port}",
            f"[{SERVER6}]:{port}",
            f"127.0.0.1:{port}",
            f"[::1]:{port}",
        }
    assert not {where for where in _listening(pg, "u") if where.endswith((":11211", ":11212"))}
    pid = pg.service("server/memcached").pid
    assert pid is not None
    inside = pg.host("server").run(["readlink", "/proc/self/ns/net"], timeout=30, check=True)
    assert os.readlink(f"/proc/{pid}/ns/net") == inside.stdout.strip()
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_it_runs_as_memcache_and_is_named_in_ps(shared_playground: Playground) -> None:
    pid = shared_playground.service("server/memcached").pid
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uids) == {str(pwd.getpwnam("memcache").pw_uid)}
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[0] == f"netplay: {shared_playground.name} server/memcached server".encode()
    assert Path(f"/proc/{pid}/comm").read_text() == "memcached\n"


def test_kill_9_restarts_it_with_an_empty_cache(shared_playground: Playground) -> None:
    pg = shared_playground
    keep = 'print(json.dumps(ask(b"set kept 0 0 4\\r\\nkept\\r\\n")))'
    assert _run(pg, "client", keep, SERVER, DEFAULT) == ["STORED\r\n"]
    before = wait_for_service(pg, "server/memcached")
    assert before.pid is not None
    os.kill(before.pid, signal.SIGKILL)
    after = wait_for_service(pg, "server/memcached", other_than=before.pid)
    assert after.restarts == before.restarts + 1
    lookup = 'print(json.dumps(ask(b"get kept\\r\\n")))'
    assert _run(pg, "client", lookup, SERVER, DEFAULT) == ["END\r\n"], "a cache forgets"


BAD = """
name = "memcached-bad"

[hosts.server]
services = [{{ kind = "memcached", {options} }}]

[lans.lan.hosts]
server = ["10.9.0.1/24"]
"""


def _refused(options: str) -> TopologyError:
    """The error that refuses a memcached service with ``options``, before anything
    is built (a playground built all the same is taken down, and the test fails)."""
    try:
        made = Playground.up(loads(BAD.format(options=options)), name="memcached-bad")
    except TopologyError as exc:
        assert "memcached-bad" not in Playground.names()
        return exc
    made.down()
    pytest.fail(f"a memcached service with {options} was built")


@pytest.mark.parametrize(
    ("options", "field", "said"),
    [
        ("max_item_size = 3000", "max_item_size", "must be a power of two"),
        ("memory = 8, max_item_size = 8388608", "max_item_size", "at most half of memory (8 MiB)"),
        ("memory = 4", "memory", "at least 8"),
        ("idle_timeout = 1.5", "idle_timeout", "must be an integer"),
        ("max_connections = 0", "max_connections", "at least 1"),
    ],
)
def test_options_memcached_cannot_take_are_refused_before_anything_is_built(
    options: str, field: str, said: str
) -> None:
    refused = _refused(options)
    assert refused.field == f"hosts.server.services[0].{field}"
    assert said in refused.reason


def test_without_the_daemon_it_says_which_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memcached, "MEMCACHED", "/nonexistent/memcached")
    refused = _refused("memory = 64")
    assert refused.field == "hosts.server.services[0].engine"
    assert "(apt-get install memcached)" in refused.reason
    assert refused.reason.count(". ") == 0

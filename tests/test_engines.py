"""The engine conformance suite: every registered engine, the same checks.

For each engine of each kind (netplay.services.registered(), so an engine
added later is tested here without a line changed), a playground of two
hosts on a LAN declares one service of it (with the options its
``example`` says it needs), and:

- it is up and healthy, and its ports answer from the other host;
- ``kill -9`` of its server: the runner restarts it, with back-off, and it
  is healthy again;
- it stops and starts again on demand;
- its log is written and can be followed;
- an option it does not have, or one of the wrong type, is refused before
  anything is built, naming the field;
- after ``down``, nothing of it is left: no process, no file.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from netplay import Playground, ServiceState, TopologyError
from netplay.fabric import alive
from netplay.services import Engine, registered
from netplay.testing import wait_for_service
from netplay.topology import Topology, loads

pytestmark = pytest.mark.needs_playground

SERVER, CLIENT = "10.9.0.1", "10.9.0.2"
IDENT = "server/svc"


def _toml(value: Any) -> str:
    """A TOML value (JSON's scalars, arrays and strings are TOML's)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def declaration(kind: str, engine: str, **extra: Any) -> Topology:
    """Two hosts on a LAN; the server runs one service of this kind and engine."""
    found: Engine = registered()[kind][engine]
    keys = {"kind": kind, "name": "svc", "engine": engine, **found.example, **extra}
    service = ", ".join(f"{key} = {_toml(value)}" for key, value in keys.items())
    return loads(
        f"""
name = "conformance"
domain = "conformance.test"

[hosts.server]
services = [{{ {service} }}]

[hosts.client]

[lans.lan.hosts]
server = ["{SERVER}/24", "fd6e:7000:99::1/64"]
client = ["{CLIENT}/24", "fd6e:7000:99::2/64"]
""",
        source=f"conformance of {kind}/{engine}",
    )


ENGINES = [
    pytest.param(kind, engine, marks=pytest.mark.netplay_topology(declaration(kind, engine)))
    for kind in sorted(registered())
    for engine in registered()[kind]
]
parametrize = pytest.mark.parametrize(("kind", "engine"), ENGINES)


def _tcp_ports(pg: Playground) -> list[int]:
    return [int(p.split("/")[1]) for p in pg.service(IDENT).listens if p.startswith("tcp/")]


@parametrize
def test_up_and_healthy(shared_playground: Playground, kind: str, engine: str) -> None:
    now = shared_playground.service(IDENT)
    assert (now.kind, now.engine, now.state) == (kind, engine, ServiceState.RUNNING)
    assert now.pid is not None and alive(now.pid, None)
    assert now.listens, "it says where it listens"
    for port in _tcp_ports(shared_playground):
        probe = f"import socket; socket.create_connection(('{SERVER}', {port}), timeout=5)"
        reached = shared_playground.host("client").run(["python3", "-c", probe], timeout=30)
        assert reached.returncode == 0, f"port {port}: {reached.stderr}"


@parametrize
def test_kill_9_of_its_server_restarts_it(
    shared_playground: Playground, kind: str, engine: str
) -> None:
    before = wait_for_service(shared_playground, IDENT)
    assert before.pid is not None
    os.kill(before.pid, signal.SIGKILL)
    after = wait_for_service(shared_playground, IDENT, other_than=before.pid)
    assert after.restarts == before.restarts + 1
    log = Path(after.log).read_text()
    assert re.search(r"was killed by SIGKILL; restarting in [0-9.]+ s", log), log


@parametrize
def test_stop_and_start(shared_playground: Playground, kind: str, engine: str) -> None:
    stopped = shared_playground.control(IDENT, "stop")
    assert (stopped.state, stopped.pid) == (ServiceState.STOPPED, None)
    for port in _tcp_ports(shared_playground):
        with pytest.raises(ConnectionRefusedError):
            _connect_from_server(shared_playground, port)
    started = shared_playground.control(IDENT, "start")
    assert started.state is ServiceState.RUNNING and started.pid is not None


def _connect_from_server(pg: Playground, port: int) -> None:
    probe = (
        "import socket, sys\n"
        f"try: socket.create_connection(('{SERVER}', {port}), timeout=5)\n"
        "except ConnectionRefusedError: sys.exit(3)\n"
    )
    if pg.host("server").run(["python3", "-c", probe], timeout=30).returncode == 3:
        raise ConnectionRefusedError(port)


@parametrize
def test_its_log_is_written_and_followed(
    shared_playground: Playground, kind: str, engine: str
) -> None:
    follow = shared_playground.logs(IDENT, follow=True)
    written = next(follow)
    assert f"netplay: {IDENT} healthy" in written
    shared_playground.control(IDENT, "restart")
    added = ""
    while "healthy" not in added:  # what the restart wrote, as it is written
        added += next(follow)
    assert "stopped" in added and "started (pid" in added
    follow.close()
    (last,) = shared_playground.logs(IDENT, lines=1)
    assert last.count("\n") == 1


@pytest.mark.parametrize(("kind", "engine"), [p.values for p in ENGINES])
def test_a_bad_option_is_named_by_its_field(kind: str, engine: str) -> None:
    where = "hosts.server.services[0]"
    with pytest.raises(TopologyError) as caught:
        Playground.up(declaration(kind, engine, bogus=1), name="conformance-bad")
    assert caught.value.field == f"{where}.bogus"
    for option, wanted in registered()[kind][engine].options.items():
        wrong: Any = "text" if wanted is not str else 5
        with pytest.raises(TopologyError) as caught:
            Playground.up(declaration(kind, engine, **{option: wrong}), name="conformance-bad")
        assert caught.value.field == f"{where}.{option}"
    assert "conformance-bad" not in Playground.names()


@pytest.mark.parametrize(("kind", "engine"), [p.values for p in ENGINES])
def test_nothing_is_left_after_down(playground_factory: Any, kind: str, engine: str) -> None:
    pg: Playground = playground_factory(declaration(kind, engine))
    now = pg.service(IDENT)
    runner = pg.state.runners[IDENT]
    files = [Path(now.log), pg.paths.dir]
    server_net = os.stat(f"/proc/{now.pid}/ns/net").st_ino
    pg.down()
    assert not alive(runner.pid, runner.start)
    assert _in_network_namespace(server_net) == []
    assert not any(path.exists() for path in files)
    assert pg.name not in Playground.names()


def _in_network_namespace(inode: int) -> list[int]:
    """The live processes in the network namespace ``inode``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.stat(entry / "ns" / "net").st_ino == inode:
                if alive(int(entry.name), None):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found

"""The service layer: inetd-style services, restarts, the restart limit, health at up,
logs and control from the command line.

A small topology of its own (a server and a client on one LAN) declares
the services; they run in the server and are reached from the client.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from netplay import Playground, ServiceError, TopologyError

pytestmark = pytest.mark.playground

# a wait-mode program: it gets the listening socket and accepts by itself
ACCEPTOR = "\n".join(
    [
        "import os, socket",
        "listener = socket.socket(fileno=0)",
        "count = 0",
        "while True:",
        "    conn, _ = listener.accept()",
        "    count += 1",
        "    conn.sendall(f'{os.getpid()} {count}\\n'.encode())",
        "    conn.close()",
    ]
)

TOPOLOGY = f"""
name = "svc"
domain = "svc.test"

[hosts.server]

[[hosts.server.services]]
kind = "inetd"
name = "echo"
ports = [1060]
command = ["sh", "-c", "echo hello $TCPREMOTEIP; exec cat"]

[[hosts.server.services]]
kind = "inetd"
name = "acceptor"
ports = [1061]
mode = "wait"
command = [{json.dumps(sys.executable)}, "-c", {json.dumps(ACCEPTOR)}]

[[hosts.server.services]]
kind = "inetd"
name = "fragile"
ports = [1062]
command = ["cat"]
restart_limit = 1

[[hosts.server.services]]
kind = "http"
ports = [80]
apps = {{ "/demo" = "wsgiref.simple_server:demo_app" }}

[hosts.client]

[lans.lan]
hosts = {{ server = ["10.9.0.1/24"], client = ["10.9.0.2/24"] }}
"""

CLIENTS = """
import socket, sys
conns = [socket.create_connection(("server", int(sys.argv[1]))) for _ in range(3)]
files = [c.makefile("rwb") for c in conns]
greetings = [f.readline().decode().strip() for f in files]
for i, f in enumerate(files):  # all three are open at once
    f.write(f"line {i}\\n".encode())
    f.flush()
print(greetings)
print([f.readline().decode().strip() for f in files])
"""


def _up(tmp: Path, text: str, name: str) -> Playground:
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return Playground.up(str(path), name=name)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Playground]:
    with _up(tmp_path_factory.mktemp("svc"), TOPOLOGY, f"svc{os.getpid()}") as pg:
        yield pg


def _service(pg: Playground, ident: str) -> dict[str, Any]:
    return next(s for s in pg.services() if s["id"] == ident)


def _until(
    pg: Playground, ident: str, check: Callable[[dict[str, Any]], bool], timeout: float = 20.0
) -> dict[str, Any]:
    """The service's status once ``check`` holds, polling what its runner reports."""
    deadline = time.monotonic() + timeout
    while not check(now := _service(pg, ident)):
        assert time.monotonic() < deadline, now
        time.sleep(0.1)
    return now


def _wait_for(pg: Playground, ident: str, state: str) -> dict[str, Any]:
    return _until(pg, ident, lambda now: now["state"] == state)


def _restarted(pg: Playground, before: dict[str, Any]) -> dict[str, Any]:
    """The service's status once it runs again with another server process."""
    return _until(
        pg,
        before["id"],
        lambda now: now["state"] == "running" and now["pid"] not in (before["pid"], None),
    )


def netplay(pg: Playground, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "netplay", *args[:1], "--name", pg.name, *args[1:]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def test_every_service_is_running_after_up(svc: Playground) -> None:
    states = {s["id"]: (s["state"], s["kind"], s["engine"]) for s in svc.services()}
    assert states == {
        "server/echo": ("running", "inetd", "builtin"),
        "server/acceptor": ("running", "inetd", "builtin"),
        "server/fragile": ("running", "inetd", "builtin"),
        "server/http": ("running", "http", "granian"),
    }


def test_nowait_serves_three_clients_at_once(svc: Playground) -> None:
    result = svc.host("client").run([sys.executable, "-c", CLIENTS, "1060"], timeout=30)
    greetings, echoes = result.stdout.splitlines()
    assert greetings == str(["hello 10.9.0.2"] * 3)
    assert echoes == str([f"line {i}" for i in range(3)])


def test_wait_hands_the_listening_socket_to_one_process(svc: Playground) -> None:
    read = textwrap.dedent(
        """
        import socket
        for _ in range(3):
            print(socket.create_connection(("server", 1061)).makefile().readline().strip())
        """
    )
    lines = svc.host("client").run([sys.executable, "-c", read], timeout=30).stdout.split("\n")
    pids = {line.split()[0] for line in lines if line}
    counts = [int(line.split()[1]) for line in lines if line]
    assert len(pids) == 1  # one process accepted them all
    assert counts == sorted(counts) and len(counts) == 3


def test_mounted_wsgi_application(svc: Playground) -> None:
    result = svc.host("client").run(["curl", "-sS", "http://server/demo/hello"], timeout=30)
    assert result.stdout.startswith("Hello world!"), result.stderr
    assert "PATH_INFO = '/hello'" in result.stdout and "SCRIPT_NAME = '/demo'" in result.stdout


def test_a_killed_server_is_restarted_and_answers_again(svc: Playground) -> None:
    before = _service(svc, "server/http")
    os.kill(before["pid"], signal.SIGKILL)
    after = _restarted(svc, before)
    assert after["restarts"] == before["restarts"] + 1
    answer = svc.host("client").run(["curl", "-sS", "http://server/get"], timeout=30)
    assert json.loads(answer.stdout)["url"] == "http://server/get"
    status = netplay(svc, "status")
    assert "server/http" in status.stdout and "running" in status.stdout


def test_past_the_restart_limit_a_service_fails_with_its_reason(svc: Playground) -> None:
    first = _service(svc, "server/fragile")
    os.kill(first["pid"], signal.SIGKILL)
    second = _restarted(svc, first)
    os.kill(second["pid"], signal.SIGKILL)
    failed = _wait_for(svc, "server/fragile", "failed")
    assert "gave up after 1 restarts" in failed["reason"]
    assert "SIGKILL" in failed["reason"]
    log = netplay(svc, "logs", "server/fragile")
    assert "gave up after 1 restarts" in log.stdout
    assert "fragile" in netplay(svc, "status").stdout


def test_restart_stop_and_start_from_the_command_line(svc: Playground) -> None:
    before = _service(svc, "server/echo")
    restarted = netplay(svc, "service", "restart", "server/echo")
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.startswith("server/echo: running, pid ")
    assert _service(svc, "server/echo")["pid"] != before["pid"]
    stopped = netplay(svc, "service", "stop", "server/echo")
    assert stopped.stdout == "server/echo: stopped\n"
    closed = svc.host("client").run(["curl", "-sS", "--max-time", "2", "telnet://server:1060"])
    assert closed.returncode == 7, closed.stderr  # connection refused while stopped
    started = netplay(svc, "service", "start", "server/echo")
    assert started.stdout.startswith("server/echo: running, pid "), started.stderr
    unknown = netplay(svc, "service", "restart", "server/nosuch")
    assert unknown.returncode == 12 and "there is no service 'server/nosuch'" in unknown.stderr


def test_logs_and_follow(svc: Playground) -> None:
    log = netplay(svc, "logs", "server/http")
    assert "GET /get" in log.stdout  # the health check's request, in granian's access log
    assert netplay(svc, "logs", "server/http", "-n", "1").stdout.count("\n") == 1
    argv = [sys.executable, "-m", "netplay", "logs", "--name", svc.name, "-f", "server/http"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as follower:
        assert follower.stdout is not None  # it prints the whole log, then what is added
        svc.host("client").run(["curl", "-sS", "http://server/status/204"], timeout=30)
        deadline = time.monotonic() + 10
        for line in follower.stdout:
            if "GET /status/204" in line:
                break
            assert time.monotonic() < deadline
        follower.kill()


def test_a_service_that_never_becomes_healthy_fails_up_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    broken = """
name = "broken"
[hosts.server]
[[hosts.server.services]]
kind = "http"
ports = [80]
health_timeout = 2
apps = { "/x" = "no.such.module:app" }
[hosts.client]
[lans.lan]
hosts = { server = ["10.9.0.1/24"], client = ["10.9.0.2/24"] }
"""
    name = f"broken{os.getpid()}"
    with pytest.raises(ServiceError) as caught:
        _up(tmp_path, broken, name)
    message = str(caught.value)
    assert "server/http did not start" in message and "500" in message
    assert "No module named 'no'" in message
    assert not (Path("/run/netplay") / name).exists()
    assert not any(n.startswith(f"netplay-{name}-") for n in os.listdir("/run/netns"))


@pytest.mark.parametrize(
    ("service", "field", "words"),
    [
        ('{ kind = "gopher", ports = [70] }', "services[0].kind", "no service kind 'gopher'"),
        ('{ kind = "http", engine = "nginx" }', "services[0].engine", "no engine 'nginx'"),
        ('{ kind = "http", color = "red" }', "services[0].color", "no option 'color'"),
        ('{ kind = "inetd", ports = [7] }', "services[0].command", "needs a command"),
        ('{ kind = "http", restart_limit = "x" }', "services[0].restart_limit", "an integer"),
        ('{ kind = "inetd", ports = [7], command = ["cat"] }', "hosts.b.services[0]", "no address"),
    ],
)
def test_bad_service_declarations_are_refused_before_anything_is_made(
    tmp_path: Path, service: str, field: str, words: str
) -> None:
    hosts = {"a": "", "b": "", "c": ""}  # b is attached to nothing
    hosts["b" if "hosts.b" in field else "a"] = f"services = [{service}]\n"
    text = 'name = "bad"\n' + "".join(f"[hosts.{h}]\n{body}" for h, body in hosts.items())
    text += '[lans.l]\nhosts = { a = ["10.0.0.1/24"], c = ["10.0.0.2/24"] }\n'
    name = f"bad{os.getpid()}"
    with pytest.raises(TopologyError) as caught:
        _up(tmp_path, text, name)
    assert field in str(caught.value) and words in str(caught.value)
    assert not (Path("/run/netplay") / name).exists()

"""The service layer: inetd-style services, restarts, the restart limit, health at up,
logs and control from the command line.

A small topology of its own (a server and a client on one LAN) declares
the services; they run in the server and are reached from the client.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netplay import (
    Playground,
    ServiceError,
    ServiceState,
    TopologyError,
    UnknownHostError,
    pki,
)
from netplay.fabric import alive
from netplay.services._listening import listening
from netplay.testing import wait_for_service, wait_until
from netplay.topology import loads

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
kind = "inetd"
name = "witness"
ports = [1063]
command = ["sh", "-c", "echo a command ran >&2"]

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

pytestmark = pytest.mark.netplay_topology(loads(TOPOLOGY, source="svc.toml"))


@pytest.fixture
def svc(shared_playground: Playground) -> Playground:
    """The playground of TOPOLOGY, shared by this module's tests: what one
    changes (a service stopped or failed), it puts back."""
    return shared_playground


def netplay(pg: Playground, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "netplay", *args[:1], "--name", pg.name, *args[1:]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def test_every_service_is_running_after_up(svc: Playground) -> None:
    services = svc.services()
    assert {s.id: (s.state, s.kind, s.engine) for s in services} == {
        "server/echo": (ServiceState.RUNNING, "inetd", "builtin"),
        "server/acceptor": (ServiceState.RUNNING, "inetd", "builtin"),
        "server/fragile": (ServiceState.RUNNING, "inetd", "builtin"),
        "server/witness": (ServiceState.RUNNING, "inetd", "builtin"),
        "server/http": (ServiceState.RUNNING, "http", "granian"),
    }
    assert svc.status().services == services


def test_listening_asks_the_kernel_for_one_family_s_listeners() -> None:
    with socket.socket() as listener, socket.socket() as bound:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        bound.bind(("127.0.0.1", 0))  # bound, not listening
        assert listening(socket.AF_INET, port)
        assert not listening(socket.AF_INET6, port)
        assert not listening(socket.AF_INET, bound.getsockname()[1])
    assert not listening(socket.AF_INET, port)


def test_inetd_s_health_check_runs_no_command(svc: Playground) -> None:
    """It asks the kernel whether inetd listens: a connection would have inetd run
    the command for nobody (for the book's zen server, an interpreter each time)."""

    def log() -> str:
        return "".join(svc.logs("server/witness"))

    assert "server/witness healthy" in log() and "a command ran" not in log()
    svc.host("client").run(["curl", "-sS", "--max-time", "5", "telnet://server:1063"])
    wait_until(lambda: "a command ran" in log(), timeout=10, what="the command's line in its log")


def test_ps_names_every_runner_and_server(svc: Playground) -> None:
    for service in svc.services():
        runner, server = svc.state.runners[service.id].pid, service.pid
        for pid, role in ((runner, "runner"), (server, "server")):
            shown = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            assert shown == f"netplay: {svc.name} {service.id} {role}"


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
    before = svc.service("server/http")
    assert before.state is ServiceState.RUNNING and before.pid is not None
    os.kill(before.pid, signal.SIGKILL)
    after = wait_for_service(svc, "server/http", other_than=before.pid)
    assert after.restarts == before.restarts + 1
    answer = svc.host("client").run(["curl", "-sS", "http://server/get"], timeout=30)
    assert json.loads(answer.stdout)["url"] == "http://server/get"
    status = netplay(svc, "status")
    assert "server/http" in status.stdout and "running" in status.stdout


def test_past_the_restart_limit_a_service_fails_with_its_reason(svc: Playground) -> None:
    first = svc.service("server/fragile")
    assert first.pid is not None
    try:
        os.kill(first.pid, signal.SIGKILL)
        second = wait_for_service(svc, "server/fragile", other_than=first.pid)
        assert second.pid is not None
        os.kill(second.pid, signal.SIGKILL)
        failed = wait_for_service(svc, "server/fragile", ServiceState.FAILED)
        assert failed.pid is None
        assert "gave up after 1 restarts" in failed.reason
        assert "SIGKILL" in failed.reason
        log = netplay(svc, "logs", "server/fragile")
        assert "gave up after 1 restarts" in log.stdout
        assert "fragile" in netplay(svc, "status").stdout
    finally:  # the playground is the module's: leave the service running for the others
        again = svc.control("server/fragile", "start")
    assert again.state is ServiceState.RUNNING, again


def test_restart_stop_and_start_from_the_command_line(svc: Playground) -> None:
    before = svc.service("server/echo")
    try:
        restarted = netplay(svc, "service", "restart", "server/echo")
        assert restarted.returncode == 0, restarted.stderr
        assert restarted.stdout.startswith("server/echo: running, pid ")
        assert svc.service("server/echo").pid not in (before.pid, None)
        stopped = netplay(svc, "service", "stop", "server/echo")
        assert stopped.stdout == "server/echo: stopped\n"
        assert svc.service("server/echo").state is ServiceState.STOPPED
        closed = svc.host("client").run(["curl", "-sS", "--max-time", "2", "telnet://server:1060"])
        assert closed.returncode == 7, closed.stderr  # connection refused while stopped
        started = netplay(svc, "service", "start", "server/echo")
        assert started.stdout.startswith("server/echo: running, pid "), started.stderr
    finally:
        if svc.service("server/echo").state is not ServiceState.RUNNING:
            svc.control("server/echo", "start")
    unknown = netplay(svc, "service", "restart", "server/nosuch")
    assert unknown.returncode == 7 and "there is no service 'server/nosuch'" in unknown.stderr
    with pytest.raises(UnknownHostError, match="there is no service 'server/nosuch'"):
        svc.control("server/nosuch", "restart")
    with pytest.raises(UnknownHostError, match="there is no service 'server/nosuch'"):
        svc.service("server/nosuch")


def test_control_from_python(svc: Playground) -> None:
    before = svc.service("server/acceptor")
    try:
        stopped = svc.control("server/acceptor", "stop")
        assert (stopped.state, stopped.pid) == (ServiceState.STOPPED, None)
        started = svc.control("server/acceptor", "start")
        assert started.state is ServiceState.RUNNING and started.pid not in (before.pid, None)
        restarted = svc.control("server/acceptor", "restart")
        assert restarted.state is ServiceState.RUNNING and restarted.pid != started.pid
    finally:
        if svc.service("server/acceptor").state is not ServiceState.RUNNING:
            svc.control("server/acceptor", "start")


def test_logs_and_follow(svc: Playground) -> None:
    log = netplay(svc, "logs", "server/http")
    assert "GET /get" in log.stdout  # the health check's request, in granian's access log
    assert "".join(svc.logs("server/http")) in Path(svc.service("server/http").log).read_text()
    assert netplay(svc, "logs", "server/http", "-n", "1").stdout.count("\n") == 1
    assert "".join(svc.logs("server/http", lines=1)).count("\n") == 1
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


@pytest.mark.needs_playground
def test_a_service_that_never_becomes_healthy_fails_up_and_leaves_nothing() -> None:
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
        Playground.up(loads(broken), name=name)
    message = str(caught.value)
    assert "server/http did not start" in message and "500" in message
    assert "No module named 'no'" in message
    pins = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    assert not any(n.startswith(f"netplay-{name}-") for n in pins)
    assert name not in Playground.names()
    # its log stays for the user to read, and only that, until the next up or down
    kept = Path(caught.value.hint.split(" is ")[1].split(" until")[0])
    assert kept.name == "server.http.log" and "No module named 'no'" in kept.read_text()
    assert sorted(p.name for p in (Path("/run/netplay") / name).rglob("*")) == [
        "server.http.log",
        "services",
    ]
    assert Playground.remove(name) is None  # nothing was running...
    assert not (Path("/run/netplay") / name).exists()  # ...but the log is gone


@pytest.mark.parametrize(
    ("service", "field", "words"),
    [
        ('{ kind = "gopher", ports = [70] }', "services[0].kind", "no service kind 'gopher'"),
        ('{ kind = "http", engine = "nginx" }', "services[0].engine", "no engine 'nginx'"),
        ('{ kind = "http", color = "red" }', "services[0].color", "no option 'color'"),
        ('{ kind = "inetd", ports = [7] }', "services[0].command", "needs a command"),
        ('{ kind = "http", restart_limit = "x" }', "services[0].restart_limit", "an integer"),
        ('{ kind = "inetd", ports = [7], command = ["cat"] }', "hosts.b.services[0]", "no address"),
        ('{ kind = "http", threads = 0 }', "services[0].threads", "at least 1"),
        ('{ kind = "http", health_timeout = 0 }', "services[0].health_timeout", "at least 0.1"),
        ('{ kind = "http", restart_limit = -1 }', "services[0].restart_limit", "at least 0"),
        (
            '{ kind = "inetd", ports = [7], command = ["cat"], max_children = 0 }',
            "services[0].max_children",
            "at least 1",
        ),
        (
            '{ kind = "inetd", ports = [7], command = ["no-such-program"] }',
            "services[0].command",
            "there is no program 'no-such-program'",
        ),
        ('{ kind = "http", apps = { "x" = "m:a" } }', "services[0].apps.x", "maps a path"),
        ('{ kind = "dns", ports = [5353] }', "services[0].ports", "port 53"),
        (
            '{ kind = "http" }, { kind = "echo", name = "web", ports = [80] }',
            "services[1].ports",
            "tcp/80 is taken by a/http",
        ),
        ('{ kind = "dns" }, { kind = "dns", name = "two" }', "services[1]", "one DNS server"),
    ],
)
@pytest.mark.needs_playground
def test_bad_service_declarations_are_refused_before_anything_is_made(
    service: str, field: str, words: str
) -> None:
    hosts = {"a": "", "b": "", "c": ""}  # b is attached to nothing
    hosts["b" if "hosts.b" in field else "a"] = f"services = [{service}]\n"
    text = 'name = "bad"\n' + "".join(f"[hosts.{h}]\n{body}" for h, body in hosts.items())
    text += '[lans.l]\nhosts = { a = ["10.0.0.1/24"], c = ["10.0.0.2/24"] }\n'
    name = f"bad{os.getpid()}"
    with pytest.raises(TopologyError) as caught:
        Playground.up(loads(text, source="bad.toml"), name=name)
    assert field in str(caught.value) and words in str(caught.value)
    assert not (Path("/run/netplay") / name).exists()


ECHO_ONLY = loads(
    """
[hosts.server]
services = [{ kind = "echo" }]
[lans.lan.hosts]
server = ["10.9.0.1/24"]
"""
)


def test_services_hold_nothing_of_the_process_that_made_them(
    playground_factory: Callable[..., Playground],
) -> None:
    """A socket the test process had open when it made the playground is not
    held by the service's runner or server (the test can close it for good)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        ours = f"socket:[{os.fstat(listener.fileno()).st_ino}]"
        pg = playground_factory(ECHO_ONLY)
        server = pg.service("server/echo").pid
        runner = pg.state.runners["server/echo"].pid
        for pid in (runner, server):
            held = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
            assert ours not in held, f"pid {pid} holds the test's socket"


def test_services_run_in_the_root_directory_wherever_up_was_run(
    playground_factory: Callable[..., Playground],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As daemons do, a runner and its server work in /, not in the directory
    the playground was made from (which they would hold, and where granian
    would look for its application: in a Python package's directory, it
    sought ``PACKAGE.netplay.www``)."""
    (tmp_path / "__init__.py").touch()
    monkeypatch.chdir(tmp_path)
    pg = playground_factory(loads(BOOK_WWW))
    server = pg.service("www/http").pid
    assert server is not None
    for pid in (pg.state.runners["www/http"].pid, server):
        assert os.readlink(f"/proc/{pid}/cwd") == "/"


def test_up_from_a_directory_since_deleted(
    playground_factory: Callable[..., Playground],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the working directory is gone, the services start all the same,
    and a program entering a host starts in its root."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    pg = playground_factory(loads(BOOK_WWW))
    assert pg.service("www/http").state is ServiceState.RUNNING
    assert pg.host("www").run(["pwd"], check=True).stdout == "/\n"


def test_the_umask_of_whoever_made_the_playground_is_not_the_hosts(
    playground_factory: Callable[..., Playground],
) -> None:
    """Made with umask 077, a playground's hosts still let every user read
    their /etc/hosts, /etc/resolv.conf and CA bundles (else only root could
    resolve a name or verify a certificate in them), and its runners and
    servers have systemd's default umask, as daemons do."""
    before = os.umask(0o077)
    try:
        pg = playground_factory(loads(BOOK_WWW))
    finally:
        os.umask(before)
    for pid in (pg.state.runners["www/http"].pid, pg.service("www/http").pid):
        assert "\nUmask:\t0022\n" in Path(f"/proc/{pid}/status").read_text()
    read = ["/etc/hosts", "/etc/resolv.conf", *map(str, pki.trust_targets())]
    modes = pg.host("www").run(["stat", "-c", "%a %n", *read], check=True).stdout.splitlines()
    assert len(modes) == len(read) and all(line.startswith("644 ") for line in modes), modes


def test_up_from_a_minimal_environment(tmp_path: Path) -> None:
    """From an environment of PATH alone (a cron job, a service unit, env -i),
    where netplay's own change to PATH moves the environment's first entry:
    every server still starts, memcached and granian among them, which
    name their processes after the runner's name for them, and ``ps``
    shows the runners' and servers' names."""
    name = f"minimal{os.getpid()}"
    both = BOOK_WWW.replace('{ kind = "http" }', '{ kind = "http" }, { kind = "memcached" }')
    env = {"PATH": "/usr/bin:/bin", "NETPLAY_DATA_DIR": os.environ["NETPLAY_DATA_DIR"]}
    try:
        up = _up_from_the_command_line(tmp_path, name, both, env=env, capture_output=True)
        assert up.returncode == 0, up.stderr
        pg = Playground.attach(name)
        for service in ("www/http", "www/memcached"):
            server = pg.service(service).pid
            assert server is not None
            for pid, role in ((pg.state.runners[service].pid, "runner"), (server, "server")):
                shown = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
                assert shown == f"netplay: {name} {service} {role}"
    finally:
        Playground.remove(name, purge=True)


def test_up_with_its_standard_fds_closed(tmp_path: Path) -> None:
    """Started with stdin, stdout and stderr closed (as some supervisors
    start a program), ``up`` makes the playground all the same: what it
    opens does not take their numbers, and what it would print is lost."""
    name = f"closed{os.getpid()}"

    def close_all() -> None:
        for fd in (0, 1, 2):
            os.close(fd)

    try:
        up = _up_from_the_command_line(tmp_path, name, BOOK_WWW, preexec_fn=close_all)
        assert up.returncode == 0
        assert Playground.attach(name).service("www/http").state is ServiceState.RUNNING
    finally:
        Playground.remove(name, purge=True)


def _up_from_the_command_line(
    tmp_path: Path, name: str, topology: str, **run: Any
) -> subprocess.CompletedProcess[str]:
    """``netplay up FILE --name NAME --detach`` of ``topology``, in a process
    started as ``run`` says (its environment, its fds)."""
    spec = tmp_path / f"{name}.toml"
    spec.write_text(topology)
    argv = [sys.executable, "-m", "netplay", "up", str(spec), "--name", name, "--detach"]
    return subprocess.run(argv, text=True, timeout=60, check=False, **run)


def test_a_killed_runner_takes_its_server_along(
    playground_factory: Callable[..., Playground],
) -> None:
    """The server (granian, and the worker it forked) dies with its runner,
    and status says so rather than leaving a server holding the port."""
    pg = playground_factory(loads(BOOK_WWW))
    server = pg.service("www/http").pid
    assert server is not None
    group = [int(p) for p in os.listdir("/proc") if p.isdigit() and _group_of(int(p)) == server]
    assert len(group) >= 2  # granian's main process and its worker
    os.kill(pg.state.runners["www/http"].pid, signal.SIGKILL)
    wait_until(lambda: not any(alive(pid, None) for pid in group), timeout=5, what="all end")
    now = pg.service("www/http")
    assert (now.state, now.pid, now.reason) == (ServiceState.STOPPED, None, "its runner is gone")


BOOK_WWW = """
[hosts.www]
services = [{ kind = "http" }]
[lans.lan.hosts]
www = ["10.9.0.4/24"]
"""


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None

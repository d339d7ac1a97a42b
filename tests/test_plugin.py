"""netplay.testing as a user meets it: small test suites run by pytester with the plugin.

Each suite runs in a pytest of its own (a subprocess, as a user's would),
and the outcomes are checked: the fixtures work, a fresh playground sees
nothing of what the test before it did, a session killed in the middle
leaves what the next session removes, and a machine that cannot build
playgrounds skips their tests with the reason.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from netplay import Playground
from netplay.fabric import Paths, read_state
from netplay.testing import wait_until

pytestmark = pytest.mark.needs_playground

FIXTURES = r"""
import ssl, socket, subprocess, sys
import pytest
from netplay import CableFaults, Playground
from netplay.topology import loads

def test_shared_is_book_and_shared(shared_playground):
    assert shared_playground.topology.name == "book"
    assert shared_playground.host("h1").run(["ping", "-c1", "-W2", "www"]).returncode == 0

def test_shared_again(shared_playground, request):
    assert shared_playground.name.endswith("s0")  # one playground for the session

def test_fresh_spawn_and_a_fault(playground, spawn, link_fault):
    web = [sys.executable, "-m", "http.server", "8000"]
    spawn(playground.host("www"), web, ready=8000)
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://www:8000/"]
    got = playground.host("h1").run(curl)
    assert got.stdout == "200"
    assert link_fault(playground, "modemA", "isp", loss="100%") == CableFaults(loss=100.0)
    assert playground.host("h1").run(["ping", "-c1", "-W1", "10.130.1.4"]).returncode != 0

def test_the_fault_was_cleared(shared_playground, link_fault):
    link_fault(shared_playground, "modemA", "isp", down=True)

def test_after_the_cleared_fault(shared_playground):
    assert shared_playground.status().faults == {}

def test_the_ca_verifies_www(playground, playground_ca):
    context = ssl.create_default_context(cafile=str(playground_ca))
    assert playground_ca == playground.ca
    probe = [sys.executable, "-c",
             "import ssl, socket; c = ssl.create_default_context(); "
             "s = c.wrap_socket(socket.create_connection(('www', 443), timeout=5), "
             "server_hostname='www.example.com'); print(s.version())"]
    assert playground.host("h1").run(probe).stdout.startswith("TLS")
    assert context.cert_store_stats()["x509_ca"] == 1

@pytest.mark.netplay_topology("line:3", services=False)
def test_marked_topology(playground):
    assert [h.name for h in playground.hosts] == ["h1", "h2", "h3"]
    assert playground.services() == ()
    assert playground.host("h1").run(["ping", "-c1", "-W2", "10.64.0.3"]).returncode == 0

def test_a_topology_built_in_python(playground_factory):
    two = loads('[hosts.a]\n[hosts.b]\n[lans.l.hosts]\na = ["10.1.0.1/24"]\nb = ["10.1.0.2/24"]')
    first, second = playground_factory(two), playground_factory("star:2", services=False)
    assert first.name != second.name
    assert first.host("a").run(["ping", "-c1", "-W2", "10.1.0.2"]).returncode == 0
"""

ISOLATION = r"""
import subprocess, sys

PORT = 7000

def test_one_leaves_things_behind(playground):
    www = playground.host("www")
    www.popen([sys.executable, "-m", "http.server", str(PORT)])      # never stopped
    www.run(["ip", "addr", "add", "10.130.1.99/24", "dev", "eth0"], check=True)
    www.run(["nft", "add", "table", "inet", "leftover"], check=True)
    www.run(["sysctl", "-w", "net.ipv4.ip_default_ttl=5"], check=True)
    www.run(["sh", "-c", "echo left > /etc/leftover"], check=True)    # in www's own /etc
    playground.link("modemA", "isp", loss="100%")                    # never cleared

def test_two_sees_none_of_it(playground):
    www = playground.host("www")
    assert "10.130.1.99" not in www.run(["ip", "-o", "addr"]).stdout
    assert "leftover" not in www.run(["nft", "list", "tables"]).stdout
    assert www.run(["sysctl", "-n", "net.ipv4.ip_default_ttl"]).stdout == "64\n"
    assert www.run(["test", "-e", "/etc/leftover"]).returncode == 1
    assert playground.status().faults == {}
    assert playground.host("h1").run(["ping", "-c1", "-W2", "www"]).returncode == 0
    connect = f"import socket; socket.create_connection(('127.0.0.1', {PORT}), timeout=2)"
    probe = [sys.executable, "-c", connect]
    assert www.run(probe).returncode != 0
"""

KILLED = """
import time

def test_sleeps_with_a_playground(playground, shared_playground):
    print("PLAYGROUNDS", playground.name, shared_playground.name, flush=True)
    time.sleep(300)
"""

ANY_SESSION = """
def test_uses_a_playground(playground):
    assert playground.host("h1").run(["true"]).returncode == 0
"""


FAILED_UP = """
from pathlib import Path
import pytest
from netplay import ServiceError
from netplay.topology import loads

BROKEN = \"\"\"
[hosts.server]
services = [{ kind = "http", apps = { "/" = "no.such.module:app" }, health_timeout = 1 }]
[lans.lan.hosts]
server = ["10.9.0.1/24"]
\"\"\"

def test_a_service_that_does_not_start(playground_factory):
    with pytest.raises(ServiceError) as caught:
        playground_factory(loads(BROKEN))
    log = Path(caught.value.hint.split(" is ")[1].split(" until")[0])
    assert "500" in str(caught.value) and log.exists()
    Path("kept-log").write_text(str(log))
"""


def _outcomes(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k in ("passed", "failed", "errors")}


def test_the_fixtures_in_a_user_s_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=FIXTURES)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=300)
    assert _outcomes(result) == {"passed": 8}, result.stdout.str()


def test_a_fresh_playground_sees_nothing_of_the_test_before(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_isolation=ISOLATION)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=300)
    assert _outcomes(result) == {"passed": 2}, result.stdout.str()


def test_the_log_of_an_up_that_failed_goes_with_the_session(pytester: pytest.Pytester) -> None:
    """An ``up`` that fails keeps its services' logs for the user to read (its
    message names them), until the next ``up`` of that name; in a session, the
    session's end is the last chance."""
    pytester.makepyfile(test_failed_up=FAILED_UP)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=120)
    assert _outcomes(result) == {"passed": 1}, result.stdout.str()
    log = Path((pytester.path / "kept-log").read_text())
    assert not log.exists() and not log.parent.parent.exists()


def test_a_killed_session_is_cleaned_up_by_the_next(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_killed=KILLED)
    killed = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "-q", "test_killed.py"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert killed.stdout is not None
    line = wait_until(lambda: _playgrounds_line(killed), timeout=60, what="the playgrounds")
    names = line.split()[1:]
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    left = {name: read_state(Paths.of(name)) for name in names}
    assert all(state is not None and state.tag == "netplay.testing" for state in left.values())
    data = {Path(state.data).parent for state in left.values() if state is not None}
    assert all(path.exists() for path in data)
    pytester.makepyfile(test_next=ANY_SESSION)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "test_next.py")
    assert _outcomes(result) == {"passed": 1}, result.stdout.str()
    assert not set(names) & set(Playground.names())
    assert not any(path.exists() for path in data)


def _playgrounds_line(proc: subprocess.Popen[str]) -> str | None:
    assert proc.stdout is not None and proc.poll() is None, "the session ended early"
    line = proc.stdout.readline()
    return line if line.startswith("PLAYGROUNDS") else None


def test_where_playgrounds_cannot_be_built_their_tests_skip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_skipped="""
        import pytest

        def test_pure():
            pass

        def test_fresh(playground):
            pass

        @pytest.mark.needs_playground
        def test_builds_its_own():
            pass
        """
    )
    pytester.makeconftest(
        """
        from netplay.testing import _environment
        _environment.TOOLS = (("no-such-tool-here", "its-package"),)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    assert result.parseoutcomes() == {"passed": 1, "skipped": 2}, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*no-such-tool-here is not installed (apt-get install its-package)*"]
    )


def test_the_plugin_is_registered_for_every_pytest(pytester: pytest.Pytester) -> None:
    listed = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    for fixture in ("shared_playground", "playground_factory", "spawn", "link_fault"):
        listed.stdout.fnmatch_lines([f"{fixture}*"])
    listed.stdout.fnmatch_lines(
        ["playground -- *", "    A fresh playground of the marked topology*"]
    )


def _examples() -> list[str]:
    """The ```python blocks of docs/testing.md."""
    text = (Path(__file__).parent.parent / "docs" / "testing.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


@pytest.mark.parametrize("number", range(len(_examples())))
def test_every_example_of_the_docs_runs(pytester: pytest.Pytester, number: int) -> None:
    pytester.makepyfile(**{f"test_example{number}": _examples()[number]})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=300)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1 and set(outcomes) == {"passed"}, result.stdout.str()

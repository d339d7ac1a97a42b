"""`netplay ssh`: OpenSSH's client from the machine into a host, no prompts.

A playground of three hosts on one LAN: ``www`` runs ssh on port 22, ``alt``
on port 2222, ``plain`` none; its users are brandon and ann.  Every command
runs as the command line does, in a process of its own.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from netplay import Playground
from netplay.cli._ssh import client_argv
from netplay.topology import loads

NETPLAY = [sys.executable, "-m", "netplay"]
TOPOLOGY = loads(
    """
name = "sshcli"
domain = "sshcli.test"

[hosts.www]
services = [{ kind = "ssh" }]

[hosts.alt]
services = [{ kind = "ssh", ports = [2222] }]

[hosts.plain]

[lans.lan.hosts]
www = ["10.7.0.1/24", "fd00:7::1/64"]
alt = ["10.7.0.2/24"]
plain = ["10.7.0.3/24"]

[users.brandon]
password = "abc123"

[users.ann]
password = "ann-s3cret"
""",
    source="test_cli_ssh",
)
NO_USERS = loads(
    """
name = "sshnousers"

[hosts.www]
services = [{ kind = "ssh" }]

[lans.lan.hosts]
www = ["10.7.0.1/24"]
""",
    source="test_cli_ssh",
)
ROOT = os.geteuid() == 0  # rootless, a session runs as the one user mapped (root in it)

pytestmark = pytest.mark.netplay_topology(TOPOLOGY)


def netplay(pg: Playground, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NETPLAY, args[0], "--name", pg.name, *args[1:]],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("netplay: "), result.stderr
    return lines[0]


@pytest.fixture
def pg(shared_playground: Playground) -> Playground:
    return shared_playground


def _client_dir(pg: Playground) -> Path:
    return Path(pg.state.data) / "ssh"


# -- running commands ----------------------------------------------------------


def test_a_command_runs_as_the_topology_s_first_user(pg: Playground) -> None:
    done = netplay(pg, "ssh", "www", "--", "id", "-un")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("brandon\n" if ROOT else "root\n")
    said = netplay(pg, "ssh", "www", "--", "sh", "-c", 'echo "$USER $HOME $(hostname)"')
    assert said.stdout == "brandon /home/brandon www\n", said.stderr


def test_the_exit_status_and_stdin_pass_through(pg: Playground) -> None:
    assert netplay(pg, "ssh", "www", "--", "sh", "-c", "exit 3").returncode == 3
    echoed = netplay(pg, "ssh", "www", "--", "cat", stdin="through ssh\n")
    assert (echoed.returncode, echoed.stdout) == (0, "through ssh\n")


def test_one_word_is_a_shell_line_several_are_an_argv(pg: Playground) -> None:
    line = netplay(pg, "ssh", "www", "-u", "ann", "--", "cd /tmp && pwd; echo $HOME")
    assert line.stdout == "/tmp\n/home/ann\n", line.stderr
    words = netplay(pg, "ssh", "www", "--", "printf", "%s|", "a b", "$HOME", "it's")
    assert words.stdout == "a b|$HOME|it's|", words.stderr
    bare = netplay(pg, "ssh", "www", "hostname")  # no --
    assert bare.stdout == "www\n", bare.stderr


def test_options_after_the_host_and_another_user(pg: Playground) -> None:
    for args in (
        ["-u", "ann", "www"],
        ["www", "-u", "ann"],
        ["www", "--user=ann"],
        ["www", "-uann"],
    ):
        done = netplay(pg, "ssh", *args, "--", "sh", "-c", 'echo "$USER $PWD"')
        assert done.stdout == "ann /home/ann\n", (args, done.stderr)
    if ROOT:
        uid = pg.host("www").run(["id", "-u", "ann"], check=True).stdout
        assert netplay(pg, "ssh", "www", "-u", "ann", "--", "id", "-u").stdout == uid


def test_a_service_on_another_port(pg: Playground) -> None:
    done = netplay(pg, "ssh", "alt", "--", "sh", "-c", "hostname; echo ${SSH_CONNECTION##* }")
    assert done.stdout == "alt\n2222\n", done.stderr


def test_without_a_command_an_interactive_session_on_a_tty(pg: Playground) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execv(sys.executable, [*NETPLAY, "ssh", "--name", pg.name, "www"])
    seen = b""
    try:
        deadline = time.monotonic() + 30
        sent = False
        while time.monotonic() < deadline:
            if not sent and b"$ " in seen:  # bash's prompt, on the session's pty
                os.write(fd, b"tty; echo MARK-$((6*7)); exit 5\n")
                sent = True
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # the session ended: EIO
                    break
                if not data:
                    break
                seen += data
    finally:
        _pid, status = os.waitpid(pid, 0)
        os.close(fd)
    text = seen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 5, text
    assert "/dev/pts/" in text and "MARK-42" in text


# -- what it keeps -------------------------------------------------------------


def test_known_hosts_lists_each_ssh_host_with_its_kept_keys(pg: Playground) -> None:
    printed = netplay(pg, "ssh", "--known-hosts")
    assert printed.returncode == 0, printed.stderr
    known = Path(printed.stdout.strip())
    assert known == _client_dir(pg) / "known_hosts"
    lines = [line.split() for line in known.read_text().splitlines()]
    kept = Path(pg.state.data) / "services"
    for host, patterns in {
        "www": "www,www.sshcli.test,10.7.0.1,fd00:7::1",
        "alt": "[alt]:2222,[alt.sshcli.test]:2222,[10.7.0.2]:2222",
    }.items():
        for name in ("ssh_host_ed25519_key.pub", "ssh_host_ecdsa_key.pub"):
            key = (kept / host / "ssh" / name).read_text().split()[:2]
            assert [patterns, *key] in lines, (host, name, lines)
    assert len(lines) == 4  # plain runs no ssh
    assert not any("plain" in line[0] for line in lines)


def test_the_key_is_kept_private_and_authorized_once(pg: Playground) -> None:
    for _ in range(2):
        assert netplay(pg, "ssh", "www", "--", "true").returncode == 0
    printed = netplay(pg, "ssh", "--key")
    assert printed.returncode == 0, printed.stderr
    key = Path(printed.stdout.strip())
    assert key == _client_dir(pg) / "id_ed25519"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    blob = key.with_name("id_ed25519.pub").read_text().split()[1]
    www = pg.host("www")
    keys = www.run(["cat", "/home/brandon/.ssh/authorized_keys"], check=True).stdout
    assert keys.count(blob) == 1
    shown = www.run(["stat", "-c", "%U %a", "/home/brandon/.ssh/authorized_keys"], check=True)
    assert shown.stdout == ("brandon 600\n" if ROOT else "root 600\n")


def test_key_with_a_host_authorizes_it_there_for_the_user(pg: Playground) -> None:
    www = pg.host("www")
    www.run(["rm", "-rf", "/home/ann/.ssh"], check=True)
    printed = netplay(pg, "ssh", "--key", "www", "-u", "ann")
    assert printed.stdout == f"{_client_dir(pg) / 'id_ed25519'}\n", printed.stderr
    blob = Path(printed.stdout.strip()).with_name("id_ed25519.pub").read_text().split()[1]
    keys = www.run(["cat", "/home/ann/.ssh/authorized_keys"], check=True).stdout
    assert keys.count(blob) == 1
    if ROOT:
        shown = www.run(["stat", "-c", "%U %a", "/home/ann/.ssh"], check=True).stdout
        assert shown == "ann 700\n"


def test_the_client_trusts_only_the_playground_s_known_hosts() -> None:
    argv = client_argv(
        user="ann",
        address="10.7.0.1",
        port=22,
        key=Path("/k"),
        known_hosts=Path("/kh"),
        command=["sh", "-c", "exit 3"],
    )
    joined = " ".join(argv)
    for option in (
        "-F none",
        "-i /k",
        "-l ann",
        "StrictHostKeyChecking=yes",
        "UserKnownHostsFile=/kh",
        f"GlobalKnownHostsFile={os.devnull}",
        "BatchMode=yes",
        "IdentitiesOnly=yes",
        "IdentityAgent=none",
    ):
        assert option in joined
    assert argv[-3:] == ["10.7.0.1", "--", "sh -c 'exit 3'"]
    interactive = client_argv(
        user="ann", address="a", port=2222, key=Path("/k"), known_hosts=Path("/kh"), command=[]
    )
    assert interactive[-1] == "a" and "BatchMode=yes" not in interactive
    assert "-p 2222" in " ".join(interactive)


# -- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (["h9", "--", "true"], 7, "no host 'h9'"),
        (["plain", "--", "true"], 12, "runs no ssh service (hosts that do: www, alt)"),
        (["www", "-u", "carol", "--", "true"], 2, "no user 'carol' (its users: brandon, ann)"),
        (["www", "-u", "root", "--", "true"], 2, "no user 'root'"),
        (["www", "-u"], 2, "-u needs a value"),
        (["www", "--bogus", "--", "true"], 2, "unknown option --bogus"),
        ([], 2, "no host given"),
        (["--key", "www", "--", "true"], 2, "take no command"),
    ],
)
def test_errors_are_one_sentence(pg: Playground, args: list[str], status: int, says: str) -> None:
    done = netplay(pg, "ssh", *args)
    assert done.returncode == status, done.stderr
    assert says in one_line_error(done)


def test_a_stopped_service_says_how_to_start_it(pg: Playground) -> None:
    pg.control("www/ssh", "stop")
    try:
        done = netplay(pg, "ssh", "www", "--", "true")
    finally:
        pg.control("www/ssh", "start")
    assert done.returncode == 12
    assert "www/ssh is stopped (start it with `netplay service start www/ssh`)" in one_line_error(
        done
    )


def test_no_playground_running() -> None:
    done = subprocess.run(
        [*NETPLAY, "ssh", "--name", "nosuchssh", "www", "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 8
    assert "netplay up" in one_line_error(done)


def test_a_topology_without_users(playground_factory: Callable[..., Playground]) -> None:
    pg = playground_factory(NO_USERS)
    done = netplay(pg, "ssh", "www", "--", "true")
    assert done.returncode == 2
    assert re.search(r"has no users to log in as \(declare one", one_line_error(done))

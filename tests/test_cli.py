"""The netplay command: exit statuses, one-line errors, exec, status, link and the console."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netplay import MissingToolError, Playground

NETPLAY = [sys.executable, "-m", "netplay"]


def netplay(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NETPLAY, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error is one line, starts with 'netplay: ', and has no traceback."""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("netplay: ")
    return lines[0]


def test_usage_errors_exit_2() -> None:
    for args in (["frobnicate"], ["link", "h1"], ["up", "--bogus"]):
        result = netplay(*args)
        assert result.returncode == 2
        assert "--help" in one_line_error(result)


def test_bad_topology_exits_6_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[hosts.a]\nforward = "yes"\n')
    result = netplay("up", str(bad))
    assert result.returncode == 6
    line = one_line_error(result)
    assert f"{bad}:3" in line and "forward" in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("this is not toml\n")
    result = netplay("--debug", "up", str(bad))
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "TopologyError" in result.stderr


def test_nothing_running_exits_8() -> None:
    result = netplay("exec", "--name", "nosuchplayground", "h1", "--", "true")
    assert result.returncode == 8
    assert "netplay up" in one_line_error(result)


def test_missing_nft_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(MissingToolError) as caught:
        Playground.up("book", name="nonft")
    assert caught.value.exit_status == 4
    assert "nftables" in f"{caught.value} {caught.value.hint}"


@pytest.fixture(scope="module")
def cli_playground() -> Iterator[str]:
    """A playground started with `netplay up --detach`, removed with `netplay down`."""
    name = f"cli{os.getpid()}"
    up = netplay("up", "--detach", "--name", name)
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith(f"playground {name} is up: 12 hosts in ")
    try:
        yield name
    finally:
        down = netplay("down", "--name", name)
        assert down.returncode == 0 and down.stdout == f"playground {name} removed\n"


@pytest.mark.needs_playground
def test_exec_passes_stdin_stdout_and_status(cli_playground: str) -> None:
    echo = netplay("exec", "--name", cli_playground, "h1", "--", "cat", stdin="hello\n")
    assert (echo.returncode, echo.stdout) == (0, "hello\n")
    status = netplay("exec", "--name", cli_playground, "h1", "--", "sh", "-c", "exit 3")
    assert status.returncode == 3
    env = netplay("exec", "--name", cli_playground, "www", "--", "printenv", "NETPLAY_HOST")
    assert env.stdout == "www\n"


@pytest.mark.needs_playground
def test_exec_errors(cli_playground: str) -> None:
    unknown = netplay("exec", "--name", cli_playground, "h9", "--", "true")
    assert unknown.returncode == 7
    assert "h9" in one_line_error(unknown)
    missing = netplay("exec", "--name", cli_playground, "h1", "--", "no-such-program")
    assert missing.returncode == 9
    assert "no-such-program" in one_line_error(missing)
    empty = netplay("exec", "--name", cli_playground, "h1")
    assert empty.returncode == 2
    after = netplay("exec", "h1", "--name", cli_playground, "--", "hostname")
    assert after.stdout == "h1\n", after.stderr  # --name may follow the host
    joined = netplay("exec", "h1", f"--name={cli_playground}", "--", "hostname")
    assert joined.stdout == "h1\n", joined.stderr


@pytest.mark.needs_playground
def test_second_up_with_the_same_name_exits_5(cli_playground: str) -> None:
    again = netplay("up", "--detach", "--name", cli_playground)
    assert again.returncode == 5
    assert "already running" in one_line_error(again)


@pytest.mark.needs_playground
def test_status_and_list(cli_playground: str) -> None:
    text = netplay("status", "--name", cli_playground)
    assert text.returncode == 0
    for word in ("h1", "192.168.1.11/24", "modemA", "10.25.1.65/16", "www", "10.130.1.4/24"):
        assert word in text.stdout
    described = json.loads(netplay("status", "--name", cli_playground, "--json").stdout)
    mode = "root" if os.geteuid() == 0 else "rootless"
    assert (described["schema"], described["name"], described["mode"]) == (1, cli_playground, mode)
    dns = next(s for s in described["services"] if s["id"] == "backbone/dns")
    assert (dns["kind"], dns["listens"], dns["state"]) == ("dns", ["udp/53", "tcp/53"], "running")
    assert "backbone/dns" in text.stdout and "www/https" in text.stdout
    h1 = next(h for h in described["hosts"] if h["name"] == "h1")
    assert h1["interfaces"][0]["state"] == "up"
    assert "192.168.1.11/24" in h1["interfaces"][0]["addresses"]
    listed = netplay("list")
    assert cli_playground in listed.stdout and "running" in listed.stdout


@pytest.mark.needs_playground
def test_link_faults_from_the_command_line(cli_playground: str) -> None:
    name = ["--name", cli_playground]
    lossy = netplay("link", *name, "modemA", "isp", "--loss", "20%")
    assert lossy.returncode == 0 and "loss 20%" in lossy.stdout
    shown = netplay("link", *name, "modemA", "isp")
    assert "loss 20%" in shown.stdout
    cleared = netplay("link", *name, "modemA", "isp", "--clear")
    assert cleared.returncode == 0 and "loss" not in cleared.stdout
    nonsense = netplay("link", *name, "modemA", "isp", "--loss", "lots")
    assert nonsense.returncode == 2
    one_line_error(nonsense)
    unconnected = netplay("link", *name, "h1", "www", "--down")
    assert unconnected.returncode != 0
    one_line_error(unconnected)


@pytest.mark.needs_playground
def test_console_runs_commands_and_tears_down_on_exit() -> None:
    name = f"con{os.getpid()}"
    script = "hosts\nh1 hostname\nlink modemA isp --rate 1mbit\nstatus\nbogus\nexit\n"
    result = netplay("up", "--name", name, stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "h1 h2 h3 h4 modemA modemB isp backbone example ftp mail www" in out
    assert "> h1\n" in out  # hostname, after the prompt
    assert "rate 1mbit" in out
    assert "unknown command or host 'bogus'" in out
    assert name not in netplay("list").stdout


@pytest.mark.needs_playground
def test_console_end_of_input_tears_down() -> None:
    name = f"eof{os.getpid()}"
    result = netplay("up", "--name", name, stdin="h2 hostname\n")
    assert result.returncode == 0, result.stderr
    assert "h2\n" in result.stdout
    assert name not in netplay("list").stdout


def test_debug_anywhere_keeps_the_exit_status() -> None:
    for args in (
        ["--debug", "status", "--name", "nosuch"],
        ["status", "--name", "nosuch", "--debug"],
    ):
        result = netplay(*args)
        assert result.returncode == 8, result.stderr  # not running, as without --debug
        assert "Traceback" in result.stderr and result.stderr.rstrip().endswith(
            "(start one with: netplay up --detach)"
        )


@pytest.mark.parametrize(
    "args",
    [
        ["up", "--name", ""],
        ["down", "--name", ""],
        ["logs", "www/http", "-n", "-5"],
    ],
)
def test_misuses_are_refused_in_one_sentence(args: list[str]) -> None:
    result = netplay(*args)
    assert result.returncode == 2, result.stderr
    one_line_error(result)


@pytest.mark.needs_playground
def test_a_link_of_a_host_to_itself_is_refused(cli_playground: str) -> None:
    result = netplay("link", "--name", cli_playground, "h1", "h1", "--loss", "5%")
    assert result.returncode == 2
    assert "h1 and h1 are one" in one_line_error(result)

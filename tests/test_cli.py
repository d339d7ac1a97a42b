"""The netplay command: exit statuses, one-line errors, exec, status, link and the console."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netplay import MissingToolError, Playground, fabric, to_data

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


def test_a_topology_named_as_no_playground_may_be_says_to_choose_a_name(tmp_path: Path) -> None:
    spec = tmp_path / "bök.toml"  # no name key: the file's name is the topology's
    spec.write_text('[hosts.one]\n[lans.lan.hosts]\none = ["10.9.0.1/24"]\n')
    result = netplay("up", str(spec), "--detach")
    assert result.returncode == 2
    said = one_line_error(result)
    assert "'bök' is not a valid playground name: the topology's name" in said
    assert "choose one with --name" in said


def test_a_plain_install_has_what_the_book_and_the_readme_use() -> None:
    """./install.sh without --test installs the daemon the book's www runs
    (memcached), OpenSSH's client for ``netplay ssh`` and the clients of the
    README's first commands: CI installs with --test, so it would not see one
    of them missing."""
    script = (Path(__file__).parent.parent / "install.sh").read_text()
    first = re.search(r'^packages="([^"]*)"$', script, re.MULTILINE)
    assert first is not None
    wanted = {"memcached", "openssh-client", "curl", "traceroute", "swaks", "bind9-dnsutils"}
    assert wanted <= set(first.group(1).split())


@pytest.mark.needs_playground
def test_in_hosts_python3_is_the_python_netplay_runs_with(
    cli_playground: str, tmp_path: Path
) -> None:
    """Installed in a virtual environment (./install.sh), netplay puts it first on
    PATH for what it runs in hosts, however `netplay` itself was found."""
    venv = tmp_path / "venv"  # this interpreter's packages, seen from a venv of its own
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60
    )
    # --system-site-packages would name the base interpreter's, not those of a
    # venv this test runs in (CI's); site.addsitedir also reads their .pth files
    (own,) = venv.glob("lib/python*/site-packages")
    dirs = ", ".join(repr(d) for d in site.getsitepackages())
    (own / "parent.pth").write_text(f"import site; list(map(site.addsitedir, ({dirs},)))\n")
    probe = "import sys, netplay; print(sys.prefix)"
    argv = [str(venv / "bin" / "python"), "-m", "netplay", "exec", "--name", cli_playground]
    result = subprocess.run(
        [*argv, "h1", "--", "python3", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": "/usr/bin:/bin"},  # as sudo or a bare login would have it
    )
    assert (result.returncode, result.stdout) == (0, f"{venv}\n"), result.stderr


@pytest.mark.needs_playground
def test_exec_passes_stdin_stdout_and_status(cli_playground: str) -> None:
    echo = netplay("exec", "--name", cli_playground, "h1", "--", "cat", stdin="hello\n")
    assert (echo.returncode, echo.stdout) == (0, "hello\n")
    status = netplay("exec", "--name", cli_playground, "h1", "--", "sh", "-c", "exit 3")
    assert status.returncode == 3
    env = netplay("exec", "--name", cli_playground, "www", "--", "printenv", "NETPLAY_HOST")
    assert env.stdout == "www\n"
    # signals as a shell leaves them, not as Python does: yes ends on SIGPIPE, quietly
    piped = netplay("exec", "--name", cli_playground, "h1", "--", "sh", "-c", "yes | head -1")
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, "y\n", "")


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
            "(start it with: netplay up --detach --name nosuch)"
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


# -- the misuse table ----------------------------------------------------------
#
# Each row is a wrong command line, the exit status it must end with (the one
# README.md and netplay.errors document: 2 usage, 6 bad topology, 7 unknown
# host, 8 not running, 9 command failed, 12 service; never 70) and, where it
# matters, a piece the one-line error must contain.  Every run has empty stdin
# (a console that starts by mistake ends at once), and afterwards nothing of a
# playground it names may exist.  In the arguments, {pg} is the running
# playground of `cli_playground` and {files} a directory of odd files
# (`misuse_files`).  The rows of one table run concurrently, to keep it fast,
# except those of `link`, which run one by one and must change nothing.

MISUSE_TIMEOUT_S = 5.0  # a misuse is refused at once; this is for one that hangs
NOT_RUNNING = "misuse-none"  # a playground name that is never running
NEWLINE_NAME = "misusenl\n"  # passes a `^...$` check, which allows a final newline


@dataclass(frozen=True, slots=True)
class Misuse:
    args: tuple[str, ...]
    status: int
    says: str = ""  # a piece of the one-line error, where that matters

    @property
    def id(self) -> str:
        plain = [a if a.isprintable() and a and " " not in a else repr(a) for a in self.args]
        shown = " ".join(plain) or "(nothing)"
        return shown if len(shown) <= 70 else f"{shown[:60]}...{len(shown)}"


def _params(*rows: Misuse) -> list[Any]:
    return [pytest.param(row, id=row.id) for row in rows]


def row(*args: str, status: int, says: str = "") -> Misuse:
    return Misuse(args, status, says)


LONG_NAME = "p" * 33  # one more than a name may have
NONE = ("--name", NOT_RUNNING)

WITHOUT_A_PLAYGROUND = [
    # the command line itself
    row(status=2, says="COMMAND"),
    row("frob\nnicate", status=2),
    row("--bogus", "status", *NONE, status=2, says="--bogus"),
    row("--name", NOT_RUNNING, "status", status=2),  # --name follows the command
    row("status", *NONE, "a\nb", status=2),  # an extra argument with a newline in it
    row("exec", "--name", NOT_RUNNING, "h1", "--", "true", "--debug", status=8),  # the command's
    # up: options, names, topologies
    row("up", "book", "extra", "--name", "misuse-x", status=2, says="extra"),
    row("up", "--name", status=2, says="--name"),
    row("up", "--name", "a/b", status=2, says="a/b"),
    row("up", "--name", LONG_NAME, status=2, says="at most 32"),
    row("up", "--name", "caf\u00e9", status=2),
    row("up", "--name", NEWLINE_NAME, "line:1", status=2, says="not a valid playground name"),
    row("up", "--name", "misuse-t1", "nosuch", status=6, says="book, line:N, star:N"),
    row("up", "--name", "misuse-t2", "", status=6, says="book, line:N, star:N"),
    row("up", "--name", "misuse-t3", "{files}/missing.toml", status=6, says="missing.toml"),
    row("up", "--name", "misuse-t4", "{files}/dir", status=6, says="/dir:"),
    row("up", "--name", "misuse-t5", "/dev/zero", status=6, says="/dev/zero"),
    row("up", "--name", "misuse-t6", "{files}/unreadable.toml", status=6, says="unreadable"),
    row("up", "--name", "misuse-t7", "{files}/fifo.toml", status=6, says="fifo.toml"),
    row("up", "--name", "misuse-t8", "{files}/no\nsuch.toml", status=6),
    row("up", "--name", "misuse-t9", "line:0", status=6, says="1 to"),
    row("up", "--name", "misuse-t10", "star:abc", status=6, says="1 to"),
    row("up", "--name", "misuse-t11", "line:99999999999999999999", status=6, says="1 to"),
    row("up", "--name", "misuse-t12", "line:\u00b2", status=6, says="1 to"),  # superscript two
    # down, list
    row("down", "--name", "../etc", status=2),
    row("down", "--name", NEWLINE_NAME, status=2, says="not a valid playground name"),
    row("list", "extra", status=2),
    # status, exec, shell on no playground, and their own arguments
    row("status", *NONE, status=8, says="netplay up"),
    row("status", "--name", NEWLINE_NAME, status=2, says="not a valid playground name"),
    row("exec", status=2, says="host"),
    row("exec", *NONE, "h1", status=2, says="no command"),
    row("exec", "h1", "--name", status=2, says="--name"),
    row("exec", *NONE, "h1", "--", "true", status=8),
    row("shell", status=2, says="host"),
    row("shell", *NONE, "h1", status=8),
    row("ssh", *NONE, status=2, says="no host"),
    row("ssh", *NONE, "www", status=8, says="netplay up"),
    row("ssh", *NONE, "www", "-u", status=2, says="-u needs a value"),
    row("ssh", *NONE, "www", "--bogus", "--", "id", status=2, says="--bogus"),
    row("ssh", *NONE, "--key", "www", "--", "id", status=2, says="no command"),
    # logs, service
    row("logs", status=2, says="service"),
    row("logs", *NONE, "www/http", status=8),
    row("logs", *NONE, "www/http", "-n", "abc", status=2, says="number of lines"),
    row("logs", *NONE, "www/http", "-n", "\u00b2", status=2, says="number of lines"),
    row("service", status=2),
    row("service", "bogus", "www/http", *NONE, status=2, says="restart"),
    row("service", "restart", "www/http", *NONE, status=8),
    # link, ca
    row("link", "modemA", "isp", "www", *NONE, status=2),
    row("link", "modemA", "isp", "--down", "--up", *NONE, status=2),
    row("link", "modemA", "isp", "--loss", *NONE, status=2, says="--loss"),
    row("link", "modemA", "isp", "--loss", "20%", *NONE, status=8),
    row("ca", *NONE, status=8, says="netplay up"),
    row("ca", "--host", "h1", "--client", *NONE, status=2),
    row("ca", "--host", *NONE, status=2),
]

ON_THE_PLAYGROUND = [
    row("up", "--detach", "--detach", "--name", "{pg}", status=5, says="already running"),
    row("exec", "--name", "{pg}", "h9", "--", "true", status=7, says="netplay status"),
    row("exec", "--name", "{pg}", "", "--", "true", status=7),
    row("exec", "--name", "{pg}", "../h1", "--", "true", status=7),
    row("exec", "--name", "{pg}", "h1\n", "--", "true", status=7),
    row("exec", "--name", "{pg}", "h1", "--", "", status=9),
    row("exec", "--name", "{pg}", "h1", "--", "/etc", status=9, says="/etc"),
    row("exec", "--name", "{pg}", "h1", "--", "{files}/notabin", status=9, says="notabin"),
    row("exec", "h1", "--namex", "{pg}", "--", "true", status=2, says="--namex"),
    row("shell", "--name", "{pg}", "h9", status=7),
    row("ssh", "--name", "{pg}", "h9", status=7, says="netplay status"),
    row("ssh", "--name", "{pg}", "../www", "--", "id", status=7),
    row("ssh", "--name", "{pg}", "www", "-u", "nobody", status=2, says="brandon"),
    row("logs", "--name", "{pg}", "www/nope", status=7, says="www/http"),
    row("logs", "--name", "{pg}", "../../etc/passwd", status=7),
    row("service", "restart", "--name", "{pg}", "www/nope", status=7, says="www/http"),
    row("service", "stop", "--name", "{pg}", "www", status=7),
    row("ca", "--name", "{pg}", "--host", "h9", status=7),
    row("ca", "--name", "{pg}", "--host", "", status=7),
    row("ca", "--name", "{pg}", "--host", "../ca", status=7),
    row("ca", "--name", "{pg}", "--host", "../clients/brandon", status=7),
    row("link", "--name", "{pg}", "h9", "isp", status=7, says="h9"),
    row("link", "--name", "{pg}", "modemA", "nonet", status=7, says="nonet"),
    row("link", "--name", "{pg}", "", "isp", status=7),
]

# each of these runs alone, and the link must be as it was after it: in
# netplay's state and in the kernel
LINK_MISUSES = [
    row("--loss", "101%", status=2, says="0% to 100%"),
    row("--loss=-1%", status=2, says="0% to 100%"),
    row("--loss", "-1%", status=2, says="--loss"),  # argparse takes -1% for an option
    row("--loss", "abc", status=2, says="--loss 20%"),
    row("--loss", "", status=2),
    row("--loss", "nan", status=2),
    row("--rate", "0", status=2, says="--rate 1mbit"),
    row("--rate", "abc", status=2, says="--rate 1mbit"),
    row("--rate", "1kbit", status=2, says="8kbit"),
    row("--rate", "99999999gbit", status=2, says="32gbit"),
    row("--delay", "abc", status=2, says="20ms"),
    row("--delay", "", status=2),
    row("--loss", "20%", "--rate", "abc", status=2),  # refused as a whole: no loss either
]


@dataclass(frozen=True, slots=True)
class Outcome:
    result: subprocess.CompletedProcess[str] | None  # None: it did not end in time
    left: list[str]  # what of the playground it names exists afterwards


def _named(args: Sequence[str]) -> str | None:
    """The playground a command line names with --name, if any."""
    for i, arg in enumerate(args):
        if arg == "--name" and i + 1 < len(args):
            return args[i + 1]
    return None


def _traces(name: str) -> list[str]:
    """What exists of a playground called ``name``: its directory, its namespaces."""
    found = [str(p) for p in (fabric.base_dir() / name,) if os.path.lexists(p)]
    if os.geteuid() == 0 and os.path.isdir("/run/netns"):
        prefix = f"netplay-{name}-"
        found += [f"/run/netns/{n}" for n in os.listdir("/run/netns") if n.startswith(prefix)]
    return found


def _attempt(args: Sequence[str]) -> Outcome:
    name = _named(args)
    if not name or name in (".", "..") or "/" in name:
        name = None  # names no playground that could be made
    before = set(_traces(name)) if name else set()
    try:
        result = subprocess.run(
            [*NETPLAY, *args],
            input="",
            capture_output=True,
            text=True,
            timeout=MISUSE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        result = None
    left = [t for t in _traces(name) if t not in before] if name else []
    if name and left:  # it made a playground: leave nothing for the tests that follow
        with contextlib.suppress(Exception):
            Playground.remove(name, purge=True)
    return Outcome(result, left)


def _fill(args: Sequence[str], **values: str) -> tuple[str, ...]:
    filled = []
    for arg in args:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        filled.append(arg)
    return tuple(filled)


def _attempt_all(misuses: list[Misuse], **values: str) -> dict[Misuse, Outcome]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = pool.map(lambda m: _attempt(_fill(m.args, **values)), misuses)
        return dict(zip(misuses, outcomes, strict=True))


def check_refused(misuse: Misuse, outcome: Outcome, shown: Sequence[str]) -> None:
    """The misuse ended with its status, in one line that says what to do, and left nothing."""
    where = "netplay " + " ".join(map(repr, shown))
    assert outcome.result is not None, f"{where} did not end in {MISUSE_TIMEOUT_S:.0f} s"
    result = outcome.result
    assert result.returncode != 70, f"{where}: internal error: {result.stderr}"
    assert result.returncode == misuse.status, (
        f"{where}: status {result.returncode}, stdout {result.stdout!r}, stderr {result.stderr!r}"
    )
    line = one_line_error(result)
    assert misuse.says in line, f"{where}: {line!r} does not say {misuse.says!r}"
    assert not outcome.left, f"{where} left behind: {outcome.left}"


@pytest.fixture(scope="module")
def misuse_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Odd files to give as topologies or programs (a program must be visible in
    the hosts, which share the machine's /tmp)."""
    files = tmp_path_factory.mktemp("misuse")
    (files / "dir").mkdir()
    unreadable = files / "unreadable.toml"
    unreadable.write_text("this is not toml [\n")  # root can read it: then it is bad TOML
    unreadable.chmod(0)
    os.mkfifo(files / "fifo.toml")  # opening it waits for a writer that never comes
    program = files / "notabin"
    program.write_bytes(b"\x7fnot a program\x00\x01\x02")
    program.chmod(0o755)
    yield files
    unreadable.chmod(0o600)


@pytest.fixture(scope="module")
def refused_without_a_playground(misuse_files: Path) -> dict[Misuse, Outcome]:
    return _attempt_all(WITHOUT_A_PLAYGROUND, files=str(misuse_files))


@pytest.mark.parametrize("misuse", _params(*WITHOUT_A_PLAYGROUND))
def test_misuse_without_a_playground(
    misuse: Misuse, refused_without_a_playground: dict[Misuse, Outcome], misuse_files: Path
) -> None:
    shown = _fill(misuse.args, files=str(misuse_files))
    check_refused(misuse, refused_without_a_playground[misuse], shown)


@pytest.fixture(scope="module")
def refused_on_the_playground(cli_playground: str, misuse_files: Path) -> dict[Misuse, Outcome]:
    return _attempt_all(ON_THE_PLAYGROUND, pg=cli_playground, files=str(misuse_files))


@pytest.mark.needs_playground
@pytest.mark.parametrize("misuse", _params(*ON_THE_PLAYGROUND))
def test_misuse_on_a_running_playground(
    misuse: Misuse,
    refused_on_the_playground: dict[Misuse, Outcome],
    cli_playground: str,
    misuse_files: Path,
) -> None:
    shown = _fill(misuse.args, pg=cli_playground, files=str(misuse_files))
    check_refused(misuse, refused_on_the_playground[misuse], shown)
    assert Playground.attach(cli_playground).is_up  # and it is still there


def _link_now(name: str) -> tuple[Any, ...]:
    """The modemA-isp cable as netplay records it and as the kernel has it at both routers."""
    pg = Playground.attach(name)
    seen: list[Any] = [to_data(pg.status())["faults"]]
    for host in ("modemA", "isp"):
        shown = "nft list ruleset && tc qdisc show && ip -o link"
        seen.append(pg.host(host).run(["sh", "-c", shown], check=True).stdout)
    return tuple(seen)


@pytest.mark.needs_playground
@pytest.mark.parametrize("misuse", _params(*LINK_MISUSES))
def test_bad_link_faults_change_nothing(misuse: Misuse, cli_playground: str) -> None:
    args = ("link", "--name", cli_playground, "modemA", "isp", *misuse.args)
    before = _link_now(cli_playground)
    outcome = _attempt(args)
    after = _link_now(cli_playground)
    if after != before:  # put it back for the tests that follow
        netplay("link", "--name", cli_playground, "modemA", "isp", "--clear")
    check_refused(Misuse(args, misuse.status, misuse.says), outcome, args)
    assert after == before, f"netplay {' '.join(args)} was refused but changed the link"


@pytest.mark.parametrize(
    "args",
    [
        ["up", "--name", "misuse-dbg", "nosuch"],
        ["logs", "--name", NOT_RUNNING, "www/http", "-n", "abc"],
        ["link", "--name", NOT_RUNNING, "modemA", "isp", "--down", "--up"],
    ],
)
def test_debug_keeps_the_status_and_the_sentence_of_a_misuse(args: list[str]) -> None:
    plain = netplay(*args)
    debug = netplay("--debug", *args)
    assert debug.returncode == plain.returncode != 70
    assert "Traceback" in debug.stderr
    assert debug.stderr.splitlines()[-1] == one_line_error(plain)


# the console: each line, and how it answers (the start of what follows the prompt)
CONSOLE_MISUSES = [
    ("link modemA isp --loss 101%", "error: loss '101%' is out of range"),
    ("link modemA isp --rate abc", "error: rate 'abc' is not a rate"),
    ("link modemA", "error: the following arguments are required: B"),
    ("link h9 isp", "error: the playground has no host 'h9'"),
    ("logs www/http -n abc", "error: argument -n/--lines: 'abc' is not a number of lines"),
    ("logs www/http -n \u00b2", "error: argument -n/--lines: '\u00b2' is not a number of lines"),
    ("logs www/nope", "error: there is no service 'www/nope'"),
    ("service bogus www/http", "error: argument action: invalid choice"),
    ("status extra", "error: unrecognized arguments: extra"),
    ("ca --host h9", f"error: the playground 'mis{os.getpid()}' has no host 'h9'"),
    ("ca --host ''", "error: the playground has no certificate for ''"),
    ("ca --host ../ca", "error: the playground has no certificate for '../ca'"),
    ("h9 ls", "unknown command or host 'h9'"),
    ("h1", "usage: h1 COMMAND"),
    ("h1 no-such-program", "error: there is no program 'no-such-program' on h1"),
    ('h1 echo "unbalanced', "error: No closing quotation"),
    ("up", "unknown command or host 'up'"),
    ("exec h1 true", "unknown command or host 'exec'"),
]


@pytest.fixture(scope="module")
def console_answers() -> Iterator[tuple[str, subprocess.CompletedProcess[str], list[str]]]:
    """One console session fed every misuse, then `hosts` (it must still answer) and exit."""
    name = f"mis{os.getpid()}"
    script = "".join(f"{line}\n" for line, _said in CONSOLE_MISUSES) + "hosts\nexit\n"
    result = netplay("up", "--name", name, stdin=script)
    try:
        yield name, result, result.stdout.split(f"{name}> ")[1:]
    finally:
        netplay("down", "--name", name)  # in case it did not tear down


@pytest.mark.needs_playground
@pytest.mark.parametrize(("line", "said"), CONSOLE_MISUSES, ids=[c[0] for c in CONSOLE_MISUSES])
def test_console_misuse(
    line: str, said: str, console_answers: tuple[str, subprocess.CompletedProcess[str], list[str]]
) -> None:
    _name, result, answers = console_answers
    i = [c[0] for c in CONSOLE_MISUSES].index(line)
    assert i < len(answers), f"the console ended before {line!r}: {result.stderr}"
    assert answers[i].startswith(said), f"{line!r} answered {answers[i]!r}"
    assert len(answers[i].splitlines()) == 1, answers[i]


@pytest.mark.needs_playground
def test_console_outlives_its_misuses_and_leaves_nothing(
    console_answers: tuple[str, subprocess.CompletedProcess[str], list[str]],
) -> None:
    name, result, answers = console_answers
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert len(answers) > len(CONSOLE_MISUSES), result.stdout
    assert answers[len(CONSOLE_MISUSES)].startswith("h1 h2 h3 h4 modemA")  # `hosts`
    assert not _traces(name)


@pytest.mark.needs_playground
@pytest.mark.parametrize("program", ["''", "{files}/notabin"])
def test_console_outlives_a_program_that_cannot_run(program: str, misuse_files: Path) -> None:
    name = f"misc{os.getpid()}"
    line = "h1 " + program.replace("{files}", str(misuse_files))
    result = netplay("up", "--name", name, "line:2", stdin=f"{line}\nhosts\nexit\n")
    try:
        answers = result.stdout.split(f"{name}> ")[1:]
        assert result.returncode == 0, f"{line!r} ended the console: {result.stderr}"
        assert answers[0].startswith("error: "), answers
        assert answers[1] == "h1 h2\n"
    finally:
        netplay("down", "--name", name)
    assert not _traces(name)

"""Rootless: an ordinary user runs up, exec, status and down without sudo,
and a representative part of this test suite.

The test makes a system user of its own, gives it a world-readable copy of
netplay and its dependencies, found from their installed metadata (the
test's own interpreter may live under a home directory that user cannot
read), and drives the CLI, then pytest with the plugin, as that user.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import netplay
from netplay.fabric import _linux as linux
from netplay.fabric import alive

pytestmark = pytest.mark.needs_playground


def _dependencies(name: str) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``name`` needs at run time, recursively."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [name]
    while todo:
        wanted = canonicalize_name(todo.pop())
        if wanted in found:
            continue
        found[wanted] = importlib.metadata.distribution(wanted)
        for text in found[wanted].requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(found.values())


def _copy_packages(lib: Path) -> None:
    """netplay's source and every file of its dependencies and of the test
    runner's, as installed (their metadata too, so pytest finds its plugins)."""
    shutil.copytree(
        Path(netplay.__path__[0]), lib / "netplay", ignore=shutil.ignore_patterns("__pycache__")
    )
    wanted = {d.metadata["Name"]: d for n in RUNTIME for d in _dependencies(n)}
    for dist in wanted.values():
        if canonicalize_name(dist.metadata["Name"]) == "netplay":
            continue
        for file in dist.files or []:
            parts = Path(file).parts
            if parts[0] == ".." or "__pycache__" in parts:
                continue
            (lib / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(str(dist.locate_file(file))), lib / file)


PYTHON = "/usr/bin/python3"
RUNTIME = ("netplay", "pytest", "pytest-timeout")
#: the part of the suite the user runs: the plugin, the network, link faults, and
#: every engine through the conformance suite, without the engines' hostile clients'
#: tests and the docs' examples (SELECTION)
REPRESENTATIVE = (
    "test_plugin.py",
    "test_network.py",
    "test_faults.py",
    "test_engines.py",
    "test_echo.py",
)
#: what differs with subordinate ids is who the servers run as: the engines' part
WITH_SUBORDINATE_IDS = ("test_engines.py",)
#: the hostile clients' tests ("starve") test a server's own limits, the same code
#: whoever runs it, and they run as root: they were half of the engines' part's time.
#: The docs' examples ("example") use the fixtures that test_the_fixtures_in_a_user_s_suite
#: runs as the user; as root they all run: they were a third of the plugin's part's time
SELECTION = ("-k", "not starve and not example")


def _unprivileged_userns() -> bool:
    try:
        return Path("/proc/sys/kernel/unprivileged_userns_clone").read_text().strip() != "0"
    except OSError:
        return True


@pytest.fixture(scope="module")
def user() -> Iterator[tuple[str, Path]]:
    """A fresh unprivileged user and a directory of packages it can import."""
    if not os.access(PYTHON, os.X_OK) or shutil.which("useradd") is None:
        pytest.skip(f"needs {PYTHON} and useradd (.ci/run installs passwd)")
    if not _unprivileged_userns():
        pytest.skip("this kernel does not allow unprivileged user namespaces")
    name = f"np{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
    )
    lib = Path(tempfile.mkdtemp(prefix="netplay-rootless-"))
    uid = pwd.getpwnam(name).pw_uid
    try:
        _copy_packages(lib)
        subprocess.run([PYTHON, "-m", "compileall", "-q", str(lib)], check=True)
        for path in [lib, *lib.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield name, lib
    finally:
        _kill_processes_of(uid)
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(lib, ignore_errors=True)
        shutil.rmtree(f"/tmp/netplay-{uid}", ignore_errors=True)
        shutil.rmtree(_data_dir(uid), ignore_errors=True)
        shutil.rmtree(f"/tmp/pytest-of-{name}", ignore_errors=True)  # its pytester runs


def _kill_processes_of(uid: int, count: int = 1) -> None:
    """End whatever the test's own user (or ``count`` users from ``uid``) left
    running, by pid (it may fork meanwhile)."""
    for _ in range(10):
        pids = _user_processes(uid, count)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""  # it ended meanwhile


def _data_dir(uid: int) -> str:
    return f"/tmp/netplay-data-{uid}"


def as_user(
    user: tuple[str, Path], *args: str, data: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run netplay as the user; its home does not exist, so its CA goes to a
    data directory in /tmp (unless ``data`` is False)."""
    name, lib = user
    env = ["-u", "NETPLAY_DATA_DIR", f"PYTHONPATH={lib}"]
    if data:
        env.append(f"NETPLAY_DATA_DIR={_data_dir(pwd.getpwnam(name).pw_uid)}")
    return subprocess.run(
        ["runuser", "-u", name, "--", "env", *env, PYTHON, "-m", "netplay", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=False,
    )


def test_rootless_up_exec_status_down(user: tuple[str, Path]) -> None:
    uid = pwd.getpwnam(user[0]).pw_uid
    up = as_user(user, "up", "--detach")
    assert up.returncode == 0, up.stderr
    try:
        assert as_user(user, "exec", "h1", "--", "hostname").stdout == "h1\n"
        www_cert = as_user(user, "ca", "--host", "www").stdout.split()[0]
        trusted = as_user(user, "exec", "www", "--", "openssl", "verify", www_cert)  # its own
        assert trusted.stdout == f"{www_cert}: OK\n", trusted.stdout + trusted.stderr
        assert as_user(user, "exec", "h1", "--", "id", "-u").stdout == "0\n"
        ping = as_user(user, "exec", "h1", "--", "ping", "-c1", "-W2", "www")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        trace = as_user(user, "exec", "h1", "--", "traceroute", "-n", "-q1", "-w2", "10.130.1.4")
        hops = [line.split()[1] for line in trace.stdout.splitlines()[1:]]
        assert hops == ["192.168.1.1", "10.25.1.1", "10.1.1.1", "10.130.1.1", "10.130.1.4"]
        status = as_user(user, "status", "--json")
        assert status.returncode == 0, status.stderr
        described = json.loads(status.stdout)
        assert (described["schema"], described["mode"]) == (1, "rootless")
        assert described["one_user"] is True  # the user has no subordinate ids
        assert "h1" in {host["name"] for host in described["hosts"]}
        shown = {_title(pid) for pid in _user_processes(uid)}  # as ps shows them
        assert {"netplay: book keeper", "netplay: book www/https server"} <= shown
    finally:
        down = as_user(user, "down")
    assert down.returncode == 0, down.stderr
    assert not Path(f"/tmp/netplay-{uid}/book").exists()
    assert _user_processes(uid) == []
    again = as_user(user, "exec", "h1", "--", "hostname")
    assert again.returncode == 8, again.stderr
    key = Path(_data_dir(uid)) / "book" / "ca.key"
    assert key.stat().st_uid == uid and key.stat().st_mode & 0o777 == 0o600


SUBORDINATE_IDS = 65536


def _free_range(*tables: Path) -> int:
    """A first id for a range of subordinate ids that no line of ``tables`` overlaps."""
    ends = [100000]
    for table in tables:
        with contextlib.suppress(FileNotFoundError):
            for line in table.read_text().splitlines():
                fields = line.split(":")
                if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                    ends.append(int(fields[1]) + int(fields[2]))
    return max(ends)


@pytest.fixture(scope="module")
def mapped_user(user: tuple[str, Path]) -> Iterator[tuple[str, Path, int]]:
    """Another fresh unprivileged user, with subordinate ids (lines of its own in
    /etc/subuid and /etc/subgid, as useradd gives an ordinary user), the
    packages of ``user``, and the first of its ids."""
    if shutil.which("newuidmap") is None:
        pytest.skip("needs newuidmap and newgidmap (.ci/run installs uidmap)")
    name = f"np{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
    )
    tables = (Path("/etc/subuid"), Path("/etc/subgid"))
    first = _free_range(*tables)
    line = f"{name}:{first}:{SUBORDINATE_IDS}\n"
    for table in tables:
        with table.open("a") as f:
            f.write(line)
    uid = pwd.getpwnam(name).pw_uid
    try:
        yield name, user[1], first
    finally:
        _kill_processes_of(first, SUBORDINATE_IDS)  # its hosts' users' first
        _kill_processes_of(uid)
        for table in tables:
            table.write_text("".join(k for k in table.read_text().splitlines(True) if k != line))
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(f"/tmp/netplay-{uid}", ignore_errors=True)
        shutil.rmtree(_data_dir(uid), ignore_errors=True)
        shutil.rmtree(f"/tmp/pytest-of-{name}", ignore_errors=True)


def test_rootless_with_subordinate_ids_the_accounts_are_users(
    mapped_user: tuple[str, Path, int],
) -> None:
    """Where the user has subordinate ids, the playground's user namespace maps
    them: brandon is a user of his own in a host, with his home, and a program
    can become him; outside, his files belong to a subordinate id, and
    ``down --purge`` removes them all the same."""
    name, lib, first = mapped_user
    user = (name, lib)
    uid = pwd.getpwnam(name).pw_uid
    up = as_user(user, "up", "--detach")
    assert up.returncode == 0, up.stderr
    try:
        uid_map = as_user(user, "exec", "h1", "--", "cat", "/proc/self/uid_map").stdout.split()
        assert uid_map == ["0", str(uid), "1", "1", str(first), str(SUBORDINATE_IDS)]
        number = int(as_user(user, "exec", "h1", "--", "id", "-u", "brandon").stdout)
        assert number >= 1000  # an ordinary user's, in the host's own /etc/passwd
        home = as_user(user, "exec", "h1", "--", "stat", "-c", "%U %G %a", "/home/brandon")
        assert home.stdout == "brandon brandon 700\n", home.stdout + home.stderr
        script = "id -un; touch /tmp/mine; stat -c %U /tmp/mine; touch /etc/x"
        su = as_user(user, "exec", "h1", "--", "su", "brandon", "-s", "/bin/sh", "-c", script)
        assert su.stdout == "brandon\nbrandon\n", su.stdout + su.stderr
        assert "Permission denied" in su.stderr  # /etc is root's, and brandon is not root
        ssh = as_user(user, "ssh", "www", "-u", "brandon", "--", "id", "-un")  # sshd's setuid
        assert ssh.stdout == "brandon\n", ssh.stdout + ssh.stderr
        status = as_user(user, "status")
        assert "rootless:" in status.stdout and "subordinate" not in status.stdout
        described = json.loads(as_user(user, "status", "--json").stdout)
        assert described["one_user"] is False
        kept = Path(_data_dir(uid)) / "book" / "hosts" / "h1" / "home" / "brandon"
        assert kept.stat().st_uid == first + number - 1  # brandon's, outside
    finally:
        down = as_user(user, "down", "--purge")
    assert down.returncode == 0, down.stderr
    assert not (Path(_data_dir(uid)) / "book").exists()
    assert _user_processes(uid) == [] and _user_processes(first, SUBORDINATE_IDS) == []


def test_rootless_without_a_home_for_the_ca_is_one_sentence(user: tuple[str, Path]) -> None:
    uid = pwd.getpwnam(user[0]).pw_uid
    up = as_user(user, "up", "--detach", data=False)
    assert up.returncode == 11, up.stderr
    assert up.stderr.startswith("netplay: cannot keep the playground's certificates in /home/")
    assert "NETPLAY_DATA_DIR" in up.stderr and len(up.stderr.splitlines()) == 1
    assert not Path(f"/tmp/netplay-{uid}/book").exists()
    assert _user_processes(uid) == []


def _user_processes(uid: int, count: int = 1) -> list[int]:
    """Live (not zombie) processes of ``uid`` (or of ``count`` users from ``uid``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if uid <= entry.stat().st_uid < uid + count and alive(int(entry.name), None):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_no_user_namespaces_left_is_one_sentence(user: tuple[str, Path]) -> None:
    """In a user namespace whose limit of user namespaces is 0, `up` says so and exits 3.

    The limit is set inside a user namespace the test makes (it maps the
    machine's ids 0-65535 unchanged), so the machine's own limit is never
    touched; the user then runs netplay in it.
    """
    name, lib = user
    account = pwd.getpwnam(name)
    argv = ["env", f"PYTHONPATH={lib}", PYTHON, "-m", "netplay", "up", "--detach"]
    mapped, go = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs netplay or exits 99
        try:
            linux.unshare(linux.CLONE_NEWUSER)
            os.write(mapped[1], b"u")
            os.read(go[0], 1)
            Path("/proc/sys/user/max_user_namespaces").write_text("0")
            os.dup2(os.open(lib / "stderr", os.O_WRONLY | os.O_CREAT, 0o644), 2)
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
            os.chdir("/")
            os.execvp(argv[0], argv)
        finally:
            os._exit(99)
    os.read(mapped[0], 1)
    for kind in ("uid_map", "gid_map"):
        Path(f"/proc/{pid}/{kind}").write_text("0 0 65536")
    os.write(go[1], b"g")
    for fd in (*mapped, *go):
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    stderr = (lib / "stderr").read_text()
    assert os.waitstatus_to_exitcode(status) == 3, stderr
    assert stderr.startswith("netplay: ") and len(stderr.splitlines()) == 1
    assert "user.max_user_namespaces" in stderr
    assert not Path(f"/tmp/netplay-{account.pw_uid}").exists()  # nothing of it is left


@pytest.mark.timeout(600)  # a suite of its own, of about two minutes
@pytest.mark.parametrize("ids", ["one user", "subordinate ids"])
def test_a_representative_part_of_the_suite_as_the_user(
    ids: str, request: pytest.FixtureRequest
) -> None:
    """As a user the system gives no subordinate ids (one user mapped), then as
    one it gives some: each engine runs as it can there."""
    if ids == "one user":
        name, lib = request.getfixturevalue("user")
        part, first = REPRESENTATIVE, None
    else:
        name, lib, first = request.getfixturevalue("mapped_user")
        part = WITH_SUBORDINATE_IDS
    uid = pwd.getpwnam(name).pw_uid
    checkout = Path(__file__).parent.parent
    tree = lib / "checkout"
    shutil.rmtree(tree, ignore_errors=True)  # the other user's run left its copy
    shutil.copytree(
        checkout / "tests", tree / "tests", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(checkout / "pyproject.toml", tree)
    (tree / "docs").mkdir()
    shutil.copy(checkout / "docs" / "testing.md", tree / "docs")
    for path in [tree, *tree.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    env = [
        "-u",
        "NETPLAY_DATA_DIR",
        f"PYTHONPATH={lib}",
        "PYTEST_PLUGINS=netplay.testing._plugin",  # the copy has no entry point of its own
    ]
    argv = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SELECTION]
    result = subprocess.run(
        ["runuser", "-u", name, "--", "env", *env, *argv, *(f"tests/{t}" for t in part)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tree,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]
    runtime = Path(f"/tmp/netplay-{uid}")
    assert not runtime.exists() or not any(runtime.iterdir()), sorted(runtime.rglob("*"))
    assert _user_processes(uid) == []
    if first is not None:  # nor a server its hosts' users ran
        assert _user_processes(first, SUBORDINATE_IDS) == []


@pytest.mark.parametrize("made", ["by root", "as a link"])
def test_a_runtime_directory_that_is_not_the_user_s_is_refused(
    user: tuple[str, Path], tmp_path: Path, made: str
) -> None:
    """Someone else's /tmp/netplay-UID (another user could make it first) is refused,
    in one sentence, before anything is started."""
    uid = pwd.getpwnam(user[0]).pw_uid
    base = Path(f"/tmp/netplay-{uid}")
    if made == "by root":
        base.mkdir(mode=0o755)
    else:
        base.symlink_to(tmp_path)
    try:
        up = as_user(user, "up", "--detach")
        assert up.returncode == 2, up.stderr
        assert up.stderr.startswith(f"netplay: {base} is not a private directory of this user's")
        assert len(up.stderr.splitlines()) == 1
        assert _user_processes(uid) == []  # no keeper was started
    finally:
        base.rmdir() if made == "by root" else base.unlink()

"""Hosts behave as separate machines: each has its own writable files (an
overlay over the machine's) and the topology's users as real accounts,
and nothing of either reaches the machine or another host."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from netplay import Playground
from netplay.hosts import _filesystem as filesystem
from netplay.hosts._users import Hashes, add_users, shadow_hash
from netplay.topology import User, loads

WRITABLE = ("/etc", "/root", "/home", "/var", "/srv", "/tmp", "/run")


def _sh(pg: Playground, host: str, script: str, check: bool = True) -> str:
    return pg.host(host).run(["sh", "-c", script], check=check).stdout


def _sees(pg: Playground, host: str, path: str) -> bool:
    return pg.host(host).run(["test", "-e", path]).returncode == 0


@pytest.mark.needs_playground
def test_what_a_host_writes_is_its_own(book: Playground) -> None:
    name = f"netplay-test-{uuid.uuid4().hex[:8]}"
    made = [f"{top}/{name}" for top in WRITABLE]
    try:
        for path in made:
            _sh(book, "h1", f"echo h1 > {path}")
            assert _sh(book, "h1", f"cat {path}") == "h1\n"
            assert not os.path.exists(path), f"{path} reached the machine"
            assert not _sees(book, "h2", path), f"{path} reached h2"
        _sh(book, "h2", f"echo h2 > /etc/{name}")  # the same name, each its own
        assert _sh(book, "h1", f"cat /etc/{name}") == "h1\n"
    finally:
        for host in ("h1", "h2"):
            book.host(host).run(["rm", "-f", *made])


@pytest.mark.needs_playground
def test_a_host_reads_the_machine_s_files_and_cannot_change_them(
    book: Playground, tmp_path: Path
) -> None:
    """The machine's files are the lower layer: read as they are, also those
    written after ``up``; a change or removal in a host stays in it."""
    theirs = tmp_path / "machine.txt"  # under /tmp, made after up
    theirs.write_text("the machine's\n")
    assert _sh(book, "h1", f"cat {theirs}") == "the machine's\n"
    _sh(book, "h1", f"echo changed > {theirs}")
    assert theirs.read_text() == "the machine's\n"
    _sh(book, "h2", f"rm {theirs}")
    assert theirs.exists() and not _sees(book, "h2", str(theirs))
    assert _sh(book, "h3", f"cat {theirs}") == "the machine's\n"
    assert _sh(book, "h1", "cat /etc/hostname") == "h1\n"
    assert Path("/etc/hostname").read_text() != "h1\n"


@pytest.mark.needs_playground
def test_a_host_s_own_directories_have_the_machine_s_modes(book: Playground) -> None:
    """An overlay's top directory is its upper layer's: those are made like the machine's."""
    for top in WRITABLE:
        mine = _sh(book, "h2", f"stat -c '%a %U %G' {top}")
        assert mine == _sh_machine(f"stat -c '%a %U %G' {top}"), top
    made = _sh(book, "h2", "su brandon -c 'mktemp -p /tmp && echo made'")
    assert made.endswith("made\n")
    book.host("h2").run(["rm", "-f", made.splitlines()[0]], check=True)


def _sh_machine(script: str) -> str:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout


@pytest.mark.needs_playground
def test_the_topology_s_users_are_accounts_of_every_host(book: Playground) -> None:
    machine = {entry.pw_name for entry in pwd.getpwall()}
    assert "brandon" not in machine and not os.path.exists("/home/brandon")
    for host in ("h1", "www", "modemA"):
        ids = _sh(book, host, "id brandon")
        assert "(brandon)" in ids and "gid=" in ids, ids
        home = _sh(book, host, "stat -c '%U %G %a' /home/brandon")
        assert home == "brandon brandon 700\n", (host, home)
    made = _sh(book, "www", "su brandon -c 'echo hi > ~/mine; stat -c %U ~/mine; echo $HOME'")
    assert made == "brandon\n/home/brandon\n"
    assert not _sees(book, "h1", "/home/brandon/mine")
    book.host("www").run(["rm", "-f", "/home/brandon/mine"], check=True)
    # the password in /etc/shadow is the topology's, as libcrypt (perl's crypt) checks it
    stored = _sh(book, "h1", "grep ^brandon: /etc/shadow | cut -d: -f2").strip()
    for password, right in (("abc123", "1"), ("abc124", "")):
        checked = book.host("h1").run(["perl", "-e", PERL_CHECK, password, stored], check=True)
        assert checked.stdout == right, password


PERL_CHECK = "print crypt($ARGV[0], $ARGV[1]) eq $ARGV[1]"


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGh0ZXN0a2V5Zm9ybmV0cGxheXRlc3RzMDEyMzQ1Njc4 ann@test"
TWO_HOSTS = loads(
    f"""
[hosts.one]
[hosts.two]
[users.ann]
password = "first"
keys = ["{KEY}"]
[lans.lan.hosts]
one = ["10.9.0.1/24"]
two = ["10.9.0.2/24"]
""",
    source="machines.toml",
)


@pytest.mark.needs_playground
def test_kept_layers_outlive_down_and_fresh_ones_do_not() -> None:
    name = f"machines-{uuid.uuid4().hex[:6]}"
    pg = Playground.up(TWO_HOSTS, name=name, services=False)
    try:
        data = Path(pg.state.data)
        _sh(pg, "one", "echo kept > /etc/kept; echo gone > /tmp/gone; useradd -m bob")
        keys = _sh(pg, "one", "stat -c '%U %a' ~ann/.ssh/authorized_keys; cat ~ann/.ssh/*")
        assert keys == f"ann 600\n{KEY}\n"
        fresh = pg.paths.fresh_dir
        assert os.path.ismount(fresh) and (fresh / "one" / "tmp" / "gone").exists()
        pg.down()
        assert not fresh.exists()  # /tmp and /run: a tmpfs, gone with down
        assert (filesystem.upper(data, "one", "/etc") / "kept").exists()  # where the host keeps it
        pg = Playground.up(TWO_HOSTS, name=name, services=False)
        assert _sh(pg, "one", "cat /etc/kept; ls /tmp/gone 2>&1 || true") == (
            "kept\nls: cannot access '/tmp/gone': No such file or directory\n"
        )
        assert "(bob)" in _sh(pg, "one", "id bob")  # a user made in a host stays
        assert "(bob)" not in _sh(pg, "two", "id bob || true")
    finally:
        pg.down(purge=True)
    assert not (data / filesystem.HOSTS_DATA).exists()


@pytest.mark.needs_playground
def test_a_host_without_services_gets_its_view_once_at_first_entry() -> None:
    pg = Playground.up(TWO_HOSTS, name=f"later-{uuid.uuid4().hex[:6]}", services=False)
    try:
        waiting = pg.paths.view("one")
        assert waiting.exists()  # no overlay yet: nothing has entered it
        script = "findmnt -n -t overlay -o TARGET | sort; hostname; ls /sys/class/net"
        first = [pg.host("one").popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True)]
        first += [pg.host("one").popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True)]
        seen = [p.communicate()[0] for p in first]
        expected = "\n".join(sorted(WRITABLE)) + "\none\neth0\nlo\n"
        assert seen == [expected, expected]  # each overlay once, though both came first
        assert not waiting.exists()
        assert _sh(pg, "one", script) == expected
    finally:
        pg.down()


@pytest.mark.needs_playground
def test_a_host_whose_view_cannot_be_made_says_why_each_time_and_mounts_no_more() -> None:
    pg = Playground.up(TWO_HOSTS, name=f"broken-{uuid.uuid4().hex[:6]}", services=False)
    try:
        srv = filesystem.upper(Path(pg.state.data), "one", "/srv")
        srv.write_text("a file where /srv's upper layer goes")
        first = pg.host("one").run(["hostname"])
        assert first.returncode == 126 and "File exists" in first.stderr, first
        again = pg.host("one").run(["hostname"])
        assert again.returncode == 126, again
        assert "filesystem could not be made" in again.stderr and "File exists" in again.stderr
        assert pg.host("two").run(["hostname"]).stdout == "two\n"  # the other host is whole
    finally:
        pg.down(purge=True)


DANGLING_RESOLV_CONF = """
import os, subprocess, sys
from pathlib import Path
from netplay import Playground
from netplay.topology import loads

tmp, name, topology = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
# in this process's own mount namespace: the machine's /etc with resolv.conf
# a link to a resolver's stub that does not run, as where systemd-resolved is
# off, and no /etc/hosts, as in some containers
(tmp / "upper").mkdir()
(tmp / "work").mkdir()
os.symlink("/run/no-such-resolver/stub-resolv.conf", tmp / "upper" / "resolv.conf")
layers = f"lowerdir=/etc,upperdir={tmp}/upper,workdir={tmp}/work"
subprocess.run(["mount", "-t", "overlay", "overlay", "-o", layers, "/etc"], check=True)
os.remove("/etc/hosts")
pg = Playground.up(loads(topology), name=name, services=False)
try:
    print(pg.host("one").run(["cat", "/etc/resolv.conf", "/etc/hosts"], check=True).stdout, end="")
finally:
    pg.down(purge=True)
"""


@pytest.mark.needs_playground
@pytest.mark.skipif(os.geteuid() != 0, reason="mounts over the machine's /etc in a namespace")
def test_a_machine_without_resolv_conf_or_hosts(tmp_path: Path) -> None:
    """The machine's /etc/resolv.conf may be a link to nothing, its /etc/hosts
    missing; each host still gets the playground's, in its own /etc."""
    name = f"dangling-{uuid.uuid4().hex[:6]}"
    text = '[hosts.one]\n[lans.lan.hosts]\none = ["10.9.0.1/24"]\n'
    argv = ["unshare", "-m", "--propagation", "private", sys.executable, "-c"]
    try:
        done = subprocess.run(
            [*argv, DANGLING_RESOLV_CONF, str(tmp_path), name, text],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        Playground.remove(name, purge=True)  # where it broke before its down
    assert done.returncode == 0, done.stderr
    topology = loads(text)
    assert done.stdout == topology.etc_resolv_conf() + topology.etc_hosts()


# -- the accounts' files, without a playground ------------------------------------


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The machine's /etc as the accounts' code reads it: a small one of the test's."""
    from netplay.hosts import _users

    etc = tmp_path / "machine"
    _passwd(etc, ["root:x:0:0:root:/root:/bin/bash"])
    monkeypatch.setattr(_users, "MACHINE_ETC", etc)
    return etc


def _passwd(etc: Path, rows: list[str]) -> None:
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text("".join(r + "\n" for r in rows))
    (etc / "group").write_text("root:x:0:\nusers:x:100:\ntaken:x:1001:\n")
    (etc / "shadow").write_text("root:*:20000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\n")


def test_a_new_user_gets_the_first_number_no_user_or_group_has(
    tmp_path: Path, machine: Path
) -> None:
    _passwd(tmp_path / "etc", ["root:x:0:0:root:/root:/bin/bash", "c:x:1000:1000::/home/c:/bin/sh"])
    add_users(tmp_path, [User(name="ann", password="pw")], Hashes(), own_ids=False)
    passwd = (tmp_path / "etc" / "passwd").read_text().splitlines()
    assert passwd[-1] == "ann:x:1002:1002:,,,:/home/ann:/bin/bash"
    assert (tmp_path / "etc" / "group").read_text().endswith("ann:x:1002:\n")
    assert (tmp_path / "etc" / "gshadow").read_text().endswith("ann:!::\n")
    assert (tmp_path / "home" / "ann").is_dir()
    assert oct((tmp_path / "etc" / "shadow").stat().st_mode & 0o777) == "0o640"


def test_a_stored_hash_is_kept_while_the_password_is_the_same(
    tmp_path: Path, machine: Path
) -> None:
    _passwd(tmp_path / "etc", ["root:x:0:0:root:/root:/bin/bash"])
    add_users(tmp_path, [User(name="ann", password="pw")], Hashes(), own_ids=False)
    shadow = tmp_path / "etc" / "shadow"
    first = shadow.read_text()
    add_users(tmp_path, [User(name="ann", password="pw")], Hashes(), own_ids=False)
    assert shadow.read_text() == first
    add_users(tmp_path, [User(name="ann", password="new")], Hashes(), own_ids=False)
    assert shadow.read_text() != first
    names = [line.split(":")[0] for line in (tmp_path / "etc" / "passwd").read_text().splitlines()]
    assert names == ["root", "ann"]  # not added twice


def test_a_user_the_host_has_keeps_its_entry_and_gets_the_password(
    tmp_path: Path, machine: Path
) -> None:
    entry = "ann:x:1500:1500:Ann:/srv/ann:/bin/sh"
    _passwd(tmp_path / "etc", ["root:x:0:0:root:/root:/bin/bash", entry])
    add_users(tmp_path, [User(name="ann", password="pw")], Hashes(), own_ids=False)
    assert (tmp_path / "etc" / "passwd").read_text().splitlines()[-1] == entry
    assert not (tmp_path / "home" / "ann").exists()
    stored = (tmp_path / "etc" / "shadow").read_text().splitlines()[-1].split(":")[1]
    assert stored.startswith("$y$") and stored != shadow_hash("pw")  # salted


def test_the_machine_s_accounts_made_since_reach_the_host(tmp_path: Path, machine: Path) -> None:
    """A package installed on the machine after the host's files were made (its
    daemon's system user) is added to them; the host's own entries stay."""
    own = tmp_path / "own"
    _passwd(own / "etc", ["root:x:0:0:root:/root:/bin/zsh", "mine:x:1500:1500::/home/m:/bin/sh"])
    (machine / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nsshd:x:107:65534::/run/sshd:/usr/sbin/nologin\n"
        "clash:x:1500:1500::/:/bin/sh\n"
    )
    add_users(own, [User(name="ann", password="pw")], Hashes(), own_ids=False)
    names = [line.split(":")[0] for line in (own / "etc" / "passwd").read_text().splitlines()]
    assert names == ["root", "mine", "sshd", "ann"]  # clash's number is the host's own mine's
    assert (own / "etc" / "passwd").read_text().startswith("root:x:0:0:root:/root:/bin/zsh")

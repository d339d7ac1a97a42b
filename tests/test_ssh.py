"""The ssh kind's engines with real clients: OpenSSH's ssh, scp and sftp, paramiko and asyncssh.

Every test that takes ``ssh`` runs against both engines, the builtin one and
OpenSSH's sshd (``engine = "openssh"``, the reference; skipped, saying why,
where it cannot run), each in a playground of its own.  What the protocol
fixes is checked alike; where the engines may differ, DIFFERENCES says
exactly how, and the tests hold each engine to its entry.  The hostile
clients' tests run against both too: each engine must outlast them, in its
own way where DIFFERENCES says so.

A playground of three hosts: ``server`` runs ssh and is on two LANs, ``client``
on one, ``web`` (an echo service, and ssh on port 2222 with
``gateway_ports = true``) on the other, so that ``client`` reaches ``web``
only through an SSH forward.  Its users, ``ann`` and ``brandon``, are
real accounts of every host; both may log in with the module's key pair
(made when the module is loaded, its public key in the topology) and with
their passwords.  Every program runs inside the ``client`` host (``server``
for web's ssh), with the host key checked.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from _net import run_json
from _sshserver import asyncssh_server
from netplay import Playground, ServiceState
from netplay.pki import Store
from netplay.services import Context, HealthError, registered
from netplay.services.engines import ssh as builtin_ssh
from netplay.topology import Topology, loads

SERVER, CLIENT, WEB = "10.9.0.1", "10.9.0.2", "10.8.0.3"
IDENT = "server/ssh"
USER = "ann"
HOME = f"/home/{USER}"
PASSWORD = "s3cret-ann"
LOGIN_TIMEOUT_S = 10  # room for six wrong passwords, a second each
KEY = "/tmp/ssh-test-key"
KNOWN_HOSTS = "/tmp/ssh-test-known-hosts"
_PRIVATE = Ed25519PrivateKey.generate()
PRIVATE_KEY = _PRIVATE.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
).decode()
PUBLIC_KEY = (
    _PRIVATE.public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .decode()
    + " test_ssh"
)
KEEPALIVE_S = 1  # a client that stops answering is gone after four of them
GATEWAY_PORT = 2222  # web's ssh service, with gateway_ports = true
LIMITS = f"login_timeout = {LOGIN_TIMEOUT_S}, keepalive_interval = {KEEPALIVE_S}"


def topology(engine: str) -> Topology:
    """The module's playground with its ssh services served by ``engine``."""
    return loads(
        f"""
name = "sshtest"
domain = "sshtest.test"

[hosts.server]
services = [
    {{ kind = "ssh", engine = "{engine}", {LIMITS} }},
]

[hosts.client]

[hosts.web]
services = [
    {{ kind = "echo" }},
    {{ kind = "ssh", engine = "{engine}", ports = [{GATEWAY_PORT}], gateway_ports = true }},
]

[lans.front.hosts]
server = ["{SERVER}/24"]
client = ["{CLIENT}/24"]

[lans.back.hosts]
server = ["10.8.0.1/24"]
web = ["{WEB}/24"]

[users.{USER}]
password = "{PASSWORD}"
keys = ["{PUBLIC_KEY}"]

[users.brandon]
password = "abc123"
keys = ["{PUBLIC_KEY}"]
""",
        source=f"test_ssh ({engine})",
    )


def engine_param(engine: str) -> Any:
    """A parameter of the ``ssh`` fixture: the playground with ``engine``, skipped
    (saying why) where that engine cannot run."""
    marks = [pytest.mark.netplay_topology(topology(engine))]
    why = registered()["ssh"][engine].unavailable()
    if why is not None:
        marks.append(pytest.mark.skip(reason=why))
    return pytest.param(engine, marks=marks, id=engine)


@dataclasses.dataclass
class Setup:
    pg: Playground
    engine: str
    host_key: str  # the server's Ed25519 public key line


@pytest.fixture(scope="module")
def _prepared() -> dict[str, Setup]:
    """The playgrounds whose client host has the key and the known host key, by name."""
    return {}


@pytest.fixture(params=[engine_param("builtin"), engine_param("openssh")])
def ssh(
    request: pytest.FixtureRequest, shared_playground: Playground, _prepared: dict[str, Setup]
) -> Setup:
    """The module's playground, with the client's private key and the server's
    host key (from the service's kept keys) in files of the client host."""
    pg = shared_playground
    if pg.name not in _prepared:
        host_key = pg.paths.service_data / "server" / "ssh" / "ssh_host_ed25519_key.pub"
        line = host_key.read_text().strip()
        write = "import sys, os; open(sys.argv[1], 'w').write(sys.stdin.read()); " + (
            "os.chmod(sys.argv[1], 0o600)"
        )
        client = pg.host("client")
        client.run(["python3", "-c", write, KEY], input=PRIVATE_KEY, check=True)
        client.run(["python3", "-c", write, KNOWN_HOSTS], input=f"{SERVER} {line}\n", check=True)
        _prepared[pg.name] = Setup(pg, request.param, line)
    return _prepared[pg.name]


OPENSSH = [
    "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", "ConnectTimeout=10",
    "-i", KEY,
]  # fmt: skip


def _ssh(
    setup: Setup, *argv: str, user: str = USER, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return setup.pg.host("client").run(
        ["ssh", *OPENSSH, f"{user}@{SERVER}", *argv], timeout=timeout, input=input
    )


def _python(setup: Setup, source: str, *args: object, timeout: float = 180) -> Any:
    return run_json(setup.pg.host("client"), textwrap.dedent(source), *args, timeout=timeout)


#: where the engines differ, exactly how: what -> (the builtin engine's, OpenSSH's sshd's);
#: the rest of each test holds for both (docs/login-and-files.md, "OpenSSH as the
#: second engine", lists these and why each is allowed)
DIFFERENCES: dict[str, tuple[Any, Any]] = {
    # RFC 4253 4.2: the software version is the server's own
    "software version": ("AsyncSSH", "OpenSSH"),
    # RFC 4254 6.4 leaves which variables to take to the server; sshd takes
    # AcceptEnv's (LANG LC_*, as Debian's sshd_config), the builtin all but LD_*
    "variables taken from the client": (["GREETING", "LC_NETPLAY"], ["LC_NETPLAY"]),
    # the service's log, in each one's words
    "log of a login": (
        f"{USER} logged in from {CLIENT} (public key)",
        f"Accepted publickey for {USER} from {CLIENT}",
    ),
    "log of a wrong password": (
        f"failed password for '{USER}' from {CLIENT}",
        f"Failed password for {USER} from {CLIENT}",
    ),
    "log of a client that stopped answering": (
        f"connection from {CLIENT} lost: Client not responding to keepalive",
        f"Timeout, client not responding from user {USER} {CLIENT}",
    ),
    # a second after each wrong password; sshd slows them only through PAM
    # (UsePAM no: it checks /etc/shadow itself)
    "a wrong password slowed": (True, False),
    # Debian's sshd lets a group write ~/.ssh/authorized_keys when the group is the
    # user's own and has no other member (its user-group-modes patch)
    "authorized_keys writable by the user's group": ("refused", "accepted"),
    # seconds (keepalive_interval = 1, three unanswered allowed) until a client that
    # stopped answering is dropped: sshd times ClientAliveInterval its own way
    # (measured: 8.3 s every run, where asyncssh takes 4.1)
    "seconds until a silent client is dropped": (4, 8),
    # max_per_client: the builtin engine lets the idlest connection give way to a
    # new one; sshd's PerSourceMaxStartups refuses new ones until the held ones
    # log in or reach LoginGraceTime
    "a client's new connection past its held ones": ("served", "refused"),
}


def expected(setup: Setup, what: str) -> Any:
    """What the engine under test does where the engines differ (DIFFERENCES)."""
    return DIFFERENCES[what][("builtin", "openssh").index(setup.engine)]


def test_each_difference_is_one() -> None:
    for what, (builtin, openssh) in DIFFERENCES.items():
        assert builtin != openssh, what


def test_the_health_check_wants_the_kept_host_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key exchange with a real server (asyncssh's, on loopback): healthy with the
    host key the service keeps, not with another, nor with nothing listening."""
    topology = loads(
        '[hosts.server]\nservices = [{ kind = "ssh", ports = [22] }]\n'
        '[lans.lan]\nhosts = { server = ["10.9.0.1/24"] }\n'
    )
    ctx = Context(topology, "server", topology.hosts[0].services[0], Store(tmp_path), tmp_path)
    monkeypatch.setattr(Context, "address", property(lambda self: "127.0.0.1"))
    builtin_ssh.public_host_key(ctx).parent.mkdir()
    builtin_ssh.public_host_key(ctx).write_text(PUBLIC_KEY)
    engine = registered()["ssh"]["builtin"]
    kept, other = (
        asyncssh.import_private_key(PRIVATE_KEY),
        asyncssh.generate_private_key("ssh-ed25519"),
    )
    for key, error in ((kept, None), (other, "another host key than the kept one")):
        with asyncssh_server(key) as port:
            monkeypatch.setattr(engine, "ports", lambda ctx, port=port: [port])
            if error is None:
                engine.health(ctx, 5.0)
            else:
                with pytest.raises(HealthError, match=f"port {port} presented {error}"):
                    engine.health(ctx, 5.0)
    with socket.socket() as bound:  # a port that refuses: bound, never listening
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        monkeypatch.setattr(engine, "ports", lambda ctx: [port])
        with pytest.raises(HealthError, match=f"port {port}: .*refused"):
            engine.health(ctx, 5.0)


def _logged(setup: Setup, text: str, ident: str = IDENT) -> bool:
    return text in "".join(setup.pg.logs(ident, lines=100))


def _unchanged(setup: Setup) -> None:
    now = setup.pg.service(IDENT)
    assert (now.state, now.restarts) == (ServiceState.RUNNING, 0), "".join(
        setup.pg.logs(IDENT, lines=30)
    )


# -- logging in and running commands -------------------------------------


def test_openssh_key_login_runs_a_command_with_its_status_output_and_environment(
    ssh: Setup,
) -> None:
    done = _ssh(
        ssh,
        "-o", "SetEnv=GREETING=hello LC_NETPLAY=hi LD_PRELOAD=nothing.so",
        'echo "$(id -un) $(id -u) $HOME ${SSH_CONNECTION%% *}"; pwd; echo oops >&2; '
        "env | grep -E '^(GREETING|LC_NETPLAY|LD_PRELOAD)=' | sort; exit 3",
    )  # fmt: skip
    uid = ssh.pg.host("server").run(["id", "-u", USER], check=True).stdout.strip()
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == [f"{USER} {uid} {HOME} {CLIENT}", HOME]
    assert [line.partition("=")[0] for line in lines[2:]] == expected(
        ssh, "variables taken from the client"
    )
    assert "oops" in done.stderr
    assert _logged(ssh, expected(ssh, "log of a login"))


AUTH_NONE = r"""
import json, sys, paramiko
transport = paramiko.Transport((sys.argv[1], 22))
transport.connect()
try:
    transport.auth_none("ann")
    allowed = None
except paramiko.BadAuthenticationType as exc:
    allowed = sorted(exc.allowed_types)
print(json.dumps({"allowed": allowed, "version": transport.remote_version}))
transport.close()
"""


def test_the_login_methods_offered_are_public_key_and_password(ssh: Setup) -> None:
    got = _python(ssh, AUTH_NONE, SERVER)
    assert got["allowed"] == ["password", "publickey"], got
    protocol, _, software = got["version"].partition("-2.0-")
    assert protocol == "SSH" and software.split("_")[0] == expected(ssh, "software version")


def test_a_key_not_in_the_topology_is_refused(ssh: Setup) -> None:
    other = "/tmp/ssh-test-other-key"
    client = ssh.pg.host("client")
    client.run(["rm", "-f", other, f"{other}.pub"])
    client.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other], check=True)
    argv = ["ssh", *OPENSSH[:-2], "-i", other, f"{USER}@{SERVER}", "true"]
    done = client.run(argv, timeout=60)
    assert done.returncode == 255 and "Permission denied" in done.stderr


def test_a_changed_host_key_is_refused_by_openssh(ssh: Setup) -> None:
    client = ssh.pg.host("client")
    wrong = "/tmp/ssh-test-wrong-known-hosts"
    other = "/tmp/ssh-test-hostkey"
    client.run(["rm", "-f", other, f"{other}.pub"])
    client.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other], check=True)
    line = client.run(["cat", f"{other}.pub"], check=True).stdout
    client.run(["sh", "-c", f"echo '{SERVER} {line.strip()}' > {wrong}"], check=True)
    argv = [
        "ssh",
        "-o",
        f"UserKnownHostsFile={wrong}",
        *OPENSSH,
        f"{USER}@{SERVER}",
        "true",
    ]  # first wins
    done = client.run(argv, timeout=60)
    assert done.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in done.stderr


PARAMIKO_PASSWORD = r"""
import json, sys, paramiko
server, known, password = sys.argv[1], sys.argv[2], sys.argv[3]
client = paramiko.SSHClient()
client.load_host_keys(known)
client.set_missing_host_key_policy(paramiko.RejectPolicy())
client.connect(server, username="ann", password=password, look_for_keys=False,
               allow_agent=False, timeout=10)
_in, out, err = client.exec_command("echo $USER; cat /etc/hostname; exit 42")
text = out.read().decode()
print(json.dumps({"out": text, "status": out.channel.recv_exit_status()}))
client.close()
"""


def test_paramiko_password_login_with_the_host_key_checked(ssh: Setup) -> None:
    got = _python(ssh, PARAMIKO_PASSWORD, SERVER, KNOWN_HOSTS, PASSWORD)
    assert got == {"out": "ann\nserver\n", "status": 42}


ASYNCSSH_PTY = r"""
import asyncio, json, sys, asyncssh
server, known, password = sys.argv[1], sys.argv[2], sys.argv[3]

async def read_until(stream, text, got):
    while text not in got[0]:
        got[0] += await asyncio.wait_for(stream.read(4096), 10)

async def main():
    async with asyncssh.connect(server, username="ann", password=password, client_keys=None,
                                known_hosts=known) as conn:
        proc = await conn.create_process(term_type="xterm", term_size=(100, 30))
        got = [""]
        await read_until(proc.stdout, "$ ", got)  # the prompt
        proc.stdin.write("stty size; echo TERM=$TERM; tty\n")
        await read_until(proc.stdout, "/dev/pts/", got)
        proc.change_terminal_size(132, 43)
        proc.stdin.write("stty size\n")
        await read_until(proc.stdout, "43 132", got)
        proc.stdin.write("exit 7\n")
        await proc.wait_closed()
        sleeper = await conn.create_process("sleep 60")
        await asyncio.sleep(0.5)
        sleeper.send_signal("TERM")
        await sleeper.wait_closed()
        print(json.dumps({"out": got[0], "status": proc.exit_status,
                          "signal": sleeper.exit_signal[0] if sleeper.exit_signal else None}))

asyncio.run(main())
"""


def test_an_interactive_shell_on_a_pty_with_window_size_and_signals(ssh: Setup) -> None:
    got = _python(ssh, ASYNCSSH_PTY, SERVER, KNOWN_HOSTS, PASSWORD)
    assert "ann@server" in got["out"], got  # bash's prompt, from ann's login shell
    assert "30 100" in got["out"] and "TERM=xterm" in got["out"]
    assert got["status"] == 7 and got["signal"] == "TERM"


ASYNCSSH_MODES = r"""
import asyncio, json, sys, asyncssh
server, known, password = sys.argv[1], sys.argv[2], sys.argv[3]

async def main():
    async with asyncssh.connect(server, username="ann", password=password, client_keys=None,
                                known_hosts=known) as conn:
        said = {}
        for name, modes in (("default", {}), ("sent", {asyncssh.PTY_ECHO: 0,
                asyncssh.PTY_ICRNL: 0, asyncssh.PTY_VINTR: 7, asyncssh.PTY_VQUIT: 255})):
            done = await conn.run("stty -a", term_type="xterm", term_modes=modes, timeout=10)
            said[name] = done.stdout
        print(json.dumps(said))

asyncio.run(main())
"""


def test_a_pty_has_the_terminal_modes_the_client_sent(ssh: Setup) -> None:
    got = _python(ssh, ASYNCSSH_MODES, SERVER, KNOWN_HOSTS, PASSWORD)
    words = {name: said.replace(";", " ").split() for name, said in got.items()}
    assert {"echo", "icrnl"} <= set(words["default"]), got
    assert "intr = ^C" in got["default"] and "quit = ^\\" in got["default"], got
    assert {"-echo", "-icrnl"} <= set(words["sent"]), got
    assert "intr = ^G" in got["sent"] and "quit = <undef>" in got["sent"], got


ASYNCSSH_SESSIONS = r"""
import asyncio, json, sys, asyncssh
server, known, password, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

async def main():
    async with asyncssh.connect(server, username="ann", password=password, client_keys=None,
                                known_hosts=known) as conn:
        opened, refused = [], 0
        for _ in range(count):
            try:
                opened.append(await conn.create_process("cat"))
            except asyncssh.ChannelOpenError:
                refused += 1
        opened[0].stdin.write_eof()  # one ends: room for another
        await opened[0].wait_closed()
        for _ in range(50):  # sshd frees its place a moment after the close
            try:
                again = await conn.run("echo again", timeout=10)
                break
            except asyncssh.ChannelOpenError:
                await asyncio.sleep(0.1)
        for process in opened[1:]:
            process.stdin.write_eof()
            await process.wait_closed()
        print(json.dumps({"opened": len(opened), "refused": refused, "again": again.stdout}))

asyncio.run(main())
"""


def test_a_connection_holds_at_most_max_sessions_sessions(ssh: Setup) -> None:
    got = _python(ssh, ASYNCSSH_SESSIONS, SERVER, KNOWN_HOSTS, PASSWORD, 12)
    assert got == {"opened": 10, "refused": 2, "again": "again\n"}


def test_openssh_with_a_pty_runs_a_login_shell(ssh: Setup) -> None:
    done = _ssh(ssh, "-tt", input="echo MARK-$((6*7)); exit 5\n")
    assert done.returncode == 5, done.stderr
    assert "MARK-42" in done.stdout


# -- files ------------------------------------------------------------------

MAKE_FILE = r"""
import hashlib, json, os, random, sys
data = random.Random(sys.argv[2]).randbytes(int(sys.argv[3]))
open(sys.argv[1], "wb").write(data)
print(json.dumps(hashlib.sha256(data).hexdigest()))
"""
HASH = r"""
import hashlib, json, sys
print(json.dumps([hashlib.sha256(open(p, "rb").read()).hexdigest() for p in sys.argv[1:]]))
"""
SIZE = 20 * 1000 * 1000


def test_openssh_sftp_puts_and_gets_20_mb_byte_for_byte_and_renames_links_removes(
    ssh: Setup,
) -> None:
    client, server = ssh.pg.host("client"), ssh.pg.host("server")
    digest = _python(ssh, MAKE_FILE, "/tmp/big", "sftp", SIZE)
    server.run(["rm", "-rf", f"{HOME}/sftp"], check=True)
    batch = textwrap.dedent("""\
        mkdir sftp
        cd sftp
        put /tmp/big big
        get big /tmp/big.back
        rename big big2
        symlink big2 link
        mkdir sub
        ls -l
        rmdir sub
        rm link
        """)
    argv = ["sftp", *OPENSSH, "-b", "-", f"{USER}@{SERVER}"]
    done = client.run(argv, input=batch, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _python(ssh, HASH, "/tmp/big.back") == [digest]
    listing = done.stdout
    assert "big2" in listing and "link" in listing and "sub" in listing
    assert server.run(["ls", f"{HOME}/sftp"], check=True).stdout.split() == ["big2"]
    assert run_json(server, HASH, f"{HOME}/sftp/big2") == [digest]


def test_openssh_sftp_resumes_a_put_and_a_get(ssh: Setup) -> None:
    client, server = ssh.pg.host("client"), ssh.pg.host("server")
    digest = _python(ssh, MAKE_FILE, "/tmp/resume", "resume", 3_000_000)
    server.run(["sh", "-c", f"rm -rf /tmp/r && install -d -o {USER} /tmp/r"], check=True)
    client.run(["rm", "-f", "/tmp/resume.back"], check=True)
    batch = "put /tmp/resume /tmp/r/file\nget /tmp/r/file /tmp/resume.back\n"
    argv = ["sftp", *OPENSSH, "-b", "-", f"{USER}@{SERVER}"]
    assert client.run(argv, input=batch, timeout=60).returncode == 0
    server.run(["truncate", "-s", "1000000", "/tmp/r/file"], check=True)
    client.run(["truncate", "-s", "1234567", "/tmp/resume.back"], check=True)
    batch = "reput /tmp/resume /tmp/r/file\nreget /tmp/r/file /tmp/resume.back\n"
    done = client.run(argv, input=batch, timeout=60)
    assert done.returncode == 0, done.stderr
    assert run_json(server, HASH, "/tmp/r/file") == [digest]
    assert _python(ssh, HASH, "/tmp/resume.back") == [digest]


PARAMIKO_SFTP = r"""
import json, stat, sys, paramiko
server, known, password = sys.argv[1], sys.argv[2], sys.argv[3]
client = paramiko.SSHClient()
client.load_host_keys(known)
client.set_missing_host_key_policy(paramiko.RejectPolicy())
client.connect(server, username="ann", password=password, look_for_keys=False, allow_agent=False)
sftp = client.open_sftp()
base = "paramiko"  # in the home directory
try:
    sftp.mkdir(base)
except OSError:
    pass
with sftp.open(f"{base}/a", "w") as f:
    f.write(b"x" * 1000)
with sftp.open(f"{base}/a", "a") as f:  # resume: append the rest
    f.write(b"y" * 500)
sftp.rename(f"{base}/a", f"{base}/b")
sftp.symlink("b", f"{base}/c")
sftp.mkdir(f"{base}/d")
result = {
    "size": sftp.stat(f"{base}/b").st_size,
    "link": sftp.readlink(f"{base}/c"),
    "islink": stat.S_ISLNK(sftp.lstat(f"{base}/c").st_mode),
    "dir": stat.S_ISDIR(sftp.stat(f"{base}/d").st_mode),
    "list": sorted(sftp.listdir(base)),
    "cwd": sftp.normalize("."),
}
with sftp.open(f"{base}/b") as f:
    f.seek(995)
    result["tail"] = f.read(10).decode()
sftp.remove(f"{base}/c")
sftp.remove(f"{base}/b")
sftp.rmdir(f"{base}/d")
result["after"] = sftp.listdir(base)
try:
    sftp.stat(f"{base}/nothing")
except FileNotFoundError:
    result["missing"] = True
print(json.dumps(result))
"""


def test_paramiko_sftp_stat_listdir_rename_symlink_remove_and_append(ssh: Setup) -> None:
    got = _python(ssh, PARAMIKO_SFTP, SERVER, KNOWN_HOSTS, PASSWORD)
    assert got == {
        "size": 1500,
        "link": "b",
        "islink": True,
        "dir": True,
        "list": ["b", "c", "d"],
        "cwd": "/home/ann",
        "tail": "xxxxxyyyyy",
        "after": [],
        "missing": True,
    }


@pytest.mark.parametrize("mode", ["sftp", "legacy"])
def test_scp_copies_both_ways(ssh: Setup, mode: str) -> None:
    client, server = ssh.pg.host("client"), ssh.pg.host("server")
    digest = _python(ssh, MAKE_FILE, "/tmp/scp", mode, 2_000_000)
    flags = ["-O"] if mode == "legacy" else []
    there, back = f"{HOME}/scp-{mode}", f"/tmp/scp-{mode}.back"
    up = client.run(["scp", *flags, *OPENSSH, "/tmp/scp", f"{USER}@{SERVER}:{there}"], timeout=60)
    assert up.returncode == 0, up.stderr
    assert run_json(server, HASH, there) == [digest]
    down = client.run(["scp", *flags, *OPENSSH, f"{USER}@{SERVER}:{there}", back], timeout=60)
    assert down.returncode == 0, down.stderr
    assert _python(ssh, HASH, back) == [digest]


# -- forwarding -------------------------------------------------------------


def test_openssh_forwards_to_a_host_the_client_cannot_reach(ssh: Setup) -> None:
    client = ssh.pg.host("client")
    probe = f"import socket; socket.create_connection(('{WEB}', 7), timeout=2)"
    assert client.run(["python3", "-c", probe], timeout=30).returncode != 0
    done = _ssh(ssh, "-W", f"{WEB}:7", input="through the tunnel\n")  # direct-tcpip
    assert done.stdout == "through the tunnel\n", done.stderr


ASYNCSSH_FORWARD = r"""
import asyncio, json, sys, asyncssh
server, known, password, web = sys.argv[1:5]

async def main():
    async with asyncssh.connect(server, username="ann", password=password, client_keys=None,
                                known_hosts=known) as conn:
        local = await conn.forward_local_port("127.0.0.1", 0, web, 7)
        reader, writer = await asyncio.open_connection("127.0.0.1", local.get_port())
        writer.write(b"local forward\n")
        echoed = (await asyncio.wait_for(reader.readline(), 10)).decode()
        writer.close()

        async def answer(r, w):
            w.write(b"remote " + await r.readline())
            await w.drain()
            w.close()

        mine = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = mine.sockets[0].getsockname()[1]
        remote = await conn.forward_remote_port("", 0, "127.0.0.1", port)
        ask = ("import socket; s = socket.create_connection(('127.0.0.1', %d), timeout=10); "
               "s.sendall(b'hello\\n'); print(s.makefile().readline().strip())" % remote.get_port())
        result = await conn.run(f'python3 -c "{ask}"', timeout=30)
        print(json.dumps({"local": echoed, "remote": result.stdout.strip(),
                          "status": result.exit_status, "bound": remote.get_port() > 0}))

asyncio.run(main())
"""


def test_asyncssh_forwards_local_and_remote_ports(ssh: Setup) -> None:
    got = _python(ssh, ASYNCSSH_FORWARD, SERVER, KNOWN_HOSTS, PASSWORD, WEB)
    assert got == {
        "local": "local forward\n",
        "remote": "remote hello",
        "status": 0,
        "bound": True,
    }


GATEWAY = r"""
import asyncio, json, sys, asyncssh
server, port, key, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
PROBE = ("import json, socket, sys\n"
         "def reached(address):\n"
         "    try:\n"
         "        socket.create_connection((address, int(sys.argv[2])), timeout=5).close()\n"
         "        return True\n"
         "    except OSError:\n"
         "        return False\n"
         "print(json.dumps([reached('127.0.0.1'), reached(sys.argv[1])]))\n")

async def main():
    known = asyncssh.import_known_hosts(f"[{server}]:{port} {key}\n" if port != 22 else
                                        f"{server} {key}\n")
    async with asyncssh.connect(server, port, username="ann", password=password,
                                client_keys=None, known_hosts=known) as conn:
        where = {}
        for asked in ("", "localhost", server):
            listener = await conn.forward_remote_port(asked, 0, "127.0.0.1", 9)
            probe = await conn.run(f"python3 - {server} {listener.get_port()}", input=PROBE,
                                   timeout=30)
            where[asked or "(any)"] = json.loads(probe.stdout)
            listener.close()
        print(json.dumps(where))

asyncio.run(main())
"""


def test_remote_forwards_listen_on_loopback_unless_gateway_ports(ssh: Setup) -> None:
    """[loopback reached, the host's address reached] for each address the client
    asks for: gateway_ports = false (server) binds loopback whatever is asked,
    true (web's port 2222) every address, as sshd's GatewayPorts no and yes."""
    loopback = _python(ssh, GATEWAY, SERVER, 22, ssh.host_key, PASSWORD)
    assert loopback == {"(any)": [True, False], "localhost": [True, False], SERVER: [True, False]}
    web_key = ssh.pg.paths.service_data / "web" / "ssh" / "ssh_host_ed25519_key.pub"
    everywhere = run_json(
        ssh.pg.host("server"),
        textwrap.dedent(GATEWAY),
        WEB,
        GATEWAY_PORT,
        web_key.read_text().strip(),
        PASSWORD,
        timeout=120,
    )
    assert everywhere == {"(any)": [True, True], "localhost": [True, True], WEB: [True, True]}


# -- brandon: his own account, files and authorized_keys ---------------------


def test_brandon_logs_in_with_his_password_and_runs_as_himself(ssh: Setup) -> None:
    got = _python(
        ssh, PARAMIKO_PASSWORD.replace('"ann"', '"brandon"'), SERVER, KNOWN_HOSTS, "abc123"
    )
    assert got == {"out": "brandon\nserver\n", "status": 42}
    done = _ssh(ssh, "id -un; pwd; touch /root/nope", user="brandon")
    assert done.stdout.splitlines()[:2] == ["brandon", "/home/brandon"], done.stderr
    assert done.returncode != 0 and "Permission denied" in done.stderr


def test_brandon_sftp_has_his_permissions(ssh: Setup) -> None:
    client = ssh.pg.host("client")
    argv = ["sftp", *OPENSSH, "-b", "-", f"brandon@{SERVER}"]
    done = client.run(argv, input="put /etc/hostname mine\n", timeout=60)
    assert done.returncode == 0, done.stderr
    owner = ssh.pg.host("server").run(["stat", "-c", "%U", "/home/brandon/mine"], check=True)
    assert owner.stdout == "brandon\n"
    refused = client.run(argv, input="put /etc/hostname /root/not-his\n", timeout=60)
    assert refused.returncode != 0


def test_brandon_s_authorized_keys_in_the_host_let_a_key_in_unless_others_may_write_it(
    ssh: Setup,
) -> None:
    client, server = ssh.pg.host("client"), ssh.pg.host("server")
    other = "/tmp/ssh-test-brandon-key"
    client.run(["rm", "-f", other, f"{other}.pub"])
    client.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other], check=True)
    public = client.run(["cat", f"{other}.pub"], check=True).stdout
    keys = "/home/brandon/.ssh/authorized_keys"
    add = f"mkdir -p /home/brandon/.ssh && cat >> {keys} && chown -R brandon: /home/brandon/.ssh"
    server.run(["sh", "-c", add], input=public, check=True)
    argv = ["ssh", *OPENSSH[:-2], "-i", other, f"brandon@{SERVER}", "id -un"]
    assert client.run(argv, timeout=60).stdout == "brandon\n"

    def with_mode(mode: str) -> str:
        server.run(["chmod", f"{mode}+w", keys], check=True)
        try:
            done = client.run(argv, timeout=60)
        finally:
            server.run(["chmod", f"{mode}-w", keys], check=True)
        if done.returncode == 255 and "Permission denied" in done.stderr:
            return "refused"
        assert done.stdout == "brandon\n", done.stderr
        return "accepted"

    assert with_mode("o") == "refused"
    assert with_mode("g") == expected(ssh, "authorized_keys writable by the user's group")


# -- hostile clients ----------------------------------------------------------

WRONG_PASSWORDS = r"""
import json, sys, time, paramiko
server, known, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
transport = paramiko.Transport((server, 22))
transport.connect()
started, tries, ended = time.monotonic(), 0, ""
while tries < count:
    try:
        transport.auth_password("ann", f"wrong{tries}")
    except paramiko.AuthenticationException:
        tries += 1
    except (paramiko.SSHException, EOFError, OSError) as exc:
        ended = type(exc).__name__
        break
print(json.dumps({"tries": tries, "seconds": time.monotonic() - started, "ended": ended,
                  "active": transport.is_active()}))
"""


def test_wrong_passwords_are_slowed_and_end_the_connection_after_six(ssh: Setup) -> None:
    got = _python(ssh, WRONG_PASSWORDS, SERVER, KNOWN_HOSTS, 20)
    assert got["ended"] and not got["active"], got
    assert got["tries"] == 6, got  # max_auth_tries
    slowed = got["seconds"] >= got["tries"] * 1.0  # a second each
    assert slowed == expected(ssh, "a wrong password slowed"), got
    assert _logged(ssh, expected(ssh, "log of a wrong password"))
    _unchanged(ssh)


HAMMER = r"""
import sys, paramiko
print("hammering", flush=True)
while True:
    transport = paramiko.Transport((sys.argv[1], 22))
    try:
        transport.connect()
        while True:
            try:
                transport.auth_password("ann", "wrong")
            except paramiko.AuthenticationException:
                pass
    except (paramiko.SSHException, EOFError, OSError):
        transport.close()
"""


def test_a_wrong_password_loop_does_not_keep_others_out(ssh: Setup, spawn: Any) -> None:
    hammers = [
        spawn(ssh.pg.host("client"), [sys.executable, "-c", HAMMER, SERVER]) for _ in range(4)
    ]
    time.sleep(2)  # let them be at it (no readiness to wait for: they never succeed)
    started = time.monotonic()
    done = _ssh(ssh, "echo served")
    assert done.stdout == "served\n", done.stderr
    assert time.monotonic() - started < 10
    for hammer in hammers:
        assert hammer.running
        hammer.stop()
    _unchanged(ssh)


GARBAGE = r"""
import json, os, socket, struct, sys
server, what = sys.argv[1], sys.argv[2]
s = socket.create_connection((server, 22), timeout=10)
banner = s.recv(256)
if what == "packets":  # a version, then packets whose lengths and padding lie
    s.sendall(b"SSH-2.0-hostile\r\n")
    for size in (0xFFFFFFF0, 5, 1, 35000):
        try:
            s.sendall(struct.pack(">IB", size, 200) + os.urandom(64))
        except OSError:
            break
elif what == "version":  # no version line at all
    try:
        s.sendall(os.urandom(300000).replace(b"\n", b"x"))
    except OSError:  # closed before it all went: a fair answer
        pass
s.settimeout(10)
ended = ""
try:
    while s.recv(65536):
        pass
    ended = "closed"
except OSError as exc:
    ended = type(exc).__name__
print(json.dumps({"banner": banner.startswith(b"SSH-2.0-"), "ended": ended}))
"""


@pytest.mark.parametrize("what", ["packets", "version"])
def test_malformed_input_ends_that_connection_only(ssh: Setup, what: str) -> None:
    got = _python(ssh, GARBAGE, SERVER, what)
    assert got["banner"] and got["ended"] in ("closed", "ConnectionResetError"), got
    assert _ssh(ssh, "echo still").stdout == "still\n"
    _unchanged(ssh)


IDLE = r"""
import socket, sys, time
held = [socket.create_connection((sys.argv[1], 22), timeout=10) for _ in range(int(sys.argv[2]))]
print("holding", len(held), flush=True)
time.sleep(120)
"""
SLOWLORIS = r"""
import json, socket, sys, time
s = socket.create_connection((sys.argv[1], 22), timeout=30)
started = time.monotonic()
try:
    for byte in b"SSH-2.0-" + b"x" * 200:
        s.sendall(bytes([byte]))
        time.sleep(0.5)
    ended = "never"
except OSError as exc:
    ended = type(exc).__name__
print(json.dumps({"ended": ended, "after": time.monotonic() - started}))
"""


def test_many_idle_connections_do_not_keep_others_out(ssh: Setup, spawn: Any) -> None:
    idle = spawn(ssh.pg.host("client"), ["python3", "-c", IDLE, SERVER, "300"], timeout=60)
    assert idle.first_line == "holding 300"
    done = ssh.pg.host("server").run(
        ["ssh", "-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no",
         *OPENSSH[:-2], "-o", "PasswordAuthentication=no", f"{USER}@{SERVER}", "true"],
        timeout=30,
    )  # fmt: skip
    assert "Permission denied" in done.stderr  # it was served: no key there, so refused
    same_client = _ssh(ssh, "echo served", timeout=30)
    served = "served" if same_client.stdout == "served\n" else "refused"
    assert served == expected(ssh, "a client's new connection past its held ones"), same_client
    idle.stop()
    deadline = time.monotonic() + 10  # sshd sees the idle ones close
    while (again := _ssh(ssh, "echo served", timeout=30)).stdout != "served\n":
        assert time.monotonic() < deadline, again.stderr
        time.sleep(0.2)
    _unchanged(ssh)


ESTABLISHED = ["ss", "-Htn", "state", "established", "( sport = :22 )", "dst", CLIENT]


def test_a_client_that_stops_answering_keepalives_is_dropped(ssh: Setup, spawn: Any) -> None:
    server = ssh.pg.host("server")
    before = len(server.run(ESTABLISHED, check=True).stdout.splitlines())
    argv = ["ssh", *OPENSSH, f"{USER}@{SERVER}", "echo up; exec sleep 30"]
    client = spawn(ssh.pg.host("client"), argv, timeout=30)
    assert client.first_line == "up"
    assert len(server.run(ESTABLISHED, check=True).stdout.splitlines()) == before + 1
    os.killpg(client.pid, signal.SIGSTOP)  # it answers nothing from now on
    stopped = time.monotonic()
    try:
        while len(server.run(ESTABLISHED, check=True).stdout.splitlines()) > before:
            assert time.monotonic() - stopped < 20, "still connected"
            time.sleep(0.1)
        after = time.monotonic() - stopped
    finally:
        os.killpg(client.pid, signal.SIGCONT)
    seconds = expected(ssh, "seconds until a silent client is dropped")
    assert seconds - 1 < after < seconds + 3, after
    assert _logged(ssh, expected(ssh, "log of a client that stopped answering"))
    _unchanged(ssh)


def test_a_slowloris_client_is_cut_off_at_the_login_timeout(ssh: Setup) -> None:
    got = _python(ssh, SLOWLORIS, SERVER)
    assert got["ended"] != "never" and got["after"] < LOGIN_TIMEOUT_S + 5, got
    _unchanged(ssh)


# -- host keys and health -------------------------------------------------------


def test_host_keys_are_kept_private_and_survive_a_restart(ssh: Setup) -> None:
    directory = Path(ssh.pg.paths.service_data / "server" / "ssh")
    for name in ("ssh_host_ed25519_key", "ssh_host_ecdsa_key"):
        assert (directory / name).stat().st_mode & 0o777 == 0o600
    before = ssh.pg.service(IDENT)
    ssh.pg.control(IDENT, "restart")
    assert (directory / "ssh_host_ed25519_key.pub").read_text().strip() == ssh.host_key
    assert _ssh(ssh, "true").returncode == 0
    assert ssh.pg.service(IDENT).pid != before.pid

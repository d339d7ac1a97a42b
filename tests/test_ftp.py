"""The ftp engine with real clients: Python's ftplib, curl and lftp, from behind a NAT.

A small book: ``h1`` sits on a home LAN behind ``modem`` (NAT to the ISP's
LAN, connections from outside dropped); ``ftp`` is in a machine room behind
``router``; ``pub`` is a host on the ISP's LAN with a public address, and
``third`` one more, on the machine room's LAN (the target of a bounce).
Every client runs inside a host, TLS verified against the playground's CA.
The engine conformance suite (test_engines.py) checks its life as a service;
this module checks FTP itself, the NAT, the jail and the limits.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from netplay import Playground, ServiceState, Spawned
from netplay.topology import loads

FTP, FTP_NAME, MODEM_OUT = "10.130.1.2", "ftp.ftptest.test", "10.25.1.65"
PUB, THIRD = "10.25.1.9", "10.130.1.7"
CONNECT_TIMEOUT_S = 3
TIGHT_LOGIN_S = 3
TIGHT = (
    f"login_timeout = {TIGHT_LOGIN_S}, max_login_attempts = 2, max_per_client = 4, "
    "passive_ports = [50100, 50199]"
)
TOPOLOGY = f"""
name = "ftptest"
domain = "ftptest.test"

[hosts.h1]
routes = [{{ to = "default", via = "192.168.1.1" }}]

[hosts.modem]
forward = true
nat = "isp-lan"
routes = [{{ to = "default", via = "10.25.1.1" }}]

[hosts.router]
forward = true

[hosts.pub]
routes = [{{ to = "default", via = "10.25.1.1" }}]

[hosts.third]
routes = [{{ to = "default", via = "10.130.1.1" }}]

[hosts.ftp]
routes = [{{ to = "default", via = "10.130.1.1" }}]
services = [
    {{ kind = "ftp", connect_timeout = {CONNECT_TIMEOUT_S}, passive_ports = [50000, 50099] }},
    {{ kind = "ftp", name = "tight", ports = [2121], {TIGHT} }},
]

[users.brandon]
password = "abc123"

[users.carol]
password = "carol-secret"

[lans.isp-lan.hosts]
router = ["10.25.1.1/16"]
modem = ["{MODEM_OUT}/16"]
pub = ["{PUB}/16"]

[lans.home.hosts]
modem = ["192.168.1.1/24"]
h1 = ["192.168.1.11/24"]

[lans.room.hosts]
router = ["10.130.1.1/24"]
ftp = ["{FTP}/24"]
third = ["{THIRD}/24"]
"""

pytestmark = [pytest.mark.needs_playground, pytest.mark.netplay_topology(loads(TOPOLOGY))]

#: what every client script starts with: ftplib, TLS verified with the playground's CA
PRELUDE = r"""
import ftplib, hashlib, io, json, os, socket, ssl, sys, time
from netplay.services.engines.ftp import ImplicitFTP_TLS
FTP = sys.argv[1]
tls = ssl.create_default_context(cafile=os.environ["NETPLAY_CA"])
def out(value):
    print(json.dumps(value), flush=True)
"""


def _script(pg: Playground, host: str, code: str, *args: object, timeout: float = 120) -> Any:
    """``code`` (after PRELUDE) run in ``host`` with the server's address first; the
    JSON value of its last line."""
    argv = [sys.executable, "-c", PRELUDE + textwrap.dedent(code), FTP, *map(str, args)]
    done = pg.host(host).run(argv, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_it_is_up_with_its_ports(shared_playground: Playground) -> None:
    main = shared_playground.service("ftp/ftp")
    assert main.state is ServiceState.RUNNING
    assert main.listens == ("tcp/21", "tcp/990")
    assert shared_playground.service("ftp/tight").listens == ("tcp/2121",)


SESSION = r"""
ftp = ftplib.FTP_TLS(context=tls, timeout=20)
said = {"welcome": ftp.connect(FTP, 21)}
said["login"] = ftp.login("brandon", "abc123")  # AUTH TLS first: FTP_TLS does it
said["prot"] = ftp.prot_p()
data = os.urandom(300_000)
ftp.storbinary("STOR upload.bin", io.BytesIO(data))
said["size"] = ftp.size("upload.bin")
said["mdtm"] = ftp.sendcmd("MDTM upload.bin")
got = io.BytesIO()
ftp.retrbinary("RETR upload.bin", got.write)
said["same"] = got.getvalue() == data
rest = io.BytesIO()
ftp.retrbinary("RETR upload.bin", rest.write, rest=200_000)  # REST 200000, then RETR
said["resumed"] = rest.getvalue() == data[200_000:]
ftp.storbinary("STOR half.bin", io.BytesIO(data[:100_000]))
ftp.storbinary("STOR half.bin", io.BytesIO(data[100_000:]), rest=100_000)  # resumed upload
said["upload_resumed"] = ftp.size("half.bin") == len(data)
said["mkd"] = ftp.mkd("dir")
ftp.rename("upload.bin", "dir/moved.bin")
said["mlsd"] = {name: facts["type"] for name, facts in ftp.mlsd("dir")}
said["mlst"] = ftp.sendcmd("MLST dir/moved.bin")
lines = []
ftp.retrlines("LIST dir", lines.append)
said["list"] = lines
ftp.delete("dir/moved.bin")
ftp.delete("half.bin")
said["rmd"] = ftp.rmd("dir")
said["pwd"] = ftp.pwd()
said["peer"] = ftp.sock.getsockname()[0]
said["quit"] = ftp.quit()
out(said)
"""


def test_ftplib_over_tls_from_behind_the_nat(shared_playground: Playground) -> None:
    """A user's whole session from h1, behind the modem's NAT: AUTH TLS, PROT P,
    passive data connections, upload, download, resume both ways, SIZE, MDTM,
    MLSD, MLST, LIST, MKD, RNFR/RNTO, DELE, RMD."""
    said = _script(shared_playground, "h1", SESSION)
    assert said["welcome"].startswith("220 ") and FTP_NAME in said["welcome"]
    assert said["login"].startswith("230")
    assert said["prot"].startswith("200")
    assert said["size"] == 300_000
    assert said["mdtm"].startswith("213 2")
    assert said["same"] and said["resumed"] and said["upload_resumed"]
    assert said["mkd"] == "/dir"
    assert said["mlsd"] == {"moved.bin": "file"}
    assert "size=300000;" in said["mlst"] and "/dir/moved.bin" in said["mlst"]
    (line,) = said["list"]
    assert line.startswith("-") and "brandon" in line and line.endswith("moved.bin")
    assert said["rmd"].startswith("250") and said["pwd"] == "/"
    assert said["peer"] == "192.168.1.11", "h1 is behind the NAT"
    assert said["quit"].startswith("221")


def test_tls_on_the_data_channel_and_implicit_ftps(shared_playground: Playground) -> None:
    """PROT P puts listings and files in TLS, with AUTH TLS on 21 and from the first
    byte on 990 (implicit: data protected without asking); the certificate is
    verified for the server's name, and ftplib's data connections, which do not
    reuse the control connection's TLS session, are served."""
    said = _script(
        shared_playground,
        "h1",
        r"""
        said = {}
        for port, client in ((21, ftplib.FTP_TLS), (990, ImplicitFTP_TLS)):
            ftp = client(context=tls, timeout=20)
            ftp.connect(sys.argv[2], port)
            ftp.login("brandon", "abc123")
            if port == 21:
                ftp.prot_p()
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("LIST")
            said[port] = [type(conn).__name__, conn.version(), ftp.sock.version()]
            while conn.recv(65536):
                pass
            conn.close()
            ftp.voidresp()
            said[f"{port}-nlst"] = ftp.nlst()
            ftp.quit()
        out(said)
        """,
        FTP_NAME,
    )
    for port in ("21", "990"):
        kind, data_version, control_version = said[port]
        assert kind == "SSLSocket" and data_version.startswith("TLSv1.")
        assert control_version in ("TLSv1.2", "TLSv1.3")
    assert ".profile" in said["21-nlst"] and said["21-nlst"] == said["990-nlst"]


ANONYMOUS = r"""
ftp = ftplib.FTP(FTP, timeout=20)
said = {"login": ftp.login()}  # anonymous, any password
said["root"] = sorted(ftp.nlst())
said["tree"] = sorted(name for name, facts in ftp.mlsd("pub/tree/docs"))
binary = io.BytesIO()
ftp.retrbinary("RETR pub/sample.bin", binary.write)
sums = []
ftp.retrlines("RETR pub/SHA256SUMS", sums.append)
said["sha"] = [hashlib.sha256(binary.getvalue()).hexdigest() + "  sample.bin"] == sums
ftp.voidcmd("TYPE I")  # SIZE is refused in ASCII mode, where it would not be the size
said["size"] = ftp.size("pub/sample.bin")
text = []
ftp.retrlines("RETR pub/tree/docs/notes/nested.txt", text.append)
said["nested"] = text
ftp.cwd("../../..")
said["pwd"] = ftp.pwd()
refused = {}
for name, attempt in (
    ("STOR", lambda: ftp.storbinary("STOR new.txt", io.BytesIO(b"x"))),
    ("MKD", lambda: ftp.mkd("newdir")),
    ("DELE", lambda: ftp.delete("README.txt")),
    ("RNFR", lambda: ftp.rename("README.txt", "x.txt")),
    ("APPE", lambda: ftp.storbinary("APPE README.txt", io.BytesIO(b"x"))),
    ("SITE CHMOD", lambda: ftp.sendcmd("SITE CHMOD 777 README.txt")),
):
    try:
        attempt()
        refused[name] = "accepted!"
    except ftplib.error_perm as exc:
        refused[name] = str(exc)
said["refused"] = refused
ftp.quit()
out(said)
"""


def test_anonymous_reads_the_samples_and_cannot_write(shared_playground: Playground) -> None:
    said = _script(shared_playground, "h1", ANONYMOUS)
    assert said["login"].startswith("230") and "read-only" in said["login"]
    assert said["root"] == ["README.txt", "pub"]
    assert said["tree"] == ["notes", "rfc959.txt"]
    assert said["sha"] and said["size"] == 262144
    assert said["nested"] == ["Three levels down: pub/tree/docs/notes."]
    assert said["pwd"] == "/"
    for command, answer in said["refused"].items():
        assert answer.startswith("550 "), (command, answer)


def test_a_user_stays_in_the_home(shared_playground: Playground) -> None:
    """``..`` stops at the home, absolute paths are the home's, and a symlink that
    leads out of it is refused (one that stays inside is followed)."""
    ftp_host = shared_playground.host("ftp")
    for target, link in (
        ("/etc", "etc-link"),
        ("/etc/passwd", "passwd-link"),
        ("/home/carol", "carol-link"),
        (".profile", "profile-link"),
    ):
        ftp_host.run(["ln", "-sfn", target, f"/home/brandon/{link}"], check=True)
    said = _script(
        shared_playground,
        "h1",
        r"""
        ftp = ftplib.FTP_TLS(context=tls, timeout=20)
        ftp.connect(FTP, 21)
        ftp.login("brandon", "abc123")
        ftp.voidcmd("TYPE I")
        said = {"cwd": ftp.cwd("../../.."), "pwd": ftp.pwd()}
        def attempt(command):
            try:
                return ftp.sendcmd(command)
            except ftplib.Error as exc:
                return str(exc)
        for command in (
            "CWD /etc", "SIZE ../../etc/passwd", "SIZE /etc/passwd", "CWD etc-link",
            "SIZE passwd-link", "MDTM passwd-link", "MLST etc-link/passwd", "CWD carol-link",
            "RNFR passwd-link", "SIZE profile-link",
        ):
            said[command] = attempt(command)
        for path in ("../../etc/passwd", "passwd-link", "etc-link/passwd"):
            try:
                ftp.retrbinary(f"RETR {path}", lambda data: None)
                said[f"RETR {path}"] = "sent!"
            except ftplib.Error as exc:
                said[f"RETR {path}"] = str(exc)
        ftp.quit()
        out(said)
        """,
    )
    assert said.pop("cwd").startswith("250") and said.pop("pwd") == "/"
    assert said.pop("SIZE profile-link").startswith("213 ")
    for command, answer in said.items():
        assert answer.startswith("550 "), (command, answer)
        assert "root:" not in answer


@pytest.mark.skipif(os.geteuid() != 0, reason="rootless: files are the mapped user's")
def test_files_are_touched_as_the_user(shared_playground: Playground) -> None:
    """An upload is brandon's in the host; a file in his home that only root may
    read stays unread (the server, root, reads nothing for him)."""
    ftp_host = shared_playground.host("ftp")
    ftp_host.run(
        ["sh", "-c", "echo secret > /home/brandon/roots && chmod 600 /home/brandon/roots"],
        check=True,
    )
    said = _script(
        shared_playground,
        "h1",
        r"""
        ftp = ftplib.FTP(FTP, timeout=20)
        ftp.login("brandon", "abc123")
        ftp.storbinary("STOR mine.txt", io.BytesIO(b"brandon's"))
        ftp.mkd("mydir")
        try:
            ftp.retrbinary("RETR roots", lambda data: None)
            refused = "sent!"
        except ftplib.Error as exc:
            refused = str(exc)
        ftp.quit()
        out(refused)
        """,
    )
    assert said.startswith("550 ") and "ermission denied" in said
    owners = ftp_host.run(
        ["stat", "-c", "%U:%G %n", "/home/brandon/mine.txt", "/home/brandon/mydir"], check=True
    )
    assert owners.stdout.split("\n")[:2] == [
        "brandon:brandon /home/brandon/mine.txt",
        "brandon:brandon /home/brandon/mydir",
    ]


def test_curl_ftp_and_ftps(shared_playground: Playground) -> None:
    """curl: anonymous ftp://, implicit ftps:// on 990, and ftp:// with --ssl-reqd
    (AUTH TLS) as brandon, uploading and listing, in passive mode from behind the NAT."""
    script = f"""
    set -e
    cd /tmp
    curl -sS --max-time 30 --ftp-pasv ftp://{FTP}/pub/sample.bin -o sample.bin
    sha256sum sample.bin
    curl -sS --max-time 30 ftp://{FTP}/pub/SHA256SUMS
    curl -sS --max-time 30 --cacert "$NETPLAY_CA" ftps://{FTP_NAME}/README.txt | head -1
    echo curl-upload > curl.txt
    curl -sS --max-time 30 --cacert "$NETPLAY_CA" --ssl-reqd --ftp-pasv -u brandon:abc123 \
        -T curl.txt ftp://{FTP_NAME}/curl.txt
    curl -sS --max-time 30 --cacert "$NETPLAY_CA" --ssl-reqd -u brandon:abc123 \
        ftp://{FTP_NAME}/curl.txt
    curl -sS --max-time 30 --cacert "$NETPLAY_CA" -u brandon:abc123 --list-only \
        ftps://{FTP_NAME}/
    """
    done = shared_playground.host("h1").run(["sh", "-c", textwrap.dedent(script)], timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[0] == lines[1].split()[0]  # the download's SHA-256 is the listed one
    assert lines[2] == "Welcome to the netplay FTP server."
    assert lines[3] == "curl-upload"
    assert "curl.txt" in lines[4:]


def test_curl_refuses_a_server_it_cannot_verify(shared_playground: Playground) -> None:
    done = shared_playground.host("h1").run(
        ["curl", "-sS", "--max-time", "30", "--ssl-reqd", "--cacert", "/etc/hostname",
         f"ftp://{FTP_NAME}/"], timeout=60,
    )  # fmt: skip
    assert done.returncode != 0


@pytest.mark.skipif(not any(os.access(f"{d}/lftp", os.X_OK) for d in ("/usr/bin", "/bin")),
                    reason="lftp is not installed (apt-get install lftp)")  # fmt: skip
def test_lftp_with_tls_forced(shared_playground: Playground) -> None:
    script = f"""
    set -e
    cd /tmp
    rm -rf lftp-mirror lftp-pub
    echo lftp-upload > lftp.txt
    lftp -c 'set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file '"$NETPLAY_CA"'
      set net:max-retries 1; set net:timeout 15
      open -u brandon,abc123 ftp://{FTP_NAME}
      put lftp.txt; mkdir -p lftp-dir; put lftp.txt -o lftp-dir/again.txt
      mirror lftp-dir lftp-mirror
      rm -r lftp-dir; rm lftp.txt; cls -1'
    cat lftp-mirror/again.txt
    lftp -c 'set ssl:ca-file '"$NETPLAY_CA"'; set net:max-retries 1; set net:timeout 15
      open ftps://anonymous:guest@{FTP_NAME}; mirror pub lftp-pub'
    sha256sum lftp-pub/sample.bin
    cat lftp-pub/SHA256SUMS
    find lftp-pub -type f | sort
    """
    done = shared_playground.host("h1").run(["sh", "-c", textwrap.dedent(script)], timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    at = lines.index("lftp-upload")
    assert "lftp.txt" not in lines[:at] and "lftp-dir/" not in lines[:at]
    assert lines[at + 1].split()[0] == lines[at + 2].split()[0]
    assert lines[at + 3 :] == [
        "lftp-pub/SHA256SUMS",
        "lftp-pub/sample.bin",
        "lftp-pub/tree/data/numbers.csv",
        "lftp-pub/tree/docs/notes/nested.txt",
        "lftp-pub/tree/docs/rfc959.txt",
    ]


ACTIVE = r"""
said = {}
ftp = ftplib.FTP(FTP, timeout=20)
ftp.login()
ftp.set_pasv(False)  # active mode: ftplib sends PORT with the address it has
try:
    said["nlst"] = ftp.nlst("pub")
except ftplib.Error as exc:
    said["nlst"] = str(exc)
said["public"] = {}
for public in sys.argv[2:]:  # a PORT naming another address than the one ftplib has
    waiting = socket.create_server(("", 0))
    port = waiting.getsockname()[1]
    started = time.monotonic()
    try:
        ftp.sendcmd(f"PORT {public.replace('.', ',')},{port >> 8},{port & 255}")
        said["public"][public] = "connected!"
    except ftplib.Error as exc:
        said["public"][public] = str(exc)
    said.setdefault("seconds", []).append(time.monotonic() - started)
ftp.quit()
out(said)
"""


def test_active_mode_from_behind_the_nat_fails_and_says_why(shared_playground: Playground) -> None:
    """h1 names its private address in PORT; the server sees the modem's address and
    refuses (no data connection to anyone but the client: RFC 2577).  Naming the
    modem's public address instead: the modem itself answers the server's SYN with a
    reset (nothing listens there, nothing is forwarded in), so 425 at once."""
    said = _script(shared_playground, "h1", ACTIVE, MODEM_OUT)
    assert said["nlst"].startswith("501 Rejected data connection to foreign address 192.168.1.11:")
    assert said["public"][MODEM_OUT] == "425 Can't connect to specified address."
    assert said["seconds"][0] < CONNECT_TIMEOUT_S


def test_active_mode_works_for_a_client_with_a_public_address(
    shared_playground: Playground,
) -> None:
    said = _script(shared_playground, "pub", ACTIVE)
    assert said["nlst"] == ["SHA256SUMS", "sample.bin", "tree"]


def test_ftp_bounce_is_refused(shared_playground: Playground) -> None:
    """PORT and EPRT naming a third host (a bounce: the server as a port scanner or
    a relay) are refused, and so are privileged ports of the client itself; no
    connection reaches the third host."""
    listener = shared_playground.host("third").spawn(
        [sys.executable, "-c", "import socket; s = socket.create_server(('', 8080)); "
         "print('ready', flush=True); c, a = s.accept(); print('bounced from', a, flush=True)"],
    )  # fmt: skip
    try:
        said = _script(
            shared_playground,
            "pub",
            r"""
            ftp = ftplib.FTP(FTP, timeout=20)
            ftp.login("brandon", "abc123")
            said = []
            for command in ("PORT 10,130,1,7,31,144", "EPRT |1|10.130.1.7|8080|",
                            "PORT 10,25,1,9,0,25", "PORT 10,130,1,2,0,21"):
                try:
                    said.append(ftp.sendcmd(command))
                except ftplib.Error as exc:
                    said.append(str(exc))
            try:
                ftp.retrlines("LIST", lambda line: None)
                said.append("listed!")
            except ftplib.Error as exc:
                said.append(str(exc))
            ftp.quit()
            out(said)
            """,
        )
        assert said[0] == "501 Rejected data connection to foreign address 10.130.1.7:8080."
        assert said[1] == said[0]
        assert said[2] == '501 PORT against the privileged port "25" refused.'
        assert said[3].startswith("501 Rejected data connection to foreign address 10.130.1.2")
        assert said[4] == "listed!"  # ftplib's own PASV: still fine
        assert listener.running, "nothing connected to the third host"
    finally:
        listener.stop()


WRONG_PASSWORDS = r"""
print("trying", flush=True)
while True:
    ftp = ftplib.FTP(timeout=20)
    ftp.connect(FTP, int(sys.argv[2]))
    ftp.sendcmd("USER brandon")
    for attempt in range(10):
        started = time.monotonic()
        try:
            ftp.sendcmd("PASS wrong")
        except ftplib.error_perm as exc:
            print(json.dumps([attempt, round(time.monotonic() - started, 2), str(exc)]), flush=True)
            if "Disconnecting" in str(exc):
                break
        ftp.sendcmd("USER brandon")
    ftp.close()
"""

GOOD_LOGIN = r"""
started = time.monotonic()
ftp = ftplib.FTP(timeout=20)
ftp.connect(FTP, int(sys.argv[2]))
ftp.login("brandon", "abc123")
ftp.nlst()
ftp.quit()
out(time.monotonic() - started)
"""


def test_wrong_passwords_are_slowed_and_others_are_served(
    shared_playground: Playground, spawn: Callable[..., Spawned]
) -> None:
    """A client that tries passwords in a loop waits a second for each answer and is
    disconnected after max_login_attempts (2 on the tight service); meanwhile
    another client logs in and lists its home at once."""
    pg = shared_playground
    argv = [sys.executable, "-c", PRELUDE + WRONG_PASSWORDS, FTP, "2121"]
    guesser = spawn(pg.host("h1"), argv, timeout=30)
    assert guesser.first_line == "trying"
    lines = [guesser.readline(timeout=10)]
    for _ in range(3):
        assert _script(pg, "pub", GOOD_LOGIN, 2121) < 1.5
    lines.append(guesser.readline(timeout=10))
    assert guesser.running
    rest, _err = guesser.stop()
    tries = [json.loads(line) for line in [*lines, *rest.splitlines()] if line.startswith("[")]
    assert len(tries) >= 2
    for _attempt, seconds, answer in tries:
        assert seconds >= 0.9, "a wrong password is answered after a second"
        assert answer.startswith("530 Authentication failed.")
    assert all((attempt == 1) == answer.endswith("Disconnecting.") for attempt, _s, answer in tries)


IDLE = r"""
held, answers = [], {}
for _ in range(int(sys.argv[2])):
    sock = socket.create_connection((FTP, 21), timeout=10)
    code = sock.makefile("rb").readline()[:3].decode()
    answers[code] = answers.get(code, 0) + 1
    held.append(sock)
print(json.dumps(answers), flush=True)
time.sleep(3600)
"""


def test_idle_connections_are_limited_per_client_and_others_are_served(
    shared_playground: Playground, spawn: Callable[..., Spawned]
) -> None:
    """300 connections from behind the modem, held open: 16 (max_per_client) are
    greeted, the rest are told 421 and closed, and a client elsewhere is served."""
    pg = shared_playground
    argv = [sys.executable, "-c", PRELUDE + IDLE, FTP, "300"]
    idle = spawn(pg.host("h1"), argv, timeout=60)
    assert json.loads(idle.first_line or "") == {"220": 16, "421": 284}
    assert _script(pg, "pub", GOOD_LOGIN, 21) < 1.5
    assert idle.running


SLOW = r"""
socks = [socket.create_connection((FTP, int(sys.argv[2])), timeout=30) for _ in range(3)]
started = time.monotonic()
for sock in socks:
    sock.recv(1000)  # the greeting
line, ended = b"USER brandon but never the end of the line " * 10, {}
for i in range(10_000):
    for n, sock in enumerate(socks):
        if n in ended:
            continue
        try:
            sock.send(line[i % len(line) : i % len(line) + 1])
            sock.setblocking(False)
            said = sock.recv(1000)
            ended[n] = [round(time.monotonic() - started, 1), said.decode()]
        except BlockingIOError:
            pass
        except OSError as exc:
            ended[n] = [round(time.monotonic() - started, 1), repr(exc)]
        sock.setblocking(True)
    if len(ended) == len(socks):
        break
    time.sleep(0.2)
out(list(ended.values()))
"""


def test_a_slowloris_client_is_closed_at_the_login_timeout(
    shared_playground: Playground, spawn: Callable[..., Spawned]
) -> None:
    """Clients that dribble a command a byte at a time, never ending the line, are
    told 421 and closed once login_timeout (3 s on tight) has passed; meanwhile
    another client logs in."""
    pg = shared_playground
    slow = spawn(pg.host("h1"), [sys.executable, "-c", PRELUDE + SLOW, FTP, "2121"], ready=None)
    assert _script(pg, "pub", GOOD_LOGIN, 2121) < 1.5
    ended = json.loads(slow.readline(timeout=30))
    assert len(ended) == 3
    for seconds, said in ended:
        assert TIGHT_LOGIN_S - 0.5 <= seconds <= TIGHT_LOGIN_S + 3
        assert said.startswith("421 Login timed out.")


GARBAGE = r"""
said = {}
sock = socket.create_connection((FTP, 21), timeout=20)
replies = sock.makefile("rb")
replies.readline()
sock.sendall(b"".join(b"GARBAGE %d \x00\xff\r\n" % i for i in range(40)))
lines = [line.decode(errors="replace").rstrip() for line in replies]  # until it closes
said["garbage"] = [lines.count('500 Command "GARBAGE" not understood.'), lines[-1]]
sock = socket.create_connection((FTP, 21), timeout=20)
replies = sock.makefile("rb")
replies.readline()
sock.sendall(b"USER " + b"x" * 5000 + b"\r\n")
said["long"] = [line.decode().rstrip() for line in replies]
sock = socket.create_connection((FTP, 21), timeout=20)
replies = sock.makefile("rb")
replies.readline()
sock.sendall(b"\r\n\r\nNOOP\r\nUSER\r\nPASS\r\nRETR x\r\nPORT 1,2\r\nPASV x\r\nQUIT\r\n")
said["odd"] = [line.decode().rstrip() for line in replies]
out(said)
"""


def test_garbage_and_long_lines_end_the_connection_not_the_server(
    shared_playground: Playground,
) -> None:
    said = _script(shared_playground, "pub", GARBAGE)
    assert said["garbage"] == [30, "421 Too many errors, goodbye."]
    assert said["long"] == ["500 Command line too long."]
    assert said["odd"][-1] == "221 Goodbye."
    assert [line[:3] for line in said["odd"]] == [
        "500", "500", "200", "501", "503", "530", "530", "501", "221",
    ]  # fmt: skip
    assert _script(shared_playground, "pub", GOOD_LOGIN, 21) < 1.5


def test_no_restarts(shared_playground: Playground) -> None:
    """Last: after every client above, hostile ones too, the servers never died."""
    for name in ("ftp/ftp", "ftp/tight"):
        now = shared_playground.service(name)
        assert (now.state, now.restarts) == (ServiceState.RUNNING, 0), name

"""The ftp engines with real clients: Python's ftplib, curl and lftp, from behind a NAT.

A small book: ``h1`` sits on a home LAN behind ``modem`` (NAT to the ISP's
LAN, connections from outside dropped); ``ftp`` is in a machine room behind
``router``; ``pub`` is a host on the ISP's LAN with a public address, and
``third`` one more, on the machine room's LAN (the target of a bounce).
Every client runs inside a host, TLS verified against the playground's CA.
The engine conformance suite (test_engines.py) checks their life as services;
this module checks FTP itself, the NAT, the jail and the limits.

The protocol tests take ``server`` and run against both engines of the kind
(``ftp``'s services: pyftpdlib's, then vsftpd's where it is installed and
netplay runs as root): what the RFCs fix must hold for both, and where the
answers legitimately differ, ``DIFFERENCES`` says how, engine by engine, and
is asserted exactly.  The hostile-client tests of the builtin engine's own
limits (a login timeout, a cap on refused commands and on a line's length)
stay builtin-only: vsftpd has no such limits (see its engine's docstring);
the conformance suite sends hostile clients to both.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netplay import Playground, ServiceState, Spawned, TopologyError
from netplay.services import registered
from netplay.topology import loads

FTP, FTP_NAME, MODEM_OUT = "10.130.1.2", "ftp.ftptest.test", "10.25.1.65"
PUB, THIRD = "10.25.1.9", "10.130.1.7"
CONNECT_TIMEOUT_S = 3
TIGHT_LOGIN_S = 3
TIGHT = (
    f"login_timeout = {TIGHT_LOGIN_S}, max_login_attempts = 2, max_per_client = 4, "
    "passive_ports = [50100, 50199]"
)
VSFTPD_UNAVAILABLE = registered()["ftp"]["vsftpd"].unavailable()
#: vsftpd's services beside the builtin ones, on ports of their own (where it can run)
VSFTPD_MAIN = (
    'kind = "ftp", name = "vsftpd", engine = "vsftpd", ports = [2100, 2990], tls = [2990], '
    f"connect_timeout = {CONNECT_TIMEOUT_S}, passive_ports = [50200, 50299]"
)
VSFTPD_TIGHT = (
    'kind = "ftp", name = "vtight", engine = "vsftpd", ports = [2122], max_login_attempts = 2, '
    "max_per_client = 4, passive_ports = [50300, 50399]"
)
VSFTPD = "" if VSFTPD_UNAVAILABLE else f"\n    {{ {VSFTPD_MAIN} }},\n    {{ {VSFTPD_TIGHT} }},"
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
    {{ kind = "ftp", name = "tight", ports = [2121], {TIGHT} }},{VSFTPD}
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


@dataclass(frozen=True, slots=True)
class Server:
    """One engine's services on the ftp host: the main one's ports, and the tight one's."""

    engine: str
    service: str
    port: int
    tls_port: int
    tight: str
    tight_port: int


BUILTIN = Server("builtin", "ftp/ftp", 21, 990, "ftp/tight", 2121)
SERVERS = {
    "builtin": BUILTIN,
    "vsftpd": Server("vsftpd", "ftp/vsftpd", 2100, 2990, "ftp/vtight", 2122),
}

#: where the engines' answers differ and the RFCs allow both (or do not say), asserted
#: exactly by the tests below: what -> engine -> what it does
DIFFERENCES: dict[str, dict[str, Any]] = {
    # RFC 3659's MLSD and MLST: vsftpd has neither
    "MLSD, MLST": {"builtin": "offered", "vsftpd": "500 Unknown command."},
    # RFC 959 leaves LIST's format to the server; vsftpd, chrooted, cannot name the owner
    "LIST owner": {"builtin": "name", "vsftpd": "number"},
    # RFC 959: NLST of a directory sends "a list of file names"; vsftpd names them by path
    "NLST of a directory": {"builtin": "names", "vsftpd": "paths"},
    # RFC 3659 4: SIZE in ASCII mode is the size as transferred; pyftpdlib refuses it
    "SIZE in ASCII mode": {
        "builtin": "550 SIZE not allowed in ASCII mode.",
        "vsftpd": "213 262144",
    },
    # names that start with a dot, in NLST and LIST: vsftpd hides them, as ls does
    "dot files listed": {"builtin": True, "vsftpd": False},
    # reply texts (RFC 959 fixes the codes only)
    "anonymous login": {
        "builtin": "230 Anonymous access granted, read-only: files are in /pub.",
        "vsftpd": "230 Login successful.",
    },
    "anonymous write": {
        "builtin": "550 Not enough privileges.",
        "vsftpd": "550 Permission denied.",
    },
    "a file the user may not read": {
        "builtin": "550 Permission denied.",
        "vsftpd": "550 Failed to open file.",
    },
    # wrong passwords, the first and the last that max_login_attempts allows; then both close
    "wrong passwords": {
        "builtin": ["530 Authentication failed.", "530 Authentication failed. Disconnecting."],
        "vsftpd": ["530 Login incorrect.", "530 Login incorrect."],
    },
    # RFC 2577's refusals of a bounce: 501 (syntax of the argument) or 500
    "PORT to a third host": {
        "builtin": "501 Rejected data connection to foreign address 10.130.1.7:8080.",
        "vsftpd": "500 Illegal PORT command.",
    },
    "EPRT to a third host": {
        "builtin": "501 Rejected data connection to foreign address 10.130.1.7:8080.",
        "vsftpd": "500 Illegal EPRT command.",
    },
    "PORT to a privileged port": {
        "builtin": '501 PORT against the privileged port "25" refused.',
        "vsftpd": "500 Illegal PORT command.",
    },
    "PORT to the server itself": {
        "builtin": "501 Rejected data connection to foreign address 10.130.1.2:21.",
        "vsftpd": "500 Illegal PORT command.",
    },
    "PORT naming the NAT'd address": {
        "builtin": "501 Rejected data connection to foreign address 192.168.1.11:",
        "vsftpd": "500 Illegal PORT command.",
    },
    # PORT naming the modem (the client's address as the server sees it), where nothing
    # listens: pyftpdlib connects at PORT and says so; vsftpd at the transfer command
    "PORT to a closed port of the client": {
        "builtin": ["425 Can't connect to specified address."],
        "vsftpd": [
            "200 PORT command successful. Consider using PASV.",
            "425 Failed to establish connection.",
        ],
    },
}


def _engines() -> list[Any]:
    skip = [pytest.mark.skip(reason=VSFTPD_UNAVAILABLE)] if VSFTPD_UNAVAILABLE else []
    return [pytest.param(SERVERS["builtin"], id="builtin"),
            pytest.param(SERVERS["vsftpd"], id="vsftpd", marks=skip)]  # fmt: skip


@pytest.fixture(params=_engines())
def server(request: pytest.FixtureRequest) -> Server:
    """Each engine's services in turn: the test runs against both."""
    found: Server = request.param
    return found


def differs(what: str, server: Server) -> Any:
    return DIFFERENCES[what][server.engine]


#: what every client script starts with: ftplib, TLS verified with the playground's CA
PRELUDE = r"""
import ftplib, hashlib, io, json, os, socket, ssl, sys, time
from netplay.services.engines.ftp import ImplicitFTP_TLS
FTP, PORT, TLS_PORT, ARGS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
tls = ssl.create_default_context(cafile=os.environ["NETPLAY_CA"])
def out(value):
    print(json.dumps(value), flush=True)
def attempt(call, *args):
    try:
        return call(*args)
    except (ftplib.Error, EOFError) as exc:
        return str(exc)
"""


def _argv(code: str, server: Server, *args: object) -> list[str]:
    prelude = PRELUDE + textwrap.dedent(code)
    return [sys.executable, "-c", prelude, FTP, str(server.port), str(server.tls_port),
            *map(str, args)]  # fmt: skip


def _script(
    pg: Playground, host: str, code: str, server: Server, *args: object, timeout: float = 120
) -> Any:
    """``code`` (after PRELUDE) run in ``host`` with the server's address and ports
    first; the JSON value of its last line."""
    done = pg.host(host).run(_argv(code, server, *args), timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_it_is_up_with_its_ports(shared_playground: Playground, server: Server) -> None:
    main = shared_playground.service(server.service)
    assert (main.state, main.engine) == (ServiceState.RUNNING, server.engine)
    assert main.listens == (f"tcp/{server.port}", f"tcp/{server.tls_port}")
    assert shared_playground.service(server.tight).listens == (f"tcp/{server.tight_port}",)


SESSION = r"""
ftp = ftplib.FTP_TLS(context=tls, timeout=20)
said = {"welcome": ftp.connect(FTP, PORT)}
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
said["mlsd"] = attempt(lambda: {name: facts["type"] for name, facts in ftp.mlsd("dir")})
said["mlst"] = attempt(ftp.sendcmd, "MLST dir/moved.bin")
said["nlst"] = ftp.nlst("dir")
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


def test_ftplib_over_tls_from_behind_the_nat(shared_playground: Playground, server: Server) -> None:
    """A user's whole session from h1, behind the modem's NAT: AUTH TLS, PROT P,
    passive data connections, upload, download, resume both ways, SIZE, MDTM,
    MLSD and MLST (where offered), NLST, LIST, MKD, RNFR/RNTO, DELE, RMD."""
    said = _script(shared_playground, "h1", SESSION, server)
    assert said["welcome"].startswith("220 ") and FTP_NAME in said["welcome"]
    assert said["login"].startswith("230")
    assert said["prot"].startswith("200")
    assert said["size"] == 300_000
    assert said["mdtm"].startswith("213 2")
    assert said["same"] and said["resumed"] and said["upload_resumed"]
    assert said["mkd"] == "/dir"
    if differs("MLSD, MLST", server) == "offered":
        assert said["mlsd"] == {"moved.bin": "file"}
        assert "size=300000;" in said["mlst"] and "/dir/moved.bin" in said["mlst"]
    else:
        assert said["mlsd"] == said["mlst"] == differs("MLSD, MLST", server)
    names = {"names": ["moved.bin"], "paths": ["dir/moved.bin"]}
    assert said["nlst"] == names[differs("NLST of a directory", server)]
    (line,) = said["list"]
    assert line.startswith("-") and line.endswith(" moved.bin")
    owner = line.split()[2]
    assert ("name" if owner == "brandon" else "number" if owner.isdigit() else owner) == differs(
        "LIST owner", server
    )
    assert said["rmd"].startswith("250") and said["pwd"] == "/"
    assert said["peer"] == "192.168.1.11", "h1 is behind the NAT"
    assert said["quit"].startswith("221")


def test_tls_on_the_data_channel_and_implicit_ftps(
    shared_playground: Playground, server: Server
) -> None:
    """PROT P puts listings and files in TLS, with AUTH TLS on 21 and from the first
    byte on 990 (implicit: data protected without asking); the certificate is
    verified for the server's name, and ftplib's data connections, which do not
    reuse the control connection's TLS session, are served."""
    said = _script(
        shared_playground,
        "h1",
        r"""
        said = {}
        for name, port, client in (("auth", PORT, ftplib.FTP_TLS),
                                   ("implicit", TLS_PORT, ImplicitFTP_TLS)):
            ftp = client(context=tls, timeout=20)
            ftp.connect(ARGS[0], port)
            ftp.login("brandon", "abc123")
            if client is ftplib.FTP_TLS:
                ftp.prot_p()
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("LIST")
            said[name] = [type(conn).__name__, conn.version(), ftp.sock.version()]
            while conn.recv(65536):
                pass
            conn.close()
            ftp.voidresp()
            said[f"{name}-nlst"] = ftp.nlst()
            ftp.quit()
        out(said)
        """,
        server,
        FTP_NAME,
    )
    for name in ("auth", "implicit"):
        kind, data_version, control_version = said[name]
        assert kind == "SSLSocket" and data_version.startswith("TLSv1.")
        assert control_version in ("TLSv1.2", "TLSv1.3")
    assert (".profile" in said["auth-nlst"]) == differs("dot files listed", server)
    assert said["auth-nlst"] == said["implicit-nlst"]


ANONYMOUS = r"""
ftp = ftplib.FTP(timeout=20)
ftp.connect(FTP, PORT)
said = {"login": ftp.login()}  # anonymous, any password
said["root"] = sorted(ftp.nlst())
said["tree"] = sorted(name.rsplit("/", 1)[-1] for name in ftp.nlst("pub/tree/docs"))
said["mlsd"] = attempt(lambda: sorted(name for name, facts in ftp.mlsd("pub/tree/docs")))
binary = io.BytesIO()
ftp.retrbinary("RETR pub/sample.bin", binary.write)
sums = []
ftp.retrlines("RETR pub/SHA256SUMS", sums.append)
said["sha"] = [hashlib.sha256(binary.getvalue()).hexdigest() + "  sample.bin"] == sums
said["ascii size"] = attempt(ftp.sendcmd, "SIZE pub/sample.bin")  # ftplib left TYPE A
ftp.voidcmd("TYPE I")
said["size"] = ftp.size("pub/sample.bin")
text = []
ftp.retrlines("RETR pub/tree/docs/notes/nested.txt", text.append)
said["nested"] = text
ftp.cwd("../../..")
said["pwd"] = ftp.pwd()
refused = {}
for name, call in (
    ("STOR", lambda: ftp.storbinary("STOR new.txt", io.BytesIO(b"x"))),
    ("MKD", lambda: ftp.mkd("newdir")),
    ("DELE", lambda: ftp.delete("README.txt")),
    ("RNFR", lambda: ftp.rename("README.txt", "x.txt")),
    ("APPE", lambda: ftp.storbinary("APPE README.txt", io.BytesIO(b"x"))),
    ("SITE CHMOD", lambda: ftp.sendcmd("SITE CHMOD 777 README.txt")),
):
    try:
        call()
        refused[name] = "accepted!"
    except ftplib.error_perm as exc:
        refused[name] = str(exc)
said["refused"] = refused
ftp.quit()
out(said)
"""


def test_anonymous_reads_the_samples_and_cannot_write(
    shared_playground: Playground, server: Server
) -> None:
    said = _script(shared_playground, "h1", ANONYMOUS, server)
    assert said["login"] == differs("anonymous login", server)
    assert said["root"] == ["README.txt", "pub"]
    assert said["tree"] == ["notes", "rfc959.txt"]
    if differs("MLSD, MLST", server) == "offered":
        assert said["mlsd"] == ["notes", "rfc959.txt"]
    else:
        assert said["mlsd"] == differs("MLSD, MLST", server)
    assert said["sha"] and said["size"] == 262144
    assert said["ascii size"] == differs("SIZE in ASCII mode", server)
    assert said["nested"] == ["Three levels down: pub/tree/docs/notes."]
    assert said["pwd"] == "/"
    assert said["refused"] == dict.fromkeys(
        ("STOR", "MKD", "DELE", "RNFR", "APPE", "SITE CHMOD"), differs("anonymous write", server)
    )


def test_a_user_stays_in_the_home(shared_playground: Playground, server: Server) -> None:
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
        ftp.connect(FTP, PORT)
        ftp.login("brandon", "abc123")
        ftp.voidcmd("TYPE I")
        said = {"cwd": ftp.cwd("../../.."), "pwd": ftp.pwd()}
        for command in (
            "CWD /etc", "SIZE ../../etc/passwd", "SIZE /etc/passwd", "CWD etc-link",
            "SIZE passwd-link", "MDTM passwd-link", "MLST etc-link/passwd", "CWD carol-link",
            "RNFR passwd-link", "SIZE profile-link",
        ):
            said[command] = attempt(ftp.sendcmd, command)
        for path in ("../../etc/passwd", "passwd-link", "etc-link/passwd"):
            try:
                ftp.retrbinary(f"RETR {path}", lambda data: None)
                said[f"RETR {path}"] = "sent!"
            except ftplib.Error as exc:
                said[f"RETR {path}"] = str(exc)
        ftp.quit()
        out(said)
        """,
        server,
    )
    assert said.pop("cwd").startswith("250") and said.pop("pwd") == "/"
    assert said.pop("SIZE profile-link").startswith("213 ")
    mlst = said.pop("MLST etc-link/passwd")
    if differs("MLSD, MLST", server) != "offered":
        assert mlst == differs("MLSD, MLST", server)
    else:
        assert mlst.startswith("550 ")
    for command, answer in said.items():
        assert answer.startswith("550 "), (command, answer)
        assert "root:" not in answer


@pytest.mark.skipif(os.geteuid() != 0, reason="rootless: files are the mapped user's")
def test_files_are_touched_as_the_user(shared_playground: Playground, server: Server) -> None:
    """An upload is brandon's in the host; a file in his home that only root may
    read stays unread (the server, root, reads nothing for him)."""
    ftp_host = shared_playground.host("ftp")
    ftp_host.run(
        ["sh", "-c", "echo secret > /home/brandon/roots && chmod 600 /home/brandon/roots"],
        check=True,
    )
    mine, mydir = f"mine-{server.engine}.txt", f"mydir-{server.engine}"
    said = _script(
        shared_playground,
        "h1",
        r"""
        ftp = ftplib.FTP(timeout=20)
        ftp.connect(FTP, PORT)
        ftp.login("brandon", "abc123")
        ftp.storbinary(f"STOR {ARGS[0]}", io.BytesIO(b"brandon's"))
        ftp.mkd(ARGS[1])
        try:
            ftp.retrbinary("RETR roots", lambda data: None)
            refused = "sent!"
        except ftplib.Error as exc:
            refused = str(exc)
        ftp.quit()
        out(refused)
        """,
        server,
        mine,
        mydir,
    )
    assert said == differs("a file the user may not read", server)
    owners = ftp_host.run(
        ["stat", "-c", "%U:%G %n", f"/home/brandon/{mine}", f"/home/brandon/{mydir}"], check=True
    )
    ftp_host.run(["rm", "-rf", f"/home/brandon/{mine}", f"/home/brandon/{mydir}"], check=True)
    assert owners.stdout.split("\n")[:2] == [
        f"brandon:brandon /home/brandon/{mine}",
        f"brandon:brandon /home/brandon/{mydir}",
    ]


def test_curl_ftp_and_ftps(shared_playground: Playground, server: Server) -> None:
    """curl: anonymous ftp://, implicit ftps://, and ftp:// with --ssl-reqd (AUTH TLS)
    as brandon, uploading and listing, in passive mode from behind the NAT."""
    main, implicit = f"{FTP_NAME}:{server.port}", f"{FTP_NAME}:{server.tls_port}"
    script = f"""
    set -e
    cd /tmp
    curl -sS --max-time 30 --ftp-pasv ftp://{FTP}:{server.port}/pub/sample.bin -o sample.bin
    sha256sum sample.bin
    curl -sS --max-time 30 ftp://{FTP}:{server.port}/pub/SHA256SUMS
    curl -sS --max-time 30 --cacert "$NETPLAY_CA" ftps://{implicit}/README.txt | head -1
    echo curl-upload > curl.txt
    curl -sS --max-time 30 --cacert "$NETPLAY_CA" --ssl-reqd --ftp-pasv -u brandon:abc123 \
        -T curl.txt ftp://{main}/curl.txt
    curl -sS --max-time 30 --cacert "$NETPLAY_CA" --ssl-reqd -u brandon:abc123 \
        ftp://{main}/curl.txt
    curl -sS --max-time 30 --cacert "$NETPLAY_CA" -u brandon:abc123 --list-only \
        ftps://{implicit}/
    """
    done = shared_playground.host("h1").run(["sh", "-c", textwrap.dedent(script)], timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[0] == lines[1].split()[0]  # the download's SHA-256 is the listed one
    assert lines[2] == "Welcome to the netplay FTP server."
    assert lines[3] == "curl-upload"
    assert "curl.txt" in lines[4:]


def test_curl_refuses_a_server_it_cannot_verify(
    shared_playground: Playground, server: Server
) -> None:
    done = shared_playground.host("h1").run(
        ["curl", "-sS", "--max-time", "30", "--ssl-reqd", "--cacert", "/etc/hostname",
         f"ftp://{FTP_NAME}:{server.port}/"], timeout=60,
    )  # fmt: skip
    assert done.returncode != 0


@pytest.mark.skipif(not any(os.access(f"{d}/lftp", os.X_OK) for d in ("/usr/bin", "/bin")),
                    reason="lftp is not installed (apt-get install lftp)")  # fmt: skip
def test_lftp_with_tls_forced(shared_playground: Playground, server: Server) -> None:
    script = f"""
    set -e
    cd /tmp
    rm -rf lftp-mirror lftp-pub
    echo lftp-upload > lftp.txt
    lftp -c 'set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file '"$NETPLAY_CA"'
      set net:max-retries 1; set net:timeout 15
      open -u brandon,abc123 -p {server.port} ftp://{FTP_NAME}
      put lftp.txt; mkdir -p lftp-dir; put lftp.txt -o lftp-dir/again.txt
      mirror lftp-dir lftp-mirror
      rm -r lftp-dir; rm lftp.txt; cls -1'
    cat lftp-mirror/again.txt
    lftp -c 'set ssl:ca-file '"$NETPLAY_CA"'; set net:max-retries 1; set net:timeout 15
      open -p {server.tls_port} ftps://anonymous:guest@{FTP_NAME}; mirror pub lftp-pub'
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
ftp = ftplib.FTP(timeout=20)
ftp.connect(FTP, PORT)
ftp.login()
ftp.set_pasv(False)  # active mode: ftplib sends PORT with the address it has
said["nlst"] = attempt(ftp.nlst, "pub")
said["public"] = {}
for public in ARGS:  # a PORT naming another address than the one ftplib has
    waiting = socket.create_server(("", 0))
    port = waiting.getsockname()[1]
    started = time.monotonic()
    answers = said["public"][public] = []
    command = f"PORT {public.replace('.', ',')},{port >> 8},{port & 255}"
    answers.append(attempt(ftp.sendcmd, command))
    if answers[-1].startswith("200"):
        answers.append(attempt(ftp.sendcmd, "NLST"))
    said.setdefault("seconds", []).append(time.monotonic() - started)
ftp.quit()
out(said)
"""


def test_active_mode_from_behind_the_nat_fails_and_says_why(
    shared_playground: Playground, server: Server
) -> None:
    """h1 names its private address in PORT; the server sees the modem's address and
    refuses (no data connection to anyone but the client: RFC 2577).  Naming the
    modem's public address instead: the modem itself answers the server's SYN with a
    reset (nothing listens there, nothing is forwarded in), so 425 at once."""
    said = _script(shared_playground, "h1", ACTIVE, server, MODEM_OUT)
    assert said["nlst"].startswith(differs("PORT naming the NAT'd address", server))
    assert said["public"][MODEM_OUT] == differs("PORT to a closed port of the client", server)
    assert said["seconds"][0] < CONNECT_TIMEOUT_S


def test_active_mode_works_for_a_client_with_a_public_address(
    shared_playground: Playground, server: Server
) -> None:
    said = _script(shared_playground, "pub", ACTIVE, server)
    assert [name.rsplit("/", 1)[-1] for name in said["nlst"]] == [
        "SHA256SUMS",
        "sample.bin",
        "tree",
    ]


def test_ftp_bounce_is_refused(shared_playground: Playground, server: Server) -> None:
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
            ftp = ftplib.FTP(timeout=20)
            ftp.connect(FTP, PORT)
            ftp.login("brandon", "abc123")
            said = []
            for command in ("PORT 10,130,1,7,31,144", "EPRT |1|10.130.1.7|8080|",
                            "PORT 10,25,1,9,0,25", "PORT 10,130,1,2,0,21"):
                said.append(attempt(ftp.sendcmd, command))
            said.append(attempt(ftp.retrlines, "LIST", lambda line: None))
            ftp.quit()
            out(said)
            """,
            server,
        )
        assert said[:4] == [
            differs("PORT to a third host", server),
            differs("EPRT to a third host", server),
            differs("PORT to a privileged port", server),
            differs("PORT to the server itself", server),
        ]
        assert said[4].startswith("226 ")  # ftplib's own PASV: still fine
        assert listener.running, "nothing connected to the third host"
    finally:
        listener.stop()


WRONG_PASSWORDS = r"""
print("trying", flush=True)
while True:
    ftp = ftplib.FTP(timeout=20)
    ftp.connect(FTP, int(ARGS[0]))
    for attempt in range(10):
        try:
            ftp.sendcmd("USER brandon")
        except (EOFError, OSError):
            break  # closed after the last attempt
        started = time.monotonic()
        try:
            ftp.sendcmd("PASS wrong")
        except ftplib.error_perm as exc:
            print(json.dumps([attempt, round(time.monotonic() - started, 2), str(exc)]), flush=True)
    ftp.close()
"""

GOOD_LOGIN = r"""
started = time.monotonic()
ftp = ftplib.FTP(timeout=20)
ftp.connect(FTP, int(ARGS[0]))
ftp.login("brandon", "abc123")
ftp.nlst()
ftp.quit()
out(time.monotonic() - started)
"""


def test_wrong_passwords_are_slowed_and_others_are_served(
    shared_playground: Playground, spawn: Callable[..., Spawned], server: Server
) -> None:
    """A client that tries passwords in a loop waits a second for each answer and is
    disconnected after max_login_attempts (2 on the tight services); meanwhile
    another client logs in and lists its home at once."""
    pg = shared_playground
    guesser = spawn(pg.host("h1"), _argv(WRONG_PASSWORDS, server, server.tight_port), timeout=30)
    assert guesser.first_line == "trying"
    lines = [guesser.readline(timeout=10)]
    for _ in range(3):
        assert _script(pg, "pub", GOOD_LOGIN, server, server.tight_port) < 1.5
    lines.append(guesser.readline(timeout=10))
    assert guesser.running
    rest, _err = guesser.stop()
    tries = [json.loads(line) for line in [*lines, *rest.splitlines()] if line.startswith("[")]
    assert len(tries) >= 2
    for attempt, seconds, answer in tries:
        assert seconds >= 0.9, "a wrong password is answered after a second"
        assert answer == differs("wrong passwords", server)[attempt]


IDLE = r"""
held, answers = [], {}
for _ in range(int(ARGS[0])):
    sock = socket.create_connection((FTP, PORT), timeout=10)
    code = sock.makefile("rb").readline()[:3].decode()
    answers[code] = answers.get(code, 0) + 1
    held.append(sock)
print(json.dumps(answers), flush=True)
time.sleep(3600)
"""


def test_idle_connections_are_limited_per_client_and_others_are_served(
    shared_playground: Playground, spawn: Callable[..., Spawned], server: Server
) -> None:
    """300 connections from behind the modem, held open: 16 (max_per_client) are
    greeted, the rest are told 421 and closed, and a client elsewhere is served."""
    pg = shared_playground
    idle = spawn(pg.host("h1"), _argv(IDLE, server, 300), timeout=60)
    assert json.loads(idle.first_line or "") == {"220": 16, "421": 284}
    assert _script(pg, "pub", GOOD_LOGIN, server, server.port) < 1.5
    assert idle.running


# The builtin engine's own limits (vsftpd has none of them: see its docstring).

SLOW = r"""
socks = [socket.create_connection((FTP, int(ARGS[0])), timeout=30) for _ in range(3)]
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
    slow = spawn(pg.host("h1"), _argv(SLOW, BUILTIN, 2121), ready=None)
    assert _script(pg, "pub", GOOD_LOGIN, BUILTIN, 2121) < 1.5
    ended = json.loads(slow.readline(timeout=30))
    assert len(ended) == 3
    for seconds, said in ended:
        assert TIGHT_LOGIN_S - 0.5 <= seconds <= TIGHT_LOGIN_S + 3
        assert said.startswith("421 Login timed out.")


GARBAGE = r"""
said = {}
sock = socket.create_connection((FTP, PORT), timeout=20)
replies = sock.makefile("rb")
replies.readline()
sock.sendall(b"".join(b"GARBAGE %d \x00\xff\r\n" % i for i in range(40)))
lines = [line.decode(errors="replace").rstrip() for line in replies]  # until it closes
said["garbage"] = [lines.count('500 Command "GARBAGE" not understood.'), lines[-1]]
sock = socket.create_connection((FTP, PORT), timeout=20)
replies = sock.makefile("rb")
replies.readline()
sock.sendall(b"USER " + b"x" * 5000 + b"\r\n")
said["long"] = [line.decode().rstrip() for line in replies]
sock = socket.create_connection((FTP, PORT), timeout=20)
replies = sock.makefile("rb")
replies.readline()
sock.sendall(b"\r\n\r\nNOOP\r\nUSER\r\nPASS\r\nRETR x\r\nPORT 1,2\r\nPASV x\r\nQUIT\r\n")
said["odd"] = [line.decode().rstrip() for line in replies]
out(said)
"""


def test_garbage_and_long_lines_end_the_connection_not_the_server(
    shared_playground: Playground,
) -> None:
    said = _script(shared_playground, "pub", GARBAGE, BUILTIN)
    assert said["garbage"] == [30, "421 Too many errors, goodbye."]
    assert said["long"] == ["500 Command line too long."]
    assert said["odd"][-1] == "221 Goodbye."
    assert [line[:3] for line in said["odd"]] == [
        "500", "500", "200", "501", "503", "530", "530", "501", "221",
    ]  # fmt: skip
    assert _script(shared_playground, "pub", GOOD_LOGIN, BUILTIN, 21) < 1.5


# vsftpd's own: where its files are, and what it refuses.


@pytest.mark.skipif(bool(VSFTPD_UNAVAILABLE), reason=str(VSFTPD_UNAVAILABLE))
def test_vsftpd_is_configured_in_the_data_directory_only(shared_playground: Playground) -> None:
    """vsftpd's configurations are in the host's data directory; the machine's
    /etc/vsftpd.conf is not what it runs with, and nothing of netplay's is in the
    machine's /etc/pam.d (the PAM service is Debian's vsftpd, read in the host)."""
    data = shared_playground.paths.service_data / "ftp"
    configs = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and argv[0] == b"/usr/sbin/vsftpd":
            configs.append(Path(argv[1].decode()))
    ours = sorted(c for c in configs if c.is_relative_to(data))
    assert [c.relative_to(data).as_posix() for c in sorted(set(ours))] == [
        "vsftpd/vsftpd/2100.conf", "vsftpd/vsftpd/2990.conf", "vsftpd/vtight/2122.conf",
    ]  # fmt: skip
    assert "implicit_ssl=YES" in (data / "vsftpd/vsftpd/2990.conf").read_text()
    assert "implicit_ssl=NO" in (data / "vsftpd/vsftpd/2100.conf").read_text()
    assert not [name for name in os.listdir("/etc/pam.d") if "netplay" in name]


@pytest.mark.skipif(bool(VSFTPD_UNAVAILABLE), reason=str(VSFTPD_UNAVAILABLE))
def test_vsftpd_refuses_an_option_it_has_no_equivalent_of() -> None:
    tight = VSFTPD_TIGHT.replace("max_login_attempts = 2", "login_timeout = 3")
    topology = loads(TOPOLOGY.replace(VSFTPD_TIGHT, tight))
    with pytest.raises(TopologyError) as caught:
        Playground.up(topology, name="ftptest-bad")
    assert caught.value.field is not None and caught.value.field.endswith(".login_timeout")
    assert "ftptest-bad" not in Playground.names()


def test_no_restarts(shared_playground: Playground) -> None:
    """Last: after every client above, hostile ones too, the servers never died."""
    names = ["ftp/ftp", "ftp/tight"] + ([] if VSFTPD_UNAVAILABLE else ["ftp/vsftpd", "ftp/vtight"])
    for name in names:
        now = shared_playground.service(name)
        assert (now.state, now.restarts) == (ServiceState.RUNNING, 0), name

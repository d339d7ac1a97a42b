"""The ``ftp`` kind, on pyftpdlib: FTP on port 21 (TLS with ``AUTH TLS``), and
implicit FTPS on 990, with the host's certificate.

Which ports are implicit TLS is the ``tls`` option's to say (default: 990
if it is one of the service's ports), as with pop3 and imap.  On every port
``PBSZ 0`` and ``PROT P`` put the data connections in TLS too (on an
implicit port they are protected from the start).  The server does not
require a data connection to reuse the control connection's TLS session
(pyftpdlib does not check it, and Python's ``ftplib.FTP_TLS`` never reuses
one; curl and lftp may offer one, and the session cache serves them).
``require_tls = true`` refuses USER before ``AUTH TLS`` and PASV/PORT
before ``PROT P`` on port 21 as well.

Users: the topology's, by password (checked against :mod:`netplay.accounts`'
hashes, in constant time; a wrong one is answered after a second, and
``max_login_attempts`` (3) wrong ones end the connection); a user must also
be in the host's ``/etc/passwd``, and is jailed in the home it names: the
home is ``/``, ``..`` stops there, and a symlink that resolves outside it is
refused (checked again on the file actually opened).  ``anonymous`` (or
``ftp``), with any password, reads (only) the sample area the engine makes
in the host's data directory (``Context.data``/ftp) on first start:
``README.txt``, ``pub/sample.bin`` (256 KiB of binary data, its SHA-256 in
``pub/SHA256SUMS``) and a tree, ``pub/tree/docs/rfc959.txt``,
``pub/tree/docs/notes/nested.txt``, ``pub/tree/data/numbers.csv``.
``anonymous = false`` turns anonymous logins off.

Files are touched with the user's permissions: one process, one thread,
pyftpdlib's event loop, and the effective uid, gid and groups switched to
the user's around each filesystem call (pyftpdlib's UnixAuthorizer's way),
so an upload is the user's file and a file the user may not read stays
unread.  A process per connection (pyftpdlib's MultiprocessFTPServer, then
setuid after login) would isolate users better, but costs a process per
connection, idle ones included (hundreds of idle clients would be hundreds
of processes); switching is safe here because nothing else runs in the
process meanwhile.  Anonymous reads as ``ftp`` or ``nobody`` where that
user can reach the area, else as the server (it is read-only either way).
Rootless (a user namespace that maps one user only) no switch is possible:
everyone's files are read and written as the mapped user, which the log
says at start; the jail holds all the same.

Data connections, and NAT: passive mode (PASV, EPSV) opens a port of
``passive_ports`` (default 61000 to 61999, above Linux's ephemeral ports)
on the server's own address, which the 227 reply names; the server is not
behind a NAT, so a client behind a home modem (h1-h4 in the book) connects
out to it, as it does for the control connection, and the modem lets it
through.  Active mode (PORT, EPRT) makes the server connect to the client:
behind a NAT the client names its private address (192.168.1.11), which is
not the address the server sees (the modem's), and the server refuses a
data connection to any address other than the control connection's peer
(RFC 2577: no FTP bounce), with ``501 Rejected data connection to foreign
address``.  A client that names
its modem's public address instead gets no connection either: nothing
listens on that port of the modem, which answers the server's SYN with a
reset (it forwards nothing in), and the server answers ``425`` at once (a
modem that dropped it silently would make that ``connect_timeout`` seconds).
A passive data connection from another address than the client's is
refused too (``425``).

Limits: ``max_connections`` (256) in all, counting data connections;
``max_per_client`` (16) per client address over all ports (h1-h3 share one
address behind their NAT), a connection beyond it answered ``421`` and
closed; ``idle_timeout`` (300 s) between commands, ``data_timeout`` (300 s)
of a stalled transfer, ``connect_timeout`` (30 s) for a data connection to
be made, ``login_timeout`` (60 s) from connecting to logging in; a command
line of more than 2048 bytes, or 30 refused commands, end the connection.
A password check (scrypt, about 40 ms) runs in the event loop, so others
wait that long; the second's delay after a wrong one blocks nobody (the
connection is set aside meanwhile).
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from netplay.errors import TopologyError
from netplay.services._base import Context, Engine, HealthError, Start, ensure_accounts
from netplay.services._registry import register

PORTS = (21, 990)
IMPLICIT_TLS = (990,)
PASSIVE_PORTS = (61000, 61999)  # above Linux's ephemeral ports (32768-60999)
IDLE_TIMEOUT_S = 300.0  # pyftpdlib's and vsftpd's idle_session_timeout
DATA_TIMEOUT_S = 300.0  # vsftpd's data_connection_timeout
CONNECT_TIMEOUT_S = 30.0  # pyftpdlib's, for PASV and PORT
LOGIN_TIMEOUT_S = 60.0
MAX_CONNECTIONS = 256
MAX_PER_CLIENT = 16  # h1-h3 share one address behind their NAT
MAX_LOGIN_ATTEMPTS = 3


class ImplicitFTP_TLS(ftplib.FTP_TLS):
    """``ftplib.FTP_TLS`` for implicit FTPS (port 990): TLS from the first byte.
    (The stdlib knows only AUTH TLS.)"""

    def connect(
        self,
        host: str = "",
        port: int = 0,
        timeout: float = -999,
        source_address: tuple[str, int] | None = None,
    ) -> str:
        if host:
            self.host = host
        if port:
            self.port = port
        if timeout != -999:
            self.timeout = timeout
        self.sock = socket.create_connection((self.host, self.port), self.timeout)
        self.af = self.sock.family
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        self.prot_p()  # PBSZ 0 and PROT P: what an implicit port starts with anyway
        return self.welcome


class FtpEngine(Engine):
    default_ports = PORTS
    #: what the health check wants FEAT to offer (what clients rely on)
    features: ClassVar[tuple[str, ...]] = ("MLST", "REST STREAM", "SIZE", "MDTM", "PROT", "EPSV")
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "tls": list,
        "require_tls": bool,
        "anonymous": bool,
        "passive_ports": list,
        "idle_timeout": (int, float),
        "data_timeout": (int, float),
        "connect_timeout": (int, float),
        "login_timeout": (int, float),
        "max_connections": int,
        "max_per_client": int,
        "max_login_attempts": int,
    }
    minimums: ClassVar[Mapping[str, float]] = {
        "idle_timeout": 1,
        "data_timeout": 1,
        "connect_timeout": 1,
        "login_timeout": 1,
        "max_connections": 1,
        "max_per_client": 1,
        "max_login_attempts": 1,
    }
    maximums: ClassVar[Mapping[str, float]] = {
        "idle_timeout": 86_400,
        "data_timeout": 86_400,
        "connect_timeout": 3600,
        "login_timeout": 3600,
        "max_connections": 65_536,
        "max_per_client": 65_536,
        "max_login_attempts": 100,
    }

    def tls_ports(self, ctx: Context) -> tuple[int, ...]:
        ports = self.ports(ctx)
        return tuple(ctx.option("tls", [p for p in IMPLICIT_TLS if p in ports]))

    def passive_ports(self, ctx: Context) -> tuple[int, int]:
        first, last = ctx.option("passive_ports", list(PASSIVE_PORTS))
        return int(first), int(last)

    def check(self, ctx: Context, where: str) -> None:
        super().check(ctx, where)
        for i, port in enumerate(self.tls_ports(ctx)):
            if port not in self.ports(ctx) or isinstance(port, bool):
                raise TopologyError(
                    f"{port!r} is not one of the service's ports", field=f"{where}.tls[{i}]"
                )
        passive = ctx.option("passive_ports", list(PASSIVE_PORTS))
        if (
            len(passive) != 2
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in passive)
            or not 1024 <= passive[0] <= passive[1] <= 65535
        ):
            raise TopologyError(
                "passive_ports must be [first, last], two ports from 1024 to 65535",
                field=f"{where}.passive_ports",
            )
        if set(self.ports(ctx)) & set(range(passive[0], passive[1] + 1)):
            raise TopologyError(
                "passive_ports must not include the service's own ports",
                field=f"{where}.passive_ports",
            )

    def settings(self, ctx: Context) -> dict[str, Any]:
        return {
            "ports": self.ports(ctx),
            "tls": self.tls_ports(ctx),
            "require_tls": bool(ctx.option("require_tls", False)),
            "anonymous": bool(ctx.option("anonymous", True)),
            "passive_ports": self.passive_ports(ctx),
            "idle_timeout": float(ctx.option("idle_timeout", IDLE_TIMEOUT_S)),
            "data_timeout": float(ctx.option("data_timeout", DATA_TIMEOUT_S)),
            "connect_timeout": float(ctx.option("connect_timeout", CONNECT_TIMEOUT_S)),
            "login_timeout": float(ctx.option("login_timeout", LOGIN_TIMEOUT_S)),
            "max_connections": int(ctx.option("max_connections", MAX_CONNECTIONS)),
            "max_per_client": int(ctx.option("max_per_client", MAX_PER_CLIENT)),
            "max_login_attempts": int(ctx.option("max_login_attempts", MAX_LOGIN_ATTEMPTS)),
        }

    def preload(self, contexts: Sequence[Context]) -> None:
        ensure_accounts(contexts)

    def start(self, ctx: Context) -> Start:
        settings = self.settings(ctx)

        def run() -> None:
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True
            )
            from netplay.services.engines._ftp_server import serve

            serve(ctx, settings)

        return run

    def health(self, ctx: Context, timeout: float) -> None:
        """On each port: the 220 greeting, TLS (AUTH TLS, or implicit) with the
        certificate verified, FEAT offering what clients rely on, and (where
        anonymous logins are on) a login, PWD and QUIT."""
        settings = self.settings(ctx)
        context = ctx.client_tls()
        for port in self.ports(ctx):
            client: ftplib.FTP_TLS
            if port in settings["tls"]:
                client = ImplicitFTP_TLS(context=context, timeout=timeout)
            else:
                client = ftplib.FTP_TLS(context=context, timeout=timeout)
            try:
                welcome = client.connect(ctx.address, port)
                if not welcome.startswith("220"):
                    raise HealthError(f"port {port} greets with {welcome!r}")
                if port not in settings["tls"]:
                    client.auth()
                features = client.sendcmd("FEAT")
                for wanted in self.features:
                    if wanted not in features:
                        raise HealthError(f"port {port} does not offer {wanted}: {features!r}")
                if settings["anonymous"]:
                    client.login("anonymous", "health@netplay")
                    client.pwd()
                client.quit()
            except (ftplib.Error, ssl.SSLError, EOFError) as exc:
                raise HealthError(f"port {port}: {exc}") from exc
            finally:
                with contextlib.suppress(OSError):
                    client.close()


register("ftp", "builtin", FtpEngine())

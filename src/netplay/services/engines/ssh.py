"""The ``ssh`` kind (port 22), built in: an SSH and SFTP server on asyncssh.

asyncssh is a library, not an sshd: it speaks the protocol (key exchange,
ciphers, channels, forwarding); logging users in, their sessions and their
files are ours (:mod:`netplay.services.engines._ssh_session`).  One asyncio
process serves each service; what a session runs (a command, a shell on a
pty, SFTP) runs in a child forked for it, as the logged-in user.

Host keys: an Ed25519 and an ECDSA (nistp256) key per host, made when the
service first starts and kept (mode 0600) in the host's data directory
(``Context.data``/ssh), so they stay the same across ``down`` and ``up``
(``down --purge`` forgets them).  The health check is a real SSH key
exchange whose host key must be the kept one and whose signature must
verify (:mod:`netplay.protocols.ssh_hostkey`, blocking, in the runner).

Login: the topology's users only (never the machine's own accounts), by
password (checked against :mod:`netplay.accounts`' hashes, in constant time,
a second's delay after a wrong one) or public key (the user's ``keys`` in the
topology, and ``~/.ssh/authorized_keys`` inside the host if it is the user's
and not writable by others).  A user must also be in the host's
``/etc/passwd``: a user who is not is refused, with a log line saying so.
As OpenSSH does: ``max_auth_tries`` (6) failures end a connection, and one
that has not logged in within ``login_timeout`` (120 s) is closed.

Hostile clients: connections are held as :class:`~netplay.services.Connections`
holds them (``max_connections``, 256, in all; ``max_per_client``, 16, per
client address; the idlest gives way), a connection holds at most
``max_sessions`` (10) sessions, a client that does not answer three
keep-alives ``keepalive_interval`` (60) seconds apart is gone, and what
asyncssh cannot parse ends that connection only.  A logged-in session has
no idle timeout, as with OpenSSH.

Port forwarding: local (``direct-tcpip``) connections are made, and remote
(``tcpip-forward``) listeners opened, by the server, inside the host's
network; as OpenSSH's ``GatewayPorts``, a remote listener is bound to the
loopback address, or with ``gateway_ports = true`` to every address,
whatever address the client asked for; only root may listen on a port
below 1024.

Memory: an idle service is one asyncio process (about 44 MB resident here,
9 MiB of it its own: asyncssh is imported once, by the preload, before the
runners are forked, and shared by every runner and server).  Passwords are
checked two at a time in threads, and glibc is told to give scrypt's 16 MiB
blocks back, so logins do not leave the server bigger.  One compatibility
fix: paramiko sends a new ``ssh-userauth`` service request before each login
attempt, which OpenSSH accepts and asyncssh 2.24 does not; each connection
accepts it again until a user has logged in (:func:`_userauth_again`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes.util
import logging
import os
import pwd
import re
import socket
import stat
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from netplay.errors import ProtocolError
from netplay.fabric import locked
from netplay.services._base import Context, Engine, HealthError, Start, ensure_accounts
from netplay.services._connections import Connections
from netplay.services._registry import register

if TYPE_CHECKING:
    import asyncssh

    from netplay.accounts import Accounts
    from netplay.protocols.ssh_hostkey import HostKey
    from netplay.services.engines._ssh_session import Account

log = logging.getLogger("netplay.ssh")

PORT = 22
KEYS_DIR = "ssh"
#: the host key types, made in this order; the first is the one the health check asks for
HOST_KEY_TYPES = (
    ("ssh-ed25519", "ssh_host_ed25519_key"),
    ("ecdsa-sha2-nistp256", "ssh_host_ecdsa_key"),
)
LOGIN_TIMEOUT_S = 120.0  # OpenSSH's LoginGraceTime
MAX_AUTH_TRIES = 6  # OpenSSH's MaxAuthTries
MAX_SESSIONS = 10  # OpenSSH's MaxSessions
MAX_CONNECTIONS = 256
MAX_PER_CLIENT = 16  # h1-h3 share one address behind their NAT
KEEPALIVE_S = 60.0
KEEPALIVE_COUNT = 3
ERROR_SLEEP_S = 1.0
MAX_AUTHORIZED_KEYS = 1 << 20  # bytes of ~/.ssh/authorized_keys read at most
CHECKERS = 2  # passwords checked at once (scrypt: 16 MiB and 40 ms each)
M_MMAP_THRESHOLD = -3  # mallopt(3)
MMAP_THRESHOLD = 1 << 20


def host_keys(directory: Path) -> list[Path]:
    """The host's private key files in ``directory``, made (under a lock, mode 0600)
    where missing."""
    import asyncssh

    directory.mkdir(mode=0o700, exist_ok=True)
    paths = []
    with locked(directory / ".lock"):
        for algorithm, name in HOST_KEY_TYPES:
            path = directory / name
            if not path.exists():
                key = asyncssh.generate_private_key(algorithm, comment=f"host key {name}")
                _write(path.with_name(f"{name}.pub"), key.export_public_key(), 0o644)
                _write(path, key.export_private_key(), 0o600)
            paths.append(path)
    return paths


def _write(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with open(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def public_host_key(ctx: Context) -> Path:
    """Where the host's Ed25519 public key is kept (for known_hosts)."""
    return ctx.data / KEYS_DIR / f"{HOST_KEY_TYPES[0][1]}.pub"


def _authorized_file(home: str, uid: int) -> list[str]:
    """The lines of ``home``/.ssh/authorized_keys, if it and its directory are the
    user's (or root's) and not writable by others (OpenSSH's StrictModes)."""
    path = Path(home) / ".ssh" / "authorized_keys"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []
    with open(fd, "rb") as f:
        for info in (os.stat(path.parent), os.fstat(fd)):
            if info.st_uid not in (uid, 0) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                log.info("ignoring %s: not the user's, or writable by others", path)
                return []
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        return f.read(MAX_AUTHORIZED_KEYS).decode("utf-8", "replace").splitlines()


class ServerLogic:
    """What one SSH connection is told by asyncssh: the methods of an
    ``asyncssh.SSHServer`` we decide (the class is made in the server process,
    where asyncssh is imported)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.conn: Any = None
        self.peer = "?"
        self.user = ""
        self.account: Account | None = None
        self.keys: set[bytes] = set()
        self.failures = 0
        self.sessions = 0
        self.how = ""

    # -- the connection --------------------------------------------------

    def connection_made(self, conn: Any) -> None:
        self.conn = conn
        _userauth_again(conn)
        self.peer = str(conn.get_extra_info("peername", ("?",))[0])
        self.service.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:  # not a close: a client that stopped answering, a protocol error
            log.info("connection from %s lost: %s", self.peer, exc)
        if self.conn is not None:
            self.service.connections.discard(self.conn)

    def debug_msg_received(self, msg: str, lang: str, always_display: bool) -> None:
        pass

    # -- logging in ------------------------------------------------------

    def begin_auth(self, username: str) -> bool:
        from netplay.services.engines._ssh_session import account_of

        self.user, self.account, self.keys = username, None, set()
        declared = self.service.users.get(username)
        if declared is None:
            return True
        try:
            entry = pwd.getpwnam(username)
        except KeyError:
            log.warning(
                "refusing %r from %s: the user is declared but has no account in this "
                "host (/etc/passwd)",
                username,
                self.peer,
            )
            return True
        self.account = account_of(entry)
        for line in (*declared.keys, *_authorized_file(entry.pw_dir, entry.pw_uid)):
            with contextlib.suppress(Exception):
                self.keys.add(_key_data(line))
        return True

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def kbdint_auth_supported(self) -> bool:
        return False

    async def validate_password(self, username: str, password: str) -> bool:
        loop = asyncio.get_running_loop()
        good = await loop.run_in_executor(None, self.service.accounts.check, username, password)
        if good and self.account is not None:
            self.how = "password"
            return True
        log.info("failed password for %r from %s", username, self.peer)
        await asyncio.sleep(ERROR_SLEEP_S)
        self._failed()
        return False

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self.account is not None and key.public_data in self.keys:
            self.how = "public key"
            return True
        self._failed()
        return False

    def auth_completed(self) -> None:
        log.info("%s logged in from %s (%s)", self.user, self.peer, self.how)
        self.service.connections.touch(self.conn)

    def _failed(self) -> None:
        self.failures += 1
        if self.failures >= self.service.settings["max_auth_tries"] and self.conn is not None:
            log.info("%s: %d failed logins, disconnecting", self.peer, self.failures)
            import asyncssh

            self.conn.disconnect(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "Too many authentication failures"
            )

    # -- sessions and forwarding -----------------------------------------

    def session_requested(self) -> Any:
        if self.account is None:
            return False
        return self._session(self.account)

    async def _session(self, account: Account) -> Any:
        """The new session, or a refusal at ``max_sessions``: decided in a task of its
        own, so once the loop has run what came before.  (asyncssh tells a session
        that its channel closed in a callback of the loop: a close and an open that
        came in one read found the closed session still counted, and the open was
        refused; sshd too frees a place a moment after the close.)"""
        import asyncssh

        await asyncio.sleep(0)
        if self.sessions >= self.service.settings["max_sessions"]:
            log.info("%s: refusing a session past max_sessions", self.user)
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "too many sessions"
            )
        self.sessions += 1
        self.service.connections.touch(self.conn)

        def ended() -> None:
            self.sessions -= 1

        def active() -> None:
            self.service.connections.touch(self.conn)

        return self.service.session(account, self.conn, self.service.rootless, ended, active)

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        if self.account is None:
            return False
        log.info("%s: forwarding to %s port %d", self.user, dest_host, dest_port)
        self.service.connections.touch(self.conn)
        return True

    async def server_requested(self, listen_host: str, listen_port: int) -> Any:
        if self.account is None or not 0 <= listen_port < 65536:
            return False
        if 0 < listen_port < 1024 and self.account.uid != 0:
            log.info("%s may not listen on port %d (below 1024)", self.user, listen_port)
            return False
        # OpenSSH's GatewayPorts: no binds the loopback address, yes every address,
        # whatever was asked
        bind = "" if self.service.settings["gateway_ports"] else "localhost"
        log.info("%s: listening on %s port %d for the client", self.user, bind, listen_port)
        return await self.conn.forward_local_port(bind, listen_port, listen_host, listen_port)


KEY_RE = re.compile(r"(?:^|\s)((?:ssh|ecdsa|sk)-[\w@.-]+)\s+([A-Za-z0-9+/]+=*)(?:\s|$)")


def _key_data(line: str) -> bytes:
    """The public key blob of one authorized_keys line (options before it ignored)."""
    import asyncssh

    found = KEY_RE.search(line)
    if found is None:
        raise ValueError("not a public key")
    return bytes(asyncssh.import_public_key(f"{found[1]} {found[2]}").public_data)


def _userauth_again(conn: Any) -> None:
    """Accept the ``ssh-userauth`` service request again until a user has logged in,
    as OpenSSH does: paramiko sends one before each try (a key, then a password),
    and asyncssh 2.24 disconnects at the second.  (Its packet dispatch is a class
    table looked up through the instance: this connection gets its own.)"""
    from asyncssh.constants import MSG_SERVICE_REQUEST

    handlers = dict(conn._packet_handlers)
    original = handlers[MSG_SERVICE_REQUEST]

    def again(self: Any, pkttype: int, pktid: int, packet: Any) -> Any:
        if not self._auth_complete and self._next_service is None and self._recv_encryption:
            self._next_service = b"ssh-userauth"
        return original(self, pkttype, pktid, packet)

    handlers[MSG_SERVICE_REQUEST] = again
    conn._packet_handlers = handlers


class Service:
    """What every connection of one server shares."""

    def __init__(self, ctx: Context, settings: Mapping[str, Any], accounts: Accounts) -> None:
        from netplay.services.engines._ssh_session import session_class, sessions_switch_user

        self.settings = settings
        self.accounts = accounts
        self.users = {user.name: user for user in ctx.topology.users}
        total = int(settings["max_connections"])
        self.connections = Connections(total, min(int(settings["max_per_client"]), total))
        self.rootless = not sessions_switch_user()
        self.session = session_class()


def return_big_blocks() -> None:
    """Every password check makes scrypt allocate 16 MiB; glibc would raise its mmap
    threshold after the first is freed and keep the next ones in its heaps (tens of
    megabytes held for good by an idle server).  A fixed threshold gives them back."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


async def serve(ctx: Context, settings: Mapping[str, Any]) -> None:
    """Listen until the process is ended."""
    import asyncssh

    from netplay.accounts import Accounts

    return_big_blocks()
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(CHECKERS, thread_name_prefix="password"))

    keys = host_keys(ctx.data / KEYS_DIR)
    server = type("Server", (ServerLogic, asyncssh.SSHServer), {})
    service = Service(ctx, settings, Accounts.ensure(ctx.data, ctx.topology.users))
    if service.rootless:
        log.warning(
            "rootless: this user namespace maps one user only, so sessions run as that "
            "user whoever logs in (their home, shell and name as the host's /etc/passwd says)"
        )
    listeners = [
        await asyncssh.listen(
            "",
            port,
            backlog=1024,
            server_factory=lambda: server(service),
            server_host_keys=[str(path) for path in keys],
            encoding=None,
            line_editor=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_pty=True,
            login_timeout=float(settings["login_timeout"]),
            keepalive_interval=float(settings["keepalive_interval"]),
            keepalive_count_max=KEEPALIVE_COUNT,
        )
        for port in settings["ports"]
    ]
    print(f"ssh: listening on port {' '.join(map(str, settings['ports']))}", flush=True)
    await asyncio.gather(*(listener.wait_closed() for listener in listeners))


class SshEngine(Engine):
    default_ports = (PORT,)
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "login_timeout": (int, float),
        "keepalive_interval": (int, float),
        "max_auth_tries": int,
        "max_sessions": int,
        "max_connections": int,
        "max_per_client": int,
        "gateway_ports": bool,
    }
    minimums: ClassVar[Mapping[str, float]] = {
        "login_timeout": 1,
        "keepalive_interval": 1,
        "max_auth_tries": 1,
        "max_sessions": 1,
        "max_connections": 1,
        "max_per_client": 1,
    }
    maximums: ClassVar[Mapping[str, float]] = {
        "login_timeout": 600,
        "keepalive_interval": 3600,
        "max_auth_tries": 100,
        "max_sessions": 1000,
        "max_connections": 65_536,
        "max_per_client": 65_536,
    }

    def settings(self, ctx: Context) -> dict[str, Any]:
        return {
            "ports": self.ports(ctx),
            "login_timeout": float(ctx.option("login_timeout", LOGIN_TIMEOUT_S)),
            "keepalive_interval": float(ctx.option("keepalive_interval", KEEPALIVE_S)),
            "max_auth_tries": int(ctx.option("max_auth_tries", MAX_AUTH_TRIES)),
            "max_sessions": int(ctx.option("max_sessions", MAX_SESSIONS)),
            "max_connections": int(ctx.option("max_connections", MAX_CONNECTIONS)),
            "max_per_client": int(ctx.option("max_per_client", MAX_PER_CLIENT)),
            "gateway_ports": bool(ctx.option("gateway_ports", False)),
        }

    def preload(self, contexts: Sequence[Context]) -> None:
        # a tenth of a second, which every server and health check would spend
        import_asyncssh()
        from netplay.services.engines import _ssh_session  # noqa: F401

        warm_key_exchange()
        ensure_accounts(contexts)

    def start(self, ctx: Context) -> Start:
        settings = self.settings(ctx)

        def run() -> None:
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True
            )
            logging.getLogger("asyncssh").setLevel(logging.WARNING)
            asyncio.run(serve(ctx, settings))

        return run

    def health(self, ctx: Context, timeout: float) -> None:
        """On each port, a key exchange whose host key is the kept one, with the
        server's signature over it checked (:mod:`netplay.protocols.ssh_hostkey`):
        blocking, in the runner, 3 ms and no event loop.  (asyncssh's client took
        28 ms of CPU a check in a forked child, and doubled each SSH runner's PSS
        when run in the runner.)"""
        kept = public_host_key(ctx).read_bytes().split()  # none yet: OSError, asked again
        failures = []
        for port in self.ports(ctx):
            try:
                key = host_key_of(ctx.address, port, timeout)
            except (OSError, ProtocolError) as exc:
                failures.append(f"port {port}: {str(exc) or type(exc).__name__}")
                continue
            if kept[1:2] != [base64.b64encode(key.blob)]:
                failures.append(f"port {port} presented another host key than the kept one")
        if failures:
            raise HealthError("; ".join(failures))


def warm_key_exchange() -> None:
    """Import the health check's key exchange and have OpenSSL set up, once in the
    process that forks the runners, the algorithms it and the servers use (X25519
    and Ed25519).  Set up in each runner and server, OpenSSL's tables took
    the book's SSH runners from 4.4 to 6.2 MiB of PSS each; shared, they are at
    5.0 MiB, and the servers went from 10.1 to 8.9 MiB."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from netplay.protocols import ssh_hostkey  # noqa: F401

    share = X25519PrivateKey.generate()
    share.exchange(X25519PrivateKey.generate().public_key())
    key = Ed25519PrivateKey.generate()
    key.public_key().verify(key.sign(b"netplay"), b"netplay")


def import_asyncssh() -> None:
    """Import asyncssh, which looks for liboqs in the dynamic linker's cache only.

    asyncssh looks for liboqs (post-quantum key exchanges) with
    ``ctypes.util.find_library``, which, for a library the cache does not
    know (Debian 12 has no liboqs), runs gcc and ld with an output file in
    /tmp: 50 ms here, and a process killed meanwhile (a test of a crash
    during ``up``) left the empty file behind.  Where ldconfig knows liboqs,
    it is found as before."""
    if "asyncssh" in sys.modules:
        return
    search = ctypes.util.find_library
    ctypes.util.find_library = getattr(ctypes.util, "_findSoname_ldconfig", search)
    try:
        import asyncssh  # noqa: F401
    finally:
        ctypes.util.find_library = search


def host_key_of(address: str, port: int, timeout: float) -> HostKey:
    """The Ed25519 host key the SSH server on ``port`` proves it holds, within
    ``timeout`` seconds in all (TimeoutError once they are over, however
    the server trickles its bytes)."""
    from netplay.protocols import NEED_DATA
    from netplay.protocols.ssh_hostkey import HostKeyClient

    client = HostKeyClient()
    deadline = time.monotonic() + timeout

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no host key within {timeout:g} s")
        return remaining

    with socket.create_connection((address, port), timeout=timeout) as sock:
        while (event := client.next_event()) is NEED_DATA:
            sock.settimeout(left())
            sock.sendall(client.data_to_send())
            sock.settimeout(left())
            client.receive_data(sock.recv(65536))
        with contextlib.suppress(OSError):  # the key is proved: a server gone already is fine
            sock.sendall(client.data_to_send())  # the DISCONNECT
    return event


register("ssh", "builtin", SshEngine())

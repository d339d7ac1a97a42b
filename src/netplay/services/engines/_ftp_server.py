"""The server side of the ``ftp`` engine: pyftpdlib's handlers, told who may log in,
where each user is jailed, and as whom every file is touched.

pyftpdlib and pyOpenSSL are imported in the server process only (they stay out
of the runner, and of every process that lists the engines, which imports this
module): the classes that extend pyftpdlib's are mixins, composed there.  What is ours:

- :class:`Authorizer`: the topology's users, their passwords checked against
  :mod:`netplay.accounts` (scrypt, constant time, also for a user who does
  not exist), the home and ids from the host's own ``/etc/passwd``; and
  ``anonymous`` (or ``ftp``), any password, read-only, rooted at the
  engine's sample area.
- :class:`Jail` (over pyftpdlib's AbstractedFS, :func:`jailed_fs`): a
  chroot-like view (the home is ``/``, ``..`` stops there, a symlink that
  resolves outside is refused), each of whose filesystem calls runs with the
  logged-in user's effective uid, gid and groups (:func:`_as_user`), and
  whose ``open`` checks again, on the descriptor it got, that the file is
  inside the jail (a symlink swapped in between the check and the open is
  refused too).
- :class:`Limits` (over pyftpdlib's TLS_FTPHandler, :func:`handler_class`):
  limits on line length, refused commands and the time to log in, the
  banner, implicit TLS (the handshake first, then the banner).

One process, one thread, pyftpdlib's own event loop.  Effective ids are
switched around each filesystem call, as pyftpdlib's UnixAuthorizer does:
that is safe only because nothing else runs in the process meanwhile (no
threads: glibc's seteuid changes every thread's ids).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import pwd
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from netplay.fabric import locked
from netplay.services._base import Context

log = logging.getLogger("netplay.ftp")

ANONYMOUS = ("anonymous", "ftp")
USER_PERMS = "elradfmwMT"  # pyftpdlib's letters: everything
ANONYMOUS_PERMS = "elr"  # change directory, list, read
MAX_LINE = 2048  # bytes of a command line, its end included
BAD_COMMANDS = 30  # refused commands before the connection is closed
ERROR_SLEEP_S = 1.0  # after a wrong password (vsftpd's delay_failed_login)
SAMPLES_DIR = "ftp"  # in Context.data: the anonymous area
MADE = ".ftp-samples-made"  # beside the area, once its samples are made: deletions stay
M_MMAP_THRESHOLD = -3  # mallopt(3)
MMAP_THRESHOLD = 1 << 20

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the files of a session are touched as; None: as the server itself."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


_switched: list[Identity] = []  # the identity in effect, while a call is made as it


@contextlib.contextmanager
def _as(identity: Identity | None) -> Iterator[None]:
    """Effective ids of ``identity`` for the duration (nested calls keep them).
    A change of effective ids clears PR_SET_PDEATHSIG: it is set again after."""
    if identity is None or _switched:
        yield
        return
    from netplay.fabric import die_with_parent

    uid, gid, groups = os.geteuid(), os.getegid(), os.getgroups()
    try:
        os.setgroups(identity.groups)
        os.setegid(identity.gid)
        os.seteuid(identity.uid)
        _switched.append(identity)
        yield
    finally:
        if _switched:
            _switched.pop()
        os.seteuid(uid)
        os.setegid(gid)
        os.setgroups(groups)
        die_with_parent(signal.SIGKILL)


def _as_user(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> T:
        with _as(self.identity):
            return method(self, *args, **kwargs)

    return call


class Jail:
    """What a user's view adds to pyftpdlib's AbstractedFS (a mixin, composed in
    :func:`jailed_fs`): the jail's root is ``/``; every call as the user."""

    root: str

    def __init__(self, root: str, cmd_channel: Any) -> None:
        super().__init__(os.path.realpath(root), cmd_channel)  # type: ignore[call-arg]
        self.identity: Identity | None = cmd_channel.authorizer.identity(cmd_channel.username)

    def open(self, filename: str, mode: str) -> Any:
        with _as(self.identity):
            file = open(filename, mode)  # pyftpdlib closes it
        try:  # as the server: a process that changed its euid cannot read its /proc/self/fd
            where = os.readlink(f"/proc/self/fd/{file.fileno()}")
        except OSError:
            where = ""
        if not self._inside(where):
            file.close()
            from pyftpdlib.exceptions import FilesystemError

            raise FilesystemError("Not a file of yours.")
        return file

    def _inside(self, path: str) -> bool:
        root = self.root.rstrip("/") + "/"
        return (path.rstrip("/") + "/").startswith(root)


AS_USER = (
    "mkstemp chdir mkdir listdir listdirinfo rmdir remove rename chmod stat utime lstat "
    "readlink isfile islink isdir getsize getmtime realpath lexists validpath"
).split()


def jailed_fs() -> type:
    """AbstractedFS with :class:`Jail`, each filesystem call of it made as the user."""
    from pyftpdlib.filesystems import AbstractedFS

    methods = {name: _as_user(getattr(AbstractedFS, name)) for name in AS_USER}
    return type("JailedFS", (Jail, AbstractedFS), methods)


class Authorizer:
    """pyftpdlib's authorizer interface, over the host's accounts and /etc/passwd."""

    def __init__(self, accounts: Any, anonymous: Path | None, switch: bool) -> None:
        self.accounts = accounts
        self.anonymous = anonymous  # the anonymous area, or None: no anonymous login
        self.switch = switch
        self.anonymous_identity = _anonymous_identity(anonymous) if switch else None

    def _entry(self, username: str) -> pwd.struct_passwd | None:
        try:
            return pwd.getpwnam(username)
        except KeyError:
            return None

    def is_anonymous(self, username: str) -> bool:
        return self.anonymous is not None and username in ANONYMOUS

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        if self.is_anonymous(username):
            return
        good = self.accounts.check(username, password)  # constant time, also for nobody
        if good and self._entry(username) is None:
            log.warning(
                "refusing %r: the user is declared but has no account in this host (/etc/passwd)",
                username,
            )
            good = False
        if not good:
            from pyftpdlib.exceptions import AuthenticationFailed

            raise AuthenticationFailed("Authentication failed.")

    def identity(self, username: str) -> Identity | None:
        if self.is_anonymous(username):
            return self.anonymous_identity
        entry = self._entry(username)
        if entry is None or not self.switch:
            return None
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
        return Identity(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)

    def get_home_dir(self, username: str) -> str:
        if self.is_anonymous(username):
            return str(self.anonymous)
        entry = self._entry(username)
        if entry is None:
            from pyftpdlib.exceptions import AuthenticationFailed

            raise AuthenticationFailed("Authentication failed.")
        return os.path.realpath(entry.pw_dir)

    def has_user(self, username: str) -> bool:
        return self.is_anonymous(username) or username in self.accounts

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        return perm in self.get_perms(username)

    def get_perms(self, username: str) -> str:
        return ANONYMOUS_PERMS if self.is_anonymous(username) else USER_PERMS

    def get_msg_login(self, username: str) -> str:
        if self.is_anonymous(username):
            return "Anonymous access granted, read-only: files are in /pub."
        return f"Logged in as {username}."

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        pass  # JailedFS switches around each call

    def terminate_impersonation(self, username: str) -> None:
        pass


def _anonymous_identity(area: Path | None) -> Identity | None:
    """``ftp`` (or ``nobody``) if that user can read the anonymous area; else None
    (the server's own ids, and a log line saying why)."""
    if area is None:
        return None
    for name in ("ftp", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        who = Identity(name, entry.pw_uid, entry.pw_gid, (entry.pw_gid,), str(area))
        try:
            with _as(who):
                os.listdir(area)
        except OSError:
            log.warning("anonymous reads as the server: %s cannot reach %s", name, area)
            return None
        return who
    return None


class Limits:
    """What a control connection adds to pyftpdlib's FTPHandler (a mixin)."""

    login_timeout: float = 60.0
    implicit: bool = False
    greeting: str = ""

    def handle(self: Any) -> None:
        self._bad = 0
        self._login_timer = self.ioloop.call_later(
            self.login_timeout, self._login_timed_out, _errback=self.handle_error
        )
        if not self.implicit:
            self.banner = self.greeting
            super().handle()  # type: ignore[misc]
            return
        self.on_connect()
        if not self._closed and not self._closing:
            self.secure_connection(self.ssl_context)
            self._pbsz = self._prot = True  # implicit TLS protects the data too

    def handle_ssl_established(self: Any) -> None:
        if self.implicit and not getattr(self, "_greeted", False):
            self._greeted = True
            self.banner = self.greeting
            from pyftpdlib.handlers import FTPHandler

            FTPHandler.handle(self)  # the 220 banner, now over TLS

    def flush_account(self: Any) -> None:
        super().flush_account()  # type: ignore[misc]
        if self.implicit:
            self._pbsz = self._prot = True

    def _login_timed_out(self: Any) -> None:
        if self.authenticated or self._closed:
            return
        if getattr(self, "_ssl_accepting", False):  # no TLS yet to say it in
            self.close()
            return
        self.respond("421 Login timed out.", logfun=log.info)
        self._end()

    def collect_incoming_data(self: Any, data: bytes) -> None:
        if getattr(self, "_ending", False):
            return  # closing: what comes is dropped
        if self._in_buffer_len + len(data) > MAX_LINE:
            self._in_buffer, self._in_buffer_len = [], 0
            self.respond_w_warning("500 Command line too long.")
            self._end()
            return
        self._in_buffer.append(data)
        self._in_buffer_len += len(data)

    def found_terminator(self: Any) -> None:
        if not getattr(self, "_ending", False):
            super().found_terminator()  # type: ignore[misc]

    def _end(self: Any) -> None:
        """Answer no more: what was said is sent, then the connection is closed."""
        self._ending = True
        self.close_when_done()

    def respond(self: Any, resp: str, logfun: Any = log.debug) -> None:
        super().respond(resp, logfun=logfun)  # type: ignore[misc]
        if resp[:3] in ("500", "501", "502", "503", "504", "530") and not self._closed:
            self._bad = getattr(self, "_bad", 0) + 1
            if self._bad >= BAD_COMMANDS and not getattr(self, "_ending", False):
                super().respond("421 Too many errors, goodbye.", logfun=log.info)  # type: ignore[misc]
                self._end()

    def handle_auth_success(self: Any, home: str, password: str, msg_login: str) -> None:
        super().handle_auth_success(home, password, msg_login)  # type: ignore[misc]
        self._bad = 0

    def close(self: Any) -> None:
        timer = getattr(self, "_login_timer", None)
        if timer is not None and not timer.cancelled:
            timer.cancel()
        super().close()  # type: ignore[misc]


def tls_context(ctx: Context) -> Any:
    """pyOpenSSL's context with the host's certificate, TLS 1.2 at least, no
    compression; sessions are cached but never required (ftplib does not reuse them)."""
    from OpenSSL import SSL

    cert, key = ctx.pki.server(ctx.host)
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    context.use_certificate_chain_file(str(cert))
    context.use_privatekey_file(str(key))
    context.check_privatekey()
    context.set_session_id(hashlib.sha256(ctx.id.encode()).digest()[:32])
    return context


def handler_class(
    ctx: Context, settings: Mapping[str, Any], authorizer: Authorizer, implicit: bool, tls: Any
) -> type:
    """The control connection's handler of one port, configured from the settings."""
    from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler
    from pyftpdlib.handlers.ftp.dispatchers import (
        ActiveDTP,
        PassiveDTP,
    )

    data = type("DataHandler", (TLS_DTPHandler,), {"timeout": settings["data_timeout"]})
    passive = type("Passive", (PassiveDTP,), {"timeout": settings["connect_timeout"]})
    active = type("Active", (ActiveDTP,), {"timeout": settings["connect_timeout"]})
    first, last = settings["passive_ports"]
    required = bool(settings["require_tls"])
    attributes = {
        "authorizer": authorizer,
        "abstracted_fs": jailed_fs(),
        "dtp_handler": data,
        "passive_dtp": passive,
        "active_dtp": active,
        "ssl_context": tls,
        "timeout": settings["idle_timeout"],
        "login_timeout": settings["login_timeout"],
        "max_login_attempts": settings["max_login_attempts"],
        "auth_failed_timeout": ERROR_SLEEP_S,
        "permit_foreign_addresses": False,  # no FTP bounce (RFC 2577)
        "permit_privileged_ports": False,
        "passive_ports": range(first, last + 1),
        "implicit": implicit,
        "tls_control_required": required or implicit,
        "tls_data_required": required or implicit,
        "greeting": f"netplay FTP server on {ctx.fqdn} ready.",
        "use_sendfile": True,
    }
    return type("Handler", (Limits, TLS_FTPHandler), attributes)


def _listener(port: int) -> socket.socket:
    """A listening socket on every address of the host, IPv6 and IPv4."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address: tuple[str, int] = ("::", port)
    except OSError:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address = ("0.0.0.0", port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(1024)
    return sock


def make_samples(area: Path) -> None:
    """The anonymous area's sample files, made once (see the engine's docstring), under
    a lock: a host's services start at once, and two ftp services share the area."""
    area.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(area, 0o755)
    with locked(area.parent / ".ftp-samples.lock"):
        if not (area.parent / MADE).exists():
            _write_samples(area)


def _write_samples(area: Path) -> None:
    binary = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(8192))
    files = {
        "README.txt": README,
        "pub/sample.bin": binary,
        "pub/SHA256SUMS": f"{hashlib.sha256(binary).hexdigest()}  sample.bin\n".encode(),
        "pub/tree/docs/rfc959.txt": RFC959.encode(),
        "pub/tree/docs/notes/nested.txt": b"Three levels down: pub/tree/docs/notes.\n",
        "pub/tree/data/numbers.csv": b"n,square\n"
        + b"".join(f"{n},{n * n}\n".encode() for n in range(100)),
    }
    for name, content in files.items():
        path = area / name
        for parent in reversed(path.relative_to(area).parents):
            (area / parent).mkdir(mode=0o755, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    (area.parent / MADE).write_text("the sample files were made; delete this to make them again\n")


README = b"""Welcome to the netplay FTP server.

This is the anonymous area: log in as "anonymous" (any password, your e-mail
address by tradition) and read; nothing here can be changed over FTP.

  /README.txt                 this file
  /pub/sample.bin             256 KiB of binary data (SHA-256 in /pub/SHA256SUMS)
  /pub/tree/docs/rfc959.txt   a text file, a few directories down
  /pub/tree/docs/notes/       a nested directory
  /pub/tree/data/numbers.csv  a small CSV file

The playground's users log in with their passwords and see their home.
"""

RFC959 = """RFC 959, File Transfer Protocol (1985), in one paragraph:

The client opens a control connection (port 21) and sends commands, one a
line (USER, PASS, CWD, LIST, RETR, STOR, QUIT); the server answers each with
a three-digit code.  Files and listings travel on a separate data connection:
in active mode (PORT) the server connects back to the client; in passive mode
(PASV) the client connects to a port the server opened for it.
"""


def serve(ctx: Context, settings: Mapping[str, Any]) -> None:
    """Listen on every port until the process is ended."""
    from pyftpdlib.ioloop import IOLoop
    from pyftpdlib.servers import FTPServer

    from netplay.accounts import Accounts
    from netplay.fabric import many_users

    with contextlib.suppress(OSError, AttributeError):  # see the ssh engine: scrypt's 16 MiB
        import ctypes

        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    area: Path | None = None
    if settings["anonymous"]:
        area = ctx.data / SAMPLES_DIR
        make_samples(area)
    switch = many_users()
    if not switch:
        log.warning(
            "rootless: this user namespace maps one user only, so files are read and "
            "written as that user whoever logs in (each user still jailed in their home)"
        )
    accounts = Accounts.ensure(ctx.data, ctx.topology.users)
    authorizer = Authorizer(accounts, area, switch)
    tls = tls_context(ctx)
    ioloop = IOLoop.instance()
    servers: list[Any] = []
    for port in settings["ports"]:
        implicit = port in settings["tls"]
        handler = handler_class(ctx, settings, authorizer, implicit, tls)
        server = FTPServer(_listener(port), handler, ioloop=ioloop, backlog=1024)
        server.max_cons = settings["max_connections"]
        server.max_cons_per_ip = settings["max_per_client"]
        if servers:
            server.ip_map = servers[0].ip_map  # one count per client, over every port
        servers.append(server)
    log.info(
        "listening on port %s (implicit TLS on %s), passive ports %d-%d",
        " ".join(map(str, settings["ports"])),
        " ".join(map(str, settings["tls"])) or "none",
        *settings["passive_ports"],
    )
    started = time.monotonic()
    try:
        ioloop.loop()
    finally:
        log.info("stopped after %.0f s", time.monotonic() - started)

"""The ``pop3`` kind, built in: the POP3 core (:mod:`netplay.protocols.pop3`) on asyncio,
over the mail host's Maildir store (the one ``smtp`` delivers into).

Ports: 110 (STLS offered, and required before a plain-text login) and 995
(implicit TLS), with the host's certificate.  A login is checked against
the accounts' hashes (:mod:`netplay.accounts`; a wrong one is answered after
a second) and locks the user's maildrop for the session: a second session
gets ``-ERR [IN-USE]``.  The maildrop is INBOX as it was at login (new and
seen messages, oldest first), each message's unique id its Maildir name
(without flags); DELE only marks, and QUIT deletes what is marked, then
fsyncs the directories.  A session that ends any other way deletes nothing.

Hostile clients: the core limits lines and bad commands; a client idle for
``idle_timeout`` seconds (default 600, RFC 1939's ten minutes) is
disconnected, and connections are held as :class:`~netplay.services.Connections`
holds them: ``max_connections`` in all, ``max_per_client`` (default 16) per
client, the idlest giving way.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netplay.services._base import Context, HealthError
from netplay.services._connections import Connections
from netplay.services._registry import register
from netplay.services.engines._mailbox import MailboxEngine

if TYPE_CHECKING:
    from netplay.accounts import Accounts
    from netplay.mail import Folder, MailStore

log = logging.getLogger("netplay.pop3")

PORTS = (110, 995)
IMPLICIT_TLS = (995,)
IDLE_TIMEOUT_S = 600.0  # RFC 1939 3: an autologout timer of at least ten minutes
ERROR_SLEEP_S = 1.0
CHUNK = 65536
LOCK_FILE = ".pop3.lock"


def _uid(path: Path) -> str:
    """A message's unique id: its Maildir name without the flags (``:2,S``)."""
    return path.name.partition(":")[0]


def _locked(directory: Path) -> int | None:
    """A lock on the maildrop for this session (an open fd), or None if another holds it."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class Session:
    """One client's session: the core's events, done against the store."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        implicit: bool,
        store: MailStore,
        accounts: Accounts,
        connections: Connections,
        settings: Mapping[str, Any],
        tls: Any,
    ) -> None:
        from netplay.protocols.pop3 import ServerConnection

        self.reader, self.writer = reader, writer
        self.conn = ServerConnection(tls=implicit, stls=not implicit)
        self.store, self.accounts = store, accounts
        self.connections = connections
        self.idle = float(settings["idle_timeout"])
        self.tls = tls
        self.lock: int | None = None
        self.paths: dict[str, Path] = {}
        self.folder: Folder | None = None  # INBOX, once logged in

    async def write(self, data: bytes) -> None:
        if data:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self.idle)  # a client that stops reading
            self.connections.touch(self.writer)

    async def run(self) -> None:
        from netplay.protocols import END, NEED_DATA
        from netplay.protocols.pop3 import Login, Pop3Error, Retrieve, StartTLS, Update

        while True:
            try:
                event = self.conn.next_event()
            except Pop3Error as exc:
                await self.write(self.conn.data_to_send() + f"{exc.reply}\r\n".encode())
                return
            out = self.conn.data_to_send()
            if isinstance(event, StartTLS):
                await self.start_tls(out)
                continue
            await self.write(out)
            if event is END:
                return
            if event is NEED_DATA:
                self.conn.receive_data(await asyncio.wait_for(self.reader.read(CHUNK), self.idle))
            elif isinstance(event, Login):
                await self.write(self.conn.send(await self.login(event.user, event.password)))
            elif isinstance(event, Retrieve):
                await self.write(self.conn.send(await self.retrieve(event.uid)))
            elif isinstance(event, Update):
                await self.write(self.conn.send(await self.update(event.deleted)))

    async def start_tls(self, ok: bytes) -> None:
        """Say ``+OK`` to STLS and start TLS.  What came in clear before the ``+OK``
        must not count as sent over TLS (RFC 2595 4; aiosmtpd clears it too), and
        nothing may await between the ``+OK`` and the switch of protocol: the
        client's handshake, read into the stream's buffer meanwhile, would be lost
        and the handshake would hang."""
        self.reader._buffer.clear()  # type: ignore[attr-defined]
        self.writer.write(ok)
        await self.writer.start_tls(self.tls)
        self.conn.tls_started()

    async def login(self, user_bytes: bytes, password: bytes) -> Any:
        from netplay.protocols.pop3 import Accepted, Rejected

        user = user_bytes.decode("utf-8", "replace")
        loop = asyncio.get_running_loop()
        good = await loop.run_in_executor(
            None, self.accounts.check, user, password.decode("utf-8", "replace")
        )
        if not good:
            log.info("authentication failed for %r", user)
            await asyncio.sleep(ERROR_SLEEP_S)
            return Rejected()
        maildir = self.store.of(user)
        self.folder = maildir.index()
        self.lock = _locked(maildir.root)
        if self.lock is None:
            log.info("%s: maildrop in use", user)
            return Rejected(text=b"[IN-USE] Mailbox is locked by another POP3 session.")
        messages = []
        for path in maildir.messages():
            uid = _uid(path)
            if 0 < len(uid) <= 70 and uid.isascii() and uid.isprintable() and " " not in uid:
                self.paths[uid] = path
                messages.append((uid, path.stat().st_size))
        log.info("%s logged in: %d messages", user, len(messages))
        return Accepted(messages=tuple(messages))

    async def retrieve(self, uid: str) -> Any:
        from netplay.protocols.pop3 import Content

        def read() -> bytes | None:
            try:
                return self.paths[uid].read_bytes()
            except FileNotFoundError:  # IMAP changed its flags: renamed, not gone
                found = self.folder.locate(uid) if self.folder else None
                return found.read_bytes() if found else None

        try:
            data = await asyncio.get_running_loop().run_in_executor(None, read)
        except OSError:
            data = None
        return Content(data=data)

    async def update(self, deleted: tuple[str, ...]) -> Any:
        from netplay.mail import Stored
        from netplay.protocols.pop3 import Updated

        def remove() -> int:
            assert self.folder is not None  # QUIT in TRANSACTION: logged in
            try:  # wherever IMAP's flags have taken them; those gone already are done
                self.folder.expunge(Stored(0, self.paths[uid], frozenset()) for uid in deleted)
            except OSError as exc:
                log.error("deleting failed: %s", exc)
                return len(deleted)
            return 0

        failed = await asyncio.get_running_loop().run_in_executor(None, remove)
        log.info("deleted %d messages (%d failed)", len(deleted) - failed, failed)
        return Updated(failed=failed)

    def close(self) -> None:
        if self.lock is not None:
            os.close(self.lock)  # the flock goes with it
            self.lock = None


class Pop3Engine(MailboxEngine):
    default_ports = PORTS
    implicit_tls = IMPLICIT_TLS
    idle_timeout = IDLE_TIMEOUT_S
    session = "netplay.services.engines.pop3:Session"

    def health(self, ctx: Context, timeout: float) -> None:
        """On each port: the greeting, TLS (STLS or implicit) with the certificate
        verified, and CAPA offering UIDL and a login."""
        import poplib

        tls = self.tls_ports(ctx)
        context = ctx.client_tls()
        for port in self.ports(ctx):
            client: poplib.POP3
            try:
                if port in tls:
                    client = poplib.POP3_SSL(ctx.address, port, timeout=timeout, context=context)
                else:
                    client = poplib.POP3(ctx.address, port, timeout=timeout)
                    client.stls(context)
                try:
                    capabilities = client.capa()
                    if "UIDL" not in capabilities or "USER" not in capabilities:
                        raise HealthError(f"port {port} offers {sorted(capabilities)}")
                finally:
                    client.quit()
            except poplib.error_proto as exc:
                raise HealthError(f"port {port}: {exc}") from exc


register("pop3", "builtin", Pop3Engine())

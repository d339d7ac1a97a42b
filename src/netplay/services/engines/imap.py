"""The ``imap`` kind, built in: IMAP4rev1 on asyncio over the mail host's Maildir store.

The commands are read by the sans-IO core (:mod:`netplay.protocols.imap`);
what IMAP says about a message (ENVELOPE, BODYSTRUCTURE, sections, SEARCH)
comes from :mod:`netplay.mail.imap`, and each folder's UIDs and flags
from :class:`netplay.mail.Folder` (``dovecot-uidlist``, Maildir flags).
This module is the engine; the session is :mod:`._imap_session` (its states:
not authenticated, authenticated, selected, logout; one method per command,
``cmd_FETCH``) with the selected state's commands in :mod:`._imap_selected`,
which tell the client what the other sessions on the same folder did, as
untagged EXISTS, EXPUNGE and FETCH responses (RFC 3501 5.2, 7.4.1): after
every command (EXPUNGE only where RFC 3501 allows it: not during FETCH,
STORE or SEARCH), and every IDLE_POLL_S during IDLE (RFC 2177), so that a
delivery wakes an idling client.

Ports: 143 (STARTTLS offered; LOGIN and AUTHENTICATE wait for it,
LOGINDISABLED says so) and 993 (implicit TLS).  Extensions: LITERAL+,
SASL-IR, UIDPLUS (APPENDUID, COPYUID, UID EXPUNGE), MOVE, IDLE, NAMESPACE,
ID, CHILDREN, UNSELECT.  Flags are the system flags a Maildir file name
holds; keywords are not kept (PERMANENTFLAGS has no ``\\*``) and no message
is \\Recent.

Hostile clients: the core limits lines, literals (an APPEND as large as
SMTP takes) and bad commands; a client idle for ``idle_timeout`` seconds
(default 1,800, RFC 3501's thirty minutes) is logged out; a wrong password
is answered after a second; connections are held by
:class:`~netplay.services.Connections` (``max_connections``, ``max_per_client``
(default 16: a NAT'd home shares one address) per client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from netplay.errors import TopologyError
from netplay.services._base import Context, Engine, HealthError, Start
from netplay.services._connections import Connections
from netplay.services._registry import register
from netplay.services.engines._imap_words import IDLE_TIMEOUT_S, MAX_CONNECTIONS, MAX_PER_CLIENT

PORTS = (143, 993)
IMPLICIT_TLS = (993,)


async def serve(ctx: Context, settings: Mapping[str, Any]) -> None:
    """Listen on every port until the process is ended."""
    from netplay.accounts import Accounts
    from netplay.mail import MailStore
    from netplay.services.engines._imap_session import Session

    accounts = Accounts.ensure(ctx.data, ctx.topology.users)
    store = MailStore.open(ctx.data, ctx.topology, ctx.host)
    tls = ctx.server_tls()
    connections = Connections(
        settings["max_connections"], min(settings["max_per_client"], settings["max_connections"])
    )

    def handler(implicit: bool) -> Callable[..., Any]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.add(writer)
            session = Session(
                reader,
                writer,
                implicit=implicit,
                store=store,
                accounts=accounts,
                connections=connections,
                settings=settings,
                tls=tls,
            )
            try:
                await session.run()
            except (TimeoutError, ConnectionError, OSError):
                pass  # idle, gone, or a TLS handshake that failed
            finally:
                connections.discard(writer)
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()

        return handle

    servers = []
    for port in settings["ports"]:
        implicit = port in settings["tls"]
        servers.append(
            await asyncio.start_server(
                handler(implicit), None, port, backlog=1024, ssl=tls if implicit else None
            )
        )
    print(f"imap: listening on port {' '.join(map(str, settings['ports']))}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


class ImapEngine(Engine):
    default_ports = PORTS
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "tls": list,
        "idle_timeout": (int, float),
        "max_connections": int,
        "max_per_client": int,
        "max_literal": int,
    }
    minimums: ClassVar[Mapping[str, float]] = {
        "idle_timeout": 0.1,
        "max_connections": 1,
        "max_per_client": 1,
        "max_literal": 1024,
    }
    maximums: ClassVar[Mapping[str, float]] = {
        "idle_timeout": 86_400,
        "max_connections": 65_536,
        "max_per_client": 65_536,
        "max_literal": 1 << 30,
    }

    def _tls(self, ctx: Context) -> tuple[int, ...]:
        ports = self.ports(ctx)
        return tuple(ctx.option("tls", [p for p in IMPLICIT_TLS if p in ports]))

    def check(self, ctx: Context, where: str) -> None:
        super().check(ctx, where)
        for i, port in enumerate(self._tls(ctx)):
            if port not in self.ports(ctx) or isinstance(port, bool):
                raise TopologyError(
                    f"{port!r} is not one of the service's ports", field=f"{where}.tls[{i}]"
                )

    def start(self, ctx: Context) -> Start:
        from netplay.protocols.imap import MAX_LITERAL

        settings = {
            "ports": self.ports(ctx),
            "tls": self._tls(ctx),
            "idle_timeout": float(ctx.option("idle_timeout", IDLE_TIMEOUT_S)),
            "max_connections": int(ctx.option("max_connections", MAX_CONNECTIONS)),
            "max_per_client": int(ctx.option("max_per_client", MAX_PER_CLIENT)),
            "max_literal": int(ctx.option("max_literal", MAX_LITERAL)),
        }

        def run() -> None:
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True
            )
            asyncio.run(serve(ctx, settings))

        return run

    def health(self, ctx: Context, timeout: float) -> None:
        """On each port: the greeting, TLS (STARTTLS or implicit) with the certificate
        verified, and CAPABILITY offering IMAP4rev1 and a login."""
        import imaplib

        tls = self._tls(ctx)
        context = ctx.client_tls()
        for port in self.ports(ctx):
            client: imaplib.IMAP4
            try:
                if port in tls:
                    client = imaplib.IMAP4_SSL(
                        ctx.address, port, ssl_context=context, timeout=timeout
                    )
                else:
                    client = imaplib.IMAP4(ctx.address, port, timeout=timeout)
                    client.starttls(context)
                try:
                    offered = set(client.capabilities)
                    if not {"IMAP4REV1", "AUTH=PLAIN"} <= offered:
                        raise HealthError(f"port {port} offers {sorted(offered)}")
                finally:
                    client.logout()
            except imaplib.IMAP4.error as exc:
                raise HealthError(f"port {port}: {exc}") from exc


register("imap", "builtin", ImapEngine())

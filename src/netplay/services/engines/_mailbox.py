"""What the ``pop3`` and ``imap`` engines share: their options, their implicit-TLS
ports, and serving one session object per connection.

A mailbox server listens on a STARTTLS port and an implicit-TLS one (the
``tls`` option names which, default the kind's usual one), holds its
connections in :class:`~netplay.services.Connections`, and gives each
connection a session (``session_class(reader, writer, implicit=..., ...)``
with ``run()`` and ``close()``) over the host's accounts and mail store.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from netplay.errors import TopologyError
from netplay.services._base import Context, Engine, Start, ensure_accounts
from netplay.services._connections import Connections

MAX_CONNECTIONS = 256
MAX_PER_CLIENT = 16  # h1-h3 share one address behind their NAT


class MailboxEngine(Engine):
    """A POP3 or IMAP engine; subclasses say their ports, idle timeout and session."""

    #: the ports of implicit TLS among the default ones (995, 993)
    implicit_tls: ClassVar[tuple[int, ...]] = ()
    idle_timeout: ClassVar[float] = 600.0
    #: "module:Class" of the session, imported in the server process only
    session: ClassVar[str] = ""
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "tls": list,
        "idle_timeout": (int, float),
        "max_connections": int,
        "max_per_client": int,
    }
    minimums: ClassVar[Mapping[str, float]] = {
        "idle_timeout": 0.1,
        "max_connections": 1,
        "max_per_client": 1,
    }
    maximums: ClassVar[Mapping[str, float]] = {
        "idle_timeout": 86_400,
        "max_connections": 65_536,
        "max_per_client": 65_536,
    }

    def tls_ports(self, ctx: Context) -> tuple[int, ...]:
        ports = self.ports(ctx)
        return tuple(ctx.option("tls", [p for p in self.implicit_tls if p in ports]))

    def check(self, ctx: Context, where: str) -> None:
        super().check(ctx, where)
        for i, port in enumerate(self.tls_ports(ctx)):
            if port not in self.ports(ctx) or isinstance(port, bool):
                raise TopologyError(
                    f"{port!r} is not one of the service's ports", field=f"{where}.tls[{i}]"
                )

    def settings(self, ctx: Context) -> dict[str, Any]:
        """What the server process needs of the declaration (subclasses add theirs)."""
        return {
            "ports": self.ports(ctx),
            "tls": self.tls_ports(ctx),
            "idle_timeout": float(ctx.option("idle_timeout", self.idle_timeout)),
            "max_connections": int(ctx.option("max_connections", MAX_CONNECTIONS)),
            "max_per_client": int(ctx.option("max_per_client", MAX_PER_CLIENT)),
        }

    def preload(self, contexts: Sequence[Context]) -> None:
        # the mail store and the session: a tenth of a second each server would spend
        import netplay.mail  # noqa: F401

        importlib.import_module(self.session.partition(":")[0])
        ensure_accounts(contexts)

    def start(self, ctx: Context) -> Start:
        settings = self.settings(ctx)
        session, kind = self.session, ctx.service.kind

        def run() -> None:
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True
            )
            asyncio.run(serve(ctx, settings, session, kind))

        return run


async def serve(ctx: Context, settings: Mapping[str, Any], session: str, kind: str) -> None:
    """Listen on every port until the process is ended, a session per connection."""
    from netplay.accounts import Accounts
    from netplay.mail import MailStore

    module, _colon, name = session.partition(":")
    session_class = getattr(importlib.import_module(module), name)
    accounts = Accounts.ensure(ctx.data, ctx.topology.users)
    store = MailStore.open(ctx.data, ctx.topology, ctx.host)
    tls = ctx.server_tls()
    connections = Connections(
        settings["max_connections"], min(settings["max_per_client"], settings["max_connections"])
    )

    def handler(implicit: bool) -> Any:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.add(writer)
            conversation = session_class(
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
                await conversation.run()
            except (TimeoutError, ConnectionError, OSError):
                pass  # idle, gone, or a TLS handshake that failed
            finally:
                conversation.close()
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
    print(f"{kind}: listening on port {' '.join(map(str, settings['ports']))}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))

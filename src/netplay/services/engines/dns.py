"""The ``dns`` kind, built in: the playground's authoritative DNS server.

The answers come from the sans-IO core :mod:`netplay.protocols.dns`; this
module holds its drivers and the engine.  :func:`serve` binds the port on
each of the host's addresses and serves UDP and TCP until SIGTERM, in the
server process the runner forks inside the DNS host (no interpreter to
start, dnspython already loaded); the engine builds the zones from the
topology when it starts.  Over TCP, see :class:`_Tcp` for the limits that
keep idle and slow clients from starving the others.  Responses come from
one :class:`~netplay.protocols.dns.Answers`, which remembers recent ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from netplay.errors import TopologyError
from netplay.services._base import Context, Engine, HealthError, Start
from netplay.services._connections import Connections
from netplay.services._registry import register

if TYPE_CHECKING:  # imported where they are used: an engine module is cheap to import
    from netplay.protocols.dns import Answers
    from netplay.topology import Zones

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 256
MAX_PER_CLIENT = 16
IDLE_S = 10.0
LENGTH = struct.Struct("!H")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        reply = self.answers(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class _Tcp:
    """DNS over TCP (RFC 7766): several queries per connection, answered in order.

    Idle and slow clients cannot keep others out (:class:`Connections`): a new
    connection is always taken, and the idlest of its client's (past
    MAX_PER_CLIENT) or of all (past MAX_CONNECTIONS) gives way; only answers
    count as activity, so a query trickling in byte by byte is idle.  A
    connection idle for IDLE_S is closed."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.connections = Connections(MAX_CONNECTIONS, MAX_PER_CLIENT)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        try:
            await self._converse(reader, writer)
        finally:
            self.connections.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not writer.is_closing():
            try:
                head = await asyncio.wait_for(reader.readexactly(2), IDLE_S)
                (length,) = LENGTH.unpack(head)
                query = await asyncio.wait_for(reader.readexactly(length), IDLE_S)
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                return
            reply = self.answers(query, tcp=True)
            if reply is None:
                return
            writer.write(LENGTH.pack(len(reply)) + reply)
            try:
                await asyncio.wait_for(writer.drain(), IDLE_S)
            except (TimeoutError, ConnectionError):
                return
            self.connections.touch(writer)


async def serve(zones: Zones, addresses: Sequence[str], port: int) -> None:
    """Serve until SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    from netplay.protocols.dns import Answers

    answers = Answers(zones)
    tcp = _Tcp(answers)
    servers = []
    for address in addresses:
        await loop.create_datagram_endpoint(lambda: _Udp(answers), local_addr=(address, port))
        servers.append(await asyncio.start_server(tcp.handle, address, port, backlog=128))
    log.info("listening on port %d of %s", port, " ".join(addresses))
    await stop


class DnsEngine(Engine):
    default_ports = (53,)

    def check(self, ctx: Context, where: str) -> None:
        super().check(ctx, where)
        if ctx.topology.domain is None:
            raise TopologyError("a dns service needs the topology's domain", field="domain")

    def _addresses(self, ctx: Context) -> list[str]:
        attached = ctx.topology.attachments_of(ctx.host)
        every = (str(a.ip) for _net, att in attached for a in att.addresses)
        return list(dict.fromkeys(every))  # a router may use one address on several links

    def start(self, ctx: Context) -> Start:
        topology, addresses, port = ctx.topology, self._addresses(ctx), self.ports(ctx)[0]

        def run() -> None:
            from netplay.topology import dns_zones

            zones = dns_zones(topology)
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
            asyncio.run(serve(zones, addresses, port))

        return run

    def health(self, ctx: Context, timeout: float) -> None:
        import dns.exception
        import dns.message
        import dns.query
        import dns.rcode

        query = dns.message.make_query(ctx.fqdn, "A")
        try:
            reply = dns.query.udp(query, ctx.address, port=self.ports(ctx)[0], timeout=timeout)
        except dns.exception.DNSException as exc:
            raise HealthError(f"no DNS answer ({exc})") from exc
        if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
            raise HealthError(f"{ctx.fqdn} A was answered {dns.rcode.to_text(reply.rcode())}")

    def listens(self, ctx: Context) -> list[str]:
        port = self.ports(ctx)[0]
        return [f"udp/{port}", f"tcp/{port}"]


register("dns", "builtin", DnsEngine())

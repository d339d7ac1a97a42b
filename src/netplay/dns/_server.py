"""The DNS server's drivers: asyncio UDP and TCP around :func:`answer`.

:func:`serve` binds the port on each of the given addresses and serves
until SIGTERM; the service layer runs it in a child forked inside the DNS
host (no interpreter to start, dnspython already loaded).  Limits: at most
MAX_CONNECTIONS TCP connections at once (more are closed at once), and a
connection idle for IDLE_S seconds is closed.  Several queries on one TCP
connection are answered in order.  Responses come from one
:class:`~netplay.dns._answer.Answers`, which remembers recent ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import struct
from collections.abc import Sequence
from typing import cast

from netplay.dns._answer import Answers
from netplay.dns._zones import Zones

log = logging.getLogger("netplay.dns")

PORT = 53
MAX_CONNECTIONS = 256
IDLE_S = 10.0
READY_TIMEOUT_S = 5.0
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
    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.open = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            if self.open > MAX_CONNECTIONS:
                return
            while True:
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
                await writer.drain()
        except ConnectionError:
            return
        finally:
            self.open -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def serve(zones: Zones, addresses: Sequence[str], port: int) -> None:
    """Serve until SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    answers = Answers(zones)
    tcp = _Tcp(answers)
    servers = []
    for address in addresses:
        await loop.create_datagram_endpoint(lambda: _Udp(answers), local_addr=(address, port))
        servers.append(await asyncio.start_server(tcp.handle, address, port, backlog=128))
    log.info("listening on port %d of %s", port, " ".join(addresses))
    await stop

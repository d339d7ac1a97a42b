"""The DNS server's drivers: asyncio UDP and TCP around :func:`answer`.

``start`` forks the server from the process that builds the playground (no
interpreter to start, dnspython already loaded), moves the child into the
DNS host's namespaces, binds port 53 on each of the host's addresses, and
returns once a real query over UDP has been answered.  Limits: at most
MAX_CONNECTIONS TCP connections at once (more are closed at once), and a
connection idle for IDLE_S seconds is closed.  Several queries on one TCP
connection are answered in order.  Responses come from one
:class:`~netplay.dns._answer.Answers`, which remembers recent ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import dns.exception
import dns.message
import dns.query
import dns.rcode

from netplay.dns._answer import Answers
from netplay.dns._zones import Zones
from netplay.errors import FabricError
from netplay.fabric._namespaces import enter

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


async def serve(zones: Zones, addresses: Sequence[str], port: int, ready: int) -> None:
    """Serve until SIGTERM; write one line to the fd ``ready`` once bound."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    answers = Answers(zones)
    tcp = _Tcp(answers)
    servers = []
    for address in addresses:
        await loop.create_datagram_endpoint(lambda: _Udp(answers), local_addr=(address, port))
        servers.append(await asyncio.start_server(tcp.handle, address, port, backlog=128))
    os.write(ready, f"listening on port {port} of {' '.join(addresses)}\n".encode())
    os.close(ready)
    await stop


def start(
    fds: Sequence[tuple[int, int]], zones: Zones, addresses: Sequence[str], logfile: Path
) -> int:
    """Fork the server into the host whose namespace ``fds`` are given; return its pid."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child serves until it is stopped
        status = 1
        try:
            os.close(ready_r)
            os.setsid()
            enter(fds)
            out = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
            asyncio.run(serve(zones, addresses, PORT, ready_w))
            status = 0
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.write(ready_w, f"error: {exc}\n".encode())
        finally:
            os._exit(status)
    os.close(ready_w)
    try:
        readable, _, _ = select.select([ready_r], [], [], READY_TIMEOUT_S)
        line = os.read(ready_r, 4096).decode(errors="replace").strip() if readable else ""
    finally:
        os.close(ready_r)
    if not line.startswith("listening"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise FabricError(f"the DNS server did not start ({line or 'no answer in 5 s'})")
    return pid


def confirm(address: str, name: str) -> None:
    """One real query over UDP; raise FabricError unless it is answered."""
    query = dns.message.make_query(name, "A")
    try:
        response = dns.query.udp(query, address, timeout=READY_TIMEOUT_S)
    except (OSError, dns.exception.DNSException) as exc:
        raise FabricError(f"the DNS server on {address} does not answer ({exc})") from exc
    if response.rcode() != dns.rcode.NOERROR:
        raise FabricError(f"the DNS server answered {dns.rcode.to_text(response.rcode())}")

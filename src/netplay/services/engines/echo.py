"""The ``echo`` kind (RFC 862 over TCP), built in: the example of how a kind is added.

Everything netplay needs to run a kind is here: the engine (how to start
the server inside its host, how to check it with one real exchange, which
options it takes), and one :func:`register` line.  The runner gives it
restarts, logs, control and status; the engine conformance suite
(tests/test_engines.py) tests it as every other engine.  Use it in a
topology with one line::

    services = [{ kind = "echo" }]

The server sends back whatever a client sends, on asyncio.  Like every
server here it expects hostile clients: a connection idle for
``idle_timeout`` seconds (default 30) is closed, and at most
``max_connections`` (default 256) are held at once, 16 per client; a new
connection is always taken, and the idlest of its client's or of all gives
way (:class:`~netplay.services.Connections`), so idle clients cannot keep
others out.  A client that sends without reading is not read from faster
than it reads (the writer's buffer is drained before the next read), and is
closed when it has not read for ``idle_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping, Sequence
from typing import ClassVar

from netplay.services._base import Context, Engine, HealthError, Start
from netplay.services._connections import Connections
from netplay.services._registry import register

IDLE_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 256
MAX_PER_CLIENT = 16
CHUNK = 65536


async def serve(ports: Sequence[int], idle_timeout: float, max_connections: int) -> None:
    """Echo on every address of the host, on each of ``ports``, until the process
    is ended (one limit for all of them)."""
    connections = Connections(max_connections, min(MAX_PER_CLIENT, max_connections))

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.add(writer)
        try:
            while data := await asyncio.wait_for(reader.read(CHUNK), idle_timeout):
                writer.write(data)
                await asyncio.wait_for(writer.drain(), idle_timeout)  # a client that stops reading
                connections.touch(writer)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            connections.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    servers = [  # on every address, IPv4 and IPv6
        await asyncio.start_server(echo, None, port, backlog=1024) for port in ports
    ]
    print(f"echo: listening on port {' '.join(map(str, ports))}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


class EchoEngine(Engine):
    default_ports = (7,)
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "idle_timeout": (int, float),
        "max_connections": int,
    }
    minimums: ClassVar[Mapping[str, float]] = {"idle_timeout": 0.1, "max_connections": 1}
    maximums: ClassVar[Mapping[str, float]] = {"idle_timeout": 86_400, "max_connections": 65_536}

    def start(self, ctx: Context) -> Start:
        ports = self.ports(ctx)
        idle = float(ctx.option("idle_timeout", IDLE_TIMEOUT_S))
        limit = int(ctx.option("max_connections", MAX_CONNECTIONS))

        def run() -> None:
            asyncio.run(serve(ports, idle, limit))

        return run

    def health(self, ctx: Context, timeout: float) -> None:
        """Something sent on each port comes back."""
        for port in self.ports(ctx):
            probe = os.urandom(16).hex().encode()
            with socket.create_connection((ctx.address, port), timeout=timeout) as sock:
                sock.sendall(probe)
                got = b""
                while len(got) < len(probe):
                    chunk = sock.recv(len(probe) - len(got))
                    if not chunk:
                        break
                    got += chunk
            if got != probe:
                raise HealthError(f"sent {probe!r} to port {port}, got back {got!r}")


register("echo", "builtin", EchoEngine())

"""One protocol, every server design: the zen server in each classic architecture.

Every design serves the zen protocol with the same sans-IO core
(:mod:`netplay.protocols.zen`'s ``ServerConnection``, through
``_zen_io.respond``); only how connections get a turn differs:

    single            one client at a time, in one thread
    threads           a thread per client
    pool              a fixed pool of threads (concurrent.futures)
    fork              a process per client
    procpool          a fixed pool of processes sharing one listening socket
    socketserver      the standard library's ThreadingTCPServer
    selectors         a hand-written event loop over non-blocking sockets
    asyncio-protocol  asyncio with callbacks (a Protocol)
    asyncio-streams   asyncio with coroutines (StreamReader and StreamWriter)
    uvloop            asyncio-streams on uvloop's event loop

(and inetd-style, through the service layer: :mod:`netplay.programs.zen_inetd`).

    netplay exec www -- python3 -m netplay.programs.zen_server selectors &
    netplay exec h1 -- python3 -m netplay.programs.zen_client www --connections 10 --questions 100
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import ctypes
import os
import selectors
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Sequence

from netplay.programs._cli import ProgramError, run
from netplay.programs._net import bind
from netplay.programs._zen_io import handle, respond
from netplay.protocols.zen import ServerConnection, ZenError

PORT = 1070
WORKERS = 16
PR_SET_PDEATHSIG = 1


def single(sock: socket.socket) -> None:
    while True:
        handle(sock.accept()[0])


def threads(sock: socket.socket) -> None:
    while True:
        client, _ = sock.accept()
        threading.Thread(target=handle, args=(client,), daemon=True).start()


def pool(sock: socket.socket) -> None:
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as executor:
        while True:
            executor.submit(handle, sock.accept()[0])


def fork(sock: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    while True:
        client, _ = sock.accept()
        if os.fork() == 0:  # pragma: no cover - the child serves one client
            try:
                sock.close()
                handle(client)
            finally:
                os._exit(0)
        client.close()


def _die_with_parent() -> None:
    """Linux's prctl(PR_SET_PDEATHSIG): end this worker when its parent ends, however."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def procpool(sock: socket.socket) -> None:
    children = []
    for _ in range(WORKERS):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - a worker accepts on the shared socket
            try:
                _die_with_parent()
                single(sock)
            finally:
                os._exit(0)
        children.append(pid)
    try:
        os.waitpid(children[0], 0)  # the workers run until the server is stopped
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        handle(self.request)


def threading_server(sock: socket.socket) -> None:
    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True

    server = Server(sock.getsockname(), _Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.serve_forever()


def selector_loop(sock: socket.socket) -> None:
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    state: dict[socket.socket, tuple[ServerConnection, bytearray]] = {}
    ended: set[socket.socket] = set()  # the clients that have ended their stream

    def drop(client: socket.socket) -> None:
        sel.unregister(client)
        state.pop(client, None)
        ended.discard(client)
        client.close()

    while True:
        for key, mask in sel.select():
            client = key.fileobj
            assert isinstance(client, socket.socket)
            if client is sock:
                with contextlib.suppress(BlockingIOError):
                    new, _ = sock.accept()
                    new.setblocking(False)
                    state[new] = (ServerConnection(), bytearray())
                    sel.register(new, selectors.EVENT_READ)
                continue
            conn, outgoing = state[client]
            try:
                if mask & selectors.EVENT_READ and client not in ended:
                    out, done = respond(conn, client.recv(4096))
                    outgoing += out
                    if done:
                        ended.add(client)
                if outgoing:
                    del outgoing[: client.send(outgoing)]
            except (BlockingIOError, InterruptedError):
                continue
            except (ZenError, OSError):
                drop(client)
                continue
            if client in ended and not outgoing:
                drop(client)
            elif client in ended:
                sel.modify(client, selectors.EVENT_WRITE)
            else:
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if outgoing else 0)
                sel.modify(client, want)


class ZenProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn = ServerConnection()

    def data_received(self, data: bytes) -> None:
        try:
            self.transport.write(respond(self.conn, data)[0])
        except ZenError:
            self.transport.abort()

    def eof_received(self) -> bool:
        return False  # close our side too


async def _protocol_main(sock: socket.socket) -> None:
    server = await asyncio.get_running_loop().create_server(ZenProtocol, sock=sock)
    await server.serve_forever()


async def _converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = ServerConnection()
    try:
        ended = False
        while not ended:
            out, ended = respond(conn, await reader.read(4096))
            if out:
                writer.write(out)
                await writer.drain()
    except (ZenError, ConnectionError):
        pass
    finally:
        writer.close()


async def _streams_main(sock: socket.socket) -> None:
    server = await asyncio.start_server(_converse, sock=sock)
    await server.serve_forever()


def asyncio_protocol(sock: socket.socket) -> None:
    asyncio.run(_protocol_main(sock))


def asyncio_streams(sock: socket.socket) -> None:
    asyncio.run(_streams_main(sock))


def on_uvloop(sock: socket.socket) -> None:
    try:
        import uvloop
    except ImportError:
        raise ProgramError("uvloop is not installed (pip install uvloop)") from None
    uvloop.run(_streams_main(sock))


ARCHITECTURES: dict[str, Callable[[socket.socket], None]] = {
    "single": single,
    "threads": threads,
    "pool": pool,
    "fork": fork,
    "procpool": procpool,
    "socketserver": threading_server,
    "selectors": selector_loop,
    "asyncio-protocol": asyncio_protocol,
    "asyncio-streams": asyncio_streams,
    "uvloop": on_uvloop,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="zen_server",
        description="The zen server in one of the classic architectures.",
        epilog="architectures: " + ", ".join(ARCHITECTURES),
    )
    parser.add_argument(
        "architecture",
        choices=sorted(ARCHITECTURES),
        metavar="ARCHITECTURE",
        help="how connections get their turn (see below)",
    )
    parser.add_argument("host", nargs="?", default="::", help="address to bind (default: all)")
    parser.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    args = parser.parse_args(argv)

    def serve() -> None:
        sock = bind(args.host, args.port, backlog=1024)
        print(f"Listening at {sock.getsockname()[:2]} ({args.architecture})", flush=True)
        ARCHITECTURES[args.architecture](sock)

    return run("zen_server", serve)


if __name__ == "__main__":
    sys.exit(main())

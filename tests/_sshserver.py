"""An asyncssh server on loopback, in a thread of the test's own process."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import asyncssh


@contextlib.contextmanager
def asyncssh_server(key: asyncssh.SSHKey) -> Iterator[int]:
    """An SSH server with the host key ``key`` on 127.0.0.1, for the body: its port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def listen() -> asyncssh.SSHAcceptor:
        return await asyncssh.listen("127.0.0.1", 0, server_host_keys=[key])

    async def close(server: asyncssh.SSHAcceptor) -> None:  # in the loop's thread
        server.close()
        await server.wait_closed()

    try:
        server = asyncio.run_coroutine_threadsafe(listen(), loop).result(10)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            asyncio.run_coroutine_threadsafe(close(server), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        if not thread.is_alive():  # a loop still running cannot be closed
            loop.close()

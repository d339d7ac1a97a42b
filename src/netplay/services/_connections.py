"""The connections of an asyncio server, held so that idle and slow clients
cannot keep others out.

A new connection is always taken.  When its client already holds
``per_client`` connections, the one of them idle longest is closed to make
room; when all ``total`` are open, the one idle longest of all.  What counts
as activity is the server's to say (:meth:`Connections.touch`): DNS counts
an answer, so a query trickling in byte by byte is idle; echo counts every
chunk it sends back.  Closing a connection's writer ends its handler's
pending read with end of file, so the handler finishes as for any client
that left.
"""

from __future__ import annotations

import asyncio
import time


class Connections:
    """The open connections of one server, and who gives way to a new one."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self._last: dict[asyncio.StreamWriter, float] = {}  # open connection -> last activity
        self._clients: dict[str, set[asyncio.StreamWriter]] = {}

    def __len__(self) -> int:
        return len(self._last)

    def add(self, writer: asyncio.StreamWriter) -> None:
        """Take a new connection, closing the idlest of its client's or of all
        to make room."""
        mine = self._clients.get(_client(writer), set())
        if len(mine) >= self.per_client:
            self._close(min(mine, key=self._last.__getitem__))
        elif len(self._last) >= self.total:
            self._close(min(self._last, key=self._last.__getitem__))
        self._clients.setdefault(_client(writer), set()).add(writer)
        self._last[writer] = time.monotonic()

    def touch(self, writer: asyncio.StreamWriter) -> None:
        """The connection did something: it is the last to give way."""
        if writer in self._last:
            self._last[writer] = time.monotonic()

    def _close(self, writer: asyncio.StreamWriter) -> None:
        """Out of the count at once: a burst of new connections must not pick
        one that is closing still."""
        self.discard(writer)
        writer.close()

    def discard(self, writer: asyncio.StreamWriter) -> None:
        """The connection has ended (its handler's ``finally``)."""
        client = _client(writer)
        mine = self._clients.get(client, set())
        mine.discard(writer)
        if not mine:
            self._clients.pop(client, None)
        self._last.pop(writer, None)


def _client(writer: asyncio.StreamWriter) -> str:
    return str(writer.get_extra_info("peername", ("?",))[0])

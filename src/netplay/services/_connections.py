"""The connections of an asyncio server, held so that idle and slow clients
cannot keep others out.

A new connection is always taken.  When its client already holds
``per_client`` connections, the one of them idle longest is closed to make
room; when all ``total`` are open, the one idle longest of all.  What counts
as activity is the server's to say (:meth:`Connections.touch`): DNS counts
an answer, so a query trickling in byte by byte is idle; echo counts every
chunk it sends back.  Closing a connection (a StreamWriter) ends its handler's
pending read with end of file, so the handler finishes as for any client
that left.
"""

from __future__ import annotations

import time
from typing import Any, Protocol


class Connection(Protocol):
    """What a server holds of a connection: an asyncio StreamWriter, or a
    protocol object that offers the same two methods."""

    def close(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


class Connections:
    """The open connections of one server, and who gives way to a new one."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self._last: dict[Connection, float] = {}  # open connection -> last activity
        self._clients: dict[str, set[Connection]] = {}
        # each one's client, kept: a closed TLS transport no longer knows its peer
        self._client_of: dict[Connection, str] = {}

    def __len__(self) -> int:
        return len(self._last)

    def add(self, connection: Connection) -> None:
        """Take a new connection, closing the idlest of its client's or of all
        to make room."""
        client = _client(connection)
        mine = self._clients.get(client, set())
        if len(mine) >= self.per_client:
            self._close(min(mine, key=self._last.__getitem__))
        elif len(self._last) >= self.total:
            self._close(min(self._last, key=self._last.__getitem__))
        self._clients.setdefault(client, set()).add(connection)
        self._client_of[connection] = client
        self._last[connection] = time.monotonic()

    def touch(self, connection: Connection) -> None:
        """The connection did something: it is the last to give way."""
        if connection in self._last:
            self._last[connection] = time.monotonic()

    def _close(self, connection: Connection) -> None:
        """Out of the count at once: a burst of new connections must not pick
        one that is closing still."""
        self.discard(connection)
        connection.close()

    def discard(self, connection: Connection) -> None:
        """The connection has ended (its handler's ``finally``)."""
        client = self._client_of.pop(connection, None)
        if client is None:
            return  # discarded already
        mine = self._clients.get(client, set())
        mine.discard(connection)
        if not mine:
            self._clients.pop(client, None)
        self._last.pop(connection, None)


def _client(connection: Connection) -> str:
    return str(connection.get_extra_info("peername", ("?",))[0])

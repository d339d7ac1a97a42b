"""Connections without sockets: who gives way, and a peer that is forgotten on close."""

from __future__ import annotations

from typing import Any

from netplay.services import Connections


class Fake:
    """A connection whose transport, once closed, no longer knows its peer (as TLS's)."""

    def __init__(self, peer: str) -> None:
        self.peer: str | None = peer
        self.closed = False

    def close(self) -> None:
        self.closed, self.peer = True, None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.peer, 1234) if name == "peername" and self.peer else default


def test_the_idlest_of_a_client_gives_way_even_when_its_peer_is_forgotten() -> None:
    held = Connections(total=10, per_client=2)
    first, second, third = Fake("10.0.0.1"), Fake("10.0.0.1"), Fake("10.0.0.1")
    held.add(first)
    held.add(second)
    held.touch(first)
    held.add(third)  # the client's idlest, second, gives way
    assert second.closed and not first.closed and len(held) == 2
    first.close()  # closed by the client: its peer is gone before the handler's finally
    held.discard(first)
    held.discard(second)  # discarded twice (given way, then its handler ends): no error
    assert len(held) == 1
    for _ in range(5):  # no stale entry makes the next choice fail
        held.add(Fake("10.0.0.1"))
    assert len(held) == 2


def test_all_connections_give_way_to_a_new_client() -> None:
    held = Connections(total=2, per_client=2)
    a, b, c = Fake("10.0.0.1"), Fake("10.0.0.2"), Fake("10.0.0.3")
    held.add(a)
    held.add(b)
    held.touch(a)
    held.add(c)
    assert b.closed and not a.closed and len(held) == 2

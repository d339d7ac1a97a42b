"""What the zen server designs share: the core's answers, and a blocking conversation.

:func:`respond` gives the sans-IO core (:mod:`netplay.protocols.zen`) the
bytes a client sent and answers every whole question they complete, with
the aphorisms; :func:`handle` converses over one blocking socket with it.
"""

from __future__ import annotations

import socket

from netplay.protocols import END, NEED_DATA
from netplay.protocols.zen import Answer, ServerConnection, ZenError, answer


def respond(conn: ServerConnection, data: bytes) -> tuple[bytes, bool]:
    """Bytes from the client (b"" at its end) -> (the bytes to send it, whether it has ended).

    A client that breaks the protocol raises ZenError, before any answer to
    these bytes is given: the drivers then drop it.
    """
    conn.receive_data(data)
    out = bytearray()
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return bytes(out), False
        if event is END:
            return bytes(out), True
        out += conn.send(Answer(text=answer(event.text)))


def handle(sock: socket.socket) -> None:
    """Converse with one client over a blocking socket until it is done."""
    conn = ServerConnection()
    with sock:
        try:
            ended = False
            while not ended:
                out, ended = respond(conn, sock.recv(4096))
                if out:
                    sock.sendall(out)
        except (ZenError, OSError):
            pass  # a broken client: drop it, serve the others

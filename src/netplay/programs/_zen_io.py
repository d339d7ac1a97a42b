"""The zen conversation over one blocking socket: what the blocking server designs share."""

from __future__ import annotations

import socket

from netplay.programs.zen import ServerConnection, ZenError


def handle(sock: socket.socket) -> None:
    """Converse with one client over a blocking socket until it is done."""
    conn = ServerConnection()
    with sock:
        try:
            while not conn.closed:
                out = conn.receive_data(sock.recv(4096))
                if out:
                    sock.sendall(out)
        except (ZenError, OSError):
            pass  # a broken client: drop it, serve the others

"""The sans-IO toolkit: every protocol netplay writes itself, as plain objects over bytes.

A protocol core touches no socket, clock, thread or print: drivers (blocking,
threaded, forking, selectors, asyncio, inetd) do the I/O and all share one
core, and tests give it bytes alone.  The vocabulary, with the zen protocol
(:mod:`netplay.protocols.zen`) as the worked example::

    from netplay.protocols import END, NEED_DATA
    from netplay.protocols.zen import Answer, ServerConnection, answer

    conn = ServerConnection()
    while True:
        event = conn.next_event()                 # an event, NEED_DATA or END
        if event is NEED_DATA:                    # nothing whole yet: bytes in
            conn.receive_data(sock.recv(4096))    # (b"" means the peer ended)
        elif event is END:                        # the peer ended cleanly
            break
        else:                                     # a Question: our Answer, bytes out
            sock.sendall(conn.send(Answer(text=answer(event.text))))

- ``conn.receive_data(data)``: bytes as they arrive, in any pieces (one
  ``recv`` may hold half a message or three); ``b""`` says the peer ended
  its stream.  It only buffers; nothing is parsed until asked.
- ``conn.next_event()``: the next event, or :data:`NEED_DATA` (receive more,
  then ask again), or :data:`END` once the peer has ended cleanly and every
  event before the end has been given.  Drain it until NEED_DATA after each
  ``receive_data``.
- ``conn.send(event) -> bytes``: the bytes to write for an event of ours.
- Events are frozen, slotted, keyword-only dataclasses (``Question(text=
  b"Beautiful is better than?")``) whose wire fields are ``bytes``, validated
  when built: an event that cannot exist cannot be sent.
- A message-oriented core with no connection state (DNS over UDP,
  :mod:`netplay.protocols.dns`) is a plain function, bytes -> bytes.
- A state machine is a table ``(state, input) -> next state``; whatever the
  table lacks is an error, never a guess.
- Limits (line length, message size, ...) are part of the core, enforced
  from the first byte: a peer cannot make it buffer without bound.
- Only :class:`ProtocolError` (from :mod:`netplay.errors`) escapes a core:
  :class:`RemoteProtocolError` when the peer broke the protocol (drop it,
  or answer ``exc.reply`` where the protocol has one), and
  :class:`LocalProtocolError` when our own code asked for something the
  protocol does not allow now (a bug in the driver).

The cores: :mod:`~netplay.protocols.framing` (length-prefixed, delimited,
fixed-size, chunked and struct-header messages), :mod:`~netplay.protocols.zen`,
:mod:`~netplay.protocols.dns`, :mod:`~netplay.protocols.pop3` (a command
protocol's server: it answers what it can itself, in ``data_to_send()``,
and gives the driver events only for what needs the world outside),
:mod:`~netplay.protocols.imap` (IMAP's command grammar) and
:mod:`~netplay.protocols.ssh_hostkey` (SSH's key exchange, from the client's
side, up to the host key the server proves it holds).
Importing this package is cheap and needs nothing beyond
:mod:`netplay.errors`; each core is a submodule imported explicitly (the
DNS one needs dnspython, the SSH one cryptography).  The teaching programs
import the toolkit, never the other way round.
"""

from netplay.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from netplay.protocols._sansio import END, NEED_DATA, Sentinel

__all__ = [
    "END",
    "NEED_DATA",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "Sentinel",
]

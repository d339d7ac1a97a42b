"""What the client and server programs share: their options, binding, connecting, serving.

- :func:`client_server`: the ``server [HOST] [-p PORT]`` / ``client HOST [-p PORT]``
  command line every pair of programs has;
- :func:`family_options`: ``-4`` and ``-6``;
- :func:`bind` and :func:`connect`: a listening socket on every address (IPv6
  and IPv4), and a connection that tries each address of a name in turn;
- :func:`serve_each`: announce where the server listens, then serve one
  client at a time, forever, with one line of report per client.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Callable
from typing import NoReturn

from netplay.programs._cli import ProgramError


def client_server(
    prog: str, description: str, port: int, *, server_help: str, client_help: str
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, argparse.ArgumentParser]:
    """The parser and its ``server`` and ``client`` subparsers, with host and port."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server", help=server_help)
    server.add_argument("host", nargs="?", default="::", help="address to bind (default: all)")
    server.add_argument("-p", "--port", type=int, default=port, help=f"port (default {port})")
    client = sub.add_parser("client", help=client_help)
    client.add_argument("host", help="the server's name or address")
    client.add_argument("-p", "--port", type=int, default=port, help=f"port (default {port})")
    return parser, server, client


def family_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``-4`` and ``-6``, which set ``family`` (0, the default, allows either)."""
    family = parser.add_mutually_exclusive_group()
    for flag, value, name in (("-4", socket.AF_INET, "IPv4"), ("-6", socket.AF_INET6, "IPv6")):
        family.add_argument(
            flag, dest="family", action="store_const", const=value, default=0,
            help=f"{what} over {name} only",
        )  # fmt: skip


def peer_name(address: tuple[str, int] | tuple[str, int, int, int]) -> tuple[str, int]:
    """(host, port), with an IPv4 client of a dual-stack socket shown as IPv4."""
    host, port = address[0], address[1]
    return (host.removeprefix("::ffff:") if "." in host else host), port


def bind(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening TCP socket on ``host`` (``::``: every address, IPv6 and IPv4)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server(
        (host, port), family=family, dualstack_ipv6=family == socket.AF_INET6, backlog=backlog
    )


def connect(host: str, port: int, family: int = 0, timeout: float = 10) -> socket.socket:
    """A TCP connection to the first address of ``host`` (of ``family``) that answers."""
    last: OSError | None = None
    for fam, kind, proto, _name, address in socket.getaddrinfo(
        host, port, family, socket.SOCK_STREAM
    ):
        sock = socket.socket(fam, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last or ProgramError(f"{host} has no address of that family")


def serve_each(
    listener: socket.socket,
    handle: Callable[[socket.socket], str],
    broken: tuple[type[Exception], ...] = (),
) -> NoReturn:
    """Serve one client at a time with ``handle``, which returns a line of report.

    A client that breaks the protocol (``broken``, or any OSError) is
    reported and dropped; the next is served.  The report is printed before
    the connection closes, so a client that waits for the close knows the
    server has said its piece.
    """
    catch: tuple[type[Exception], ...] = (*broken, OSError)
    print(f"Listening at {listener.getsockname()[:2]}", flush=True)
    while True:
        sock, address = listener.accept()
        with sock:
            try:
                report = handle(sock)
            except catch as exc:
                report = f"broken ({exc})"
            print(f"{peer_name(address)}: {report}", flush=True)

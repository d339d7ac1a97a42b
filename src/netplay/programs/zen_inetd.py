"""The zen server as inetd runs it: on stdin and stdout, started by the service layer.

In ``nowait`` mode the service layer accepts each connection and runs this
program with the connection as its stdin and stdout: it converses with
that one client and exits.  In ``wait`` mode (``--wait``) it is handed the
listening socket itself and accepts clients on it, one after another,
until it has served ``--clients`` of them.  Each client's address and port
go to stderr, which is the service's log.  The book declares it on ftp in
both modes, as the server-architecture chapter uses it:

    [[hosts.ftp.services]]
    kind = "inetd"
    name = "zen"
    ports = [1060]
    module = "netplay.programs.zen_inetd"
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

from netplay.programs._cli import run
from netplay.programs._zen_io import handle


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="zen_inetd", description="The zen server on stdin/stdout, as inetd starts it."
    )
    parser.add_argument("--wait", action="store_true", help="stdin is the listening socket")
    parser.add_argument("--clients", type=int, default=100, help="in wait mode: then exit")
    args = parser.parse_args(argv)

    def serve(conn: socket.socket) -> None:
        host, port = conn.getpeername()[:2]
        print(f"zen_inetd: a client at {host} port {port}", file=sys.stderr, flush=True)
        handle(conn)

    def body() -> None:
        sock = socket.socket(fileno=sys.stdin.fileno())
        if not args.wait:
            serve(sock)
            return
        for _ in range(args.clients):
            serve(sock.accept()[0])

    return run("zen_inetd", body)


if __name__ == "__main__":
    sys.exit(main())

"""The zen server as inetd runs it: on stdin and stdout, started by the service layer.

In ``nowait`` mode the service layer accepts each connection and runs this
program with the connection as its stdin and stdout: it converses with
that one client and exits.  In ``wait`` mode (``--wait``) it is handed the
listening socket itself and accepts clients on it, one after another,
until it has served ``--clients`` of them.  A topology declares it so:

    [[hosts.www.services]]
    kind = "inetd"
    name = "zen"
    ports = [1071]
    command = ["python3", "-m", "netplay.programs.zen_inetd"]
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

    def body() -> None:
        sock = socket.socket(fileno=sys.stdin.fileno())
        if not args.wait:
            handle(sock)
            return
        for _ in range(args.clients):
            handle(sock.accept()[0])

    return run("zen_inetd", body)


if __name__ == "__main__":
    sys.exit(main())

"""UDP on one host: a client and server that talk over the loopback interface.

The server binds a port and answers every datagram with its length; the
client sends one with the time in it and prints the reply.  Nothing is
lost on loopback, so there is no need to retry (compare ``udp_remote``).

    netplay exec h1 -- python3 -m netplay.programs.udp_local server &
    netplay exec h1 -- python3 -m netplay.programs.udp_local client
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Sequence

from netplay.programs._cli import ProgramError, run

PORT = 1060
MAX_BYTES = 65535
TIMEOUT_S = 2.0


def reply_to(data: bytes) -> bytes:
    return f"Your data was {len(data)} bytes long".encode("ascii")


def ask(port: int, text: str, host: str = "127.0.0.1") -> tuple[str, tuple[str, int]]:
    """Send ``text``; return the reply and who sent it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT_S)
        sock.sendto(text.encode("utf-8"), (host, port))
        try:
            data, address = sock.recvfrom(MAX_BYTES)
        except TimeoutError:
            raise ProgramError(f"no reply from {host} port {port} in {TIMEOUT_S:g} s") from None
    return data.decode("ascii"), address


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="udp_local", description="UDP over loopback.")
    parser.add_argument(
        "role", choices=["server", "client"], help="answer datagrams, or send one and wait"
    )
    parser.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    args = parser.parse_args(argv)

    def server() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", args.port))
        print(f"Listening at {sock.getsockname()}", flush=True)
        while True:
            data, address = sock.recvfrom(MAX_BYTES)
            text = data.decode("utf-8", errors="replace")
            print(f"The client at {address} says {text!r}", flush=True)
            sock.sendto(reply_to(data), address)

    def client() -> None:
        text = f"The time is {time.ctime()}"
        answer, address = ask(args.port, text)
        print(f"The server {address} replied {answer!r}")

    return run("udp_local", server if args.role == "server" else client)


if __name__ == "__main__":
    sys.exit(main())

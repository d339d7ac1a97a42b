"""TLS client and server with ``ssl.create_default_context()``: verified, by name.

The client's context is the default one: the system's CAs (which, in the
playground, include the playground's CA), certificate verification and
hostname checking on, TLS 1.2 at least.  The server's context is made for
``Purpose.CLIENT_AUTH`` and loads its certificate and key: by default the
host's own, which ``netplay exec`` names in NETPLAY_CERT and NETPLAY_KEY.
The client sends a line; the server answers it in capitals.

    netplay exec www -- python3 -m netplay.programs.tls_app server &
    netplay exec h1 -- python3 -m netplay.programs.tls_app client www.example.com
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import sys
from collections.abc import Sequence

from netplay.programs._cli import ProgramError, run
from netplay.programs.tcp_sixteen import bind, peer_name

PORT = 1068


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


def ask(host: str, port: int, line: str, context: ssl.SSLContext) -> tuple[str, str]:
    """Send ``line`` over verified TLS; return (the TLS version, the answer)."""
    with socket.create_connection((host, port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=host) as sock:
                sock.sendall(line.encode("utf-8") + b"\n")
                with sock.makefile("rb") as stream:
                    answer = stream.readline().decode("utf-8").rstrip("\n")
                return str(sock.version()), answer
        except ssl.SSLCertVerificationError as exc:
            raise ProgramError(f"certificate verification failed: {exc.verify_message}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tls_app", description="A verified TLS client and server."
    )
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server", help="answer each client's line in capitals")
    server.add_argument("host", nargs="?", default="::", help="address to bind (default: all)")
    server.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    server.add_argument("--cert", default=os.environ.get("NETPLAY_CERT"), help="certificate (PEM)")
    server.add_argument("--key", default=os.environ.get("NETPLAY_KEY"), help="private key (PEM)")
    client = sub.add_parser("client", help="send a line and print the answer")
    client.add_argument("host", help="the server's name: the one its certificate must hold")
    client.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    client.add_argument("--cafile", help="trust this CA file instead of the system's")
    client.add_argument("--line", default="Simple is better than complex.", help="what to send")
    args = parser.parse_args(argv)

    def serve() -> None:
        if not args.cert or not args.key:
            raise ProgramError("give --cert and --key (netplay exec sets them for the host)")
        context = server_context(args.cert, args.key)
        listener = bind(args.host, args.port)
        print(f"Listening at {listener.getsockname()[:2]}", flush=True)
        while True:
            raw, address = listener.accept()
            try:
                with context.wrap_socket(raw, server_side=True) as sock:
                    with sock.makefile("rb") as stream:
                        line = stream.readline()
                    sock.sendall(line.upper())
                    print(f"{peer_name(address)}: {sock.version()}, answered", flush=True)
            except (ssl.SSLError, OSError) as exc:
                print(f"{peer_name(address)}: failed ({exc})", flush=True)

    def send() -> None:
        version, answer = ask(args.host, args.port, args.line, client_context(args.cafile))
        print(f"{version}: {answer}")

    return run("tls_app", serve if args.role == "server" else send)


if __name__ == "__main__":
    sys.exit(main())

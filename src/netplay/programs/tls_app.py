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

import os
import socket
import ssl
import sys
from collections.abc import Sequence

from netplay.programs._cli import ProgramError, run
from netplay.programs._net import bind, client_server, serve_each

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
                version = str(sock.version())
                with sock.makefile("rb") as stream:
                    answer = stream.readline().decode("utf-8").rstrip("\n")
                    stream.read()  # until the server, done with us, closes
                return version, answer
        except ssl.SSLCertVerificationError as exc:
            raise ProgramError(f"certificate verification failed: {exc.verify_message}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser, server, client = client_server(
        "tls_app",
        "A verified TLS client and server.",
        PORT,
        server_help="answer each client's line in capitals",
        client_help="send a line and print the answer",
    )
    server.add_argument("--cert", default=os.environ.get("NETPLAY_CERT"), help="certificate (PEM)")
    server.add_argument("--key", default=os.environ.get("NETPLAY_KEY"), help="private key (PEM)")
    client.add_argument("--cafile", help="trust this CA file instead of the system's")
    client.add_argument("--line", default="Simple is better than complex.", help="what to send")
    args = parser.parse_args(argv)

    def serve() -> None:
        if not args.cert or not args.key:
            raise ProgramError("give --cert and --key (netplay exec sets them for the host)")
        context = server_context(args.cert, args.key)

        def answer(raw: socket.socket) -> str:
            with context.wrap_socket(raw, server_side=True) as sock:
                with sock.makefile("rb") as stream:
                    line = stream.readline()
                sock.sendall(line.upper())
                return f"{sock.version()}, answered"

        serve_each(bind(args.host, args.port), answer)

    def send() -> None:
        version, answer = ask(args.host, args.port, args.line, client_context(args.cafile))
        print(f"{version}: {answer}")

    return run("tls_app", serve if args.role == "server" else send)


if __name__ == "__main__":
    sys.exit(main())

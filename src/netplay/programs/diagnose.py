"""What went wrong with a connection, in one line.

It tries what a client would (resolve the name, connect, optionally
complete a TLS handshake with verification on, optionally send a line and
read the answer) and names the first failure:

    name not found       the name has no address (DNS says no)
    refused              a host answered, but nothing listens on that port
    timed out            nothing answered at all: a firewall, loss, a dead link
    unreachable          a router says there is no way to that host or network
    reset                the peer aborted the connection (TCP RST)
    TLS verification failed   the certificate is not from a trusted CA (or expired, ...)
    hostname mismatch    the certificate is valid, for another name

    netplay exec h1 -- python3 -m netplay.programs.diagnose www.example.com 443 --tls
    netplay exec h1 -- python3 -m netplay.programs.diagnose www 443 --tls --servername mail
"""

from __future__ import annotations

import argparse
import errno
import socket
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from netplay.programs._cli import run

HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
IP_MISMATCH = 64  # X509_V_ERR_IP_ADDRESS_MISMATCH
TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Diagnosis:
    kind: str  # "ok" or one of the failures of the module's docstring
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


def _from_oserror(exc: OSError) -> Diagnosis:
    if isinstance(exc, TimeoutError | socket.timeout):
        return Diagnosis("timed out", "no answer")
    if isinstance(exc, ConnectionRefusedError):
        return Diagnosis("refused", "nothing listens on that port")
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return Diagnosis("reset", "the peer aborted the connection")
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return Diagnosis("unreachable", exc.strerror or "")
    return Diagnosis("error", exc.strerror or str(exc))


def diagnose(
    host: str,
    port: int,
    *,
    tls: bool = False,
    server_name: str | None = None,
    cafile: str | None = None,
    send: bytes | None = None,
    timeout: float = TIMEOUT_S,
) -> Diagnosis:
    """Try the connection; the first thing that failed, or ok."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return Diagnosis("name not found", exc.strerror or "")
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return _from_oserror(exc)
    with sock:
        stream: socket.socket = sock
        done = f"connected to {sock.getpeername()[0]}"
        if tls:
            context = ssl.create_default_context(cafile=cafile)
            try:
                stream = context.wrap_socket(sock, server_hostname=server_name or host)
            except ssl.SSLCertVerificationError as exc:
                if exc.verify_code in (HOSTNAME_MISMATCH, IP_MISMATCH):
                    return Diagnosis("hostname mismatch", exc.verify_message)
                return Diagnosis("TLS verification failed", exc.verify_message)
            except ssl.SSLError as exc:
                return Diagnosis("TLS failed", exc.reason or str(exc))
            except OSError as exc:
                return _from_oserror(exc)
            done += f", {stream.version()}"
        if send is not None:
            try:
                stream.sendall(send)
                reply = stream.recv(4096)
            except OSError as exc:
                return _from_oserror(exc)
            done += f", answered {len(reply)} bytes" if reply else ", closed without answering"
        return Diagnosis("ok", done)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="diagnose", description="Try a connection and say in one line what went wrong."
    )
    parser.add_argument("host", help="name or address")
    parser.add_argument("port", type=int, help="TCP port")
    parser.add_argument("--tls", action="store_true", help="complete a TLS handshake (verified)")
    parser.add_argument("--servername", help="the name to verify (default: HOST)")
    parser.add_argument("--cafile", help="trust this CA file instead of the system's")
    parser.add_argument("--send", help="send this line and wait for an answer")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per step")
    args = parser.parse_args(argv)

    def body() -> int:
        send = None if args.send is None else args.send.encode() + b"\r\n"
        found = diagnose(
            args.host,
            args.port,
            tls=args.tls,
            server_name=args.servername,
            cafile=args.cafile,
            send=send,
            timeout=args.timeout,
        )
        print(found)
        return 0 if found.kind == "ok" else 1

    return run("diagnose", body)


if __name__ == "__main__":
    sys.exit(main())

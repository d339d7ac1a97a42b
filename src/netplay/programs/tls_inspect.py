"""tls_inspect: what a TLS connection is made of, from either end.

As a client (``connect``) it reports the protocol version, the cipher and
its secret bits, the peer's key type and size, compression, the names the
peer's certificate holds and whether the name asked for is among them, the
chain up to the trusted CA, and the validity dates.  As a server
(``serve``) it reports the same of each client, with its certificate when
one is asked for.  ``local`` reports what this Python's ssl module
supports.  Options choose a CA file, a client certificate, cipher lists
and the minimum and maximum versions, through the modern ``ssl`` API only
(SSLContext, TLSVersion).

    netplay exec h1 -- python3 -m netplay.programs.tls_inspect connect www.example.com 443
    netplay exec h1 -- python3 -m netplay.programs.tls_inspect connect www 443 --max TLSv1_2
    netplay exec h1 -- python3 -m netplay.programs.tls_inspect local
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from netplay.programs._cli import ProgramError, run
from netplay.programs._net import bind, peer_name

VERSIONS = {v.name: v for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)}


@dataclass(frozen=True, slots=True)
class Report:
    version: str
    cipher: str
    secret_bits: int
    compression: str | None
    key: str = ""
    subject: str = ""
    names: tuple[str, ...] = ()
    wanted: str | None = None
    matches: bool | None = None
    chain: tuple[str, ...] = ()
    not_before: str = ""
    not_after: str = ""
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"protocol    {self.version}",
            f"cipher      {self.cipher} ({self.secret_bits} secret bits)",
            f"compression {self.compression or 'none'}",
        ]
        if self.subject:
            out += [
                f"subject     {self.subject}",
                f"key         {self.key}",
                f"names       {', '.join(self.names) or '(none)'}",
            ]
            if self.wanted is not None:
                out.append(f"matches     {'yes' if self.matches else 'NO'} ({self.wanted})")
            out += [
                f"chain       {' <- '.join(self.chain)}",
                f"valid       {self.not_before} to {self.not_after}",
            ]
        return out + [f"note        {note}" for note in self.notes]


def _name_matches(wanted: str, names: Sequence[str]) -> bool:
    """Does ``wanted`` match a DNS name (one leading wildcard label allowed) or IP of ``names``?"""
    try:
        address = ipaddress.ip_address(wanted)
    except ValueError:
        address = None
    for name in names:
        if address is not None:
            try:
                if ipaddress.ip_address(name) == address:
                    return True
            except ValueError:
                pass
            continue
        pattern, host = name.lower().split("."), wanted.lower().rstrip(".").split(".")
        if len(pattern) == len(host) and all(
            p == h or (i == 0 and p == "*")
            for i, (p, h) in enumerate(zip(pattern, host, strict=True))
        ):
            return True
    return False


def _key(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name} ({key.key_size} bits)"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA ({key.key_size} bits)"
    return type(key).__name__


def report(sock: ssl.SSLSocket, wanted: str | None, context: ssl.SSLContext) -> Report:
    """What ``sock`` (after its handshake) is made of."""
    cipher, _protocol, bits = sock.cipher() or ("?", "?", 0)
    base = Report(str(sock.version()), cipher, bits or 0, sock.compression())
    der = sock.getpeercert(binary_form=True)
    if not der:
        return base
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(
            [*san.get_values_for_type(x509.DNSName)]
            + [str(a) for a in san.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        names = ()
    chain = _chain(sock, cert, context)
    return Report(
        base.version,
        base.cipher,
        base.secret_bits,
        base.compression,
        key=_key(cert),
        subject=cert.subject.rfc4514_string(),
        names=names,
        wanted=wanted,
        matches=None if wanted is None else _name_matches(wanted, names),
        chain=chain,
        not_before=cert.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC"),
        not_after=cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC"),
    )


def _chain(sock: ssl.SSLSocket, leaf: x509.Certificate, context: ssl.SSLContext) -> tuple[str, ...]:
    verified = getattr(sock, "get_verified_chain", None)  # Python 3.13 and later
    if verified is not None:
        return tuple(x509.load_der_x509_certificate(c).subject.rfc4514_string() for c in verified())
    links = [leaf.subject.rfc4514_string()]
    for ca in context.get_ca_certs(binary_form=True):
        anchor = x509.load_der_x509_certificate(ca)
        if anchor.subject == leaf.issuer:
            links.append(anchor.subject.rfc4514_string())
            break
    else:
        links.append(f"{leaf.issuer.rfc4514_string()} (not among the trusted CAs)")
    return tuple(links)


def make_context(args: argparse.Namespace, purpose: ssl.Purpose) -> ssl.SSLContext:
    context = ssl.create_default_context(purpose, cafile=args.cafile)
    if purpose == ssl.Purpose.SERVER_AUTH and args.no_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if args.min:
        context.minimum_version = VERSIONS[args.min]
    if args.max:
        context.maximum_version = VERSIONS[args.max]
    if args.ciphers:
        try:
            context.set_ciphers(args.ciphers)
        except ssl.SSLError:
            raise ProgramError(f"no cipher matches {args.ciphers!r}") from None
    if args.cert:
        context.load_cert_chain(args.cert, args.key)
    return context


def local_support() -> list[str]:
    context = ssl.create_default_context()
    paths = ssl.get_default_verify_paths()
    protocols = [name for name in ("SSLv2", "SSLv3", "TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3")
                 if getattr(ssl, f"HAS_{name}", False)]  # fmt: skip
    return [
        f"library     {ssl.OPENSSL_VERSION}",
        f"protocols   {' '.join(protocols)} (compiled in)",
        f"default     {context.minimum_version.name} to {context.maximum_version.name}",
        f"ciphers     {len(context.get_ciphers())} in the default context",
        f"trusted     {len(context.get_ca_certs())} CA certificates from {paths.cafile}",
        f"features    SNI {ssl.HAS_SNI}, ALPN {ssl.HAS_ALPN}, ECDH {ssl.HAS_ECDH}",
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tls_inspect", description="Report what a TLS connection is made of."
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    connect = sub.add_parser("connect", help="connect to a server and report")
    connect.add_argument("host", help="the server's name (checked against its certificate)")
    connect.add_argument("port", type=int, nargs="?", default=443, help="port (default 443)")
    connect.add_argument("--servername", help="the name to send and check (default: HOST)")
    connect.add_argument("--no-verify", action="store_true", help="report even an untrusted peer")
    serve = sub.add_parser("serve", help="accept one client and report")
    serve.add_argument("host", nargs="?", default="::", help="address to bind (default: all)")
    serve.add_argument("-p", "--port", type=int, default=1069, help="port (default 1069)")
    serve.add_argument("--require-client-cert", action="store_true", help="ask clients for one")
    for p in (connect, serve):
        p.add_argument("--cafile", help="trust this CA file (PEM) instead of the system's")
        default_cert = os.environ.get("NETPLAY_CERT") if p is serve else None
        default_key = os.environ.get("NETPLAY_KEY") if p is serve else None
        p.add_argument("--cert", default=default_cert, help="our certificate (PEM)")
        p.add_argument("--key", default=default_key, help="our private key (PEM)")
        p.add_argument("--ciphers", help="an OpenSSL cipher list (TLS 1.2 and below)")
        p.add_argument("--min", choices=sorted(VERSIONS), help="lowest version to accept")
        p.add_argument("--max", choices=sorted(VERSIONS), help="highest version to offer")
    sub.add_parser("local", help="what this Python's ssl module supports")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def body() -> None:
        if args.mode == "local":
            print("\n".join(local_support()))
            return
        if args.mode == "connect":
            context = make_context(args, ssl.Purpose.SERVER_AUTH)
            name = args.servername or args.host
            with socket.create_connection((args.host, args.port), timeout=10) as raw:
                try:
                    sock = context.wrap_socket(raw, server_hostname=name)
                except ssl.SSLCertVerificationError as exc:
                    raise ProgramError(f"verification failed: {exc.verify_message}") from None
                except ssl.SSLError as exc:
                    raise ProgramError(f"the handshake failed: {exc.reason}") from None
                with sock:
                    print("\n".join(report(sock, name, context).lines()))
            return
        if not args.cert or not args.key:
            raise ProgramError("give --cert and --key (netplay exec sets them for the host)")
        args.no_verify = False
        context = make_context(args, ssl.Purpose.CLIENT_AUTH)
        if args.require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
        listener = bind(args.host, args.port)
        print(f"Listening at {listener.getsockname()[:2]}", flush=True)
        raw, address = listener.accept()
        with raw, context.wrap_socket(raw, server_side=True) as sock:
            print(f"client      {peer_name(address)}")
            print("\n".join(report(sock, None, context).lines()))

    return run("tls_inspect", body)


if __name__ == "__main__":
    sys.exit(main())

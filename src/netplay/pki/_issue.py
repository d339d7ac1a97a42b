"""Making certificates (pure: bytes out, no files, the time passed in).

The CA and every certificate it issues are built to pass OpenSSL's
``-x509_strict`` checks, which Python applies with ``VERIFY_X509_STRICT``
(the default from Python 3.13): the CA has critical basicConstraints (CA,
path length 0), critical keyUsage and a Subject Key Identifier; every leaf
has an Authority Key Identifier, a Subject Key Identifier, a
subjectAltName, keyUsage and one extendedKeyUsage.  Keys are ECDSA P-256:
a key costs well under a millisecond, so a thousand hosts get theirs at
once, and every TLS stack of interest speaks it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 397  # what public CAs may issue at most
BACKDATE = dt.timedelta(hours=1)  # tolerate clocks a little behind
COMMON_NAME_MAX = 64  # ub-common-name (RFC 5280)


@dataclass(frozen=True, slots=True)
class Pair:
    """A certificate and its private key, both PEM."""

    cert: bytes
    key: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "netplay"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signatures only, and for a CA signing certificates and CRLs too."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(playground: str, now: dt.datetime) -> Pair:
    """A self-signed CA for the playground ``playground``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(f"netplay {playground} CA")
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(ca=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _leaf(
    ca: Pair,
    common: str,
    alt_names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    now: dt.datetime,
) -> Pair:
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(_leaf_ends(ca_cert, now))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(ca=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Pair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_server(
    ca: Pair, names: Sequence[str], addresses: Sequence[str], now: dt.datetime
) -> Pair:
    """A serverAuth certificate for ``names`` and ``addresses``.  Its subject is
    the first name that fits a common name (64 characters; clients verify the
    names in subjectAltName, which have no such limit), else the host's label."""
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    subject = next((n for n in names if len(n) <= COMMON_NAME_MAX), names[0].split(".")[0])
    return _leaf(ca, subject, alt, ExtendedKeyUsageOID.SERVER_AUTH, now)


def issue_client(ca: Pair, user: str, email: str, now: dt.datetime) -> Pair:
    """A clientAuth certificate for ``user`` (mutual TLS), naming ``email``."""
    alt: list[x509.GeneralName] = [x509.RFC822Name(email)]
    return _leaf(ca, user, alt, ExtendedKeyUsageOID.CLIENT_AUTH, now)


def _leaf_ends(ca_cert: x509.Certificate, now: dt.datetime) -> dt.datetime:
    ends = min(now + dt.timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc)
    return ends.replace(microsecond=0)  # what a certificate's time holds


def leaf_ends(ca: bytes, now: dt.datetime) -> dt.datetime:
    """When a certificate the CA (PEM) issues as of ``now`` ends."""
    return _leaf_ends(x509.load_pem_x509_certificate(ca), now)


def not_after(cert: bytes) -> dt.datetime:
    return x509.load_pem_x509_certificate(cert).not_valid_after_utc

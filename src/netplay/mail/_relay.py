"""Mail to other domains: where a domain's mail goes (its MX in the playground's DNS),
one delivery attempt over SMTP, and the bounce when it cannot be delivered.

Blocking functions, run by the SMTP server in a thread.  What a domain's
MX records name, in order of preference, is asked of the host's resolver
(the playground's DNS server); a domain with no MX record but an address
is its own exchange (RFC 5321 5.1), and a domain that does not exist is a
permanent failure.  An attempt speaks SMTP to port 25 of each exchange in
turn, with STARTTLS (the certificate verified against the playground's CA,
which every host trusts) when the server offers it; the first exchange
that answers decides.  A 4xx answer or a connection that fails is
temporary (try again later); a 5xx answer is permanent.
"""

from __future__ import annotations

import secrets
import smtplib
import socket
import ssl
from collections.abc import Sequence
from email.utils import formatdate, make_msgid

SMTP_PORT = 25
ATTEMPT_TIMEOUT_S = 30.0


class Failure(Exception):
    """Why a recipient was not delivered; ``permanent`` ones are bounced at once."""

    def __init__(self, text: str, permanent: bool) -> None:
        super().__init__(text)
        self.text = text
        self.permanent = permanent


def exchanges(domain: str) -> list[str]:
    """The hosts that take mail for ``domain``, most preferred first; raises Failure."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver()
    try:
        answer = resolver.resolve(domain, "MX")
        records = sorted(answer, key=lambda mx: mx.preference)
        return [mx.exchange.to_text(omit_final_dot=True) for mx in records]
    except dns.resolver.NXDOMAIN:
        raise Failure(f"domain {domain} does not exist", permanent=True) from None
    except dns.resolver.NoAnswer:
        return [domain]  # the implicit MX: its own address
    except dns.exception.DNSException as exc:
        raise Failure(f"cannot look up the MX of {domain}: {exc}", permanent=False) from None


def deliver(
    message: bytes, sender: str, recipients: Sequence[str], domain: str, helo: str
) -> dict[str, Failure]:
    """One attempt to deliver ``message`` to ``recipients`` (all in ``domain``);
    the recipients that failed, and why (none: all delivered)."""
    try:
        hosts = exchanges(domain)
    except Failure as failure:
        return dict.fromkeys(recipients, failure)
    last = Failure(f"{domain} has no mail exchanger", permanent=True)
    for host in hosts:
        try:
            return _attempt(message, sender, recipients, host, helo)
        except (OSError, smtplib.SMTPException) as exc:
            last = _failure(host, exc)
            if last.permanent:
                break
    return dict.fromkeys(recipients, last)


def _attempt(
    message: bytes, sender: str, recipients: Sequence[str], host: str, helo: str
) -> dict[str, Failure]:
    with smtplib.SMTP(host, SMTP_PORT, local_hostname=helo, timeout=ATTEMPT_TIMEOUT_S) as client:
        client.ehlo()
        if client.has_extn("starttls"):
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        refused = client.sendmail(sender, list(recipients), message)
    return {
        rcpt: Failure(f"{host} said: {code} {text.decode(errors='replace')}", code >= 500)
        for rcpt, (code, text) in refused.items()
    }


def _failure(host: str, exc: BaseException) -> Failure:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _text in exc.recipients.values()]
        detail = "; ".join(
            f"{code} {text.decode(errors='replace')}" for code, text in exc.recipients.values()
        )
        return Failure(f"{host} said: {detail}", all(code >= 500 for code in codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return Failure(f"{host} said: {exc.smtp_code} {text}", exc.smtp_code >= 500)
    if isinstance(exc, socket.gaierror):
        return Failure(f"cannot find the address of {host}", permanent=False)
    return Failure(f"cannot talk to {host}: {exc or type(exc).__name__}", permanent=False)


def bounce(original: bytes, sender: str, failures: dict[str, Failure], reporter: str) -> bytes:
    """The delivery status notification (RFC 3464) that tells ``sender`` which of
    its recipients did not get ``original``, from the MTA ``reporter``: a
    multipart/report of a text for people, the machine-readable status of each
    recipient, and the original's header (written by hand: the email package
    cannot build a message/delivery-status part)."""
    boundary = f"=_bounce_{secrets.token_hex(8)}"
    text = [
        f"This is the mail system at host {reporter}.",
        "",
        "I'm sorry to have to inform you that your message could not",
        "be delivered to one or more recipients.",
        "",
        *(f"<{rcpt}>: {failure.text}" for rcpt, failure in failures.items()),
    ]
    status = [f"Reporting-MTA: dns; {reporter}", ""]
    for rcpt, failure in failures.items():
        status += [
            f"Final-Recipient: rfc822; {rcpt}",
            "Action: failed",
            "Status: 5.0.0",
            f"Diagnostic-Code: smtp; {failure.text}",
            "",
        ]
    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporter}>",
        f"To: <{sender}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {formatdate(localtime=True)}",
        f"Message-ID: {make_msgid(domain=reporter)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        *text,
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        *status,
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    headers = original.split(b"\r\n\r\n", 1)[0]
    return "\r\n".join(head).encode() + b"\r\n" + headers + f"\r\n\r\n--{boundary}--\r\n".encode()

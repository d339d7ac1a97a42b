"""The sample mailbox a new store gives the demo user: something for the
e-mail programs to read on first ``up``.

Four messages, written for netplay (no text of anyone else's): plain text;
multipart/alternative (text and HTML); one with an attachment (a small PNG
drawn here); and one with non-ASCII headers (RFC 2047 encoded words) and a
UTF-8 body.  They are the same bytes on every machine (fixed dates and
Message-IDs), with CRLF line ends, as every message in the store.
"""

from __future__ import annotations

import struct
import zlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP

DATES = (
    "Mon, 02 Feb 2026 09:00:00 +0000",
    "Tue, 03 Feb 2026 10:30:00 +0100",
    "Wed, 04 Feb 2026 14:15:00 -0500",
    "Thu, 05 Feb 2026 18:45:00 +0900",
)


def _png(width: int = 16, height: int = 16) -> bytes:
    """A small PNG: a diagonal gradient, as bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 16, y * 16, 200))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def sample_messages(user: str, domain: str) -> list[bytes]:
    """The sample messages for ``user@domain``, oldest first."""
    sender = Address("netplay", "postmaster", domain)
    to = Address(user.capitalize(), user, domain)
    made = []

    def message(number: int, subject: str, by: Address = sender) -> EmailMessage:
        msg = EmailMessage(policy=SMTP)
        msg["From"] = by
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = DATES[number]
        msg["Message-ID"] = f"<sample-{number + 1}@{domain}>"
        return msg

    plain = message(0, "Welcome to the playground")
    plain.set_content(
        f"Hello {user},\n\n"
        "This is your mailbox on the playground's mail server. Mail sent to\n"
        f"{user}@{domain} with SMTP lands here, and POP3 and IMAP read it.\n\n"
        "-- netplay\n"
    )
    made.append(plain)

    alternative = message(1, "Your weekly network report")
    alternative.set_content("Packets sent: 1,204\nPackets lost: 3\nAverage round trip: 12 ms\n")
    alternative.add_alternative(
        "<html><body><h1>Your weekly network report</h1><table>"
        "<tr><td>Packets sent</td><td>1,204</td></tr>"
        "<tr><td>Packets lost</td><td>3</td></tr>"
        "<tr><td>Average round trip</td><td>12 ms</td></tr>"
        "</table></body></html>\n",
        subtype="html",
    )
    made.append(alternative)

    attached = message(2, "The diagram you asked for")
    attached.set_content("Attached is the gradient from the slides.\n")
    attached.add_attachment(_png(), maintype="image", subtype="png", filename="gradient.png")
    made.append(attached)

    juergen = Address("Jürgen Müller", "juergen", domain)
    international = message(3, "Grüße aus Zürich — 東京からこんにちは", juergen)
    international.set_content(
        "Liebe Grüße aus Zürich! Das Wetter ist schön.\n東京からこんにちは。\n",
        charset="utf-8",
        cte="8bit",
    )
    made.append(international)
    for number, msg in enumerate(made, start=1):
        if msg.is_multipart():  # not a random boundary: the same bytes every time
            msg.set_boundary(f"=_netplay-sample-{number}")
    return [msg.as_bytes() for msg in made]

"""mail.example.com's SMTP service in the book playground, from h1 through the NAT.

The stdlib client (smtplib: plain, STARTTLS with verification, AUTH on
submission, implicit TLS) and swaks send real mail; what lands in
brandon's Maildir is compared byte for byte with what was sent.  Raw
sessions check the refusals: relaying, AUTH where it does not belong,
smuggling with bare line ends, and every limit.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from _mail import smtp_session
from _net import run_json
from netplay import Playground
from netplay.services.engines.smtp import with_enhanced_code
from netplay.testing import wait_for_service
from netplay.topology import loads

NAT = "10.25.1.65"  # modemA: what mail sees of h1
#: what netplay puts in front of a message it delivers: Return-Path and a Received of 3 lines
ADDED_LINES = 4


def python(pg: Playground, source: str, *args: str, host: str = "h1") -> Any:
    return run_json(pg.host(host), source, *args)


def inbox(pg: Playground, user: str = "brandon", host: str = "mail") -> Path:
    return pg.paths.service_data / host / "mail" / user


def delivered(pg: Playground, marker: str) -> list[bytes]:
    """The messages in brandon's INBOX that hold ``marker``."""
    root = inbox(pg)
    found = []
    for sub in ("new", "cur"):
        for path in sorted((root / sub).iterdir()):
            data = path.read_bytes()
            if marker.encode() in data:
                found.append(data)
    return found


def as_sent(message: bytes) -> tuple[list[bytes], bytes]:
    """A delivered message split into the lines netplay added and the message as sent."""
    lines = message.split(b"\r\n", ADDED_LINES)
    return lines[:ADDED_LINES], lines[ADDED_LINES]


SEND = r"""
import json, smtplib, ssl, sys
how, marker = sys.argv[1], sys.argv[2]
raw = (
    f"From: Alice <alice@h1.example.com>\r\nTo: brandon@example.com\r\n"
    f"Subject: {how} {marker}\r\n\r\nSent {how}.\r\n..a line that starts with a dot\r\n"
).encode()
ctx = ssl.create_default_context()  # the playground's CA is trusted in every host
if how == "implicit":
    client = smtplib.SMTP_SSL("mail.example.com", 465, context=ctx, timeout=20)
else:
    client = smtplib.SMTP("mail.example.com", 587 if how == "submission" else 25, timeout=20)
with client:
    client.ehlo("h1.example.com")
    features = sorted(client.esmtp_features)
    if how in ("starttls", "submission"):
        client.starttls(context=ctx)
        client.ehlo("h1.example.com")
    if how in ("submission", "implicit"):
        client.login("brandon", "abc123")
    refused = client.sendmail("alice@h1.example.com", ["brandon@example.com"], raw)
    code, answer = client.noop()
print(json.dumps({"features": features, "refused": refused, "raw": raw.decode()}))
"""


def test_smtplib_plain_starttls_submission_and_implicit_tls(book: Playground) -> None:
    for how, protocol in (
        ("plain", "ESMTP"),
        ("starttls", "ESMTPS"),
        ("submission", "ESMTPSA"),
        ("implicit", "ESMTPSA"),
    ):
        marker = uuid.uuid4().hex
        sent = python(book, SEND, how, marker)
        assert sent["refused"] == {}
        (message,) = delivered(book, marker)
        added, body = as_sent(message)
        assert body == sent["raw"].encode()  # smtplib dot-stuffs, the server unstuffs
        assert added[0] == b"Return-Path: <alice@h1.example.com>"
        assert added[1] == f"Received: from h1.example.com ([{NAT}])".encode()
        assert f"by mail.example.com (netplay) with {protocol} id ".encode() in added[2]
        if how == "plain":  # port 25 before TLS: no AUTH, but STARTTLS
            features = set(sent["features"])
            assert {"size", "8bitmime", "smtputf8", "pipelining", "starttls"} <= features
            assert {"enhancedstatuscodes"} <= features and "auth" not in features


UTF8 = r"""
import base64, json, smtplib, ssl, sys
from email.message import EmailMessage
marker = sys.argv[1]
msg = EmailMessage()
msg["From"] = "Jürgen <juergen@h1.example.com>"
msg["To"] = "brandon@example.com"
msg["Subject"] = f"Grüße {marker} — 東京"
msg.set_content(f"Ünïcödé body, 8 bit: 東京 {marker}\n", cte="8bit")
msg.add_attachment(bytes(range(256)) * (5 * 4096), maintype="application",
                   subtype="octet-stream", filename="five-megabytes.bin")
raw = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
with smtplib.SMTP("mail.example.com", 587, timeout=60) as client:
    client.starttls(context=ssl.create_default_context())
    client.login("brandon", "abc123")
    client.sendmail("juergen@h1.example.com", ["brandon@example.com"], raw,
                    mail_options=["BODY=8BITMIME"])
print(json.dumps({"raw": base64.b64encode(raw).decode()}))
"""


def test_8bit_utf8_and_a_5mb_attachment_arrive_byte_for_byte(book: Playground) -> None:
    marker = uuid.uuid4().hex
    sent = python(book, UTF8, marker)
    raw = base64.b64decode(sent["raw"])
    assert len(raw) > 5_000_000 and "東京".encode() in raw
    (message,) = delivered(book, marker)
    assert as_sent(message)[1] == raw


def session(pg: Playground, port: int, *steps: str, tls: str = "") -> list[list[str]]:
    """:func:`smtp_session` from h1."""
    return smtp_session(pg.host("h1"), port, *steps, tls=tls)


def codes(said: list[list[str]]) -> list[str]:
    return [lines[-1][:3] for lines in said]


def test_no_open_relay(book: Playground) -> None:
    said = session(
        book,
        25,
        "EHLO h1\r\n",
        "MAIL FROM:<spam@h1.example.com>\r\n",
        "RCPT TO:<victim@gmail.com>\r\n",
        "RCPT TO:<someone@h1.example.com>\r\n",  # a playground name, but not mail's
        "RCPT TO:<nobody@example.com>\r\n",
        "RCPT TO:<Brandon@EXAMPLE.com>\r\n",  # local parts here ignore case
        "QUIT\r\n",
    )
    assert said[0][0] == "220 mail.example.com ESMTP netplay"
    assert said[1][0] == "250-mail.example.com"
    assert said[3] == ["554 5.7.1 <victim@gmail.com>: Relay access denied"]
    assert said[4] == ["554 5.7.1 <someone@h1.example.com>: Relay access denied"]
    assert said[5][0].startswith("550 5.1.1 <nobody@example.com>: Recipient address rejected")
    assert codes(said)[6:] == ["250", "221"]


def test_auth_only_after_tls_and_only_on_submission(book: Playground) -> None:
    plain = base64.b64encode(b"\0brandon\0abc123").decode()
    wrong = base64.b64encode(b"\0brandon\0wrong").decode()
    on_25 = session(
        book, 25, "EHLO h1\r\n", "STARTTLS\r\n", "STARTTLS-UPGRADE", "EHLO h1\r\n",
        f"AUTH PLAIN {plain}\r\n",
    )  # fmt: skip
    assert not any("AUTH" in line for line in on_25[3])
    assert on_25[4] == ["503 5.5.1 Error: authentication not enabled"]
    before_tls = session(
        book, 587, "EHLO h1\r\n", f"AUTH PLAIN {plain}\r\n", "MAIL FROM:<a@h1>\r\n"
    )
    assert not any("AUTH" in line for line in before_tls[1])
    assert codes(before_tls)[2:] == ["530", "530"]  # STARTTLS first
    submission = session(
        book, 587, "EHLO h1\r\n", "STARTTLS\r\n", "STARTTLS-UPGRADE", "EHLO h1\r\n",
        "MAIL FROM:<brandon@example.com>\r\n",
        f"AUTH PLAIN {wrong}\r\n",
        "AUTH LOGIN\r\n", base64.b64encode(b"brandon").decode() + "\r\n",
        base64.b64encode(b"abc123").decode() + "\r\n",
        "MAIL FROM:<brandon@example.com>\r\n",
        "RCPT TO:<friend@gmail.com>\r\n",  # relayed, if the playground's DNS knew it
        "RCPT TO:<brandon@example.com>\r\n",
    )  # fmt: skip
    assert "250-AUTH LOGIN PLAIN" in submission[3]
    assert submission[4] == ["530 5.7.0 Authentication required"]
    assert submission[5] == ["535 5.7.8 Error: authentication failed"]
    assert codes(submission)[6:] == ["334", "334", "235", "250", "550", "250"]
    assert "gmail.com does not exist" in submission[10][0]
    implicit = session(
        book, 465, "EHLO h1\r\n", f"AUTH PLAIN {plain}\r\n", "QUIT\r\n", tls="implicit"
    )
    assert "250-STARTTLS" not in implicit[1] and "250-AUTH LOGIN PLAIN" in implicit[1]
    assert codes(implicit)[2:] == ["235", "221"]


def test_swaks_starttls_auth_and_the_relay_probe(book: Playground) -> None:
    marker = uuid.uuid4().hex
    swaks = [
        "swaks", "--server", "mail.example.com", "--from", "alice@h1.example.com",
        "--header", f"Subject: swaks {marker}", "--timeout", "20",
        "--tls", "--tls-verify", "--tls-ca-path", "/etc/ssl/certs/ca-certificates.crt",
    ]  # fmt: skip
    sent = book.host("h1").run([*swaks, "--to", "brandon@example.com"], timeout=60)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "250 2.0.0 Ok: queued as" in sent.stdout
    auth = ["--port", "587", "--auth", "LOGIN", "--auth-user", "brandon"]
    submitted = book.host("h1").run(
        [*swaks, *auth, "--auth-password", "abc123", "--to", "brandon@example.com"], timeout=60
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert len(delivered(book, marker)) == 2
    relay = book.host("h1").run([*swaks, "--to", "victim@gmail.com"], timeout=60)
    assert relay.returncode != 0 and "Relay access denied" in relay.stdout
    wrong = book.host("h1").run(
        [*swaks, *auth, "--auth-password", "nope", "--to", "brandon@example.com"], timeout=60
    )
    assert wrong.returncode != 0 and "535 5.7.8" in wrong.stdout
    assert len(delivered(book, marker)) == 2


def test_smuggling_with_bare_line_ends_delivers_nothing(book: Playground) -> None:
    marker = uuid.uuid4().hex
    envelope = [
        "EHLO h1\r\n",
        "MAIL FROM:<a@h1.example.com>\r\n",
        "RCPT TO:<brandon@example.com>\r\n",
    ]
    for smuggled in (
        # a second message hidden behind an end of data that is not <CR><LF>.<CR><LF>
        f"Subject: {marker}\r\n\r\nhi\n.\nMAIL FROM:<evil@x>\nRCPT TO:<brandon@example.com>\n"
        f"DATA\nSubject: smuggled {marker}\n\nevil\r\n.\r\n",
        f"Subject: {marker}\r\n\r\nhi\r.\r\nmore\r\n.\r\n",  # a bare CR
    ):
        said = session(book, 25, *envelope, "DATA\r\n", smuggled, "NOOP\r\n")
        assert said[4][0].startswith("354")
        assert said[5] == ["550 5.6.11 Error: bare <CR> or <LF> received; lines end in <CR><LF>"]
        assert said[6] == ["250 2.0.0 Ok"]  # the session goes on
    assert delivered(book, marker) == []


def test_limits_on_lines_sizes_recipients_and_junk(book: Playground) -> None:
    envelope = ["EHLO h1\r\n", "MAIL FROM:<a@h1.example.com>\r\n"]
    too_long = session(book, 25, "EHLO " + "h" * 600 + "\r\n", "NOOP\r\n")
    assert codes(too_long)[1:] == ["500", "250"]
    size = session(book, 25, "EHLO h1\r\n", "MAIL FROM:<a@h1.example.com> SIZE=20000000\r\n")
    assert size[2][0].startswith("552")
    line = session(
        book, 25, *envelope, "RCPT TO:<brandon@example.com>\r\n", "DATA\r\n",
        "Subject: x\r\n\r\n" + "y" * 2000 + "\r\n.\r\n", "NOOP\r\n",
    )  # fmt: skip
    assert codes(line)[5:] == ["500", "250"]
    junk = session(book, 25, "EHLO h1\r\n", *["NOOP\r\n"] * 101)
    assert codes(junk)[2:] == ["250"] * 100 + ["421"]  # and it hangs up
    bogus = session(book, 25, *["BOGUS\r\n"] * 5)
    assert codes(bogus)[1:] == ["500"] * 4 + ["502"]  # and it hangs up


TWO_AT_ONCE = r"""
import json, socket
def connect():
    sock = socket.create_connection(("mail.example.com", 25), timeout=20)
    file = sock.makefile("rb")
    file.readline()
    return sock, file
def ask(sock, file, line):
    sock.sendall(line.encode())
    while (reply := file.readline())[3:4] == b"-":
        pass
    return reply.decode()[:3]
a, b = connect(), connect()
for _ in range(20):
    ask(*a, "EHLO a\r\n")
ask(*b, "EHLO b\r\n")
print(json.dumps(ask(*b, "MAIL FROM:<" + "x" * 580 + "@h1.example.com>\r\n")))
"""


def test_one_connection_s_ehlos_do_not_widen_another_s_limit(book: Playground) -> None:
    """MAIL is at most 512 bytes and SIZE's and SMTPUTF8's parameters (548) on each
    connection, however many EHLOs another connection sent."""
    assert python(book, TWO_AT_ONCE) == "500"


def test_too_many_recipients_and_too_much_data(book: Playground) -> None:
    many = r"""
import json, smtplib
with smtplib.SMTP("mail.example.com", 25, timeout=30) as client:
    client.ehlo("h1")
    client.mail("a@h1.example.com")
    codes = [client.rcpt("brandon@example.com")[0] for _ in range(1001)]
    client.rset()
    client.mail("a@h1.example.com")
    client.rcpt("brandon@example.com")
    big, _text = client.data(b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 10_300)
print(json.dumps({"codes": codes, "big": big}))
"""
    said = python(book, many)
    assert said["codes"] == [250] * 1000 + [452]
    assert said["big"] == 552  # 10.3 MB: over SIZE 10240000


#: RFC 2034: with ENHANCEDSTATUSCODES, every reply but the greeting and EHLO's or HELO's
#: carries an enhanced status code (RFC 3463) after its reply code; 354 and AUTH's 334
#: challenges have none, as in Postfix
ENHANCED = re.compile(r"\d{3}[ -][245]\.\d{1,3}\.\d{1,3}( |$)")
UNCODED = ("250-", "250 mail.example.com", "354 ", "334 ")
PLAIN = base64.b64encode(b"\0brandon\0abc123").decode()
#: sessions full of mistakes, each step with the start of the answer it must get
MISTAKES: dict[tuple[int, str], tuple[tuple[str, str], ...]] = {
    (25, ""): (
        ("\r\n", "500 5.5.2"),  # an empty line
        ("MAIL FROM:<a@h1.example.com>\r\n", "503 5.5.1"),  # before EHLO
        ("HELO\r\n", "501 5.5.4"),
        ("EHLO h1\r\n", "250-"),
        ("RCPT TO:<brandon@example.com>\r\n", "503 5.5.1"),  # before MAIL
        ("DATA\r\n", "503 5.5.1"),
        ("MAIL TO:<a@h1.example.com>\r\n", "501 5.5.4"),
        ("MAIL FROM:\r\n", "501 5.5.4"),
        ("MAIL FROM:<a@h1.example.com> BODY=9BIT\r\n", "501 5.5.4"),
        ("MAIL FROM:<a@h1.example.com> SMTPUTF8=YES\r\n", "501 5.5.4"),
        ("MAIL FROM:<a@h1.example.com> SIZE=20000000\r\n", "552 5.3.4"),
        ("MAIL FROM:<a@h1.example.com> COLOUR=RED\r\n", "555 5.5.4"),
        ("MAIL FROM:<a@h1.example.com>\r\n", "250 2.1.0"),
        ("MAIL FROM:<b@h1.example.com>\r\n", "503 5.5.1"),  # nested
        ("RCPT TO:\r\n", "501 5.5.4"),
        ("RCPT TO:<brandon@example.com> NOTIFY=NEVER\r\n", "555 5.5.4"),
        ("DATA\r\n", "503 5.5.1"),  # no recipient yet
        ("RCPT TO:<brandon@example.com>\r\n", "250 2.1.5"),
        ("DATA now\r\n", "501 5.5.4"),
        ("DATA\r\n", "354 "),
        ("Subject: x\r\n\r\n" + "y" * 2000 + "\r\n.\r\n", "500 5.5.0"),  # a line over 1,000
        ("NOOP " + "n" * 600 + "\r\n", "500 5.5.0"),  # a command over 512 bytes
        ("NOOP " + "n" * 5000 + "\r\n", "500 5.5.0"),  # and over the reader's limit
        ("BOGUS\r\n", "500 5.5.2"),
        ("EXPN staff\r\n", "502 5.5.1"),
        ("VRFY\r\n", "501 5.5.4"),
        ("VRFY <@>\r\n", "502 5.1.3"),
        ("VRFY brandon\r\n", "252 2.0.0"),
        ("HELP\r\n", "250 2.0.0"),
        ("HELP MAIL\r\n", "250 2.0.0"),
        ("HELP BOGUS\r\n", "501 5.5.4"),
        ("STARTTLS now\r\n", "501 5.5.4"),
        ("AUTH PLAIN\r\n", "503 5.5.1"),  # not on port 25, as Postfix
        ("RSET\r\n", "250 2.0.0"),
        ("MAIL FROM:<broken\r\n", "501 5.1.7"),  # a lost ">": aiosmtpd took it
        ("MAIL FROM:<a@h1.example.com>\r\n", "250 2.1.0"),
        ("RCPT TO:<brandon@example.com\r\n", "501 5.1.3"),
        ("NOOP\r\n", "250 2.0.0"),
        ("RSET now\r\n", "501 5.5.4"),
        ("RSET\r\n", "250 2.0.0"),
        ("HELO h1\r\n", "250 mail.example.com"),
        ("AUTH PLAIN\r\n", "500 5.5.2"),  # no AUTH after HELO
        ("QUIT now\r\n", "501 5.5.4"),
        ("QUIT\r\n", "221 2.0.0"),
    ),
    (587, ""): (
        ("EHLO h1\r\n", "250-"),
        ("MAIL FROM:<brandon@example.com>\r\n", "530 5.7.0"),  # STARTTLS first
        ("STARTTLS\r\n", "220 2.0.0"),
        ("STARTTLS-UPGRADE", ""),
        ("MAIL FROM:<brandon@example.com>\r\n", "503 5.5.1"),  # EHLO again first
        ("EHLO h1\r\n", "250-"),
        ("HELP\r\n", "530 5.7.0"),  # AUTH first
        ("AUTH\r\n", "501 5.5.4"),
        ("AUTH PLAIN a b\r\n", "501 5.5.4"),
        ("AUTH CRAM-MD5\r\n", "504 5.5.4"),
        ("AUTH LOGIN\r\n", "334 "),
        ("*\r\n", "501 5.7.0"),  # the client gives up
        (f"AUTH PLAIN {PLAIN}\r\n", "235 2.7.0"),
        (f"AUTH PLAIN {PLAIN}\r\n", "503 5.5.1"),
        ("QUIT\r\n", "221 2.0.0"),
    ),
    (465, "implicit"): (
        ("EHLO h1\r\n", "250-"),
        ("STARTTLS\r\n", "454 4.7.0"),  # TLS already
        ("QUIT\r\n", "221 2.0.0"),
    ),
}


def test_every_answer_but_the_greeting_ehlo_and_354_has_an_enhanced_status_code(
    book: Playground,
) -> None:
    wrong = []
    for (port, tls), steps in MISTAKES.items():
        said = session(book, port, *(step for step, _ in steps), tls=tls)
        assert said[0] == ["220 mail.example.com ESMTP netplay"]
        answers = iter(said[1:])
        for step, expected in steps:
            if step == "STARTTLS-UPGRADE":
                continue
            answer = next(answers)
            coded = expected.startswith(UNCODED) or all(ENHANCED.match(line) for line in answer)
            if not answer[0].startswith(expected) or not coded:
                wrong.append(f"port {port}: {step[:40]!r} answered {answer}, not {expected!r}")
        assert next(answers, None) is None
    assert wrong == []


def test_aiosmtpd_replies_no_session_reaches_get_their_codes_too() -> None:
    host = "mail.example.com"
    for reply, coded in (
        ("552 Error: Too much mail data", "552 5.3.4 Error: Too much mail data"),
        ("500 Error: (OSError) disk full", "500 5.5.2 Error: (OSError) disk full"),
        ("250 OK", "250 2.0.0 OK"),
        ("221 Bye", "221 2.0.0 Bye"),
        ("554 Command refused due to lack of security", "554 5.0.0 Command refused"),
        ("421 4.7.0 NOOP sent too many times", "421 4.7.0 NOOP sent too many times"),
        ("235 2.7.0 Authentication successful", "235 2.7.0 Authentication successful"),
        (f"220 {host} ESMTP netplay", f"220 {host} ESMTP netplay"),  # the greeting
        (f"250 {host}", f"250 {host}"),  # HELO's
        (f"250-{host}", f"250-{host}"),  # and EHLO's
        ("250 HELP", "250 HELP"),
        ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
        ("334 VXNlcm5hbWU6", "334 VXNlcm5hbWU6"),
    ):
        assert with_enhanced_code(reply, host).startswith(coded), reply


def test_the_store_holds_the_samples_and_no_password(book: Playground) -> None:
    first = sorted((inbox(book) / "new").iterdir()) + sorted((inbox(book) / "cur").iterdir())
    subjects = [p.read_bytes().split(b"\r\nSubject: ", 1)[1].split(b"\r\n")[0] for p in first]
    assert b"Welcome to the playground" in subjects
    data = book.paths.service_data / "mail"
    assert b"abc123" not in (data / "accounts.json").read_bytes()
    assert all(not p.is_file() or b"abc123" not in p.read_bytes() for p in data.rglob("*"))
    assert list((inbox(book) / "tmp").iterdir()) == []
    log = "".join(book.logs("mail/smtp", lines=10_000))
    assert "abc123" not in log and base64.b64encode(b"\0brandon\0abc123").decode() not in log


TIMEOUT = """
name = "smtp-timeout"
domain = "t.test"

[hosts.mx]
services = [{ kind = "smtp", ports = [25], timeout = 1 }]

[hosts.client]

[users.ann]
password = "pw"

[lans.lan.hosts]
mx = ["10.9.1.1/24"]
client = ["10.9.1.2/24"]
"""


def test_an_idle_client_is_cut_off_and_another_served(playground_factory: Any) -> None:
    pg = playground_factory(loads(TIMEOUT, source="smtp-timeout"))
    idle = r"""
import json, smtplib, socket
idle = socket.create_connection(("10.9.1.1", 25), timeout=30)
greeting = idle.recv(100).decode()
closed = idle.recv(100) == b""  # nothing sent: the server hangs up after its timeout
with smtplib.SMTP("10.9.1.1", 25, timeout=30) as other:
    refused = other.sendmail("x@client.t.test", ["ann@mx.t.test"], b"Subject: x\r\n\r\nx\r\n")
print(json.dumps({"greeting": greeting, "closed": closed, "refused": refused}))
"""
    said = python(pg, idle, host="client")
    assert said == {
        "greeting": "220 mx.t.test ESMTP netplay\r\n",
        "closed": True,
        "refused": {},
    }
    assert len(os.listdir(inbox(pg, "ann", "mx") / "new")) == 1


def test_mail_is_kept_across_a_restart_of_the_service(book: Playground) -> None:
    marker = uuid.uuid4().hex
    python(book, SEND, "plain", marker)
    book.control("mail/smtp", "restart")
    assert len(delivered(book, marker)) == 1
    again = uuid.uuid4().hex
    python(book, SEND, "plain", again)
    assert len(delivered(book, again)) == 1


def test_curl_sends_over_starttls_and_openssl_verifies_the_certificate(book: Playground) -> None:
    marker = uuid.uuid4().hex
    message = f"From: alice@h1.example.com\r\nSubject: curl {marker}\r\n\r\nvia curl\r\n"
    for url, auth in (
        ("smtp://mail.example.com", []),
        ("smtp://mail.example.com:587", ["--user", "brandon:abc123"]),
        ("smtps://mail.example.com", ["--user", "brandon:abc123"]),
    ):
        sent = book.host("h1").run(
            ["curl", "-sS", "--ssl-reqd", url, *auth, "--mail-from", "alice@h1.example.com",
             "--mail-rcpt", "brandon@example.com", "--upload-file", "-", "--max-time", "20"],
            input=message,
            timeout=30,
        )  # fmt: skip
        assert sent.returncode == 0, f"{url}: {sent.stderr}"
    assert len(delivered(book, marker)) == 3
    handshake = book.host("h1").run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect", "mail.example.com:25",
         "-verify_return_error", "-verify_hostname", "mail.example.com"],
        input="QUIT\r\n",
        timeout=30,
    )  # fmt: skip
    assert handshake.returncode == 0 and "Verification: OK" in handshake.stdout, handshake.stderr


KILLED = """
name = "smtp-killed"
domain = "k.test"

[hosts.mx]
services = [{ kind = "smtp", ports = [25] }]

[hosts.client]

[users.ann]
password = "pw"

[lans.lan.hosts]
mx = ["10.9.2.1/24"]
client = ["10.9.2.2/24"]
"""
DELIVERIES = 1000
KILLS = 4  # the runner gives up after restart_limit (5) restarts in a minute

SENDER = r"""
import json, smtplib, sys, time
acknowledged, client = [], None
print("sending", flush=True)
for i in range(int(sys.argv[1])):
    body = f"Subject: delivery {i}\r\n\r\n" + f"line {i}\r\n" * (1 + i % 50)
    while True:
        try:
            if client is None:
                client = smtplib.SMTP("10.9.2.1", 25, timeout=10)
            client.sendmail("x@client.k.test", ["ann@mx.k.test"], body.encode())
            acknowledged.append(i)
            break
        except (OSError, smtplib.SMTPException):
            client = None  # killed mid-conversation: no 250, try this one again
            time.sleep(0.05)
print(json.dumps(acknowledged), flush=True)
"""


def test_kill_9_during_deliveries_loses_nothing_acknowledged(
    playground_factory: Any, spawn: Any
) -> None:
    """Every message that got its 250 is in the store, whole; none is seen half-written."""
    pg = playground_factory(loads(KILLED, source="smtp-killed"))
    sender = spawn(pg.host("client"), [sys.executable, "-c", SENDER, str(DELIVERIES)], timeout=30)
    rng = random.Random(1202)
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.1, 1.0))
        before = pg.service("mx/smtp")
        os.kill(before.pid, signal.SIGKILL)
        wait_for_service(pg, "mx/smtp", other_than=before.pid)
    acknowledged = json.loads(sender.readline(timeout=300))
    assert len(acknowledged) == DELIVERIES  # each retried until it got its 250
    assert pg.service("mx/smtp").restarts == KILLS
    seen: dict[int, int] = {}
    for sub in ("new", "cur"):
        for path in (inbox(pg, "ann", "mx") / sub).iterdir():
            _added, body = as_sent(path.read_bytes())
            number = int(body.split(b"\r\n", 1)[0].removeprefix(b"Subject: delivery "))
            expected = f"Subject: delivery {number}\r\n\r\n" + f"line {number}\r\n" * (
                1 + number % 50
            )
            assert body == expected.encode(), f"message {number} is not whole: {path.name}"
            seen[number] = seen.get(number, 0) + 1
    assert set(seen) == set(range(DELIVERIES))  # a kill between fsync and 250 may give two
    assert sum(seen.values()) - DELIVERIES <= KILLS

"""mail.example.com's IMAP service in the book playground, from h1 through the NAT.

imaplib and IMAPClient read what smtplib sent, byte for byte (8-bit UTF-8
and a 5 MB attachment), the same bytes POP3 gives; they browse, search,
flag, copy, move and append; two sessions on one mailbox see each other's
changes, and a delivery wakes an IDLE client.  curl and openssl are the
third-party clients.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from _mail import IMAP_LOGIN
from _net import TLS_FAILED, line_session, run_json
from netplay import Playground


def python(pg: Playground, source: str, *args: str) -> Any:
    return run_json(pg.host("h1"), source, *args)


SEND_BIG = r"""
import base64, json, smtplib, ssl, sys
from email.message import EmailMessage
marker = sys.argv[1]
msg = EmailMessage()
msg["From"] = "Jürgen <juergen@h1.example.com>"
msg["To"] = "brandon@example.com"
msg["Subject"] = f"Grüße {marker}"
msg.set_content(f"Ünïcödé, 8 bit: 東京 {marker}\n", cte="8bit")
msg.add_attachment(bytes(range(256)) * (5 * 4096), maintype="application",
                   subtype="octet-stream", filename="five-megabytes.bin")
raw = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
with smtplib.SMTP("mail.example.com", 587, timeout=60) as client:
    client.starttls(context=ssl.create_default_context())
    client.login("brandon", "abc123")
    client.sendmail("juergen@h1.example.com", ["brandon@example.com"], raw)
print(json.dumps(base64.b64encode(raw).decode()))
"""

READ_BOTH = r"""
import base64, imaplib, json, poplib, ssl, sys
marker = sys.argv[1]
ctx = ssl.create_default_context()
imap = imaplib.IMAP4("mail.example.com")
imap.starttls(ctx)
imap.login("brandon", "abc123")
imap.select("INBOX")
typ, found = imap.uid("SEARCH", None, "BODY", marker)
(uid,) = found[0].split()
typ, data = imap.uid("FETCH", uid, "(BODY.PEEK[] RFC822.SIZE FLAGS)")
by_imap = data[0][1]
typ, flags = imap.uid("FETCH", uid, "(FLAGS)")
imap.logout()
ssl_imap = imaplib.IMAP4_SSL("mail.example.com", ssl_context=ctx)
ssl_imap.login("brandon", "abc123")
ssl_imap.select("INBOX", readonly=True)
typ, data = ssl_imap.uid("FETCH", uid, "(RFC822)")
by_imaps = data[0][1]
ssl_imap.logout()
pop = poplib.POP3_SSL("mail.example.com", 995, context=ctx)
pop.user("brandon"); pop.pass_("abc123")
by_pop = None
for number in range(1, pop.stat()[0] + 1):
    message = b"\r\n".join(pop.retr(number)[1]) + b"\r\n"
    if marker.encode() in message:
        by_pop = message
pop.quit()
print(json.dumps({"imap": base64.b64encode(by_imap).decode(),
                  "imaps": base64.b64encode(by_imaps).decode(),
                  "pop": base64.b64encode(by_pop).decode(),
                  "flags_after_peek": flags[0].decode()}))
"""


def test_imap_and_pop3_read_what_smtp_took_byte_for_byte(mail: Playground) -> None:
    import base64

    marker = uuid.uuid4().hex
    raw = base64.b64decode(python(mail, SEND_BIG, marker))
    got = python(mail, READ_BOTH, marker)
    by_imap, by_imaps, by_pop = (base64.b64decode(got[k]) for k in ("imap", "imaps", "pop"))
    assert by_imap == by_imaps == by_pop
    assert by_imap.split(b"\r\n", 4)[4] == raw  # after Return-Path and Received
    assert len(raw) > 5_000_000 and "東京".encode() in raw
    assert "\\Seen" not in got["flags_after_peek"]  # BODY.PEEK[] leaves it unseen


IMAPCLIENT = r"""
import json, ssl, smtplib, sys
from imapclient import IMAPClient
marker = sys.argv[1]
ctx = ssl.create_default_context()
out = {}
with IMAPClient("mail.example.com", ssl=True, ssl_context=ctx) as client:
    client.login("brandon", "abc123")
    out["caps"] = sorted(c.decode() for c in client.capabilities())
    out["folders"] = sorted(name for _flags, _sep, name in client.list_folders())
    client.create_folder(f"Box-{marker}")
    info = client.select_folder("INBOX")
    out["exists"] = info[b"EXISTS"]
    welcome = client.search(["SUBJECT", "Welcome to the playground"])
    out["welcome"] = len(welcome)
    fetched = client.fetch(welcome[:1], ["ENVELOPE", "BODYSTRUCTURE", "FLAGS", "INTERNALDATE"])
    envelope = fetched[welcome[0]][b"ENVELOPE"]
    out["subject"] = envelope.subject.decode()
    out["from"] = envelope.from_[0].mailbox.decode() + "@" + envelope.from_[0].host.decode()
    zurich = client.search(["SUBJECT", "Zürich"], charset="UTF-8")
    out["zurich"] = len(zurich)
    client.append("INBOX", f"Subject: appended {marker}\r\n\r\nhi\r\n".encode(), flags=[b"\\Draft"])
    (appended,) = client.search(["SUBJECT", f"appended {marker}"])
    client.add_flags([appended], [b"\\Flagged"])
    flags = client.get_flags([appended])[appended]  # \\Recent too, if this session has it
    out["flags"] = sorted(f.decode() for f in flags if f != b"\\Recent")
    client.move([appended], f"Box-{marker}")
    out["moved_away"] = client.search(["SUBJECT", f"appended {marker}"])
    status = client.folder_status(f"Box-{marker}", ["MESSAGES", "UIDNEXT"])
    out["box"] = status[b"MESSAGES"]
    client.idle()
    with smtplib.SMTP("mail.example.com", 25) as smtp:
        smtp.sendmail("x@h1.example.com", ["brandon@example.com"],
                      f"Subject: wake {marker}\r\n\r\nup\r\n".encode())
    news = client.idle_check(timeout=20)
    client.idle_done()
    out["idle"] = [list(map(lambda v: v.decode() if isinstance(v, bytes) else v, n)) for n in news]
    client.delete_folder(f"Box-{marker}")
print(json.dumps(out))
"""


def test_imapclient_browses_searches_flags_moves_and_idles(mail: Playground) -> None:
    marker = uuid.uuid4().hex
    out = python(mail, IMAPCLIENT, marker)
    assert {"IMAP4REV1", "IDLE", "MOVE", "UIDPLUS"} <= set(out["caps"])
    assert {"INBOX", "Sent", "Drafts", "Trash"} <= set(out["folders"])
    assert out["welcome"] == 1 and out["subject"] == "Welcome to the playground"
    assert out["from"] == "postmaster@example.com"
    assert out["zurich"] >= 1
    assert out["flags"] == ["\\Draft", "\\Flagged"]
    assert out["moved_away"] == [] and out["box"] == 1
    assert any(item[1] == "EXISTS" for item in out["idle"]), out["idle"]


TWO_SESSIONS = (
    IMAP_LOGIN
    + r"""
marker = sys.argv[1]
with smtplib.SMTP("mail.example.com", 25) as smtp:
    for i in range(2):
        smtp.sendmail("x@h1.example.com", ["brandon@example.com"],
                      f"Subject: two {marker} {i}\r\n\r\nx\r\n".encode())
a, b = session(), session()
a.select("INBOX")
b.select("INBOX")
typ, found = b.search(None, "SUBJECT", f'"two {marker}"')
first, second = found[0].split()
b.store(second, "+FLAGS", "(\\Flagged)")
b.store(first, "+FLAGS", "(\\Deleted)")
b.expunge()
a.noop()
seen = {key: a.untagged_responses.get(key, []) for key in ("FETCH", "EXPUNGE")}
with smtplib.SMTP("mail.example.com", 25) as smtp:
    smtp.sendmail("x@h1.example.com", ["brandon@example.com"],
                  f"Subject: three {marker}\r\n\r\nx\r\n".encode())
typ, data = a.noop()
seen["EXISTS"] = a.untagged_responses.get("EXISTS", [])
text = lambda x: x.decode() if isinstance(x, bytes) else str(x)
out = {key.lower(): [text(x) for x in values] for key, values in seen.items()}
print(json.dumps(out | {"first": first.decode(), "second": second.decode()}))
"""
)


def test_two_sessions_see_each_others_changes(mail: Playground) -> None:
    out = python(mail, TWO_SESSIONS, uuid.uuid4().hex)
    assert out["expunge"] == [out["first"]]
    assert any("\\Flagged" in item for item in out["fetch"]), out
    assert out["exists"], out


def test_curl_and_openssl(mail: Playground) -> None:
    listing = mail.host("h1").run(
        ["curl", "-sS", "--ssl-reqd", "--user", "brandon:abc123", "imap://mail.example.com/"],
        timeout=30,
    )
    assert listing.returncode == 0, listing.stderr
    assert re.search(r'^\* LIST \(.*\) "\." "?INBOX"?$', listing.stdout, re.M), listing.stdout
    first = mail.host("h1").run(
        ["curl", "-sS", "--user", "brandon:abc123", "imaps://mail.example.com/INBOX;UID=1"],
        timeout=30,
    )
    assert first.returncode == 0 and "Subject: " in first.stdout, first.stderr
    handshake = mail.host("h1").run(
        ["openssl", "s_client", "-starttls", "imap", "-connect", "mail.example.com:143",
         "-verify_return_error", "-verify_hostname", "mail.example.com"],
        input="a LOGOUT\r\n",
        timeout=30,
    )  # fmt: skip
    assert handshake.returncode == 0 and "Verification: OK" in handshake.stdout, handshake.stderr


def test_logins_wait_for_tls_and_clear_text_behind_starttls_is_not_run(mail: Playground) -> None:
    """A LOGIN sent with STARTTLS, in clear, must not run over TLS: netplay drops
    it (CAPABILITY's answer comes first); Dovecot takes it for the start of the
    handshake, which fails."""
    said = line_session(
        mail.host("h1"),
        "mail.example.com",
        143,
        "a LOGIN brandon abc123\r\n",
        "b STARTTLS\r\nc LOGIN brandon abc123\r\n",
        "UPGRADE",
        "d CAPABILITY\r\n",
        tagged=True,
    )
    assert "STARTTLS" in said[0] and "LOGINDISABLED" in said[0]
    assert said[1].splitlines()[-1].startswith("a NO [PRIVACYREQUIRED]")  # Dovecot: * BAD first
    assert said[2] == "b OK Begin TLS negotiation now."
    assert said[3].startswith(TLS_FAILED) or (
        said[3].startswith("* CAPABILITY")
        and "AUTH=PLAIN" in said[3]
        and said[3].splitlines()[-1].startswith("d OK")  # not "c OK"
    )


def test_uids_survive_a_restart(mail: Playground) -> None:
    status = r"""
import imaplib, json, ssl
m = imaplib.IMAP4_SSL("mail.example.com", ssl_context=ssl.create_default_context())
m.login("brandon", "abc123")
m.select("INBOX", readonly=True)
validity = m.untagged_responses["UIDVALIDITY"][0].decode()
typ, data = m.uid("SEARCH", None, "ALL")
m.logout()
print(json.dumps([validity, data[0].decode()]))
"""
    before = python(mail, status)
    mail.control("mail/imap", "restart")
    assert python(mail, status) == before


POP_AND_IMAP = r"""
import imaplib, json, poplib, smtplib, ssl, sys
marker = sys.argv[1]
ctx = ssl.create_default_context()
with smtplib.SMTP("mail.example.com", 25) as smtp:
    smtp.sendmail("x@h1.example.com", ["brandon@example.com"],
                  f"Subject: both {marker}\r\n\r\nread by both\r\n".encode())
pop = poplib.POP3_SSL("mail.example.com", 995, context=ctx)
pop.user("brandon"); pop.pass_("abc123")
number = next(i for i in range(1, pop.stat()[0] + 1)
              if marker.encode() in b"".join(pop.top(i, 0)[1]))
imap = imaplib.IMAP4_SSL("mail.example.com", ssl_context=ctx)
imap.login("brandon", "abc123")
imap.select("INBOX")
typ, found = imap.search(None, "SUBJECT", f'"both {marker}"')
(seq,) = found[0].split()
imap.store(seq, "+FLAGS", "(\\Seen \\Flagged)")   # renames the file under POP3's session
retrieved = b"\r\n".join(pop.retr(number)[1])
pop.dele(number)
pop.quit()                                          # deletes it, wherever flags took it
imap.noop()
expunged = [x.decode() for x in imap.untagged_responses.get("EXPUNGE", [])]
imap.logout()
print(json.dumps({"retrieved": marker in retrieved.decode(), "expunged": expunged,
                  "seq": seq.decode()}))
"""


def test_pop3_and_imap_on_one_mailbox_at_once(mail: Playground) -> None:
    out = python(mail, POP_AND_IMAP, uuid.uuid4().hex)
    assert out["retrieved"], "POP3 read the message IMAP had just flagged"
    assert out["expunged"] == [out["seq"]], "IMAP was told that POP3 deleted it"

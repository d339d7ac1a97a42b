"""mail.example.com's POP3 service in the book playground, from h1 through the NAT.

Mail is sent with smtplib and read back with poplib (POP3 with STLS, and
POP3_SSL), byte for byte; deletions happen at QUIT only, an aborted session
deletes nothing, and a second session finds the maildrop locked.
"""

from __future__ import annotations

import uuid
from typing import Any

from _net import TLS_FAILED, line_session, run_json
from netplay import Playground

NAT = "10.25.1.65"


def python(pg: Playground, source: str, *args: str) -> Any:
    return run_json(pg.host("h1"), source, *args)


SEND = r"""
import json, smtplib, ssl, sys
marker, size = sys.argv[1], int(sys.argv[2])
body = "".join(f"{marker} line {i} ünïcode\r\n" for i in range(size))
raw = (f"From: alice@h1.example.com\r\nTo: brandon@example.com\r\nSubject: {marker}\r\n"
       "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
       f".a dot first\r\n{body}").encode()
with smtplib.SMTP("mail.example.com", 25, timeout=30) as client:
    client.starttls(context=ssl.create_default_context())
    client.sendmail("alice@h1.example.com", ["brandon@example.com"], raw)
print(json.dumps(raw.decode()))
"""

READ = r"""
import json, poplib, ssl, sys
marker, how, action = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
if how == "ssl":
    pop = poplib.POP3_SSL("mail.example.com", 995, context=ctx, timeout=30)
else:
    pop = poplib.POP3("mail.example.com", 110, timeout=30)
    before = sorted(pop.capa())
    pop.stls(ctx)
pop.user("brandon")
pop.pass_("abc123")
count, size = pop.stat()
uids = [line.split()[1].decode() for line in pop.uidl()[1]]
found, hit, top = [], None, None
for number in range(1, count + 1):
    message = b"\r\n".join(pop.retr(number)[1]) + b"\r\n"
    if marker.encode() in message:
        found.append(number)
        hit, top = message.decode(), [line.decode() for line in pop.top(number, 0)[1]]
        if action == "delete":
            pop.dele(number)
result = {"count": count, "uids": len(set(uids)), "found": found, "message": hit, "top": top}
if action == "abort":
    pop.sock.close()  # no QUIT: nothing marked may be deleted
else:
    pop.quit()
print(json.dumps(result))
"""


def test_poplib_reads_what_smtplib_sent_byte_for_byte_and_deletes_at_quit(
    mail: Playground,
) -> None:
    marker = uuid.uuid4().hex
    raw = python(mail, SEND, marker, "200")
    first = python(mail, READ, marker, "stls", "keep")
    assert first["uids"] == first["count"] and len(first["found"]) == 1
    received = first["message"].encode()
    # the server put Return-Path and Received in front; the rest is what was sent
    assert received.split(b"\r\n", 4)[4] == raw.encode()
    assert received.startswith(b"Return-Path: <alice@h1.example.com>\r\nReceived: from ")
    assert f"[{NAT}]" in first["message"]
    assert first["top"][-1] == "" and f"Subject: {marker}" in first["top"]  # headers only
    second = python(mail, READ, marker, "ssl", "abort")  # marked, then cut off
    assert second["found"] == first["found"]
    deleting = python(mail, READ, marker, "ssl", "delete")
    assert deleting["found"] == first["found"]
    after = python(mail, READ, marker, "stls", "keep")
    assert after["found"] == [] and after["count"] == first["count"] - 1


def test_the_sample_mailbox_is_there(mail: Playground) -> None:
    listing = r"""
import json, poplib, ssl
pop = poplib.POP3_SSL("mail.example.com", 995, context=ssl.create_default_context(), timeout=30)
pop.user("brandon"); pop.pass_("abc123")
subjects = []
for number in range(1, pop.stat()[0] + 1):
    head = pop.top(number, 0)[1]
    subjects += [l.decode() for l in head if l.startswith(b"Subject: ")]
pop.quit()
print(json.dumps(subjects))
"""
    assert "Subject: Welcome to the playground" in python(mail, listing)


def session(pg: Playground, *steps: str) -> list[str]:
    return line_session(pg.host("h1"), "mail.example.com", 110, *steps)


def test_plain_text_logins_only_after_stls(mail: Playground) -> None:
    said = session(mail, "USER brandon\r\n", "STLS\r\n", "UPGRADE", "USER brandon\r\n")
    assert said[0].startswith("+OK ")  # the greeting's text is the server's own
    assert said[1].startswith("-ERR [AUTH] Plaintext authentication disallowed")
    assert said[2:] == ["+OK Begin TLS negotiation now.", "+OK"]


def test_stls_with_commands_sent_in_clear_behind_it(mail: Playground) -> None:
    """A man in the middle's commands, sent in clear with STLS, must not run over TLS:
    netplay drops them (the PASS after the handshake has no USER before it);
    Dovecot takes them for the start of the handshake, which fails."""
    said = session(mail, "STLS\r\nUSER mallory\r\n", "UPGRADE", "PASS x\r\n")
    assert said[1] == "+OK Begin TLS negotiation now."
    assert said[2] == "-ERR No user name given (USER first)." or said[2].startswith(TLS_FAILED)


def test_wrong_password_and_the_maildrop_lock(mail: Playground) -> None:
    lock = r"""
import json, poplib, ssl
ctx = ssl.create_default_context()
def connect():
    return poplib.POP3_SSL("mail.example.com", 995, context=ctx, timeout=30)
wrong = connect()
wrong.user("brandon")
try:
    wrong.pass_("not-it")
    refused = None
except poplib.error_proto as exc:
    refused = exc.args[0].decode()
first = connect(); first.user("brandon"); first.pass_("abc123")
second = connect(); second.user("brandon")
try:
    second.pass_("abc123")
    locked = None
except poplib.error_proto as exc:
    locked = exc.args[0].decode()
first.quit()
third = connect(); third.user("brandon"); third.pass_("abc123"); third.quit()
print(json.dumps({"refused": refused, "locked": locked}))
"""
    said = python(mail, lock)
    assert said == {
        "refused": "-ERR [AUTH] Authentication failed.",
        "locked": "-ERR [IN-USE] Mailbox is locked by another POP3 session.",
    }


def test_curl_reads_over_stls_and_implicit_tls_and_openssl_verifies(mail: Playground) -> None:
    for url in ("pop3://mail.example.com/1", "pop3s://mail.example.com/1"):
        got = mail.host("h1").run(
            ["curl", "-sS", "--ssl-reqd", "--user", "brandon:abc123", url, "--max-time", "20"],
            timeout=30,
        )
        assert got.returncode == 0, f"{url}: {got.stderr}"
        assert "Subject: " in got.stdout
    listing = mail.host("h1").run(
        ["curl", "-sS", "--ssl-reqd", "--user", "brandon:abc123", "pop3://mail.example.com/"],
        timeout=30,
    )
    assert listing.returncode == 0 and listing.stdout.startswith("1 "), listing.stderr
    handshake = mail.host("h1").run(
        ["openssl", "s_client", "-starttls", "pop3", "-connect", "mail.example.com:110",
         "-verify_return_error", "-verify_hostname", "mail.example.com"],
        input="QUIT\r\n",
        timeout=30,
    )  # fmt: skip
    assert handshake.returncode == 0 and "Verification: OK" in handshake.stdout, handshake.stderr

"""netplay's IMAP and POP3 against Dovecot's: the same commands, the same answers.

Two fresh book playgrounds, one for each engine: each store starts with the
same sample messages in INBOX, and IMAP APPENDs the same messages, flags and
dates to a new folder; then the same commands go to each, raw, from h1 over
implicit TLS.  What RFC 3501 and RFC 1939 fix is compared: each command's
status (OK/NO/BAD, +OK/-ERR) and response code, and its data (FETCH items
parsed, SEARCH results as sets, EXISTS, STATUS, LIST's names, POP3's
listings and messages).  What they leave to the server is not: human text,
capabilities, UIDVALIDITY, \\Recent, the order of FETCH items.  Differences
the RFCs allow are in docs/mail.md.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from typing import Any

import pytest

from _mail import book_with, smtp_session, unavailable
from _net import run_json
from netplay import Playground, TopologyError
from netplay.mail import sample_messages

pytestmark = pytest.mark.needs_playground

DATE = '"02-Feb-2026 09:00:00 +0000"'
NESTED = (
    b"From: Ann <ann@example.com>\r\nTo: brandon@example.com\r\nSubject: forwarded\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
    b"--b1\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
    b"--b1\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: Bob <bob@example.org>\r\nSubject: inner\r\nDate: Sun, 01 Feb 2026 08:00:00 +0000\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nInner body.\r\n"
    b"--b1--\r\n"
)

#: the IMAP conversation after login and SELECT of the test's folder (%F)
IMAP_COMMANDS = [
    "FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE UID)",
    "FETCH 1:* (BODYSTRUCTURE)",
    "FETCH 1:* (BODY)",
    "FETCH 2 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])",
    "FETCH 2 (BODY.PEEK[TEXT]<0.40> BODY.PEEK[2]<10.5>)",
    "FETCH 3 (BODY.PEEK[2] BODY.PEEK[1.MIME] RFC822.HEADER)",
    "FETCH 4 (BODY.PEEK[HEADER.FIELDS.NOT (DATE MESSAGE-ID)] RFC822.TEXT)",
    "FETCH 5 (BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] BODY.PEEK[1])",
    "FETCH 4 (FLAGS)",
    "SEARCH ALL",
    "SEARCH SUBJECT welcome",
    "SEARCH FROM ann",
    "SEARCH TO brandon",
    "SEARCH BODY below",
    "SEARCH TEXT inner",
    "SEARCH SEEN",
    "SEARCH UNSEEN",
    "SEARCH FLAGGED",
    "SEARCH ANSWERED",
    "SEARCH DELETED",
    "SEARCH DRAFT",
    "SEARCH LARGER 1000",
    "SEARCH SMALLER 600",
    "SEARCH BEFORE 3-Feb-2026",
    "SEARCH ON 2-Feb-2026",
    "SEARCH SINCE 3-Feb-2026",
    "SEARCH SENTBEFORE 2-Feb-2026",
    "SEARCH SENTON 2-Feb-2026",
    "SEARCH SENTSINCE 1-Jan-2026",
    "SEARCH HEADER Message-ID sample",
    "SEARCH NOT SEEN",
    "SEARCH OR FLAGGED DRAFT",
    "SEARCH UID 2:3",
    "SEARCH 2:*",
    "SEARCH CHARSET UTF-8 SUBJECT {7+}\r\nZürich",
    "SEARCH NOSUCHKEY",
    "UID SEARCH ALL",
    "STORE 1 +FLAGS (\\Flagged)",
    "STORE 2 -FLAGS.SILENT (\\Seen)",
    "STORE 3 FLAGS (\\Answered \\Seen)",
    "STORE 4 +FLAGS ($Forwarded Junk)",
    "STORE 5 +FLAGS.SILENT (junk)",
    "SEARCH KEYWORD $Forwarded",
    "SEARCH UNKEYWORD Junk",
    "STORE 1 +FLAGS (\\Recent)",
    "FETCH 1:* (FLAGS)",
    "COPY 1:2 %F.copy",
    "COPY 1 NoSuchFolder",
    "UID COPY 3 %F.copy",
    "STATUS %F.copy (MESSAGES UIDNEXT UNSEEN)",
    "STORE 1 +FLAGS.SILENT (\\Deleted)",
    "EXPUNGE",
    "FETCH 1:* (UID FLAGS)",
    "UID FETCH 4:* (UID)",
    "FETCH 99 (FLAGS)",
    "FETCH",
    "LIST %F *",
    "RENAME %F.copy %F.moved",
    "LIST %F *",
    "DELETE %F.moved",
    "CREATE INBOX",
    "SELECT NoSuchFolder",
]

#: where the RFCs let them differ, exactly how: command -> (netplay's answer,
#: the reference's) (docs/mail.md, Engines, lists these)
ALLOWED: dict[str, tuple[Any, Any]] = {
    # RFC 3501 6.4.4: "messages whose Date: header is earlier": the fifth has none;
    # Dovecot takes a missing Date as 1970
    "SEARCH SENTBEFORE 2-Feb-2026": (("OK", [("SEARCH", [])]), ("OK", [("SEARCH", [5])])),
    # 502 "command not implemented" (RFC 5321 4.2.4), where Postfix does not know it
    "25: EXPN staff": (("502", "5.5.1"), ("500", "5.5.2")),
    # a nested MAIL with a bad address: one finds the address bad first, one the order
    "25: MAIL FROM:<broken": (("501", "5.1.7"), ("503", "5.5.1")),
    # submission before AUTH: aiosmtpd refuses MAIL, Postfix the recipients
    "587: MAIL FROM:<brandon@example.com>": (("530", "5.7.0"), ("250", "2.1.0")),
    "587: RCPT TO:<brandon@example.com>": (("530", "5.7.0"), ("554", "5.7.1")),
}
#: the response codes RFC 3501 and UIDPLUS define; the others (RFC 5530's
#: NONEXISTENT, say) are the server's to add
CODES = {
    "ALERT", "BADCHARSET", "CAPABILITY", "PARSE", "PERMANENTFLAGS", "READ-ONLY",
    "READ-WRITE", "TRYCREATE", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "APPENDUID", "COPYUID",
}  # fmt: skip

IMAP_SCRIPT = r"""
import base64, json, socket, ssl, sys
folder, messages, date = sys.argv[1], json.loads(sys.argv[2]), sys.argv[4]
commands = json.loads(sys.argv[3])
sock = ssl.create_default_context().wrap_socket(
    socket.create_connection(("mail.example.com", 993), timeout=30),
    server_hostname="mail.example.com")
file = sock.makefile("rb")
file.readline()
count = 0
def command(text, literal=None):
    # the responses to one command: [tag line, [response, ...]], each response a
    # list of its line parts and literals in imaplib's form ([line, literal] pairs)
    global count
    count += 1
    tag = f"t{count}"
    sock.sendall(f"{tag} {text}\r\n".encode())
    if literal is not None:
        if not file.readline().startswith(b"+"):
            raise SystemExit("no continuation for a literal")
        sock.sendall(literal + b"\r\n")
    responses = []
    while True:
        parts, line = [], file.readline()
        while line.rstrip().endswith(b"}") and b"{" in line:
            size = int(line.rstrip()[line.rindex(b"{") + 1:-1])
            parts.append([line.rstrip(), file.read(size)])
            line = file.readline()
        parts.append(line.rstrip(b"\r\n"))
        head = parts[0][0] if isinstance(parts[0], list) else parts[0]
        if head.startswith(tag.encode() + b" "):
            return [head.decode(), responses]
        responses.append(parts)
command("LOGIN brandon abc123")
command(f"CREATE {folder}")
command(f"CREATE {folder}.copy")
for flags, message in messages:
    command(f"APPEND {folder} ({flags}) {date} {{{len(base64.b64decode(message))}}}",
            base64.b64decode(message))
said = [command(f"SELECT {folder}")]
for text in commands:
    said.append(command(text.replace("%F", folder)))
command(f"DELETE {folder}")
command("LOGOUT")
encode = lambda x: base64.b64encode(x).decode() if isinstance(x, bytes) else [encode(y) for y in x]
print(json.dumps([[tag, [encode(r) for r in responses]] for tag, responses in said]))
"""


def _decoded(part: Any) -> Any:
    return base64.b64decode(part) if isinstance(part, str) else tuple(map(_decoded, part))


def _status(tagged: str) -> str:
    """A tagged line's status and response code's name: ``OK [READ-WRITE]``."""
    _tag, status, *rest = tagged.split(" ", 2)
    code = re.match(r"\[([A-Z-]+)", rest[0]) if rest else None
    return f"{status} [{code.group(1)}]" if code and code.group(1) in CODES else status


def _lower(value: Any) -> Any:
    """A BODY or BODYSTRUCTURE with its strings in lower case: types, subtypes,
    parameter names and encodings are case-insensitive (RFC 2045); Dovecot keeps
    the message's case, netplay writes them as RFC 3501's examples do."""
    if isinstance(value, bytes):
        return value.lower()
    if isinstance(value, tuple | list):
        return tuple(map(_lower, value))
    return value


def _fetch_data(line: bytes) -> bytes:
    """``* 1 FETCH (...)`` as imaplib hands FETCH data on: ``1 (...)``."""
    return line.replace(b"* ", b"", 1).replace(b" FETCH ", b" ", 1)


def _normalised(response: list[Any]) -> Any:
    """One untagged response as what RFC 3501 fixes of it, or None if nothing."""
    from imapclient.response_parser import parse_fetch_response, parse_response

    parts = [_decoded(p) for p in response]
    head = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
    words = head.split(b" ", 3)
    if re.fullmatch(rb"\d+", words[1]) and words[2] == b"FETCH":
        # imaplib's form of FETCH data: "N (ITEMS...)" with the literals beside
        first = parts[0]
        parts[0] = (
            (_fetch_data(first[0]), first[1]) if isinstance(first, tuple) else _fetch_data(first)
        )
        ((number, items),) = parse_fetch_response(parts, False, False).items()
        items = dict(items)
        if b"FLAGS" in items:
            items[b"FLAGS"] = sorted(f for f in items[b"FLAGS"] if f != b"\\Recent")
        for key in (b"BODY", b"BODYSTRUCTURE"):
            if key in items:
                items[key] = _lower(items[key])
        return ("FETCH", number, sorted(items.items()))
    kind = words[1]
    if kind == b"SEARCH":
        return ("SEARCH", sorted(int(n) for n in head.split()[2:]))
    if kind in (b"EXISTS", b"EXPUNGE") or (len(words) > 2 and words[2] in (b"EXISTS", b"EXPUNGE")):
        return tuple(words[1:3])
    if kind == b"STATUS":
        return ("STATUS", parse_response([head.split(b" ", 3)[3]]))
    if kind in (b"LIST", b"LSUB"):
        (_flags, separator, name) = parse_response([head.split(b" ", 2)[2]])
        return (kind, separator, name.decode() if isinstance(name, bytes) else str(name))
    if kind == b"OK" and head.startswith((b"* OK [UNSEEN", b"* OK [UIDNEXT")):
        return head.split(b"]")[0]
    return None  # CAPABILITY, FLAGS, RECENT, UIDVALIDITY, PERMANENTFLAGS, human text


def _imap_answers(pg: Playground, folder: str) -> list[tuple[str, str, list[Any]]]:
    messages = [*sample_messages("brandon", "example.com"), NESTED]
    flags = ["\\Seen", "", "\\Seen \\Flagged", "\\Draft", ""]
    sent = [[f, base64.b64encode(m).decode()] for f, m in zip(flags, messages, strict=True)]
    said = run_json(
        pg.host("h1"), IMAP_SCRIPT, folder, json.dumps(sent), json.dumps(IMAP_COMMANDS), DATE
    )
    answers = []
    for text, (tagged, responses) in zip(["SELECT", *IMAP_COMMANDS], said, strict=True):
        found = [n for n in map(_normalised, responses) if n is not None]
        answers.append((text, _status(tagged), sorted(found, key=repr)))
    return answers


#: the POP3 conversation after login (the maildrop: the four sample messages)
POP3_COMMANDS = [
    "STAT", "LIST", "LIST 2", "LIST 9", "LIST x", "UIDL", "UIDL 3", "UIDL 0",
    "TOP 1 0", "TOP 2 3", "TOP 3", "RETR 4", "RETR 9",
    "DELE 1", "DELE 1", "LIST 1", "RETR 1", "STAT", "LIST", "RSET", "STAT",
    "NOOP", "NOSUCH", "",
]  # fmt: skip
#: the commands whose +OK answer has more lines, up to "." (RFC 1939)
MULTILINE = re.compile(r"(LIST|UIDL)|(TOP|RETR) .*")

POP3_SCRIPT = r"""
import json, re, socket, ssl, sys
commands, multiline = json.loads(sys.argv[1]), re.compile(sys.argv[2])
sock = ssl.create_default_context().wrap_socket(
    socket.create_connection(("mail.example.com", 995), timeout=30),
    server_hostname="mail.example.com")
file = sock.makefile("rb")
file.readline()
def ask(command):
    sock.sendall(command.encode() + b"\r\n")
    lines = [file.readline().rstrip(b"\r\n").decode("latin-1")]
    if lines[0].startswith("+OK") and multiline.fullmatch(command):
        while lines[-1] != ".":
            lines.append(file.readline().rstrip(b"\r\n").decode("latin-1"))
    return lines
ask("USER brandon"), ask("PASS abc123")
said = [ask(command) for command in commands]
ask("QUIT")
print(json.dumps(said))
"""


def _pop3_answer(command: str, lines: list[str]) -> tuple[str, ...]:
    """What RFC 1939 fixes of an answer: its status; STAT's and a listing's numbers;
    the lines of a message; UIDL's message numbers (the ids are each store's)."""
    status, _, text = lines[0].partition(" ")
    if status != "+OK":
        return (command, status)
    if command.startswith(("STAT", "LIST ")):
        return (command, status, text)
    if command.startswith("UIDL"):
        numbers = [line.split()[0] for line in lines[1:-1]] or [text.split()[0]]
        return (command, status, *numbers)
    return (command, status, *lines[1:])


def _differences(ours: list[Any], theirs: list[Any], reference: str = "dovecot") -> str:
    """Each answer that differs, netplay's above the reference's; empty if none does."""
    return "\n\n".join(
        f"netplay: {o}\n{reference}: {t}"
        for o, t in zip(ours, theirs, strict=True)
        if o != t and ALLOWED.get(o[0]) != (o[1:], t[1:])
    )


def test_imap_and_pop3_answer_as_dovecot_does(playground_factory: Any) -> None:
    why = unavailable("dovecot")
    if why is not None:
        pytest.skip(why)
    ours = playground_factory(book_with("builtin"))
    theirs = playground_factory(book_with("dovecot"))
    pop3 = [
        [_pop3_answer(c, lines) for c, lines in zip(POP3_COMMANDS, said, strict=True)]
        for said in (
            run_json(pg.host("h1"), POP3_SCRIPT, json.dumps(POP3_COMMANDS), MULTILINE.pattern)
            for pg in (ours, theirs)
        )
    ]
    imap = [_imap_answers(pg, "Diff") for pg in (ours, theirs)]
    assert _differences(*pop3) == ""
    assert _differences(*imap) == ""


def test_pop3_and_imap_of_one_host_have_one_engine() -> None:
    why = unavailable("dovecot")
    if why is not None:
        pytest.skip(why)
    mixed = book_with("dovecot")
    mail = mixed.host("mail")
    services = tuple(
        dataclasses.replace(s, engine=None) if s.kind == "pop3" else s for s in mail.services
    )
    hosts = tuple(
        dataclasses.replace(mail, services=services) if h is mail else h for h in mixed.hosts
    )
    with pytest.raises(TopologyError) as caught:
        Playground.up(dataclasses.replace(mixed, hosts=hosts), name="mixed")
    assert caught.value.field == "hosts.mail.services[2].engine"
    assert 'give pop3 engine = "dovecot" too' in str(caught.value)
    assert "mixed" not in Playground.names()


MESSAGE = (
    "From: alice@h1.example.com\r\nTo: brandon@example.com\r\nSubject: diff\r\n\r\nhi\r\n.\r\n"
)
PLAIN = {"right": "AGJyYW5kb24AYWJjMTIz", "wrong": "AGJyYW5kb24Ad3Jvbmc="}  # brandon
UPGRADE = "STARTTLS-UPGRADE"  # smtp_session's step: TLS now
#: SMTP sessions: (port, steps); a step is a line to send, UPGRADE (STARTTLS's
#: handshake), or DATA's message; each gets one reply, as RFC 5321 says
SMTP_SESSIONS = [
    (25, [
        "EHLO h1.example.com", "MAIL FROM:<alice@h1.example.com>",
        "RCPT TO:<brandon@example.com>", "RCPT TO:<nobody@example.com>",
        "RCPT TO:<someone@gmail.com>", "DATA", MESSAGE, "RSET",
        "RCPT TO:<brandon@example.com>", "DATA", "MAIL FROM:<alice@h1.example.com>",
        "MAIL FROM:<broken", "RSET", "MAIL FROM:<broken", "NOOP",
        "VRFY brandon", "EXPN staff", "BOGUS", "RSET now",
        "MAIL FROM:<alice@h1.example.com>", "RCPT TO:<brandon@example.com", "RSET",
        f"AUTH PLAIN {PLAIN['right']}", "STARTTLS", UPGRADE, "EHLO h1.example.com",
        "STARTTLS",
        "MAIL FROM:<alice@h1.example.com> SIZE=99999999", "HELO h1.example.com",
        "MAIL FROM:<alice@h1.example.com>", "QUIT",
    ]),
    (587, [
        "EHLO h1.example.com", "MAIL FROM:<brandon@example.com>", "STARTTLS", UPGRADE,
        "EHLO h1.example.com", f"AUTH PLAIN {PLAIN['wrong']}",
        "MAIL FROM:<brandon@example.com>", "RCPT TO:<brandon@example.com>", "RSET",
        f"AUTH PLAIN {PLAIN['right']}",
        "MAIL FROM:<brandon@example.com>", "RCPT TO:<friend@gmail.com>",
        "RCPT TO:<brandon@example.com>", "DATA", MESSAGE, "QUIT",
    ]),
    (465, [
        "EHLO h1.example.com", "AUTH LOGIN", "YnJhbmRvbg==", "YWJjMTIz",
        "MAIL FROM:<brandon@example.com>", "RCPT TO:<brandon@example.com>", "QUIT",
    ]),
]  # fmt: skip
#: what EHLO offers that the mail issue asks of both (others are each server's own)
EXTENSIONS = {
    "SIZE 10240000", "8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES",
    "STARTTLS", "AUTH LOGIN PLAIN",
}  # fmt: skip


def _smtp_answer(lines: list[str]) -> tuple[str, ...]:
    """What RFC 5321 and RFC 3463 fix of a reply: its code and its enhanced code
    (none in the greeting and EHLO's, RFC 2034); of EHLO's, the extensions both
    must offer (:data:`EXTENSIONS`) that it offers, AUTH's mechanisms sorted."""
    code, first = lines[0][:3], lines[0][4:]
    if len(lines) > 1 or first.startswith("mail.example.com"):
        offered = set()
        for line in lines[1:]:
            words = line[4:].upper().split()
            if words and words[0] == "AUTH":
                words = ["AUTH", *sorted(words[1:])]
            offered.add(" ".join(words))
        return (code, *sorted(offered & EXTENSIONS))
    enhanced = re.match(r"\d\.\d{1,3}\.\d{1,3}(?= |$)", first)
    return (code, enhanced.group() if enhanced else "")


def test_smtp_answers_as_postfix_does(playground_factory: Any) -> None:
    for engine, kind in (("dovecot", "imap"), ("postfix", "smtp")):
        why = unavailable(engine, kind)
        if why is not None:
            pytest.skip(why)
    steps = [["(greeting)", *steps] for _port, steps in SMTP_SESSIONS]
    commands = [
        f"{port}: {step.strip()[:40]}"
        for (port, _), s in zip(SMTP_SESSIONS, steps, strict=True)
        for step in s
        if step != UPGRADE
    ]
    answers = []
    for pg in (
        playground_factory(book_with("builtin")),
        playground_factory(book_with("dovecot", smtp="postfix")),
    ):
        said = [
            lines
            for port, steps in SMTP_SESSIONS
            for lines in smtp_session(
                pg.host("h1"),
                port,
                *(step if step.endswith(("\r\n", UPGRADE)) else f"{step}\r\n" for step in steps),
                tls="implicit" if port == 465 else "",
            )
        ]
        answers.append([(c, *_smtp_answer(lines)) for c, lines in zip(commands, said, strict=True)])
    assert _differences(*answers, reference="postfix") == ""

"""IMAP without sockets: the command grammar (whole, byte by byte, hostile), and what IMAP
says about a message (ENVELOPE, BODYSTRUCTURE, sections, SEARCH, sequence sets)."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netplay.errors import ProtocolError
from netplay.mail import sample_messages
from netplay.mail.imap import (
    Candidate,
    Search,
    SearchError,
    bodystructure,
    envelope,
    section,
    sequence_set,
    split,
)
from netplay.protocols import END, NEED_DATA
from netplay.protocols.imap import (
    MAX_ERRORS,
    MAX_LINE,
    Command,
    Done,
    ImapError,
    Line,
    ServerConnection,
    astring,
)


def events(data: bytes, chunk: int | None = None, **options: int) -> tuple[list[object], bytes]:
    conn = ServerConnection(**options)
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    pieces.append(b"")
    found: list[object] = []
    out = bytearray()
    while True:
        event = conn.next_event()
        out += conn.data_to_send()
        if event is END:
            return found, bytes(out)
        if event is NEED_DATA:
            conn.receive_data(pieces.pop(0))
            continue
        found.append(event)
        if isinstance(event, Command) and event.name == "IDLE":
            conn.expect_done()
        if isinstance(event, Command) and event.name == "AUTHENTICATE":
            conn.expect_line()


COMMANDS = (
    b'a1 LOGIN brandon "abc \\"123\\""\r\n'
    b"a2 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100> UID)\r\n"
    b"a3 APPEND INBOX (\\Seen) {5}\r\nhello\r\n"
    b'a4 LIST "" *\r\n'
    b"a5 SEARCH CHARSET UTF-8 SUBJECT {7+}\r\nZ\xc3\xbcrich NOT (SEEN DELETED)\r\n"
    b"a6 IDLE\r\nDONE\r\n"
    b"a7 AUTHENTICATE PLAIN\r\nAGJyYW5kb24AYWJjMTIz\r\n"
    b"a8 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n"
    b"a9 STATUS NIL (MESSAGES)\r\n"
)
PARSED = [
    Command(tag="a1", name="LOGIN", args=("brandon", b'abc "123"')),
    Command(
        tag="a2",
        name="FETCH",
        args=("1:*", ["FLAGS", "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>", "UID"]),
    ),
    Command(tag="a3", name="APPEND", args=("INBOX", ["\\Seen"], b"hello")),
    Command(tag="a4", name="LIST", args=(b"", "*")),
    Command(
        tag="a5",
        name="SEARCH",
        args=("CHARSET", "UTF-8", "SUBJECT", "Zürich".encode(), "NOT", ["SEEN", "DELETED"]),
    ),
    Command(tag="a6", name="IDLE", args=()),
    Done(),
    Command(tag="a7", name="AUTHENTICATE", args=("PLAIN",)),
    Line(data=b"AGJyYW5kb24AYWJjMTIz"),
    Command(tag="a8", name="STORE", args=("1", "+FLAGS.SILENT", ["\\Deleted"])),
    Command(tag="a9", name="STATUS", args=(None, ["MESSAGES"])),
]


@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_commands_whole_and_byte_by_byte(chunk: int | None) -> None:
    found, out = events(COMMANDS, chunk)
    assert found == PARSED
    assert out == b"+ Ready for literal data\r\n"  # the {5}; {6+} needs none
    assert "abc" not in repr(found[0]) and "AGJy" not in repr(found[8])


def test_bad_commands_get_bad_and_the_connection_goes_on() -> None:
    found, out = events(
        b'no-space\r\na1 FETCH 1 (FLAGS\r\na2 LOGIN "open\r\na3 FETCH 1 BODY[TEXT\r\na4 NOOP\r\n'
    )
    assert found == [Command(tag="a4", name="NOOP", args=())]
    assert out.split(b"\r\n")[:4] == [
        b"* BAD a command starts with a tag",
        b"a1 BAD a list is not closed",
        b"a2 BAD a quoted string is not closed",
        b"a3 BAD a [ is not closed",
    ]


def test_a_literal_too_large_is_refused_without_reading_it() -> None:
    found, out = events(b"a1 APPEND INBOX {999999}\r\na2 NOOP\r\n", max_literal=1000)
    assert out.startswith(b"a1 BAD [TOOBIG]") and b"+ Ready" not in out
    assert found == [Command(tag="a2", name="NOOP", args=())]
    conn = ServerConnection(max_literal=1000)  # LITERAL+: thrown away as it comes
    conn.receive_data(b"a1 APPEND INBOX {5000000+}\r\n" + b"x" * 100_000)
    assert conn.next_event() is NEED_DATA
    assert len(conn._buffer) == 0  # nothing of it held
    conn.receive_data(b"x" * (5_000_000 - 100_000) + b"\r\na2 NOOP\r\n")
    assert conn.next_event() == Command(tag="a2", name="NOOP", args=())
    assert conn.data_to_send().startswith(b"a1 BAD [TOOBIG]")


def test_long_lines_and_too_many_errors() -> None:
    _found, out = events(b"a1 NOOP " + b"x" * (MAX_LINE + 10) + b"\r\na2 NOOP\r\n", chunk=4096)
    assert b"BAD line too long" in out
    with pytest.raises(ImapError) as info:
        events(b"bogus\r\n" * MAX_ERRORS)
    assert info.value.reply == "* BYE Too many invalid commands."


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=64))
def test_any_bytes_get_commands_or_bad_never_a_crash(data: bytes, chunk: int) -> None:
    try:
        events(data, chunk)
    except ImapError:
        pass
    except ProtocolError as exc:
        pytest.fail(f"only ImapError may escape: {exc!r}")


FUZZ_LINES = 100_000
PIECES = [b"a1", b"UID", b"FETCH", b"1:*", b"(FLAGS", b"BODY[", b"]", b")", b"{3}", b"{9+}",
          b'"q', b'"', b"\\", b"NIL", b"*", b"%", b"\x00", b"\xff", b"SEARCH", b"(", b"<0.5>",
          b"LOGIN", b"x" * 300, b"DONE", b"{99999999999}"]  # fmt: skip


def test_a_hundred_thousand_malformed_lines_get_answers_never_a_crash() -> None:
    rng = random.Random(20261202)
    lines = 0
    while lines < FUZZ_LINES:
        batch = [
            b" ".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 8)))
            + rng.choice([b"\r\n", b"\n", b"\r\n", b""])
            for _ in range(rng.randrange(1, 200))
        ]
        lines += len(batch)
        try:
            events(b"".join(batch), rng.choice([None, 1, 7, 512]))
        except ImapError as exc:
            assert exc.reply == "* BYE Too many invalid commands."


def test_strings_are_quoted_or_literal() -> None:
    assert astring("INBOX") == b'"INBOX"'
    assert astring('a "b"') == b'{5}\r\na "b"'
    assert astring("Zürich".encode()) == b"{7}\r\nZ\xc3\xbcrich"


# -- what IMAP says about a message --------------------------------------------------

SAMPLES = sample_messages("brandon", "example.com")


def test_envelope_keeps_encoded_words() -> None:
    text = envelope(split(SAMPLES[3])).decode()
    assert text.startswith('("Thu, 05 Feb 2026 18:45:00 +0900" "=?utf-8?b?')
    assert '(("=?utf-8?q?J=C3=BCrgen_M=C3=BCller?=" NIL "juergen" "example.com"))' in text
    assert text.endswith('NIL NIL NIL "<sample-4@example.com>")')


def test_bodystructure_of_the_samples() -> None:
    assert bodystructure(split(SAMPLES[0])) == (
        b'("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 170 6 NIL NIL NIL NIL)'
    )
    mixed = bodystructure(split(SAMPLES[2]))
    assert mixed.startswith(b'(("TEXT" "PLAIN"')
    assert (
        b'("IMAGE" "PNG" NIL NIL NIL "BASE64" 638 NIL ("ATTACHMENT" ("FILENAME" "gradient.png"))'
        in mixed
    )
    assert mixed.endswith(b'"MIXED" ("BOUNDARY" "=_netplay-sample-3") NIL NIL NIL)')
    assert bodystructure(split(SAMPLES[1]), extensible=False).endswith(b' "ALTERNATIVE")')


def test_sections() -> None:
    message = SAMPLES[2]
    part = split(message)
    assert section(message, "") == message
    assert section(message, "HEADER") == part.header
    assert section(message, "TEXT") == part.body
    assert section(message, "HEADER.FIELDS (SUBJECT DATE)") == (
        b"Subject: The diagram you asked for\r\nDate: Wed, 04 Feb 2026 14:15:00 -0500\r\n\r\n"
    )
    assert b"Subject" not in section(message, "HEADER.FIELDS.NOT (SUBJECT)")
    assert section(message, "1") == b"Attached is the gradient from the slides.\r\n"
    assert section(message, "2.MIME").startswith(b"Content-Type: image/png")
    assert section(message, "9") == b""
    assert section(SAMPLES[0], "1") == split(SAMPLES[0]).body  # a single part is part 1
    with pytest.raises(SearchError):
        section(message, "HEADER.FIELDS")


def test_sequence_sets() -> None:
    assert sequence_set("1:3,7,9:*", 10) == {1, 2, 3, 7, 9, 10}
    assert sequence_set("*:8", 10) == {8, 9, 10}
    for bad in ("0", "1:x", "", "-1", "1:99999999999"):
        with pytest.raises(SearchError):
            sequence_set(bad, 10)


def _candidates() -> list[Candidate]:
    day = dt.datetime(2026, 2, 4, 12, tzinfo=dt.UTC)
    flags = [frozenset(), frozenset({"\\Seen"}), frozenset({"\\Seen", "\\Flagged"}), frozenset()]
    return [
        Candidate(
            number=i + 1,
            uid=10 + i,
            key=f"sample-{i}",
            flags=flags[i],
            internaldate=day + dt.timedelta(days=i),
            size=len(raw),
            read=lambda raw=raw: raw,  # type: ignore[misc]
        )
        for i, raw in enumerate(SAMPLES)
    ]


@pytest.mark.parametrize(
    ("keys", "numbers"),
    [
        (["ALL"], [1, 2, 3, 4]),
        (["UNSEEN"], [1, 4]),
        (["SEEN", "NOT", "FLAGGED"], [2]),
        (["OR", "FLAGGED", "UNSEEN"], [1, 3, 4]),
        (["SUBJECT", b"network"], [2]),
        (["CHARSET", "UTF-8", "SUBJECT", "zürich".encode()], [4]),
        (["FROM", "Jürgen".encode()], [4]),
        (["BODY", b"gradient"], [3]),
        (["TEXT", b"postmaster"], [1, 2, 3]),
        (["HEADER", "Message-ID", b"sample-2"], [2]),
        (["LARGER", "800"], [2, 3]),
        (["SINCE", "5-Feb-2026"], [2, 3, 4]),
        (["SENTBEFORE", "4-Feb-2026"], [1, 2]),
        (["UID", "11:12"], [2, 3]),
        (["2:*", ["UNFLAGGED"]], [2, 4]),
    ],
)
def test_search_keys(keys: list[object], numbers: list[int]) -> None:
    search = Search(keys, 4, 13)
    assert [c.number for c in _candidates() if search.matches(c)] == numbers


def test_bad_searches() -> None:
    for keys in ([], ["NOPE"], ["SUBJECT"], ["LARGER", "x"], ["SINCE", "yesterday"]):
        with pytest.raises(SearchError):
            Search(keys, 4, 13)
    with pytest.raises(SearchError, match="BADCHARSET"):
        Search(["CHARSET", "KOI8-R", "ALL"], 4, 13)


def test_sections_of_a_forwarded_message() -> None:
    inner = SAMPLES[1]  # multipart/alternative
    outer = (
        b'Subject: fwd\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--b--\r\n"
    )
    assert section(outer, "2.HEADER") == split(inner).header
    assert section(outer, "2.1") == section(inner, "1")  # the inner message's first part
    assert section(outer, "2.2.MIME").startswith(b"Content-Type: text/html")
    structure = bodystructure(split(outer))
    assert b'"MESSAGE" "RFC822"' in structure and b'"ALTERNATIVE"' in structure

"""The POP3 core without sockets: a whole session, fed whole and byte by byte, and
hostile input that only ever gets -ERR or a Pop3Error."""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netplay.errors import LocalProtocolError, ProtocolError
from netplay.protocols import END, NEED_DATA
from netplay.protocols.pop3 import (
    MAX_ERRORS,
    Accepted,
    Content,
    Login,
    Pop3Error,
    Rejected,
    Retrieve,
    ServerConnection,
    StartTLS,
    State,
    Update,
    Updated,
)

MESSAGES = {
    "uid-a": b"Subject: a\r\n\r\nfirst\r\n.starts with a dot\r\n",
    "uid-b": b"Subject: b\r\nX: y\r\n\r\none\r\ntwo\r\nthree\r\n",
}
DROP = (("uid-a", len(MESSAGES["uid-a"])), ("uid-b", len(MESSAGES["uid-b"])))


def drive(
    conn: ServerConnection,
    data: bytes,
    *,
    chunk: int | None = None,
    password: bytes = b"pw",
    end: bool = True,
) -> tuple[bytes, list[object]]:
    """Feed ``data`` (in chunks of ``chunk`` bytes, then the end of the stream unless
    not ``end``), answer every event as a driver with DROP as the maildrop would, and
    return all bytes out and the events."""
    out = bytearray()
    events: list[object] = []
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    if end:
        pieces.append(b"")
    while True:
        event = conn.next_event()
        out += conn.data_to_send()
        if event is END:
            return bytes(out), events
        if event is NEED_DATA:
            if not pieces:
                return bytes(out), events
            conn.receive_data(pieces.pop(0))
            continue
        events.append(event)
        if isinstance(event, Login):
            good = event.user == b"brandon" and event.password == password
            out += conn.send(Accepted(messages=DROP) if good else Rejected())
        elif isinstance(event, Retrieve):
            out += conn.send(Content(data=MESSAGES[event.uid]))
        elif isinstance(event, Update):
            out += conn.send(Updated())
        elif isinstance(event, StartTLS):
            conn.tls_started()


SESSION = (
    b"CAPA\r\nUSER brandon\r\nPASS pw\r\nSTAT\r\nLIST\r\nUIDL 2\r\nRETR 1\r\nTOP 2 1\r\n"
    b"DELE 1\r\nDELE 1\r\nLIST 1\r\nSTAT\r\nRSET\r\nSTAT\r\nDELE 2\r\nNOOP\r\nQUIT\r\n"
)


def expected() -> bytes:
    a, b = (len(m) for m in MESSAGES.values())
    return (
        b"+OK POP3 server ready\r\n"
        b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
        b"PIPELINING\r\nUSER\r\nSASL PLAIN\r\nIMPLEMENTATION netplay\r\n.\r\n"
        b"+OK\r\n+OK Logged in.\r\n"
        + f"+OK 2 {a + b}\r\n+OK\r\n1 {a}\r\n2 {b}\r\n.\r\n".encode()
        + b"+OK 2 uid-b\r\n"
        b"+OK\r\nSubject: a\r\n\r\nfirst\r\n..starts with a dot\r\n.\r\n"
        b"+OK\r\nSubject: b\r\nX: y\r\n\r\none\r\n.\r\n"
        b"+OK Marked to be deleted.\r\n-ERR Message is deleted.\r\n-ERR Message is deleted.\r\n"
        + f"+OK 1 {b}\r\n+OK\r\n+OK 2 {a + b}\r\n".encode()
        + b"+OK Marked to be deleted.\r\n+OK\r\n+OK Logging out, messages deleted.\r\n"
    )


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_a_whole_session_whole_and_byte_by_byte(chunk: int | None) -> None:
    conn = ServerConnection(tls=True, stls=False)
    out, events = drive(conn, SESSION, chunk=chunk)
    assert out == expected()
    assert events[-1] == Update(deleted=("uid-b",))  # only what was marked at QUIT
    assert conn.state is State.UPDATE


def test_a_session_that_ends_without_quit_deletes_nothing() -> None:
    conn = ServerConnection(tls=True, stls=False)
    _out, events = drive(conn, b"USER brandon\r\nPASS pw\r\nDELE 1\r\nDELE 2\r\n")
    assert not any(isinstance(e, Update) for e in events)


def test_plaintext_logins_wait_for_stls() -> None:
    conn = ServerConnection(tls=False, stls=True)
    plain = base64.b64encode(b"\0brandon\0pw")
    out, events = drive(
        conn, b"CAPA\r\nUSER brandon\r\nAUTH PLAIN " + plain + b"\r\nSTLS\r\n", end=False
    )
    assert b"STLS\r\n" in out and b"USER\r\n" not in out and b"SASL" not in out
    assert out.count(b"-ERR [AUTH] Plaintext authentication disallowed") == 2
    assert events == [StartTLS()] and conn.tls
    out, events = drive(conn, b"STLS\r\nAUTH PLAIN\r\n" + plain + b"\r\nQUIT\r\n")
    assert out.startswith(b"-ERR TLS is already active.\r\n+ \r\n+OK Logged in.\r\n")
    assert events == [Login(user=b"brandon", password=b"pw"), Update(deleted=())]


def test_wrong_passwords_and_order() -> None:
    conn = ServerConnection(tls=True, stls=False)
    out, _events = drive(conn, b"PASS x\r\nUSER brandon\r\nPASS nope\r\nSTAT\r\nPASS pw\r\n")
    assert out.split(b"\r\n")[1:5] == [
        b"-ERR No user name given (USER first).",
        b"+OK",
        b"-ERR [AUTH] Authentication failed.",
        b"-ERR Command not allowed now.",
    ]
    assert out.endswith(b"-ERR No user name given (USER first).\r\n")  # USER again after a failure


def test_a_password_with_spaces_and_never_in_repr() -> None:
    conn = ServerConnection(tls=True, stls=False)
    _out, events = drive(conn, b"USER brandon\r\nPASS pass word\r\n", password=b"pass word")
    assert events == [Login(user=b"brandon", password=b"pass word")]
    assert "pass word" not in repr(events[0])


def test_long_lines_and_too_many_errors() -> None:
    conn = ServerConnection(tls=True, stls=False)
    with pytest.raises(Pop3Error) as info:
        drive(conn, b"X" * 100_000 + b"\r\nNOOP\r\n" + b"BOGUS\r\n" * MAX_ERRORS)
    assert info.value.reply == "-ERR Too many bad commands."
    conn = ServerConnection(tls=True, stls=False)
    out, _ = drive(conn, b"A" * 300 + b"\r\nQUIT\r\n", chunk=64)
    assert out.endswith(b"-ERR line too long\r\n+OK Logging out.\r\n")


def test_replies_out_of_turn_are_local_errors() -> None:
    conn = ServerConnection(tls=True, stls=False)
    with pytest.raises(LocalProtocolError):
        conn.send(Updated())
    conn.receive_data(b"USER brandon\r\nPASS pw\r\n")
    assert isinstance(conn.next_event(), Login)
    with pytest.raises(LocalProtocolError):
        conn.next_event()  # the login waits for its answer
    with pytest.raises(LocalProtocolError):
        conn.send(Content(data=b""))
    with pytest.raises(LocalProtocolError):
        Accepted(messages=(("has space", 1),))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    b"USER brandon\r\n", b"PASS pw\r\n", b"PASS x\r\n", b"STAT\r\n", b"LIST\r\n", b"LIST 9\r\n",
    b"RETR 1\r\n", b"RETR 0\r\n", b"TOP 2 0\r\n", b"TOP 1 x\r\n", b"DELE 2\r\n", b"RSET\r\n",
    b"UIDL\r\n", b"CAPA\r\n", b"NOOP\r\n", b"AUTH PLAIN\r\n", b"*\r\n", b"STLS\r\n", b"\r\n",
    b"\xff\xfe\r\n", b"QUIT\r\n",
]) | st.binary(max_size=40), max_size=30), st.integers(min_value=1, max_value=50))  # fmt: skip
def test_any_input_gets_answers_or_a_pop3_error(parts: list[bytes], chunk: int) -> None:
    conn = ServerConnection(tls=False, stls=True)
    try:
        out, _events = drive(conn, b"".join(parts), chunk=chunk)
    except Pop3Error:
        return
    except ProtocolError as exc:
        pytest.fail(f"only Pop3Error may escape: {exc!r}")
    for line in out.split(b"\r\n"):
        assert len(line) <= 512  # RFC 2449: responses are at most 512 octets


FUZZ_LINES = 100_000
VERBS = [b"USER", b"PASS", b"STAT", b"LIST", b"UIDL", b"RETR", b"TOP", b"DELE", b"RSET",
         b"NOOP", b"CAPA", b"AUTH", b"STLS", b"APOP", b"QUIT", b"", b"\x00", b"user"]  # fmt: skip


def _malformed(rng: random.Random) -> bytes:
    """A command line as a broken or hostile client sends it."""
    words = [rng.choice(VERBS)]
    for _ in range(rng.randrange(4)):
        kind = rng.randrange(5)
        if kind == 0:
            words.append(str(rng.randrange(-3, 10 ** rng.randrange(1, 12))).encode())
        elif kind == 1:
            words.append(rng.randbytes(rng.randrange(1, 20)))
        elif kind == 2:
            words.append(b"A" * rng.choice([1, 254, 255, 256, 1000]))
        elif kind == 3:
            words.append(base64.b64encode(rng.randbytes(rng.randrange(30))))
        else:
            words.append(rng.choice([b"brandon", b"pw", b"*", b"PLAIN", b"1", b"0"]))
    end = rng.choice([b"\r\n", b"\r\n", b"\n", b"\r", b""])
    return b" ".join(words) + end


def test_a_hundred_thousand_malformed_lines_get_answers_never_a_crash() -> None:
    """Seeded, so that a failure is the same failure again."""
    rng = random.Random(20261202)
    lines = sessions = 0
    while lines < FUZZ_LINES:
        conn = ServerConnection(tls=False, stls=rng.random() < 0.5)
        batch = [_malformed(rng) for _ in range(rng.randrange(1, 200))]
        lines += len(batch)
        sessions += 1
        data = b"".join(batch)
        try:
            out, _events = drive(conn, data, chunk=rng.choice([None, 1, 3, 64, 4096]))
        except Pop3Error as exc:
            assert exc.reply is not None and exc.reply.startswith("-ERR")
            continue
        assert out.startswith(b"+OK POP3 server ready\r\n")
        assert all(len(line) <= 512 for line in out.split(b"\r\n"))
    assert sessions > 100

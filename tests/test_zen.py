"""The zen protocol's sans-IO cores, and every server architecture under a checking client."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netplay import Playground, Spawned
from netplay.programs._zen_io import respond
from netplay.programs.zen_server import ARCHITECTURES
from netplay.protocols import (
    END,
    NEED_DATA,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    zen,
)
from netplay.protocols.zen import Answer, ClientConnection, Question, ServerConnection, ZenError
from netplay.testing import wait_until
from netplay.topology import loads

TABLE = [*zen.aphorisms().items(), (b"Tabs are better than?", zen.UNKNOWN)]


def pieces(wire: bytes, cuts: list[int]) -> list[bytes]:
    """``wire`` cut at ``cuts`` (empty pieces left out: b"" would say the stream ended)."""
    points = sorted({c for c in cuts if 0 < c < len(wire)})
    return [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True) if b > a]


def byte_by_byte(wire: bytes) -> list[int]:
    return list(range(1, len(wire)))


def serve(server: ServerConnection, chunks: list[bytes]) -> bytes:
    """What the server core answers to ``chunks``, then the end of the client's stream."""
    out = b""
    for chunk in [*chunks, b""]:
        server.receive_data(chunk)
        while isinstance(event := server.next_event(), Question):
            out += server.send(Answer(text=zen.answer(event.text)))
    return out


def read_answers(client: ClientConnection, chunks: list[bytes]) -> list[bytes]:
    """The answers' texts in ``chunks``, then the end of the server's stream."""
    got = []
    for chunk in [*chunks, b""]:
        client.receive_data(chunk)
        while isinstance(event := client.next_event(), Answer):
            got.append(event.text)
    assert client.next_event() is END
    return got


def test_the_aphorisms_come_from_import_this() -> None:
    table = zen.aphorisms()
    assert table[b"Beautiful is better than?"] == b"Ugly."
    assert table[b"Now is better than?"] == b"Never."
    assert len(table) == 7
    assert zen.answer(b"Tabs are better than?") == zen.UNKNOWN


def test_events_are_validated_when_built() -> None:
    assert Question(text=b"Beautiful is better than?").text == b"Beautiful is better than?"
    assert Answer(text=zen.UNKNOWN).text == zen.UNKNOWN
    for bad in (b"no question mark", b"two? questions?", b"x" * zen.MAX_QUESTION + b"?"):
        with pytest.raises(LocalProtocolError):
            Question(text=bad)
    for bad in (b"Ugly", b"Two. answers.", b"?"):
        with pytest.raises(LocalProtocolError):
            Answer(text=bad)
    with pytest.raises(TypeError):
        Question(b"Beautiful is better than?")  # type: ignore[call-arg]  # keyword-only
    with pytest.raises(AttributeError):
        Question(text=b"Flat is better than?").text = b"Sparse is better than?"  # type: ignore[misc]


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "byte-by-byte"])
def test_client_core_against_server_core(whole: bool) -> None:
    client, server = ClientConnection(), ServerConnection()
    wire = b"".join(client.send(Question(text=q)) for q, _a in TABLE)
    assert len(client.pending) == len(TABLE)
    asked = [wire] if whole else pieces(wire, byte_by_byte(wire))
    answers = serve(server, asked)
    assert server.unanswered == 0 and server.next_event() is END
    told = [answers] if whole else pieces(answers, byte_by_byte(answers))
    assert read_answers(client, told) == [a for _q, a in TABLE]
    assert client.pending == ()


@settings(max_examples=200, deadline=None)
@given(
    picks=st.lists(st.integers(0, 7), max_size=12),
    cuts=st.lists(st.integers(0, 400), max_size=15),
    spaces=st.sampled_from([b"", b"\n", b" \r\n"]),
)
def test_questions_in_any_pieces_get_answers_in_order(
    picks: list[int], cuts: list[int], spaces: bytes
) -> None:
    asked = [TABLE[i] for i in picks]
    client, server = ClientConnection(), ServerConnection()
    wire = b"".join(client.send(Question(text=q)) + spaces for q, _a in asked)
    answers = serve(server, pieces(wire, cuts))
    assert read_answers(client, pieces(answers, byte_by_byte(answers))) == [a for _q, a in asked]


def test_the_drivers_respond_answers_each_chunk_and_says_when_the_client_ended() -> None:
    server = ServerConnection()
    assert respond(server, b"Beautiful is better than?\nFlat is") == (b"Ugly.", False)
    assert respond(server, b" better than?") == (b"Nested.", False)
    assert respond(server, b"") == (b"", True)


def test_protocol_errors() -> None:
    server = ServerConnection()
    server.receive_data(b"x" * (zen.MAX_QUESTION + 1))
    with pytest.raises(ZenError, match="longer than") as too_long:
        server.next_event()
    assert too_long.value.reply == f"Error: a question is longer than {zen.MAX_QUESTION} bytes."
    with pytest.raises(LocalProtocolError, match="broke earlier"):
        server.next_event()
    half = ServerConnection()
    half.receive_data(b"Beautiful is")
    assert half.next_event() is NEED_DATA
    half.receive_data(b"")
    with pytest.raises(ZenError, match="inside a question"):
        half.next_event()
    client = ClientConnection()
    client.receive_data(b"Ugly.")
    with pytest.raises(ZenError, match="nobody asked"):
        client.next_event()
    client = ClientConnection()
    client.send(Question(text=b"Flat is better than?"))
    client.receive_data(b"")
    with pytest.raises(ZenError, match="1 questions unanswered"):
        client.next_event()
    chatty = ClientConnection()
    chatty.receive_data(b"x" * (zen.MAX_QUESTION + 1))
    with pytest.raises(ZenError, match="an answer is longer than"):
        chatty.next_event()
    assert issubclass(ZenError, RemoteProtocolError)


def test_local_misuse() -> None:
    server = ServerConnection()
    with pytest.raises(LocalProtocolError, match="no question to answer"):
        server.send(Answer(text=b"Ugly."))
    server.receive_data(b"")
    assert server.next_event() is END
    with pytest.raises(LocalProtocolError, match="receiving data is not allowed now"):
        server.receive_data(b"Beautiful is better than?")
    client = ClientConnection()
    client.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="sending is not allowed now"):
        client.send(Question(text=b"Flat is better than?"))
    with pytest.raises(LocalProtocolError, match="sends questions"):
        ClientConnection().send(Answer(text=b"Ugly."))  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    junk=st.binary(max_size=3000)
    | st.lists(st.sampled_from([b"?", b".", b" ", b"x" * 300])).map(b"".join),
    cuts=st.lists(st.integers(0, 3000), max_size=30),
    asked=st.integers(0, 3),
)
def test_any_bytes_in_any_pieces_give_events_or_protocol_errors_only(
    junk: bytes, cuts: list[int], asked: int
) -> None:
    """The fuzz rule: both cores, random bytes cut anyhow: events or ProtocolError, nothing else.

    Stricter still: bytes from the peer can only be the peer's fault (ZenError, a
    RemoteProtocolError); a LocalProtocolError here would be a bug in the core.
    """
    for chunks in (pieces(junk, cuts), pieces(junk, byte_by_byte(junk)), pieces(junk, [])):
        server = ServerConnection()
        with contextlib.suppress(ZenError):
            serve(server, chunks)
        client = ClientConnection()
        for _ in range(asked):
            client.send(Question(text=b"Beautiful is better than?"))
        with contextlib.suppress(ZenError):
            read_answers(client, chunks)


CALLS = st.lists(
    st.sampled_from(["next", "send", b"", b"Flat is better than?", b"Ugly.", b"x"]), max_size=12
)


def _call(side: ServerConnection | ClientConnection, call: str | bytes) -> None:
    """One call: next_event(), send() of an event this side may send, or receive_data(bytes)."""
    if call == "next":
        side.next_event()
    elif call == "send" and isinstance(side, ServerConnection):
        side.send(Answer(text=b"Ugly."))
    elif call == "send" and isinstance(side, ClientConnection):
        side.send(Question(text=b"Flat is better than?"))
    elif isinstance(call, bytes):
        side.receive_data(call)


@settings(max_examples=300, deadline=None)
@given(calls=CALLS)
def test_any_calls_in_any_state_give_events_or_protocol_errors_only(
    calls: list[str | bytes],
) -> None:
    """Hypothesis over (state, input): whatever the order of calls, nothing but ProtocolError."""
    server, client = ServerConnection(), ClientConnection()
    for call in calls:
        for side in (server, client):
            with contextlib.suppress(ProtocolError):
                _call(side, call)


def _client(
    pg: Playground, host: str, port: int, connections: int, questions: int
) -> dict[str, float]:
    argv = [
        sys.executable, "-m", "netplay.programs.zen_client", host, "-p", str(port),
        "--connections", str(connections), "--questions", str(questions), "--json",
    ]  # fmt: skip
    result = pg.host("h1").run(argv, timeout=120)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, float] = json.loads(result.stdout)
    return parsed


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_architecture_answers_every_question(
    book: Playground, spawn: Callable[..., Spawned], architecture: str
) -> None:
    argv = [sys.executable, "-m", "netplay.programs.zen_server", architecture, "-p", "1075"]
    server = spawn(book.host("www"), argv)
    assert server.first_line is not None and server.first_line.startswith("Listening at")
    result = _client(book, "www", 1075, connections=20, questions=25)
    assert result["answered"] == 500 and result["wrong"] == 0


INETD = f"""
name = "zen"
domain = "zen.test"

[hosts.www]

[[hosts.www.services]]
kind = "inetd"
name = "zen-nowait"
ports = [1071]
command = [{json.dumps(sys.executable)}, "-m", "netplay.programs.zen_inetd"]

[[hosts.www.services]]
kind = "inetd"
name = "zen-wait"
ports = [1072]
mode = "wait"
command = [{json.dumps(sys.executable)}, "-m", "netplay.programs.zen_inetd", "--wait"]

[hosts.h1]

[lans.lan]
hosts = {{ www = ["10.8.0.1/24"], h1 = ["10.8.0.2/24"] }}
"""


@pytest.mark.netplay_topology(loads(INETD, source="zen.toml"))
def test_inetd_style_in_both_modes(playground: Playground) -> None:
    nowait = _client(playground, "www", 1071, connections=10, questions=20)
    wait = _client(playground, "www", 1072, connections=1, questions=50)
    assert nowait["answered"] == 200 and wait["answered"] == 50


@pytest.mark.parametrize("service, port", [("ftp/zen", 1060), ("ftp/zen-wait", 1061)])
def test_the_book_s_zen_under_inetd_logs_a_client_behind_nat_by_its_modem(
    book: Playground, service: str, port: int
) -> None:
    """The server-architecture chapter's inetd servers on ftp: h1's address, as
    ftp sees it, is modemA's outside one (10.25.1.65), never its own."""
    result = _client(book, "ftp", port, connections=2, questions=5)
    assert result["answered"] == 10 and result["wrong"] == 0
    logged = wait_until(
        lambda: [line for line in book.logs(service) if "a client at 10.25.1.65" in line],
        timeout=10,
        what=f"h1's connections in the log of {service}",
    )
    assert logged and not any("192.168.1.11" in line for line in book.logs(service))

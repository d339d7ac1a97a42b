"""The zen protocol's sans-IO core, and every server architecture under a checking client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netplay import Playground
from netplay.programs import zen
from netplay.programs.zen_server import ARCHITECTURES


def test_the_aphorisms_come_from_import_this() -> None:
    table = zen.aphorisms()
    assert table[b"Beautiful is better than?"] == b"Ugly."
    assert table[b"Now is better than?"] == b"Never."
    assert len(table) == 7
    assert zen.answer(b"Tabs are better than?") == zen.UNKNOWN


@settings(max_examples=200, deadline=None)
@given(
    picks=st.lists(st.integers(0, 7), max_size=12),
    cuts=st.lists(st.integers(0, 400), max_size=15),
)
def test_questions_in_any_pieces_get_answers_in_order(picks: list[int], cuts: list[int]) -> None:
    table = [*zen.aphorisms().items(), (b"Tabs are better than?", zen.UNKNOWN)]
    asked = [table[i] for i in picks]
    wire = b"".join(q for q, _a in asked)
    server, client = zen.ServerConnection(), zen.ClientConnection()
    for question, _answer in asked:
        client.ask(question)
    answers = b""
    points = sorted({c for c in cuts if 0 < c < len(wire)})
    for start, stop in zip([0, *points], [*points, len(wire)], strict=True):
        if stop > start:
            answers += server.receive_data(wire[start:stop])
    assert server.receive_data(b"") == b"" and server.closed
    got = []
    for i in range(len(answers)):  # the answers, byte by byte
        got += client.receive_data(answers[i : i + 1])
    assert got == asked
    assert client.receive_data(b"") == []


def test_protocol_errors() -> None:
    server = zen.ServerConnection()
    with pytest.raises(zen.ZenError, match="longer than"):
        server.receive_data(b"x" * (zen.MAX_QUESTION + 1))
    half = zen.ServerConnection()
    half.receive_data(b"Beautiful is")
    with pytest.raises(zen.ZenError, match="inside a question"):
        half.receive_data(b"")
    client = zen.ClientConnection()
    with pytest.raises(zen.ZenError, match="nobody asked"):
        client.receive_data(b"Ugly.")
    client.ask(b"Flat is better than?")
    with pytest.raises(zen.ZenError, match="1 questions unanswered"):
        client.receive_data(b"")
    with pytest.raises(ValueError):
        client.ask(b"no question mark")


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


@pytest.mark.playground
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_architecture_answers_every_question(book: Playground, architecture: str) -> None:
    argv = [sys.executable, "-m", "netplay.programs.zen_server", architecture, "-p", "1075"]
    server = book.host("www").popen(argv, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    try:
        assert server.stdout.readline().startswith("Listening at")
        result = _client(book, "www", 1075, connections=20, questions=25)
        assert result["answered"] == 500 and result["wrong"] == 0
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


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


@pytest.mark.playground
def test_inetd_style_in_both_modes(tmp_path: Path) -> None:
    path = tmp_path / "zen.toml"
    path.write_text(INETD)
    with Playground.up(str(path), name=f"zen{os.getpid()}") as pg:
        nowait = _client(pg, "www", 1071, connections=10, questions=20)
        wait = _client(pg, "www", 1072, connections=1, questions=50)
    assert nowait["answered"] == 200 and wait["answered"] == 50

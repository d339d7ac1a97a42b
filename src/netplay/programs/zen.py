"""The zen protocol, sans-IO: questions that end with "?", aphorisms that end with ".".

A client sends questions such as ``Beautiful is better than?``; the server
answers each, in order, with the rest of the aphorism from ``import this``
(``Ugly.``), or ``Error: unknown aphorism.``.  Any number of questions may
arrive in one ``recv`` and any question may be split across several:
:class:`ServerConnection` turns whatever bytes arrive into the bytes to
send back, and :class:`ClientConnection` turns answers back into text.
Neither touches a socket, so every server design in
:mod:`netplay.programs.zen_server` shares them, and they are tested with
bytes alone.  A question longer than MAX_QUESTION is a protocol error.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import io
import re

MAX_QUESTION = 1024
UNKNOWN = b"Error: unknown aphorism."


class ZenError(Exception):
    """The peer broke the protocol."""


@functools.cache
def aphorisms() -> dict[bytes, bytes]:
    """Question -> answer, from the Zen of Python's "X is better than Y." lines."""
    with contextlib.redirect_stdout(io.StringIO()):  # importing it prints the Zen
        import this
    text = codecs.decode(this.s, "rot13")
    pairs = re.findall(r"^(\w+) is better than (\w+)\.$", text, re.MULTILINE)
    return {f"{x} is better than?".encode(): f"{y.capitalize()}.".encode() for x, y in pairs}


def answer(question: bytes) -> bytes:
    return aphorisms().get(question.strip(), UNKNOWN)


class ServerConnection:
    """One client's side of the conversation, as the server sees it."""

    def __init__(self) -> None:
        self._buffer = b""
        self.closed = False
        self.answered = 0

    def receive_data(self, data: bytes) -> bytes:
        """Bytes from the client (b"" at its end) -> the bytes to send it."""
        if not data:
            self.closed = True
            if self._buffer.strip():
                raise ZenError("the client ended inside a question")
            return b""
        self._buffer += data
        out = []
        while (end := self._buffer.find(b"?")) >= 0:
            question, self._buffer = self._buffer[: end + 1], self._buffer[end + 1 :]
            if len(question) > MAX_QUESTION:
                raise ZenError(f"a question is longer than {MAX_QUESTION} bytes")
            out.append(answer(question))
        if len(self._buffer) > MAX_QUESTION:
            raise ZenError(f"a question is longer than {MAX_QUESTION} bytes")
        self.answered += len(out)
        return b"".join(out)


class ClientConnection:
    """The client's side: questions out, answers in, in order."""

    def __init__(self) -> None:
        self._buffer = b""
        self.pending: list[bytes] = []

    def ask(self, question: bytes) -> bytes:
        if not question.endswith(b"?") or b"?" in question[:-1]:
            raise ValueError("a question ends with its only '?'")
        self.pending.append(question)
        return question

    def receive_data(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """Bytes from the server -> the (question, answer) pairs now complete."""
        if not data:
            if self.pending:
                raise ZenError(f"the server closed with {len(self.pending)} questions unanswered")
            return []
        self._buffer += data
        done = []
        while (end := self._buffer.find(b".")) >= 0:
            reply, self._buffer = self._buffer[: end + 1], self._buffer[end + 1 :]
            if not self.pending:
                raise ZenError(f"an answer nobody asked for: {reply[:40]!r}")
            done.append((self.pending.pop(0), reply))
        if len(self._buffer) > MAX_QUESTION:
            raise ZenError("an answer is too long")
        return done

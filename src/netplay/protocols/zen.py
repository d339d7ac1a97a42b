"""The zen protocol, sans-IO: questions that end with "?", aphorisms that end with ".".

A client sends questions such as ``Beautiful is better than?``; the server
answers each, in order, with the rest of the aphorism from ``import this``
(``Ugly.``), or ``Error: unknown aphorism.``.  Whitespace between messages
is allowed and ignored.  Any number of questions may arrive in one ``recv``
and any question may be split across several.

Two cores in the :mod:`netplay.protocols` vocabulary, neither touching a
socket, so every server design in :mod:`netplay.programs.zen_server` and
the client in :mod:`netplay.programs.zen_client` share them:

- :class:`ServerConnection`: ``receive_data(bytes)``, ``next_event()`` ->
  :class:`Question`, NEED_DATA or END; ``send(Answer) -> bytes``, one
  answer per question received, in order;
- :class:`ClientConnection`: ``send(Question) -> bytes``;
  ``receive_data(bytes)``, ``next_event()`` -> :class:`Answer` (to the
  oldest question pending), NEED_DATA or END.

Both are a table ``(state, input) -> state``; a call the table lacks is a
LocalProtocolError.  What the peer gets wrong is a :class:`ZenError` (a
RemoteProtocolError): a message longer than MAX_QUESTION bytes (questions
and answers alike), an answer nobody asked for, a stream that ends inside
a message, or a server that ends with questions unanswered.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import enum
import functools
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final, NoReturn

from netplay.errors import LocalProtocolError, RemoteProtocolError
from netplay.protocols._sansio import END, NEED_DATA, Sentinel

MAX_QUESTION = 1024  # bytes, for an answer too
UNKNOWN = b"Error: unknown aphorism."


class ZenError(RemoteProtocolError):
    """The peer broke the zen protocol."""


def _check(text: bytes, end: bytes, what: str) -> None:
    if not isinstance(text, bytes):
        raise LocalProtocolError(f"{what} is bytes, not {type(text).__name__}")
    if not text.endswith(end) or end in text[:-1]:
        raise LocalProtocolError(f"{what} ends with its only {end.decode()!r}: {text[:40]!r}")
    if len(text) > MAX_QUESTION:
        raise LocalProtocolError(f"{what} is longer than {MAX_QUESTION} bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    """``Beautiful is better than?``: ends with its only "?"."""

    text: bytes

    def __post_init__(self) -> None:
        _check(self.text, b"?", "a question")


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """``Ugly.``: ends with its only "."."""

    text: bytes

    def __post_init__(self) -> None:
        _check(self.text, b".", "an answer")


@functools.cache
def aphorisms() -> dict[bytes, bytes]:
    """Question -> answer, from the Zen of Python's "X is better than Y." lines."""
    with contextlib.redirect_stdout(io.StringIO()):  # importing it prints the Zen
        import this
    text = codecs.decode(this.s, "rot13")
    pairs = re.findall(r"^(\w+) is better than (\w+)\.$", text, re.MULTILINE)
    return {f"{x} is better than?".encode(): f"{y.capitalize()}.".encode() for x, y in pairs}


def answer(question: bytes) -> bytes:
    """The answer's text to a question's text (UNKNOWN for one the Zen does not have)."""
    return aphorisms().get(question.strip(), UNKNOWN)


class _State(enum.Enum):
    OPEN = "the conversation is open"
    ENDED = "the peer has ended its stream"
    DONE = "the conversation is over"
    BROKEN = "the conversation broke earlier"


class _Input(enum.Enum):
    DATA = "receiving data"
    EOF = "receiving the end of the stream"
    READ = "reading an event"
    ENDING = "ending"
    SEND = "sending"


_OPEN, _ENDED, _DONE = _State.OPEN, _State.ENDED, _State.DONE
_DATA, _EOF, _READ, _ENDING, _SEND = _Input

# (state, input) -> next state; BROKEN has no entries, so every call then raises
_CLIENT: Final[Mapping[tuple[_State, _Input], _State]] = {
    (_OPEN, _DATA): _OPEN,
    (_OPEN, _EOF): _ENDED,
    (_OPEN, _READ): _OPEN,
    (_OPEN, _SEND): _OPEN,  # questions go out only while the server may answer them
    (_ENDED, _READ): _ENDED,
    (_ENDED, _ENDING): _DONE,
    (_DONE, _READ): _DONE,
    (_DONE, _ENDING): _DONE,
}
_SERVER: Final[Mapping[tuple[_State, _Input], _State]] = {
    **_CLIENT,
    (_ENDED, _SEND): _ENDED,  # a client may end its stream before its answers are out
    (_DONE, _SEND): _DONE,
}


class _Conversation:
    """The buffer and the state table both sides share; a missing entry is local misuse."""

    _TABLE: ClassVar[Mapping[tuple[_State, _Input], _State]]
    _END: ClassVar[bytes]
    _WHAT: ClassVar[str]

    def __init__(self) -> None:
        self._state = _State.OPEN
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` says it has ended its stream."""
        self._move(_DATA if data else _EOF)
        self._buffer += data

    def _move(self, what: _Input) -> None:
        state = self._TABLE.get((self._state, what))
        if state is None:
            raise LocalProtocolError(f"{what.value} is not allowed now: {self._state.value}")
        self._state = state

    def _fail(self, message: str, reply: str | None = None) -> NoReturn:
        self._state = _State.BROKEN
        raise ZenError(message, reply=reply)

    def _cut(self) -> bytes | None:
        """The next whole message, stripped of the whitespace around it, or None."""
        end = self._buffer.find(self._END)
        if end < 0:
            if len(self._buffer) > MAX_QUESTION:
                self._fail(f"{self._WHAT} is longer than {MAX_QUESTION} bytes", self._too_long())
            return None
        if end + 1 > MAX_QUESTION:
            self._fail(f"{self._WHAT} is longer than {MAX_QUESTION} bytes", self._too_long())
        message = bytes(self._buffer[: end + 1]).strip()
        del self._buffer[: end + 1]
        return message

    def _too_long(self) -> str | None:
        return None


class ServerConnection(_Conversation):
    """One client's side of the conversation, as the server sees it."""

    _TABLE = _SERVER
    _END = b"?"
    _WHAT = "a question"

    def __init__(self) -> None:
        super().__init__()
        self._unanswered = 0

    @property
    def unanswered(self) -> int:
        """Questions given by next_event() and not yet answered with send()."""
        return self._unanswered

    def next_event(self) -> Question | Sentinel:
        """The next question, NEED_DATA, or END once the client has ended cleanly."""
        self._move(_READ)
        text = self._cut()
        if text is not None:
            self._unanswered += 1
            return Question(text=text)
        if self._state is _State.OPEN:
            return NEED_DATA
        if self._buffer.strip():
            self._fail("the client ended inside a question")
        self._move(_ENDING)
        return END

    def send(self, event: Answer) -> bytes:
        """The bytes of the answer to the oldest question not yet answered."""
        self._move(_SEND)
        if not isinstance(event, Answer):
            raise LocalProtocolError(f"a server sends answers, not {type(event).__name__}")
        if not self._unanswered:
            raise LocalProtocolError("an answer with no question to answer")
        self._unanswered -= 1
        return event.text

    def _too_long(self) -> str:
        return f"Error: a question is longer than {MAX_QUESTION} bytes."


class ClientConnection(_Conversation):
    """The client's side: questions out, answers in, in order."""

    _TABLE = _CLIENT
    _END = b"."
    _WHAT = "an answer"

    def __init__(self) -> None:
        super().__init__()
        self._pending: collections.deque[Question] = collections.deque()

    @property
    def pending(self) -> tuple[Question, ...]:
        """The questions sent and not yet answered, oldest first."""
        return tuple(self._pending)

    def send(self, event: Question) -> bytes:
        """The bytes of a question; its answer comes after those of the questions before it."""
        self._move(_SEND)
        if not isinstance(event, Question):
            raise LocalProtocolError(f"a client sends questions, not {type(event).__name__}")
        self._pending.append(event)
        return event.text

    def next_event(self) -> Answer | Sentinel:
        """The answer to the oldest pending question, NEED_DATA, or END once the server ended."""
        self._move(_READ)
        text = self._cut()
        if text is not None:
            if not self._pending:
                self._fail(f"an answer nobody asked for: {text[:40]!r}")
            self._pending.popleft()
            return Answer(text=text)
        if self._state is _State.OPEN:
            return NEED_DATA
        if self._pending:
            self._fail(f"the server closed with {len(self._pending)} questions unanswered")
        if self._buffer.strip():
            self._fail("the server ended inside an answer")
        self._move(_ENDING)
        return END

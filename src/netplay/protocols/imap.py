"""IMAP4rev1, sans-IO: the server side's reading of commands (RFC 3501 9), as a grammar.

:class:`ServerConnection` turns the client's bytes into :class:`Command`
events: a tag, a command name and its arguments, parsed (not split on
spaces): atoms are ``str`` (``FLAGS``, ``1:*``, ``\\Seen``, and fetch
attributes with their brackets, ``BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>``,
as one atom), strings are ``bytes`` (quoted, or literals ``{n}`` and
``{n+}`` of any bytes), parenthesised lists are ``list``, and ``NIL`` is
None.  A synchronising literal gets its ``+`` continuation from the core
itself (in ``data_to_send()``) once the command so far is well formed.

A command that cannot be parsed is answered by the core (``TAG BAD ...``, or
``* BAD ...`` without a tag) and the connection goes on with the next line.
Limits, from the first byte: a line (without its literals) is at most
MAX_LINE bytes; a literal at most ``max_literal`` bytes: a synchronising one
that is larger is refused before the client sends it, a non-synchronising
one (LITERAL+) is read and thrown away as it comes, never held; a command
at most MAX_LITERALS literals.  After MAX_ERRORS bad commands in a row,
:class:`ImapError` says the client is to be dropped (``* BYE`` in ``reply``).

Two commands read what follows them differently, and the driver says so:
after answering IDLE with ``+ idling`` it calls :meth:`expect_done` (the
next line must be ``DONE``: a :class:`Done` event), and after answering
AUTHENTICATE with ``+`` it calls :meth:`expect_line` (a :class:`Line`).

Responses are written with :func:`tagged`, :func:`untagged`,
:func:`continuation` and :func:`astring`/:func:`nstring`/:func:`literal`
for the strings in them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

from netplay.errors import LocalProtocolError, RemoteProtocolError
from netplay.protocols._sansio import END, NEED_DATA, Sentinel

MAX_LINE = 8192  # bytes of one line of a command, without its literals
MAX_LITERAL = 10_240_000 + 65_536  # an APPENDed message, as large as SMTP takes
MAX_LITERALS = 64  # literals in one command
MAX_ERRORS = 10  # bad commands in a row before the client is dropped
MAX_DEPTH = 16  # nested parentheses

Value: TypeAlias = "str | bytes | list[Value] | None"
_ATOM_SPECIALS = b'(){ %*"\\]' + bytes(range(0x20)) + b"\x7f"
_TAG = re.compile(rb"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+")
_LITERAL_END = re.compile(rb"\{(\d{1,10})(\+?)\}$")


class ImapError(RemoteProtocolError):
    """The client broke IMAP past forgiving: drop it (after sending ``reply``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """``tag name args...``; ``name`` is upper case."""

    tag: str
    name: str
    args: tuple[Value, ...]

    def __repr__(self) -> str:  # a LOGIN's password is not for logs
        shown = "..." if self.name in ("LOGIN", "AUTHENTICATE") else self.args
        return f"Command({self.tag} {self.name} {shown})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Done:
    """The ``DONE`` that ends IDLE."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    """A raw line the driver asked for (an AUTHENTICATE response), without CRLF."""

    data: bytes

    def __repr__(self) -> str:
        return "Line(...)"


class _Bad(Exception):
    """A command that cannot be parsed: answer BAD and go on."""


class ServerConnection:
    """One client's IMAP commands, as the server reads them."""

    def __init__(self, *, max_literal: int = MAX_LITERAL) -> None:
        self.max_literal = max_literal
        self._buffer = bytearray()
        self._out = bytearray()
        self._ended = False
        self._errors = 0
        self._expect: type | None = None  # Done or Line: what the next line is
        # the command being read: its text so far (literals cut out) and literals
        self._parts: list[bytes] = []
        self._literals: list[bytes] = []
        self._literal_wanted = 0  # bytes of a literal still to read
        self._skipping = 0  # bytes of a refused LITERAL+ still to throw away
        self._refused: bytes | None = None  # why the command being read is refused

    # -- bytes in and out -----------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the client; ``b""`` says it has ended its stream."""
        if self._ended:
            raise LocalProtocolError("data after the end of the stream")
        if not data:
            self._ended = True
        self._buffer += data

    def data_to_send(self) -> bytes:
        """What the core answered by itself (continuations, BAD) since last asked."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def expect_done(self) -> None:
        """IDLE was answered with ``+``: the next line must be DONE."""
        self._expect = Done

    def expect_line(self) -> None:
        """A ``+`` challenge was sent: the next line is the client's response."""
        self._expect = Line

    def next_event(self) -> Command | Done | Line | Sentinel:
        """The next command (or Done, or Line), NEED_DATA, or END at the end of the stream."""
        while True:
            if self._skipping:
                taken = min(self._skipping, len(self._buffer))
                del self._buffer[:taken]
                self._skipping -= taken
                if self._skipping:
                    return self._need()
            if self._literal_wanted:
                if len(self._buffer) < self._literal_wanted:
                    return self._need()
                self._literals.append(bytes(self._buffer[: self._literal_wanted]))
                del self._buffer[: self._literal_wanted]
                self._literal_wanted = 0
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    self._buffer.clear()
                    self._fault(None, b"line too long")  # the rest of it is read as a new line
                return self._need()
            line = bytes(self._buffer[:end]).removesuffix(b"\r")
            del self._buffer[: end + 1]
            if self._expect is not None:
                expected, self._expect = self._expect, None
                if expected is Line:
                    return Line(data=line)
                if line.upper() == b"DONE":
                    return Done()
                self._fault(None, b"expected DONE")
                continue
            event = self._line(line)
            if event is not None:
                return event

    def _need(self) -> Sentinel:
        return END if self._ended else NEED_DATA

    # -- commands ---------------------------------------------------------------

    def _line(self, line: bytes) -> Command | None:
        """One line of a command: the command, once its last line is in."""
        if sum(map(len, self._parts)) + len(line) > MAX_LINE:
            self._parts.clear()
            self._literals.clear()
            self._fault(None, b"line too long")
            return None
        if b"\x00" in line:  # never in IMAP; and the parser marks literals with it
            self._refused = b"NUL in a command"
        literal = _LITERAL_END.search(line)
        if literal is None:
            self._parts.append(line)
            return self._finish()
        size, plus = int(literal.group(1)), literal.group(2) == b"+"
        self._parts.append(line[: literal.start()] + b"\x00")  # where the literal goes
        if len(self._literals) >= MAX_LITERALS:
            self._refused = b"too many literals"
        elif size > self.max_literal:
            self._refused = b"[TOOBIG] literal larger than %d bytes" % self.max_literal
        if self._refused is not None:
            if not plus:  # the client waits for "+": it sends nothing more of it
                return self._finish()
            self._skipping = size
            self._literals.append(b"")
            return None
        if not plus:
            self._out += b"+ Ready for literal data\r\n"
        self._literal_wanted = size
        if size == 0:
            self._literals.append(b"")
        return None

    def _finish(self) -> Command | None:
        text = b"".join(self._parts)
        literals = self._literals
        refused, self._refused = self._refused, None
        self._parts, self._literals = [], []
        tag_match = _TAG.match(text)
        tag = (
            tag_match.group().decode()
            if tag_match and text[tag_match.end() :][:1] == b" "
            else None
        )
        if refused is not None:
            self._fault(tag, refused)
            return None
        try:
            if tag is None:
                raise _Bad("a command starts with a tag")
            rest = text[len(tag) + 1 :]
            name_end = rest.find(b" ")
            name = (rest if name_end < 0 else rest[:name_end]).upper().decode("ascii")
            if not name.isalpha():
                raise _Bad("a command name is letters")
            args = _Parser(rest[len(name) :], literals).arguments()
        except (_Bad, UnicodeDecodeError) as exc:
            self._fault(tag, str(exc).encode())
            return None
        self._errors = 0
        return Command(tag=tag, name=name, args=tuple(args))

    def _fault(self, tag: str | None, text: bytes) -> None:
        self._out += f"{tag or '*'} BAD ".encode() + text + b"\r\n"
        self._errors += 1
        if self._errors >= MAX_ERRORS:
            raise ImapError("too many bad commands", reply="* BYE Too many invalid commands.")


class _Parser:
    """The arguments of one command: text with a NUL where each literal goes."""

    def __init__(self, text: bytes, literals: list[bytes]) -> None:
        self.text = text
        self.at = 0
        self.literals = iter(literals)

    def arguments(self) -> list[Value]:
        values: list[Value] = []
        while self.at < len(self.text):
            if self.text[self.at : self.at + 1] != b" ":
                raise _Bad("arguments are separated by one space")
            self.at += 1
            values.append(self.value(0))
        return values

    def value(self, depth: int) -> Value:
        char = self.text[self.at : self.at + 1]
        if char == b"(":
            if depth >= MAX_DEPTH:
                raise _Bad("lists nested too deep")
            self.at += 1
            items: list[Value] = []
            while self.text[self.at : self.at + 1] != b")":
                if self.at >= len(self.text):
                    raise _Bad("a list is not closed")
                if items:
                    if self.text[self.at : self.at + 1] != b" ":
                        raise _Bad("list items are separated by one space")
                    self.at += 1
                items.append(self.value(depth + 1))
            self.at += 1
            return items
        if char == b'"':
            return self.quoted()
        if char == b"\x00":
            self.at += 1
            literal = next(self.literals, None)
            if literal is None:
                raise _Bad("NUL in a command")
            return literal
        return self.atom()

    def quoted(self) -> bytes:
        out = bytearray()
        self.at += 1
        while self.at < len(self.text):
            char = self.text[self.at]
            self.at += 1
            if char == 0x22:  # "
                return bytes(out)
            if char == 0x5C:  # \
                if self.text[self.at : self.at + 1] not in (b'"', b"\\"):
                    raise _Bad('only \\\\ and \\" may be escaped in a quoted string')
                char = self.text[self.at]
                self.at += 1
            elif char in (0x0D, 0x0A, 0x00):
                raise _Bad("a quoted string holds no CR, LF or NUL")
            out.append(char)
        raise _Bad("a quoted string is not closed")

    def atom(self) -> str | None:
        start, depth = self.at, 0
        while self.at < len(self.text):
            char = self.text[self.at : self.at + 1]
            if char == b"[":
                depth += 1
            elif char == b"]" and depth:
                depth -= 1
            elif depth and char in b' ()"':  # inside brackets: BODY[HEADER.FIELDS (A B)]
                if char == b'"':
                    raise _Bad("no quoted strings inside a section")
            elif (char in _ATOM_SPECIALS and char not in b"%*\\") or char == b"\x00":
                break
            self.at += 1
        if depth:
            raise _Bad("a [ is not closed")
        word = self.text[start : self.at]
        if not word:
            raise _Bad(f"unexpected {self.text[self.at : self.at + 1]!r}")
        # 8-bit in an atom is not IMAP, but clients send it (imaplib: SEARCH CHARSET
        # UTF-8 SUBJECT Zürich) and servers take it as UTF-8, as Dovecot does
        text = word.decode("utf-8", "replace")
        return None if text.upper() == "NIL" else text


# -- writing responses --------------------------------------------------------------

_QUOTABLE = re.compile(rb'[^\r\n"\\\x00\x80-\xff]*')


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def astring(data: bytes | str) -> bytes:
    """A string as a quoted string where it can be one, else a literal."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) < 1024 and _QUOTABLE.fullmatch(raw):
        return b'"' + raw + b'"'
    return literal(raw)


def nstring(data: bytes | str | None) -> bytes:
    return b"NIL" if data is None else astring(data)


def tagged(tag: str, status: str, text: str) -> bytes:
    """``TAG OK|NO|BAD text``."""
    if status not in ("OK", "NO", "BAD"):
        raise LocalProtocolError(f"a tagged status is OK, NO or BAD, not {status}")
    return f"{tag} {status} {text}\r\n".encode()


def untagged(data: bytes | str) -> bytes:
    return b"* " + (data.encode() if isinstance(data, str) else data) + b"\r\n"


def continuation(text: str = "") -> bytes:
    return f"+ {text}\r\n".encode()

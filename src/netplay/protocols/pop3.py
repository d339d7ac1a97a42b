"""POP3, sans-IO: the server side of RFC 1939, with CAPA and response codes (RFC 2449),
STLS (RFC 2595) and SASL PLAIN (RFC 5034, RFC 4616).

:class:`ServerConnection` parses the client's commands, keeps the session's
state and the maildrop's bookkeeping (message numbers, sizes, unique ids,
what is marked deleted) and answers every command it can by itself; what
needs the world outside (checking a password and locking the maildrop,
starting TLS, reading a message, deleting at the end) comes out of
``next_event()`` as an event, and the driver's answer goes back through
``send()``::

    conn = ServerConnection(tls=False, stls=True)
    out(conn.data_to_send())                  # the greeting
    while (event := conn.next_event()) is not END:
        out(conn.data_to_send())              # what it answered by itself, in order
        if event is NEED_DATA:
            conn.receive_data(read())
        elif isinstance(event, Login):        # check, lock, list the maildrop
            out(conn.send(Accepted(messages=(("uid1", 120), ...))))   # or Rejected
        elif isinstance(event, StartTLS):     # "+OK Begin TLS" is out: upgrade now
            upgrade(); conn.tls_started()
        elif isinstance(event, Retrieve):     # RETR or TOP
            out(conn.send(Content(data=read_message(event.uid))))
        elif isinstance(event, Update):       # QUIT: delete event.deleted, then
            out(conn.send(Updated()))         # and close

The state machine is RFC 1939's: AUTHORIZATION (USER/PASS, AUTH, STLS,
CAPA, QUIT), TRANSACTION (STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP,
CAPA, QUIT) and UPDATE (after QUIT); a command that is not allowed in the
state gets ``-ERR``, never a guess.  Deletions are only marks until QUIT
in TRANSACTION: a session that ends any other way deletes nothing.

Limits: a command line is at most 255 octets (RFC 2449) and a longer one is
answered ``-ERR`` once it ends, its bytes discarded as they come; after
MAX_ERRORS bad commands a :class:`Pop3Error` (a RemoteProtocolError) says
the client is to be dropped, with the last answer in ``reply``.  Plain-text
logins (USER/PASS, AUTH PLAIN) are refused before TLS when the connection
can start it (``stls``), and CAPA does not offer them then.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass
from typing import NoReturn

from netplay.errors import LocalProtocolError, RemoteProtocolError
from netplay.protocols._sansio import END, NEED_DATA, Sentinel

MAX_LINE = 255  # a command with its CRLF (RFC 2449 4)
MAX_ERRORS = 10  # bad commands before the client is dropped
MAX_UID = 70  # a unique-id listing's id: 1 to 70 printable characters (RFC 1939 7)
GREETING = b"+OK POP3 server ready"


class Pop3Error(RemoteProtocolError):
    """The client broke POP3 past forgiving: drop it (after sending ``reply``)."""


class State(enum.Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"


# -- events: what the driver must do ------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Login:
    """USER and PASS (or AUTH PLAIN) were given: check them, lock the maildrop."""

    user: bytes
    password: bytes = b""

    def __repr__(self) -> str:  # never the password, in a log or a traceback
        return f"Login(user={self.user!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTLS:
    """STLS was accepted (``+OK`` is in data_to_send()): start TLS, then tls_started()."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrieve:
    """RETR (``lines`` None) or TOP: the message ``uid``, its body cut to ``lines``."""

    uid: str
    lines: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """QUIT in TRANSACTION: delete these messages (uids), then send Updated."""

    deleted: tuple[str, ...]


# -- replies: the driver's answers to events ----------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """The login is good and the maildrop is locked: its messages, oldest first."""

    messages: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        for uid, size in self.messages:
            if not 0 < len(uid) <= MAX_UID or not all(0x21 <= ord(c) <= 0x7E for c in uid):
                raise LocalProtocolError(f"{uid!r} is not a POP3 unique id (RFC 1939 7)")
            if size < 0:
                raise LocalProtocolError(f"a message of {size} octets")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """The login is refused: ``-ERR`` and this text (with its response code)."""

    text: bytes = b"[AUTH] Authentication failed."


@dataclass(frozen=True, slots=True, kw_only=True)
class Content:
    """The message asked for by Retrieve, as stored (lines end in CRLF); None: it is gone."""

    data: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Updated:
    """The deletions of Update are done (``failed``: how many could not be)."""

    failed: int = 0


# -- the connection -------------------------------------------------------------

_AUTHORIZATION, _TRANSACTION, _UPDATE = State
#: what each state allows; anything else is "-ERR" (RFC 1939 3)
_ALLOWED = {
    _AUTHORIZATION: {"CAPA", "USER", "PASS", "AUTH", "STLS", "QUIT"},
    _TRANSACTION: {"CAPA", "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP", "QUIT"},
    _UPDATE: set(),
}


class ServerConnection:
    """One client's POP3 session, as the server sees it."""

    def __init__(self, *, tls: bool, stls: bool) -> None:
        self.state = State.AUTHORIZATION
        self.tls = tls  # the connection is encrypted (implicit TLS, or after STLS)
        self.stls = stls and not tls  # STLS may be given
        self._buffer = bytearray()
        self._out = bytearray(GREETING + b"\r\n")
        self._ended = False
        self._discarding = False  # inside a line that is too long
        self._errors = 0
        self._user: bytes | None = None
        self._sasl = False  # the next line is an AUTH PLAIN response
        self._waiting: tuple[type, ...] = ()  # the replies a pending event takes
        self._top_lines: int | None = None  # of the pending Retrieve
        self._messages: list[tuple[str, int]] = []
        self._deleted: set[int] = set()

    # -- bytes in and out ---------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the client; ``b""`` says it has ended its stream."""
        if self._ended:
            raise LocalProtocolError("data after the end of the stream")
        if not data:
            self._ended = True
        self._buffer += data

    def data_to_send(self) -> bytes:
        """What the connection has answered by itself since last asked, in order."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Login | StartTLS | Retrieve | Update | Sentinel:
        """The next thing the driver must do, NEED_DATA, or END once the client has
        ended (or quit); answers it made itself wait in data_to_send()."""
        if self._waiting:
            raise LocalProtocolError(f"the last event waits for {_names(self._waiting)}")
        while self.state is not State.UPDATE:
            line = self._line()
            if line is None:
                return END if self._ended else NEED_DATA
            event = self._command(line)
            if event is not None:
                return event
        return END

    def send(self, reply: Accepted | Rejected | Content | Updated) -> bytes:
        """The bytes that answer the last event."""
        if not isinstance(reply, self._waiting):
            wanted = _names(self._waiting) if self._waiting else "no reply"
            raise LocalProtocolError(f"{type(reply).__name__} sent where {wanted} is due")
        self._waiting = ()
        if isinstance(reply, Accepted):
            self.state = State.TRANSACTION
            self._messages = list(reply.messages)
            return b"+OK Logged in.\r\n"
        if isinstance(reply, Rejected):
            self._user = None
            return self._error(reply.text)
        if isinstance(reply, Content):
            if reply.data is None:
                return b"-ERR no such message (it was removed)\r\n"
            return b"+OK\r\n" + _dot_stuffed(reply.data, self._top_lines) + b".\r\n"
        if reply.failed:
            return b"-ERR " + str(reply.failed).encode() + b" messages could not be deleted\r\n"
        return b"+OK Logging out, messages deleted.\r\n"

    def tls_started(self) -> None:
        """TLS is up after StartTLS: the session starts again (RFC 2595 4)."""
        self.tls, self.stls = True, False
        self._buffer.clear()  # nothing sent in clear before the handshake counts

    # -- commands -------------------------------------------------------------

    def _line(self) -> bytes | None:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    self._discarding = True
                    del self._buffer[:-1]  # keep a CR that the LF may follow
                return None
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            if self._discarding or len(line) > MAX_LINE:
                self._discarding = False
                self._fault(b"line too long")
                continue
            return line.rstrip(b"\r\n")

    def _fault(self, text: bytes) -> None:
        """Answer ``-ERR text``; past MAX_ERRORS, drop the client."""
        self._errors += 1
        self._out += self._error(text)
        if self._errors >= MAX_ERRORS:
            self.state = State.UPDATE
            self._fail("too many bad commands", "-ERR Too many bad commands.")

    def _fail(self, message: str, reply: str) -> NoReturn:
        raise Pop3Error(message, reply=reply)

    @staticmethod
    def _error(text: bytes) -> bytes:
        return b"-ERR " + text + b"\r\n"

    def _command(self, line: bytes) -> Login | StartTLS | Retrieve | Update | None:
        if self._sasl:
            self._sasl = False
            return self._plain(line)
        verb, _, rest = line.partition(b" ")
        name = verb.upper().decode("ascii", "replace")
        args = rest.split(b" ") if rest else []
        if name not in _ALLOWED[self.state]:
            known = name in _ALLOWED[_AUTHORIZATION] | _ALLOWED[_TRANSACTION]
            self._fault(b"Command not allowed now." if known else b"Unknown command.")
            return None
        handler = getattr(self, f"_pop_{name.lower()}")
        return handler(args)  # type: ignore[no-any-return]

    def _ok(self, text: bytes = b"", body: bytes | None = None) -> None:
        self._out += b"+OK" + (b" " + text if text else b"") + b"\r\n"
        if body is not None:
            self._out += _dot_stuffed(body) + b".\r\n"

    def _pop_capa(self, args: list[bytes]) -> None:
        plain = self.tls or not self.stls
        lines = [b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING"]
        if plain and self.state is State.AUTHORIZATION:
            lines += [b"USER", b"SASL PLAIN"]
        if self.stls and self.state is State.AUTHORIZATION:
            lines.append(b"STLS")
        lines.append(b"IMPLEMENTATION netplay")
        self._ok(b"Capability list follows", b"".join(line + b"\r\n" for line in lines))

    def _plaintext_refused(self) -> bool:
        if self.stls and not self.tls:
            self._fault(
                b"[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
            )
            return True
        return False

    def _pop_user(self, args: list[bytes]) -> None:
        if self._plaintext_refused():
            return
        if len(args) != 1 or not args[0]:
            self._fault(b"USER takes one name.")
            return
        self._user = args[0]
        self._ok()

    def _pop_pass(self, args: list[bytes]) -> Login | None:
        if self._plaintext_refused():
            return None
        if self._user is None:
            self._fault(b"No user name given (USER first).")
            return None
        self._waiting = (Accepted, Rejected)
        return Login(user=self._user, password=b" ".join(args))  # spaces are the password's

    def _pop_auth(self, args: list[bytes]) -> Login | None:
        if not args or args[0].upper() != b"PLAIN" or len(args) > 2:
            self._fault(b"Unsupported authentication mechanism (PLAIN only).")
            return None
        if self._plaintext_refused():
            return None
        if len(args) == 1:
            self._out += b"+ \r\n"
            self._sasl = True
            return None
        return self._plain(args[1])

    def _plain(self, response: bytes) -> Login | None:
        if response == b"*":
            self._fault(b"Authentication aborted.")
            return None
        try:
            parts = base64.b64decode(response, validate=True).split(b"\0")
        except binascii.Error:
            parts = []
        if len(parts) != 3 or parts[0] not in (b"", parts[1]) or not parts[1]:
            self._fault(b"[AUTH] Invalid PLAIN response.")
            return None
        self._user = parts[1]
        self._waiting = (Accepted, Rejected)
        return Login(user=parts[1], password=parts[2])

    def _pop_stls(self, args: list[bytes]) -> StartTLS | None:
        if not self.stls:
            self._fault(b"TLS is already active." if self.tls else b"STLS is not offered.")
            return None
        self._ok(b"Begin TLS negotiation now.")
        return StartTLS()

    def _pop_quit(self, args: list[bytes]) -> Update | None:
        if self.state is State.AUTHORIZATION:
            self._ok(b"Logging out.")
            self.state = State.UPDATE
            return None
        self.state = State.UPDATE
        self._waiting = (Updated,)
        return Update(deleted=tuple(self._messages[i][0] for i in sorted(self._deleted)))

    def _number(self, arg: bytes) -> int | None:
        """The index of message ``arg`` (1-based on the wire), or None after -ERR."""
        if not arg.isdigit() or len(arg) > 9:
            self._fault(b"Invalid message number.")
            return None
        index = int(arg) - 1
        if not 0 <= index < len(self._messages):
            self._fault(b"No such message.")
            return None
        if index in self._deleted:
            self._fault(b"Message is deleted.")
            return None
        return index

    def _pop_stat(self, args: list[bytes]) -> None:
        live = [size for i, (_uid, size) in enumerate(self._messages) if i not in self._deleted]
        self._ok(f"{len(live)} {sum(live)}".encode())

    def _listing(self, args: list[bytes], column: int) -> None:
        def item(i: int) -> bytes:
            return f"{i + 1} {self._messages[i][column]}".encode()

        if args:
            index = self._number(args[0])
            if index is not None:
                self._ok(item(index))
            return
        live = [i for i in range(len(self._messages)) if i not in self._deleted]
        self._ok(b"", b"".join(item(i) + b"\r\n" for i in live))

    def _pop_list(self, args: list[bytes]) -> None:
        self._listing(args, 1)

    def _pop_uidl(self, args: list[bytes]) -> None:
        self._listing(args, 0)

    def _pop_retr(self, args: list[bytes]) -> Retrieve | None:
        if len(args) != 1:
            self._fault(b"RETR takes one number.")
            return None
        index = self._number(args[0])
        if index is None:
            return None
        self._waiting, self._top_lines = (Content,), None
        return Retrieve(uid=self._messages[index][0])

    def _pop_top(self, args: list[bytes]) -> Retrieve | None:
        if len(args) != 2 or not args[1].isdigit() or len(args[1]) > 9:
            self._fault(b"TOP takes a message number and a number of lines.")
            return None
        index = self._number(args[0])
        if index is None:
            return None
        self._waiting, self._top_lines = (Content,), int(args[1])
        return Retrieve(uid=self._messages[index][0], lines=int(args[1]))

    def _pop_dele(self, args: list[bytes]) -> None:
        if len(args) != 1:
            self._fault(b"DELE takes one number.")
            return
        index = self._number(args[0])
        if index is not None:
            self._deleted.add(index)
            self._ok(b"Marked to be deleted.")

    def _pop_rset(self, args: list[bytes]) -> None:
        self._deleted.clear()
        self._ok()

    def _pop_noop(self, args: list[bytes]) -> None:
        self._ok()


def _names(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def _dot_stuffed(data: bytes, body_lines: int | None = None) -> bytes:
    """A multi-line body as it goes on the wire (RFC 1939 3): each line ending in
    CRLF, a leading "." doubled; with ``body_lines``, the header and that many
    lines of the body (TOP)."""
    lines = data.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if body_lines is not None:
        try:
            blank = lines.index(b"")
        except ValueError:
            blank = len(lines)
        lines = lines[: blank + 1 + body_lines]
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)

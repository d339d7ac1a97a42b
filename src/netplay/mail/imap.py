"""What IMAP says about a message, from its bytes: ENVELOPE, BODYSTRUCTURE, BODY[section],
and whether it matches a SEARCH (RFC 3501 6.4.4, 6.4.5, 7.4.2).

Pure functions over the message as stored (CRLF line ends).  The MIME tree
is cut from the raw bytes (:class:`Part`), not rebuilt by the email
package, so that a section's bytes and sizes are exactly the stored ones;
the email package only reads header fields.  Header text in ENVELOPE and
BODYSTRUCTURE is given as it is on the wire (RFC 2047 words stay encoded,
as clients expect); SEARCH compares decoded text, case-insensitively.
"""

from __future__ import annotations

import datetime as dt
import email
import email.header
import email.utils
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from email.message import Message as EmailMessage
from typing import Any, TypeVar

from netplay.protocols.imap import astring, nstring

CRLF = b"\r\n"
_BOUNDARY_END = re.compile(rb"[ \t]*$")


class SearchError(ValueError):
    """A SEARCH (or a section, or a sequence set) that cannot be understood: BAD."""


# -- the MIME tree ---------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """A MIME entity: its header and body bytes, and its parts if multipart."""

    header: bytes  # with the blank line that ends it
    body: bytes

    @property
    def fields(self) -> EmailMessage:
        return email.message_from_bytes(self.header)

    @property
    def content_type(self) -> tuple[str, str]:
        fields = self.fields
        maintype, subtype = fields.get_content_maintype(), fields.get_content_subtype()
        return maintype.upper(), subtype.upper()

    def parts(self) -> list[Part]:
        """The parts of a multipart; of a message/rfc822, those of the message inside
        (RFC 3501 6.4.5: ``2.1`` is its first part, or its body if it has none)."""
        maintype, subtype = self.content_type
        if maintype == "MESSAGE" and subtype == "RFC822":
            inner = split(self.body)
            return inner.parts() or [inner]
        if maintype != "MULTIPART":
            return []
        boundary = self.fields.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            return []
        delimiter = b"--" + boundary.encode("ascii", "replace")
        found: list[Part] = []
        lines = self.body.split(CRLF)
        start: int | None = None
        offset = 0
        offsets = []
        for line in lines:
            offsets.append(offset)
            offset += len(line) + 2
        for i, line in enumerate(lines):
            if not line.startswith(delimiter):
                continue
            rest = line[len(delimiter) :]
            closing = rest.startswith(b"--")
            if not _BOUNDARY_END.fullmatch(rest[2:] if closing else rest):
                continue
            if start is not None:
                # the CRLF before a delimiter belongs to the delimiter (RFC 2046 5.1.1)
                found.append(split(self.body[start : max(start, offsets[i] - 2)]))
            if closing:
                return found
            start = offsets[i] + len(line) + 2
        if start is not None and start <= len(self.body):
            found.append(split(self.body[start:]))
        return found


def split(data: bytes) -> Part:
    """A message or body part: its header (up to and with the blank line), and body."""
    if data.startswith(CRLF):
        return Part(CRLF, data[2:])
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return Part(data if data.endswith(CRLF) else data + CRLF, b"")
    return Part(data[: end + 4], data[end + 4 :])


# -- ENVELOPE and BODYSTRUCTURE ---------------------------------------------------


def _raw(fields: EmailMessage, name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    return str(value).replace("\r", "").replace("\n", "")


def _addresses(fields: EmailMessage, name: str) -> bytes:
    value = _raw(fields, name)
    if not value:
        return b"NIL"
    items = []
    for display, address in email.utils.getaddresses([value]):
        if not address and not display:
            continue
        mailbox, _at, host = address.rpartition("@") if "@" in address else (address, "", "")
        items.append(
            b"("
            + b" ".join(
                (nstring(display or None), b"NIL", nstring(mailbox or None), nstring(host or None))
            )
            + b")"
        )
    return b"(" + b"".join(items) + b")" if items else b"NIL"


def envelope(part: Part) -> bytes:
    fields = part.fields
    sender = "Sender" if fields.get("Sender") else "From"
    reply_to = "Reply-To" if fields.get("Reply-To") else "From"
    items = [
        nstring(_raw(fields, "Date")),
        nstring(_raw(fields, "Subject")),
        _addresses(fields, "From"),
        _addresses(fields, sender),
        _addresses(fields, reply_to),
        _addresses(fields, "To"),
        _addresses(fields, "Cc"),
        _addresses(fields, "Bcc"),
        nstring(_raw(fields, "In-Reply-To")),
        nstring(_raw(fields, "Message-ID")),
    ]
    return b"(" + b" ".join(items) + b")"


def _params(fields: EmailMessage, header: str = "content-type", default: bytes = b"NIL") -> bytes:
    """A header's parameters, or ``default`` if it has none (text's is RFC 2045's
    charset, US-ASCII, as Dovecot says it)."""
    params = fields.get_params(header=header) or []
    pairs = [(k, v) for k, v in params[1:]]
    if not pairs:
        return default
    out = []
    for key, value in pairs:
        text = email.utils.collapse_rfc2231_value(value) if isinstance(value, tuple) else value
        out += [astring(key.upper()), astring(str(text))]
    return b"(" + b" ".join(out) + b")"


def _disposition(fields: EmailMessage) -> bytes:
    value = fields.get("Content-Disposition")
    if value is None:
        return b"NIL"
    kind = str(value).split(";", 1)[0].strip().upper()
    return b"(" + astring(kind) + b" " + _params(fields, "content-disposition") + b")"


def _lines(data: bytes) -> int:
    """A body's size in text lines, as Dovecot and Cyrus count them: its line ends
    (a part's last CRLF belongs to the boundary after it, RFC 2046 5.1.1)."""
    return data.count(b"\n")


def bodystructure(part: Part, extensible: bool = True) -> bytes:
    """BODYSTRUCTURE (with the extension data) or BODY (without)."""
    maintype, subtype = part.content_type
    fields = part.fields
    if maintype == "MULTIPART":
        children = b"".join(bodystructure(child, extensible) for child in part.parts())
        out = b"(" + (children or bodystructure(split(CRLF + CRLF), extensible))
        out += b" " + astring(subtype)
        if extensible:
            out += b" " + _params(fields) + b" " + _disposition(fields) + b" "
            out += nstring(_raw(fields, "Content-Language")) + b" "
            out += nstring(_raw(fields, "Content-Location"))
        return out + b")"
    encoding = (_raw(fields, "Content-Transfer-Encoding") or "7BIT").strip().upper()
    items = [
        astring(maintype),
        astring(subtype),
        _params(fields, default=b'("CHARSET" "US-ASCII")' if maintype == "TEXT" else b"NIL"),
        nstring(_raw(fields, "Content-ID")),
        nstring(_raw(fields, "Content-Description")),
        astring(encoding),
        str(len(part.body)).encode(),
    ]
    if maintype == "MESSAGE" and subtype == "RFC822":
        inner = split(part.body)
        items += [
            envelope(inner),
            bodystructure(inner, extensible),
            str(_lines(part.body)).encode(),
        ]
    elif maintype == "TEXT":
        items.append(str(_lines(part.body)).encode())
    if extensible:
        items += [
            nstring(_raw(fields, "Content-MD5")),
            _disposition(fields),
            nstring(_raw(fields, "Content-Language")),
            nstring(_raw(fields, "Content-Location")),
        ]
    return b"(" + b" ".join(items) + b")"


# -- BODY[section]<partial> --------------------------------------------------------

_SECTION = re.compile(
    r"^(?P<part>\d+(?:\.\d+)*)?\.?(?P<text>HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)?"
    r"(?: \((?P<fields>[^()]*)\))?$",
    re.IGNORECASE,
)


def _header_lines(header: bytes) -> Iterator[tuple[str, bytes]]:
    """(field name, the field's whole bytes with its folded lines) of a header."""
    current: list[bytes] = []
    for line in header.split(CRLF)[:-2] if header.endswith(CRLF + CRLF) else header.split(CRLF):
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
            continue
        if current:
            yield (
                current[0].split(b":", 1)[0].decode("ascii", "replace").strip().lower(),
                (CRLF.join(current) + CRLF),
            )
        current = [line] if line else []
    if current:
        yield (
            current[0].split(b":", 1)[0].decode("ascii", "replace").strip().lower(),
            (CRLF.join(current) + CRLF),
        )


def section(message: bytes, spec: str) -> bytes:
    """The bytes of ``BODY[spec]`` (without a partial); SearchError if spec is not one."""
    found = _SECTION.match(spec.strip())
    if found is None:
        raise SearchError(f"no section {spec!r}")
    part = split(message)
    numbers = found.group("part")
    text = (found.group("text") or "").upper()
    if numbers:
        for number in (int(n) for n in numbers.split(".")):
            children = part.parts()
            if not children and number == 1:
                continue  # a part that is not multipart is its own part 1
            if not 1 <= number <= len(children):
                return b""
            part = children[number - 1]
        if not text:
            return part.body
        if text == "MIME":
            return part.header
        if text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"):
            if part.content_type != ("MESSAGE", "RFC822"):
                return b""
            part = split(part.body)
    elif not text:
        return message
    if text == "TEXT":
        return part.body
    if text == "HEADER":
        return part.header
    if text == "MIME":
        raise SearchError("MIME is for a numbered part")
    names = {n.lower() for n in (found.group("fields") or "").split()}
    if not names:
        raise SearchError(f"{text} needs a list of field names")
    keep = text == "HEADER.FIELDS"
    return (
        b"".join(raw for name, raw in _header_lines(part.header) if (name in names) == keep) + CRLF
    )


# -- sequence sets ---------------------------------------------------------------------


def sequence_set(text: str, largest: int) -> set[int]:
    """The numbers of ``1:3,7,9:*`` where ``*`` is ``largest`` (message numbers or UIDs)."""
    found: set[int] = set()
    try:
        for item in text.split(","):
            low_text, _colon, high_text = item.partition(":")
            low = largest if low_text == "*" else int(low_text)
            high = low if not _colon else (largest if high_text == "*" else int(high_text))
            if low < 1 or high < 1:
                raise ValueError
            low, high = min(low, high), max(low, high)
            if high - low > 10_000_000:
                raise ValueError
            found.update(range(low, high + 1))
    except ValueError:
        raise SearchError(f"{text!r} is not a sequence set") from None
    return found


# -- SEARCH ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """What SEARCH may ask of a message."""

    number: int
    uid: int
    key: str  # what the message is known by across sessions (its Maildir base name)
    flags: frozenset[str]
    internaldate: dt.datetime
    size: int
    read: Callable[[], bytes]  # its bytes, read only if a key needs them
    keywords: frozenset[str] = frozenset()
    recent: bool = False  # \Recent in the session that searches


def _decoded(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return value


def _date(text: Any) -> dt.date:
    if not isinstance(text, str):
        raise SearchError("a date is d-Mon-yyyy")
    try:
        return dt.datetime.strptime(text, "%d-%b-%Y").date()
    except ValueError:
        raise SearchError(f"{text!r} is not a date (d-Mon-yyyy)") from None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    raise SearchError("a string is expected")


_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = {"BCC", "CC", "FROM", "SUBJECT", "TO"}


class Search:
    """A parsed SEARCH, matched against candidates one at a time."""

    def __init__(self, keys: Sequence[Any], largest: int, largest_uid: int) -> None:
        self.largest, self.largest_uid = largest, largest_uid
        self.keys = list(keys)
        if self.keys[:1] and isinstance(self.keys[0], str) and self.keys[0].upper() == "CHARSET":
            charset = _text(self.keys[1]).upper() if len(self.keys) > 1 else ""
            if charset not in ("UTF-8", "US-ASCII"):
                raise SearchError(f"[BADCHARSET (UTF-8 US-ASCII)] {charset} is not supported")
            self.keys = self.keys[2:]
        if not self.keys:
            raise SearchError("SEARCH needs a key")
        self._check = self._all(iter(self.keys))

    def matches(self, candidate: Candidate) -> bool:
        return self._check(candidate)

    Test = Callable[[Candidate], bool]

    def _all(self, keys: Iterator[Any]) -> Test:
        tests = []
        for key in keys:
            tests.append(self._one(key, keys))
        if not tests:
            raise SearchError("an empty list of keys")
        return lambda c: all(t(c) for t in tests)

    def _next(self, keys: Iterator[Any], what: str) -> Any:
        try:
            return next(keys)
        except StopIteration:
            raise SearchError(f"{what} needs an argument") from None

    def _one(self, key: Any, keys: Iterator[Any]) -> Test:
        if isinstance(key, list):
            return self._all(iter(key))
        if not isinstance(key, str):
            raise SearchError("a search key is an atom")
        name = key.upper()
        if name in _FLAG_KEYS:
            flag, wanted = _FLAG_KEYS[name]
            return lambda c: (flag in c.flags) == wanted
        if name == "ALL":
            return lambda c: True
        if name == "RECENT":
            return lambda c: c.recent
        if name == "NEW":
            return lambda c: c.recent and "\\Seen" not in c.flags
        if name == "OLD":
            return lambda c: not c.recent
        if name in ("KEYWORD", "UNKEYWORD"):
            keyword = _text(self._next(keys, name)).lower()  # keywords know no case here
            wanted = name == "KEYWORD"
            return lambda c: any(k.lower() == keyword for k in c.keywords) == wanted
        if name == "NOT":
            inner = self._one(self._next(keys, name), keys)
            return lambda c: not inner(c)
        if name == "OR":
            left = self._one(self._next(keys, name), keys)
            right = self._one(self._next(keys, name), keys)
            return lambda c: left(c) or right(c)
        if name in ("LARGER", "SMALLER"):
            size_text = self._next(keys, name)
            if not isinstance(size_text, str) or not size_text.isdigit():
                raise SearchError(f"{name} takes a number")
            size = int(size_text)
            if name == "LARGER":
                return lambda c: c.size > size
            return lambda c: c.size < size
        if name == "UID":
            wanted_uids = sequence_set(_text(self._next(keys, name)), self.largest_uid)
            return lambda c: c.uid in wanted_uids
        if name in ("BEFORE", "ON", "SINCE"):
            day = _date(self._next(keys, name))
            return _compare(name, day, lambda c: c.internaldate.date())
        if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            day = _date(self._next(keys, name))
            return _compare(name[4:], day, _sent)
        if name in _HEADER_KEYS:
            needle = _text(self._next(keys, name)).casefold()
            return lambda c: needle in _header(c, name)
        if name == "HEADER":
            field = _text(self._next(keys, name)).upper()
            needle = _text(self._next(keys, name)).casefold()
            return lambda c: _has_field(c, field) and needle in _header(c, field)
        if name in ("BODY", "TEXT"):
            needle = _text(self._next(keys, name)).casefold()
            whole = name == "TEXT"
            return lambda c: needle in _body_text(c, whole)
        if key[:1].isdigit() or key[:1] == "*":
            numbers = sequence_set(key, self.largest)
            return lambda c: c.number in numbers
        raise SearchError(f"unknown search key {key}")


def _compare(how: str, day: dt.date, get: Callable[[Candidate], dt.date | None]) -> Search.Test:
    def test(c: Candidate) -> bool:
        value = get(c)
        if value is None:
            return False
        if how == "BEFORE":
            return value < day
        if how == "ON":
            return value == day
        return value >= day

    return test


def _header_of(c: Candidate) -> bytes:
    return remember(c.key, "header", lambda: split(c.read()).header)


def _field(c: Candidate, field: str) -> str | None:
    """The field's values, decoded and joined (None if it has none)."""

    def make() -> str:
        values = email.message_from_bytes(_header_of(c)).get_all(field)
        return "\0" if values is None else " ".join(_decoded(str(v)) for v in values)

    text = remember(c.key, f"field:{field.lower()}", make)
    return None if text == "\0" else text


def _header(c: Candidate, field: str) -> str:
    return (_field(c, field) or "").casefold()


def _has_field(c: Candidate, field: str) -> bool:
    return _field(c, field) is not None


def _sent(c: Candidate) -> dt.date | None:
    value = _field(c, "Date")
    try:
        return email.utils.parsedate_to_datetime(value).date() if value else None
    except (TypeError, ValueError):
        return None


def _body_text(c: Candidate, whole: bool) -> str:
    def make() -> str:
        raw = c.read()
        parsed = email.message_from_bytes(raw)
        texts = []
        for piece in parsed.walk():
            if piece.is_multipart():
                continue
            payload = piece.get_payload(decode=True)
            if isinstance(payload, bytes):
                charset = piece.get_content_charset() or "utf-8"
                try:
                    texts.append(payload.decode(charset, "replace"))
                except LookupError:
                    texts.append(payload.decode("utf-8", "replace"))
        body = "\n".join(texts).casefold()
        if whole:
            body += "\n" + " ".join(_decoded(str(v)) for v in parsed.values()).casefold()
        return body

    return remember(c.key, "text" if whole else "body", make)


# -- what is known of a message, kept ---------------------------------------------------

T = TypeVar("T", bytes, str)
MEMORY_BYTES = 64 << 20  # the most the memo holds; the least recently used goes first
_memo: OrderedDict[tuple[str, str], Any] = OrderedDict()
_memo_bytes = 0
_memo_lock = threading.Lock()


def remember(key: str, what: str, make: Callable[[], T]) -> T:
    """``make()``, kept for the message ``key`` (its Maildir base name: a stored
    message's bytes never change) as Dovecot keeps headers in its index cache, so
    that every client's FETCH of headers and SEARCH does not parse them again."""
    global _memo_bytes
    with _memo_lock:
        found = _memo.get((key, what))
        if found is not None:
            _memo.move_to_end((key, what))
            return found  # type: ignore[no-any-return]
    value = make()
    with _memo_lock:
        if (key, what) not in _memo:
            _memo[(key, what)] = value
            _memo_bytes += len(value)
            while _memo_bytes > MEMORY_BYTES and _memo:
                _old, dropped = _memo.popitem(last=False)
                _memo_bytes -= len(dropped)
    return value

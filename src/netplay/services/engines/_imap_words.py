"""What the IMAP session's modules share: limits, capabilities, the errors of a command,
and flags as the client gives them and is told them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netplay.mail import Stored

IDLE_TIMEOUT_S = 1800.0  # RFC 3501 5.4: an autologout timer of at least 30 minutes
IDLE_POLL_S = 0.5  # how often an IDLE session looks for news
ERROR_SLEEP_S = 1.0
CHUNK = 65536
SEPARATOR = "."
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_SYSTEM_BY_NAME = {flag.upper(): flag for flag in SYSTEM_FLAGS}
CAPABILITIES = "IMAP4rev1 LITERAL+ SASL-IR UIDPLUS MOVE IDLE NAMESPACE ID CHILDREN UNSELECT"


class No(Exception):
    """The command failed: ``TAG NO text``."""


class Bad(Exception):
    """The command was wrong: ``TAG BAD text``."""


def text_of(value: Any, what: str = "a string") -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    raise Bad(f"{what} expected")


def mailbox_name(value: Any) -> str:
    name = text_of(value, "a mailbox name")
    if name.upper() == "INBOX":
        return "INBOX"
    if (
        not name
        or name.startswith(SEPARATOR)
        or name.endswith(SEPARATOR)
        or SEPARATOR * 2 in name
        or any(c in name for c in "/\\*%")
        or not name.isprintable()
        or len(name) > 255
    ):
        raise No(f"{name!r} is not a mailbox name here")
    return name


def parse_flags(values: Iterable[Any]) -> tuple[frozenset[str], frozenset[str]]:
    """The system flags (spelt as RFC 3501 does) and the keywords of a STORE's or an
    APPEND's flags.  As Dovecot answers: a flag that is no atom, or a system flag
    that is none (\\Recent is the server's to give), is BAD; a keyword that the
    store cannot keep is NO."""
    from netplay.mail import MAX_KEYWORD_LENGTH, is_keyword

    system, keywords = set(), set()
    for flag in values:
        if not isinstance(flag, str):
            raise Bad("Flags are atoms")
        if flag.startswith("\\"):
            if flag.upper() not in _SYSTEM_BY_NAME:
                raise Bad(f"Invalid system flag {flag}")
            system.add(_SYSTEM_BY_NAME[flag.upper()])
        elif is_keyword(flag):
            keywords.add(flag)
        else:
            raise No(f"Invalid keyword {flag}: at most {MAX_KEYWORD_LENGTH} characters of an atom")
    return frozenset(system), frozenset(keywords)


def flag_list(message: Stored, recent: bool) -> str:
    """``(FLAGS...)`` of a message, \\Recent if it is so in this session."""
    names = [*sorted(message.flags), *(["\\Recent"] if recent else []), *sorted(message.keywords)]
    return f"({' '.join(names)})"


def flags_lines(keywords: Iterable[str], readonly: bool, full: bool) -> list[str]:
    """The untagged FLAGS and PERMANENTFLAGS of a folder with these keywords (RFC 3501
    7.2.6, 7.1): a read-only session may change none, and \\* says that new keywords
    may be made, unless the folder has no letter left."""
    names = [*SYSTEM_FLAGS, *sorted(keywords)]
    permanent = [] if readonly else [*names, *([] if full else ["\\*"])]
    return [
        f"FLAGS ({' '.join(names)})",
        f"OK [PERMANENTFLAGS ({' '.join(permanent)})] Flags permitted.",
    ]

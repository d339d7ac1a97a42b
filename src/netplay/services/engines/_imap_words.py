"""What the IMAP session's modules share: limits, capabilities, and the errors of a command."""

from __future__ import annotations

from typing import Any

IDLE_TIMEOUT_S = 1800.0  # RFC 3501 5.4: an autologout timer of at least 30 minutes
IDLE_POLL_S = 0.5  # how often an IDLE session looks for news
ERROR_SLEEP_S = 1.0
CHUNK = 65536
SEPARATOR = "."
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
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

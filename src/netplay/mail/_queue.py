"""The outgoing queue of a mail host: messages for other domains, until they are delivered
or bounced.

Each queued message is two files in ``queue/`` of the host's data
directory: ``ID.eml`` (the message, as it will be sent) and ``ID.json``
(its envelope and delivery state: sender, recipients still to do, attempts,
when to try next, the last error).  Both are written the way a Maildir
delivery is (temporary name, fsync, rename, fsync of the directory), the
envelope last: it is what makes the message queued, so a crash before it
leaves at most a message file that no envelope names (removed at the next
start), never an envelope without its message.  SMTP says 250 only after
:meth:`Queue.add` has returned.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from netplay.mail._files import fsync_dir, replace

QUEUE_DIR = "queue"


@dataclass(frozen=True, slots=True, kw_only=True)
class Queued:
    """One queued message: its envelope and how its delivery is going."""

    id: str
    sender: str  # "" for a bounce: it is never bounced in turn
    recipients: tuple[str, ...]  # those not yet delivered
    arrived: float  # time.time() when it was queued
    attempts: int = 0
    next_try: float = 0.0  # time.time() of the next attempt
    last_error: str = ""


class Queue:
    """The queue directory of one mail host."""

    def __init__(self, data: Path) -> None:
        self.dir = data / QUEUE_DIR

    def add(self, message: bytes, sender: str, recipients: tuple[str, ...]) -> Queued:
        """Queue ``message`` durably; its entry."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = time.time()
        item = Queued(
            id=secrets.token_hex(5).upper(),
            sender=sender,
            recipients=recipients,
            arrived=now,
            next_try=now,
        )
        replace(self.dir / f"{item.id}.eml", message)
        replace(self.dir / f"{item.id}.json", json.dumps(dataclasses.asdict(item)).encode())
        fsync_dir(self.dir)
        return item

    def update(self, item: Queued) -> None:
        """Record how its delivery is going (fewer recipients, another attempt)."""
        replace(self.dir / f"{item.id}.json", json.dumps(dataclasses.asdict(item)).encode())

    def remove(self, item: Queued) -> None:
        """It is delivered or bounced: out of the queue (its envelope first)."""
        (self.dir / f"{item.id}.json").unlink(missing_ok=True)
        (self.dir / f"{item.id}.eml").unlink(missing_ok=True)
        fsync_dir(self.dir)

    def message(self, item: Queued) -> bytes:
        return (self.dir / f"{item.id}.eml").read_bytes()

    def pending(self) -> list[Queued]:
        """Every queued message, oldest first; message files that no envelope names
        (a crash between the two writes) are removed."""
        if not self.dir.is_dir():
            return []
        found = []
        names = set()
        for path in self.dir.glob("*.json"):
            try:
                data = json.loads(path.read_bytes())
                item = Queued(**{**data, "recipients": tuple(data["recipients"])})
            except (OSError, ValueError, TypeError, KeyError):
                continue  # not ours, or damaged: left for a person to look at
            if (self.dir / f"{item.id}.eml").is_file():
                found.append(item)
                names.add(item.id)
        for orphan in self.dir.glob("*.eml"):
            if orphan.stem not in names and not (self.dir / f"{orphan.stem}.json").exists():
                orphan.unlink(missing_ok=True)
        return sorted(found, key=lambda item: item.arrived)

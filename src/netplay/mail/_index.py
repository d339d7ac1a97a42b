"""The IMAP view of a Maildir folder: persistent UIDs, UIDVALIDITY, flags.

A folder's UIDs are kept in ``dovecot-uidlist`` in Dovecot's version 3
format, so that Dovecot, run on the same store, sees the same UIDs::

    3 V1764633600 N5
    1 :1764633600.M1P2Q1.mail,S=453
    2 :1764633601.M7P2Q2.mail,S=891

``V`` is the folder's UIDVALIDITY, ``N`` the next UID; each line gives a
message's UID and its file's base name (the name without ``:2,FLAGS``).
:meth:`Folder.sync` brings the list up to date under an exclusive lock (a
``flock`` on ``.index.lock``): files new since the last sync get the next
UIDs, in the order of their names (their delivery order), and are moved
from ``new/`` to ``cur/``; files that are gone leave the list.  UIDs only
grow and are never reused while UIDVALIDITY stands; a list that cannot be
read is started again with a new UIDVALIDITY (RFC 3501 2.3.1.1), which
tells clients to forget what they cached.

Flags are the Maildir ones, in the file name after ``:2,`` in ASCII order
(``D`` \\Draft, ``F`` \\Flagged, ``R`` \\Answered, ``S`` \\Seen, ``T``
\\Deleted); setting them renames the file, which is atomic.  Other sessions
find out on their next sync.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from netplay.mail._files import fsync_dir, locked, replace

UIDLIST = "dovecot-uidlist"
LOCK_FILE = ".index.lock"
INFO = ":2,"
RECENT_NS = 2_000_000_000
#: IMAP system flags and their Maildir letters
FLAG_LETTERS = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
LETTER_FLAGS = {letter: flag for flag, letter in FLAG_LETTERS.items()}


@dataclass(frozen=True, slots=True)
class Stored:
    """One message of a folder as a sync found it."""

    uid: int
    path: Path  # its file now (cur/NAME:2,FLAGS)
    flags: frozenset[str]

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def base_name(name: str) -> str:
    """A Maildir file name without its flags."""
    return name.partition(":")[0]


def flags_of(name: str) -> frozenset[str]:
    _base, sep, info = name.partition(INFO)
    if not sep:
        return frozenset()
    return frozenset(LETTER_FLAGS[c] for c in info if c in LETTER_FLAGS)


def with_flags(name: str, flags: Iterable[str]) -> str:
    """The file name that says ``flags`` (unknown ones, such as keywords, are not kept)."""
    letters = "".join(sorted(FLAG_LETTERS[f] for f in set(flags) if f in FLAG_LETTERS))
    return f"{base_name(name)}{INFO}{letters}"


class Folder:
    """One Maildir folder (the directory with cur/, new/, tmp/) and its UID list."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.uidvalidity = 0
        self.next_uid = 1
        self.messages: list[Stored] = []  # by UID, after the last sync
        self._synced: tuple[int, ...] = ()  # the folder's mtimes at the last sync

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the folder's list (across processes and sessions)."""
        with locked(self.path / LOCK_FILE):
            yield

    def sync(self) -> list[Stored]:
        """Bring the UID list up to date with the files; the messages, by UID."""
        with self.locked():
            return self.refresh()

    def changed(self) -> bool:
        """Whether anything may have changed since the last sync: a delivery, a rename
        (flags) or a removal changes the mtime of new/ or cur/, and another server's
        sync that of the UID list.  Two stat calls, where a sync lists the folder."""
        stamp = self._stamp()
        # an mtime is only as fine as the kernel's clock tick: a change in the tick of
        # the last sync would not show, so anything that recent is looked at again
        return stamp != self._synced or time.time_ns() - max(stamp) < RECENT_NS

    def _stamp(self) -> tuple[int, ...]:
        stamps = []
        for name in ("new", "cur", UIDLIST):
            try:
                stamps.append(os.stat(self.path / name).st_mtime_ns)
            except FileNotFoundError:
                stamps.append(0)
        return tuple(stamps)

    def refresh(self) -> list[Stored]:
        """:meth:`sync` for a caller that holds :meth:`locked` already (to find a
        message it has just added, before another session can change the list)."""
        stamp = self._stamp()  # before listing: a change during it is seen next time
        known = self._read()
        files: dict[str, Path] = {}
        for sub in ("cur", "new"):
            directory = self.path / sub
            with os.scandir(directory) as entries:
                for entry in entries:
                    if not entry.name.startswith("."):
                        files[base_name(entry.name)] = directory / entry.name
        by_uid = {uid: base for uid, base in known.items() if base in files}
        listed = set(by_uid.values())
        for base in sorted(b for b in files if b not in listed):
            by_uid[self.next_uid] = base
            self.next_uid += 1
        changed = by_uid != known
        self.messages = [
            Stored(uid, files[base], flags_of(files[base].name))
            for uid, base in sorted(by_uid.items())
        ]
        if changed:
            self._write()
            stamp = (*stamp[:2], self._stamp()[2])  # our own write is no news
        self._synced = stamp
        return self.messages

    def _read(self) -> dict[int, str]:
        """UID -> base name, from the list; a new UIDVALIDITY if it cannot be read."""
        try:
            lines = (self.path / UIDLIST).read_text().splitlines()
            version, *fields = lines[0].split()
            if version != "3":
                raise ValueError(f"version {version}")
            header = {f[0]: f[1:] for f in fields if f}
            self.uidvalidity, self.next_uid = int(header["V"]), int(header["N"])
            known = {}
            for line in lines[1:]:
                uid_text, _sep, rest = line.partition(" ")
                known[int(uid_text)] = rest.rpartition(":")[2]
            if known and max(known) >= self.next_uid:
                raise ValueError("a UID beyond the next one")
            return known
        except FileNotFoundError:
            self.uidvalidity = max(int(time.time()), self.uidvalidity + 1)
        except (OSError, ValueError, KeyError, IndexError):
            # damaged: start again, and say so with a UIDVALIDITY greater than the
            # lost one, which was the time of a write no later than the file's mtime
            written = int((self.path / UIDLIST).stat().st_mtime)
            self.uidvalidity = max(int(time.time()), written + 1, self.uidvalidity + 1)
        self.next_uid = 1
        return {}

    def _write(self) -> None:
        lines = [f"3 V{self.uidvalidity} N{self.next_uid}"]
        lines += [f"{m.uid} :{base_name(m.path.name)}" for m in self.messages]
        replace(self.path / UIDLIST, ("\n".join(lines) + "\n").encode())

    def locate(self, base: str) -> Path | None:
        """The file of the message whose base name is ``base`` now, wherever its
        flags have taken it (another session may have renamed it), or None."""
        for sub in ("cur", "new"):
            with os.scandir(self.path / sub) as entries:
                for entry in entries:
                    if base_name(entry.name) == base:
                        return self.path / sub / entry.name
        return None

    def set_flags(self, message: Stored, flags: Iterable[str]) -> Stored:
        """Give ``message`` exactly ``flags`` (a rename); the message as it is now.
        FileNotFoundError if it is gone (another session expunged it)."""
        wanted = frozenset(f for f in flags if f in FLAG_LETTERS)
        source: Path | None = message.path
        target = self.path / "cur" / with_flags(message.path.name, wanted)
        for _attempt in range(3):  # another session may rename it between our steps
            if source is None:
                break
            if source == target:
                return Stored(message.uid, target, wanted)
            try:
                os.rename(source, target)
                return Stored(message.uid, target, wanted)
            except FileNotFoundError:
                source = self.locate(base_name(message.path.name))
        raise FileNotFoundError(f"message {message.uid} is gone")

    def expunge(self, messages: Iterable[Stored]) -> None:
        """Remove these messages' files, wherever their flags have taken them
        (those gone already are no error)."""
        for message in messages:
            path: Path | None = message.path
            while path is not None:
                try:
                    path.unlink()
                    break
                except FileNotFoundError:
                    found = self.locate(base_name(message.path.name))
                    path = None if found == path else found
        for sub in ("cur", "new"):
            fsync_dir(self.path / sub)

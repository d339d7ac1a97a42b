"""The IMAP view of a Maildir folder: persistent UIDs, UIDVALIDITY, flags.

A folder's UIDs are kept in ``dovecot-uidlist`` in Dovecot's version 3
format, so that Dovecot, run on the same store, sees the same UIDs::

    3 V1764633600 N5
    1 :1764633600.M000001P2Q1.mail,S=453
    2 :1764633601.M000007P2Q2.mail,S=891

``V`` is the folder's UIDVALIDITY, ``N`` the next UID; each line gives a
message's UID and its file's base name (the name without ``:2,FLAGS``).
:meth:`Folder.sync` brings the list up to date under an exclusive lock (a
``flock`` on ``.index.lock``): files new since the last sync get the next
UIDs, in the order of their names (their delivery order); files that are
gone leave the list.  UIDs only grow and are never reused while UIDVALIDITY
stands; a list that cannot be read is started again with a new UIDVALIDITY
(RFC 3501 2.3.1.1), which tells clients to forget what they cached.

Flags are the Maildir ones, in the file name after ``:2,`` in ASCII order
(``D`` \\Draft, ``F`` \\Flagged, ``R`` \\Answered, ``S`` \\Seen, ``T``
\\Deleted); setting them renames the file, which is atomic.  Other sessions
find out on their next sync.  Keywords are the letters ``a`` to ``z``, named
as Dovecot names them in the folder's ``dovecot-keywords`` (a line ``N name``
for the letter ``a`` + N): so a folder holds at most 26, a new one is
written there (whole, under the lock, its mtime grown as Dovecot wants)
before any file name uses its letter, and a letter the file does not name is
kept in the file name as it is, never shown, never given to another keyword.

\\Recent is Dovecot's Maildir rule: a message in ``new/`` has not been seen
by any session; the read-write session whose sync moves it to ``cur/``
(``claim_recent``: the rename succeeds for one only) has it as \\Recent, a
session that does not move them (EXAMINE) has those it finds in ``new/``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from netplay.fabric import locked
from netplay.mail._files import fsync_dir, replace, write_new

UIDLIST = "dovecot-uidlist"
KEYWORDS = "dovecot-keywords"
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
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"
MAX_KEYWORDS = len(KEYWORD_LETTERS)
MAX_KEYWORD_LENGTH = 50  # Dovecot's mail_max_keyword_length
# an IMAP atom (RFC 3501 flag-keyword): no atom-specials, no 8-bit
_KEYWORD = re.compile(r"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+")


class TooManyKeywords(Exception):
    """A keyword new to a folder that has no letter left for it."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One message of a folder as a sync found it."""

    uid: int
    path: Path  # its file now (cur/NAME:2,FLAGS)
    flags: frozenset[str]  # its system flags
    keywords: frozenset[str] = frozenset()  # as the folder's dovecot-keywords spells them

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def base_name(name: str) -> str:
    """A Maildir file name without its flags."""
    return name.partition(":")[0]


def _letters(name: str) -> tuple[str, str]:
    """The flag letters of a file name, and what follows them after a second ``,``
    (another set of flags, which Dovecot keeps as it is)."""
    _base, sep, info = name.partition(INFO)
    if not sep:
        return "", ""
    letters, comma, rest = info.partition(",")
    return letters, comma + rest


def flags_of(name: str) -> frozenset[str]:
    return frozenset(LETTER_FLAGS[c] for c in _letters(name)[0] if c in LETTER_FLAGS)


def with_letters(name: str, letters: Iterable[str]) -> str:
    """The file name that says ``letters`` (in ASCII order, as Maildir wants)."""
    return f"{base_name(name)}{INFO}{''.join(sorted(set(letters)))}{_letters(name)[1]}"


def is_keyword(name: str) -> bool:
    """Whether ``name`` can be a keyword: an atom of at most MAX_KEYWORD_LENGTH."""
    return len(name) <= MAX_KEYWORD_LENGTH and _KEYWORD.fullmatch(name) is not None


def read_keywords(folder: Path) -> dict[str, str]:
    """Letter -> keyword, from the folder's dovecot-keywords.  Lines that say none
    (a number beyond 25, a name that is no IMAP atom, a damaged file) are passed
    over, as Dovecot passes them over: their letters stay unnamed."""
    try:
        text = (folder / KEYWORDS).read_text("utf-8", "replace")
    except FileNotFoundError:
        return {}
    named: dict[str, str] = {}
    for line in text.splitlines():
        number, _sep, name = line.partition(" ")
        if number.isascii() and number.isdigit() and int(number) < MAX_KEYWORDS:
            if is_keyword(name):
                named[KEYWORD_LETTERS[int(number)]] = name
    return named


class Folder:
    """One Maildir folder (the directory with cur/, new/, tmp/) and its UID list,
    as one session sees it: with ``claim_recent`` (a read-write session) its syncs
    move what is in new/ to cur/, and what they moved is that session's \\Recent."""

    def __init__(self, path: Path, *, claim_recent: bool = False) -> None:
        self.path = path
        self.claim_recent = claim_recent
        self.uidvalidity = 0
        self.next_uid = 1
        self.messages: list[Stored] = []  # by UID, after the last sync
        self.keywords: dict[str, str] = {}  # letter -> keyword, after the last sync
        self.recent: set[int] = set()  # the UIDs that are \Recent for this session
        self._synced: tuple[int, ...] = ()  # the folder's mtimes at the last sync

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the folder's lists, UIDs and keywords (across processes
        and sessions)."""
        with locked(self.path / LOCK_FILE):
            yield

    def sync(self) -> list[Stored]:
        """Bring the UID list up to date with the files; the messages, by UID."""
        with self.locked():
            return self.refresh()

    def changed(self) -> bool:
        """Whether anything may have changed since the last sync: a delivery, a rename
        (flags) or a removal changes the mtime of new/ or cur/, and another server's
        sync that of the UID list or the keywords.  Four stat calls, where a sync
        lists the folder."""
        stamp = self._stamp()
        # an mtime is only as fine as the kernel's clock tick: a change in the tick of
        # the last sync would not show, so anything that recent is looked at again
        return stamp != self._synced or time.time_ns() - max(stamp) < RECENT_NS

    def _stamp(self) -> tuple[int, ...]:
        stamps = []
        for name in ("new", "cur", UIDLIST, KEYWORDS):
            try:
                stamps.append(os.stat(self.path / name).st_mtime_ns)
            except FileNotFoundError:
                stamps.append(0)
        return tuple(stamps)

    def refresh(self) -> list[Stored]:
        """:meth:`sync` for a caller that holds :meth:`locked` already (to find a
        message it has just added, before another session can change the list)."""
        stamp = self._stamp()  # before listing: a change during it is seen next time
        self.keywords = read_keywords(self.path)
        known = self._read()
        files: dict[str, Path] = {}
        for sub in ("cur", "new"):
            directory = self.path / sub
            with os.scandir(directory) as entries:
                for entry in entries:
                    if not entry.name.startswith("."):
                        files[base_name(entry.name)] = directory / entry.name
        if self.claim_recent:
            fresh = self._claim(files)
        else:
            fresh = {base for base, path in files.items() if path.parent.name == "new"}
        by_uid = {uid: base for uid, base in known.items() if base in files}
        listed = set(by_uid.values())
        for base in sorted(b for b in files if b not in listed):
            by_uid[self.next_uid] = base
            self.next_uid += 1
        changed = by_uid != known
        self.messages = [self._stored(uid, files[base]) for uid, base in sorted(by_uid.items())]
        self.recent.update(uid for uid, base in by_uid.items() if base in fresh)
        if changed:
            self._write()
            written = self._stamp()[2]  # our own write is no news
            stamp = (*stamp[:2], written, *stamp[3:])
        self._synced = stamp
        return self.messages

    def _claim(self, files: dict[str, Path]) -> set[str]:
        """Move the messages in new/ to cur/ (``files`` says where they are now); the
        base names of those this session moved: no other session's rename of one
        can succeed after ours."""
        claimed = set()
        for base, path in list(files.items()):
            if path.parent.name != "new":
                continue
            target = self.path / "cur" / (path.name if ":" in path.name else path.name + INFO)
            try:
                os.rename(path, target)
            except FileNotFoundError:  # another session moved it first, or it is gone
                found = self.locate(base)
                if found is None:
                    del files[base]
                else:
                    files[base] = found
                continue
            files[base] = target
            claimed.add(base)
        return claimed

    def _stored(self, uid: int, path: Path) -> Stored:
        letters = _letters(path.name)[0]
        keywords = frozenset(self.keywords[c] for c in letters if c in self.keywords)
        return Stored(uid, path, flags_of(path.name), keywords)

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

    # -- keywords ----------------------------------------------------------------------

    def full(self) -> bool:
        """Whether no keyword new to the folder can be added (PERMANENTFLAGS without \\*)."""
        return len(self.keywords) >= MAX_KEYWORDS

    def letters(self, flags: Iterable[str], keywords: Iterable[str]) -> str:
        """The letters that say ``flags`` (system flags; others are not kept) and
        ``keywords`` here, keywords new to the folder named first (TooManyKeywords
        if there is no letter left for one: then none is added)."""
        system = {FLAG_LETTERS[f] for f in flags if f in FLAG_LETTERS}
        return "".join(sorted(system | self._keyword_letters(keywords)))

    def _keyword_letters(self, keywords: Iterable[str]) -> set[str]:
        # keywords are told apart without regard to case, as Dovecot's Maildir does
        wanted = {name.lower(): name for name in keywords}
        if not wanted.keys() <= self._by_name().keys():
            with self.locked():
                self.keywords = read_keywords(self.path)  # another session may have named some
                missing = [name for low, name in wanted.items() if low not in self._by_name()]
                if missing:
                    self._name(sorted(missing))
        by_name = self._by_name()
        return {by_name[low] for low in wanted}

    def _by_name(self) -> dict[str, str]:
        """Lower-cased keyword -> its letter (the first, should two letters have it)."""
        found: dict[str, str] = {}
        for letter, name in sorted(self.keywords.items()):
            found.setdefault(name.lower(), letter)
        return found

    def _name(self, names: list[str]) -> None:
        """Give each of ``names`` a free letter and write dovecot-keywords (locked)."""
        used = set(self.keywords)
        for sub in ("cur", "new"):  # a letter no line names may be in file names still
            with os.scandir(self.path / sub) as entries:
                for entry in entries:
                    used.update(_letters(entry.name)[0])
        free = [c for c in KEYWORD_LETTERS if c not in used]
        if len(free) < len(names):
            raise TooManyKeywords(
                f"a folder holds at most {MAX_KEYWORDS} keywords (Maildir's letters a-z)"
            )
        self.keywords.update(zip(free, names, strict=False))
        self.write_keywords()

    def write_keywords(self) -> None:
        """Write :attr:`keywords` as dovecot-keywords, whole (the caller holds the lock)."""
        path = self.path / KEYWORDS
        text = "".join(
            f"{KEYWORD_LETTERS.index(letter)} {name}\n"
            for letter, name in sorted(self.keywords.items())
        )
        temporary = path.with_name(f".{KEYWORDS}.tmp")
        temporary.unlink(missing_ok=True)  # left by a crash
        write_new(temporary, text.encode())
        try:
            before = int(os.stat(path).st_mtime)
        except FileNotFoundError:
            before = -1
        # Dovecot reads the file again only if its mtime, in seconds, is not the one
        # it read: a second write within the same second must still change it
        if int(os.stat(temporary).st_mtime) <= before:
            os.utime(temporary, (time.time(), before + 1))
        os.replace(temporary, path)
        fsync_dir(self.path)

    # -- messages ----------------------------------------------------------------------

    def locate(self, base: str) -> Path | None:
        """The file of the message whose base name is ``base`` now, wherever its
        flags have taken it (another session may have renamed it), or None."""
        for sub in ("cur", "new"):
            with os.scandir(self.path / sub) as entries:
                for entry in entries:
                    if base_name(entry.name) == base:
                        return self.path / sub / entry.name
        return None

    def set_flags(
        self, message: Stored, flags: Iterable[str], keywords: Iterable[str] | None = None
    ) -> Stored:
        """Give ``message`` exactly ``flags`` (system flags; others are not kept) and
        ``keywords`` (None: those it has) by a rename; the message as it is now.
        Letters no keyword of the folder names stay as they are.  FileNotFoundError
        if it is gone (another session expunged it); TooManyKeywords."""
        wanted = self.letters(flags, message.keywords if keywords is None else keywords)
        source: Path | None = message.path
        for _attempt in range(3):  # another session may rename it between our steps
            if source is None:
                break
            kept = [
                c
                for c in _letters(source.name)[0]
                if c not in LETTER_FLAGS and c not in self.keywords
            ]
            target = self.path / "cur" / with_letters(source.name, [*wanted, *kept])
            if source != target:
                try:
                    os.rename(source, target)
                except FileNotFoundError:
                    source = self.locate(base_name(message.path.name))
                    continue
            return self._stored(message.uid, target)
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

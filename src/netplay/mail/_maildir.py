"""Each user's mail as a Maildir (INBOX, and folders as Maildir++ ``.Name``).

A message is delivered the way qmail and Dovecot's LDA do it, so that a
crash at any moment loses nothing that was acknowledged and shows nothing
half-written: it is written under ``tmp/``, fsynced, renamed into ``new/``,
and ``new/`` is fsynced, before :meth:`Maildir.deliver` returns (and only
then does SMTP say 250).  A file's name is unique to this delivery
(``TIME.M<usec>P<pid>Q<count>.HOST,S=SIZE``, Dovecot's form with the
microseconds in six digits, ``S=`` being its size) and its flags follow
``:2,``: in ``cur/`` once a client has seen it, in ``new/`` already if
IMAP's APPEND or COPY gave it some.  A reader
lists ``new/`` and ``cur/`` and never ``tmp/``.

The layout, under the host's data directory::

    mail/brandon/            INBOX: cur/ new/ tmp/
    mail/brandon/.Sent/      the folder Sent
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from netplay.fabric import locked
from netplay.mail._files import fsync_dir, write_new
from netplay.mail._index import INFO, Folder, read_keywords
from netplay.topology import Topology, User

MAIL_DIR = "mail"
LOCK_FILE = ".lock"
SUBDIRS = ("cur", "new", "tmp")
INBOX = "INBOX"
SEPARATOR = "."  # Maildir++: folder a.b is .a.b

_deliveries = itertools.count(1)


def _unique(size: int) -> str:
    now = time.time()
    seconds, micro = int(now), int((now % 1) * 1_000_000)
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    # six digits: new files get their UIDs in the order of their names
    # (netplay's index and Dovecot alike), and M99999 sorts after M100000
    return f"{seconds}.M{micro:06d}P{os.getpid()}Q{next(_deliveries)}.{host},S={size}"


class Maildir:
    """One user's mail: INBOX at ``root``, each folder in ``root/.Name``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, name: str) -> Path:
        """The directory of folder ``name`` (INBOX, in any case, is the root)."""
        if name.upper() == INBOX:
            return self.root
        return self.root / f"{SEPARATOR}{name}"

    def index(self, name: str = INBOX) -> Folder:
        """Folder ``name`` as IMAP sees it: UIDs and flags (:mod:`netplay.mail._index`)."""
        return Folder(self.folder(name))

    def folders(self) -> list[str]:
        """INBOX and every folder, INBOX first."""
        found = [INBOX]
        if self.root.is_dir():
            for entry in sorted(self.root.iterdir()):
                if entry.name.startswith(SEPARATOR) and (entry / "cur").is_dir():
                    found.append(entry.name[1:])
        return found

    def make(self, name: str = INBOX) -> bool:
        """Make folder ``name`` (and the root) if missing; True if it was made."""
        path = self.folder(name)
        if (path / "cur").is_dir():
            return False
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.mkdir(exist_ok=True, mode=0o700)
        for sub in SUBDIRS:
            (path / sub).mkdir(exist_ok=True, mode=0o700)
        if name.upper() != INBOX:
            (path / "maildirfolder").touch()  # Maildir++: this is a folder, not a root
        fsync_dir(path)
        fsync_dir(path.parent)
        return True

    def deliver(
        self, message: bytes, folder: str = INBOX, *, letters: str = "", when: float | None = None
    ) -> str:
        """Write ``message`` durably into ``folder``'s ``new/``, with the flag
        ``letters`` (:meth:`Folder.letters`: an APPEND's or a COPY's flags, in new/
        so that the message is \\Recent all the same) and the mtime ``when`` (its
        IMAP INTERNALDATE); its base name (its file's name without the flags)."""
        path = self.folder(folder)
        name = _unique(len(message))
        temporary = path / "tmp" / name
        write_new(temporary, message)
        if when is not None:
            os.utime(temporary, (when, when))
        os.rename(temporary, path / "new" / (f"{name}{INFO}{letters}" if letters else name))
        fsync_dir(path / "new")
        return name

    def rename_inbox(self, name: str) -> None:
        """RENAME INBOX (RFC 3501 6.3.5): make folder ``name`` and move every message
        of INBOX into it, each in new/ or cur/ as it was (its flags and \\Recent go
        with it) and INBOX's keywords with them (the letters in the file names are to
        mean the same there).  INBOX is left empty, its folders where they are.
        FileExistsError if folder ``name`` exists."""
        if not self.make(name):
            raise FileExistsError(name)
        inbox, target = self.index(), self.index(name)
        with inbox.locked():
            with target.locked():
                target.keywords = read_keywords(inbox.path)
                if target.keywords:
                    target.write_keywords()
            for _attempt in range(3):  # a message renamed (flags) as we go: once more
                missed = False
                for sub in ("new", "cur"):
                    with os.scandir(inbox.path / sub) as entries:
                        for entry in entries:
                            if entry.name.startswith("."):
                                continue
                            try:
                                os.rename(entry.path, target.path / sub / entry.name)
                            except FileNotFoundError:
                                missed = True
                if not missed:
                    break
            for folder in (inbox, target):
                for sub in ("new", "cur"):
                    fsync_dir(folder.path / sub)

    def messages(self, folder: str = INBOX) -> Iterator[Path]:
        """The files of ``folder``'s messages (new and seen), oldest name first."""
        path = self.folder(folder)
        for sub in ("new", "cur"):
            directory = path / sub
            if directory.is_dir():
                yield from sorted(directory.iterdir())


class MailStore:
    """Every user's Maildir on one host: ``DATA/mail/USER/``."""

    def __init__(self, data: Path) -> None:
        self.dir = data / MAIL_DIR

    @classmethod
    def open(cls, data: Path, topology: Topology, host: str) -> MailStore:
        """The store of mail host ``host``, whose data directory is ``data``: every user of
        ``topology`` with their INBOX and folders, and in a new store the demo
        user's sample messages (:func:`~netplay.mail.sample_messages`)."""
        from netplay.mail._sample import sample_messages
        from netplay.pki import DEMO_USER

        store = cls(data)
        domain = topology.domain or topology.fqdn(host)
        store.ensure(topology.users, {DEMO_USER: sample_messages(DEMO_USER, domain)})
        return store

    def of(self, user: str) -> Maildir:
        return Maildir(self.dir / user)

    def ensure(self, users: Iterable[User], samples: dict[str, list[bytes]]) -> None:
        """Give each user an INBOX and their folders; a user whose store is new
        gets ``samples[user]``, if any, in INBOX."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with locked(self.dir / LOCK_FILE):  # a host's mail services start at once
            self._ensure(users, samples)

    def _ensure(self, users: Iterable[User], samples: dict[str, list[bytes]]) -> None:
        for user in users:
            maildir = self.of(user.name)
            new = maildir.make()
            for folder in user.mailboxes:
                maildir.make(folder)
            if new:
                for message in samples.get(user.name, ()):
                    maildir.deliver(message)

"""What the engines that run a system daemon share: whether this process is
in a rootless playground's user namespace; and for those over a mail host's
store (Dovecot for ``pop3`` and ``imap``, Postfix for ``smtp``): the user
the store belongs to while they run, whether this process may run them at
all, and the users' passwords as Dovecot's passwd-file has them.

Neither daemon opens a mailbox as root: their delivery and mail processes
run as Debian's user ``mail``, to whom the store is given when one starts
(netplay, as root, writes its own files owned like their folder, so the
builtin engines go on sharing it).  A rootless playground maps a single
user, so these engines cannot run there.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
from collections.abc import Iterable
from pathlib import Path

from netplay.topology import User

MAIL_USER = "mail"  # Debian's; Dovecot and Postfix's virtual refuse root
AUTH_USER = "dovecot"  # Dovecot's auth process reads the password file
PBKDF2_ROUNDS = 50_000


def needs_root(engine: str, daemon: str, instead: str) -> str | None:
    """Why ``engine`` (Debian's ``daemon``) cannot run as this process (one
    sentence, naming the engine to use ``instead``), or None if it can.

    The daemons become other users as the machine's root and check that
    their files are root's; a rootless playground's root is the user who
    made it, even where subordinate ids give it other users."""
    if os.geteuid() == 0 and not _in_user_namespace():
        return None
    return (
        f"the {engine} engine needs netplay run as root: Debian's {daemon} runs as the "
        f"machine's root, which a rootless playground's root is not; run netplay as root "
        f'or use engine = "{instead}"'
    )


def _in_user_namespace() -> bool:
    """Whether this process's root is not the machine's (its uid 0 is another's)."""
    try:
        return Path("/proc/self/uid_map").read_text().split()[:2] != ["0", "0"]
    except OSError:
        return False


def mail_user() -> pwd.struct_passwd:
    return pwd.getpwnam(MAIL_USER)


def give(path: Path) -> None:
    """``path`` and everything under it to the mail user (what is so already is left)."""
    user = mail_user()
    for entry in [path, *path.rglob("*")]:
        found = entry.lstat()
        if (found.st_uid, found.st_gid) != (user.pw_uid, user.pw_gid):
            os.lchown(entry, user.pw_uid, user.pw_gid)


def _pbkdf2(password: str) -> str:
    """Dovecot's {PBKDF2} scheme: PBKDF2-HMAC-SHA1 of a salt written as text."""
    salt = secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha1", password.encode(), salt.encode(), PBKDF2_ROUNDS)
    return f"{{PBKDF2}}$1${salt}${PBKDF2_ROUNDS}${digest.hex()}"


def write_passwd(path: Path, users: Iterable[User]) -> None:
    """The users who have a password, hashed with PBKDF2 (Dovecot cannot check
    netplay's scrypt hashes), as a passwd-file Dovecot's auth process can read."""
    auth = pwd.getpwnam(AUTH_USER)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with open(fd, "w") as out:
        os.fchown(fd, 0, auth.pw_gid)
        os.fchmod(fd, 0o640)  # a file of an older run may have had another mode
        for user in users:
            if user.password is not None:
                out.write(f"{user.name}:{_pbkdf2(user.password)}\n")

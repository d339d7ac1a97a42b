"""Salted scrypt hashes of the users' passwords, kept in a host's data directory.

A hash is written as ``$scrypt$ln=14,r=8,p=1$SALT$HASH`` (base64 without
padding, as passlib writes it), one per user, in ``accounts.json`` in the
host's data directory.  :meth:`Accounts.ensure` is called by each service
that logs users in when it starts: it keeps a stored hash whose password
has not changed (so the file changes only when the topology's users do),
and hashes the rest, under a lock, since a host's services start at once.
Within a process, a password is hashed once and a stored hash checked
once: ``up`` ensures every host's accounts before it forks the services'
runners (:meth:`Engine.preload <netplay.services.Engine.preload>`), so
that they find the answers in the memory they inherit, and the hosts share
one hash of each password, checked once per ``up`` rather than once a
service (a fifth of a second for the book's fifteen that log users in).

Checking a password costs one scrypt (about 40 ms here, 16 MiB), also for
a user who does not exist, so that the time of an answer does not tell
which names exist; the hashes are compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from netplay.fabric import locked
from netplay.topology import User

ACCOUNTS_FILE = "accounts.json"
LOCK_FILE = ".accounts.lock"
SCHEME = "scrypt"
LOG2_N, R, P = 14, 8, 1  # 16 MiB and about 40 ms a hash
SALT_BYTES = 16
HASH_BYTES = 32
MAX_COST = 1 << 26  # the most memory (bytes) a stored hash may make us spend


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int, size: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=1 << log2_n, r=r, p=p, dklen=size, maxmem=2 * MAX_COST
    )


def hash_password(password: str) -> str:
    """A new salted hash of ``password``."""
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(password, salt, LOG2_N, R, P, HASH_BYTES)
    return f"${SCHEME}$ln={LOG2_N},r={R},p={P}${_b64(salt)}${_b64(digest)}"


def verify(stored: str, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (False for a
    hash that cannot be read)."""
    try:
        _empty, scheme, params, salt_text, digest_text = stored.split("$")
        values = dict(part.split("=", 1) for part in params.split(","))
        log2_n, r, p = int(values["ln"]), int(values["r"]), int(values["p"])
        salt, digest = _unb64(salt_text), _unb64(digest_text)
    except (ValueError, KeyError):
        return False
    if scheme != SCHEME or not 1 <= log2_n <= 20 or 128 * r * (1 << log2_n) * p > MAX_COST:
        return False
    return hmac.compare_digest(_scrypt(password, salt, log2_n, r, p, len(digest)), digest)


_made: dict[str, str] = {}  # password -> the hash this process made of it
_checked: dict[tuple[str, str], bool] = {}  # (stored hash, password) -> whether it is its


def _hash_once(password: str) -> str:
    if password not in _made:
        _made[password] = hash_password(password)
        _checked[_made[password], password] = True  # the next host's file has it
    return _made[password]


def _verified_once(stored: str, password: str) -> bool:
    if (stored, password) not in _checked:
        _checked[stored, password] = verify(stored, password)
    return _checked[stored, password]


@functools.cache
def _nobody() -> str:
    """What an unknown user's password is checked against: the same work as a real check."""
    return hash_password(os.urandom(16).hex())


class Accounts:
    """The users who may log in to a host's services, by name, with their hashes."""

    def __init__(self, hashes: Mapping[str, str]) -> None:
        self._hashes = dict(hashes)

    def __contains__(self, name: object) -> bool:
        return name in self._hashes

    def __iter__(self) -> Iterator[str]:
        return iter(self._hashes)

    def check(self, name: str, password: str) -> bool:
        """Whether ``name`` exists and ``password`` is theirs; as slow for a
        name that does not exist."""
        stored = self._hashes.get(name)
        good = verify(stored or _nobody(), password)
        return good and stored is not None

    @classmethod
    def ensure(cls, directory: Path, users: Iterable[User]) -> Accounts:
        """The accounts of ``users`` that have a password, their hashes kept in
        ``directory``: stored ones reused while their password is the same."""
        path = directory / ACCOUNTS_FILE
        with locked(directory / LOCK_FILE):
            try:
                stored = json.loads(path.read_text())
                if not isinstance(stored, dict):
                    stored = {}
            except (OSError, ValueError):
                stored = {}
            hashes = {}
            for user in users:
                if user.password is None:
                    continue
                old = stored.get(user.name)
                if isinstance(old, str) and _verified_once(old, user.password):
                    hashes[user.name] = old
                else:
                    hashes[user.name] = _hash_once(user.password)
            if hashes != stored:
                temporary = path.with_name(f".{path.name}.tmp")
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with open(fd, "w") as out:
                    json.dump(hashes, out, indent=1)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, path)
        return cls(hashes)

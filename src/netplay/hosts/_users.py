"""The topology's users as real accounts of each host.

Each host gets, in its own /etc (the upper layer of its overlay, see
:mod:`netplay.hosts._filesystem`), a passwd, group, shadow and gshadow
that are the machine's files the first time, with the topology's users
added: a user of their own with a group of the same name and number (the
first number from 1000 that neither file uses), a home directory made
from /etc/skel with the user's public keys in ``~/.ssh/authorized_keys``,
and bash as the shell.  So inside a host ``id brandon``, ``ls -l ~brandon``
and ``su`` behave as on a real machine, and nothing of it is on the
machine: its own /etc and /home are only read.

From then on the files are the host's own (a user added in it stays), and
each ``up`` only makes sure the topology's users are in them: a missing
account is added again, and a password is set to the topology's unless
the one in /etc/shadow is already it; and the machine's accounts the host
lacks are added (a package installed on the machine since then, such as
openssh-server, made a system user its daemon needs in every host).  A
user the machine has too keeps the machine's entry and gets the
topology's password.

Passwords in /etc/shadow are yescrypt hashes (``$y$``, Debian's default),
made by the system's libcrypt, which is what ``su``, ``login`` and sshd
check them with.  One hash serves every host of an ``up``.

Rootless, the playground's user namespace maps the user's subordinate ids
where the system gives it some (:func:`netplay.fabric.subordinate_ids`),
and all of this holds; otherwise it maps one user only (the one running
netplay, who is root in it): files cannot be given to another user, so a
home directory belongs to root there, and a program cannot become the
user (docs/topology.md, Users, says what differs).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from netplay.errors import NetplayError
from netplay.hosts._filesystem import KEPT
from netplay.topology import User

MACHINE_ETC = Path("/etc")
SKELETON = Path("/etc/skel")
SHELL = "/bin/bash"
FIRST_ID, LAST_ID = 1000, 59999  # Debian's range for ordinary users (adduser.conf)
HOME_MODE = 0o700  # Debian 12's adduser (DIR_MODE)


@functools.cache
def _libcrypt() -> ctypes.CDLL:
    # by its soname first, as the dynamic linker finds it: ctypes.util.find_library
    # runs ldconfig (5 ms, on the way to every host's accounts)
    name = "libcrypt.so.1"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        name = ctypes.util.find_library("crypt") or name
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError as exc:
            raise NetplayError(
                f"the system's libcrypt ({name}) cannot be loaded: {exc}",
                hint="install it (apt-get install libcrypt1)",
            ) from exc
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt_r.restype = ctypes.c_char_p
    lib.crypt_r.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    return lib


def _crypt(password: str, setting: bytes) -> str | None:
    """crypt(3) of ``password`` with ``setting`` (a salt, or a whole hash); None if refused."""
    data = ctypes.create_string_buffer(32768)  # struct crypt_data: 32 KiB in libxcrypt
    result: bytes | None = _libcrypt().crypt_r(password.encode(), setting, data)
    if not result or result.startswith(b"*"):
        return None
    return result.decode("ascii")


def shadow_hash(password: str) -> str:
    """A new yescrypt hash of ``password``, as /etc/shadow holds it."""
    setting = _libcrypt().crypt_gensalt(b"$y$", 0, None, 0)
    made = _crypt(password, setting) if setting else None
    if made is None:
        raise NetplayError("the system's libcrypt cannot make a yescrypt hash")
    return made


@functools.cache
def _is_hash_of(stored: str, password: str) -> bool:
    return _crypt(password, stored.encode()) == stored


def _rows(path: Path) -> list[list[str]] | None:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except (FileNotFoundError, PermissionError):  # rootless: /etc/shadow cannot be read
        return None
    return [line.split(":") for line in text.splitlines() if line]


def _table(etc: Path, name: str) -> list[list[str]]:
    """The lines of a colon-separated file of /etc (passwd, group, ...): the
    host's, with the machine's entries it lacks added (a package installed
    on the machine since adds its system user to the hosts too), else the
    machine's."""
    machine = _rows(MACHINE_ETC / name) or []
    own = _rows(etc / name)
    if own is None:
        return machine
    names = {row[0] for row in own}
    numbers = {row[2] for row in own if len(row) > 2 and name in ("passwd", "group")}
    for row in machine:
        number = row[2] if len(row) > 2 and name in ("passwd", "group") else None
        if row[0] not in names and number not in numbers:
            own.append(row)
    return own


def _write(path: Path, rows: Sequence[Sequence[str]], mode: int) -> None:
    text = "".join(":".join(row) + "\n" for row in rows)
    try:
        if path.read_text(encoding="utf-8", errors="surrogateescape") == text:
            return
    except FileNotFoundError:
        pass
    temporary = path.with_name(f".{path.name}.netplay")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with open(fd, "w", encoding="utf-8", errors="surrogateescape") as out:
        out.write(text)
    os.chmod(temporary, mode)  # whatever the umask
    os.replace(temporary, path)


def _free_id(taken: set[int]) -> int:
    for number in range(FIRST_ID, LAST_ID + 1):
        if number not in taken:
            return number
    raise NetplayError(f"a host has no free user number left between {FIRST_ID} and {LAST_ID}")


class Hashes:
    """The shadow hash of each user's password, made once for all the hosts of an ``up``."""

    def __init__(self) -> None:
        self._made: dict[str, str] = {}

    def of(self, user: User, stored: str | None) -> str:
        """``stored`` if it is already a hash of the user's password, else a new one."""
        assert user.password is not None
        if stored and _is_hash_of(stored, user.password):
            return stored
        if user.name not in self._made:
            self._made[user.name] = shadow_hash(user.password)
        return self._made[user.name]


def add_users(own: Path, users: Iterable[User], hashes: Hashes, *, own_ids: bool) -> None:
    """Make sure ``users`` are accounts of the host whose upper layers are in
    ``own`` (``own/etc`` for its /etc; see the module's docstring).
    ``own_ids``: files can be given to the users (not in a user namespace
    that maps one user)."""
    users = list(users)
    if not users:
        return
    etc = own / "etc"
    etc.mkdir(parents=True, exist_ok=True)  # the fabric gives it /etc's mode at its mount
    passwd, group, shadow, gshadow = (
        _table(etc, name) for name in ("passwd", "group", "shadow", "gshadow")
    )
    days = str(int(time.time() // 86400))
    for user in users:
        entry = next((row for row in passwd if row[0] == user.name), None)
        if entry is None:
            taken = {int(row[2]) for row in passwd + group if len(row) > 2 and row[2].isdigit()}
            number = str(_free_id(taken))
            entry = [user.name, "x", number, number, ",,,", f"/home/{user.name}", SHELL]
            passwd.append(entry)
            if not any(row[0] == user.name for row in group):
                group.append([user.name, "x", number, ""])
                gshadow.append([user.name, "!", "", ""])
            _make_home(own / "home" / user.name, int(number), own_ids)
        _authorize(own, entry, user, own_ids)
        row = next((row for row in shadow if row[0] == user.name), None)
        if row is None:
            row = [user.name, "*", days, "0", "99999", "7", "", "", ""]
            shadow.append(row)
        if user.password is not None and len(row) > 1:
            row[1] = hashes.of(user, row[1])
    _write(etc / "passwd", passwd, 0o644)
    _write(etc / "group", group, 0o644)
    _write(etc / "shadow", shadow, 0o640)
    _write(etc / "gshadow", gshadow, 0o640)


def _make_home(path: Path, number: int, own_ids: bool) -> None:
    """A new user's home, from /etc/skel (kept if the host has one already)."""
    if path.exists():
        return
    shutil.copytree(SKELETON, path, symlinks=True) if SKELETON.is_dir() else path.mkdir()
    os.chmod(path, HOME_MODE)
    if own_ids:
        for top, directories, files in os.walk(path):
            for name in (*directories, *files):
                os.chown(os.path.join(top, name), number, number, follow_symlinks=False)
        os.chown(path, number, number)


def _authorize(own: Path, entry: list[str], user: User, own_ids: bool) -> None:
    """Add the user's keys from the topology to ~/.ssh/authorized_keys, in
    the upper layer of the host's directory the home is in (a user of the
    machine's, root, has it in /root), keeping the keys already there."""
    home = Path(entry[5])
    if not user.keys or not any(home.is_relative_to(d) for d in KEPT):
        return
    keys = own / home.relative_to("/") / ".ssh" / "authorized_keys"
    below = home / ".ssh" / "authorized_keys"  # the machine's, until the host has its own
    have = []
    for source in (keys, below):
        try:
            have = source.read_text().splitlines()
            break
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
    missing = [key for key in user.keys if key not in have]
    if not missing:
        return
    keys.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(keys, [[line] for line in have + missing], 0o600)
    if own_ids:
        number, group = int(entry[2]), int(entry[3])
        os.chown(keys.parent, number, group)
        os.chown(keys, number, group)

"""Where a playground keeps its state, and the state file itself.

As root, playgrounds live under /run/netplay/NAME and their network
namespaces are also visible to ``ip netns`` as ``netplay-NAME-HOST`` (a
symlink to the pin, so that /run/netns gains no mount).  As
an ordinary user they live under $XDG_RUNTIME_DIR/netplay/NAME (or
/tmp/netplay-UID/NAME), inside a user namespace.  The CA and certificates
are kept apart, in the data directory (:func:`data_dir`), because they
outlive ``down``.  The state file records,
before anything is made, everything that will be made, so that ``down``
works from any process and after any crash.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from netplay._model import SCHEMA, Mode, Process, Source, State, from_data, to_data
from netplay.errors import NotRunningError, StateError, UsageError

T = TypeVar("T")
TMP_PREFIX = ".state.json.tmp."  # + the writer's pid
SERVICE_DATA = "services"  # in the data directory: what the services keep
HOST_PINS = ("net", "mnt", "uts")  # the kinds of a host's namespaces, each pinned
SWITCH_PINS = ("net",)  # a switch's (a bridge of a large LAN)

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")  # whole: fullmatch


def base_dir() -> Path:
    """The directory holding every playground of this user."""
    if os.geteuid() == 0:
        return Path("/run/netplay")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.access(runtime, os.W_OK):
        return Path(runtime) / "netplay"
    return Path(f"/tmp/netplay-{os.geteuid()}")


def data_dir() -> Path:
    """The directory holding what this user's playgrounds keep across ``down``
    (their CAs); ``$NETPLAY_DATA_DIR`` taken from the directory netplay runs in
    where it is relative (the services run in /)."""
    chosen = os.environ.get("NETPLAY_DATA_DIR")
    if chosen:
        return Path(chosen).absolute()
    if os.geteuid() == 0:
        return Path("/var/lib/netplay")
    home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(home) / "netplay"


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a valid playground name",
            hint="use letters, digits, '-' or '_' (at most 32)",
        )
    return name


@dataclass(frozen=True, slots=True)
class Paths:
    """Every path of one playground."""

    name: str
    root: bool
    base: Path
    data_base: Path

    @classmethod
    def of(cls, name: str) -> Paths:
        """Paths for ``name``; decided by who we are before any namespace is joined."""
        return cls(check_name(name), os.geteuid() == 0, base_dir(), data_dir())

    @property
    def dir(self) -> Path:
        return self.base / self.name

    @property
    def data(self) -> Path:
        """What outlives ``down``: the CA and certificates (see :mod:`netplay.pki`),
        and what the services keep."""
        return self.data_base / self.name

    @property
    def service_data(self) -> Path:
        """What the services keep across ``down`` (a mail store, say): each
        engine's ``Context.data``."""
        return self.data / SERVICE_DATA

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    @property
    def lock(self) -> Path:
        """Held while the state is read, changed and written (see :func:`update_state`)."""
        return self.dir / "state.lock"

    @property
    def ns_dir(self) -> Path:
        return self.dir / "ns"

    @property
    def etc_dir(self) -> Path:
        return self.dir / "etc"

    @property
    def fresh_dir(self) -> Path:
        """A tmpfs for what the hosts keep until ``down`` only: their /tmp and /run."""
        return self.dir / "fresh"

    def _in_ns_dir(self, name: str) -> Path:
        # in one piece, not by Path's "/" (twice as slow): a few per host and step
        return Path(f"{self.base}/{self.name}/ns/{name}")

    def pins(self, key: str, host: bool) -> list[str]:
        """A namespace's pins, one of each kind (HOST_PINS or SWITCH_PINS, in
        that order), as the strings the syscalls take (made twice an ``up``:
        30,000 Paths each in line:10000)."""
        ns = f"{self.base}/{self.name}/ns/{key}"
        return [f"{ns}.{kind}" for kind in (HOST_PINS if host else SWITCH_PINS)]

    @staticmethod
    def kind_of(pin: str | os.PathLike[str]) -> str:
        """Which of a namespace's pins ``pin`` is: ``net``, ``mnt`` or ``uts``."""
        return os.fspath(pin).rpartition(".")[2]

    def net_pin(self, key: str) -> Path:
        return self._in_ns_dir(f"{key}.net")

    def netns_link(self, key: str) -> Path | None:
        """As root, the symlink that makes the namespace visible to ``ip netns``."""
        return Path(f"/run/netns/netplay-{self.name}-{key}") if self.root else None

    def mnt_pin(self, key: str) -> Path:
        return self._in_ns_dir(f"{key}.mnt")

    def uts_pin(self, key: str) -> Path:
        return self._in_ns_dir(f"{key}.uts")

    def view(self, key: str) -> Path:
        """What a host's view is made of, until a program first enters it."""
        return self._in_ns_dir(f"{key}.view")


def read_state(paths: Paths) -> State | None:
    """The playground's state, or None if it has none; StateError if it is
    damaged or of another version."""
    try:
        with open(paths.state, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise _damaged(paths, str(exc)) from exc
    if not isinstance(raw, dict):
        raise _damaged(paths, "it is not a JSON object")
    if raw.get("schema") != SCHEMA:
        raise StateError(
            f"the playground {paths.name!r} was made by another version of netplay "
            f"(its state file is version {raw.get('schema', 0)}, this netplay reads {SCHEMA})",
            hint=f"remove it with `netplay down --name {paths.name}`",
        )
    try:
        return from_data(State, raw)
    except ValueError as exc:
        raise _damaged(paths, str(exc)) from exc


def _damaged(paths: Paths, why: str) -> StateError:
    return StateError(
        f"the state file of the playground {paths.name!r} is damaged ({why})",
        hint=f"remove it with `netplay down --name {paths.name}`",
    )


def read_raw(paths: Paths) -> dict[str, Any] | None:
    """The state file as JSON data, whatever its version; {} if it is damaged."""
    try:
        with open(paths.state, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def salvage(paths: Paths, raw: dict[str, Any]) -> State:
    """What ``down`` and ``up`` need of a state file that is damaged or of
    another version: whether it still runs (its owner, keeper, and whether
    it was detached and ready), and what to remove (pins, ``ip netns`` links,
    service runners), as far as they can be read; the links also from
    /run/netns, where they point into this playground's pin directory."""

    def process(pid: Any, start: Any = None) -> Process | None:
        if isinstance(pid, dict):
            pid, start = pid.get("pid", pid.get("runner")), pid.get("start")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            return None
        return Process(pid=pid, start=start if isinstance(start, int) else None)

    def strings(value: Any) -> list[str]:
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    links = strings(raw.get("links"))
    netns = Path("/run/netns")
    if netns.is_dir():
        for link in netns.iterdir():
            if link.is_symlink() and Path(os.readlink(link)).parent == paths.ns_dir:
                links.append(str(link))
    recorded = raw.get("runners") or raw.get("services") or {}
    runners = {
        str(ident): found
        for ident, value in (recorded.items() if isinstance(recorded, dict) else ())
        if (found := process(value)) is not None
    }
    userns = raw.get("userns")
    return State(
        name=paths.name,
        mode=Mode.ROOT if paths.root else Mode.ROOTLESS,
        source=Source(spec="?"),
        owner=process(raw.get("owner") or raw.get("pid"), raw.get("pid_start")) or Process(pid=0),
        keeper=process(raw.get("keeper"), raw.get("keeper_start")),
        userns=userns if isinstance(userns, int) else None,
        detached=raw.get("detached") is True,
        ready=raw.get("ready") is True,
        created=0.0,
        data=str(raw.get("data") or paths.data),
        pins=strings(raw.get("pins")),
        links=sorted(set(links)),
        made_run_netns=raw.get("made_run_netns") is True,
        runners=runners,
    )


def write_state(paths: Paths, state: State) -> None:
    """Replace the state file atomically (a temporary file of this process's, renamed)."""
    paths.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = paths.dir / f"{TMP_PREFIX}{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(to_data(state), f, indent=1, sort_keys=True)
    os.replace(tmp, paths.state)


@contextlib.contextmanager
def claim(paths: Paths) -> Iterator[None]:
    """Hold this user's playgrounds' directory while a playground is claimed
    (checked for a running one of the name, and its state file written), so
    that of two ``up`` of one name, one wins and the other finds it running.

    The directory is made private (0700) if it is new, and refused if it is
    not this user's own private directory: under /tmp another user could
    have made it, or a link in its place."""
    while True:
        fd = _private_dir(paths.base)
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(paths.base).st_ino == os.fstat(fd).st_ino:
                break  # not removed by a `down` of the last playground meanwhile
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def _private_dir(path: Path) -> int:
    """Make ``path`` private (0700) if it is new; open it, refused if it is not
    this user's own private directory."""
    while True:
        with contextlib.suppress(FileExistsError):
            path.mkdir(parents=True, mode=0o700)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            break
        except FileNotFoundError:
            continue  # removed by a `down` of the last playground meanwhile
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):  # a file, or a link
                raise _not_private(path) from exc
            raise UsageError(f"cannot make {path} ({exc.strerror})") from exc
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.close(fd)
        raise _not_private(path)
    return fd


def _not_private(path: Path) -> UsageError:
    return UsageError(
        f"{path} is not a private directory of this user's, so netplay will not "
        "keep playgrounds there",
        hint="remove it, or set XDG_RUNTIME_DIR to a directory of your own",
    )


def update_state(paths: Paths, change: Callable[[State], T]) -> tuple[State, T]:
    """Read the state, ``change`` it and write it back, holding the state's lock,
    so that two processes changing one playground (a console and another
    terminal) do not undo each other.  NotRunningError if it has no state."""
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        state = read_state(paths)
        if state is None:
            raise NotRunningError(
                f"no playground named {paths.name!r} is running",
                hint=f"start it with: netplay up --detach --name {paths.name}",
            )
        result = change(state)
        write_state(paths, state)
        return state, result
    finally:
        os.close(fd)


def list_names(base: Path) -> list[str]:
    """Names of the playgrounds with a state file under ``base``, sorted."""
    try:
        entries = sorted(base.iterdir())
    except FileNotFoundError:
        return []
    return [e.name for e in entries if (e / "state.json").exists()]

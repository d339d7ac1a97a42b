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

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netplay.errors import UsageError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


def base_dir() -> Path:
    """The directory holding every playground of this user."""
    if os.geteuid() == 0:
        return Path("/run/netplay")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.access(runtime, os.W_OK):
        return Path(runtime) / "netplay"
    return Path(f"/tmp/netplay-{os.geteuid()}")


def data_dir() -> Path:
    """The directory holding what this user's playgrounds keep across ``down`` (their CAs)."""
    chosen = os.environ.get("NETPLAY_DATA_DIR")
    if chosen:
        return Path(chosen)
    if os.geteuid() == 0:
        return Path("/var/lib/netplay")
    home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(home) / "netplay"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
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
        """What outlives ``down``: the CA and certificates (see :mod:`netplay.pki`)."""
        return self.data_base / self.name

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    @property
    def ns_dir(self) -> Path:
        return self.dir / "ns"

    @property
    def etc_dir(self) -> Path:
        return self.dir / "etc"

    def net_pin(self, key: str) -> Path:
        return self.ns_dir / f"{key}.net"

    def netns_link(self, key: str) -> Path | None:
        """As root, the symlink that makes the namespace visible to ``ip netns``."""
        return Path("/run/netns") / f"netplay-{self.name}-{key}" if self.root else None

    def mnt_pin(self, key: str) -> Path:
        return self.ns_dir / f"{key}.mnt"

    def uts_pin(self, key: str) -> Path:
        return self.ns_dir / f"{key}.uts"


def read_state(paths: Paths) -> dict[str, Any] | None:
    try:
        with open(paths.state, encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"name": paths.name, "corrupt": True}
    return data


def write_state(paths: Paths, state: dict[str, Any]) -> None:
    """Replace the state file atomically."""
    paths.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = paths.state.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    os.replace(tmp, paths.state)


def list_names(base: Path) -> list[str]:
    """Names of the playgrounds with a state file under ``base``, sorted."""
    try:
        entries = sorted(base.iterdir())
    except FileNotFoundError:
        return []
    return [e.name for e in entries if (e / "state.json").exists()]

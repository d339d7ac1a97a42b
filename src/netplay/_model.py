"""The typed model of a running playground, and its one JSON form.

Everything that describes a playground is one of these dataclasses: the
state file (:class:`State`), ``status`` (:class:`Status` and its parts),
``list`` (:class:`Summary`), a cable's faults (:class:`CableFaults`), a
service's status (:class:`ServiceStatus`).  ``netplay status --json``, the
Python API, the pytest plugin and the state file all read and write the same
objects; docs/status.md describes each field.

Public results are frozen.  :class:`State` is the playground's own
bookkeeping and is changed while the playground is built and used.

:func:`to_data` turns any of them into JSON-ready data (enums by value,
tuples as lists, addresses as text) and :func:`from_data` reads it back,
checking every field against its type, so a state file written by another
version of netplay is refused clearly rather than misread.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

#: the version of the state file and of ``status --json``; a change of shape is a new version
SCHEMA = 1

T = TypeVar("T")


class Mode(enum.StrEnum):
    """How a playground runs: as root, or inside a user namespace of its own."""

    ROOT = "root"
    ROOTLESS = "rootless"


class ServiceState(enum.StrEnum):
    """Where a service is in its life (see :mod:`netplay.services`)."""

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPED = "stopped"
    FAILED = "failed"


class InterfaceState(enum.StrEnum):
    """An interface as the kernel has it: up, down, or not there at all."""

    UP = "up"
    DOWN = "down"
    MISSING = "missing"


class PlaygroundState(enum.StrEnum):
    """``running``, or ``crashed``: its process died and ``down`` will clean up after it."""

    RUNNING = "running"
    CRASHED = "crashed"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Process:
    """A process named by its pid and its start time (a pid alone can be reused)."""

    pid: int
    start: int | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CableFaults:
    """What is done to one cable: loss in percent, a rate, a delay and jitter, cut;
    both ways, or only to what one end sends (``only_from``: a host, or the LAN
    for what comes to the host from its switch)."""

    loss: float | None = None
    rate: str | None = None
    delay: str | None = None
    jitter: str | None = None
    down: bool = False
    only_from: str | None = None

    def __bool__(self) -> bool:
        return bool(self.loss or self.rate or self.delay or self.jitter or self.down)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """Where a playground's topology came from, so any process can read it again.

    ``spec`` is ``book``, ``line:N``, ``star:N`` or a file's path; a file's
    ``text`` is kept (the file may change or go); a topology built in Python
    is kept whole as ``data``.  ``services`` False: the network alone."""

    spec: str
    text: str | None = None
    data: Mapping[str, Any] | None = None
    services: bool = True


@dataclasses.dataclass(slots=True, kw_only=True)
class State:
    """The state file of one playground: everything it made, recorded before it is made.

    ``down`` works from it alone, from any process and after any crash."""

    schema: int = SCHEMA
    name: str
    mode: Mode
    source: Source
    #: the process that made it; it owns the playground until ``detached``
    owner: Process
    #: rootless: the process holding the playground's user namespace, and that namespace
    keeper: Process | None = None
    userns: int | None = None
    detached: bool = False
    ready: bool = False
    created: float
    #: the data directory (CA, certificates), which outlives ``down``
    data: str
    pins: list[str] = dataclasses.field(default_factory=list)
    #: the inodes of the namespaces behind ``pins``, once made: rootless, what is
    #: left in them is found by these when the keeper (and its view of the pins) is gone
    namespaces: list[int] = dataclasses.field(default_factory=list)
    links: list[str] = dataclasses.field(default_factory=list)
    made_run_netns: bool = False
    faults: dict[str, CableFaults] = dataclasses.field(default_factory=dict)
    #: service id (``www/https``) -> its runner
    runners: dict[str, Process] = dataclasses.field(default_factory=dict)
    #: who made it, for those that clean up after themselves (``netplay.testing``)
    tag: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class InterfaceStatus:
    name: str
    network: str
    addresses: tuple[str, ...]
    state: InterfaceState
    mtu: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HostStatus:
    name: str
    forward: bool
    nat: str | None
    interfaces: tuple[InterfaceStatus, ...]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NetworkStatus:
    name: str
    kind: Literal["lan", "link"]
    mtu: int
    hosts: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStatus:
    """One service: which, where it listens, its state, its server's pid, its restarts."""

    id: str
    host: str
    name: str
    kind: str
    engine: str
    listens: tuple[str, ...]
    state: ServiceState
    pid: int | None
    restarts: int
    reason: str
    log: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """A running playground as ``netplay status`` shows it."""

    schema: int = SCHEMA
    name: str
    mode: Mode
    topology: str
    #: rootless: whether the user namespace maps one user only (no subordinate
    #: ids), so that every account of the hosts is that user
    one_user: bool = False
    hosts: tuple[HostStatus, ...]
    networks: tuple[NetworkStatus, ...]
    #: cable id (``HOST/NETWORK``) -> its faults; cables without faults are absent
    faults: Mapping[str, CableFaults]
    services: tuple[ServiceStatus, ...]

    def service(self, ident: str) -> ServiceStatus:
        for service in self.services:
            if service.id == ident:
                return service
        raise KeyError(ident)

    def host(self, name: str) -> HostStatus:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """One playground of this user, as ``netplay list`` shows it."""

    name: str
    state: PlaygroundState
    mode: Mode | None
    #: what it was started from: ``book``, ``line:10``, a file's path
    spec: str
    hosts: int


# -- the JSON form -----------------------------------------------------------

_ADDRESS_TYPES: dict[type, Any] = {
    ipaddress.IPv4Address: ipaddress.ip_address,
    ipaddress.IPv6Address: ipaddress.ip_address,
    ipaddress.IPv4Interface: ipaddress.ip_interface,
    ipaddress.IPv6Interface: ipaddress.ip_interface,
    ipaddress.IPv4Network: ipaddress.ip_network,
    ipaddress.IPv6Network: ipaddress.ip_network,
}


_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_data(value: Any) -> Any:
    """JSON-ready data: dataclasses as objects (their fields that are not
    derived from others: init=False), enums by value, tuples as lists."""
    if type(value) in _PLAIN:  # first: most of a large playground's state (its pins)
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    if type(value) in _ADDRESS_TYPES:
        return str(value)
    return value


def from_data(cls: type[T], data: Any) -> T:
    """Read ``data`` back as ``cls``; ValueError names the field that does not fit."""
    result: T = _read(cls, data, cls.__name__)
    return result


@typing.no_type_check
def _read(kind: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if kind is Any:
        return data
    if origin in (Union, types.UnionType):
        choices = typing.get_args(kind)
        if data is None and type(None) in choices:
            return None
        addresses = [c for c in choices if c in _ADDRESS_TYPES]
        if addresses and isinstance(data, str):
            value = _address(addresses[0], data, where)
            if type(value) in addresses:
                return value
            raise ValueError(f"{where}: {data!r} is not a {kind}")
        problems = []
        for choice in choices:
            if choice is type(None):
                continue
            try:
                return _read(choice, data, where)
            except ValueError as exc:
                problems.append(str(exc))
        raise ValueError(problems[0] if problems else f"{where}: {data!r} is not allowed")
    if origin is Literal:
        if data not in typing.get_args(kind):
            raise ValueError(f"{where}: {data!r} is not one of {typing.get_args(kind)}")
        return data
    if origin in (tuple, list):
        if not isinstance(data, list):
            raise ValueError(f"{where}: expected a list, found {data!r}")
        item = typing.get_args(kind)[0]
        items = [_read(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, found {data!r}")
        value_kind = typing.get_args(kind)[1]
        return {k: _read(value_kind, v, f"{where}.{k}") for k, v in data.items()}
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(data)
        except ValueError:
            raise ValueError(f"{where}: {data!r} is not a {kind.__name__}") from None
    if dataclasses.is_dataclass(kind):
        return _read_dataclass(kind, data, where)
    if kind in _ADDRESS_TYPES:
        value = _address(kind, data, where)
        if not isinstance(value, kind):
            raise ValueError(f"{where}: {data!r} is not a {kind.__name__}")
        return value
    if kind is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if kind in (int, float, str, bool):
        if not isinstance(data, kind) or (kind is int and isinstance(data, bool)):
            raise ValueError(f"{where}: expected {kind.__name__}, found {data!r}")
        return data
    raise TypeError(f"{where}: cannot read a {kind!r}")


def _address(kind: type, data: Any, where: str) -> Any:
    if not isinstance(data, str):
        raise ValueError(f"{where}: expected an address, found {data!r}")
    try:
        return _ADDRESS_TYPES[kind](data)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _read_dataclass(kind: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, found {data!r}")
    hints = _hints(kind)
    known = {f.name: f for f in dataclasses.fields(kind) if f.init}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    values = {}
    for name, f in known.items():
        if name in data:
            values[name] = _read(hints[name], data[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}: the field {name!r} is missing")
    try:
        return kind(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(kind: type) -> dict[str, Any]:
    hints = _HINTS.get(kind)
    if hints is None:
        hints = _HINTS[kind] = typing.get_type_hints(kind)
    return hints

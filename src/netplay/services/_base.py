"""What every kind of service offers: start, health, where it listens.

A *kind* is a protocol as the topology names it (``dns``, ``http``,
``https``, ``inetd``, ``echo``); an *engine* is one implementation of a
kind (built in, in Python; or a library's server such as granian; later a
system daemon such as nginx or Dovecot for the same kind).  An engine says
how to start its server inside the host (a function run in a forked child,
which may exec a daemon), how to check with one real protocol exchange
that it answers, and where it listens; it registers itself
(:func:`~netplay.services.register`).  The runner
(:mod:`netplay.services._runner`) does the rest for every engine alike:
starting, health, restarts, logs.

A :class:`Context` carries what every service needs and nothing more: the
topology, the host, the service's declaration, the playground's CA and
certificates, and a directory for what services keep across ``down``.
An engine derives the rest itself (the DNS engine builds its zones from the
topology).
"""

from __future__ import annotations

import math
import signal
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from netplay.errors import ServiceError, TopologyError
from netplay.pki import Store
from netplay.topology import Service, Topology

#: what an engine starts: a function run in a forked child inside the host (it may exec)
Start = Callable[[], None]

#: options the runner understands, for every kind: name -> type
COMMON_OPTIONS: Mapping[str, type | tuple[type, ...]] = {
    "restart_limit": int,
    "health_timeout": (int, float),
}
#: the least each number may be: option -> minimum (the engines add theirs)
COMMON_MINIMUMS: Mapping[str, float] = {"restart_limit": 0, "health_timeout": 0.1}
#: the most each number may be (an hour to answer; beyond, a typo, not a wish)
COMMON_MAXIMUMS: Mapping[str, float] = {"restart_limit": 10_000, "health_timeout": 3600}


_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a table",
}


@dataclass(frozen=True, slots=True)
class Context:
    """One service of one host, with what its engine needs to start and check it."""

    topology: Topology
    host: str
    service: Service
    pki: Store
    #: what the host's services keep across ``down`` (removed by ``down --purge``):
    #: a directory of the host's own, the only part of the data directory it sees
    data: Path

    @property
    def id(self) -> str:
        return f"{self.host}/{self.service.name}"

    @property
    def fqdn(self) -> str:
        return self.topology.fqdn(self.host)

    @property
    def address(self) -> str:
        """The address clients reach the host by (its first)."""
        return str(self.topology.primary_addresses(self.host)[0])

    def option(self, key: str, default: Any) -> Any:
        return self.service.options.get(key, default)

    def server_tls(self) -> ssl.SSLContext:
        """TLS for the server side, with the host's certificate, TLS 1.2 at least."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        cert, key = self.pki.server(self.host)
        context.load_cert_chain(cert, key)
        return context

    def client_tls(self) -> ssl.SSLContext:
        """TLS for a health check: the playground's CA, names verified."""
        return ssl.create_default_context(cafile=str(self.pki.ca))


class Engine:
    """One implementation of a kind.  Subclasses override what differs."""

    #: the ports a service of this kind gets when its declaration names none
    default_ports: tuple[int, ...] = ()
    #: options (beyond COMMON_OPTIONS) it understands: name -> type
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {}
    #: the least a number among them may be: name -> minimum
    minimums: ClassVar[Mapping[str, float]] = {}
    #: the most a number among them may be: name -> maximum
    maximums: ClassVar[Mapping[str, float]] = {}
    #: what a declaration needs besides its kind to work (ports, options), for the
    #: engine conformance suite and the docs
    example: ClassVar[Mapping[str, Any]] = {}
    #: what the runner stops its server with (then SIGKILL, after a grace time)
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def ports(self, ctx: Context) -> tuple[int, ...]:
        return ctx.service.ports or self.default_ports

    def unavailable(self) -> str | None:
        """Why it cannot run on this machine, as this user (a daemon that is not
        installed, a need of root), in one sentence saying what to do; None if it can."""
        return None

    def check(self, ctx: Context, where: str) -> None:
        """Raise TopologyError for options it cannot use, or if it cannot run here
        (before anything is built)."""
        why = self.unavailable()
        if why is not None:
            raise TopologyError(why, field=f"{where}.engine")
        for key, value in ctx.service.options.items():
            wanted = COMMON_OPTIONS.get(key) or self.options.get(key)
            if wanted is None:
                known = ", ".join(sorted({*self.options, *COMMON_OPTIONS}))
                raise TopologyError(
                    f"a {ctx.service.kind} service has no option {key!r} (it has: {known})",
                    field=f"{where}.{key}",
                )
            kinds = wanted if isinstance(wanted, tuple) else (wanted,)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                what = " or ".join(dict.fromkeys(_TYPE_NAMES[k] for k in kinds))
                if set(kinds) == {int, float}:
                    what = "a number"
                raise TopologyError(f"{key} must be {what}", field=f"{where}.{key}")
            if isinstance(value, float) and not math.isfinite(value):
                raise TopologyError(f"{key} must be a finite number", field=f"{where}.{key}")
            least = COMMON_MINIMUMS.get(key, self.minimums.get(key))
            if least is not None and isinstance(value, int | float) and value < least:
                raise TopologyError(f"{key} must be at least {least:g}", field=f"{where}.{key}")
            most = COMMON_MAXIMUMS.get(key, self.maximums.get(key))
            if most is not None and isinstance(value, int | float) and value > most:
                raise TopologyError(f"{key} must be at most {most:g}", field=f"{where}.{key}")
        if not self.ports(ctx):
            raise TopologyError("this service needs a port", field=f"{where}.ports")
        if not ctx.topology.primary_addresses(ctx.host):
            raise TopologyError(
                f"{ctx.host} has no address to serve on (attach it to a LAN or link)",
                field=where,
            )

    def preload(self, contexts: Sequence[Context]) -> None:
        """Prepare, once, in the process that forks the runners, before it
        forks them, what the servers of ``contexts`` (all this engine's) need:
        modules to import, accounts to check (:mod:`netplay.accounts`).  The
        runners and their servers then share it (copy-on-write) rather than
        each doing it.  Nothing by default."""

    def start(self, ctx: Context) -> Start:
        raise NotImplementedError

    def health(self, ctx: Context, timeout: float) -> None:
        """One real exchange with the server; raise OSError or HealthError if it fails."""
        raise NotImplementedError

    def listens(self, ctx: Context) -> list[str]:
        """Where it listens, as ``tcp/80`` and ``udp/53``."""
        return [f"tcp/{port}" for port in self.ports(ctx)]


def ensure_accounts(contexts: Sequence[Context]) -> None:
    """The preload of an engine that logs users in: each host's accounts,
    checked and written once, before the runners fork (:mod:`netplay.accounts`)."""
    from netplay.accounts import Accounts

    for ctx in contexts:
        Accounts.ensure(ctx.data, ctx.topology.users)


class HealthError(ServiceError):
    """The server answered its health check, but not as it should."""

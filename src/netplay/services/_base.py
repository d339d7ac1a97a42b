"""What every kind of service offers: start, health, where it listens.

A *kind* is a protocol as the topology names it (``dns``, ``http``,
``https``, ``inetd``); an *engine* is one implementation of a kind (built
in, in Python; or a library's server such as granian; later a system
daemon such as nginx or Dovecot for the same kind).  An engine says how to
start its server inside the host (a function run in a forked child, which
may exec a daemon), how to check with one real protocol exchange that it
answers, and where it listens.  The runner (:mod:`netplay.services._runner`)
does the rest for every engine alike: starting, health, restarts, logs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from netplay import dns
from netplay.errors import TopologyError
from netplay.pki import Store
from netplay.topology import Service, Topology

#: what an engine starts: a function run in a forked child inside the host (it may exec)
Start = Callable[[], None]

#: options the runner understands, for every kind: name -> type
COMMON_OPTIONS: Mapping[str, type | tuple[type, ...]] = {
    "restart_limit": int,
    "health_timeout": (int, float),
}


_TYPE_NAMES = {int: "an integer", str: "a string", list: "a list", dict: "a table"}


@dataclass(frozen=True, slots=True)
class Context:
    """One service of one host, with what its engine needs to start and check it."""

    topology: Topology
    host: str
    service: Service
    pki: Store
    zones: dns.Zones

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


class Engine:
    """One implementation of a kind.  Subclasses override what differs."""

    #: the ports a service of this kind gets when its declaration names none
    default_ports: tuple[int, ...] = ()
    #: options (beyond COMMON_OPTIONS) it understands: name -> type
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {}

    def ports(self, ctx: Context) -> tuple[int, ...]:
        return ctx.service.ports or self.default_ports

    def check(self, ctx: Context, where: str) -> None:
        """Raise TopologyError for options it cannot use (before anything is built)."""
        for key, value in ctx.service.options.items():
            wanted = COMMON_OPTIONS.get(key) or self.options.get(key)
            if wanted is None:
                known = ", ".join(sorted({*self.options, *COMMON_OPTIONS}))
                raise TopologyError(
                    f"a {ctx.service.kind} service has no option {key!r} (it has: {known})",
                    field=f"{where}.{key}",
                )
            if not isinstance(value, wanted) or isinstance(value, bool):
                kind = "a number" if isinstance(wanted, tuple) else _TYPE_NAMES[wanted]
                raise TopologyError(f"{key} must be {kind}", field=f"{where}.{key}")
        if not self.ports(ctx):
            raise TopologyError("this service needs a port", field=f"{where}.ports")
        if not ctx.topology.primary_addresses(ctx.host):
            raise TopologyError(
                f"{ctx.host} has no address to serve on (attach it to a LAN or link)",
                field=where,
            )

    def start(self, ctx: Context) -> Start:
        raise NotImplementedError

    def health(self, ctx: Context, timeout: float) -> None:
        """One real exchange with the server; raise OSError or HealthError if it fails."""
        raise NotImplementedError

    def listens(self, ctx: Context) -> list[str]:
        """Where it listens, as ``tcp/80`` and ``udp/53``."""
        return [f"tcp/{port}" for port in self.ports(ctx)]


class HealthError(Exception):
    """The server answered, but not as it should."""


@functools.cache
def _registry() -> dict[str, dict[str, Engine]]:
    from netplay.services._dns import DnsEngine
    from netplay.services._http import GranianEngine
    from netplay.services._inetd import InetdEngine

    return {
        "dns": {"builtin": DnsEngine()},
        "http": {"granian": GranianEngine(tls=False)},
        "https": {"granian": GranianEngine(tls=True)},
        "inetd": {"builtin": InetdEngine()},
    }


def engine_of(service: Service, where: str) -> Engine:
    """The engine that serves ``service``; TopologyError naming ``where`` if none."""
    engines = _registry().get(service.kind)
    if engines is None:
        known = ", ".join(sorted(_registry()))
        raise TopologyError(
            f"there is no service kind {service.kind!r} (there are: {known})",
            field=f"{where}.kind",
        )
    name = service.engine or next(iter(engines))
    engine = engines.get(name)
    if engine is None:
        raise TopologyError(
            f"a {service.kind} service has no engine {name!r} (it has: {', '.join(engines)})",
            field=f"{where}.engine",
        )
    return engine


def engine_name(service: Service) -> str:
    return service.engine or next(iter(_registry()[service.kind]))

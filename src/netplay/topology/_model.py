"""The topology model: what a playground is, as plain frozen data.

A topology is hosts and the networks between them.  A network is either a
LAN (a switch with any number of hosts) or a link (a point-to-point cable
between exactly two hosts).  Each place where a host meets a network is an
:class:`Attachment`: an interface inside the host, with its addresses.

On a link, an address written without a prefix (a /32 or /128) is
configured point-to-point, with the other end's address as its peer, the
way routers number their links with one router address.

Nothing here does I/O; :func:`netplay.topology.check` validates a
topology and raises :class:`~netplay.errors.TopologyError` naming the field
at fault.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")
SITE_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
APP_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
#: a user name as useradd takes it by default (Debian's NAME_REGEX), at most 32
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
MIN_MTU = 1280  # IPv6's minimum; every network here is dual-stack capable
MAX_MTU = 65535


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """A static route: traffic for ``to`` goes via the gateway ``via``."""

    to: IPNetwork
    via: IPAddress

    def __post_init__(self) -> None:
        if self.to.version != self.via.version:
            raise ValueError(f"route to {self.to} cannot go via {self.via}")

    @property
    def is_default(self) -> bool:
        return self.to.prefixlen == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A service declared on a host; the service layer gives it meaning.

    Its name (``www/https``) is the host's and its own, which defaults to
    its kind; the engine (which implementation serves the kind) defaults to
    the kind's first."""

    kind: str
    name: str = ""
    engine: str | None = None
    ports: tuple[int, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.kind)


MAX_TTL = 255  # an IPv4 TTL and an IPv6 hop limit are one byte


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    """A machine of the playground: its own network, mount and UTS namespaces."""

    name: str
    forward: bool = False
    nat: str | None = None
    routes: tuple[Route, ...] = ()
    services: tuple[Service, ...] = ()
    #: the IPv4 TTL and IPv6 hop limit of what it sends (None: the kernel's 64)
    ttl: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A host's interface on a network."""

    host: str
    ifname: str
    addresses: tuple[IPInterface, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    """A LAN (a switch) or a point-to-point link."""

    name: str
    kind: Literal["lan", "link"]
    attachments: tuple[Attachment, ...]
    mtu: int = 1500

    def attachment(self, host: str) -> Attachment | None:
        for att in self.attachments:
            if att.host == host:
                return att
        return None

    def peer_of(self, att: Attachment, address: IPInterface) -> IPAddress | None:
        """On a link, the other end's address that a host-sized ``address`` pairs with."""
        if self.kind != "link" or address.network.prefixlen != address.max_prefixlen:
            return None
        for other in self.attachments:
            if other is att:
                continue
            for theirs in other.addresses:
                if theirs.version == address.version:
                    return theirs.ip
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    """An account of the playground: on every host, and a mailbox on each mail host.

    Its password is never shown (repr) and never written in clear by netplay:
    services keep a salted hash of it (:mod:`netplay.accounts`)."""

    name: str
    #: None: no password login
    password: str | None = field(default=None, repr=False)
    #: OpenSSH public keys (``ssh-ed25519 AAAA... comment``) that may log in as the user
    keys: tuple[str, ...] = ()
    #: mail folders besides INBOX, made when the user's mail store is new
    mailboxes: tuple[str, ...] = ()


ADDRESS_SELECTIONS = ("rfc6724", "ipv4-first", "ipv6-first")


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    """A site of the outside world, by its real name, served inside the playground.

    ``host`` (its web server: a host with an http or https service) answers
    for ``name``; the DNS server gives the name that host's addresses and its
    certificate names it.  It serves exactly one of: ``app``, a WSGI
    application as ``module:attribute``; ``static``, a directory of files;
    ``redirect``, a URL that every request is sent on to (its path appended)."""

    name: str
    host: str = "www"
    app: str | None = None
    static: str | None = None
    redirect: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    """A whole playground: hosts, networks and the DNS domain of its names."""

    name: str
    hosts: tuple[Host, ...]
    networks: tuple[Network, ...]
    domain: str | None = None
    #: extra records of the domain's zone, in master-file syntax ("www MX 10 smtp")
    records: tuple[str, ...] = ()
    #: further zones the DNS server is authoritative for: origin -> records
    zones: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False, hash=False)
    #: the outside world's sites, by their real names, served by hosts of the playground
    sites: tuple[Site, ...] = ()
    #: how hosts order the addresses of a name (their /etc/gai.conf): RFC 6724's
    #: default policy (IPv4 ahead of unique-local IPv6), or IPv4 or IPv6 first
    address_selection: str = "rfc6724"
    #: the accounts of every host
    users: tuple[User, ...] = ()
    #: every host's interfaces in order: host -> ((network, attachment), ...)
    _interfaces: Mapping[str, tuple[tuple[Network, Attachment], ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        # once, not per lookup: a loop over 10,000 hosts asks for each one's
        index: dict[str, list[tuple[Network, Attachment]]] = {h.name: [] for h in self.hosts}
        for net in self.networks:
            for att in net.attachments:
                index.setdefault(att.host, []).append((net, att))
        interfaces = {host: tuple(found) for host, found in index.items()}
        object.__setattr__(self, "_interfaces", interfaces)

    def without_services(self) -> Topology:
        """The same network with no service declared (so names resolve through /etc/hosts)."""
        hosts = tuple(dataclasses.replace(h, services=()) for h in self.hosts)
        return dataclasses.replace(self, hosts=hosts)

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def user(self, name: str) -> User:
        for user in self.users:
            if user.name == name:
                return user
        raise KeyError(name)

    def network(self, name: str) -> Network:
        for net in self.networks:
            if net.name == name:
                return net
        raise KeyError(name)

    def attachments_of(self, host: str) -> Iterator[tuple[Network, Attachment]]:
        """The host's interfaces in order (eth0 first)."""
        return iter(self._interfaces.get(host, ()))

    def by_host(self) -> dict[str, list[tuple[Network, Attachment]]]:
        """Every host's interfaces in order."""
        return {host: list(found) for host, found in self._interfaces.items()}

    def primary_addresses(self, host: str) -> tuple[IPAddress, ...]:
        """The addresses the host's name stands for: those of its eth0."""
        for _net, att in self.attachments_of(host):
            return tuple(a.ip for a in att.addresses)
        return ()

    def fqdn(self, host: str) -> str:
        return f"{host}.{self.domain}" if self.domain else host

    def shared_networks(self, a: str, b: str) -> list[Network]:
        """Networks that both hosts are attached to, links first."""
        both = [
            net
            for net in self.networks
            if net.attachment(a) is not None and net.attachment(b) is not None
        ]
        return sorted(both, key=lambda net: net.kind != "link")

    def dns_host(self) -> str | None:
        """The host that serves DNS (a service of kind "dns"), if any."""
        for host in self.hosts:
            if any(s.kind == "dns" for s in host.services):
                return host.name
        return None

    def etc_hosts_of(self, host: str) -> str:
        """With a DNS server, a host's /etc/hosts holds only localhost and its own name."""
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        names = [self.fqdn(host), host] if self.domain else [host]
        lines.extend(f"{a}\t{' '.join(names)}" for a in self.primary_addresses(host))
        return "\n".join(lines) + "\n"

    def etc_hosts(self) -> str:
        """The /etc/hosts every host of a playground without DNS gets: every name."""
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", ""]
        for host in self.hosts:
            names = [self.fqdn(host.name), host.name] if self.domain else [host.name]
            for address in self.primary_addresses(host.name):
                lines.append(f"{address}\t{' '.join(names)}")
        return "\n".join(lines) + "\n"

    def etc_resolv_conf(self) -> str:
        """The /etc/resolv.conf every host gets: the DNS server's addresses, if any."""
        search = f"search {self.domain}\n" if self.domain else ""
        server = self.dns_host()
        if server is None:
            return "# netplay: playground names resolve through /etc/hosts\n" + search
        servers = "".join(f"nameserver {a}\n" for a in self.primary_addresses(server))
        return f"# netplay: the playground's DNS server on {server}\n{servers}{search}"

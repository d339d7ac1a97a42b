"""The topology model: what a playground is, as plain frozen data.

A topology is hosts and the networks between them.  A network is either a
LAN (a switch with any number of hosts) or a link (a point-to-point cable
between exactly two hosts).  Each place where a host meets a network is an
:class:`Attachment`: an interface inside the host, with its addresses.

On a link, an address written without a prefix (a /32 or /128) is
configured point-to-point, with the other end's address as its peer, the
way routers number their links with one router address.

Nothing here does I/O; :func:`check` validates a topology and raises
:class:`~netplay.errors.TopologyError` naming the field at fault.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from netplay.errors import TopologyError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")
SITE_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
APP_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    """A machine of the playground: its own network, mount and UTS namespaces."""

    name: str
    forward: bool = False
    nat: str | None = None
    routes: tuple[Route, ...] = ()
    services: tuple[Service, ...] = ()


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

    def without_services(self) -> Topology:
        """The same network with no service declared (so names resolve through /etc/hosts)."""
        hosts = tuple(dataclasses.replace(h, services=()) for h in self.hosts)
        return dataclasses.replace(self, hosts=hosts)

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def network(self, name: str) -> Network:
        for net in self.networks:
            if net.name == name:
                return net
        raise KeyError(name)

    def attachments_of(self, host: str) -> Iterator[tuple[Network, Attachment]]:
        """The host's interfaces in order (eth0 first)."""
        for net in self.networks:
            for att in net.attachments:
                if att.host == host:
                    yield net, att

    def by_host(self) -> dict[str, list[tuple[Network, Attachment]]]:
        """Every host's interfaces in order, in one pass (for large topologies)."""
        index: dict[str, list[tuple[Network, Attachment]]] = {h.name: [] for h in self.hosts}
        for net in self.networks:
            for att in net.attachments:
                index.setdefault(att.host, []).append((net, att))
        return index

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


def check(topology: Topology) -> None:
    """Validate a topology; raise TopologyError naming the field at fault."""
    if not topology.hosts:
        raise TopologyError("a topology needs at least one host", field="hosts")
    names: set[str] = set()
    for host in topology.hosts:
        where = f"hosts.{host.name}"
        if not NAME_RE.match(host.name):
            raise TopologyError(
                f"{host.name!r} is not a valid host name "
                "(a letter, then letters, digits or '-', at most 32)",
                field=where,
            )
        if host.name in names:
            raise TopologyError(f"host {host.name!r} is declared twice", field=where)
        names.add(host.name)
    net_names: set[str] = set()
    for net in topology.networks:
        _check_network(net, names, net_names)
    index = topology.by_host()
    for host in topology.hosts:
        _check_host(topology, host, index[host.name])
    if topology.address_selection not in ADDRESS_SELECTIONS:
        raise TopologyError(
            f"{topology.address_selection!r} is not one of {', '.join(ADDRESS_SELECTIONS)}",
            field="address_selection",
        )
    _check_sites(topology)


def _check_sites(topology: Topology) -> None:
    seen: set[str] = set()
    hosts = {h.name: h for h in topology.hosts}
    for site in topology.sites:
        where = f"sites.{site.name}"
        name = site.name.casefold()
        labels = name.rstrip(".").split(".")
        if len(labels) < 2 or not all(SITE_LABEL_RE.match(label) for label in labels):
            raise TopologyError(f"{site.name!r} is not a domain name", field=where)
        if name in seen:
            raise TopologyError(f"the site {site.name!r} is declared twice", field=where)
        seen.add(name)
        host = hosts.get(site.host)
        if host is None:
            raise TopologyError(
                f"there is no host {site.host!r} to serve it", field=f"{where}.host"
            )
        if not any(s.kind in ("http", "https") for s in host.services):
            raise TopologyError(
                f"{site.host} has no http or https service to serve it", field=f"{where}.host"
            )
        given = [k for k in ("app", "static", "redirect") if getattr(site, k) is not None]
        if len(given) != 1:
            raise TopologyError("a site serves one of app, static or redirect", field=where)
        if site.app is not None and not APP_RE.match(site.app):
            raise TopologyError(f"{site.app!r} is not module:attribute", field=f"{where}.app")
        if site.redirect is not None and not site.redirect.startswith(("http://", "https://")):
            raise TopologyError(
                "a redirect is an http:// or https:// URL", field=f"{where}.redirect"
            )


def _check_network(net: Network, hosts: set[str], seen: set[str]) -> None:
    where = f"{net.kind}s.{net.name}"
    if not NAME_RE.match(net.name):
        raise TopologyError(f"{net.name!r} is not a valid network name", field=where)
    if net.name in seen:
        raise TopologyError(f"network {net.name!r} is declared twice", field=where)
    seen.add(net.name)
    if not MIN_MTU <= net.mtu <= MAX_MTU:
        raise TopologyError(
            f"MTU {net.mtu} is out of range ({MIN_MTU} to {MAX_MTU})", field=f"{where}.mtu"
        )
    if net.kind == "link" and len(net.attachments) != 2:
        raise TopologyError(
            f"a link joins exactly two hosts, this one has {len(net.attachments)}",
            field=f"{where}.hosts",
        )
    if not net.attachments:
        raise TopologyError("a LAN needs at least one host", field=f"{where}.hosts")
    used: dict[IPAddress, str] = {}
    subnets: dict[int, tuple[IPNetwork, str]] = {}
    for att in net.attachments:
        at = f"{where}.hosts.{att.host}"
        if att.host not in hosts:
            raise TopologyError(
                f"unknown host {att.host!r} (declare it under [hosts.{att.host}])", field=at
            )
        for address in att.addresses:
            if address.ip in used:
                raise TopologyError(
                    f"address {address.ip} is already used by {used[address.ip]} on {net.name}",
                    field=at,
                )
            used[address.ip] = att.host
            if net.kind == "lan":
                if address.network.prefixlen == address.max_prefixlen:
                    raise TopologyError(
                        f"address {address} on a LAN needs a prefix, e.g. /24 or /64",
                        field=at,
                    )
                first = subnets.setdefault(address.version, (address.network, att.host))
                if first[0] != address.network:
                    raise TopologyError(
                        f"address {address} is not in the LAN's subnet {first[0]} "
                        f"(set by {first[1]})",
                        field=at,
                    )


def _connected(
    attached: list[tuple[Network, Attachment]],
) -> tuple[list[IPNetwork], list[IPAddress]]:
    subnets: list[IPNetwork] = []
    peers: list[IPAddress] = []
    for net, att in attached:
        for address in att.addresses:
            peer = net.peer_of(att, address)
            if peer is not None:
                peers.append(peer)
            elif address.network.prefixlen != address.max_prefixlen:
                subnets.append(address.network)
    return subnets, peers


def _check_host(topology: Topology, host: Host, attached: list[tuple[Network, Attachment]]) -> None:
    where = f"hosts.{host.name}"
    if host.nat is not None:
        if not any(net.name == host.nat for net in topology.networks):
            raise TopologyError(f"no network is named {host.nat!r}", field=f"{where}.nat")
        if not any(net.name == host.nat for net, _att in attached):
            raise TopologyError(
                f"{host.name} is not attached to {host.nat!r}", field=f"{where}.nat"
            )
        if not host.forward:
            raise TopologyError(
                "a host that does NAT must forward (set forward = true)", field=f"{where}.nat"
            )
    subnets, peers = _connected(attached)
    for i, route in enumerate(host.routes):
        if route.via in peers or any(route.via in s for s in subnets):
            continue
        raise TopologyError(
            f"gateway {route.via} is not on any network {host.name} is attached to",
            field=f"{where}.routes[{i}].via",
        )
    names: set[str] = set()
    for i, service in enumerate(host.services):
        if not NAME_RE.match(service.kind):
            raise TopologyError(
                f"{service.kind!r} is not a valid service kind",
                field=f"{where}.services[{i}].kind",
            )
        if not NAME_RE.match(service.name):
            raise TopologyError(
                f"{service.name!r} is not a valid service name",
                field=f"{where}.services[{i}].name",
            )
        if service.name in names:
            raise TopologyError(
                f"{host.name} has two services named {service.name!r}",
                field=f"{where}.services[{i}].name",
            )
        names.add(service.name)
        for port in service.ports:
            if not 1 <= port <= 65535:
                raise TopologyError(
                    f"port {port} is out of range (1 to 65535)",
                    field=f"{where}.services[{i}].ports",
                )

"""Validating a topology before anything is built (pure: no I/O).

:func:`check` raises :class:`~netplay.errors.TopologyError` naming the
field at fault for anything that would fail later or behave surprisingly:
names (hosts, networks, services, the domain, zones, sites), addresses
that cannot number an interface (network, broadcast, loopback, multicast,
link-local, unspecified), addresses used twice, LANs larger than a switch takes,
routes that cannot be installed or say the same thing twice, and the rules
of the DNS service (one, on port 53).  What only a service's engine knows
(its options) is checked by the service layer.
"""

from __future__ import annotations

import re

from netplay.errors import TopologyError
from netplay.topology._model import (
    ADDRESS_SELECTIONS,
    APP_RE,
    MAX_MTU,
    MAX_TTL,
    MIN_MTU,
    NAME_RE,
    SITE_LABEL_RE,
    USER_RE,
    Attachment,
    Host,
    IPAddress,
    IPInterface,
    IPNetwork,
    Network,
    Topology,
)

#: a LAN's switch is up to 24 bridges of 1,000 ports (netplay.fabric's netlink)
MAX_LAN_HOSTS = 24_000
DNS_PORT = 53  # the only port /etc/resolv.conf can name
MAX_NAME = 253  # the longest domain name in text, without the final dot (RFC 1035)


def check(topology: Topology) -> None:
    """Validate a topology; raise TopologyError naming the field at fault."""
    if not topology.hosts:
        raise TopologyError("a topology needs at least one host", field="hosts")
    if topology.domain is not None:
        longest = max(len(h.name) for h in topology.hosts) + 1  # "h1." before the domain
        why = domain_problem(topology.domain, room=longest)
        if why:
            raise TopologyError(f"{topology.domain!r} is not a domain name: {why}", field="domain")
    for origin in topology.zones:
        why = domain_problem(origin)
        if why:
            raise TopologyError(
                f"{origin!r} is not a domain name: {why}", field=f"dns.zones.{origin}"
            )
    names: dict[str, str] = {}
    for host in topology.hosts:
        where = f"hosts.{host.name}"
        if not NAME_RE.fullmatch(host.name):
            raise TopologyError(
                f"{host.name!r} is not a valid host name "
                "(a letter, then letters, digits or '-', at most 32)",
                field=where,
            )
        other = names.get(host.name.casefold())
        if other is not None:
            same = "declared twice" if other == host.name else f"the same name as {other!r}"
            raise TopologyError(f"host {host.name!r} is {same} (names ignore case)", field=where)
        names[host.name.casefold()] = host.name
    net_names: set[str] = set()
    for net in topology.networks:
        _check_network(net, set(names.values()), net_names)
    index = topology.by_host()
    for host in topology.hosts:
        _check_host(topology, host, index[host.name])
    _check_dns(topology)
    if topology.address_selection not in ADDRESS_SELECTIONS:
        raise TopologyError(
            f"{topology.address_selection!r} is not one of {', '.join(ADDRESS_SELECTIONS)}",
            field="address_selection",
        )
    _check_sites(topology)
    _check_users(topology)


def _check_dns(topology: Topology) -> None:
    """One DNS server, on port 53."""
    first = None
    for host in topology.hosts:
        for i, service in enumerate(host.services):
            if service.kind != "dns":
                continue
            where = f"hosts.{host.name}.services[{i}]"
            if first is not None:
                raise TopologyError(
                    f"a playground has one DNS server (there is one on {first})", field=where
                )
            first = host.name
            if service.ports and service.ports != (DNS_PORT,):
                raise TopologyError(
                    "the DNS service listens on port 53: /etc/resolv.conf cannot name another",
                    field=f"{where}.ports",
                )


def domain_problem(text: str, room: int = 0) -> str | None:
    """What keeps ``text`` from being a domain name as DNS carries it, with
    ``room`` characters for the names put in front of it; None if nothing."""
    if not text.isascii():
        return "not ASCII (write an internationalised name as its A-label, xn--...)"
    if text.endswith("."):
        return "write it without the final dot"
    labels = text.lower().split(".")
    if not all(SITE_LABEL_RE.fullmatch(label) for label in labels):
        return "labels are letters, digits and '-', not at either end, at most 63"
    if len(text) + room > MAX_NAME:
        return f"its hosts' names would be longer than DNS allows ({MAX_NAME} characters)"
    return None


def _check_sites(topology: Topology) -> None:
    seen: set[str] = set()
    hosts = {h.name: h for h in topology.hosts}
    for site in topology.sites:
        where = f"sites.{site.name}"
        name = site.name.lower().removesuffix(".")  # one final dot, as DNS writes names
        if "." not in name or domain_problem(name):
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
        if site.app is not None and not APP_RE.fullmatch(site.app):
            raise TopologyError(f"{site.app!r} is not module:attribute", field=f"{where}.app")
        if site.redirect is not None and not site.redirect.startswith(("http://", "https://")):
            raise TopologyError(
                "a redirect is an http:// or https:// URL", field=f"{where}.redirect"
            )


MAX_PASSWORD = 1024  # longer is a mistake, and costs every login that hashes it
MAX_FOLDER = 255
#: what a public key line starts with: its algorithm (RFC 4253, 5656, 8709; OpenSSH's sk-)
KEY_RE = re.compile(
    r"^(ssh-(rsa|ed25519|ed448|dss)|ecdsa-sha2-nistp(256|384|521)|sk-\S+) [A-Za-z0-9+/]+=*( .*)?$"
)
#: names no account of the playground may take: the machine's own, which every host shares
SYSTEM_USERS = frozenset({"root", "daemon", "bin", "sys", "sync", "nobody", "nogroup"})


def _check_users(topology: Topology) -> None:
    """User names as useradd takes them, passwords that can be typed, public keys
    in OpenSSH's one-line form, and folder names a Maildir can hold."""
    seen: set[str] = set()
    for user in topology.users:
        where = f"users.{user.name}"
        if not USER_RE.fullmatch(user.name):
            raise TopologyError(
                f"{user.name!r} is not a user name (a lowercase letter or '_', then "
                "lowercase letters, digits, '_' or '-', at most 32)",
                field=where,
            )
        if user.name in SYSTEM_USERS:
            raise TopologyError(f"{user.name!r} is the machine's own account", field=where)
        if user.name in seen:
            raise TopologyError(f"the user {user.name!r} is declared twice", field=where)
        seen.add(user.name)
        password = user.password
        if password is not None and (
            not password or len(password) > MAX_PASSWORD or not password.isprintable()
        ):
            raise TopologyError(
                f"a password is 1 to {MAX_PASSWORD} printable characters",
                field=f"{where}.password",
            )
        for i, key in enumerate(user.keys):
            if not KEY_RE.fullmatch(key.strip()):
                raise TopologyError(
                    "not an OpenSSH public key (a line such as 'ssh-ed25519 AAAA... comment')",
                    field=f"{where}.keys[{i}]",
                )
        folders: set[str] = set()
        for i, folder in enumerate(user.mailboxes):
            at = f"{where}.mailboxes[{i}]"
            if folder.casefold() == "inbox" or folder.casefold() in folders:
                raise TopologyError(f"the mailbox {folder!r} is there already", field=at)
            folders.add(folder.casefold())
            if (
                not folder
                or len(folder) > MAX_FOLDER
                or not folder.isprintable()
                or folder.startswith(".")
                or any(c in folder for c in "/\\*%")
            ):
                raise TopologyError(
                    f"{folder!r} is not a folder name (printable, at most {MAX_FOLDER}, "
                    "no '/', '\\', '*' or '%', not starting with '.')",
                    field=at,
                )


def _check_network(net: Network, hosts: set[str], seen: set[str]) -> None:
    where = f"{net.kind}s.{net.name}"
    if not NAME_RE.fullmatch(net.name):
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
    if len(net.attachments) > MAX_LAN_HOSTS:
        raise TopologyError(
            f"a LAN's switch takes at most {MAX_LAN_HOSTS:,} hosts "
            f"(this one has {len(net.attachments):,}): split it into several LANs",
            field=f"{where}.hosts",
        )
    used: dict[IPAddress, str] = {}
    subnets: dict[int, tuple[IPNetwork, str]] = {}
    for att in net.attachments:
        at = f"{where}.hosts.{att.host}"
        if att.host not in hosts:
            raise TopologyError(
                f"unknown host {att.host!r} (declare it under [hosts.{att.host}])", field=at
            )
        for address in att.addresses:
            _check_address(address, net.kind, at)
            if address.ip in used:
                raise TopologyError(
                    f"address {address.ip} is already used by {used[address.ip]} on {net.name}",
                    field=at,
                )
            used[address.ip] = att.host
            if net.kind == "lan":
                first = subnets.setdefault(address.version, (address.network, att.host))
                if first[0] != address.network:
                    raise TopologyError(
                        f"address {address} is not in the LAN's subnet {first[0]} "
                        f"(set by {first[1]})",
                        field=at,
                    )


def _check_address(address: IPInterface, kind: str, where: str) -> None:
    """An address an interface can have: not special, and on a LAN one of its subnet's hosts."""
    ip = address.ip
    special = (
        "unspecified" if ip.is_unspecified
        else "loopback" if ip.is_loopback
        else "multicast" if ip.is_multicast
        else "link-local" if ip.is_link_local
        else None
    )  # fmt: skip
    if special:
        raise TopologyError(f"{ip} is a {special} address, not one for an interface", field=where)
    if kind == "lan":
        if address.network.prefixlen == address.max_prefixlen:
            raise TopologyError(
                f"address {address} on a LAN needs a prefix, e.g. /24 or /64", field=where
            )
        if address.network.prefixlen == 0:
            raise TopologyError(f"{address}: a LAN's prefix cannot be /0", field=where)
        if address.version == 4 and address.network.prefixlen < 31:
            if ip == address.network.network_address:
                raise TopologyError(f"{address} is its network's own address", field=where)
            if ip == address.network.broadcast_address:
                raise TopologyError(f"{address} is its network's broadcast address", field=where)


def _connected(
    attached: list[tuple[Network, Attachment]],
) -> tuple[list[IPNetwork], list[IPAddress], set[IPAddress]]:
    """The subnets and link peers a host reaches directly, and its own addresses."""
    subnets: list[IPNetwork] = []
    peers: list[IPAddress] = []
    own: set[IPAddress] = set()
    for net, att in attached:
        for address in att.addresses:
            own.add(address.ip)
            peer = net.peer_of(att, address)
            if peer is not None:
                peers.append(peer)
            elif address.network.prefixlen != address.max_prefixlen:
                subnets.append(address.network)
    return subnets, peers, own


def _check_host(topology: Topology, host: Host, attached: list[tuple[Network, Attachment]]) -> None:
    where = f"hosts.{host.name}"
    if host.ttl is not None and not 1 <= host.ttl <= MAX_TTL:
        raise TopologyError(f"must be 1 to {MAX_TTL} hops, not {host.ttl}", field=f"{where}.ttl")
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
    prefixed: dict[IPAddress, str] = {}
    for net, att in attached:
        for address in att.addresses:
            if address.network.prefixlen == address.max_prefixlen:
                continue  # a router's own address may number several links
            if address.ip in prefixed:
                raise TopologyError(
                    f"{host.name} has {address.ip} on {prefixed[address.ip]} already",
                    field=f"{net.kind}s.{net.name}.hosts.{host.name}",
                )
            prefixed[address.ip] = net.name
    subnets, peers, own = _connected(attached)
    destinations: set[IPNetwork] = set()
    for i, route in enumerate(host.routes):
        at = f"{where}.routes[{i}]"
        if route.via in own:
            raise TopologyError(f"{route.via} is {host.name}'s own address", field=f"{at}.via")
        if route.to in destinations:
            raise TopologyError(f"a second route to {route.to}", field=f"{at}.to")
        peer_route = route.to.prefixlen == route.to.max_prefixlen and route.to[0] in peers
        if route.to in subnets or peer_route:  # the kernel has that route already
            raise TopologyError(
                f"{route.to} is reached directly from {host.name}: it needs no route",
                field=f"{at}.to",
            )
        destinations.add(route.to)
        if route.via in peers or any(route.via in s for s in subnets):
            continue
        raise TopologyError(
            f"gateway {route.via} is not on any network {host.name} is attached to",
            field=f"{at}.via",
        )
    names: set[str] = set()
    for i, service in enumerate(host.services):
        if not NAME_RE.fullmatch(service.kind):
            raise TopologyError(
                f"{service.kind!r} is not a valid service kind",
                field=f"{where}.services[{i}].kind",
            )
        if not NAME_RE.fullmatch(service.name):
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

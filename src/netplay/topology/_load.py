"""Reading topologies: TOML files, the built-in ``book`` and generated ones.

:func:`load` turns a spec into a checked :class:`Topology`.  A spec is
``book`` (the built-in playground), ``line:N`` or ``star:N`` (generated),
or the path of a TOML file (format: docs/topology.md).  Every problem in a
file is reported as a :class:`TopologyError` with the file, the line where
it can be found, and the field.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from netplay._model import Source, from_data, to_data
from netplay.errors import TopologyError
from netplay.topology._check import check
from netplay.topology._generate import line, star
from netplay.topology._model import (
    Attachment,
    Host,
    IPInterface,
    Network,
    Route,
    Service,
    Site,
    Topology,
    User,
)

T = TypeVar("T")

_TOP_KEYS = {
    "name",
    "domain",
    "hosts",
    "lans",
    "links",
    "dns",
    "sites",
    "address_selection",
    "users",
}
_USER_KEYS = {"password", "keys", "mailboxes"}
_SITE_KEYS = {"host", "app", "static", "redirect"}
_DNS_KEYS = {"records", "zones"}
_HOST_KEYS = {"forward", "nat", "routes", "services", "ttl"}
_NET_KEYS = {"mtu", "hosts"}
_GENERATORS: dict[str, Callable[[int], Topology]] = {"line": line, "star": star}
GENERATED_MAX = 10_000
MAX_FILE_BYTES = 4 << 20


def load(spec: str) -> Topology:
    """A topology from ``book``, ``line:N``, ``star:N`` or a TOML file's path."""
    return _read(spec)[0]


def _read(spec: str) -> tuple[Topology, str | None]:
    """The topology of ``spec``, and the text of its file (None for book and generated)."""
    kind, sep, count = spec.partition(":")
    if sep and kind in _GENERATORS:
        if not re.fullmatch(r"[0-9]{1,9}", count) or not 1 <= int(count) <= GENERATED_MAX:
            raise TopologyError(
                f"{spec!r}: the number of hosts must be 1 to {GENERATED_MAX}",
                field="spec",
            )
        return _GENERATORS[kind](int(count)), None
    if spec == "book":
        text = resources.files("netplay.topology").joinpath("book.toml").read_text()
        return loads(text, source="book"), None
    path = Path(spec)
    if not spec or (not path.suffix == ".toml" and not path.exists()):
        raise TopologyError(
            f"no topology {spec!r}: use book, line:N, star:N or a .toml file",
            field="spec",
        )
    try:
        # without blocking: a FIFO no one writes to would hold `up` for ever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a directory, a device, a FIFO
                raise TopologyError("not a regular file: a topology is a .toml file", source=spec)
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise TopologyError(
                f"the file is larger than {MAX_FILE_BYTES >> 20} MiB: not a topology",
                source=spec,
            )
        text = raw.decode("utf-8")
    except OSError as exc:
        raise TopologyError(f"cannot read the file ({exc.strerror})", source=spec) from exc
    except UnicodeDecodeError as exc:
        raise TopologyError("the file is not UTF-8 text", source=spec) from exc
    return loads(text, source=spec, default_name=path.stem, directory=path.parent), text


def loads(
    text: str,
    *,
    source: str = "<string>",
    default_name: str = "topology",
    directory: Path | None = None,
) -> Topology:
    """Parse and check a TOML topology; errors name ``source`` and the line.

    A site's relative ``static`` directory is relative to ``directory`` (the
    topology file's), or to the working directory."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        raise TopologyError(
            str(exc).split(" (at line")[0],
            source=source,
            line=int(match.group(1)) if match else None,
            field="syntax",
        ) from exc
    try:
        topology = _build(data, default_name, directory)
        check(topology)
    except TopologyError as exc:
        raise TopologyError(
            exc.reason,
            source=source,
            line=_locate(text, exc.field or ""),
            field=exc.field,
        ) from None
    return topology


def _want(value: object, kind: type[T], where: str, what: str) -> T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TopologyError(f"must be {what}, not {value!r}", field=where)
    return value


def _table(value: object, where: str, allowed: set[str] | None = None) -> Mapping[str, Any]:
    table = _want(value, dict, where, "a table")
    if allowed is not None:
        for key in table:
            if key not in allowed:
                raise TopologyError(
                    f"unknown field (expected one of: {', '.join(sorted(allowed))})",
                    field=f"{where}.{key}" if where else key,
                )
    return table


def _build(data: Mapping[str, Any], default_name: str, directory: Path | None) -> Topology:
    _table(data, "", _TOP_KEYS)
    name = _want(data.get("name", default_name), str, "name", "a string")
    domain = data.get("domain")
    if domain is not None:
        _want(domain, str, "domain", "a string")
    hosts_table = _table(data.get("hosts", {}), "hosts")
    hosts = tuple(_host(n, _table(v, f"hosts.{n}", _HOST_KEYS)) for n, v in hosts_table.items())
    counters: dict[str, int] = {}
    networks = []
    for kind in ("lan", "link"):
        for net_name, value in _table(data.get(kind + "s", {}), kind + "s").items():
            networks.append(_network(kind, net_name, value, counters))
    records, zones = _dns(_table(data.get("dns", {}), "dns", _DNS_KEYS))
    selection = _want(
        data.get("address_selection", "rfc6724"), str, "address_selection", "a string"
    )
    return Topology(
        name=name,
        domain=domain,
        hosts=hosts,
        networks=tuple(networks),
        records=records,
        zones=zones,
        sites=tuple(
            _site(n, _table(v, f"sites.{n}", _SITE_KEYS), directory)
            for n, v in _table(data.get("sites", {}), "sites").items()
        ),
        address_selection=selection,
        users=tuple(
            _user(n, _table(v, f"users.{n}", _USER_KEYS))
            for n, v in _table(data.get("users", {}), "users").items()
        ),
    )


def _user(name: str, table: Mapping[str, Any]) -> User:
    where = f"users.{name}"
    password = table.get("password")
    if password is not None:
        _want(password, str, f"{where}.password", "a string")
    lists = {}
    for key, what in (("keys", "an OpenSSH public key"), ("mailboxes", "a folder name")):
        items = _want(table.get(key, []), list, f"{where}.{key}", f"a list of strings ({what})")
        for i, item in enumerate(items):
            _want(item, str, f"{where}.{key}[{i}]", what)
        lists[key] = tuple(items)
    return User(name=name, password=password, keys=lists["keys"], mailboxes=lists["mailboxes"])


def _site(name: str, table: Mapping[str, Any], directory: Path | None) -> Site:
    where = f"sites.{name}"
    values = {
        key: _want(table[key], str, f"{where}.{key}", "a string")
        for key in _SITE_KEYS
        if key in table
    }
    if "static" in values and not Path(values["static"]).is_absolute():
        try:
            base = directory or Path.cwd()
        except FileNotFoundError:
            raise TopologyError(
                "is relative to the working directory, which no longer exists",
                field=f"{where}.static",
            ) from None
        values["static"] = str(base / values["static"])
    return Site(name=name, **values)


def _records(value: object, where: str) -> tuple[str, ...]:
    items = _want(value, list, where, 'a list of records such as "www MX 10 smtp"')
    for i, item in enumerate(items):
        _want(item, str, f"{where}[{i}]", 'a record such as "www MX 10 smtp"')
    return tuple(items)


def _dns(table: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    records = _records(table.get("records", []), "dns.records")
    zones = {
        origin: _records(
            _table(zone, f"dns.zones.{origin}", {"records"}).get("records", []),
            f"dns.zones.{origin}.records",
        )
        for origin, zone in _table(table.get("zones", {}), "dns.zones").items()
    }
    return records, zones


def _host(name: str, table: Mapping[str, Any]) -> Host:
    where = f"hosts.{name}"
    forward = _want(table.get("forward", False), bool, f"{where}.forward", "true or false")
    nat = table.get("nat")
    if nat is not None:
        _want(nat, str, f"{where}.nat", "the name of a network")
    ttl = table.get("ttl")
    if ttl is not None:
        _want(ttl, int, f"{where}.ttl", "a number of hops")
    routes = []
    for i, item in enumerate(_want(table.get("routes", []), list, f"{where}.routes", "a list")):
        at = f"{where}.routes[{i}]"
        route = _table(item, at, {"to", "via"})
        if "to" not in route or "via" not in route:
            raise TopologyError("a route needs both 'to' and 'via'", field=at)
        via = _address(_want(route["via"], str, f"{at}.via", "an address"), f"{at}.via")
        to_text = _want(route["to"], str, f"{at}.to", "a network or 'default'")
        if to_text == "default":
            to_text = "0.0.0.0/0" if via.version == 4 else "::/0"
        try:
            to = ipaddress.ip_network(to_text)
        except ValueError as exc:
            raise TopologyError(f"{to_text!r} is not a network ({exc})", field=f"{at}.to") from None
        if to.version != via.version:
            raise TopologyError(f"route to {to} cannot go via {via}", field=f"{at}.via")
        routes.append(Route(to=to, via=via))
    services = []
    for i, item in enumerate(_want(table.get("services", []), list, f"{where}.services", "a list")):
        at = f"{where}.services[{i}]"
        svc = dict(_table(item, at))
        kind = _want(svc.pop("kind", None), str, f"{at}.kind", "a string naming the service")
        service_name = _want(svc.pop("name", kind), str, f"{at}.name", "a string")
        engine = svc.pop("engine", None)
        if engine is not None:
            _want(engine, str, f"{at}.engine", "a string naming the engine")
        ports = _want(svc.pop("ports", []), list, f"{at}.ports", "a list of port numbers")
        for port in ports:
            _want(port, int, f"{at}.ports", "a list of port numbers")
        services.append(
            Service(kind=kind, name=service_name, engine=engine, ports=tuple(ports), options=svc)
        )
    return Host(
        name=name,
        forward=forward,
        nat=nat,
        routes=tuple(routes),
        services=tuple(services),
        ttl=ttl,
    )


def _address(text: str, where: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise TopologyError(f"{text!r} is not an IP address", field=where) from None


def _network(kind: str, name: str, value: object, counters: dict[str, int]) -> Network:
    where = f"{kind}s.{name}"
    table = _table(value, where, _NET_KEYS)
    mtu = _want(table.get("mtu", 1500), int, f"{where}.mtu", "a whole number")
    attachments = []
    for host, addrs in _table(table.get("hosts", {}), f"{where}.hosts").items():
        at = f"{where}.hosts.{host}"
        if isinstance(addrs, str):
            addrs = [addrs]
        addresses: list[IPInterface] = []
        for text in _want(addrs, list, at, "a list of addresses"):
            try:
                addresses.append(ipaddress.ip_interface(_want(text, str, at, "an address")))
            except ValueError:
                raise TopologyError(f"{text!r} is not an IP address", field=at) from None
        index = counters.get(host, 0)
        counters[host] = index + 1
        attachments.append(Attachment(host=host, ifname=f"eth{index}", addresses=tuple(addresses)))
    return Network(
        name=name,
        kind="lan" if kind == "lan" else "link",
        attachments=tuple(attachments),
        mtu=mtu,
    )


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")


def _split_key(text: str) -> list[str]:
    return [part.strip().strip("\"'") for part in text.split(".")]


def _locate(text: str, field: str) -> int | None:
    """The line that best matches a field path such as ``hosts.h1.routes[0].via``."""
    want = _split_key(re.sub(r"\[\d+\]", "", field)) if field else []
    best: tuple[int, int] | None = None
    table: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            table = _split_key(header.group(1))
            path = table
        else:
            key = _KEY.match(raw)
            if not key:
                continue
            path = table + _split_key(key.group(1))
        depth = 0
        for a, b in zip(path, want, strict=False):
            if a != b:
                break
            depth += 1
        if depth == len(path) and depth and (best is None or depth > best[0]):
            best = (depth, number)
    return best[1] if best else None


def source_of(spec: str | Topology, services: bool = True) -> tuple[Topology, Source]:
    """The topology of ``spec`` (a spec or a Topology built in Python), and how
    to read it again from any process: the spec, a file's text, or the
    topology itself.  Without ``services``, the network alone."""
    if isinstance(spec, Topology):
        check(spec)
        topology, source = spec, Source(spec=spec.name, data=to_data(spec), services=services)
    else:
        topology, text = _read(spec)
        source = Source(spec=spec, text=text, services=services)
    return (topology if services else topology.without_services()), source


def from_source(source: Source) -> Topology:
    """The topology a :class:`Source` names, as it was when it was recorded."""
    if source.data is not None:
        topology = from_data(Topology, source.data)
    elif source.text is not None:
        spec = Path(source.spec)
        topology = loads(
            source.text, source=source.spec, default_name=spec.stem, directory=spec.parent
        )
    else:
        topology = load(source.spec)
    return topology if source.services else topology.without_services()

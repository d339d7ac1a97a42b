"""Generated topologies, valid and broken: the topology format's fuzz.

Valid topologies (2 to 6 hosts with names the format allows; LANs and
point-to-point links, numbered with prefixes or, on links, with routers' own
addresses; IPv4 everywhere and IPv6 on some networks; forwarding, NAT and
static routes through gateways the host can reach; sometimes a domain, a DNS
service with records and echo services with options) are written as TOML
text, with tables as sections or inline.  Each loads; a sample comes up
(every interface up with its addresses and MTU, every service running and
answering on each of its TCP ports) and goes down leaving nothing: no state
file, pin, namespace, mount, link, nft table or process.

Broken topologies are one mutation of a valid one (an unknown key, a value of
the wrong type, a bad or duplicate address, a bad name, a reference to a host
or network that does not exist, a bad route, a bad service option, a huge
value, odd unicode, an empty string, a TOML syntax error), each with the
field it must be refused at.  Each is refused with TopologyError naming that
field, by ``loads`` or, for what only the service layer knows, by
``Playground.up`` before anything is built; and ``netplay up FILE`` exits 6
with a one-line error, never 70 nor a traceback, building nothing.  Numbers
too big to mean anything (an infinite timeout) are refused or work.

Hypothesis runs derandomized, so that every run tries the same examples;
a few topologies at sharp edges, which generation rarely reaches, are tested
besides.  A failure is shrunk to a minimal topology, printed as TOML;
shrinking may take up to Hypothesis's own limit of 5 minutes.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from netplay import (
    InterfaceState,
    Playground,
    ServiceState,
    TopologyError,
    fabric,
)
from netplay.fabric import _procs
from netplay.topology import Topology, loads

NETPLAY = [sys.executable, "-m", "netplay"]
SOURCE = "fuzz.toml"
#: the playgrounds this module makes, by name (and removes, by these names only)
UP, REFUSED, CLI, EXTREME = "fuzz-up", "fuzz-refused", "fuzz-cli", "fuzz-extreme"

Data = dict[str, Any]

COMMON = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    # not Phase.explain: it traces every line run, and up runs many
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


# -- TOML text ----------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}


def toml_string(text: str) -> str:
    """A TOML basic string holding ``text`` exactly (control characters escaped)."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }"
    raise TypeError(f"no TOML for {value!r}")


def to_toml(data: Data, inline_from: int) -> str:
    """TOML text for ``data``: tables nested less than ``inline_from`` deep are
    sections (``[lans."home".hosts]``), deeper ones inline tables."""
    lines: list[str] = []

    def table(path: list[str], value: Data) -> None:
        def section(item: object) -> bool:
            return isinstance(item, dict) and len(path) + 1 < inline_from

        scalars = {k: v for k, v in value.items() if not section(v)}
        tables = {k: v for k, v in value.items() if section(v)}
        if path and (scalars or not tables):
            lines.append("[" + ".".join(map(toml_string, path)) + "]")
        lines.extend(f"{toml_string(k)} = {toml_value(v)}" for k, v in scalars.items())
        for key, sub in tables.items():
            table([*path, key], sub)

    table([], data)
    return "\n".join(lines) + "\n"


# -- valid topologies ---------------------------------------------------------


def _holds_any(
    network: str, near: list[ipaddress.IPv4Address | ipaddress.IPv6Address], own: int
) -> bool:
    """Whether ``network`` holds one of the host's own addresses (the first ``own``
    of ``near``), or is a single address that is one of its gateways (a link peer)."""
    net = ipaddress.ip_network(network)
    single = net.num_addresses == 1
    return any(a in net for a in near[:own]) or (single and any(a in net for a in near[own:]))


NAME_RE = r"[A-Za-z][A-Za-z0-9-]{0,31}"
NAMES = st.from_regex(NAME_RE, fullmatch=True)
LABELS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)
DOMAINS = st.one_of(
    st.sampled_from(["example.com", "fuzz.test", "Fuzz.TEST"]),
    st.lists(LABELS, min_size=1, max_size=4).map(".".join),
)
SELECTIONS = ("rfc6724", "ipv4-first", "ipv6-first")


@dataclass
class Case:
    """A valid topology as data, and what a mutation needs to know of it."""

    data: Data
    inline_from: int
    #: host -> addresses on its networks that it may route via (not its own)
    gateways: dict[str, list[str]]
    #: host -> its own addresses
    own: dict[str, list[str]]
    #: host -> the networks it is attached to, in interface order
    attached: dict[str, list[str]]

    @property
    def text(self) -> str:
        return to_toml(self.data, self.inline_from)

    @property
    def hosts(self) -> list[str]:
        return list(self.data["hosts"])

    def networks(self, kind: str) -> list[str]:
        return list(self.data.get(kind, {}))


IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


def _span(net: IPNet) -> tuple[int, int]:
    """The offsets of the addresses in ``net`` an interface may have."""
    size = net.num_addresses
    if size <= 2:
        return 0, size - 1
    if net.version == 4:
        return 1, size - 2
    return 0, min(size - 1, 0xFFFF)


def _some(draw: st.DrawFn, net: IPNet, count: int) -> list[str]:
    """``count`` distinct addresses of ``net`` an interface may have, with its prefix."""
    lo, hi = _span(net)
    offsets = draw(st.lists(st.integers(lo, hi), min_size=count, max_size=count, unique=True))
    addresses = [net[o] for o in offsets]
    texts = [str(a) if a.version == 4 else _v6_text(draw, a) for a in addresses]
    return [f"{text}/{net.prefixlen}" for text in texts]


def _mtu(draw: st.DrawFn, network: Data) -> Data:
    mtu = draw(st.none() | st.integers(1280, 65535))
    return network if mtu is None else {**network, "mtu": mtu}


def _v6_text(draw: st.DrawFn, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return draw(st.sampled_from([str(address), address.exploded, str(address).upper()]))


def _addresses(draw: st.DrawFn, addresses: list[str]) -> str | list[str]:
    """How an attachment's addresses are written: a list, or one string for one."""
    if len(addresses) == 1 and draw(st.booleans()):
        return addresses[0]
    return addresses


@st.composite
def valid_cases(draw: st.DrawFn, lan_of_two: bool = False) -> Case:
    """A valid topology; with ``lan_of_two``, its first LAN has two hosts or more."""
    count = draw(st.integers(2, 6))
    names = draw(st.lists(NAMES, min_size=count, max_size=count, unique_by=str.casefold))
    net_names = draw(st.lists(NAMES, min_size=6, max_size=6, unique=True))
    hosts: dict[str, Data] = {name: {} for name in names}
    gateways: dict[str, list[str]] = {name: [] for name in names}
    own: dict[str, list[str]] = {name: [] for name in names}
    attached: dict[str, list[str]] = {name: [] for name in names}
    subnets: dict[int, list[str]] = {4: [], 6: []}

    def attach(network: str, ends: dict[str, list[str]]) -> dict[str, Any]:
        """Record who is attached where, and whom each reaches directly (on a
        link of routers' own addresses, the peer)."""
        for host, addresses in ends.items():
            attached[host].append(network)
            own[host] += [str(ipaddress.ip_interface(a).ip) for a in addresses]
            for other, theirs in ends.items():
                if other != host:
                    gateways[host] += [str(ipaddress.ip_interface(a).ip) for a in theirs]
        return {host: _addresses(draw, addresses) for host, addresses in ends.items()}

    lans: Data = {}
    for i in range(draw(st.integers(1 if lan_of_two else 0, 3))):
        least = 2 if lan_of_two and i == 0 else 1
        members = draw(st.lists(st.sampled_from(names), min_size=least, max_size=4, unique=True))
        extra = draw(st.booleans())  # a second IPv4 address for the first member
        need = len(members) + extra
        fits = [p for p in range(16, 32) if _span(ipaddress.ip_network(f"10.0.0.0/{p}"))[1] >= need]
        v4 = ipaddress.IPv4Network((f"10.{i + 1}.0.0", draw(st.sampled_from(fits))))
        subnets[4].append(str(v4))
        fours = _some(draw, v4, need)
        ends = {host: [fours[j]] for j, host in enumerate(members)}
        if extra:
            ends[members[0]].append(fours[-1])
        if draw(st.booleans()):
            sizes = [64, 112, 120] + ([127] if len(members) <= 2 else [])
            v6 = ipaddress.IPv6Network((f"fd00:{i + 1:x}::", draw(st.sampled_from(sizes))))
            subnets[6].append(str(v6))
            for host, six in zip(members, _some(draw, v6, len(members)), strict=True):
                ends[host].append(six)
        lans[net_names[i]] = _mtu(draw, {"hosts": attach(net_names[i], ends)})

    links: Data = {}
    for j in range(draw(st.integers(0, 3))):
        a = draw(st.sampled_from(names))
        b = draw(st.sampled_from([n for n in names if n != a]))
        with_v6 = draw(st.booleans())
        if draw(st.booleans()):  # routers' own addresses, without a prefix
            ends = {}
            for host in (a, b):
                index = names.index(host) + 1
                mine = [f"10.255.0.{index}" + draw(st.sampled_from(["", "/32"]))]
                if with_v6:
                    mine.append(_v6_text(draw, ipaddress.IPv6Address(f"fd00:ff::{index:x}")))
                ends[host] = mine
            subnets[4].append(f"10.255.0.{names.index(b) + 1}/32")
        else:
            v4 = ipaddress.IPv4Network((f"10.200.{j}.0", draw(st.sampled_from([24, 30, 31]))))
            subnets[4].append(str(v4))
            ends = dict(zip((a, b), ([x] for x in _some(draw, v4, 2)), strict=True))
            if with_v6:
                v6 = ipaddress.IPv6Network((f"fd01:{j}::", draw(st.sampled_from([64, 127]))))
                subnets[6].append(str(v6))
                for host, six in zip((a, b), _some(draw, v6, 2), strict=True):
                    ends[host].append(six)
        links[net_names[3 + j]] = _mtu(draw, {"hosts": attach(net_names[3 + j], ends)})

    # forwarding, NAT and routes through gateways the host reaches
    far = {4: ["172.16.0.0/12", "192.168.7.0/24", "198.51.100.7/32"], 6: ["fd99::/48"]}
    far[6].append("2001:db8::/32")
    for name in names:
        table = hosts[name]
        if draw(st.booleans()):
            table["forward"] = draw(st.booleans())
        nat: bool = draw(st.booleans())
        if nat and table.get("forward") and attached[name]:
            table["nat"] = draw(st.sampled_from(attached[name]))
        routes: list[Data] = []
        seen: set[object] = set()
        for _ in range(draw(st.integers(0, 3)) if gateways[name] else 0):
            via = draw(st.sampled_from(gateways[name]))
            version = ipaddress.ip_address(via).version
            everything = "0.0.0.0/0" if version == 4 else "::/0"
            # not a network of its own nor a link peer: the kernel reaches them without a route
            near = [ipaddress.ip_address(a) for a in own[name] + gateways[name]]
            others = [n for n in subnets[version] if not _holds_any(n, near, len(own[name]))]
            to = draw(st.sampled_from(["default", everything, *far[version], *others]))
            key = ipaddress.ip_network(everything if to == "default" else to)
            if key not in seen:
                seen.add(key)
                routes.append({"to": to, "via": via})
        if routes:
            table["routes"] = routes

    # services: sometimes one DNS server, and echo servers
    addressed = [n for n in names if attached[n]]
    services: dict[str, list[Data]] = {n: [] for n in names}
    ports: dict[str, set[int]] = {n: set() for n in names}
    dns_host = None
    if draw(st.booleans()) and addressed:
        dns_host = draw(st.sampled_from(addressed))
        dns: Data = {"kind": "dns"}
        if draw(st.booleans()):
            dns["ports"] = [53]
        if draw(st.booleans()):
            dns["name"] = draw(NAMES)
        if draw(st.booleans()):
            dns["engine"] = "builtin"
        if draw(st.booleans()):
            dns["restart_limit"] = draw(st.integers(0, 10))
        services[dns_host].append(dns)
        ports[dns_host].add(53)
    for _ in range(draw(st.integers(0, 2)) if addressed else 0):
        name = draw(st.sampled_from(addressed))
        taken = {str(s.get("name", s["kind"])) for s in services[name]}
        service_name = "echo" if "echo" not in taken else _fresh(taken, "echo")
        echo: Data = {"kind": "echo"}
        if service_name != "echo" or draw(st.booleans()):
            echo["name"] = service_name
        wanted = draw(
            st.none() | st.lists(st.integers(1, 65535), min_size=1, max_size=2, unique=True)
        )
        if set(wanted or [7]) & ports[name]:
            continue
        ports[name] |= set(wanted or [7])
        if wanted is not None:
            echo["ports"] = wanted
        options = {
            "idle_timeout": st.floats(0.1, 3600) | st.integers(1, 3600),
            "max_connections": st.integers(1, 1024),
            "restart_limit": st.integers(0, 10),
            "health_timeout": st.integers(15, 60) | st.floats(15, 60),
        }
        for option, values in options.items():
            if draw(st.booleans()):
                echo[option] = draw(values)
        services[name].append(echo)
    for name in names:
        if services[name]:
            hosts[name]["services"] = services[name]

    data: Data = {}
    if draw(st.booleans()):
        data["name"] = draw(st.text(max_size=12))
    if dns_host is not None or draw(st.booleans()):
        data["domain"] = draw(DOMAINS)
    if draw(st.booleans()):
        data["address_selection"] = draw(st.sampled_from(SELECTIONS))
    data["hosts"] = hosts
    if draw(st.booleans()) or lans:
        data["lans"] = lans
    if links:
        data["links"] = links
    if dns_host is not None and draw(st.booleans()):
        aliases = [a for a in ("www", "mail", "ns-alias") if a not in {n.casefold() for n in names}]
        records = [
            f"@ MX 10 {draw(st.sampled_from(names))}",
            *(f"{a} CNAME {draw(st.sampled_from(names))}" for a in aliases[:1]),
            'note TXT "fuzz"',
        ]
        data["dns"] = {"records": draw(st.lists(st.sampled_from(records), unique=True))}
    inline_from = draw(st.sampled_from([1, 2, 3, 4, 99]))
    return Case(data, inline_from, gateways, own, attached)


# -- broken topologies: one mutation of a valid one ---------------------------


@dataclass
class Broken:
    text: str
    #: the field the error must name
    field: str
    mutation: str


#: a mutation: None where it does not apply to this topology, else the
#: mutated data (or TOML text) and the field at fault
Mutation = Callable[[st.DrawFn, Case, Data], tuple[Data | str, str] | None]

ODD_CHARS = st.characters(codec="utf-8")
ODD_TEXT = st.one_of(
    st.text(ODD_CHARS, min_size=1, max_size=8),
    st.sampled_from(["", " ", "\n", "\t", "\x00", "\u200b", "\u202e", "é", "ß", "\U0001f600"]),
)
ANY_VALUE = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.text(ODD_CHARS, max_size=5),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2),
    st.just(dt.date(1979, 5, 27)),
)
BAD_HOST_NAMES = st.one_of(
    st.sampled_from(
        [
            *["", "1a", "-a", "a_b", "a.b", "a b", "a" * 33, "a" * 200, "\xe9", "h\xe9"],
            *["h\n", "h\x00", "\uff41", "h\u200b", "\u0130", "\u212a", "\U0001f600", "a\r"],
            "a\x1b[31m",
        ]
    ),
    st.text(ODD_CHARS, max_size=40).filter(lambda s: not re.fullmatch(NAME_RE, s)),
)
BAD_DOMAINS = st.one_of(
    st.sampled_from(
        [
            *["", ".", "..", "a..b", "-a.test", "a-.test", "a_b.test", "exa mple.test"],
            *["\xe9.test", "\xdf.test", "\uff45xample.test", "a.test\n", "\u200ba.test"],
            *["\u212a.test", "\ufb00.test", "a" * 64 + ".test", ".".join(["a" * 63] * 5)],
        ]
    ),
    st.text(ODD_CHARS, max_size=20).filter(
        lambda s: (
            not re.fullmatch(
                r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?",
                s,
                re.ASCII | re.IGNORECASE,
            )
        )
    ),
)
BAD_ADDRESSES = [
    "", "10.0.0.256/24", "10.1.2.3/33", "1.2.3/24", "10.0.0.1/", "/24", "10.0.0.1/24/24",
    "fd00:::1/64", "fd00::1/129", "fd00::g/64", "localhost", "10.0.0.1 /24",
    "\u0661\u0660.0.0.1/24", "\uff11\uff10.0.0.1/24", "10.0.0.1\n/24", "10.0.0.1/24\x00",
    "10.0.0.1/4294967296", "10.0.0.1/99999999999999999999", " 10.0.0.1/24",
    "127.0.0.2/8", "0.0.0.0/8", "224.0.0.5/24", "169.254.0.9/16", "::1/128", "::/64",
    "fe80::9/64", "ff02::9/64",
]  # fmt: skip
BAD_ROUTE_VIAS = ["", "gateway", "10.0.0", "10.0.0.1/24", "fe80::1%", "10.0.0.1 ", "fe80::1%eth0"]
BAD_ROUTE_TOS = ["", "nowhere", "10.1.0.1/24", "10.0.0.0/33", "fd00::/129", "Default", "defaul"]
BAD_OPTIONS: dict[str, list[Any]] = {
    "idle_timeout": [0, 0.05, -1, math.nan, "1", True, [1]],
    "max_connections": [0, -1, 1.5, "8", True, -(2**63)],
    "restart_limit": [-1, 0.5, "2", False, math.nan],
    "health_timeout": [0, 0.09, -5, math.nan, "15", False, -math.inf],
}
BAD_RECORDS = [
    "www", "www A", "www A 300.1.1.1", "www AAAA 10.0.0.1", "www MX ten mail",
    "@ CNAME elsewhere", "www.other. A 10.0.0.1", "www BOGUS 1",
]  # fmt: skip
SYNTAX_ERRORS = [
    "= 1", "x = ", "[", 'x = "', "x = 1 1", "x = [1,", "x = {", "x = tru", "\x01",
    "x = 1979-13-01", "x = 0x", "x = 1__0", "x = 01", "x = .5", '"""', "\ufeffx = 1",
    "x = {a = 1,}", "x = nan1", "[x]]", 'x = "\\q"',
]  # fmt: skip
MUTATIONS: dict[str, Mutation] = {}


def mutation(function: Mutation) -> Mutation:
    MUTATIONS[function.__name__] = function
    return function


def _fresh(taken: Iterable[str], base: str = "fz") -> str:
    """A valid name not in ``taken`` (compared ignoring case)."""
    names = {n.casefold() for n in taken}
    i = 0
    while f"{base}{i}".casefold() in names:
        i += 1
    return f"{base}{i}"


def _services(data: Data, host: str) -> list[Data]:
    table = data["hosts"][host]
    services: list[Data] = table.setdefault("services", [])
    return services


def _service_names(data: Data) -> set[str]:
    return {s.get("name", s["kind"]) for h in data["hosts"].values() for s in h.get("services", [])}


def _dns_host(data: Data) -> tuple[str, int] | None:
    for name, host in data["hosts"].items():
        for i, service in enumerate(host.get("services", [])):
            if service["kind"] == "dns":
                return name, i
    return None


def _with_dns(draw: st.DrawFn, case: Case, data: Data) -> bool:
    """Make sure ``data`` has a DNS server and a domain; False if no host can serve."""
    if _dns_host(data) is None:
        addressed = [h for h in case.hosts if case.attached[h]]
        if not addressed:
            return False
        host = draw(st.sampled_from(addressed))
        if 53 in {p for s in _services(data, host) for p in s.get("ports", [7])}:
            return False
        _services(data, host).append({"kind": "dns", "name": _fresh(_service_names(data), "ns")})
    data.setdefault("domain", "fuzz.test")
    return True


def _rename(table: Data, old: str, new: str) -> Data:
    return {new if k == old else k: v for k, v in table.items()}


@mutation
def unknown_key(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    key = draw(ODD_TEXT.filter(bool))
    host = draw(st.sampled_from(case.hosts))
    routes = data["hosts"][host].setdefault("routes", [])
    route: Data = {"to": "default", "via": "10.0.0.1"}
    zone: Data = {}
    site: Data = {"app": "fuzz:app"}
    top = {"name", "domain", "hosts", "lans", "links", "dns", "sites", "address_selection"}
    # where the key goes, the keys that belong there, and the table
    places: list[tuple[str, set[str], Data]] = [
        ("", top, data),
        (f"hosts.{host}.", {"forward", "nat", "routes", "services"}, data["hosts"][host]),
        (f"hosts.{host}.routes[{len(routes)}].", {"to", "via"}, route),
        ("dns.", {"records", "zones"}, data.setdefault("dns", {})),
        ("dns.zones.other.test.", {"records"}, zone),
        ("sites.fuzz.example.", {"host", "app", "static", "redirect"}, site),
    ]
    for kind in ("lans", "links"):
        places += [(f"{kind}.{n}.", {"mtu", "hosts"}, data[kind][n]) for n in case.networks(kind)]
    prefix, taken, table = draw(st.sampled_from(places))
    if key in taken:
        return None
    table[key] = 1
    if table is route:
        routes.append(route)
    elif table is zone:
        data["dns"]["zones"] = {"other.test": zone}
    elif table is site:
        data["sites"] = {"fuzz.example": site}
    return data, prefix + key


@mutation
def unknown_option(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    """Refused by up: what a service's engine knows."""
    key = draw(ODD_TEXT.filter(bool))
    known = {"kind", "name", "engine", "ports", "restart_limit", "health_timeout"}
    if key in known | {"idle_timeout", "max_connections"}:
        return None
    host = draw(st.sampled_from(case.hosts))
    services = _services(data, host)
    services.append({"kind": "echo", "name": _fresh(_service_names(data)), key: 1})
    return data, f"hosts.{host}.services[{len(services) - 1}].{key}"


def _wrong(draw: st.DrawFn, *right: type) -> Any:
    """A value of none of the types ``right`` (bool is not an int here)."""

    def fits(value: object) -> bool:
        if isinstance(value, bool):
            return bool in right
        return isinstance(value, right)

    return draw(ANY_VALUE.filter(lambda v: not fits(v)))


def _put(table: Data, key: str, make: Callable[[Any], Any] = lambda v: v) -> Putter:
    """What puts a value, made by ``make``, at ``key`` of ``table``."""

    def put(value: Any) -> None:
        table[key] = make(value)

    return put


Putter = Callable[[Any], object]


@mutation
def wrong_type(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    host = draw(st.sampled_from(case.hosts))
    h, table = f"hosts.{host}", data["hosts"][host]
    routes, services = table.setdefault("routes", []), table.setdefault("services", [])
    r, s = f"{h}.routes[{len(routes)}]", f"{h}.services[{len(services)}]"
    fresh = _fresh(_service_names(data))

    def service(key: str, make: Callable[[Any], Any] = lambda v: v) -> Putter:
        return lambda value: services.append({"kind": "echo", "name": fresh, key: make(value)})

    def route(key: str, other: Data) -> Putter:
        return lambda value: routes.append({**other, key: value})

    site = "sites.fuzz.example"
    # the field at fault, the types it takes, and where a value of another type goes
    targets: list[tuple[str, tuple[type, ...], Putter]] = [
        *((key, (str,), _put(data, key)) for key in ("name", "domain", "address_selection")),
        *((key, (dict,), _put(data, key)) for key in ("hosts", "lans", "links", "dns", "sites")),
        (h, (dict,), _put(data["hosts"], host)),
        (f"{h}.forward", (bool,), _put(table, "forward")),
        (f"{h}.nat", (str,), _put(table, "nat")),
        (f"{h}.routes", (list,), _put(table, "routes")),
        (r, (dict,), routes.append),
        (f"{r}.via", (str,), route("via", {"to": "default"})),
        (f"{r}.to", (str,), route("to", {"via": "10.0.0.1"})),
        (f"{h}.services", (list,), _put(table, "services")),
        (s, (dict,), services.append),
        (f"{s}.kind", (str,), service("kind")),
        (f"{s}.name", (str,), service("name")),
        (f"{s}.engine", (str,), service("engine")),
        (f"{s}.ports", (list,), service("ports")),
        (f"{s}.ports", (int,), service("ports", lambda v: [7, v])),
        ("dns.records", (list,), _put(data, "dns", lambda v: {"records": v})),
        ("dns.records[1]", (str,), _put(data, "dns", lambda v: {"records": ["@ MX 10 a", v]})),
        ("dns.zones", (dict,), _put(data, "dns", lambda v: {"zones": v})),
        ("dns.zones.z.test", (dict,), _put(data, "dns", lambda v: {"zones": {"z.test": v}})),
        (
            "dns.zones.z.test.records",
            (list,),
            _put(data, "dns", lambda v: {"zones": {"z.test": {"records": v}}}),
        ),
        (site, (dict,), _put(data, "sites", lambda v: {"fuzz.example": v})),
        (f"{site}.app", (str,), _put(data, "sites", lambda v: {"fuzz.example": {"app": v}})),
    ]
    for kind in ("lans", "links"):
        if not case.networks(kind):
            continue
        name = draw(st.sampled_from(case.networks(kind)))
        n, net = f"{kind}.{name}", data[kind][name]
        ends = net["hosts"]
        member = draw(st.sampled_from(list(ends)))
        targets += [
            (n, (dict,), _put(data[kind], name)),
            (f"{n}.mtu", (int,), _put(net, "mtu")),
            (f"{n}.hosts", (dict,), _put(net, "hosts")),
            (f"{n}.hosts.{member}", (str, list), _put(ends, member)),
            (
                f"{n}.hosts.{member}",
                (str,),
                _put(ends, member, lambda v: ["10.9.9.9/24", v]),
            ),
        ]
    field, right, put = draw(st.sampled_from(targets))
    put(_wrong(draw, *right))
    return data, field


@mutation
def wrong_option_type(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    """Refused by up: an option of the wrong type, or out of its range."""
    option = draw(st.sampled_from(sorted(BAD_OPTIONS)))
    value = draw(st.sampled_from(BAD_OPTIONS[option]))
    host = draw(st.sampled_from(case.hosts))
    services = _services(data, host)
    services.append({"kind": "echo", "name": _fresh(_service_names(data)), option: value})
    return data, f"hosts.{host}.services[{len(services) - 1}].{option}"


@mutation
def bad_address(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    kind = draw(st.sampled_from(["lans", "links"]))
    if not case.networks(kind):
        return None
    net = draw(st.sampled_from(case.networks(kind)))
    members = data[kind][net]["hosts"]
    member = draw(st.sampled_from(list(members)))
    addresses = members[member] if isinstance(members[member], list) else [members[member]]
    bad = draw(st.sampled_from(BAD_ADDRESSES))
    if kind == "lans":  # a LAN's subnet has rules of its own
        first = ipaddress.ip_interface(addresses[0])
        subnet = first.network
        own = [f"{first.ip}", f"{first.ip}/0"]
        if subnet.prefixlen < 31:
            own += [f"{subnet.network_address}/{subnet.prefixlen}"]
            own += [f"{subnet.broadcast_address}/{subnet.prefixlen}"]
        bad = draw(st.sampled_from([bad, *own]))
    at = draw(st.integers(0, len(addresses) - 1))
    members[member] = [*addresses[:at], bad, *addresses[at + 1 :]]
    return data, f"{kind}.{net}.hosts.{member}"


@mutation
def foreign_subnet(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    """A LAN's addresses share one subnet per family: the second one differs."""
    lans = [n for n in case.networks("lans") if len(data["lans"][n]["hosts"]) >= 2]
    if not lans:
        return None
    net = draw(st.sampled_from(lans))
    members = data["lans"][net]["hosts"]
    member = draw(st.sampled_from(list(members)[1:]))
    members[member] = [draw(st.sampled_from(["10.99.0.1/24", "10.1.0.1/8", "fd00:99::1/64"]))]
    # an IPv6 address differs only where the first member has IPv6 too
    first = next(iter(members.values()))
    families = {
        ipaddress.ip_interface(a).version for a in ([first] if isinstance(first, str) else first)
    }
    if ipaddress.ip_interface(members[member][0]).version not in families:
        return None
    if ipaddress.ip_interface(members[member][0]).network in {
        ipaddress.ip_interface(a).network for a in ([first] if isinstance(first, str) else first)
    }:
        return None
    return data, f"lans.{net}.hosts.{member}"


@mutation
def duplicate_address(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    how = draw(st.sampled_from(["lan", "link", "same host"]))
    if how in ("lan", "link"):
        kind = how + "s"
        nets = [n for n in case.networks(kind) if len(data[kind][n]["hosts"]) >= 2]
        if not nets:
            return None
        net = draw(st.sampled_from(nets))
        members = data[kind][net]["hosts"]
        first, *rest = list(members)
        member = draw(st.sampled_from(rest))
        members[member] = members[first]
        return data, f"{kind}.{net}.hosts.{member}"
    on_lans = [h for h in case.hosts if any(n in case.networks("lans") for n in case.attached[h])]
    if not on_lans:
        return None
    host = draw(st.sampled_from(on_lans))
    lan = next(n for n in case.attached[host] if n in case.networks("lans"))
    mine = data["lans"][lan]["hosts"][host]
    address = mine if isinstance(mine, str) else mine[0]
    other = draw(st.sampled_from([h for h in case.hosts if h != host]))
    name = _fresh([*case.networks("lans"), *case.networks("links")], "dup")
    data.setdefault("links", {})[name] = {"hosts": {host: [address], other: ["10.250.0.2/24"]}}
    return data, f"links.{name}.hosts.{host}"


@mutation
def bad_host_name(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    host = draw(st.sampled_from(case.hosts))
    if draw(st.booleans()):  # the same name in another case
        twin = host.swapcase()
        data["hosts"][twin] = {}
        return data, f"hosts.{twin}"
    bad = draw(BAD_HOST_NAMES)
    data["hosts"] = _rename(data["hosts"], host, bad)
    for kind in ("lans", "links"):
        for net in data.get(kind, {}).values():
            net["hosts"] = _rename(net["hosts"], host, bad)
    return data, f"hosts.{bad}"


@mutation
def bad_network_name(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    kind = draw(st.sampled_from(["lans", "links"]))
    if not case.networks(kind):
        return None
    net = draw(st.sampled_from(case.networks(kind)))
    if draw(st.booleans()):  # declared twice: as a LAN and as a link (LANs come first)
        if kind == "lans":
            data.setdefault("links", {})[net] = {"hosts": {}}
        else:
            data.setdefault("lans", {})[net] = {"hosts": {case.hosts[0]: ["10.252.0.1/24"]}}
        return data, f"links.{net}"
    bad = draw(BAD_HOST_NAMES)
    data[kind] = _rename(data[kind], net, bad)
    for host in data["hosts"].values():
        if host.get("nat") == net:
            host["nat"] = bad
    return data, f"{kind}.{bad}"


@mutation
def bad_service_name(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    host = draw(st.sampled_from(case.hosts))
    services = _services(data, host)
    field = f"hosts.{host}.services[{len(services)}]"
    how = draw(st.sampled_from(["name", "kind", "twice"]))
    if how == "name":
        bad = draw(BAD_HOST_NAMES.filter(bool))  # an empty name is the kind's
        services.append({"kind": "echo", "name": bad})
        return data, f"{field}.name"
    if how == "kind":
        services.append({"kind": draw(BAD_HOST_NAMES), "name": _fresh(_service_names(data))})
        return data, f"{field}.kind"
    name = _fresh(_service_names(data))
    services.append({"kind": "echo", "name": name, "ports": [1001]})
    services.append({"kind": "echo", "name": name, "ports": [1002]})
    return data, f"hosts.{host}.services[{len(services) - 1}].name"


@mutation
def bad_domain(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    bad = draw(BAD_DOMAINS)
    where = draw(st.sampled_from(["domain", "zone", "site"]))
    if where == "domain":
        data["domain"] = bad
        return data, "domain"
    if where == "zone":
        data.setdefault("dns", {})["zones"] = {bad: {"records": []}}
        return data, f"dns.zones.{bad}"
    if "." not in bad.casefold().removesuffix("."):
        bad = draw(st.sampled_from(["localhost", "com", "a.b.c..", bad + ".test"]))
    data["sites"] = {bad: {"app": "fuzz:app"}}
    return data, f"sites.{bad}"


@mutation
def bad_selection(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    bad = draw(st.sampled_from(["", "RFC6724", "ipv4_first", "ipv6-first ", "ipv4"]) | ODD_TEXT)
    if bad in SELECTIONS:
        return None
    data["address_selection"] = bad
    return data, "address_selection"


@mutation
def dangling(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    host = draw(st.sampled_from(case.hosts))
    table = data["hosts"][host]
    nets = case.networks("lans") + case.networks("links")
    ghost = draw(NAMES.filter(lambda n: n not in data["hosts"] and n not in nets))
    what = draw(st.sampled_from(["lan", "link", "nat", "nat elsewhere", "nat no forward", "site"]))
    if what == "lan":
        if not case.networks("lans"):
            return None
        net = draw(st.sampled_from(case.networks("lans")))
        data["lans"][net]["hosts"][ghost] = []
        return data, f"lans.{net}.hosts.{ghost}"
    if what == "link":
        if not case.networks("links"):
            return None
        net = draw(st.sampled_from(case.networks("links")))
        end = draw(st.sampled_from(list(data["links"][net]["hosts"])))
        data["links"][net]["hosts"] = _rename(data["links"][net]["hosts"], end, ghost)
        return data, f"links.{net}.hosts.{ghost}"
    if what == "nat":
        table.update(forward=True, nat=ghost)
        return data, f"hosts.{host}.nat"
    if what == "nat elsewhere":
        elsewhere = [n for n in nets if n not in case.attached[host]]
        if not elsewhere:
            return None
        table.update(forward=True, nat=draw(st.sampled_from(elsewhere)))
        return data, f"hosts.{host}.nat"
    if what == "nat no forward":
        if not case.attached[host]:
            return None
        table.update(forward=False, nat=draw(st.sampled_from(case.attached[host])))
        return data, f"hosts.{host}.nat"
    site = draw(st.sampled_from(["fuzz.example", "api.fuzz.example."]))
    if draw(st.booleans()):
        data["sites"] = {site: {"host": ghost, "app": "fuzz:app"}}
    else:  # a host that is there, but serves no http
        data["sites"] = {site: {"host": host, "app": "fuzz:app"}}
    return data, f"sites.{site}.host"


@mutation
def bad_site(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    host = draw(st.sampled_from(case.hosts))
    _services(data, host).append({"kind": "http", "name": _fresh(_service_names(data))})
    site: Data = {"host": host}
    how = draw(st.sampled_from(["none", "two", "app", "redirect"]))
    field = "sites.fuzz.example"
    if how == "two":
        site.update(app="fuzz:app", redirect="http://example.org")
    elif how == "app":
        site["app"] = draw(st.sampled_from(["", "module", "module:", ":app", "1a:b", "a:b.c"]))
        field += ".app"
    elif how == "redirect":
        site["redirect"] = draw(st.sampled_from(["", "example.org", "ftp://example.org", "HTTP"]))
        field += ".redirect"
    data["sites"] = {"fuzz.example": site}
    return data, field


@mutation
def bad_route(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    host = draw(st.sampled_from(case.hosts))
    routes: list[Data] = data["hosts"][host].setdefault("routes", [])
    r = f"hosts.{host}.routes[{len(routes)}]"
    gateway = draw(st.sampled_from(case.gateways[host] or ["10.0.0.1"]))
    how = draw(st.sampled_from(["via", "own", "unreachable", "to", "family", "missing", "twice"]))

    def to(via: str) -> str:  # a destination no generated route has
        return "198.18.0.0/15" if ":" not in via else "fd98::/48"

    if how in ("via", "own", "unreachable"):
        choices = {
            "via": BAD_ROUTE_VIAS,
            "own": case.own[host],
            "unreachable": ["203.0.113.9", "2001:db8:ffff::9"],
        }[how]
        if not choices:
            return None
        via = draw(st.sampled_from(choices))
        routes.append({"to": to(via), "via": via})
        return data, f"{r}.via"
    if how == "to":
        routes.append({"to": draw(st.sampled_from(BAD_ROUTE_TOS)), "via": gateway})
        return data, f"{r}.to"
    if how == "family":
        v4 = ipaddress.ip_address(gateway).version == 4
        routes.append({"to": "fd99::/48" if v4 else "172.16.0.0/12", "via": gateway})
        return data, f"{r}.via"
    if how == "missing":
        routes.append(draw(st.sampled_from([{"to": "default"}, {"via": gateway}, {}])))
        return data, r
    if not case.gateways[host]:
        return None
    everything = "0.0.0.0/0" if ipaddress.ip_address(gateway).version == 4 else "::/0"
    seen = {
        ipaddress.ip_network(everything if x["to"] == "default" else x["to"])
        for x in routes
        if ipaddress.ip_address(x["via"]).version == ipaddress.ip_address(gateway).version
    }
    first = len(routes)
    routes.append({"to": "default", "via": gateway})
    routes.append({"to": everything, "via": gateway})
    index = first if ipaddress.ip_network(everything) in seen else first + 1
    return data, f"hosts.{host}.routes[{index}].to"


@mutation
def bad_ports(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    host = draw(st.sampled_from(case.hosts))
    services = _services(data, host)
    s = f"hosts.{host}.services[{len(services)}]"
    how = draw(st.sampled_from(["range", "dns port", "clash"]))
    if how == "range":
        port = draw(st.sampled_from([0, -1, 65536, 2**31, 2**63 - 1, -(2**63)]))
        services.append({"kind": "echo", "name": _fresh(_service_names(data)), "ports": [port]})
        return data, f"{s}.ports"
    if how == "dns port":
        found = _dns_host(data)
        wrong = draw(st.sampled_from([[54], [53, 54], [5353], [53, 53]]))
        if found is not None:
            host, i = found
            data["hosts"][host]["services"][i]["ports"] = wrong
            return data, f"hosts.{host}.services[{i}].ports"
        services.append({"kind": "dns", "name": _fresh(_service_names(data)), "ports": wrong})
        return data, f"{s}.ports"
    # refused by up: two services of a host on one port (one that has an address)
    if not case.attached[host]:
        return None
    taken = {p for x in services for p in x.get("ports", [53 if x["kind"] == "dns" else 7])}
    port = draw(st.integers(1, 65535).filter(lambda p: p not in taken))
    for _ in range(2):
        services.append({"kind": "echo", "name": _fresh(_service_names(data)), "ports": [port]})
    return data, f"hosts.{host}.services[{len(services) - 1}].ports"


@mutation
def bad_dns(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    how = draw(st.sampled_from(["two servers", "no domain", "record", "zone record", "option"]))
    if how == "two servers":
        hosts = list(data["hosts"])
        found = _dns_host(data)
        if found is None:
            services = _services(data, hosts[0])
            services.append({"kind": "dns", "name": _fresh(_service_names(data))})
            found = hosts[0], len(services) - 1
        second = draw(st.sampled_from([h for h in hosts if h != found[0]]))
        services = _services(data, second)
        services.append({"kind": "dns", "name": _fresh(_service_names(data))})
        if hosts.index(second) > hosts.index(found[0]):
            return data, f"hosts.{second}.services[{len(services) - 1}]"
        return data, f"hosts.{found[0]}.services[{found[1]}]"
    if not _with_dns(draw, case, data):
        return None
    if how == "no domain":  # refused by up
        del data["domain"]
        return data, "domain"
    if how == "option":  # refused by up: echo's option on a dns service
        host, i = _dns_host(data) or ("", 0)
        option = draw(st.sampled_from(["idle_timeout", "max_connections", "command"]))
        data["hosts"][host]["services"][i][option] = 5
        return data, f"hosts.{host}.services[{i}].{option}"
    bad = draw(st.sampled_from(BAD_RECORDS))
    dns = data.setdefault("dns", {})
    if how == "record":  # refused by up
        records = dns.setdefault("records", [])
        records.append(bad)
        return data, f"dns.records[{len(records) - 1}]"
    dns["zones"] = {"other.test": {"records": ["@ A 10.7.7.7", bad]}}
    return data, "dns.zones.other.test.records[1]"


@mutation
def no_address_to_serve_on(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    """Refused by up: a service on a host attached to nothing."""
    lonely = _fresh(data["hosts"], "lonely")
    kind = draw(st.sampled_from(["echo", "dns"]))
    if kind == "dns" and _dns_host(data) is not None:
        return None
    data["hosts"][lonely] = {"services": [{"kind": kind}]}
    if kind == "dns":
        data.setdefault("domain", "fuzz.test")
    return data, f"hosts.{lonely}.services[0]"


@mutation
def huge(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    nets = [("lans", n) for n in case.networks("lans")] + [
        ("links", n) for n in case.networks("links")
    ]
    # (a LAN past the switch's 24,000 hosts is test_topology's: a fuzz case that
    # big takes long to write and load, and one below it is valid and built)
    how = draw(st.sampled_from(["mtu", "long name"]))
    if how == "long name":
        long = "h" * draw(st.sampled_from([33, 64, 255, 4096]))
        data["hosts"][long] = {}
        return data, f"hosts.{long}"
    if not nets:
        return None
    kind, net = draw(st.sampled_from(nets))
    mtu = draw(st.sampled_from([0, -1, 1279, 65536, 2**31, 2**63 - 1, -(2**63), 10**30]))
    data[kind][net]["mtu"] = mtu
    return data, f"{kind}.{net}.mtu"


@mutation
def empty(draw: st.DrawFn, case: Case, data: Data) -> tuple[Data, str] | None:
    how = draw(st.sampled_from(["no hosts", "lan", "link of one", "link of three", "nat"]))
    if how == "no hosts":
        data["hosts"] = {}
        return data, "hosts"
    if how == "nat":
        host = draw(st.sampled_from(case.hosts))
        data["hosts"][host].update(forward=True, nat="")
        return data, f"hosts.{host}.nat"
    if how == "lan":
        if not case.networks("lans"):
            return None
        net = draw(st.sampled_from(case.networks("lans")))
        data["lans"][net] = draw(st.sampled_from([{}, {"hosts": {}}, {"mtu": 1500}]))
        return data, f"lans.{net}.hosts"
    if not case.networks("links"):
        return None
    net = draw(st.sampled_from(case.networks("links")))
    ends = data["links"][net]["hosts"]
    if how == "link of one":
        ends.pop(draw(st.sampled_from(list(ends))))
    else:
        third = draw(
            st.sampled_from([h for h in case.hosts if h not in ends])
            if len(case.hosts) > 2
            else st.none()
        )
        if third is None:
            return None
        ends[third] = ["10.251.0.3/24"]
    return data, f"links.{net}.hosts"


def _syntax(draw: st.DrawFn, case: Case, data: Data) -> tuple[str, str] | None:
    lines = case.text.splitlines()
    how = draw(st.sampled_from(["insert", "header twice", "key twice"]))
    if how == "insert":
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, draw(st.sampled_from(SYNTAX_ERRORS)))
    else:
        header = how == "header twice"
        candidates = [i for i, line in enumerate(lines) if line.startswith("[") == header]
        if not candidates:
            return None
        at = draw(st.sampled_from(candidates))
        if header:
            lines.append(lines[at])
        else:
            lines.insert(at + 1, lines[at])
    return "\n".join(lines) + "\n", "syntax"


MUTATIONS["syntax"] = _syntax


@st.composite
def broken_cases(draw: st.DrawFn) -> Broken:
    case = draw(valid_cases(lan_of_two=True))
    names = list(MUTATIONS)
    start = draw(st.integers(0, len(names) - 1))
    for name in names[start:] + names[:start]:  # the first that applies
        mutated = MUTATIONS[name](draw, case, copy.deepcopy(case.data))
        if mutated is not None:
            data, field = mutated
            text = data if isinstance(data, str) else to_toml(data, case.inline_from)
            return Broken(text, field, name)
    raise AssertionError("no mutation applies")  # unknown_key at the top always does


# -- what a playground may leave behind ---------------------------------------


def _out(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def machine() -> dict[str, object]:
    """What the machine's own namespace has that no playground may add to."""
    return {
        "links": sorted(
            line.split(":")[1].strip() for line in _out(["ip", "-o", "link"]).splitlines()
        ),
        "nft": _out(["nft", "list", "ruleset"]),
    }


def left_of(name: str, before: dict[str, object], pins: list[str], inodes: set[int]) -> list[str]:
    """What is left of the playground ``name``: empty when nothing is."""
    left: list[str] = []
    paths = fabric.Paths.of(name)
    if name in Playground.names():
        left.append(f"{name} is still listed")
    if paths.dir.exists():
        left.append(f"{paths.dir} (state, pins, files) is still there")
    left += [f"pin {p}" for p in pins if os.path.lexists(p)]
    prefix = f"netplay-{name}-"
    netns = Path("/run/netns")
    if netns.is_dir():
        left += [f"/run/netns/{n}" for n in os.listdir(netns) if n.startswith(prefix)]
    left += [f"ip netns {n}" for n in _out(["ip", "netns", "list"]).split() if n.startswith(prefix)]
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if f"/netplay/{name}/" in point + "/" or f"/{prefix}" in point:
            left.append(f"mount {point}")
    if inodes:
        left += [f"process {pid}" for pid in _procs.in_namespaces(inodes)]
    now = machine()
    added = sorted(set(now["links"]) - set(before["links"]))  # type: ignore[call-overload]
    left += [f"link {link}" for link in added]
    if now["nft"] != before["nft"]:
        left.append(f"nft ruleset now: {now['nft']!r}")
    return left


def refused_cleanly(name: str) -> list[str]:
    """What a refused ``up`` left: not even a CA."""
    left = left_of(name, machine(), [], set())
    if fabric.Paths.of(name).data.exists():
        left.append(f"{fabric.Paths.of(name).data} (its CA)")
    return left


@pytest.fixture(scope="module", autouse=True)
def _remove_ours() -> Iterator[None]:
    """Remove the playgrounds of this module (by their names), with their CAs."""
    yield
    for name in (UP, REFUSED, CLI, EXTREME):
        Playground.remove(name, purge=True)


# -- valid topologies ---------------------------------------------------------


@settings(max_examples=200, **COMMON)  # type: ignore[arg-type]
@given(valid_cases())
def test_a_valid_topology_loads(case: Case) -> None:
    note(case.text)
    topology = loads(case.text, source=SOURCE)
    assert [h.name for h in topology.hosts] == case.hosts
    assert [n.name for n in topology.networks] == case.networks("lans") + case.networks("links")
    for host in topology.hosts:
        attached = list(topology.attachments_of(host.name))
        assert [n.name for n, _a in attached] == case.attached[host.name]
        assert [a.ifname for _n, a in attached] == [f"eth{i}" for i in range(len(attached))]


def _check_up(pg: Playground, topology: Topology) -> None:
    """Every interface up, with its addresses and MTU; every service running and
    answering on each TCP port it says it listens on."""
    for seen in pg.status().hosts:
        for iface in seen.interfaces:
            net = topology.network(iface.network)
            att = net.attachment(seen.name)
            assert att is not None
            where = f"{seen.name}/{iface.name} on {net.name}"
            assert iface.state is InterfaceState.UP, where
            assert iface.mtu == net.mtu, where
            have = sorted(str(ipaddress.ip_interface(a)) for a in iface.addresses)
            assert have == sorted(str(a) for a in att.addresses), where
    services = pg.services()
    declared = {f"{h.name}/{s.name}" for h in topology.hosts for s in h.services}
    assert {s.id for s in services} == declared
    for service in services:
        assert service.state is ServiceState.RUNNING, (service.id, service.reason)
    probe = (
        "import socket, sys\n"
        "for port in sys.argv[2:]:\n"
        "    socket.create_connection((sys.argv[1], int(port)), timeout=5).close()\n"
    )
    for host in topology.hosts:
        listens = (p for s in services if s.host == host.name for p in s.listens)
        ports = sorted({p.split("/")[1] for p in listens if p.startswith("tcp")})
        if ports:
            address = str(topology.primary_addresses(host.name)[0])
            argv = [sys.executable, "-c", probe, address, *ports]
            done = pg.host(host.name).run(argv, timeout=30)
            assert done.returncode == 0, f"{host.name}: ports {ports}: {done.stderr}"


def comes_up_and_goes_down(text: str) -> None:
    """Up (all of it working), then down leaving nothing; or the reason it did not."""
    topology = loads(text, source=SOURCE)
    pins, _links = fabric.made_by(fabric.Paths.of(UP), topology)
    before = machine()
    try:
        pg = Playground.up(topology, name=UP)
    except Exception as exc:
        left = left_of(UP, before, pins, set())
        Playground.remove(UP)
        raise AssertionError(f"a valid topology did not come up ({exc}); left: {left}") from exc
    try:
        inodes = {os.stat(p).st_ino for p in pg.state.pins if p.endswith(".net")}
        runners = list(pg.state.runners.values())
        _check_up(pg, topology)
    finally:
        pg.down()
    left = left_of(UP, before, pins, inodes)
    left += [f"runner {r.pid}" for r in runners if fabric.alive(r.pid, r.start)]
    assert left == []


@pytest.mark.needs_playground
@pytest.mark.timeout(420)  # room to shrink a failure
@settings(max_examples=15, **COMMON)  # type: ignore[arg-type]
@given(valid_cases())
def test_a_valid_topology_comes_up_and_goes_down_leaving_nothing(case: Case) -> None:
    note(case.text)
    comes_up_and_goes_down(case.text)


def _two_hosts(domain: str | None, a: str = "a", service: str | None = None) -> str:
    """Two hosts on a LAN, the first maybe with a service: TOML text."""
    top = f"domain = {toml_string(domain)}\n" if domain else ""
    services = f"services = [{service}]\n" if service else ""
    return (
        f'{top}[hosts."{a}"]\n{services}[hosts.b]\n'
        f'[lans.lan.hosts]\n"{a}" = ["10.1.0.1/24"]\nb = ["10.1.0.2/24"]\n'
    )


@pytest.mark.needs_playground
@pytest.mark.parametrize(
    "text",
    [
        # a full name longer than a certificate's subject may hold (64 characters)
        _two_hosts("networks.example-university.example.com", "workstation-number-twenty-1"),
        # an echo service on two ports answers on both (comes_up_and_goes_down asks)
        _two_hosts(None, service='{ kind = "echo", ports = [7, 8] }'),
    ],
    ids=["long full name", "echo on two ports"],
)
def test_a_valid_topology_at_an_edge_comes_up(text: str) -> None:
    """Valid topologies at the edges of the format, which generation rarely reaches."""
    comes_up_and_goes_down(text)


# -- broken topologies --------------------------------------------------------


def is_refused(broken: Broken) -> None:
    """Refused by ``loads``, or by ``up`` before anything is built, naming the field."""
    try:
        topology = loads(broken.text, source=SOURCE)
    except TopologyError as exc:
        assert exc.field == broken.field, f"{broken.mutation}: {exc}"
        assert str(exc).startswith(f"{SOURCE}:") and f"{broken.field}: " in str(exc)
        return
    # what only the service layer knows: refused by up, before anything is built
    try:
        pg = Playground.up(topology, name=REFUSED)
    except TopologyError as exc:
        assert exc.field == broken.field, f"{broken.mutation}: {exc}"
        assert f"{broken.field}: " in str(exc)
        assert refused_cleanly(REFUSED) == []
        return
    except Exception as exc:
        left = refused_cleanly(REFUSED)
        Playground.remove(REFUSED, purge=True)
        raise AssertionError(
            f"{broken.mutation}: not a TopologyError at {broken.field}: {exc!r}; left: {left}"
        ) from exc
    pg.down(purge=True)
    raise AssertionError(f"{broken.mutation}: accepted; expected an error at {broken.field!r}")


@pytest.mark.timeout(420)  # room to shrink a failure
@settings(max_examples=200, **COMMON)  # type: ignore[arg-type]
@given(broken_cases())
def test_a_broken_topology_is_refused_naming_the_field(broken: Broken) -> None:
    note(f"{broken.mutation}, at {broken.field!r}:\n{broken.text}")
    is_refused(broken)


#: broken topologies at sharp edges, which generation reaches rarely or not at all
EDGES = {
    "nan option": Broken(
        _two_hosts(None, service='{ kind = "echo", health_timeout = nan }'),
        "hosts.a.services[0].health_timeout",
        "wrong_option_type",
    ),
    "domain too long for DNS": Broken(
        _two_hosts(".".join(["d" * 63] * 4), service='{ kind = "dns" }'),
        "domain",
        "bad_domain",
    ),
    "non-ASCII domain": Broken(_two_hosts("stra\xdfe.test"), "domain", "bad_domain"),
    "a domain with its final dot": Broken(
        _two_hosts("fuzz.test.", service='{ kind = "dns" }'), "domain", "bad_domain"
    ),
    "newline in a name": Broken('[hosts."a\\nb"]\n', "hosts.a\nb", "bad_host_name"),
    "infinite health_timeout": Broken(
        _two_hosts(None, service='{ kind = "echo", health_timeout = inf }'),
        "hosts.a.services[0].health_timeout",
        "wrong_option_type",
    ),
    "a route to its own LAN": Broken(
        _two_hosts(None).replace(
            "[hosts.b]\n", '[hosts.b]\nroutes = [{ to = "10.1.0.0/24", via = "10.1.0.1" }]\n'
        ),
        "hosts.b.routes[0].to",
        "bad_route",
    ),
    "a site name with two final dots": Broken(
        _two_hosts(None) + '[sites."a.b.c.."]\napp = "x:y"\n', "sites.a.b.c..", "bad_domain"
    ),
}


@pytest.mark.parametrize("broken", EDGES.values(), ids=EDGES.keys())
def test_a_broken_topology_at_an_edge_is_refused(broken: Broken) -> None:
    is_refused(broken)


def _lines(text: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", text.rstrip("\n"))


def exits_6_with_one_line(broken: Broken) -> None:
    """``netplay up FILE`` exits 6 with one line naming the field, building nothing."""
    with tempfile.TemporaryDirectory(prefix="netplay-fuzz-") as tmp:
        path = Path(tmp) / SOURCE
        path.write_text(broken.text, encoding="utf-8")
        result = subprocess.run(
            [*NETPLAY, "up", str(path), "--name", CLI],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=60,
            check=False,
        )
    left = refused_cleanly(CLI)
    if result.returncode == 0 or left:
        Playground.remove(CLI, purge=True)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 6, (result.returncode, result.stderr)
    lines = _lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("netplay: "), result.stderr
    # the CLI writes line breaks in names as \n and \r, to keep its one line
    field = broken.field.replace("\r", "\\r").replace("\n", "\\n")
    assert f"{field}: " in lines[0], lines[0]
    assert left == []


@pytest.mark.needs_playground
@pytest.mark.timeout(420)  # room to shrink a failure
@settings(max_examples=20, **COMMON)  # type: ignore[arg-type]
@given(broken_cases())
def test_netplay_up_of_a_broken_file_exits_6_with_one_line(broken: Broken) -> None:
    note(f"{broken.mutation}, at {broken.field!r}:\n{broken.text}")
    exits_6_with_one_line(broken)


@pytest.mark.needs_playground
@pytest.mark.parametrize("broken", EDGES.values(), ids=EDGES.keys())
def test_netplay_up_of_a_broken_file_at_an_edge_exits_6(broken: Broken) -> None:
    exits_6_with_one_line(broken)


# -- values at the edge: refused, or they work --------------------------------


EXTREMES = [
    ("health_timeout", "inf"),
    ("health_timeout", "1e308"),
    ("idle_timeout", "inf"),
    ("idle_timeout", "1e308"),
    ("max_connections", str(2**63 - 1)),
    ("restart_limit", str(2**63 - 1)),
]


@pytest.mark.needs_playground
@pytest.mark.parametrize(("option", "value"), EXTREMES)
def test_an_extreme_option_is_refused_or_works(option: str, value: str) -> None:
    """A number too big to mean anything is refused (exit 6) or works (exit 0,
    and goes down leaving nothing); never an internal error."""
    before = machine()
    with tempfile.TemporaryDirectory(prefix="netplay-fuzz-") as tmp:
        path = Path(tmp) / "extreme.toml"
        path.write_text(_two_hosts(None, service=f'{{ kind = "echo", {option} = {value} }}'))
        result = subprocess.run(
            [*NETPLAY, "up", str(path), "--detach", "--name", EXTREME],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    down = subprocess.run(
        [*NETPLAY, "down", "--name", EXTREME], capture_output=True, text=True, check=False
    )
    assert down.returncode == 0, down.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 6), result.stderr
    if result.returncode:
        assert len(_lines(result.stderr)) == 1, result.stderr
    assert left_of(EXTREME, before, [], set()) == []

"""Link faults: loss, rate, down/up, and delay where the kernel can.

A *cable* is one veth pair: the point-to-point link between two routers,
or one host's connection to a LAN's switch.  ``netplay link A B`` acts on
the cable between A and B (on a LAN: A's cable to the switch it shares
with B), in both directions, or in one (``direction``: ``out``, what A
sends; ``in``, what it receives).  Loss is nftables (a random drop at the
receiving end's ingress), rate is a tbf qdisc on the sending end's egress,
down/up is the link state of both ends.  Delay and jitter need the netem
qdisc; where the kernel lacks it, that is said plainly and nothing is
changed.
"""

from __future__ import annotations

import dataclasses
import errno
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netplay._model import CableFaults
from netplay.errors import FabricError, MissingKernelFeatureError, UnknownHostError, UsageError
from netplay.fabric import _netlink as nl
from netplay.fabric import _nft
from netplay.fabric._namespaces import netns
from netplay.fabric._state import Paths
from netplay.topology import Topology

if TYPE_CHECKING:
    from pyroute2 import IPRoute

RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)$", re.IGNORECASE)
RATE_UNITS = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000}
TC_H_ROOT = 0xFFFFFFFF  # the root qdisc of an interface's egress
TIME_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(us|ms|s)$")


DIRECTIONS = ("both", "out", "in")


@dataclass(frozen=True, slots=True)
class End:
    """One end of a cable: the namespace key, interface name and index, and
    its name for people (a host, or for a switch the LAN)."""

    ns: str
    ifname: str
    index: int
    name: str

    def sends(self, only_from: str | None) -> bool:
        """Whether this end sends what a fault ``only_from`` applies to."""
        return only_from is None or only_from == self.name

    def receives(self, only_from: str | None) -> bool:
        """Whether this end receives what a fault ``only_from`` applies to."""
        return only_from is None or only_from != self.name


@dataclass(frozen=True, slots=True)
class Cable:
    id: str
    ends: tuple[End, End]


def cable(topology: Topology, a: str, b: str) -> Cable:
    """The cable between host ``a`` and host ``b`` (or ``a`` and a network named
    ``b``): a link's is the same whichever end is named first."""
    hosts = {h.name for h in topology.hosts}
    if a == b:
        raise UsageError(f"a link joins two hosts: {a} and {b} are one", hint="name two hosts")
    if a not in hosts:
        raise UnknownHostError(f"the playground has no host {a!r}", hint="see `netplay status`")
    networks = [n for n in topology.networks if n.name == b and n.attachment(a)]
    if not networks:
        if b not in hosts:
            raise UnknownHostError(
                f"the playground has no host or network {b!r}", hint="see `netplay status`"
            )
        networks = topology.shared_networks(a, b)
    if not networks:
        raise UsageError(
            f"{a} and {b} share no link or LAN",
            hint="name two hosts on the same link or LAN, as `netplay status` shows",
        )
    net = networks[0]
    if net.kind == "link":
        first, second = (
            End(x.host, x.ifname, nl.host_index(x.ifname), x.host) for x in net.attachments
        )
        return Cable(id=f"{first.name}/{net.name}", ends=(first, second))
    att = net.attachment(a)
    assert att is not None
    i = net.attachments.index(att)
    here = End(a, att.ifname, nl.host_index(att.ifname), a)
    there = End(nl.switch_key(net.name), nl.port_name(i), nl.port_index(i), net.name)
    return Cable(id=f"{a}/{net.name}", ends=(here, there))


def sender(c: Cable, a: str, direction: str) -> str | None:
    """Whose packets a fault in ``direction`` from host ``a``'s side applies to
    (None: both ways)."""
    if direction not in DIRECTIONS:
        raise UsageError(
            f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}",
            hint="out: what A sends to B; in: what A receives from B",
        )
    if direction == "both":
        return None
    mine, other = c.ends if c.ends[0].name == a else reversed(c.ends)
    return (mine if direction == "out" else other).name


def parse_loss(text: str) -> float:
    value = text.strip().removesuffix("%")
    try:
        percent = float(value)
    except ValueError:
        raise UsageError(f"loss {text!r} is not a percentage", hint="e.g. --loss 20%") from None
    if not 0 <= percent <= 100:
        raise UsageError(f"loss {text!r} is out of range", hint="use 0% to 100%")
    return percent


def parse_rate(text: str) -> int:
    """A rate such as 1mbit or 500kbit, in bits per second."""
    match = RATE_RE.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"rate {text!r} is not a rate", hint="e.g. --rate 1mbit or 500kbit")
    bits = float(match.group(1)) * RATE_UNITS[match.group(2).lower()]
    if bits < 8_000 or bits > 32_000_000_000:
        raise UsageError(f"rate {text!r} is out of range", hint="use 8kbit to 32gbit")
    return int(bits)


def parse_time(text: str) -> float:
    """A duration such as 20ms, in milliseconds."""
    match = TIME_RE.match(text.strip())
    if not match:
        raise UsageError(f"{text!r} is not a duration", hint="e.g. 20ms")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    return float(match.group(1)) * scale


def disturb(
    paths: Paths,
    topology: Topology,
    faults: Mapping[str, CableFaults],
    a: str,
    b: str,
    *,
    loss: str | None = None,
    rate: str | None = None,
    delay: str | None = None,
    jitter: str | None = None,
    down: bool = False,
    up: bool = False,
    clear: bool = False,
    direction: str | None = None,
) -> tuple[str, CableFaults]:
    """Change the faults of the cable between ``a`` and ``b`` (``faults`` are
    every cable's now); return its id and its faults after the change.
    ``direction`` (both, out or in, from ``a``'s side) applies to the loss,
    rate and delay of the cable, those given and those it has; without it,
    they keep the cable's.  Run where the namespaces are (see
    :class:`~netplay.fabric.Realm`)."""
    if down and up:
        raise UsageError("--down and --up contradict each other")
    # every value is read before anything changes: a bad one changes nothing
    percent = None if loss is None else parse_loss(loss)
    bits = None if rate is None else parse_rate(rate)
    for duration in (delay, jitter):
        if duration is not None:
            parse_time(duration)
    c = cable(topology, a, b)
    f = Faults(paths.net_pin)
    current = faults.get(c.id, CableFaults())
    if clear:
        f.loss(c, None)
        f.rate(c, None)
        f.state(c, True, topology)
        current = CableFaults()
    only_from = current.only_from if direction is None else sender(c, a, direction)
    directed = (loss, rate, delay, jitter, current.loss, current.rate, current.delay)
    if only_from is not None and not any(directed):
        raise UsageError(
            "--direction says which way --loss, --rate or --delay go, and none is given",
            hint=f"e.g. netplay link {a} {b} --loss 20% --direction {direction}",
        )
    turned = only_from != current.only_from  # what the cable has must turn too
    current = dataclasses.replace(current, only_from=only_from)
    if delay is not None or jitter is not None:
        current = dataclasses.replace(current, delay=delay, jitter=jitter)
    if delay is not None or jitter is not None or (turned and current.delay):
        f.delay(
            c, parse_time(current.delay or "0ms"), parse_time(current.jitter or "0ms"), only_from
        )
    if percent is not None:
        current = dataclasses.replace(current, loss=percent or None)
    if percent is not None or turned:
        f.loss(c, current.loss, only_from)
    if rate is not None:
        current = dataclasses.replace(current, rate=rate)
    if bits is not None or (turned and current.rate):
        net = topology.network(c.id.split("/", 1)[1])
        f.rate(c, bits or parse_rate(current.rate or ""), net.mtu, only_from)
    if down or up:
        f.state(c, up, topology)
        current = dataclasses.replace(current, down=down)
    if not (current.loss or current.rate or current.delay or current.jitter):
        current = dataclasses.replace(current, only_from=None)  # a direction of nothing
    return c.id, current


class Faults:
    """Applies faults to cables; ``pin`` maps a namespace key to its net pin."""

    def __init__(self, pin: Callable[[str], Path]) -> None:
        self._pin = pin

    def _each(self, c: Cable) -> Iterator[tuple[End, Path]]:
        for end in c.ends:
            yield end, self._pin(end.ns)

    def _tc(self, pin: Path, action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        from pyroute2 import IPRoute  # on first use: importing it takes about 0.2 s

        with netns(pin), IPRoute() as ipr:
            action(ipr, *args, **kwargs)

    def loss(self, c: Cable, percent: float | None, only_from: str | None = None) -> None:
        """A random drop at the ingress of the ends that receive what it applies to."""
        for end, pin in self._each(c):
            if percent and end.receives(only_from):
                _nft.apply(pin, _nft.set_loss(end.ifname, percent), f"{end.ns} {end.ifname}")
            else:
                try:
                    _nft.apply(pin, _nft.clear_loss(end.ifname), f"{end.ns} {end.ifname}")
                except FabricError:
                    pass  # there was no loss to clear

    def rate(
        self, c: Cable, bits: int | None, mtu: int = 1500, only_from: str | None = None
    ) -> None:
        """A tbf qdisc on the egress of the ends that send what it applies to
        (None removes it)."""
        for end, pin in self._each(c):
            if bits is None or not end.sends(only_from):
                self._tc(pin, _quiet_del, end.index)
                continue
            rate = bits // 8
            burst = max(2 * (mtu + 14), rate // 50)  # 20 ms of traffic, at least two frames
            self._tc(
                pin,
                _tc,
                "replace",
                kind="tbf",
                index=end.index,
                rate=rate,
                burst=burst,
                latency="50ms",
            )

    def state(self, c: Cable, up: bool, topology: Topology) -> None:
        """Set both ends down or up; going up puts back the routes the kernel dropped."""
        hosts = {h.name: h for h in topology.hosts}
        for end, pin in self._each(c):
            requests = [
                nl.link_state(end.index, up).saying("set {} {}", end.ifname, "up" if up else "down")
            ]
            if up and end.ns in hosts:
                interfaces = topology.by_host()[end.ns]
                requests += nl.routes(hosts[end.ns], interfaces, nl.REPLACE)
            with netns(pin), nl.Socket() as sock:
                sock.send(end.ns, requests)

    def delay(
        self, c: Cable, delay_ms: float, jitter_ms: float = 0.0, only_from: str | None = None
    ) -> None:
        """netem delay on the egress of the ends that send what it applies to
        (replaces a rate limit there)."""
        from pyroute2.netlink.exceptions import NetlinkError

        for end, pin in self._each(c):
            if not end.sends(only_from):
                self._tc(pin, _quiet_del, end.index)
                continue
            try:
                self._tc(
                    pin,
                    _tc,
                    "replace",
                    kind="netem",
                    index=end.index,
                    delay=int(delay_ms * 1000),
                    jitter=int(jitter_ms * 1000),
                )
            except NetlinkError as exc:
                if exc.code in (errno.ENOENT, errno.EOPNOTSUPP, errno.EINVAL):
                    raise MissingKernelFeatureError(
                        "this kernel has no netem qdisc (sch_netem), so links cannot be "
                        "delayed or given jitter",
                        hint="loss, rate and down/up work without it; for delay, use a "
                        "kernel built with CONFIG_NET_SCH_NETEM",
                    ) from exc
                raise FabricError(f"the kernel refused the delay ({exc})") from exc


def _tc(ipr: IPRoute, *args: Any, **kwargs: Any) -> None:
    ipr.tc(*args, **kwargs)


def _quiet_del(ipr: IPRoute, index: int) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        ipr.tc("del", index=index, parent=TC_H_ROOT)
    except NetlinkError:
        pass  # no qdisc was there

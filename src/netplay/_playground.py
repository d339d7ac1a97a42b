"""The playground: build a topology into namespaces, use it, tear it down.

    with netplay.Playground.up("book") as pg:
        pg.host("h1").run(["traceroute", "-n", "www"])

Lifecycle: :meth:`Playground.up` validates the topology, records in the
state file everything it is about to make, makes it, and marks it ready.
:meth:`Playground.attach` finds a running one from any process;
:meth:`Playground.down` removes everything the state file names, and only
that, and works after a crash too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from pyroute2 import IPRoute

from netplay import dns, pki, services
from netplay.errors import (
    AlreadyRunningError,
    FabricError,
    NotRunningError,
    ServiceError,
    UnknownHostError,
    UsageError,
)
from netplay.fabric import _faults as faults
from netplay.fabric import _namespaces as namespaces
from netplay.fabric import _netlink as nl
from netplay.fabric import _nft as nft
from netplay.fabric import _procs as procs
from netplay.fabric import _userns as userns
from netplay.fabric._state import Paths, base_dir, list_names, read_state, write_state
from netplay.hosts import Host
from netplay.topology import Topology, load, loads

log = logging.getLogger("netplay")


def _specs(topology: Topology) -> list[namespaces.NsSpec]:
    specs = [namespaces.NsSpec(key=h.name, host=True, forward=h.forward) for h in topology.hosts]
    specs += [
        namespaces.NsSpec(key=nl.switch_key(n.name), host=False)
        for n in topology.networks
        if n.kind == "lan"
    ]
    return specs


def _source(spec: str | Topology) -> tuple[Topology, dict[str, str]]:
    """The topology, and how to get it back from the state file."""
    if isinstance(spec, Topology):
        raise UsageError("pass a topology spec (book, line:N, star:N or a .toml path)")
    topology = load(spec)
    if spec == "book" or (":" in spec and not Path(spec).exists()):
        return topology, {"spec": spec}
    return topology, {"spec": spec, "text": Path(spec).read_text(encoding="utf-8")}


def _restore(source: dict[str, str]) -> Topology:
    if "text" in source:
        return loads(source["text"], source=source["spec"])
    return load(source["spec"])


class Playground:
    """A running playground; make one with :meth:`up` or find one with :meth:`attach`."""

    def __init__(self, paths: Paths, topology: Topology, state: dict[str, Any]) -> None:
        self.paths = paths
        self.topology = topology
        self.state = state
        #: leaving ``with`` also deletes the CA and certificates (see :meth:`up`)
        self.purge_on_exit = False

    @property
    def name(self) -> str:
        return self.paths.name

    def __repr__(self) -> str:
        return f"<Playground {self.name} ({len(self.topology.hosts)} hosts)>"

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def up(
        cls, topology: str = "book", *, name: str | None = None, purge: bool = False
    ) -> Playground:
        """Build ``topology`` (book, line:N, star:N or a TOML path) and return it ready.

        With ``purge``, a throwaway playground (a benchmark's, a test's): its
        CA and certificates go when it goes down by leaving ``with``, or when
        ``up`` fails."""
        topo, source = _source(topology)
        paths = Paths.of(name or topo.name)
        if any(h.nat for h in topo.hosts):
            nft.nft_path()
        services.contexts(topo, pki.Store(paths.data), {})  # checks them before anything is made
        old = read_state(paths)
        if old is not None:
            if _running(old):
                raise AlreadyRunningError(
                    f"a playground named {paths.name!r} is already running",
                    hint=f"use it, stop it with `netplay down --name {paths.name}`, "
                    "or start another with --name",
                )
            log.info("removing what a crashed playground %s left", paths.name)
            _teardown(paths, old)
        state: dict[str, Any] = {
            "name": paths.name,
            "mode": "root" if paths.root else "rootless",
            "source": source,
            "pid": os.getpid(),
            "pid_start": procs.start_time(os.getpid()),
            "detached": False,
            "ready": False,
            "created": time.time(),
            "pins": [],
            "faults": {},
            "data": str(paths.data),
            "services": {},
        }
        if not paths.root:
            state["keeper"] = userns.start_keeper()
            state["keeper_start"] = procs.start_time(state["keeper"])
        specs = _specs(topo)
        state["pins"] = [str(p) for s in specs for p in namespaces.pins_of(paths, s)]
        state["links"] = [str(p) for s in specs if (p := paths.netns_link(s.key))]
        state["made_run_netns"] = paths.root and not Path("/run/netns").exists()
        write_state(paths, state)
        pg = cls(paths, topo, state)
        pg.purge_on_exit = purge
        try:
            pg._join()
            pg._build(specs)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                _teardown(paths, state)
                if purge:
                    pg.pki.purge()
            if isinstance(exc, OSError):
                raise FabricError(f"building the playground failed: {exc}") from exc
            raise
        state["ready"] = True
        write_state(paths, state)
        return pg

    def _join(self) -> None:
        keeper = self.state.get("keeper")
        if keeper and os.geteuid() != 0:
            cwd = os.getcwd()
            userns.join(keeper)
            with contextlib.suppress(OSError):
                os.chdir(cwd)

    def _build(self, specs: list[namespaces.NsSpec]) -> None:
        topo, paths = self.topology, self.paths
        paths.etc_dir.mkdir(parents=True, exist_ok=True)
        dns_host = topo.dns_host()
        if dns_host is None:
            (paths.etc_dir / "hosts").write_text(topo.etc_hosts())
        else:
            for host in topo.hosts:
                (paths.etc_dir / f"hosts.{host.name}").write_text(topo.etc_hosts_of(host.name))
        (paths.etc_dir / "resolv.conf").write_text(topo.etc_resolv_conf())
        zones = dns.build(topo)
        store = self.pki
        now = dt.datetime.now(dt.UTC)
        issued = store.ensure(paths.name, pki.wanted(topo, zones), topo.domain or "localhost", now)
        if issued:
            log.info("issued %d certificates in %s", len(issued), store.dir)
        namespaces.create(paths, specs, list(pki.bundles(store.ca.read_bytes(), paths.etc_dir)))
        fds: dict[str, int] = {}
        sockets: dict[str, nl.Socket] = {}
        try:
            for spec in specs:
                pin = paths.net_pin(spec.key)
                fds[spec.key] = os.open(pin, os.O_RDONLY)
                with namespaces.netns(pin):
                    sockets[spec.key] = nl.Socket()
            nl.execute(nl.plan(topo, fds), sockets)
        finally:
            for sock in sockets.values():
                sock.close()
            for fd in fds.values():
                os.close(fd)
        for host in topo.hosts:
            if host.nat:
                outside = topo.network(host.nat).attachment(host.name)
                assert outside is not None
                nft.apply(paths.net_pin(host.name), nft.home_router(outside.ifname), host.name)
        try:
            services.start_all(paths, topo, store, zones, self.state)
        finally:
            write_state(paths, self.state)

    def detach(self) -> None:
        """Leave the playground running after this process exits."""
        self.state["detached"] = True
        write_state(self.paths, self.state)

    @classmethod
    def attach(cls, name: str | None = None) -> Playground:
        """The running playground ``name`` (default: the only one running)."""
        paths = Paths.of(name or _only_name())
        state = read_state(paths)
        if state is None or state.get("corrupt"):
            raise NotRunningError(f"no playground named {paths.name!r} is running")
        if not _running(state):
            raise NotRunningError(
                f"the playground {paths.name!r} is not running (its process died)",
                hint=f"clean it up with `netplay down --name {paths.name}`",
            )
        pg = cls(paths, _restore(state["source"]), state)
        pg._join()
        return pg

    @staticmethod
    def names() -> list[str]:
        """Names of the playgrounds this user has (running or left by a crash)."""
        return list_names(base_dir())

    @staticmethod
    def describe(name: str) -> dict[str, Any]:
        """A short summary of one playground for ``netplay list``."""
        paths = Paths.of(name)
        state = read_state(paths) or {}
        return {
            "name": name,
            "state": "running" if _running(state) else "crashed",
            "mode": state.get("mode", "?"),
            "topology": state.get("source", {}).get("spec", "?"),
            "hosts": sum(1 for p in state.get("pins", []) if p.endswith(".uts")),
        }

    def down(self, *, purge: bool = False) -> None:
        """Remove everything this playground made; safe to call twice.

        Its CA and certificates stay for the next ``up`` unless ``purge``."""
        _teardown(self.paths, self.state)
        if purge:
            self.pki.purge()

    @staticmethod
    def certificates(name: str | None = None) -> pki.Store:
        """The CA and certificates of ``name`` (default: the only one running),
        running or not, as long as it has been up once."""
        paths = Paths.of(name or _only_name())
        store = _store(paths, read_state(paths))
        if not store.ca.exists():
            raise NotRunningError(
                f"the playground {paths.name!r} has no CA yet",
                hint=f"it is made by `netplay up --name {paths.name}`",
            )
        return store

    @staticmethod
    def remove(name: str | None = None, *, purge: bool = False) -> str | None:
        """Remove the playground ``name``, running or left by a crash.

        Without a name, the only one there is.  Returns the name removed, or
        None when there was nothing to remove.  With ``purge``, its CA and
        certificates go too (even when it is not running).
        """
        if name is None:
            names = list_names(base_dir())
            if not names:
                return None
            if len(names) > 1:
                raise UsageError(
                    f"several playgrounds exist ({', '.join(names)})",
                    hint="choose one with --name",
                )
            name = names[0]
        paths = Paths.of(name)
        state = read_state(paths)
        if state is not None:
            _teardown(paths, state)
        purged = purge and _store(paths, state).purge()
        return name if state is not None or purged else None

    def __enter__(self) -> Playground:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down(purge=self.purge_on_exit)

    # -- using it ----------------------------------------------------------

    def host(self, name: str) -> Host:
        if not any(h.name == name for h in self.topology.hosts):
            raise UnknownHostError(
                f"the playground {self.name!r} has no host {name!r}",
                hint="see the hosts with `netplay status`",
            )
        return Host(self, name)

    @property
    def pki(self) -> pki.Store:
        """The playground's CA and certificates (kept across ``down``)."""
        return _store(self.paths, self.state)

    @property
    def hosts(self) -> list[Host]:
        return [Host(self, h.name) for h in self.topology.hosts]

    def link(
        self,
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
    ) -> dict[str, Any]:
        """Disturb the cable between ``a`` and ``b``; return its faults now."""
        cable = faults.cable(self.topology, a, b)
        f = faults.Faults(self.paths.net_pin)
        current: dict[str, Any] = dict(self.state["faults"].get(cable.id, {}))
        if down and up:
            raise UsageError("--down and --up contradict each other")
        if clear:
            f.loss(cable, None)
            f.rate(cable, None)
            f.state(cable, True, self.topology)
            current = {}
        if delay is not None or jitter is not None:
            d = faults.parse_time(delay or "0ms")
            j = faults.parse_time(jitter or "0ms")
            f.delay(cable, d, j)
            current.update(delay=delay, jitter=jitter)
        if loss is not None:
            percent = faults.parse_loss(loss)
            f.loss(cable, percent)
            current["loss"] = percent
        if rate is not None:
            net = self.topology.network(cable.id.split("/", 1)[1])
            f.rate(cable, faults.parse_rate(rate), net.mtu)
            current["rate"] = rate
        if down or up:
            f.state(cable, up, self.topology)
            current["down"] = down
        current = {k: v for k, v in current.items() if v not in (None, 0, 0.0, False)}
        if current:
            self.state["faults"][cable.id] = current
        else:
            self.state["faults"].pop(cable.id, None)
        write_state(self.paths, self.state)
        return current

    def services(self) -> list[dict[str, Any]]:
        """Every service: host, name, kind, engine, where it listens, state, pid, restarts."""
        return services.status(self.paths, self.topology, self.state)

    def service(self, ident: str, action: str) -> dict[str, Any]:
        """``restart``, ``stop`` or ``start`` the service ``ident`` (``www/https``);
        return its status once it has settled."""
        if action not in services.ACTIONS:
            raise UsageError(f"{action!r} is not one of {', '.join(services.ACTIONS)}")
        return services.control(self.paths, self.topology, self.state, ident, action)

    def log_of(self, ident: str) -> Path:
        """The log file of the service ``ident``."""
        for found in self.services():
            if found["id"] == ident:
                return Path(found["log"])
        names = ", ".join(s["id"] for s in self.services()) or "none"
        raise ServiceError(f"there is no service {ident!r} (there are: {names})")

    def status(self) -> dict[str, Any]:
        """Hosts, interfaces (live state and addresses), networks and faults."""
        hosts = []
        index = self.topology.by_host()
        for host in self.topology.hosts:
            live = _live(self.paths.net_pin(host.name))
            interfaces = []
            for net, att in index[host.name]:
                seen = live.get(att.ifname, {})
                interfaces.append(
                    {
                        "name": att.ifname,
                        "network": net.name,
                        "addresses": seen.get("addresses", [str(a) for a in att.addresses]),
                        "state": seen.get("state", "missing"),
                        "mtu": seen.get("mtu", net.mtu),
                    }
                )
            hosts.append(
                {
                    "name": host.name,
                    "forward": host.forward,
                    "nat": host.nat,
                    "interfaces": interfaces,
                }
            )
        return {
            "name": self.name,
            "mode": self.state.get("mode"),
            "topology": self.topology.name,
            "hosts": hosts,
            "networks": [
                {
                    "name": n.name,
                    "kind": n.kind,
                    "mtu": n.mtu,
                    "hosts": [a.host for a in n.attachments],
                }
                for n in self.topology.networks
            ],
            "faults": self.state.get("faults", {}),
            "services": self.services(),
        }


def _store(paths: Paths, state: dict[str, Any] | None) -> pki.Store:
    """The CA and certificates: where the state says they are (the environment
    that chose the data directory may differ now), else where they would be."""
    return pki.Store(Path((state or {}).get("data") or paths.data))


def _live(pin: Path) -> dict[str, dict[str, Any]]:
    """Interface name -> state, MTU and addresses, read from the kernel."""
    found: dict[str, dict[str, Any]] = {}
    with namespaces.netns(pin), IPRoute() as ipr:
        names = {}
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            names[link["index"]] = name
            found[name] = {
                "state": "up" if link["flags"] & nl.IFF_UP else "down",
                "mtu": link.get_attr("IFLA_MTU"),
                "addresses": [],
            }
        for addr in ipr.get_addr():
            if addr["scope"] != 0:  # global only, not link-local
                continue
            name = names.get(addr["index"])
            if name in found:
                local = addr.get_attr("IFA_LOCAL") or addr.get_attr("IFA_ADDRESS")
                found[name]["addresses"].append(f"{local}/{addr['prefixlen']}")
    return found


def _running(state: dict[str, Any]) -> bool:
    """Running: detached and ready, or its owning process (building or in the
    foreground) is alive; a rootless one also needs its keeper."""
    if not state or state.get("corrupt"):
        return False
    keeper = state.get("keeper")
    if keeper and not procs.alive(keeper, state.get("keeper_start")):
        return False
    if state.get("ready") and state.get("detached"):
        return True
    return procs.alive(state.get("pid"), state.get("pid_start"))


def _only_name() -> str:
    names = list_names(base_dir())
    running = [n for n in names if _running(read_state(Paths.of(n)) or {})]
    if len(running) == 1:
        return running[0]
    if not running:
        if names:
            raise NotRunningError(
                f"no playground is running (left by a crash: {', '.join(names)})",
                hint="clean up with `netplay down --name NAME`, or start one with `netplay up`",
            )
        raise NotRunningError("no playground is running")
    raise UsageError(
        f"several playgrounds are running ({', '.join(running)})",
        hint="choose one with --name",
    )


def _teardown(paths: Paths, state: dict[str, Any]) -> None:
    """Remove every process, pin, file and directory the state names."""
    keeper: int | None = state.get("keeper")
    keeper_alive = keeper is not None and procs.alive(keeper, state.get("keeper_start"))
    if keeper is not None and keeper_alive and os.geteuid() != 0:
        userns.join(keeper)
    pins = [Path(p) for p in state.get("pins", [])]
    inodes = namespaces.inodes(pins)
    if inodes:
        procs.terminate(procs.in_namespaces(inodes))
    namespaces.remove(pins, [Path(p) for p in state.get("links", [])])
    namespaces.release_dir(paths)
    if state.get("made_run_netns"):
        with contextlib.suppress(OSError):
            Path("/run/netns").rmdir()
    if keeper is not None and keeper_alive:
        procs.terminate([keeper], grace=0)
    own = []
    if paths.etc_dir.is_dir():
        own = [*paths.etc_dir.glob("hosts.*"), *paths.etc_dir.glob("trust*.pem")]
    services_dir = paths.dir / "services"
    if services_dir.is_dir():
        own += [p for p in services_dir.iterdir() if p.suffix in (".json", ".log", ".tmp")]
    for path in (
        paths.etc_dir / "hosts",
        *sorted(own),
        paths.etc_dir / "resolv.conf",
        paths.etc_dir,
        services_dir,
        paths.ns_dir,
        paths.state,
        paths.state.with_suffix(".tmp"),
        paths.dir,
    ):
        try:
            path.rmdir() if path.is_dir() else path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
            log.warning("left %s: it holds files netplay did not make", path)
    with contextlib.suppress(OSError):
        paths.base.rmdir()  # not while other playgrounds live there

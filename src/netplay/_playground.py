"""The playground: build a topology into namespaces, use it, tear it down.

    with netplay.Playground.up("book") as pg:
        pg.host("h1").run(["traceroute", "-n", "www"])

A facade over the layers.  :meth:`Playground.up` checks the topology and
its services, records in the state file everything it is about to make,
then has each layer make its part (the CA and certificates, the hosts'
files, the namespaces and links, the services) and marks it ready.
:meth:`Playground.attach` finds a running one from any process;
:meth:`Playground.down` asks each layer to remove what it made, and only
that, and works after a crash too.  Rootless, the work that needs the
namespaces runs through the playground's :class:`~netplay.fabric.Realm`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from netplay import _lifecycle, _status, fabric, pki
from netplay import services as _services
from netplay._model import CableFaults, ServiceStatus, State, Status, Summary
from netplay.errors import (
    FabricError,
    NotRunningError,
    ServiceError,
    StateError,
    UnknownHostError,
    UsageError,
)
from netplay.fabric import Paths, Realm
from netplay.hosts import Host
from netplay.topology import Topology, from_source, source_of

_KEY = object()  # only up() and attach() make Playground objects


class Playground:
    """A running playground; make one with :meth:`up` or find one with :meth:`attach`."""

    def __init__(self, key: object, paths: Paths, topology: Topology, state: State) -> None:
        if key is not _KEY:
            raise UsageError(
                "a Playground is not made directly",
                hint="start one with Playground.up() or find one with Playground.attach()",
            )
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

    @property
    def realm(self) -> Realm:
        return Realm(self.state.keeper, self.state.userns)

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def up(
        cls,
        topology: str | Topology = "book",
        *,
        name: str | None = None,
        purge: bool = False,
        services: bool = True,
        tag: str | None = None,
    ) -> Playground:
        """Build ``topology`` (book, line:N, star:N, a TOML path, or a Topology)
        and return it ready, every service answering.

        Without ``services``, the network alone (names resolve through
        /etc/hosts).  With ``purge``, a throwaway playground: its CA and
        certificates go when it goes down by leaving ``with``, or when ``up``
        fails.  ``tag`` names who made it (``netplay.testing``)."""
        with _lifecycle.collector_off():  # generating line:N makes a million objects
            topo, source = source_of(topology, services)
        try:
            paths = Paths.of(topo.name if name is None else name)
        except UsageError as exc:
            if name is not None:
                raise
            raise UsageError(
                f"{exc}: the topology's name (its name key, or its file's)",
                hint="choose one with --name (name= in Python): letters, digits, '-' or '_', "
                "at most 32",
            ) from None
        state = _lifecycle.begin(paths, topo, source, tag)
        pg = cls(_KEY, paths, topo, state)
        pg.purge_on_exit = purge
        try:
            pg.state = pg.realm.call(_lifecycle.make, paths, topo, state)
            keeper = pg.state.keeper
            if keeper is not None and not fabric.alive(keeper.pid, keeper.start):
                raise FabricError("the playground's keeper process ended while it was built")
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the first error is the one to tell
                # what the build recorded (rootless, it built in a child): its runners
                made = _lifecycle.read_any(paths) or state
                # a service that did not start: its log stays for the user to read
                _lifecycle.teardown(paths, made, keep_logs=isinstance(exc, ServiceError))
            if purge:
                with contextlib.suppress(Exception):
                    _lifecycle.purge_data(pg.pki.dir)
            left = "nothing of it was left behind; --debug shows the details"
            if isinstance(exc, OSError):
                raise FabricError(f"building the playground failed: {exc}", hint=left) from exc
            if isinstance(exc, FabricError):  # its own hint first, if it has one
                exc.hint = left if exc.hint == FabricError.hint else f"{exc.hint}; {left}"
            raise
        pg.state.ready = True
        fabric.write_state(paths, pg.state)
        return pg

    @property
    def is_up(self) -> bool:
        """Whether this playground is still up (not taken down, from here or elsewhere)."""
        try:
            now = fabric.read_state(self.paths)
        except StateError:
            return False
        return now is not None and now.created == self.state.created and _status.running(now)

    def detach(self) -> None:
        """Leave the playground running after this process exits."""

        def detached(state: State) -> None:
            state.detached = True

        self.state, _ = fabric.update_state(self.paths, detached)

    @classmethod
    def attach(cls, name: str | None = None) -> Playground:
        """The running playground ``name`` (default: the only one running)."""
        paths = Paths.of(_lifecycle.only_name() if name is None else name)
        state = fabric.read_state(paths)
        if state is None:
            raise NotRunningError(
                f"no playground named {paths.name!r} is running",
                hint=f"start it with: netplay up --detach --name {paths.name}",
            )
        if not _status.running(state):
            raise NotRunningError(
                f"the playground {paths.name!r} is not running (its process died)",
                hint=f"clean it up with `netplay down --name {paths.name}`",
            )
        return cls(_KEY, paths, from_source(state.source), state)

    @staticmethod
    def names() -> list[str]:
        """Names of the playgrounds this user has (running or left by a crash)."""
        return fabric.list_names(fabric.base_dir())

    @staticmethod
    def summaries() -> list[Summary]:
        """Every playground of this user, for ``netplay list``."""
        return [_status.summary(n) for n in Playground.names()]

    def down(self, *, purge: bool = False, keep_certificates: bool = False) -> None:
        """Remove everything this playground made; safe to call twice, and a
        no-op once its name belongs to another playground.

        What it keeps across ``down`` (its CA and certificates, what its
        services keep) stays for the next ``up`` unless ``purge``; with
        ``keep_certificates`` too, only the CA and certificates stay."""
        with contextlib.suppress(StateError):
            now = fabric.read_state(self.paths)
            if now is not None and now.created != self.state.created:
                return
        _lifecycle.teardown(self.paths, self.state)
        if purge and keep_certificates:
            _lifecycle.forget(Path(self.state.data))
        elif purge:
            _lifecycle.purge_data(Path(self.state.data))

    @staticmethod
    def certificates(name: str | None = None) -> pki.Store:
        """The CA and certificates of ``name`` (default: the only one running),
        running or not, as long as it has been up once."""
        paths = Paths.of(_lifecycle.only_name() if name is None else name)
        store = pki.Store(_lifecycle.kept_in(paths))
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
            names = Playground.names()
            if not names:
                return None
            if len(names) > 1:
                raise UsageError(
                    f"several playgrounds exist ({', '.join(names)})",
                    hint="choose one with --name",
                )
            name = names[0]
        return name if _lifecycle.remove(Paths.of(name), purge) else None

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
        return Host(name, paths=self.paths, realm=self.realm, pki=self.pki)

    @property
    def hosts(self) -> list[Host]:
        return [self.host(h.name) for h in self.topology.hosts]

    @property
    def pki(self) -> pki.Store:
        """The playground's CA and certificates (kept across ``down``)."""
        return pki.Store(Path(self.state.data))

    @property
    def ca(self) -> Path:
        """The CA certificate (PEM): what a client outside the hosts must trust."""
        return self.pki.ca

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
        direction: str | None = None,
    ) -> CableFaults:
        """Disturb the cable between ``a`` and ``b``; return its faults now.
        Loss, rate and delay go both ways, or ``direction="out"`` (what ``a``
        sends) or ``"in"`` (what it receives); without ``direction``, the way
        the cable's faults already go (both, for its first)."""
        change = functools.partial(
            fabric.disturb,
            loss=loss,
            rate=rate,
            delay=delay,
            jitter=jitter,
            down=down,
            up=up,
            clear=clear,
            direction=direction,
        )

        def changed(state: State) -> CableFaults:
            cable, now = self.realm.call(change, self.paths, self.topology, state.faults, a, b)
            if now:
                state.faults[cable] = now
            else:
                state.faults.pop(cable, None)
            return now

        self.state, now = fabric.update_state(self.paths, changed)
        return now

    def services(self) -> tuple[ServiceStatus, ...]:
        """Every service: host, name, kind, engine, where it listens, state, pid, restarts."""
        return _services.status(self.paths, self.topology, self.state.runners)

    def service(self, ident: str) -> ServiceStatus:
        """The service ``ident`` (``www/https``)."""
        every = self.services()
        for found in every:
            if found.id == ident:
                return found
        names = ", ".join(s.id for s in every) or "none"
        raise UnknownHostError(f"there is no service {ident!r} (there are: {names})")

    def control(self, ident: str, action: str) -> ServiceStatus:
        """``restart``, ``stop`` or ``start`` the service ``ident``; return its
        status once it has settled."""
        return _services.control(self.paths, self.topology, self.state.runners, ident, action)

    def logs(self, ident: str, *, lines: int | None = None, follow: bool = False) -> Iterator[str]:
        """The log of the service ``ident`` (see :func:`netplay.services.read_log`)."""
        return _services.read_log(Path(self.service(ident).log), lines=lines, follow=follow)

    def status(self) -> Status:
        """Hosts, interfaces (live state and addresses), networks, faults, services."""
        return _status.status(self.paths, self.topology, self.state)

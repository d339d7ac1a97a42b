"""The pytest plugin: fixtures that give a test real playgrounds, and markers to choose them.

Registered through the ``pytest11`` entry point, so installing netplay is
enough.  Fixtures (docs/testing.md has examples):

- ``shared_playground``: one playground per topology for the whole session
  (book unless a ``netplay_topology`` marker says otherwise); what a test
  changes in it, others see, so tests that disturb it use ``link_fault``;
- ``playground``: a fresh playground for this test alone, of the marker's
  topology, taken down after it;
- ``playground_factory``: ``make(topology, services=True)`` for tests that
  need several, or one of a topology built in the test;
- ``spawn``: ``spawn(host, argv, ready="line" | PORT | "udp/PORT")``, a
  background program in a host, ready when it returns, stopped after the test;
- ``link_fault``: ``link_fault(pg, a, b, loss="20%", ...)``, cleared after
  the test;
- ``playground_ca``: the CA certificate of the playground the test uses,
  for its own TLS clients.

Markers: ``netplay_topology(topology="book", services=True)`` on a test or
a module; ``needs_playground`` on a test that builds playgrounds itself.
Where the machine cannot build playgrounds, these tests are skipped with
the reason.  Rootless works as root does.  A session cleans up, when it
first needs a playground, what a killed session left
(:mod:`netplay.testing._environment`).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, Union

import pytest

if TYPE_CHECKING:
    from netplay import CableFaults, Host, Playground, Spawned, Topology
    from netplay.hosts import Ready

Spec = Union[str, "Topology"]
T = TypeVar("T")


def _environment() -> ModuleType:
    """The playground's side, imported only by sessions that use it: pytest
    loads this plugin in every session where netplay is installed."""
    return importlib.import_module("netplay.testing._environment")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "netplay_topology(topology='book', services=True): the topology of the test's "
        "playground and shared_playground (a spec such as line:3, a TOML path, or a Topology)",
    )
    config.addinivalue_line(
        "markers",
        "needs_playground: the test builds playgrounds; skipped where the machine cannot",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = None
    for item in items:
        if item.get_closest_marker("needs_playground") is None:
            continue
        reason = reason or _environment().cannot_build() or ""
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def _each(items: Iterable[T], action: Callable[[T], object]) -> None:
    """``action`` on every item, even after one fails; then the first failure."""
    failure: BaseException | None = None
    for item in items:
        try:
            action(item)
        except BaseException as exc:
            failure = failure or exc
    if failure is not None:
        raise failure


def _key(spec: Spec) -> str:
    """What makes two topologies the same playground: a spec, or every field of a
    Topology (its equality leaves services' options out)."""
    if isinstance(spec, str):
        return spec
    from netplay import to_data

    return json.dumps(to_data(spec), sort_keys=True)


class _Playgrounds:
    """The session's playgrounds: the shared ones, and names for fresh ones."""

    def __init__(self) -> None:
        self.shared: dict[tuple[str, bool], Playground] = {}
        self.fresh_in_use: set[str] = set()
        self.failed: set[str] = set()  # names whose up failed: their services' logs stay
        self.prefix = f"t{os.getpid()}"

    def up(self, spec: Spec, services: bool, name: str) -> Playground:
        from netplay import Playground

        try:
            return Playground.up(spec, name=name, services=services, tag=_environment().TAG)
        except BaseException:
            # the failure's message names its log, for the rest of the session;
            # no later up of this name may come to remove it
            self.failed.add(name)
            raise

    def shared_playground(self, spec: Spec, services: bool) -> Playground:
        key = (_key(spec), services)
        if key not in self.shared:
            self.shared[key] = self.up(spec, services, f"{self.prefix}s{len(self.shared)}")
        return self.shared[key]

    def fresh(self, spec: Spec, services: bool) -> Playground:
        """A new playground, named so that its certificates are kept from the
        last test that used that name (making them is most of a first ``up``)."""
        n = 0
        while f"{self.prefix}f{n}" in self.fresh_in_use:
            n += 1
        name = f"{self.prefix}f{n}"
        pg = self.up(spec, services, name)
        self.fresh_in_use.add(name)
        return pg

    def release(self, pg: Playground) -> None:
        """Down, and what its services kept goes too: the next test that gets
        this name starts from nothing but the certificates."""
        try:
            pg.down(purge=True, keep_certificates=True)
        finally:
            self.fresh_in_use.discard(pg.name)

    def close(self) -> None:
        shared, self.shared = list(self.shared.values()), {}
        _each(shared, lambda pg: pg.down())


@pytest.fixture(scope="session")
def _netplay_session() -> Iterator[_Playgrounds]:
    environment = _environment()
    reason = environment.cannot_build()
    if reason:
        pytest.skip(reason)
    before = os.environ.get("NETPLAY_DATA_DIR")
    os.environ["NETPLAY_DATA_DIR"] = str(environment.session_data_dir())
    environment.clean_after_killed_sessions()
    playgrounds = _Playgrounds()
    try:
        yield playgrounds
    finally:
        try:
            playgrounds.close()
        finally:
            data = os.environ.pop("NETPLAY_DATA_DIR")
            if before is not None:
                os.environ["NETPLAY_DATA_DIR"] = before
            for name in playgrounds.fresh_in_use | playgrounds.failed:
                environment.Playground.remove(name, purge=True)
            environment.remove_session_data_dir(Path(data))


def _marked(request: pytest.FixtureRequest) -> tuple[Spec, bool]:
    marker = request.node.get_closest_marker("netplay_topology")
    if marker is None:
        return "book", True
    spec = marker.args[0] if marker.args else marker.kwargs.get("topology", "book")
    return spec, bool(marker.kwargs.get("services", True))


@pytest.fixture
def shared_playground(_netplay_session: _Playgrounds, request: pytest.FixtureRequest) -> Playground:
    """The session's playground of the marked topology (default: book with its services)."""
    return _netplay_session.shared_playground(*_marked(request))


@pytest.fixture
def playground(
    _netplay_session: _Playgrounds, request: pytest.FixtureRequest
) -> Iterator[Playground]:
    """A fresh playground of the marked topology for this test alone."""
    pg = _netplay_session.fresh(*_marked(request))
    try:
        yield pg
    finally:
        _netplay_session.release(pg)


@pytest.fixture
def playground_factory(_netplay_session: _Playgrounds) -> Iterator[Callable[..., Playground]]:
    """``make(topology="book", *, services=True)``: fresh playgrounds, down after the test."""
    made: list[Playground] = []

    def make(topology: Spec = "book", *, services: bool = True) -> Playground:
        pg = _netplay_session.fresh(topology, services)
        made.append(pg)
        return pg

    try:
        yield make
    finally:
        _each(reversed(made), _netplay_session.release)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Spawned]]:
    """``spawn(host, argv, ready="line", timeout=10)``: see :meth:`Host.spawn`;
    every program spawned is stopped (and reaped) after the test."""
    started: list[Spawned] = []

    def start(host: Host, argv: list[str], *, ready: Ready = "line", **options: Any) -> Spawned:
        program = host.spawn(argv, ready=ready, **options)
        started.append(program)
        return program

    try:
        yield start
    finally:
        _each(reversed(started), lambda program: program.stop())


@pytest.fixture
def link_fault() -> Iterator[Callable[..., CableFaults]]:
    """``link_fault(pg, a, b, loss=..., rate=..., down=...)``: see
    :meth:`Playground.link`; every cable touched is cleared after the test."""
    touched: list[tuple[Playground, str, str]] = []

    def disturb(pg: Playground, a: str, b: str, **faults: Any) -> CableFaults:
        touched.append((pg, a, b))
        return pg.link(a, b, **faults)

    try:
        yield disturb
    finally:
        _each(
            [(pg, a, b) for pg, a, b in reversed(touched) if pg.is_up],
            lambda cable: cable[0].link(cable[1], cable[2], clear=True),
        )


@pytest.fixture
def playground_ca(request: pytest.FixtureRequest) -> Path:
    """The CA certificate of the test's ``playground``, or of its
    ``shared_playground``; playgrounds from ``playground_factory`` each have
    their own (``pg.ca``)."""
    names = [n for n in ("playground", "shared_playground") if n in request.fixturenames]
    if not names:
        raise pytest.UsageError(
            "playground_ca is the CA of the test's playground or shared_playground: "
            "ask for one of them too (a factory's playgrounds each have their own: pg.ca)"
        )
    pg: Playground = request.getfixturevalue(names[0])
    return pg.ca

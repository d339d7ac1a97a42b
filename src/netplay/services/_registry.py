"""Which engines serve which kinds: each engine module registers itself here.

An engine module (one per kind or per implementation, in
:mod:`netplay.services.engines` or in another package) ends with::

    register("echo", "builtin", EchoEngine())

and nothing else has to know it exists.  :func:`registered` imports every
module of :mod:`netplay.services.engines` (not its private ones, such as
``_telnet_session``: the engine that uses one imports it when its server
starts), and every module named by a ``netplay.engines`` entry point (how
a separate package adds a kind), once, on first use.  An engine module
must be cheap to import: it imports the library that does the work
(granian, aiosmtpd, ...) in the functions that start and check its server.
A kind's default engine (for a declaration that names none) is the one
registered with ``default=True``, else the first registered.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil

from netplay.errors import ServiceError, TopologyError
from netplay.services._base import Engine
from netplay.topology import Service

ENTRY_POINTS = "netplay.engines"

_ENGINES: dict[str, dict[str, Engine]] = {}
_DEFAULTS: dict[str, str] = {}
_loaded = False


def register(kind: str, name: str, engine: Engine, *, default: bool = False) -> None:
    """Make ``engine`` serve services of ``kind`` declared with ``engine = name``."""
    engines = _ENGINES.setdefault(kind, {})
    if engines.get(name, engine) is not engine:
        raise ValueError(f"a {kind} engine named {name!r} is registered already")
    engines[name] = engine
    if default or kind not in _DEFAULTS:
        _DEFAULTS[kind] = name


def registered() -> dict[str, dict[str, Engine]]:
    """Kind -> engine name -> engine, every module that registers one loaded."""
    global _loaded
    if not _loaded:
        builtin = importlib.import_module("netplay.services.engines")
        for module in pkgutil.iter_modules(builtin.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{builtin.__name__}.{module.name}")
        for entry in importlib.metadata.entry_points(group=ENTRY_POINTS):
            try:
                entry.load()
            except Exception as exc:
                raise ServiceError(
                    f"the engines of {entry.value!r} (entry point {entry.name!r} of "
                    f"{ENTRY_POINTS}) cannot be loaded: {exc}",
                    hint="fix or uninstall the package that declares it",
                ) from exc
        _loaded = True
    return _ENGINES


def engine_of(service: Service, where: str) -> tuple[str, Engine]:
    """The name and engine that serve ``service``; TopologyError naming ``where`` if none."""
    kinds = registered()
    found = kinds.get(service.kind)
    if found is None:
        raise TopologyError(
            f"there is no service kind {service.kind!r} (there are: {', '.join(sorted(kinds))})",
            field=f"{where}.kind",
        )
    name = service.engine or _DEFAULTS[service.kind]
    engine = found.get(name)
    if engine is None:
        raise TopologyError(
            f"a {service.kind} service has no engine {name!r} (it has: {', '.join(found)})",
            field=f"{where}.engine",
        )
    return name, engine

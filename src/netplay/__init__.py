"""netplay: a miniature Internet on one Linux machine, for network programs.

with netplay.Playground.up("book") as pg:
    result = pg.host("h1").run(["traceroute", "-n", "www"])
    status = pg.status()        # a Status: hosts, networks, faults, services

Everything a playground says of itself is one typed model (``Status``,
``ServiceStatus``, ``CableFaults``, ``Summary`` and their enums), the same
objects that ``netplay status --json`` prints (docs/status.md);
``to_data`` and ``from_data`` turn them into JSON-ready data and back.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from netplay.errors import (
    AlreadyRunningError,
    CommandFailedError,
    FabricError,
    LocalProtocolError,
    MissingKernelFeatureError,
    MissingToolError,
    NetplayError,
    NoPrivilegesError,
    NotRunningError,
    PkiError,
    ProtocolError,
    RemoteProtocolError,
    ServiceError,
    StateError,
    TopologyError,
    UnknownHostError,
    UsageError,
)

if TYPE_CHECKING:
    from netplay._model import (
        CableFaults,
        HostStatus,
        InterfaceState,
        InterfaceStatus,
        Mode,
        NetworkStatus,
        PlaygroundState,
        ServiceState,
        ServiceStatus,
        Status,
        Summary,
        from_data,
        to_data,
    )
    from netplay._playground import Playground
    from netplay.hosts import Host, Spawned
    from netplay.topology import Topology, load

# Loaded on first use: a program such as `python3 -m netplay.programs.zen_inetd`
# starts without pyroute2, dnspython and the rest of the playground.
_MODEL = (
    "CableFaults",
    "HostStatus",
    "InterfaceState",
    "InterfaceStatus",
    "Mode",
    "NetworkStatus",
    "PlaygroundState",
    "ServiceState",
    "ServiceStatus",
    "Status",
    "Summary",
    "from_data",
    "to_data",
)
_LAZY = {
    "Playground": "netplay._playground",
    "Host": "netplay.hosts",
    "Spawned": "netplay.hosts",
    "Topology": "netplay.topology",
    "load": "netplay.topology",
    **{name: "netplay._model" for name in _MODEL},
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "AlreadyRunningError",
    "CableFaults",
    "CommandFailedError",
    "FabricError",
    "Host",
    "HostStatus",
    "InterfaceState",
    "InterfaceStatus",
    "LocalProtocolError",
    "MissingKernelFeatureError",
    "MissingToolError",
    "Mode",
    "NetplayError",
    "NetworkStatus",
    "NoPrivilegesError",
    "NotRunningError",
    "PkiError",
    "Playground",
    "PlaygroundState",
    "ProtocolError",
    "RemoteProtocolError",
    "ServiceError",
    "ServiceState",
    "ServiceStatus",
    "Spawned",
    "StateError",
    "Status",
    "Summary",
    "Topology",
    "TopologyError",
    "UnknownHostError",
    "UsageError",
    "from_data",
    "load",
    "to_data",
]

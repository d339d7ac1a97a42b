"""netplay: a miniature Internet on one Linux machine, for network programs.

with netplay.Playground.up("book") as pg:
    result = pg.host("h1").run(["traceroute", "-n", "www"])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from netplay.errors import (
    AlreadyRunningError,
    CommandFailedError,
    FabricError,
    MissingKernelFeatureError,
    MissingToolError,
    NetplayError,
    NoPrivilegesError,
    NotRunningError,
    PkiError,
    ServiceError,
    TopologyError,
    UnknownHostError,
    UsageError,
)

if TYPE_CHECKING:
    from netplay._playground import Playground
    from netplay.hosts import Host
    from netplay.topology import Topology, load

# Loaded on first use: a program such as `python3 -m netplay.programs.zen_inetd`
# starts without pyroute2, dnspython and the rest of the playground.
_LAZY = {
    "Playground": "netplay._playground",
    "Host": "netplay.hosts",
    "Topology": "netplay.topology",
    "load": "netplay.topology",
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
    "CommandFailedError",
    "FabricError",
    "Host",
    "MissingKernelFeatureError",
    "MissingToolError",
    "NetplayError",
    "NoPrivilegesError",
    "NotRunningError",
    "PkiError",
    "Playground",
    "ServiceError",
    "Topology",
    "TopologyError",
    "UnknownHostError",
    "UsageError",
    "load",
]

"""netplay: a miniature Internet on one Linux machine, for network programs.

with netplay.Playground.up("book") as pg:
    result = pg.host("h1").run(["traceroute", "-n", "www"])
"""

from netplay._playground import Playground
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
from netplay.hosts import Host
from netplay.topology import Topology, load

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

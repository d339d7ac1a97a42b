"""The playground's DNS: zones made from the topology, ``answer()``, and its server."""

from netplay.dns._answer import answer
from netplay.dns._zones import Zones, aliases, build

__all__ = ["Zones", "aliases", "answer", "build"]

"""The playground's DNS: zones made from the topology, ``answer()``, and its server."""

from netplay.dns._answer import Answers, answer
from netplay.dns._zones import Zones, aliases, build

__all__ = ["Answers", "Zones", "aliases", "answer", "build"]

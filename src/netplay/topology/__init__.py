"""Topologies as pure data: the model, the TOML format, the generators, and the DNS
zones a topology makes."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from netplay.topology._check import check
from netplay.topology._generate import line, star
from netplay.topology._load import from_source, load, loads, source_of
from netplay.topology._model import (
    Attachment,
    Host,
    IPAddress,
    IPInterface,
    IPNetwork,
    Network,
    Route,
    Service,
    Site,
    Topology,
    User,
)

if TYPE_CHECKING:
    from netplay.topology._zones import Zones, aliases, dns_zones

_ZONES = ("Zones", "aliases", "dns_zones")


def __getattr__(name: str) -> Any:
    # the zones need dnspython, which only up and the DNS server need: loaded on first use
    if name not in _ZONES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("netplay.topology._zones"), name)
    globals()[name] = value
    return value


__all__ = [
    "Attachment",
    "Host",
    "IPAddress",
    "IPInterface",
    "IPNetwork",
    "Network",
    "Route",
    "Service",
    "Site",
    "Topology",
    "User",
    "Zones",
    "aliases",
    "check",
    "dns_zones",
    "from_source",
    "line",
    "load",
    "loads",
    "source_of",
    "star",
]

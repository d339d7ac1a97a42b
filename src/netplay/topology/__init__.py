"""Topologies as pure data: the model, the TOML format and the generators."""

from netplay.topology._generate import line, star
from netplay.topology._load import load, loads
from netplay.topology._model import (
    Attachment,
    Host,
    Network,
    Route,
    Service,
    Topology,
    check,
)

__all__ = [
    "Attachment",
    "Host",
    "Network",
    "Route",
    "Service",
    "Topology",
    "check",
    "line",
    "load",
    "loads",
    "star",
]

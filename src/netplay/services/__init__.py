"""Services inside hosts: one small interface per kind, and a runner that supervises each.

A kind is added by one engine module that registers itself (see
:mod:`netplay.services.engines` and docs/services.md).
"""

from netplay.services._base import Context, Engine, HealthError, Start
from netplay.services._connections import Connections
from netplay.services._control import (
    ACTIONS,
    contexts,
    control,
    remove_files,
    start_all,
    status,
)
from netplay.services._logs import read_log
from netplay.services._registry import engine_of, register, registered

__all__ = [
    "ACTIONS",
    "Connections",
    "Context",
    "Engine",
    "HealthError",
    "Start",
    "contexts",
    "control",
    "engine_of",
    "read_log",
    "register",
    "registered",
    "remove_files",
    "start_all",
    "status",
]

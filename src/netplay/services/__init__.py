"""Services inside hosts: one small interface per kind, and a runner that supervises each.

A kind is added by one engine module that registers itself (see
:mod:`netplay.services.engines` and docs/services.md).
"""

from netplay.services._base import Context, Engine, HealthError, Start
from netplay.services._connections import Connections
from netplay.services._control import (
    ACTIONS,
    Group,
    by_engine,
    contexts,
    control,
    preload,
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
    "Group",
    "HealthError",
    "Start",
    "by_engine",
    "contexts",
    "control",
    "engine_of",
    "preload",
    "read_log",
    "register",
    "registered",
    "remove_files",
    "start_all",
    "status",
]

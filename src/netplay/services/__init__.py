"""Services inside hosts: one small interface per kind, and a runner that supervises each."""

from netplay.services._base import Context, Engine, HealthError, Start
from netplay.services._control import ACTIONS, contexts, control, start_all, status
from netplay.services._runner import Files

__all__ = [
    "ACTIONS",
    "Context",
    "Engine",
    "Files",
    "HealthError",
    "Start",
    "contexts",
    "control",
    "start_all",
    "status",
]

"""netplay.testing: real playgrounds for pytest test suites, yours and ours.

Installing netplay registers the plugin (the ``pytest11`` entry point): its
fixtures (``shared_playground``, ``playground``, ``playground_factory``,
``spawn``, ``link_fault``, ``playground_ca``) and markers
(``netplay_topology``, ``needs_playground``) are in
:mod:`netplay.testing._plugin` and docs/testing.md.  This module holds what
a test may call itself: waiting for something to happen without sleeping,
and whether this machine can build playgrounds at all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netplay.testing._environment import cannot_build
    from netplay.testing._wait import wait_for_service, wait_until

# Loaded on first use: pytest loads the plugin in every session of an
# environment where netplay is installed, whether it builds playgrounds or not.
_LAZY = {
    "cannot_build": "netplay.testing._environment",
    "wait_for_service": "netplay.testing._wait",
    "wait_until": "netplay.testing._wait",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["cannot_build", "wait_for_service", "wait_until"]

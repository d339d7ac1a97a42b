"""WSGI's types and the constants of www (cheap to import: no Flask)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

SITE = Path(__file__).parent / "site"
APPS_VARIABLE = "NETPLAY_WWW_APPS"  # the ``apps`` option, as JSON, for the server's workers
SITES_VARIABLE = "NETPLAY_WWW_SITES"  # the host's sites: name -> {app|static|redirect: ...}
THREADS_VARIABLE = "NETPLAY_WWW_THREADS"  # threads for the WSGI application

WSGIEnvironment = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]

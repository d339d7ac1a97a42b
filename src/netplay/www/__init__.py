"""What www.example.com serves: one WSGI application, ``app``.

- ``/`` and the static site (``site/``: a dozen linked pages for scraping
  and crawling exercises, with a form, non-ASCII text, images, robots.txt
  and a page completed by JavaScript), from memory, gzipped for clients
  that accept it (:mod:`netplay.www._static`);
- ``/search?q=...``: the site's search, over the text of its pages;
- ``/geocode?q=...``: the geocoding API (:mod:`netplay.www._geocode`);
- mounted WSGI applications: the ``apps`` option of the www services maps a
  path prefix to ``module:attribute`` (``{"/apps/demo" =
  "wsgiref.simple_server:demo_app"}``), passed in NETPLAY_WWW_APPS;
- everything else: the httpbin API (``/get``, ``/post``, ``/status/418``, ...);
- but a request for one of the host's sites by name (its Host header) goes
  to that site's application (:mod:`netplay.www._sites`; the sites are
  passed in NETPLAY_WWW_SITES).  The applications the book's sites use are
  here: ``httpbin``, ``site`` (the static site and its search alone),
  ``google_geocoding`` and ``nominatim``.

The server runs ``asgi`` (:mod:`netplay.www._asgi`): it reads a request's
body whole, within a size limit and time limits, and only then hands the
request to ``app`` on a thread.

Served over a dual-stack socket, an IPv4 client appears as
``::ffff:10.25.1.65``; the application sees ``10.25.1.65``, as it would
over IPv4.
"""

from __future__ import annotations

import importlib
from typing import Any

from netplay.www._types import APPS_VARIABLE, SITE, SITES_VARIABLE, THREADS_VARIABLE

# imported on use: httpbin and Flask cost a quarter of a second
_LAZY = {
    "app": "netplay.www._app",
    "asgi": "netplay.www._asgi",
    "site": "netplay.www._app",
    "httpbin": "httpbin",
    "google_geocoding": "netplay.www._sites",
    "nominatim": "netplay.www._sites",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    found = getattr(importlib.import_module(module), "app" if name in ("httpbin", "asgi") else name)
    return found


__all__ = [
    "APPS_VARIABLE",
    "SITE",
    "SITES_VARIABLE",
    "THREADS_VARIABLE",
    "app",
    "asgi",
    "google_geocoding",
    "httpbin",
    "nominatim",
    "site",
]

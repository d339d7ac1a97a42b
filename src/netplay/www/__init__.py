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
- everything else: the httpbin API (``/get``, ``/post``, ``/status/418``, ...).

Served over a dual-stack socket, an IPv4 client appears as
``::ffff:10.25.1.65``; the application sees ``10.25.1.65``, as it would
over IPv4.
"""

from __future__ import annotations

from typing import Any

from netplay.www._types import APPS_VARIABLE, SITE


def __getattr__(name: str) -> Any:
    if name == "app":  # imported on use: httpbin and Flask cost a quarter of a second
        from netplay.www._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["APPS_VARIABLE", "SITE", "app"]

"""The application www serves (see :mod:`netplay.www`), and the sites it answers for."""

from __future__ import annotations

import functools
import html
import importlib
import json
import os
import re
from collections.abc import Iterable
from urllib.parse import parse_qs

from httpbin import app as httpbin

from netplay.www import _sites, _static
from netplay.www._geocode import geocode
from netplay.www._types import (
    APPS_VARIABLE,
    SITE,
    SITES_VARIABLE,
    StartResponse,
    WSGIApp,
    WSGIEnvironment,
)

_MAPPED = "::ffff:"
_TAG = re.compile(r"<[^>]+>")
_TITLE = re.compile(r"<title>(.*?) - ", re.S)

_FILES = _static.load(SITE)


def _imported(target: str) -> WSGIApp:
    module, _, attribute = target.partition(":")
    found: WSGIApp = getattr(importlib.import_module(module), attribute)
    return found


@functools.cache
def _mounts() -> dict[str, WSGIApp]:
    """The mounted applications, imported once per worker."""
    wanted: dict[str, str] = json.loads(os.environ.get(APPS_VARIABLE) or "{}")
    return {prefix.rstrip("/"): _imported(target) for prefix, target in wanted.items()}


@functools.cache
def _site_apps() -> dict[str, WSGIApp]:
    """Site name -> its application, made once per worker."""
    wanted: dict[str, dict[str, str]] = json.loads(os.environ.get(SITES_VARIABLE) or "{}")
    found = {}
    for name, serves in wanted.items():
        if "app" in serves:
            found[name] = _imported(serves["app"])
        elif "static" in serves:
            found[name] = _sites.static(serves["static"])
        else:
            found[name] = _sites.redirect(serves["redirect"])
    return found


def host_asked(header: str) -> str:
    """The name a client asked for (its Host header), without a port or a final dot."""
    host = header.casefold()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rsplit(":", 1)[0].rstrip(".")


@functools.cache
def _pages() -> list[tuple[str, str, str]]:
    """(path, title, text) of every public page, for the search."""
    found = []
    for path in sorted(SITE.rglob("*.html")):
        relative = "/" + path.relative_to(SITE).as_posix()
        if relative.startswith("/private/"):
            continue
        source = path.read_text(encoding="utf-8")
        title = _TITLE.search(source)
        found.append((relative, title.group(1) if title else relative, _TAG.sub(" ", source)))
    return found


def search(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """``/search?q=words``: the pages that hold every word, as an HTML list."""
    query = parse_qs(environ.get("QUERY_STRING", "")).get("q", [""])[0].strip()
    words = query.casefold().split()
    hits = [(p, t) for p, t, text in _pages() if words and all(w in text.casefold() for w in words)]
    items = "".join(f'<li><a href="{p}">{html.escape(t)}</a></li>\n' for p, t in hits)
    body = (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>Search: {html.escape(query)} - Example Widgets</title></head>\n<body>\n"
        f'<h1>Search</h1>\n<form action="/search"><input type="search" name="q" '
        f'value="{html.escape(query)}"><button>Search</button></form>\n'
        f'<p id="count">{len(hits)} pages found</p>\n<ul id="results">\n{items}</ul>\n'
        "</body>\n</html>\n"
    ).encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def site(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The site alone: its pages and its search, 404 for anything else."""
    path = environ.get("PATH_INFO", "/")
    if path == "/search":
        return search(environ, start_response)
    file = _FILES.get("/index.html" if path == "/" else path)
    if file is not None:
        return _static.serve(file, environ, start_response)
    body = b"not found\n"
    start_response(
        "404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


def handler(host: str, path: str) -> WSGIApp | _static.File:
    """What answers a request for ``path`` from the name ``host``: a site's
    application, one of www's own, or a file of the site (which the server
    may send itself, without the WSGI application)."""
    other = _site_apps().get(host)
    if other is not None:
        return other
    if path == "/geocode":
        return geocode
    if path == "/search":
        return search
    for prefix, mounted in _mounts().items():
        if path == prefix or path.startswith(prefix + "/"):
            return functools.partial(_mounted, prefix, mounted)
    file = _FILES.get("/index.html" if path == "/" else path)
    if file is not None:
        return file
    answer: WSGIApp = httpbin
    return answer


def _mounted(
    prefix: str, mounted: WSGIApp, environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
    environ["PATH_INFO"] = environ.get("PATH_INFO", "/")[len(prefix) :]
    return mounted(environ, start_response)


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The application www serves: a site's, if the client asked for one by name."""
    remote = environ.get("REMOTE_ADDR", "")
    if remote.startswith(_MAPPED) and "." in remote:
        environ["REMOTE_ADDR"] = remote[len(_MAPPED) :]
    asked = host_asked(str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or ""))
    found = handler(asked, environ.get("PATH_INFO", "/"))
    if isinstance(found, _static.File):
        return _static.serve(found, environ, start_response)
    return found(environ, start_response)

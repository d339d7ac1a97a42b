"""The application www serves (see :mod:`netplay.www`)."""

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

from netplay.www import _static
from netplay.www._geocode import geocode
from netplay.www._types import APPS_VARIABLE, SITE, StartResponse, WSGIApp, WSGIEnvironment

_MAPPED = "::ffff:"
_TAG = re.compile(r"<[^>]+>")
_TITLE = re.compile(r"<title>(.*?) - ", re.S)

_FILES = _static.load(SITE)


@functools.cache
def _mounts() -> dict[str, WSGIApp]:
    """The mounted applications, imported once per worker."""
    wanted: dict[str, str] = json.loads(os.environ.get(APPS_VARIABLE) or "{}")
    mounted = {}
    for prefix, target in wanted.items():
        module, _, attribute = target.partition(":")
        mounted[prefix.rstrip("/")] = getattr(importlib.import_module(module), attribute)
    return mounted


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


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The application www serves."""
    remote = environ.get("REMOTE_ADDR", "")
    if remote.startswith(_MAPPED) and "." in remote:
        environ["REMOTE_ADDR"] = remote[len(_MAPPED) :]
    path = environ.get("PATH_INFO", "/")
    if path == "/geocode":
        return geocode(environ, start_response)
    if path == "/search":
        return search(environ, start_response)
    for prefix, mounted in _mounts().items():
        if path == prefix or path.startswith(prefix + "/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
            environ["PATH_INFO"] = path[len(prefix) :]
            return mounted(environ, start_response)
    file = _FILES.get("/index.html" if path == "/" else path)
    if file is not None:
        return _static.serve(file, environ, start_response)
    answer: Iterable[bytes] = httpbin(environ, start_response)
    return answer

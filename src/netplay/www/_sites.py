"""Stand-ins for sites of the outside world, answered by Host name (see topology sites).

A topology names sites by their real names (``httpbin.org``,
``maps.googleapis.com``); the playground's DNS gives each the addresses of
the host that serves it, its CA certifies the name, and that host's www
application hands each request whose Host is a site's name to the site's
application.  Built in, for the book's sites:

- :func:`google_geocoding`: ``/maps/api/geocode/json?address=...`` in the
  shape of Google's Geocoding API (with the classic ``sensor`` parameter
  accepted and ignored, and no key needed), from www's gazetteer;
- :func:`nominatim`: OpenStreetMap Nominatim's ``/search?q=...&format=json``
  (a list of places, coordinates as strings), from the same gazetteer;
- :func:`static` and :func:`redirect` make the applications of a site
  declared with ``static`` (a directory) or ``redirect`` (a URL).

These are stand-ins, and say so in what they answer: nothing of them is
the real service, and nothing leaves the playground.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from netplay.www._geocode import lookup
from netplay.www._types import StartResponse, WSGIApp, WSGIEnvironment

STAND_IN = "a stand-in served inside the netplay playground, not the real service"
GOOGLE_PATH = "/maps/api/geocode/json"


def _json(start_response: StartResponse, status: str, body: Any) -> Iterable[bytes]:
    data = json.dumps(body, ensure_ascii=False, indent=2).encode() + b"\n"
    start_response(
        status,
        [("Content-Type", "application/json; charset=UTF-8"), ("Content-Length", str(len(data)))],
    )
    return [data]


def _place_id(address: str) -> str:
    return "NP" + hashlib.sha256(address.encode()).hexdigest()[:25]


def google_geocoding(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """``GET /maps/api/geocode/json?address=...`` as Google's Geocoding API answers it."""
    if environ.get("PATH_INFO") != GOOGLE_PATH:
        return _json(start_response, "404 Not Found", {"error": f"only {GOOGLE_PATH} is here"})
    address = parse_qs(environ.get("QUERY_STRING", "")).get("address", [""])[0]
    if not address.strip():
        return _json(
            start_response,
            "200 OK",  # as Google does: the status is in the body
            {
                "error_message": "Invalid request. Missing the 'address' parameter.",
                "results": [],
                "status": "INVALID_REQUEST",
            },
        )
    results = []
    for formatted, lat, lng in lookup(address):
        results.append(
            {
                "formatted_address": formatted,
                "geometry": {
                    "location": {"lat": lat, "lng": lng},
                    "location_type": "ROOFTOP",
                    "viewport": {
                        "northeast": {"lat": lat + 0.0013, "lng": lng + 0.0013},
                        "southwest": {"lat": lat - 0.0013, "lng": lng - 0.0013},
                    },
                },
                "place_id": _place_id(formatted),
                "types": ["street_address"],
            }
        )
    return _json(
        start_response,
        "200 OK",
        {"results": results, "status": "OK" if results else "ZERO_RESULTS", "netplay": STAND_IN},
    )


def nominatim(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """``GET /search?q=...&format=json`` as OpenStreetMap's Nominatim answers it."""
    if environ.get("PATH_INFO") not in ("/search", "/search.php"):
        return _json(start_response, "404 Not Found", {"error": "only /search is here"})
    query = parse_qs(environ.get("QUERY_STRING", ""))
    form = query.get("format", ["jsonv2"])[0]
    if form not in ("json", "jsonv2"):
        return _json(
            start_response,
            "400 Bad Request",
            {"error": {"code": 400, "message": f"format {form!r}: this stand-in has json"}},
        )
    places = []
    for i, (formatted, lat, lng) in enumerate(lookup(query.get("q", [""])[0])):
        places.append(
            {
                "place_id": int(_place_id(formatted)[2:10], 16),
                "licence": STAND_IN,
                "osm_type": "node",
                "lat": f"{lat:.7f}",
                "lon": f"{lng:.7f}",
                "class": "place",
                "type": "house",
                "place_rank": 30,
                "importance": round(0.5 - i * 0.01, 4),
                "addresstype": "place",
                "display_name": formatted,
                "boundingbox": [
                    f"{lat - 0.0005:.7f}",
                    f"{lat + 0.0005:.7f}",
                    f"{lng - 0.0005:.7f}",
                    f"{lng + 0.0005:.7f}",
                ],
            }
        )
    return _json(start_response, "200 OK", places)


def static(root: str) -> WSGIApp:
    """The files under ``root`` (``index.html`` for a directory), GET and HEAD only."""
    base = Path(root).resolve()

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        path = (base / environ.get("PATH_INFO", "/").lstrip("/")).resolve()
        if path.is_dir():
            path = path / "index.html"
        if not path.is_relative_to(base) or not path.is_file():  # no way out of the root
            body = b"not found\n"
            start_response(
                "404 Not Found",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        size = path.stat().st_size
        start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(size))])
        if environ.get("REQUEST_METHOD") == "HEAD":
            return [b""]
        return [path.read_bytes()]

    return serve


def redirect(target: str) -> WSGIApp:
    """Every request sent on to ``target`` with its path and query (301)."""
    base = target.rstrip("/")

    def send_on(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING", "")
        where = base + quote(environ.get("PATH_INFO", "/")) + (f"?{query}" if query else "")
        start_response("301 Moved Permanently", [("Location", where), ("Content-Length", "0")])
        return [b""]

    return send_on

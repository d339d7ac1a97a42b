"""The geocoding API of www: ``/geocode?q=ADDRESS`` answered from a small gazetteer.

Answers in the shape of the classic web geocoding APIs:
``{"status": "OK", "results": [{"formatted_address": ..., "geometry":
{"location": {"lat": ..., "lng": ...}}}]}``; ``ZERO_RESULTS`` when nothing
matches and ``INVALID_REQUEST`` (400) without a query.  A query matches an
entry when every word of it is a word of the entry, ignoring case and
punctuation; the entries with the fewest other words come first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from netplay.www._types import StartResponse, WSGIEnvironment

GAZETTEER: tuple[tuple[str, float, float], ...] = (
    ("207 N Defiance St, Archbold, OH 43502, USA", 41.5215, -84.3067),
    ("1 Capitol Square, Columbus, OH 43215, USA", 39.9612, -82.9988),
    ("1600 Pennsylvania Ave NW, Washington, DC 20500, USA", 38.8977, -77.0365),
    ("350 Fifth Ave, New York, NY 10118, USA", 40.7484, -73.9857),
    ("11 Wall St, New York, NY 10005, USA", 40.7069, -74.0113),
    ("Times Square, New York, NY 10036, USA", 40.7580, -73.9855),
    ("Liberty Island, New York, NY 10004, USA", 40.6892, -74.0445),
    ("4 Jersey St, Boston, MA 02215, USA", 42.3467, -71.0972),
    ("233 S Wacker Dr, Chicago, IL 60606, USA", 41.8789, -87.6359),
    ("400 Broad St, Seattle, WA 98109, USA", 47.6205, -122.3493),
    ("1 Microsoft Way, Redmond, WA 98052, USA", 47.6396, -122.1283),
    ("1 Infinite Loop, Cupertino, CA 95014, USA", 37.3318, -122.0312),
    ("1600 Amphitheatre Pkwy, Mountain View, CA 94043, USA", 37.4220, -122.0841),
    ("1 Hacker Way, Menlo Park, CA 94025, USA", 37.4848, -122.1484),
    ("Golden Gate Bridge, San Francisco, CA 94129, USA", 37.8199, -122.4783),
    ("4059 Mt Lee Dr, Los Angeles, CA 90068, USA", 34.1341, -118.3215),
    ("Plaza de la Constitución, Ciudad de México, Mexico", 19.4326, -99.1332),
    ("Avenida Atlântica, Copacabana, Rio de Janeiro, Brazil", -22.9711, -43.1822),
    ("221B Baker St, London NW1 6XE, UK", 51.5238, -0.1586),
    ("10 Downing St, London SW1A 2AA, UK", 51.5034, -0.1276),
    ("5 Avenue Anatole France, 75007 Paris, France", 48.8584, 2.2945),
    ("Plaça de Catalunya, 08002 Barcelona, Spain", 41.3870, 2.1701),
    ("Piazza del Colosseo 1, 00184 Roma, Italy", 41.8902, 12.4922),
    ("Platz der Republik 1, 11011 Berlin, Germany", 52.5186, 13.3762),
    ("Königsallee 1, 40212 Düsseldorf, Germany", 51.2254, 6.7763),
    ("Dam 1, 1012 JS Amsterdam, Netherlands", 52.3731, 4.8926),
    ("Rådhuspladsen 1, 1550 København, Denmark", 55.6761, 12.5683),
    ("Krasnaya Ploshchad, Moskva, Russia", 55.7539, 37.6208),
    ("Apollo Bandar, Colaba, Mumbai 400001, India", 18.9220, 72.8347),
    ("1-1 Chiyoda, Chiyoda City, Tokyo 100-8111, Japan", 35.6852, 139.7528),
    ("Bennelong Point, Sydney NSW 2000, Australia", -33.8568, 151.2153),
)

_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def lookup(query: str) -> list[tuple[str, float, float]]:
    """The entries every word of ``query`` appears in, best (fewest extra words) first."""
    wanted = _words(query)
    if not wanted:
        return []
    found = []
    for entry in GAZETTEER:
        words = _words(entry[0])
        if all(w in words for w in wanted):
            found.append((len(words) - len(wanted), entry))
    return [entry for _extra, entry in sorted(found, key=lambda pair: pair[0])]


def _reply(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body, ensure_ascii=False, indent=2).encode() + b"\n"
    start_response(
        status,
        [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(data)))],
    )
    return [data]


def geocode(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI application of ``/geocode``."""
    query = parse_qs(environ.get("QUERY_STRING", "")).get("q", [""])[0]
    if not query.strip():
        return _reply(
            start_response,
            "400 Bad Request",
            {
                "status": "INVALID_REQUEST",
                "error": "give an address: /geocode?q=...",
                "results": [],
            },
        )
    results = [
        {"formatted_address": address, "geometry": {"location": {"lat": lat, "lng": lng}}}
        for address, lat, lng in lookup(query)
    ]
    return _reply(
        start_response,
        "200 OK",
        {"status": "OK" if results else "ZERO_RESULTS", "results": results},
    )

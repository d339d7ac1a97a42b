"""The site's files, held in memory: served with ETag, Last-Modified and gzip.

The site is small (about 100 KB), so every file is read once per worker,
with a gzip copy of each text file that compression makes smaller.  GET
and HEAD only (405 otherwise); If-None-Match with the file's ETag gets 304.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from netplay.www._types import StartResponse, WSGIEnvironment

COMPRESS_TYPES = ("text/", "application/json", "application/javascript", "image/svg+xml")
CACHE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class File:
    body: bytes
    gzipped: bytes | None
    type: str
    etag: str
    modified: str


def load(root: Path) -> dict[str, File]:
    """URL path -> file, for every file under ``root``."""
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        body = path.read_bytes()
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        squeezed = gzip.compress(body, mtime=0) if kind.startswith(COMPRESS_TYPES) else None
        files["/" + path.relative_to(root).as_posix()] = File(
            body=body,
            gzipped=squeezed if squeezed is not None and len(squeezed) < len(body) else None,
            type=kind,
            etag='"' + hashlib.sha256(body).hexdigest()[:16] + '"',
            modified=formatdate(path.stat().st_mtime, usegmt=True),
        )
    return files


def _accepts_gzip(header: str) -> bool:
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def answer(
    file: File, method: str, if_none_match: str, accept_encoding: str
) -> tuple[str, list[tuple[str, str]], bytes]:
    """The status, headers and body that answer a request for ``file`` (pure)."""
    if method not in ("GET", "HEAD"):
        return "405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Length", "0")], b""
    headers = [
        ("ETag", file.etag),
        ("Last-Modified", file.modified),
        ("Cache-Control", f"max-age={CACHE_SECONDS}"),
        ("Vary", "Accept-Encoding"),
    ]
    wanted = [tag.strip() for tag in if_none_match.split(",")]
    if file.etag in wanted or "*" in wanted:
        return "304 Not Modified", headers, b""
    body = file.body
    if file.gzipped is not None and _accepts_gzip(accept_encoding):
        body = file.gzipped
        headers.append(("Content-Encoding", "gzip"))
    headers += [("Content-Type", file.type), ("Content-Length", str(len(body)))]
    return "200 OK", headers, b"" if method == "HEAD" else body


def serve(file: File, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    status, headers, body = answer(
        file,
        environ.get("REQUEST_METHOD", "GET"),
        environ.get("HTTP_IF_NONE_MATCH", ""),
        environ.get("HTTP_ACCEPT_ENCODING", ""),
    )
    start_response(status, headers)
    return [body] if body else []

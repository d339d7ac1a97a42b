"""www's application as the HTTP server runs it: a request's body is read whole,
within limits, before the WSGI application sees it.

granian's WSGI mode hands each request to one of a pool of threads as soon
as its headers are in, and the thread then waits for the body: 33 clients
sending their bodies a byte at a time took all 32 threads, and www answered
no one.  Run as ASGI instead, a request waiting for its body costs only a
coroutine (the server itself takes a body framed by both Content-Length and
Transfer-Encoding as chunked and closes the connection after it, as RFC
9112 6.3 says).  This layer:

- refuses a body larger than MAX_BODY_BYTES with 413 (at once when its
  Content-Length says so) and one that comes too slowly with 408
  (PIECE_TIMEOUT_S between two pieces, BODY_TIMEOUT_S in all);
- sends a file of the site itself, from memory, without a thread;
- runs the WSGI application for everything else on a pool of threads, the
  body in hand and its Content-Length set (a chunked body too, which
  Werkzeug would refuse as a stream), in one hop to the pool for an answer
  of one piece; a longer answer is streamed piece by piece.  (A general
  bridge such as a2wsgi hands the body and the answer over piece by piece,
  a hop each: half as many requests per second here.)
"""

from __future__ import annotations

import asyncio
import functools
import io
import os
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from netplay.www import _static
from netplay.www._app import app as wsgi_app
from netplay.www._app import handler, host_asked
from netplay.www._types import THREADS_VARIABLE

MAX_BODY_BYTES = 10 << 20  # 10 MiB: httpbin echoes a body back, whole, in memory
PIECE_TIMEOUT_S = 10.0  # the longest wait for the next piece of a body
BODY_TIMEOUT_S = 120.0  # the longest a whole body may take
THREADS = 32  # for the WSGI application (httpbin's /delay/N sleeps in one)
FRAMING = (b"content-length", b"transfer-encoding")

Scope = dict[str, Any]
Message = dict[str, Any]
Started = tuple[str, list[tuple[str, str]]]

_pool = ThreadPoolExecutor(
    max_workers=int(os.environ.get(THREADS_VARIABLE) or THREADS), thread_name_prefix="www"
)
_END = object()


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


async def _respond(send: Any, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": int(status.split()[0]),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Any, status: str, why: str) -> None:
    body = f"{why}\n".encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close")]
    await _respond(send, status, [*headers, ("Content-Length", str(len(body)))], body)


async def _body(scope: Scope, receive: Any, send: Any) -> bytes | None:
    """The whole body, or None once a refusal was sent (or the client left)."""
    framed = [(n.lower(), v) for n, v in scope["headers"] if n.lower() in FRAMING]
    if not framed:
        return b""  # HTTP/1.1 without Content-Length or Transfer-Encoding: no body
    declared = _header(scope, b"content-length")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        await _refuse(send, "413 Content Too Large", f"a body is at most {MAX_BODY_BYTES} bytes")
        return None
    pieces: list[bytes] = []
    size = 0
    deadline = time.monotonic() + BODY_TIMEOUT_S
    while True:
        left = min(PIECE_TIMEOUT_S, deadline - time.monotonic())
        try:
            message = await asyncio.wait_for(receive(), max(left, 0.0))
        except TimeoutError:
            await _refuse(send, "408 Request Timeout", "the request body came too slowly")
            return None
        if message["type"] == "http.disconnect":
            return None
        piece = message.get("body", b"")
        size += len(piece)
        if size > MAX_BODY_BYTES:
            await _refuse(
                send, "413 Content Too Large", f"a body is at most {MAX_BODY_BYTES} bytes"
            )
            return None
        pieces.append(piece)
        if not message.get("more_body", False):
            return b"".join(pieces)


def _environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """PEP 3333's environ for an ASGI request, its body whole (and its length said)."""
    root = scope.get("root_path", "")
    path = scope["path"]
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root.encode().decode("latin-1"),
        "PATH_INFO": path.removeprefix(root).encode().decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    server, port = scope.get("server") or ("localhost", 80)
    environ["SERVER_NAME"], environ["SERVER_PORT"] = server, str(port or 0)
    if scope.get("client"):
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = scope["client"][0], str(scope["client"][1])
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        if name.lower() in FRAMING:
            continue  # the body is whole: its length is CONTENT_LENGTH above
        key = key if key == "CONTENT_TYPE" else f"HTTP_{key}"
        text = value.decode("latin-1")
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


def _begin(
    environ: dict[str, Any],
) -> tuple[Started, list[bytes], tuple[Iterable[bytes], Iterator[bytes]] | None]:
    """In a thread: call the application and take its answer's first two pieces
    (so that an answer of one piece is done in this one hop)."""
    started: list[Started] = []
    pieces: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [(status, headers)]
        return pieces.append  # PEP 3333's write(), for the applications that still use it

    result = wsgi_app(environ, start_response)
    iterator = iter(result)
    try:
        while sum(1 for p in pieces if p) < 2:
            pieces.append(next(iterator))
    except StopIteration:
        _close(result)
        return started[0], pieces, None
    return started[0], pieces, (result, iterator)


async def _wsgi(scope: Scope, body: bytes, send: Any) -> None:
    environ = _environ(scope, body)
    loop = asyncio.get_running_loop()
    try:
        (status, response_headers), pieces, rest = await loop.run_in_executor(
            _pool, _begin, environ
        )
    except Exception:
        traceback.print_exc(file=sys.stderr)
        await _refuse(send, "500 Internal Server Error", "the application failed")
        return
    first = b"".join(pieces)
    if rest is None:
        await _respond(send, status, response_headers, first)
        return
    result, iterator = rest
    try:
        await send(
            {
                "type": "http.response.start",
                "status": int(status.split()[0]),
                "headers": [
                    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response_headers
                ],
            }
        )
        await send({"type": "http.response.body", "body": first, "more_body": True})
        while (piece := await loop.run_in_executor(_pool, next, iterator, _END)) is not _END:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await loop.run_in_executor(_pool, _close, result)


@functools.lru_cache(maxsize=1024)
def _encoded(status: str, headers: tuple[tuple[str, str], ...]) -> tuple[int, list[Any]]:
    """A file's answer's status and headers as ASGI wants them (they repeat: kept)."""
    return int(status.split()[0]), [(k.lower().encode(), v.encode()) for k, v in headers]


async def _send_file(scope: Scope, file: _static.File, send: Any) -> None:
    headers = {k.lower(): v for k, v in scope["headers"]}
    status, response_headers, body = _static.answer(
        file,
        scope["method"],
        headers.get(b"if-none-match", b"").decode("latin-1"),
        headers.get(b"accept-encoding", b"").decode("latin-1"),
    )
    code, encoded = _encoded(status, tuple(response_headers))
    await send({"type": "http.response.start", "status": code, "headers": encoded})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """The ASGI application granian runs: bodies first, then www's WSGI application."""
    if scope["type"] != "http":  # lifespan and websockets: nothing to do here
        return
    body = await _body(scope, receive, send)
    if body is None:
        return
    found = handler(host_asked(_header(scope, b"host")), scope["path"])
    if isinstance(found, _static.File):  # the site's files: no thread needed
        await _send_file(scope, found, send)
        return
    await _wsgi(scope, body, send)

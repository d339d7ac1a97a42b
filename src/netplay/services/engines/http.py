"""The ``http`` and ``https`` kinds, served by granian: www's application (:mod:`netplay.www`),
and the sites of the topology that the host serves (answered by Host name).

granian (a Rust HTTP server for Python applications, built on hyper) was
chosen by measurement (docs/dependencies.md): it answers a malformed
request line with 400, oversized headers with 431, cuts off a client that
sends its headers too slowly while it serves others, keeps serving with
1,000 idle connections open, rejects two Content-Lengths, and takes a body
framed by both Content-Length and Transfer-Encoding as chunked, closing the
connection after it.  HTTPS is rustls: TLS 1.2 and 1.3 only, with the
host's certificate from the playground CA.  One worker process runs the
application as ASGI (:mod:`netplay.www._asgi`: bodies are read without a
thread, within limits, then the WSGI application runs on a pool of
threads), listening on every address of the host (IPv6 and IPv4).
granian runs from its Python API in the forked server process, not as a
command: without a new interpreter to start, www answers in about half
the time.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import ssl
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from netplay.errors import TopologyError
from netplay.fabric import process_name
from netplay.services._base import Context, Engine, HealthError, Start
from netplay.services._registry import register
from netplay.www import APPS_VARIABLE, SITES_VARIABLE, THREADS_VARIABLE

HEADER_BUFFER = 16 * 1024  # headers larger than this get 431
HEADER_TIMEOUT_MS = 5_000  # a client has this long to send its headers
THREADS = 32


class GranianEngine(Engine):
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {"apps": dict, "threads": int}
    minimums: ClassVar[Mapping[str, float]] = {"threads": 1}
    maximums: ClassVar[Mapping[str, float]] = {"threads": 1024}

    def __init__(self, *, tls: bool) -> None:
        self.tls = tls
        self.default_ports = (443,) if tls else (80,)

    def check(self, ctx: Context, where: str) -> None:
        super().check(ctx, where)
        for prefix, target in ctx.option("apps", {}).items():
            if not prefix.startswith("/") or not isinstance(target, str) or ":" not in target:
                raise TopologyError(
                    'apps maps a path to a WSGI application: { "/path" = "module:attribute" }',
                    field=f"{where}.apps.{prefix}",
                )

    def preload(self, contexts: Sequence[Context]) -> None:
        # granian, and httpbin and Flask under www's application: a quarter of a
        # second each server would spend.  The application reads what it is
        # given (apps, sites, threads) from the environment when it serves.
        import granian.http  # noqa: F401
        import setproctitle  # noqa: F401

        # httpbin warns on import that its Swagger UI (flasgger) is not installed:
        # nothing for the terminal of whoever makes the playground
        httpbin = logging.getLogger("httpbin.core")
        level = httpbin.level
        httpbin.setLevel(logging.ERROR)
        try:
            from netplay.www import _app  # noqa: F401
        finally:
            httpbin.setLevel(level)

    def start(self, ctx: Context) -> Start:
        settings: dict[str, Any] = {
            "address": "::",
            "port": self.ports(ctx)[0],
            "interface": "asgi",  # bodies are read without a thread: netplay.www._asgi
            "workers": 1,
            "websockets": False,
            "log_access": True,
        }
        threads = str(ctx.option("threads", THREADS))
        if self.tls:
            cert, key = ctx.pki.server(ctx.host)
            settings.update(ssl_cert=cert, ssl_key=key, ssl_protocol_min="tls1.2")
        apps = json.dumps(ctx.option("apps", {}))
        sites = json.dumps(
            {
                site.name.casefold().rstrip("."): {
                    key: value
                    for key in ("app", "static", "redirect")
                    if (value := getattr(site, key)) is not None
                }
                for site in ctx.topology.sites
                if site.host == ctx.host
            }
        )

        def serve() -> None:
            # granian itself, in the forked server process: no interpreter to start.  The
            # application is imported here, before granian forks its worker, which
            # inherits it.
            from granian import Granian
            from granian.http import HTTP1Settings

            os.environ[APPS_VARIABLE] = apps
            os.environ[SITES_VARIABLE] = sites
            os.environ[THREADS_VARIABLE] = threads
            from netplay.www import asgi  # noqa: F401

            http1 = HTTP1Settings(
                header_read_timeout=HEADER_TIMEOUT_MS, max_buffer_size=HEADER_BUFFER
            )
            # the name the runner gave it, not granian's own ("... server worker-1" for its worker)
            Granian(
                "netplay.www:asgi",
                http1_settings=http1,
                process_name=process_name(),
                **settings,
            ).serve()

        return serve

    def _connection(self, ctx: Context, timeout: float) -> http.client.HTTPConnection:
        port = self.ports(ctx)[0]
        if not self.tls:
            return http.client.HTTPConnection(ctx.address, port, timeout=timeout)
        context = ssl.create_default_context(cafile=str(ctx.pki.ca))
        return http.client.HTTPSConnection(ctx.address, port, timeout=timeout, context=context)

    def health(self, ctx: Context, timeout: float) -> None:
        connection = self._connection(ctx, timeout)
        try:
            connection.request("GET", "/get", headers={"Host": ctx.fqdn})
            response = connection.getresponse()
            body = response.read()
        except (TimeoutError, http.client.HTTPException) as exc:
            raise HealthError(f"GET /get failed ({exc!r})") from exc
        finally:
            connection.close()
        if response.status != 200 or b'"url"' not in body:
            raise HealthError(f"GET /get answered {response.status} {response.reason}")


register("http", "granian", GranianEngine(tls=False))
register("https", "granian", GranianEngine(tls=True))

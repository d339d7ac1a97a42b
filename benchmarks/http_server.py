"""HTTP benchmark: www (granian) against nginx in the same host, with wrk from h1.

In the book playground, in the same run, wrk (one thread, ``--connections``
kept alive) in h1 loads, through NAT:

- the same static file (the site's index.html) from www's own server on
  port 80 and from nginx (Debian's, one worker process, as www has one
  worker) started in www on port 8080 with the site as its root;
- ``/get`` (httpbin's JSON, built by the WSGI application) from www.

Each measurement is repeated ``--repeat`` times, alternately; medians of
requests per second and of the 99th percentile latency are printed with
the ratio to nginx (the target is at least 0.3).  Run as root with wrk and
nginx installed (``apt-get install wrk nginx``):

    python3 benchmarks/http_server.py
    python3 benchmarks/http_server.py --time 10 --repeat 5 --connections 64
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from netplay import Playground
from netplay.www import SITE

TARGET_RATIO = 0.3
NGINX_PORT = 8080
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def nginx_config(directory: Path) -> Path:
    config = directory / "nginx.conf"
    temp = " ".join(f"{kind}_temp_path {directory}/{kind};" for kind in ("client_body", "proxy"))
    others = " ".join(f"{kind}_temp_path {directory}/{kind};" for kind in ("fastcgi", "uwsgi"))
    config.write_text(
        "user root;\n"
        "daemon off;\n"
        "worker_processes 1;\n"
        f"pid {directory}/nginx.pid;\n"
        "error_log stderr warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    access_log off;\n"
        f"    {temp} {others} scgi_temp_path {directory}/scgi;\n"
        f"    server {{ listen {NGINX_PORT}; listen [::]:{NGINX_PORT}; root {SITE}; }}\n"
        "}\n"
    )
    return config


@contextlib.contextmanager
def nginx(pg: Playground) -> Iterator[None]:
    with tempfile.TemporaryDirectory(prefix="netplay-nginx-") as tmp:
        proc = pg.host("www").popen(["nginx", "-c", str(nginx_config(Path(tmp)))])
        try:
            deadline = time.monotonic() + 10
            probe = ["curl", "-sf", "-o", "/dev/null", f"http://www:{NGINX_PORT}/index.html"]
            while pg.host("h1").run(probe).returncode != 0:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("http_server.py: nginx did not start")
                time.sleep(0.1)
            yield
        finally:
            proc.terminate()
            proc.wait()


def wrk(pg: Playground, url: str, seconds: int, connections: int) -> tuple[float, float]:
    """Requests per second and the 99th percentile latency in ms."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    out = pg.host("h1").run(argv, timeout=seconds + 30, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if rate is None or p99 is None:
        raise SystemExit(f"http_server.py: cannot read wrk's report:\n{out}")
    if errors is not None:
        raise SystemExit(f"http_server.py: {errors.group(1)} requests failed:\n{out}")
    return float(rate.group(1)), float(p99.group(1)) * UNITS[p99.group(2)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", type=int, default=5, help="seconds of load per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each server")
    parser.add_argument("--connections", type=int, default=32, help="connections kept open")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("http_server.py: run as root", file=sys.stderr)
        return 2
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"http_server.py: {tool} is missing (apt-get install wrk nginx)", file=sys.stderr)
            return 2
    targets = {
        "www, static file": "http://www/index.html",
        "nginx, static file": f"http://www:{NGINX_PORT}/index.html",
        "www, /get (JSON)": "http://www/get",
    }
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label in targets}
    name = f"httpbench{os.getpid()}"
    with Playground.up("book", name=name, purge=True) as pg, nginx(pg):
        for _ in range(args.repeat):
            for label, url in targets.items():
                runs[label].append(wrk(pg, url, args.time, args.connections))
    medians = {
        label: (statistics.median(r for r, _ in got), statistics.median(p for _, p in got))
        for label, got in runs.items()
    }
    reference = medians["nginx, static file"][0]
    for label, (rate, p99) in medians.items():
        versus = f"{rate / reference:.2f}x nginx" if label != "nginx, static file" else ""
        print(f"{label:<20} {rate:>9.0f} requests/s   p99 {p99:>7.2f} ms   {versus}")
    ratio = medians["www, static file"][0] / reference
    verdict = "ok" if ratio >= TARGET_RATIO else f"UNDER {TARGET_RATIO}"
    print(f"static file: {ratio:.2f}x nginx, target >= {TARGET_RATIO}x  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Architectures benchmark: every zen server design in www, loaded from h1-h4.

For each design of ``netplay.programs.zen_server`` (and inetd-style,
through the service layer's inetd kind, ``nowait``), the server runs in
www and zen_client processes in h1, h2, h3 and h4 (through their NAT
modems) open 1, 10, 100 and 1,000 connections in all, split between
them, each asking questions one after another and checking every answer.
It prints questions answered per second and the latency of an answer
(p50 and p99: the worst of the four load hosts'), and saves a plot.  A
single wrong or missing answer stops it with an error.  Run as root with
matplotlib installed (``pip install matplotlib``):

    python3 benchmarks/architectures.py                  # table, and docs/architectures.png
    python3 benchmarks/architectures.py --levels 1 10 --only selectors uvloop
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from netplay import Playground
from netplay.programs.zen_server import ARCHITECTURES

LOAD_HOSTS = ("h1", "h2", "h3", "h4")
PORT = 1070
INETD_PORT = 1071
TOTAL_QUESTIONS = 4000
PLOT = Path(__file__).resolve().parent.parent / "docs" / "architectures.png"


def topology_with_inetd() -> str:
    """The book, with the zen server also declared as an inetd service on www."""
    source = resources.files("netplay.topology").joinpath("book.toml").read_text()
    command = json.dumps([sys.executable, "-m", "netplay.programs.zen_inetd"])
    https = '    { kind = "https", ports = [443] },\n'
    zen = f'    {{ kind = "inetd", name = "zen", ports = [{INETD_PORT}], command = {command} }},\n'
    if https not in source:
        raise SystemExit("architectures.py: the book no longer declares www's https as expected")
    return source.replace(https, https + zen, 1)


def split(total: int) -> dict[str, int]:
    shares = {h: total // len(LOAD_HOSTS) for h in LOAD_HOSTS}
    for host in LOAD_HOSTS[: total % len(LOAD_HOSTS)]:
        shares[host] += 1
    return {h: n for h, n in shares.items() if n}


def measure(pg: Playground, port: int, connections: int) -> dict[str, float]:
    questions = max(4, TOTAL_QUESTIONS // connections)
    procs = {}
    for host, count in split(connections).items():
        argv = [
            sys.executable, "-m", "netplay.programs.zen_client", "www", "-p", str(port),
            "--connections", str(count), "--questions", str(questions), "--json",
        ]  # fmt: skip
        procs[host] = pg.host(host).popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = time.perf_counter()
    results = []
    for host, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"architectures.py: WRONG ANSWERS from {host}: {err.decode().strip()}")
        results.append(json.loads(out))
    seconds = time.perf_counter() - started
    answered = sum(r["answered"] for r in results)
    if answered != connections * questions:
        raise SystemExit(f"architectures.py: {answered} of {connections * questions} answered")
    return {
        "per_second": answered / max(r["seconds"] for r in results),
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "wall_s": seconds,
    }


def run_server(pg: Playground, architecture: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "netplay.programs.zen_server", architecture, "-p", str(PORT)]
    proc = pg.host("www").popen(argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    if not proc.stdout.readline().startswith(b"Listening"):
        raise SystemExit(f"architectures.py: the {architecture} server did not start")
    return proc


def _cell(row: dict[str, float]) -> str:
    return f"{row['per_second']:>8.0f}/s {row['p50_ms']:>7.1f} {row['p99_ms']:>8.1f}"


def plot(table: dict[str, dict[int, dict[str, float]]], levels: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate, latency) = plt.subplots(1, 2, figsize=(12, 5))
    tab20 = plt.get_cmap("tab20")
    colours = [tab20(i) for i in range(20)]
    for i, (name, rows) in enumerate(table.items()):
        style = {"marker": "os^Dv"[i % 5], "color": colours[(2 * i) % 20 + (i >= 10)]}
        rate.plot(levels, [rows[c]["per_second"] for c in levels], label=name, **style)
        latency.plot(levels, [rows[c]["p99_ms"] for c in levels], label=name, **style)
    for axis, title in ((rate, "answers per second"), (latency, "p99 latency (ms)")):
        axis.set_xscale("log")
        axis.set_xlabel("concurrent connections (from h1-h4)")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    latency.set_yscale("log")
    rate.legend(fontsize=8)
    fig.suptitle("zen server architectures in www (netplay)")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--only", nargs="+", help="these architectures (and inetd) only")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("architectures.py: run as root", file=sys.stderr)
        return 2
    names = [a for a in ARCHITECTURES if not args.only or a in args.only]
    table: dict[str, dict[int, dict[str, float]]] = {}
    name = f"archbench{os.getpid()}"
    header = "  ".join(f"{f'{c} connections':>27}" for c in args.levels)
    print(f"{'architecture':<17} {header}")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"{name}.toml"
        source.write_text(topology_with_inetd())
        with Playground.up(str(source), name=name, purge=True) as pg:
            for architecture in [*names, "inetd"]:
                server = None if architecture == "inetd" else run_server(pg, architecture)
                port = INETD_PORT if server is None else PORT
                try:
                    table[architecture] = {c: measure(pg, port, c) for c in args.levels}
                finally:
                    if server is not None:
                        server.kill()
                        server.wait()
                        assert server.stdout is not None
                        server.stdout.close()
                cells = "  ".join(_cell(table[architecture][c]) for c in args.levels)
                print(f"{architecture:<17} {cells}", flush=True)
    plot(table, args.levels)
    print(f"(columns per level {args.levels}: answers/s, p50 ms, p99 ms; plot: {PLOT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

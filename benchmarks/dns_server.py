"""DNS benchmark: queries per second of our server against Knot DNS, same zones, same load.

In the book playground, in the same run:

- ours: the server netplay runs on backbone (10.1.1.1 port 53);
- the reference: Knot DNS (Debian's knotd), started on backbone on port
  5300 with the same zones, written out by dnspython from ``dns.build``,
  and one UDP worker, as our server has one thread.

The load generator is dnsperf, run in isp (one hop away) with many queries
in flight, over a query list made from the topology: A and AAAA of every
host, MX of example.com, the CNAME of smtp, PTR of every address, a
NXDOMAIN and a NODATA name.  Each server is measured ``--repeat`` times,
alternately; medians and the ratio are printed (the target is at least
0.3).  Run as root with knotd and dnsperf installed
(``apt-get install knot dnsperf``):

    python3 benchmarks/dns_server.py
    python3 benchmarks/dns_server.py --time 10 --repeat 5 --in-flight 200
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

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.reversename

from netplay import Playground
from netplay.fabric import netns
from netplay.topology import Topology, Zones, dns_zones

TARGET_RATIO = 0.3
SERVER = "10.1.1.1"
OURS_PORT = 53
KNOT_PORT = 5300
READY_S = 10.0


def queries(topology: Topology) -> str:
    """The query list for dnsperf: one ``name type`` a line."""
    lines = []
    for host in topology.hosts:
        lines += [f"{topology.fqdn(host.name)} A", f"{topology.fqdn(host.name)} AAAA"]
        for address in topology.primary_addresses(host.name):
            reverse = dns.reversename.from_address(str(address))
            lines.append(f"{reverse.to_text(omit_final_dot=True)} PTR")
    lines += [
        f"{topology.domain} MX",
        f"smtp.{topology.domain} A",
        f"nosuchhost.{topology.domain} A",
        f"www.{topology.domain} TXT",
    ]
    return "\n".join(lines) + "\n"


def knot_config(directory: Path, zones: Zones) -> Path:
    for origin, zone in zones.items():
        text = zone.to_text(relativize=False, want_origin=True)
        (directory / f"{origin.to_text(omit_final_dot=True)}.zone").write_text(text)
    domains = "".join(f"  - domain: {origin}\n" for origin in zones)
    config = directory / "knot.conf"
    config.write_text(
        f"server:\n"
        f"    rundir: {directory}\n"
        f"    listen: {SERVER}@{KNOT_PORT}\n"
        f"    udp-workers: 1\n"
        f"    tcp-workers: 1\n"
        f"    background-workers: 1\n"
        f"database:\n"
        f"    storage: {directory}\n"
        f"log:\n"
        f"  - target: stderr\n"
        f"    any: warning\n"
        f"template:\n"
        f"  - id: default\n"
        f"    storage: {directory}\n"
        f'    file: "%s.zone"\n'
        f"zone:\n{domains}"
    )
    return config


def wait_answering(pg: Playground, port: int) -> None:
    """Until the server on backbone answers a query (from backbone itself)."""
    query = dns.message.make_query(f"www.{pg.topology.domain}", "A")
    deadline = time.monotonic() + READY_S
    with netns(pg.paths.net_pin("backbone")):
        while True:
            try:
                reply = dns.query.udp(query, SERVER, port=port, timeout=0.5)
                if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                    return
            except (OSError, dns.exception.DNSException):
                pass
            if time.monotonic() > deadline:
                message = f"the server on port {port} did not answer in {READY_S} s"
                raise SystemExit(f"dns_server.py: {message}")
            time.sleep(0.1)


@contextlib.contextmanager
def knot(pg: Playground) -> Iterator[None]:
    with tempfile.TemporaryDirectory(prefix="netplay-knot-") as tmp:
        config = knot_config(Path(tmp), dns_zones(pg.topology))
        proc = pg.host("backbone").popen(["knotd", "-c", str(config)])
        try:
            wait_answering(pg, KNOT_PORT)
            yield
        finally:
            proc.terminate()
            proc.wait()


def dnsperf(pg: Playground, port: int, query_file: Path, seconds: int, in_flight: int) -> float:
    argv = ["dnsperf", "-s", SERVER, "-p", str(port), "-d", str(query_file)]
    argv += ["-l", str(seconds), "-c", "4", "-q", str(in_flight)]
    result = pg.host("isp").run(argv, timeout=seconds + 30, check=True)
    found = re.search(r"Queries per second:\s+([\d.]+)", result.stdout)
    lost = re.search(r"Queries lost:\s+(\d+)", result.stdout)
    if found is None:
        raise SystemExit(f"dns_server.py: no rate in dnsperf's report:\n{result.stdout}")
    if lost is not None and int(lost.group(1)) > 0:
        print(f"  (port {port}: {lost.group(1)} queries lost)", file=sys.stderr)
    return float(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", type=int, default=5, help="seconds of load per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each server")
    parser.add_argument("--in-flight", type=int, default=100, help="queries outstanding at once")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("dns_server.py: run as root", file=sys.stderr)
        return 2
    for tool in ("knotd", "dnsperf"):
        if shutil.which(tool) is None:
            missing = f"{tool} is missing (apt-get install knot dnsperf)"
            print(f"dns_server.py: {missing}", file=sys.stderr)
            return 2
    ours: list[float] = []
    theirs: list[float] = []
    name = f"dnsbench{os.getpid()}"
    with Playground.up("book", name=name, purge=True) as pg, tempfile.TemporaryDirectory() as tmp:
        query_file = Path(tmp) / "queries"
        query_file.write_text(queries(pg.topology))
        with knot(pg):
            for _ in range(args.repeat):
                ours.append(dnsperf(pg, OURS_PORT, query_file, args.time, args.in_flight))
                theirs.append(dnsperf(pg, KNOT_PORT, query_file, args.time, args.in_flight))
    a, b = statistics.median(ours), statistics.median(theirs)
    verdict = "ok" if a / b >= TARGET_RATIO else f"UNDER {TARGET_RATIO}"
    print(f"netplay  {a:>10.0f} queries/s   (runs: {', '.join(f'{q:.0f}' for q in ours)})")
    print(f"knotd    {b:>10.0f} queries/s   (runs: {', '.join(f'{q:.0f}' for q in theirs)})")
    print(f"ratio    {a / b:>10.2f}x  target >= {TARGET_RATIO}x  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

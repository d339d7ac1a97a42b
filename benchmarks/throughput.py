"""Throughput benchmark: TCP bulk transfer h1 -> www against one direct veth pair.

In the same run, iperf3 measures:

- through the book playground: h1 to www, across homeA's switch, NAT in
  modemA, isp's LAN, and the routers isp, backbone and example;
- the reference: two bare network namespaces joined by one veth pair.

and prints both and their ratio (the target is at least 0.9).  Run as root:

    python3 benchmarks/throughput.py                  # 5 runs of 4 s each, medians
    python3 benchmarks/throughput.py --time 10 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from netplay import Playground

TARGET_RATIO = 0.9
WWW = "10.130.1.4"


@contextmanager
def _serve(argv: list[str], start: Callable[[list[str]], subprocess.Popen[str]]) -> Iterator[None]:
    server = start([*argv, "iperf3", "--server", "--one-off", "--forceflush"])
    try:
        assert server.stdout is not None
        for line in server.stdout:  # wait until it listens
            if "listening" in line:
                break
        yield
    finally:
        server.kill()
        server.wait()


def _bits_per_second(report: str) -> float:
    return float(json.loads(report)["end"]["sum_received"]["bits_per_second"])


def _popen(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def through_playground(pg: Playground, seconds: int) -> float:
    def start(argv: list[str]) -> subprocess.Popen[str]:
        return pg.host("www").popen(argv, stdout=subprocess.PIPE, text=True)

    with _serve([], start):
        client = ["iperf3", "--client", WWW, "--time", str(seconds), "--json"]
        return _bits_per_second(pg.host("h1").run(client, check=True).stdout)


@contextmanager
def veth_pair() -> Iterator[tuple[str, str]]:
    a, b = f"npthru{os.getpid()}-a", f"npthru{os.getpid()}-b"
    setup = [
        f"netns add {a}",
        f"netns add {b}",
        f"link add eth0 netns {a} type veth peer name eth0 netns {b}",
    ]
    try:
        subprocess.run(["ip", "-batch", "-"], input="\n".join(setup) + "\n", text=True, check=True)
        for ns, address in ((a, "10.255.0.1/30"), (b, "10.255.0.2/30")):
            lines = ["link set lo up", "link set eth0 up", f"addr add {address} dev eth0"]
            batch = ["ip", "-n", ns, "-batch", "-"]
            subprocess.run(batch, input="\n".join(lines) + "\n", text=True, check=True)
        yield a, b
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, check=False)


def direct(a: str, b: str, seconds: int) -> float:
    with _serve(["ip", "netns", "exec", b], _popen):
        client = ["iperf3", "--client", "10.255.0.2", "--time", str(seconds), "--json"]
        argv = ["ip", "netns", "exec", a, *client]
        return _bits_per_second(subprocess.run(argv, capture_output=True, text=True).stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", type=int, default=4, help="seconds per transfer (default 4)")
    parser.add_argument("--repeat", type=int, default=5, help="transfers of each kind (median)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("throughput.py: run as root", file=sys.stderr)
        return 2
    if shutil.which("iperf3") is None:
        print("throughput.py: install iperf3 (apt-get install iperf3)", file=sys.stderr)
        return 2
    ours, reference = [], []
    with Playground.up("book", name=f"thru{os.getpid()}", purge=True) as pg, veth_pair() as (a, b):
        for _ in range(args.repeat):  # alternate, so that both see the same machine
            reference.append(direct(a, b, args.time))
            ours.append(through_playground(pg, args.time))
    mine, floor = statistics.median(ours), statistics.median(reference)
    ratio = mine / floor
    verdict = "ok" if ratio >= TARGET_RATIO else f"UNDER {TARGET_RATIO}"
    print(f"h1 -> www through NAT and four routers: {mine / 1e9:6.2f} Gbit/s")
    print(f"one direct veth pair:                  {floor / 1e9:6.2f} Gbit/s")
    print(f"ratio: {ratio:.2f}x  (target >= {TARGET_RATIO}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

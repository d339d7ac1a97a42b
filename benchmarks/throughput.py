"""Throughput benchmark: TCP bulk transfer h1 -> www against one direct veth pair.

In the same run, iperf3 measures:

- through the book playground: h1 to www, across homeA's switch, NAT in
  modemA, isp's LAN, and the routers isp, backbone and example;
- the reference: two bare network namespaces joined by one veth pair, made
  by the same netlink request as the playground's links (same MTU, and the
  same 185,000-byte IPv4 segments: see GSO_IPV4_MAX_SIZE in
  netplay/fabric/_netlink.py);
- the same veth pair as `ip link add` makes it, with the kernel's defaults;

and prints each, and the playground's ratio to each (the target is at
least 0.9 against both).  Run as root:

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
from pathlib import Path

from netplay import Playground
from netplay.fabric import _netlink as nl
from netplay.fabric import netns

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
def veth_pair(as_playground: bool) -> Iterator[tuple[str, str]]:
    """Two namespaces joined by eth0, made as the playground makes links or as `ip` does."""
    kind = "pg" if as_playground else "ip"
    a, b = f"npthru{os.getpid()}{kind}-a", f"npthru{os.getpid()}{kind}-b"
    try:
        subprocess.run(["ip", "netns", "add", a], check=True)
        subprocess.run(["ip", "netns", "add", b], check=True)
        if as_playground:
            peer = os.open(f"/run/netns/{b}", os.O_RDONLY)
            try:
                with netns(Path(f"/run/netns/{a}")), nl.Socket() as sock:
                    index = nl.host_index("eth0")
                    sock.send(a, [nl.veth("eth0", index, "eth0", index, peer, 1500)])
            finally:
                os.close(peer)
        else:
            veth = ["ip", "link", "add", "eth0", "netns", a, "type", "veth"]
            subprocess.run([*veth, "peer", "name", "eth0", "netns", b], check=True)
        for ns, address in ((a, "10.255.0.1/30"), (b, "10.255.0.2/30")):
            lines = ["link set lo up", "link set eth0 up", f"addr add {address} dev eth0"]
            batch = ["ip", "-n", ns, "-batch", "-"]
            subprocess.run(batch, input="\n".join(lines) + "\n", text=True, check=True)
        yield a, b
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, check=False)


def direct(pair: tuple[str, str], seconds: int) -> float:
    a, b = pair
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
    ours: list[float] = []
    alike: list[float] = []
    default: list[float] = []
    with (
        Playground.up("book", name=f"thru{os.getpid()}", purge=True) as pg,
        veth_pair(as_playground=True) as same_links,
        veth_pair(as_playground=False) as ip_links,
    ):
        for _ in range(args.repeat):  # alternate, so that all see the same machine
            alike.append(direct(same_links, args.time))
            default.append(direct(ip_links, args.time))
            ours.append(through_playground(pg, args.time))
    mine = statistics.median(ours)
    print(f"h1 -> www through NAT and four routers:      {mine / 1e9:6.2f} Gbit/s")
    ratios = []
    for label, runs in (("links as the playground's", alike), ("the kernel's defaults", default)):
        floor = statistics.median(runs)
        ratios.append(mine / floor)
        print(f"one veth pair, {label + ':':28} {floor / 1e9:6.2f} Gbit/s  {mine / floor:.2f}x")
    ratio = min(ratios)
    verdict = "ok" if ratio >= TARGET_RATIO else f"UNDER {TARGET_RATIO}"
    print(f"ratio: {ratio:.2f}x, the lower of the two  (target >= {TARGET_RATIO}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Transfer benchmark: downloads from the playground's file servers against the classic daemons.

In the book playground, in one run, the same file of ``--size`` MiB
(random bytes, in brandon's home on www) is downloaded to h1, through
modemA's NAT, by OpenSSH's ``sftp`` client (key login; the file goes to
/dev/null), from:

- ours: www's SSH service (the builtin engine, asyncssh's SFTP server in a
  process of the user's), port 22;
- the reference: OpenSSH's sshd (``internal-sftp``), the ``openssh``
  engine of a second ssh service on www, port 2222, with the same host
  keys, accounts and file.

Each is timed ``--repeat`` times, the servers alternating; the median
throughput (MiB/s) of each is printed with the ratio (target: at least 0.5
of OpenSSH's).  Run as root with OpenSSH's server installed
(``apt-get install openssh-server``, as ``install.sh --test`` does):

    python3 benchmarks/transfer.py
    python3 benchmarks/transfer.py --size 500 --repeat 5
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netplay import Playground
from netplay.topology import Service, Topology, load

TARGETS = {"sftp": 0.5}  # of the reference's throughput, at least
SERVERS = {  # protocol -> (ours, the reference): (engine, port)
    "sftp": (("builtin", 22), ("openssh", 2222)),
}
REFERENCE_NAMES = {"sftp": "OpenSSH"}
KEY = "/tmp/netplay-transfer-key"  # in h1: its own /tmp
FILE = "big"


def topology(public_key: str) -> Topology:
    """The book, brandon with the benchmark's key, and the reference servers on www."""
    book = load("book")
    users = tuple(
        dataclasses.replace(u, keys=(public_key,)) if u.name == "brandon" else u for u in book.users
    )
    hosts = []
    for host in book.hosts:
        if host.name == "www":
            extra = Service(kind="ssh", name="sshd", engine="openssh", ports=(2222,))
            host = dataclasses.replace(host, services=(*host.services, extra))
        hosts.append(host)
    return dataclasses.replace(book, hosts=tuple(hosts), users=users)


def sftp_seconds(pg: Playground, port: int) -> float:
    argv = [
        "sftp", "-q", "-i", KEY, "-P", str(port),
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        f"brandon@www:{FILE}", "/dev/null",
    ]  # fmt: skip
    start = time.perf_counter()
    pg.host("h1").run(argv, check=True, timeout=600)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=200, help="MiB of the file")
    parser.add_argument("--repeat", type=int, default=3, help="downloads from each server")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("transfer.py: run as root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        key = Path(scratch) / "id"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        name = f"transfer{os.getpid()}"
        try:
            with Playground.up(
                topology(key.with_suffix(".pub").read_text().strip()), name=name
            ) as pg:
                h1 = pg.host("h1")
                h1.run(
                    ["sh", "-c", f"cat > {KEY}; chmod 600 {KEY}"], input=key.read_text(), check=True
                )
                make = f"head -c {args.size}M /dev/urandom > {FILE}"
                pg.host("www").run(["su", "brandon", "-c", f"cd && {make}"], check=True)
                print(f"{'protocol':<8} {'netplay':>12} {'reference':>22} {'ratio':>7}  target")
                for protocol, (ours, reference) in SERVERS.items():
                    seconds: dict[int, list[float]] = {ours[1]: [], reference[1]: []}
                    for _ in range(args.repeat):
                        for _engine, port in (ours, reference):
                            seconds[port].append(sftp_seconds(pg, port))
                    rate = {p: args.size / statistics.median(s) for p, s in seconds.items()}
                    ratio = rate[ours[1]] / rate[reference[1]]
                    verdict = "ok" if ratio >= TARGETS[protocol] else f"UNDER {TARGETS[protocol]}"
                    print(
                        f"{protocol:<8} {rate[ours[1]]:>8.1f} MiB/s "
                        f"{REFERENCE_NAMES[protocol]:>8} {rate[reference[1]]:>6.1f} MiB/s "
                        f"{ratio:>6.2f}x  {verdict}",
                        flush=True,
                    )
        finally:
            Playground.remove(name, purge=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

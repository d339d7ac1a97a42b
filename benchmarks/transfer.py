"""Transfer benchmark: downloads from the playground's file servers against the classic daemons.

In the book playground, in one run, a file of ``--size`` MiB (random
bytes, in brandon's home on www and on ftp) is downloaded to h1, through
modemA's NAT, the file going to /dev/null:

- SFTP, by OpenSSH's ``sftp`` client (key login), from www: ours, www's SSH
  service (the builtin engine, asyncssh's SFTP server in a process of the
  user's), port 22; the reference, OpenSSH's sshd (``internal-sftp``), the
  ``openssh`` engine of a second ssh service on www, port 2222, with the
  same host keys, accounts and file;
- FTP, by curl (``ftp://brandon:abc123@ftp:PORT/big``, passive mode, no
  TLS), from ftp: ours, ftp's FTP service (the builtin engine, pyftpdlib,
  sendfile), port 21; the reference, vsftpd, the ``vsftpd`` engine of a
  second ftp service on ftp, port 2121, passive ports of its own.

Each is timed ``--repeat`` times, the servers alternating; the median
throughput (MiB/s) of each is printed with the ratio (targets: at least
0.5 of OpenSSH's, 0.8 of vsftpd's).  Run as root with OpenSSH's server and
vsftpd installed (``apt-get install openssh-server vsftpd``, as
``install.sh --test`` does; without vsftpd, the FTP line says so):

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
from collections.abc import Callable
from pathlib import Path

from netplay import Playground
from netplay.services import registered
from netplay.topology import Service, Topology, load

TARGETS = {"sftp": 0.5, "ftp": 0.8}  # of the reference's throughput, at least
SERVERS = {  # protocol -> (ours, the reference): (engine, port)
    "sftp": (("builtin", 22), ("openssh", 2222)),
    "ftp": (("builtin", 21), ("vsftpd", 2121)),
}
REFERENCE_NAMES = {"sftp": "OpenSSH", "ftp": "vsftpd"}
SOURCES = {"sftp": "www", "ftp": "ftp"}  # the host each protocol's file is downloaded from
VSFTPD_PASSIVE = [60000, 60999]  # the builtin engine's are 61000-61999
KEY = "/tmp/netplay-transfer-key"  # in h1: its own /tmp
FILE = "big"


def topology(public_key: str, ftp: bool) -> Topology:
    """The book, brandon with the benchmark's key, and the reference servers on www
    and (if ``ftp``) on ftp."""
    book = load("book")
    users = tuple(
        dataclasses.replace(u, keys=(public_key,)) if u.name == "brandon" else u for u in book.users
    )
    hosts = []
    for host in book.hosts:
        if host.name == "www":
            extra = Service(kind="ssh", name="sshd", engine="openssh", ports=(2222,))
            host = dataclasses.replace(host, services=(*host.services, extra))
        if host.name == "ftp" and ftp:
            options = {"passive_ports": VSFTPD_PASSIVE}
            extra = Service(kind="ftp", name="vsftpd", engine="vsftpd", ports=(2121,),
                            options=options)  # fmt: skip
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


def ftp_seconds(pg: Playground, port: int) -> float:
    argv = [
        "curl", "-sS", "--fail", "--ftp-pasv", "--max-time", "600",
        f"ftp://brandon:abc123@ftp:{port}/{FILE}", "-o", "/dev/null",
    ]  # fmt: skip
    start = time.perf_counter()
    pg.host("h1").run(argv, check=True, timeout=600)
    return time.perf_counter() - start


DOWNLOADS: dict[str, Callable[[Playground, int], float]] = {
    "sftp": sftp_seconds,
    "ftp": ftp_seconds,
}


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
        no_vsftpd = registered()["ftp"]["vsftpd"].unavailable()
        try:
            with Playground.up(
                topology(key.with_suffix(".pub").read_text().strip(), ftp=not no_vsftpd),
                name=name,
            ) as pg:
                h1 = pg.host("h1")
                h1.run(
                    ["sh", "-c", f"cat > {KEY}; chmod 600 {KEY}"], input=key.read_text(), check=True
                )
                make = f"head -c {args.size}M /dev/urandom > {FILE}"
                for host in sorted(set(SOURCES.values())):
                    pg.host(host).run(["su", "brandon", "-c", f"cd && {make}"], check=True)
                print(f"{'protocol':<8} {'netplay':>12} {'reference':>22} {'ratio':>7}  target")
                for protocol, (ours, reference) in SERVERS.items():
                    if protocol == "ftp" and no_vsftpd:
                        print(f"{protocol:<8} skipped: {no_vsftpd}", flush=True)
                        continue
                    seconds: dict[int, list[float]] = {ours[1]: [], reference[1]: []}
                    for _ in range(args.repeat):
                        for _engine, port in (ours, reference):
                            seconds[port].append(DOWNLOADS[protocol](pg, port))
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

"""Boot benchmark: time to ready and to down, and memory, against an `ip -batch` floor.

For each topology (default: book, book-network, line:100, line:1000) this
runs, each in a fresh process:

- netplay: ``Playground.up`` until ready (every service has passed its
  health check), then ``down``; the peak memory of
  that process, and the memory the kernel holds per idle host (the drop in
  MemAvailable while the playground is up, divided by its hosts).  Each
  run uses a new name, so the first ``up`` makes a CA and every host's
  certificate; a second ``up`` of the same name, which finds them kept,
  is timed too, and then ``down --purge`` deletes them;
- the floor: the same network namespaces, veth pairs, bridges, addresses
  and routes made with iproute2 (``ip -batch``: one process for the
  namespaces and links, then one per namespace, since a batch cannot change
  namespace), and removed with ``ip -batch`` ``netns del``.  The floor makes
  no mount or UTS namespaces, no /etc files, no sysctls and no NAT.

``book-network`` is book without its services (``Playground.up("book",
services=False)``), so that its "ready" is the network alone: namespaces,
links, addresses, routes, NAT, /etc files, CA and certificates.

Each figure is printed with its ratio to the floor and, where an issue sets
one, its target.  Run as root:

    python3 benchmarks/boot.py                    # all four
    python3 benchmarks/boot.py book --repeat 5    # the median of five runs
    python3 benchmarks/boot.py line:1000 line:10000 star:2000   # scale

Given two sizes of one generator (``line:1000 line:10000``), it also prints
the time to ready per host of the larger against the smaller's: a cost
linear in the hosts keeps it near 1.

For the book it also prints the memory of an idle SSH service's server
(its proportional set size, PSS: a page shared with others counts a share
each), the mean over the book's twelve, against an idle OpenSSH sshd
(``engine = "openssh"``), measured in a playground of its own in the same
run.  The runner that supervises either (the same for every service) is
not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

from netplay import Playground
from netplay.fabric import _netlink as nl
from netplay.topology import Topology, load, loads

NETWORK_ONLY = "book-network"
TARGETS = {  # (topology, figure): the most the issues allow
    ("book", "ready_s"): 1.0,  # every service answering (issue: services and www)
    ("book", "again_s"): 1.0,
    (NETWORK_ONLY, "ready_s"): 0.3,  # the network alone (issue: the playground)
    (NETWORK_ONLY, "again_s"): 0.3,
    ("line:1000", "ready_s"): 10.0,
    ("line:1000", "down_s"): 3.0,
    ("line:10000", "ready_s"): 30.0,  # issue: scale
    ("line:10000", "down_s"): 10.0,
    ("line:10000", "mib_per_host"): 0.5,
}
MAX_MIB_PER_HOST = 2.0
MAX_GROWTH = 1.5  # time per host, the largest of a generator against its smallest
BATCH_LINES = 2000
SETTLE_S = 1.0  # the least wait before a figure, for the kernel's deferred work
QUIET = 0.1  # the machine is settled once its CPUs are at most this busy ...
QUIET_WINDOW_S = 0.5  # ... over this long
SETTLE_MAX_S = 120.0


def cpu_times() -> tuple[int, int]:
    """All CPUs' time since boot, and the part of it idle (in clock ticks)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values), values[3] + values[4]  # idle and iowait


def settle() -> None:
    """Wait for the kernel's deferred work to end before the next figure: at
    least SETTLE_S, then until the CPUs are quiet.  The kernel frees the
    namespaces of a ``down`` (or of ``ip netns del``) in a work queue after
    it has returned, holding the locks an ``up`` needs: 3 s after line:3000,
    6 s after line:10000, which the next ``up`` was timed through."""
    time.sleep(SETTLE_S)
    deadline = time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < deadline:
        total, idle = cpu_times()
        time.sleep(QUIET_WINDOW_S)
        total2, idle2 = cpu_times()
        if total2 > total and 1 - (idle2 - idle) / (total2 - total) <= QUIET:
            return


def mem_available_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def resolve(spec: str) -> tuple[str, bool]:
    """The spec Playground.up takes, and whether with services."""
    return ("book", False) if spec == NETWORK_ONLY else (spec, True)


def pss_mib(pid: int) -> float:
    """The proportional set size of a process."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss for process {pid}")


def ssh_pss_mib(pg: Playground) -> float | None:
    """The mean PSS of the servers of the playground's idle SSH services."""
    found = [
        pss_mib(service.pid)
        for service in pg.status().services
        if service.kind == "ssh" and service.pid is not None
    ]
    return statistics.mean(found) if found else None


SSHD_ONLY = """
[hosts.server]
services = [{ kind = "ssh", engine = "openssh" }]
[users.brandon]
password = "abc123"
[lans.lan.hosts]
server = ["10.9.0.1/24"]
"""


def measure_sshd() -> dict[str, float]:
    """An idle OpenSSH sshd: the reference of an idle SSH service."""
    name = f"bench{os.getpid()}"
    try:
        with Playground.up(loads(SSHD_ONLY), name=name) as pg:
            settle()
            memory = ssh_pss_mib(pg)
    finally:
        Playground.remove(name, purge=True)
    assert memory is not None
    return {"ssh_pss_mib": memory}


def measure_netplay(spec: str) -> dict[str, float]:
    spec, services = resolve(spec)
    hosts = len(load(spec).hosts)
    name = f"bench{os.getpid()}"
    ssh = None
    try:
        settle()
        before = mem_available_kib()
        start = time.perf_counter()
        pg = Playground.up(spec, name=name, services=services)
        ready = time.perf_counter() - start
        settle()
        held = before - mem_available_kib()
        ssh = ssh_pss_mib(pg)
        start = time.perf_counter()
        pg.down()
        down = time.perf_counter() - start
        settle()
        start = time.perf_counter()
        pg = Playground.up(spec, name=name, services=services)
        again = time.perf_counter() - start
    finally:
        Playground.remove(name, purge=True)  # whatever happened: no playground, no CA left
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figures = {
        "ready_s": ready,
        "again_s": again,
        "down_s": down,
        "peak_mib": peak / 1024,
        "mib_per_host": held / 1024 / hosts,
    }
    if ssh is not None:
        figures["ssh_pss_mib"] = ssh
    return figures


def _ns(prefix: str, key: str) -> str:
    return f"{prefix}{key}"


def floor_commands(topology: Topology, prefix: str) -> tuple[list[str], dict[str, list[str]]]:
    """The ``ip -batch`` lines: one batch in the machine's namespace, one per namespace."""
    main: list[str] = []
    inside: dict[str, list[str]] = {}
    for host in topology.hosts:
        main.append(f"netns add {_ns(prefix, host.name)}")
        inside[host.name] = ["link set lo up"]
    for net in topology.networks:
        if net.kind == "lan":
            sw = nl.switch_key(net.name)
            switch_ns = _ns(prefix, sw)
            main.append(f"netns add {switch_ns}")
            inside[sw] = ["link set lo up"]
            for k in range(nl.Switch(len(net.attachments)).bridges):  # as netplay's switch
                bridge = "type bridge forward_delay 0 stp_state 0"
                main.append(f"link add br{k} netns {switch_ns} {bridge}")
                inside[sw].append(f"link set br{k} up")
                if k:
                    main.append(
                        f"link add up{k} netns {switch_ns} mtu {net.mtu} type veth "
                        f"peer name dn{k} netns {switch_ns} mtu {net.mtu}"
                    )
                    inside[sw] += [
                        f"link set up{k} master br0 up",
                        f"link set dn{k} master br{k} up",
                    ]
            for i, att in enumerate(net.attachments):
                main.append(
                    f"link add {att.ifname} netns {_ns(prefix, att.host)} mtu {net.mtu} type veth "
                    f"peer name {nl.port_name(i)} netns {switch_ns} mtu {net.mtu}"
                )
                master = f"br{i // nl.PORTS_PER_BRIDGE}"
                inside[sw].append(f"link set {nl.port_name(i)} master {master} up")
        else:
            a, b = net.attachments
            main.append(
                f"link add {a.ifname} netns {_ns(prefix, a.host)} mtu {net.mtu} type veth "
                f"peer name {b.ifname} netns {_ns(prefix, b.host)} mtu {net.mtu}"
            )
        for att in net.attachments:
            lines = inside[att.host]
            lines.append(f"link set {att.ifname} up")
            for addr in att.addresses:
                peer = net.peer_of(att, addr)
                nodad = " nodad" if addr.version == 6 else ""
                if peer is None:
                    lines.append(f"addr add {addr} dev {att.ifname}{nodad}")
                else:
                    lines.append(
                        f"addr add {addr.ip} peer {peer}/{addr.network.prefixlen} "
                        f"dev {att.ifname}{nodad}"
                    )
                    if addr.version == 6:  # as netplay does: not left to the kernel's work queue
                        lines.append(f"route replace {peer}/128 dev {att.ifname} metric 256")
    for host in topology.hosts:
        inside[host.name].extend(f"route add {r.to} via {r.via}" for r in host.routes)
    return main, inside


def _batch(lines: list[str], netns: str | None = None) -> None:
    """Run the lines with ``ip -batch``, BATCH_LINES per process: ip keeps an
    fd of each namespace it names open, and 10,000 of them pass a process's
    limit of open files."""
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    for start in range(0, len(lines), BATCH_LINES):
        chunk = lines[start : start + BATCH_LINES]
        subprocess.run(argv, input="\n".join(chunk) + "\n", text=True, check=True)


def measure_floor(spec: str) -> dict[str, float]:
    topology = load(resolve(spec)[0])
    prefix = f"npfloor{os.getpid()}-"
    main, inside = floor_commands(topology, prefix)
    names = [line.split()[2] for line in main if line.startswith("netns add")]
    settle()
    before = mem_available_kib()
    start = time.perf_counter()
    try:
        _batch(main)
        for key, lines in inside.items():
            _batch(lines, _ns(prefix, key))
        ready = time.perf_counter() - start
        settle()
        held = before - mem_available_kib()
    finally:
        start = time.perf_counter()
        existing = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        _batch([f"netns del {name}" for name in names if name in existing])
        down = time.perf_counter() - start
    return {"ready_s": ready, "down_s": down, "mib_per_host": held / 1024 / len(topology.hosts)}


def run_one(kind: str, spec: str) -> dict[str, float]:
    """Measure in a fresh process, so that peak memory and caches are its own;
    a floor that iproute2 cannot build is said, and left out (empty)."""
    done = subprocess.run(
        [sys.executable, __file__, "--one", kind, spec],
        capture_output=True,
        text=True,
        check=kind != "floor",
    )
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error")]
        print(f"{spec}: no ip -batch floor: {(errors or ['ip failed'])[0]}", flush=True)
        return {}
    result: dict[str, float] = json.loads(done.stdout)
    return result


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    if not all(runs):
        return {}
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def rows(spec: str, ours: dict[str, float], floor: dict[str, float]) -> Iterator[str]:
    for key, label, unit, versus in (
        ("ready_s", "ready (new CA and certificates)", "s", "ready_s"),
        ("again_s", "ready (certificates kept)", "s", "ready_s"),
        ("down_s", "down", "s", "down_s"),
        ("mib_per_host", "memory per idle host", "MiB", "mib_per_host"),
        ("peak_mib", "peak memory of the netplay process", "MiB", ""),
    ):
        value = ours[key]
        ratio = f"{value / floor[versus]:.2f}x" if versus in floor and floor[versus] > 0 else "-"
        reference = f"{floor[versus]:.3f}" if versus in floor else "-"
        target = TARGETS.get((spec, key))
        base, services = resolve(spec)
        idle = not (services and any(h.services for h in load(base).hosts))
        if key == "mib_per_host" and idle and target is None:
            target = MAX_MIB_PER_HOST  # an idle host: no services running in it
        verdict = "-" if target is None else ("ok" if value <= target else f"OVER {target}")
        yield f"{spec:<12} {label:<36} {value:>9.3f} {unit:<4} {reference:>9} {ratio:>7}  {verdict}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="*", default=["book", NETWORK_ONLY, "line:100", "line:1000"])
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each measurement; the median is shown"
    )
    parser.add_argument("--one", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        kind, spec = args.one
        if kind == "sshd":
            print(json.dumps(measure_sshd()))
            return 0
        measure = measure_netplay if kind == "netplay" else measure_floor
        print(json.dumps(measure(spec)))
        return 0
    if os.geteuid() != 0:
        print("boot.py: run as root (the floor uses `ip netns add`)", file=sys.stderr)
        return 2
    header = ("topology", "figure", "netplay", "", "ip -batch", "ratio")
    print("{:<12} {:<36} {:>9} {:<4} {:>9} {:>7}  target".format(*header))
    per_host: dict[str, dict[int, float]] = {}  # generator -> hosts -> ready s per host
    for spec in args.specs:
        floor = median([run_one("floor", spec) for _ in range(args.repeat)])
        ours = median([run_one("netplay", spec) for _ in range(args.repeat)])
        for row in rows(spec, ours, floor):
            print(row, flush=True)
        if "ssh_pss_mib" in ours:
            sshd = median([run_one("sshd", spec) for _ in range(args.repeat)])["ssh_pss_mib"]
            value = ours["ssh_pss_mib"]
            label = "idle SSH server (PSS)"
            print(
                f"{spec:<12} {label:<36} {value:>9.3f} MiB  {sshd:>9.3f} {value / sshd:>6.2f}x"
                "  (the reference: OpenSSH's sshd)",
                flush=True,
            )
        generator, _, count = spec.partition(":")
        if count.isdigit():
            per_host.setdefault(generator, {})[int(count)] = ours["ready_s"] / int(count)
    for generator, times in per_host.items():
        if len(times) > 1:
            small, large = min(times), max(times)
            growth = times[large] / times[small]
            verdict = "ok" if growth <= MAX_GROWTH else f"OVER {MAX_GROWTH}"
            print(
                f"{generator}:{large} ready per host against {generator}:{small}: "
                f"{growth:.2f}x  {verdict}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The files a playground puts in its hosts: /etc/hosts, /etc/resolv.conf, CA bundles.

They are written into the playground's etc directory and bind-mounted in
each host's mount namespace only (:func:`netplay.fabric.build`), so the
machine's own /etc is never written.  With a DNS server, a host's
/etc/hosts holds only localhost and its own name; without one, every
host's name.  The CA bundles (copies of the machine's with the playground's
CA added, from :func:`netplay.pki.bundles`) are mounted once, in the
template every host's mount namespace is copied from.
"""

from __future__ import annotations

from pathlib import Path

from netplay import pki
from netplay.fabric import Mount, Paths, remove_path
from netplay.topology import Topology

RESOLV_CONF = "resolv.conf"


def write_files(
    paths: Paths, topology: Topology, ca_pem: bytes
) -> tuple[dict[str, list[Mount]], list[Mount]]:
    """Write the hosts' files; return each host's bind mounts and every host's."""
    etc = paths.etc_dir
    etc.mkdir(parents=True, exist_ok=True)
    resolv = etc / RESOLV_CONF
    resolv.write_text(topology.etc_resolv_conf())
    shared = etc / "hosts"
    with_dns = topology.dns_host() is not None
    if not with_dns:
        shared.write_text(topology.etc_hosts())
    mounts: dict[str, list[Mount]] = {}
    for host in topology.hosts:
        hosts_file = shared
        if with_dns:
            hosts_file = etc / f"hosts.{host.name}"
            hosts_file.write_text(topology.etc_hosts_of(host.name))
        mounts[host.name] = [(hosts_file, Path("/etc/hosts")), (resolv, Path("/etc/resolv.conf"))]
    return mounts, list(pki.bundles(ca_pem, etc))


def remove_files(paths: Paths) -> None:
    """Remove what :func:`write_files` wrote (and only that)."""
    etc = paths.etc_dir
    if not etc.is_dir():
        return
    own = [*etc.glob("hosts.*"), *etc.glob("trust*.pem")]
    for path in (etc / "hosts", *sorted(own), etc / RESOLV_CONF, etc):
        remove_path(path)

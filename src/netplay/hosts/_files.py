"""The files a playground puts in its hosts (/etc/hosts, /etc/resolv.conf,
/etc/gai.conf, CA bundles), and the ones it keeps from them.

They are written into the playground's etc directory and bind-mounted in
each host's mount namespace only (:func:`netplay.fabric.build`), so the
machine's own /etc is never written.  With a DNS server, a host's
/etc/hosts holds only localhost and its own name; without one, every
host's name.  The CA bundles (copies of the machine's with the playground's
CA added, from :func:`netplay.pki.bundles`) are mounted once, in the
template every host's mount namespace is copied from, and so is
/etc/gai.conf: how glibc orders the addresses of a name (RFC 6724).

Without a policy table glibc ranks unique-local IPv6 (fc00::/7, which the
book uses) above IPv4, so a client in h1 would reach www by IPv6, around
the NAT the book is drawn to show.  RFC 6724's default policy ranks it
below IPv4 (precedence 3 against 35), as current systems do; so, by
default, names resolve IPv4 first and IPv6 is used where asked for
(``-6``, an IPv6 literal, an AF_INET6 socket).  A topology may choose
``ipv4-first`` or ``ipv6-first`` instead (``address_selection``).

Hosts are separate machines: none sees the playground's secrets.  In each
host's mount namespace, empty read-only directories cover the playgrounds'
runtime directory (state files, pins, logs), their data directory (the CA's
key, every host's key, what services keep) and /run/netns; only what is
the host's own is put back, read-only: the CA's certificate, its own
certificate and key, the demo user's client certificate, and, writable, the
data its services keep (``Context.data``).  The files above are read-only
in the hosts too.  The machine's filesystem Unix sockets (its daemons' control
sockets, say) are covered by an empty file in the template, so that a host
cannot connect to them: those bound when the playground comes up, as the
machine's /proc/net/unix lists them.  Abstract sockets belong to a network
namespace: the hosts have their own.
"""

from __future__ import annotations

import stat
from pathlib import Path

from netplay import fabric, pki
from netplay.fabric import HostSetup, Mount, Paths, Privacy, remove_path
from netplay.hosts import _filesystem as filesystem
from netplay.hosts._users import Hashes, add_users
from netplay.topology import Topology

RESOLV_CONF = "resolv.conf"
GAI_CONF = "gai.conf"
NO_SOCKET = "no-socket"
#: the machine's network namespace is pid 1's; our own where /proc hides it
MACHINE_UNIX_SOCKETS = (Path("/proc/1/net/unix"), Path("/proc/self/net/unix"))
MACHINE_GAI_CONF = Path("/etc/gai.conf")
MACHINE_HOSTS = Path("/etc/hosts")
MACHINE_RESOLV_CONF = Path("/etc/resolv.conf")

# RFC 6724, section 2.1: the default policy table (prefix, precedence, label)
POLICY = (
    ("::1/128", 50, 0),
    ("::/0", 40, 1),
    ("::ffff:0:0/96", 35, 4),
    ("2002::/16", 30, 2),
    ("2001::/32", 5, 5),
    ("fc00::/7", 3, 13),
    ("::/96", 1, 3),
    ("fec0::/10", 1, 11),
    ("3ffe::/16", 1, 12),
)
RAISED = {"ipv4-first": ("::ffff:0:0/96", 100), "ipv6-first": ("fc00::/7", 45)}


def gai_conf(selection: str) -> str:
    """The /etc/gai.conf of an ``address_selection`` (see the module's docstring)."""
    raised = dict([RAISED[selection]]) if selection in RAISED else {}
    lines = [f"# netplay: RFC 6724's default policy table ({selection})"]
    lines += [f"precedence {prefix} {raised.get(prefix, p)}" for prefix, p, _label in POLICY]
    lines += [f"label {prefix} {label}" for prefix, _p, label in POLICY]
    return "\n".join(lines) + "\n"


def write_files(paths: Paths, topology: Topology, store: pki.Store) -> HostSetup:
    """Write the hosts' files and make their own filesystems, with the
    topology's users in them; return how the hosts' mount namespaces differ
    from the machine's: their overlays, their files, and what each must not see."""
    etc = paths.etc_dir
    etc.mkdir(parents=True, exist_ok=True)
    resolv = etc / RESOLV_CONF
    _write_public(resolv, topology.etc_resolv_conf())
    shared = etc / "hosts"
    with_dns = topology.dns_host() is not None
    if not with_dns:
        _write_public(shared, topology.etc_hosts())
    mounts: dict[str, tuple[Mount, ...]] = {}
    privacy: dict[str, Privacy] = {}
    covered = _secrets(paths, store)
    for host in topology.hosts:
        hosts_file = shared
        if with_dns:
            hosts_file = etc / f"hosts.{host.name}"
            _write_public(hosts_file, topology.etc_hosts_of(host.name))
        mounts[host.name] = ((hosts_file, MACHINE_HOSTS), (resolv, MACHINE_RESOLV_CONF))
        kept = [(path, False) for path in store.seen_by(host.name)]
        if host.services:  # what they keep (Context.data); a host without has none
            own_data = paths.service_data / host.name
            own_data.mkdir(parents=True, exist_ok=True, mode=0o755)
            kept.append((own_data, True))
        privacy[host.name] = Privacy(covered=covered, kept=tuple(kept))
    template = list(pki.bundles(store.ca.read_bytes(), etc))
    if MACHINE_GAI_CONF.is_file():  # a bind mount needs a file to cover (Debian has one)
        gai = etc / GAI_CONF
        _write_public(gai, gai_conf(topology.address_selection))
        template.append((gai, MACHINE_GAI_CONF))
    sockets = _machine_sockets(covered)
    if sockets:
        cover = etc / NO_SOCKET
        _write_public(cover, "")
        template += [(cover, socket) for socket in sockets]
    overlays = filesystem.prepare(paths, [host.name for host in topology.hosts])
    hashes = Hashes()
    for host in topology.hosts if topology.users else ():
        own = filesystem.filesystem(paths.data, host.name)
        add_users(own, topology.users, hashes, own_ids=fabric.many_users())
    return HostSetup(template=tuple(template), mounts=mounts, privacy=privacy, overlays=overlays)


def _write_public(path: Path, text: str) -> None:
    """Write a file every user of a host reads (as the machine's /etc/hosts
    is), whatever the umask of the process that makes the playground."""
    path.write_text(text)
    path.chmod(0o644)


def _secrets(paths: Paths, store: pki.Store) -> tuple[Path, ...]:
    """What no host may see: the playgrounds' runtime directory (their state,
    pins and logs), the directory of their kept data (CA keys, other hosts'
    keys, services' data), and the ``ip netns`` links of the machine."""
    found = [paths.base, store.dir.parent]
    if paths.root:
        found.append(Path("/run/netns"))
    # one inside another (a test session keeps its data in the runtime directory)
    # is covered already
    return tuple(p for p in found if not any(p != o and p.is_relative_to(o) for o in found))


def _machine_sockets(covered: tuple[Path, ...]) -> list[Path]:
    """The machine's filesystem Unix sockets, but for those in ``covered``."""
    for table in MACHINE_UNIX_SOCKETS:
        try:
            lines = table.read_text(errors="replace").splitlines()[1:]
            break
        except OSError:
            continue
    else:
        return []
    found = set()
    for line in lines:
        fields = line.split(None, 7)  # the path, last, may hold spaces
        if len(fields) == 8 and fields[7].startswith("/"):
            found.add(Path(fields[7]))
    return sorted(
        path
        for path in found
        if not any(path.is_relative_to(place) for place in covered) and _is_socket(path)
    )


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except OSError:
        return False


def remove_files(paths: Paths) -> None:
    """Remove what :func:`write_files` wrote (and only that), but for what the
    hosts keep in the data directory."""
    etc = paths.etc_dir
    if not etc.is_dir():
        return
    # a bundle's temporary file too: an up killed while writing one leaves it
    own = [*etc.glob("hosts.*"), *etc.glob("trust*.pem"), *etc.glob(".trust*.pem.tmp")]
    for path in (
        etc / "hosts",
        *sorted(own),
        etc / RESOLV_CONF,
        etc / GAI_CONF,
        etc / NO_SOCKET,
        etc,
    ):
        remove_path(path)

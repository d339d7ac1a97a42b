"""The ``memcached`` kind (port 11211), served by Debian's memcached: ``engine = "memcached"``.

The caching chapter's server is the real one (there is no Python memcached
worth the name): the server process the runner forks execs
``/usr/bin/memcached`` in the foreground, so that the runner's stop,
restarts and ``kill -9`` reach the daemon itself.  It listens on TCP only
(``-U 0``: memcached over UDP is a well-known amplifier), on each of the
host's addresses and on its loopback (the book's programs ask
``127.0.0.1:11211``), never on an address the playground does not own:
``-l`` names every address and port, nothing listens on ``*``.  It speaks
the text protocol only (``-B ascii``: the binary protocol is deprecated
upstream); ``shutdown`` stays off, as memcached has it.

Limits, from the start: ``memory`` (MiB of items, 64), ``max_item_size``
(bytes, 1 MiB: a bigger value is refused with ``SERVER_ERROR object too
large for cache``), ``max_connections`` (clients at once, 1024: past them a
new connection is told ``ERROR Too many open connections`` and closed) and
``idle_timeout`` (seconds, 300: a connection that sends no command for that
long is closed).  memcached has no limit per client, and does not time out a
client in the middle of a value's bytes (docs/services.md says what that
leaves open).  It drops root for Debian's user ``memcache`` (``nobody``
where that is missing); in a rootless playground, whose user namespace maps
one user, it stays that user, the one who made the playground.

memcached cannot name its processes: it is exec'd with the runner's title as
its ``argv[0]``, so ``ps`` shows ``netplay: book www/memcached server -u
memcache -U 0 ...`` (its ``comm``, for ``top``, stays ``memcached``).
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import sys
from collections.abc import Mapping
from typing import ClassVar

from netplay.errors import TopologyError
from netplay.fabric import one_user_mapped, process_name
from netplay.services._base import Context, Engine, HealthError, Start
from netplay.services._registry import register

MEMCACHED = "/usr/bin/memcached"
USERS = ("memcache", "nobody")  # Debian's, then the classic fallback
MEMORY_MIB = 64
MAX_ITEM_SIZE = 1 << 20
MAX_CONNECTIONS = 1024
IDLE_TIMEOUT_S = 300
THREADS = 2  # memcached's 4 are for busier machines; each serves many connections
SLAB_CHUNK_MAX = 512 << 10  # memcached's: half its 1 MiB slab page
#: -c counts file descriptors, and a client whose would be the last is turned away:
#: so -c is max_connections, plus one, plus memcached's own (measured, 1.6.18): stdin,
#: stdout, stderr and its event loop's three, four per worker thread, one per listener
FDS_OWN, FDS_PER_THREAD = 7, 4
LINE = 1024  # the longest reply line the health check reads


def _user() -> str | None:
    """Who memcached becomes (it refuses to go on as root): Debian's user, or in a
    rootless playground the only one there is; None if the host has neither."""
    if one_user_mapped():
        return pwd.getpwuid(0).pw_name
    for name in USERS:
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            continue
    return None


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class MemcachedEngine(Engine):
    default_ports = (11211,)
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "memory": int,
        "max_item_size": int,
        "max_connections": int,
        "idle_timeout": int,
    }
    #: SIGTERM would take memcached up to a second (it looks once a second);
    #: a cache in memory loses nothing it was not going to lose anyway
    stop_signal: ClassVar[signal.Signals] = signal.SIGKILL
    minimums: ClassVar[Mapping[str, float]] = {
        "memory": 8,
        "max_item_size": 1024,
        "max_connections": 1,
        "idle_timeout": 1,
    }
    maximums: ClassVar[Mapping[str, float]] = {
        "memory": 4096,
        "max_item_size": 128 << 20,
        "max_connections": 65_536,
        "idle_timeout": 86_400,
    }

    def unavailable(self) -> str | None:
        if not os.access(MEMCACHED, os.X_OK):
            return (
                "the memcached kind needs Debian's memcached: "
                "install it (apt-get install memcached)"
            )
        return None

    def check(self, ctx: Context, where: str) -> None:
        super().check(ctx, where)
        size = ctx.option("max_item_size", MAX_ITEM_SIZE)
        memory = ctx.option("memory", MEMORY_MIB)
        if not _is_power_of_two(size):
            raise TopologyError(
                "max_item_size must be a power of two (memcached's slabs are cut by it), "
                "such as 1048576",
                field=f"{where}.max_item_size",
            )
        if size > (memory << 20) // 2:
            raise TopologyError(
                f"max_item_size must be at most half of memory ({memory} MiB), as memcached "
                f"wants: give memory = {max(8, 2 * size >> 20)} or more",
                field=f"{where}.max_item_size",
            )

    def addresses(self, ctx: Context) -> list[str]:
        """Every address the host has, and its loopback's, as ``-l`` writes them."""
        found = ["127.0.0.1", "[::1]"]
        for _net, attachment in ctx.topology.attachments_of(ctx.host):
            for address in attachment.addresses:
                ip = str(address.ip)
                found.append(f"[{ip}]" if address.version == 6 else ip)
        return list(dict.fromkeys(found))

    def argv(self, ctx: Context, title: str, user: str) -> list[str]:
        """The daemon's command line (``title`` as its name in ps)."""
        ports = self.ports(ctx)
        listen = [f"{address}:{port}" for address in self.addresses(ctx) for port in ports]
        size = int(ctx.option("max_item_size", MAX_ITEM_SIZE))
        clients = int(ctx.option("max_connections", MAX_CONNECTIONS))
        extended = {
            "idle_timeout": int(ctx.option("idle_timeout", IDLE_TIMEOUT_S)),
            # in bytes, whatever memcached -h says; must divide -I and its 1 MiB page
            "slab_chunk_max": min(SLAB_CHUNK_MAX, size),
        }
        return [
            title,
            "-u", user,
            "-U", "0",
            "-B", "ascii",
            "-p", str(ports[0]),
            "-l", ",".join(listen),  # one -l: memcached skips one that is a substring of another
            "-t", str(THREADS),
            "-m", str(int(ctx.option("memory", MEMORY_MIB))),
            "-I", str(size),
            "-c", str(clients + FDS_OWN + FDS_PER_THREAD * THREADS + len(listen)),
            "-o", ",".join(f"{key}={value}" for key, value in extended.items()),
        ]  # fmt: skip

    def start(self, ctx: Context) -> Start:
        def run() -> None:
            user = _user()
            if user is None:  # not as root: a cache that any client may fill
                print(f"memcached: this host has no user {' or '.join(USERS)}", file=sys.stderr)
                raise SystemExit(1)
            # the runner's name for it as argv[0]: memcached cannot name itself
            argv = self.argv(ctx, process_name(), user)
            print(f"memcached: {' '.join(argv[1:])}", flush=True)
            os.execv(MEMCACHED, argv)

        return run

    def health(self, ctx: Context, timeout: float) -> None:
        """On each port: set a key to a random value, get it back, delete it."""
        for port in self.ports(ctx):
            _set_get_delete(ctx.address, port, timeout)


def _set_get_delete(address: str, port: int, timeout: float) -> None:
    """One exchange in the text protocol; HealthError if an answer is not the one due."""
    key = f"netplay:health:{os.urandom(8).hex()}".encode()
    value = os.urandom(16).hex().encode()
    with (
        socket.create_connection((address, port), timeout=timeout) as sock,
        sock.makefile("rb") as reply,
    ):
        sock.sendall(b"set %s 0 60 %d\r\n%s\r\n" % (key, len(value), value))
        if (stored := reply.readline(LINE)) != b"STORED\r\n":
            raise HealthError(f"port {port}: set {key.decode()} answered {stored!r}")
        sock.sendall(b"get %s\r\n" % key)
        wanted = [b"VALUE %s 0 %d\r\n" % (key, len(value)), value + b"\r\n", b"END\r\n"]
        got = [reply.readline(LINE)]
        if got == wanted[:1]:  # the header said the value comes: read it, and END
            got += [reply.readline(LINE), reply.readline(LINE)]
        if got != wanted:
            raise HealthError(f"port {port}: get {key.decode()} answered {got!r}, not its value")
        sock.sendall(b"delete %s\r\n" % key)
        if (deleted := reply.readline(LINE)) != b"DELETED\r\n":
            raise HealthError(f"port {port}: delete {key.decode()} answered {deleted!r}")


register("memcached", "memcached", MemcachedEngine())

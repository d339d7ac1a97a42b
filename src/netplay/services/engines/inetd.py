"""The ``inetd`` kind, built in: a command per connection, as inetd runs one.

Options: ``command`` (an argv list) or ``module`` (a Python module, run
with netplay's own interpreter as ``python -m MODULE``, followed by
``args``: what a topology file can name without knowing where Python and
netplay are installed), ``family`` and ``mode``:

- ``family``: as inetd.conf says it: ``tcp`` (IPv4), ``tcp6`` (IPv6), or
  ``tcp46`` (the default: both, as two listening sockets, one per family).
  The socket a command is handed is of its listener's family, so a program
  written for an IPv4 inetd line (``socket.fromfd(0, AF_INET, ...)``) reads
  an IPv4 peer address, never an IPv4-mapped IPv6 one;
- ``mode = "nowait"``: for every connection accepted, a new process runs
  the command with the connection as its stdin and stdout (stderr goes to
  the service's log), so many clients are served at once; at most
  ``max_children`` (64) run together, and ``per_source`` (16) for one
  client address, as xinetd's ``instances`` and ``per_source`` say: past
  either, a connection is closed at once (and said once in the log), so
  one client holding its connections open cannot keep the others out;
- ``mode = "wait"``: when a connection arrives on a listener, one process
  is started with that listening socket itself as stdin and stdout, and
  accepts connections on its own; the next one starts after it exits.

The command sees the client in TCPREMOTEIP and TCPREMOTEPORT (as
ucspi-tcp's tcpserver sets them).

The health check asks the kernel whether inetd's sockets listen in the
host's network (as ``ss -ltn`` does) rather than connecting to them: until
a client comes, those sockets are all of the service there is (the
command's protocol is unknown), and a connection would make inetd start
the command for a client that says nothing, at every check (for the book's
zen server, a Python interpreter each time).
"""

from __future__ import annotations

import importlib.util
import os
import select
import shutil
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from netplay.errors import TopologyError
from netplay.services._base import Context, Engine, HealthError, Start
from netplay.services._listening import listening
from netplay.services._registry import register

MAX_CHILDREN = 64
PER_SOURCE = 16
FAMILIES = {
    "tcp": (socket.AF_INET,),
    "tcp6": (socket.AF_INET6,),
    "tcp46": (socket.AF_INET, socket.AF_INET6),
}


def _exec(command: list[str], fd: int, env: Mapping[str, str]) -> None:
    """In a forked child: the socket ``fd`` as stdin and stdout, then the command."""
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.execvpe(command[0], command, {**os.environ, **env})


def _listen(family: socket.AddressFamily, port: int) -> socket.socket:
    """A listener on every address of one family (an IPv6 one takes IPv6 only)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    sock.listen(1024)
    return sock


def _nowait(
    listeners: Sequence[socket.socket], command: list[str], limit: int, per_source: int
) -> None:
    children: dict[int, str] = {}  # pid -> the client it serves
    refused: set[str] = set()  # clients told so in the log, until one is served again

    def reap(_sig: int = 0, _frame: object = None) -> None:
        while children:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.pop(pid, None)

    signal.signal(signal.SIGCHLD, reap)
    while True:
        ready, _, _ = select.select(listeners, [], [])
        for listener in ready:
            conn, peer = listener.accept()
            client = peer[0]
            why = _full(list(children.values()), client, limit, per_source)
            if why:  # closed at once, as xinetd does: never left waiting in the queue
                conn.close()
                if client not in refused:
                    refused.add(client)
                    print(f"inetd: refusing {client}: {why}", file=sys.stderr, flush=True)
                continue
            refused.discard(client)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - becomes the command
                try:
                    for sock in listeners:
                        sock.close()
                    remote = {"TCPREMOTEIP": client, "TCPREMOTEPORT": str(peer[1])}
                    _exec(command, conn.fileno(), remote)
                finally:
                    os._exit(127)
            children[pid] = client
            conn.close()


def _full(serving: list[str], client: str, limit: int, per_source: int) -> str | None:
    """Why a new connection from ``client`` is refused, or None."""
    if len(serving) >= limit:
        return f"{limit} commands run already (max_children)"
    if serving.count(client) >= per_source:
        return f"{per_source} commands serve it already (per_source)"
    return None


def _wait(listeners: Sequence[socket.socket], command: list[str]) -> None:
    while True:
        ready, _, _ = select.select(listeners, [], [])
        pid = os.fork()
        if pid == 0:  # pragma: no cover - becomes the command
            try:
                _exec(command, ready[0].fileno(), {})
            finally:
                os._exit(127)
        os.waitpid(pid, 0)


class InetdEngine(Engine):
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "command": list,
        "module": str,
        "args": list,
        "mode": str,
        "family": str,
        "max_children": int,
        "per_source": int,
    }
    minimums: ClassVar[Mapping[str, float]] = {"max_children": 1, "per_source": 1}
    maximums: ClassVar[Mapping[str, float]] = {"max_children": 4096, "per_source": 4096}
    example: ClassVar[Mapping[str, Any]] = {"ports": [7], "command": ["cat"]}

    def check(self, ctx: Context, where: str) -> None:
        super().check(ctx, where)
        module = ctx.option("module", None)
        if module is not None:
            if ctx.option("command", None) is not None:
                raise TopologyError(
                    "an inetd service has a command or a module, not both", field=where
                )
            if importlib.util.find_spec(module) is None:
                raise TopologyError(f"there is no module {module!r}", field=f"{where}.module")
            if not all(isinstance(word, str) for word in ctx.option("args", [])):
                raise TopologyError("args is a list of strings", field=f"{where}.args")
            command = self._command(ctx)
        else:
            command = ctx.option("command", None)
        if not command or not all(isinstance(word, str) for word in command):
            raise TopologyError(
                "an inetd service needs a command (a list of strings) or a module",
                field=f"{where}.command",
            )
        if shutil.which(command[0]) is None:  # the hosts have the machine's programs
            raise TopologyError(f"there is no program {command[0]!r}", field=f"{where}.command")
        if ctx.option("mode", "nowait") not in ("wait", "nowait"):
            raise TopologyError("mode is 'wait' or 'nowait'", field=f"{where}.mode")
        family = ctx.option("family", "tcp46")
        if family not in FAMILIES:
            raise TopologyError(
                f"family is one of {', '.join(FAMILIES)} (IPv4, IPv6, both)",
                field=f"{where}.family",
            )
        if not self._addresses(ctx):
            raise TopologyError(
                f"{ctx.host} has no address of the family {family}", field=f"{where}.family"
            )
        if len(self.ports(ctx)) != 1:
            raise TopologyError("an inetd service listens on one port", field=f"{where}.ports")

    def _command(self, ctx: Context) -> list[str]:
        module = ctx.option("module", None)
        if module is None:
            return list(ctx.option("command", []))
        return [sys.executable, "-m", module, *ctx.option("args", [])]

    def _addresses(self, ctx: Context) -> list[str]:
        """The host's addresses of the service's families, IPv4 first."""
        families = FAMILIES[ctx.option("family", "tcp46")]
        versions = [4 if f == socket.AF_INET else 6 for f in families]
        found = ctx.topology.primary_addresses(ctx.host)
        return [str(a) for v in versions for a in found if a.version == v]

    def start(self, ctx: Context) -> Start:
        port = self.ports(ctx)[0]
        command = self._command(ctx)
        mode = ctx.option("mode", "nowait")
        families = FAMILIES[ctx.option("family", "tcp46")]
        limit = int(ctx.option("max_children", MAX_CHILDREN))
        per_source = int(ctx.option("per_source", PER_SOURCE))

        def run() -> None:
            listeners = [_listen(family, port) for family in families]
            if mode == "wait":
                _wait(listeners, command)
            else:
                _nowait(listeners, command, limit, per_source)

        return run

    def health(self, ctx: Context, timeout: float) -> None:
        """A listening socket of each family it serves, in the host's network: not a
        connection, which would start the command for nobody (see the module's doc)."""
        port = self.ports(ctx)[0]
        for family in FAMILIES[ctx.option("family", "tcp46")]:
            if not listening(family, port):
                name = "IPv4" if family == socket.AF_INET else "IPv6"
                raise HealthError(f"nothing listens on {name} port {port}")

    def listens(self, ctx: Context) -> list[str]:
        port = self.ports(ctx)[0]
        families = FAMILIES[ctx.option("family", "tcp46")]
        return [f"{'tcp' if f == socket.AF_INET else 'tcp6'}/{port}" for f in families]


register("inetd", "builtin", InetdEngine())

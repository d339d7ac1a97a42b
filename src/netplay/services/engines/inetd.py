"""The ``inetd`` kind, built in: a command per connection, as inetd runs one.

Options: ``command`` (an argv list) and ``mode``:

- ``nowait``: for every connection accepted, a new process runs the command
  with the connection as its stdin and stdout (stderr goes to the service's
  log), so many clients are served at once; at most ``max_children`` (64)
  run together, further connections waiting in the listen queue;
- ``wait``: when a connection arrives, one process is started with the
  listening socket itself as stdin and stdout, and accepts connections on
  its own; the next one starts after it exits.

The command sees the client in TCPREMOTEIP and TCPREMOTEPORT (as
ucspi-tcp's tcpserver sets them).  IPv6 and IPv4 clients alike.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
from collections.abc import Mapping
from typing import Any, ClassVar

from netplay.errors import TopologyError
from netplay.services._base import Context, Engine, Start
from netplay.services._registry import register

MAX_CHILDREN = 64


def _exec(command: list[str], fd: int, env: Mapping[str, str]) -> None:
    """In a forked child: the socket ``fd`` as stdin and stdout, then the command."""
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.execvpe(command[0], command, {**os.environ, **env})


def _nowait(sock: socket.socket, command: list[str], limit: int) -> None:
    children: set[int] = set()

    def reap(_sig: int = 0, _frame: object = None) -> None:
        while children:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)

    signal.signal(signal.SIGCHLD, reap)
    while True:
        while len(children) >= limit:
            with contextlib.suppress(ChildProcessError):
                children.discard(os.waitpid(-1, 0)[0])
        conn, peer = sock.accept()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - becomes the command
            try:
                sock.close()
                host = peer[0].removeprefix("::ffff:") if "." in peer[0] else peer[0]
                _exec(command, conn.fileno(), {"TCPREMOTEIP": host, "TCPREMOTEPORT": str(peer[1])})
            finally:
                os._exit(127)
        children.add(pid)
        conn.close()


def _wait(sock: socket.socket, command: list[str]) -> None:
    while True:
        select.select([sock], [], [])
        pid = os.fork()
        if pid == 0:  # pragma: no cover - becomes the command
            try:
                _exec(command, sock.fileno(), {})
            finally:
                os._exit(127)
        os.waitpid(pid, 0)


class InetdEngine(Engine):
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "command": list,
        "mode": str,
        "max_children": int,
    }
    example: ClassVar[Mapping[str, Any]] = {"ports": [7], "command": ["cat"]}

    def check(self, ctx: Context, where: str) -> None:
        super().check(ctx, where)
        command = ctx.option("command", None)
        if not command or not all(isinstance(word, str) for word in command):
            raise TopologyError(
                "an inetd service needs a command: a list of strings", field=f"{where}.command"
            )
        if ctx.option("mode", "nowait") not in ("wait", "nowait"):
            raise TopologyError("mode is 'wait' or 'nowait'", field=f"{where}.mode")
        if len(self.ports(ctx)) != 1:
            raise TopologyError("an inetd service listens on one port", field=f"{where}.ports")

    def start(self, ctx: Context) -> Start:
        port = self.ports(ctx)[0]
        command = list(ctx.option("command", []))
        mode = ctx.option("mode", "nowait")
        limit = int(ctx.option("max_children", MAX_CHILDREN))

        def run() -> None:
            sock = socket.create_server(
                ("::", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=1024
            )
            if mode == "wait":
                _wait(sock, command)
            else:
                _nowait(sock, command, limit)

        return run

    def health(self, ctx: Context, timeout: float) -> None:
        with contextlib.closing(
            socket.create_connection((ctx.address, self.ports(ctx)[0]), timeout=timeout)
        ):
            pass


register("inetd", "builtin", InetdEngine())

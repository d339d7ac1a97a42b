"""The ``telnet`` kind (port 23), built in: a telnetd and login(1) on telnetlib3.

telnetlib3 speaks the protocol: the IAC state machine, option negotiation
(ECHO, SGA, TTYPE, NAWS; MUD and compression options refused) and IAC
escaping.  What Debian's telnetd and login do around it is ours
(:mod:`netplay.services.engines._telnet_session`): a ``HOST login: ``
prompt, ``Password: `` with the server echoing nothing (WILL ECHO), the
password checked against :mod:`netplay.accounts`' hashes in constant time,
``Login incorrect`` after ``fail_delay`` (3 s, login's FAIL_DELAY) and the
connection closed after ``max_tries`` (3) failures or ``login_timeout``
(60 s, login's LOGIN_TIMEOUT).  Only the topology's users who are also in
the host's /etc/passwd log in; any other name is refused as a wrong
password is.

Then the user's login shell runs on a pty, as the user (the session code
of the ``ssh`` engine: setsid, controlling tty, initgroups, setgid,
setuid), with HOME, USER, LOGNAME, SHELL, PATH, MAIL, TERM (the client's
first TTYPE, lowercased as telnetd does; ``network`` without one) and the
window size of NAWS, changes included.  In a rootless playground (a user
namespace that maps one user) sessions run as that user, and the log says
so.  The connection ends when the shell exits.

Hostile clients: connections are held as :class:`~netplay.services.Connections`
holds them (``max_connections``, 256; ``max_per_client``, 16; the idlest
gives way; a line at the login prompt counts as activity, a byte does
not); a login line longer than 1 KiB, a flood of telnet commands, or a
client that does not read the answers to its commands closes that
connection only; a logged-in session has no idle timeout unless
``idle_timeout`` says one (telnetd has none).

The health check is a real exchange with raw sockets (the runner does not
import telnetlib3): connect, answer the server's option negotiation, and
see the login prompt.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from netplay.services._base import Context, Engine, HealthError, Start, ensure_accounts
from netplay.services._registry import register

log = logging.getLogger("netplay.telnet")

PORT = 23
LOGIN_TIMEOUT_S = 60.0  # login.defs LOGIN_TIMEOUT
FAIL_DELAY_S = 3.0  # login.defs FAIL_DELAY
MAX_TRIES = 3
IDLE_TIMEOUT_S = 0.0  # none, as telnetd
MAX_CONNECTIONS = 256
MAX_PER_CLIENT = 16  # h1-h3 share one address behind their NAT
CHECKERS = 2  # passwords checked at once (scrypt: 16 MiB and 40 ms each)

# the telnet commands the health check reads and answers (RFC 854)
IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SGA = 1, 3
PROMPT = b"login: "


async def serve(ctx: Context, settings: Mapping[str, Any]) -> None:
    """Listen until the process is ended."""
    from netplay.accounts import Accounts
    from netplay.fabric import one_user_mapped
    from netplay.services.engines._telnet_session import Service, protocol_factory
    from netplay.services.engines.ssh import return_big_blocks

    return_big_blocks()
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(CHECKERS, thread_name_prefix="password"))
    service = Service.of(ctx, settings, Accounts.ensure(ctx.data, ctx.topology.users))
    service.rootless = one_user_mapped()
    if service.rootless:
        log.warning(
            "rootless: this user namespace maps one user only, so sessions run as that "
            "user whoever logs in (their home, shell and name as the host's /etc/passwd says)"
        )
    servers = [
        await loop.create_server(protocol_factory(service), None, port, backlog=1024)
        for port in settings["ports"]
    ]
    print(f"telnet: listening on port {' '.join(map(str, settings['ports']))}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


class TelnetEngine(Engine):
    default_ports = (PORT,)
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "login_timeout": (int, float),
        "fail_delay": (int, float),
        "max_tries": int,
        "idle_timeout": (int, float),
        "max_connections": int,
        "max_per_client": int,
    }
    minimums: ClassVar[Mapping[str, float]] = {
        "login_timeout": 1,
        "fail_delay": 0,
        "max_tries": 1,
        "idle_timeout": 0,
        "max_connections": 1,
        "max_per_client": 1,
    }
    maximums: ClassVar[Mapping[str, float]] = {
        "login_timeout": 3600,
        "fail_delay": 60,
        "max_tries": 100,
        "idle_timeout": 86_400,
        "max_connections": 65_536,
        "max_per_client": 65_536,
    }

    def settings(self, ctx: Context) -> dict[str, Any]:
        return {
            "ports": self.ports(ctx),
            "login_timeout": float(ctx.option("login_timeout", LOGIN_TIMEOUT_S)),
            "fail_delay": float(ctx.option("fail_delay", FAIL_DELAY_S)),
            "max_tries": int(ctx.option("max_tries", MAX_TRIES)),
            "idle_timeout": float(ctx.option("idle_timeout", IDLE_TIMEOUT_S)),
            "max_connections": int(ctx.option("max_connections", MAX_CONNECTIONS)),
            "max_per_client": int(ctx.option("max_per_client", MAX_PER_CLIENT)),
        }

    def preload(self, contexts: Sequence[Context]) -> None:
        ensure_accounts(contexts)

    def start(self, ctx: Context) -> Start:
        settings = self.settings(ctx)

        def run() -> None:
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True
            )
            # its warnings are about what clients send: garbage is not news
            logging.getLogger("telnetlib3").setLevel(logging.CRITICAL)
            asyncio.run(serve(ctx, settings))

        return run

    def health(self, ctx: Context, timeout: float) -> None:
        """On each port: the server's option negotiation answered, then its login prompt."""
        for port in self.ports(ctx):
            login_prompt(ctx.address, port, timeout)


def login_prompt(address: str, port: int, timeout: float) -> bytes:
    """Connect, answer the server's options as a minimal client does (DO ECHO and SGA,
    refuse the rest) and read up to the login prompt; return what it said, without
    the commands.  HealthError if it negotiated nothing or showed no prompt in time."""
    deadline = time.monotonic() + timeout
    said = bytearray()
    asked = 0
    answered: set[tuple[int, int]] = set()
    with socket.create_connection((address, port), timeout=timeout) as sock:
        pending = b""
        while PROMPT not in said:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HealthError(f"port {port}: no login prompt in {timeout:g} s: {bytes(said)!r}")
            sock.settimeout(left)
            data = sock.recv(4096)
            if not data:
                raise HealthError(f"port {port} closed before its login prompt: {bytes(said)!r}")
            text, commands, pending = _parse(pending + data)
            said += text
            replies = bytearray()
            for command, option in commands:
                asked += 1
                if (command, option) in answered:
                    continue
                answered.add((command, option))
                if command == WILL:
                    replies += bytes((IAC, DO if option in (ECHO, SGA) else DONT, option))
                elif command == DO:
                    replies += bytes((IAC, WONT, option))
            if replies:
                sock.sendall(replies)
    if not asked:
        raise HealthError(f"port {port} showed a login prompt without negotiating any option")
    return bytes(said)


def _parse(data: bytes) -> tuple[bytes, list[tuple[int, int]], bytes]:
    """The text in ``data``, its option commands (WILL, WONT, DO, DONT and the
    option), and an unfinished command left for the next read."""
    text = bytearray()
    commands: list[tuple[int, int]] = []
    i = 0
    while i < len(data):
        byte = data[i]
        if byte != IAC:
            text.append(byte)
            i += 1
            continue
        if i + 1 >= len(data):
            return bytes(text), commands, data[i:]
        command = data[i + 1]
        if command == IAC:
            text.append(IAC)
            i += 2
        elif command in (WILL, WONT, DO, DONT):
            if i + 2 >= len(data):
                return bytes(text), commands, data[i:]
            commands.append((command, data[i + 2]))
            i += 3
        elif command == SB:
            end = data.find(bytes((IAC, SE)), i + 2)
            if end < 0:
                return bytes(text), commands, data[i:]
            i = end + 2
        else:
            i += 2
    return bytes(text), commands, b""


register("telnet", "builtin", TelnetEngine())

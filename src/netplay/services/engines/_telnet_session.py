"""The connections of the ``telnet`` engine: telnetlib3's server protocol, a login
as Debian's login(1) over telnetd does it, and the user's shell on a pty.

:class:`Protocol` is telnetlib3's :class:`~telnetlib3.server.TelnetServer`
with bytes streams (no encoding): it asks for TTYPE (the first answer is
the terminal type), offers SGA and, once the terminal type is in, ECHO,
and asks for NAWS; it refuses LINEMODE (the pty does the line editing, in
"kludge" character mode as telnetd without linemode), NEW_ENVIRON, BINARY
unless the client asks, and the MUD and compression options.  Once
negotiation is over (or ``NEGOTIATION_S`` has passed for a client that
does not negotiate) a :class:`Session` runs:

- the login dialogue: ``HOST login: `` (the name echoed by the server, as
  the client agreed to WILL ECHO), ``Password: `` (echoed by nobody), the
  check in a thread; a failure is answered ``Login incorrect`` after the
  delay, and after the last try the connection closes;
- the shell: a pty whose slave becomes the user's (mode 0620, group tty,
  as login does), the window size from NAWS, a child forked and made the
  user by :func:`netplay.services.engines._ssh_session.become`, which
  execs the login shell (``-bash``).  Client bytes go to the pty, pty
  bytes to the client, with flow control both ways; as telnetd does,
  CR LF and CR NUL from a client not in BINARY mode become CR, and a CR
  not followed by LF going to it becomes CR NUL (telnetlib3 doubles IAC).
  IAC IP, BRK, SUSP, ABORT, EOF, EC and EL become the terminal's
  characters for them; IAC AYT is answered ``[Yes]``.

It ends when the shell has exited and its output is read (or shortly
after, if a background job holds the pty), or when the client leaves:
then the pty is closed (a hang-up: SIGHUP to the shell's process group)
and the child reaped whenever it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import logging
import os
import pwd
import re
import signal
import socket
import termios
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telnetlib3 import telopt
from telnetlib3.server import TelnetServer

from netplay.services._connections import Connections
from netplay.services.engines._ssh_session import (
    ROOT_PATH,
    USER_PATH,
    Account,
    account_of,
    become,
    set_size,
)

if TYPE_CHECKING:
    from netplay.accounts import Accounts
    from netplay.services._base import Context

log = logging.getLogger("netplay.telnet")

CHUNK = 32768
#: how long a client that does not negotiate delays its login prompt
NEGOTIATION_S = 2.0
#: the longest login name or password line; a longer one closes the connection
MAX_LINE = 1024
#: telnet commands (IAC bytes) a client may send at once, and per second after that
IAC_BURST, IAC_RATE = 8192.0, 1024.0
#: answers to its commands a client may leave unread before it is cut off
MAX_UNREAD = 1 << 20
#: how long the output of a shell that has exited is still read
PTY_DRAIN_S = 0.2
#: how long a closing connection may take to send what it has left
CLOSE_GRACE_S = 10.0
#: options refused whichever side offers them
REFUSED = frozenset(
    {
        telopt.LINEMODE,
        telopt.NEW_ENVIRON,
        telopt.CHARSET,
        telopt.EOR,
        telopt.SNDLOC,
        telopt.COM_PORT_OPTION,
        telopt.GMCP,
        telopt.MSDP,
        telopt.MSSP,
        telopt.MSP,
        telopt.MXP,
        telopt.ZMP,
        telopt.AARDWOLF,
        telopt.ATCP,
        telopt.MCCP2_COMPRESS,
        telopt.MCCP3_COMPRESS,
    }
)
TERM_RE = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}")
DEFAULT_TERM = "network"  # BSD telnetd's, for a client that names no terminal type
CR_PAIR = re.compile(rb"\r[\n\0]")
LONE_CR = re.compile(rb"\r(?!\n)")
BACKSPACE, DELETE, KILL, EOT, CR, LF = 0x08, 0x7F, 0x15, 0x04, 0x0D, 0x0A


@dataclass(eq=False)
class Service:
    """What every connection of one server shares."""

    settings: Mapping[str, Any]
    accounts: Accounts
    connections: Connections
    hostname: str
    issue: bytes
    rootless: bool = False
    #: the sessions' tasks and the reapers of children left behind, held while they run
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def of(cls, ctx: Context, settings: Mapping[str, Any], accounts: Accounts) -> Service:
        total = int(settings["max_connections"])
        connections = Connections(total, min(int(settings["max_per_client"]), total))
        return cls(settings, accounts, connections, socket.gethostname(), _issue())

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _issue() -> bytes:
    """The host's /etc/issue.net, as telnetd shows it before the prompt (its first 4 KiB)."""
    try:
        with open("/etc/issue.net", "rb") as f:
            text = f.read(4096).strip()
    except OSError:
        return b""
    return b"\r\n".join(text.splitlines()) + b"\r\n" if text else b""


def protocol_factory(service: Service) -> Callable[[], Protocol]:
    return lambda: Protocol(service)


class Protocol(TelnetServer):
    """One connection: telnetlib3's negotiation, our limits, then a :class:`Session`."""

    def __init__(self, service: Service) -> None:
        super().__init__(
            encoding=False,
            force_binary=True,  # bytes streams: negotiation need not wait for BINARY
            never_send_ga=True,
            connect_maxwait=NEGOTIATION_S,
            compression=False,
            timeout=0,  # no idle timer until a user has logged in
            cols=80,
            rows=24,  # a terminal's size until NAWS says another
        )
        self.service = service
        self.master: int | None = None  # the pty's, while a shell runs
        self.budget, self.refilled = IAC_BURST, time.monotonic()
        self.peer = "?"

    # -- the connection --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.peer = str(self.get_extra_info("peername", ("?",))[0])
        assert self.reader is not None and self.writer is not None
        self.reader.set_transport(transport)  # a reader that is not read stops the socket
        writer = self.writer
        writer.slc_simulated = False  # the pty's line discipline does the editing
        writer.always_dont.update(REFUSED)
        writer.always_wont.update(REFUSED)
        for command, character in (
            (telopt.IP, termios.VINTR),
            (telopt.BRK, termios.VINTR),
            (telopt.SUSP, termios.VSUSP),
            (telopt.ABORT, termios.VQUIT),
            (telopt.EOF, termios.VEOF),
            (telopt.EC, termios.VERASE),
            (telopt.EL, termios.VKILL),
        ):
            writer.set_iac_callback(command, self._control(character))
        writer.set_iac_callback(telopt.AYT, self._are_you_there)
        self.service.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.service.connections.discard(self)
        super().connection_lost(exc)

    def close(self) -> None:
        """Cut it off (the idlest connection giving way, in :class:`Connections`)."""
        if self._transport is not None:
            self._transport.abort()

    def touch(self) -> None:
        self.service.connections.touch(self)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.budget = min(IAC_BURST, self.budget + (now - self.refilled) * IAC_RATE)
        self.refilled = now
        self.budget -= data.count(0xFF)
        if self.budget < 0:
            log.warning("%s: a flood of telnet commands, disconnecting", self.peer)
            self.close()
            return
        super().data_received(data)
        transport = self._transport
        if transport is not None and transport.get_write_buffer_size() > MAX_UNREAD:
            log.warning("%s: does not read the answers to its commands, disconnecting", self.peer)
            self.close()

    # -- negotiation -----------------------------------------------------

    def begin_advanced_negotiation(self) -> None:
        """SGA and NAWS (ECHO follows the terminal type); not BINARY, as telnetd."""
        assert self.writer is not None
        self.writer.iac(telopt.WILL, telopt.SGA)
        self.writer.iac(telopt.DO, telopt.NAWS)

    def _negotiate_environ(self) -> None:
        """Not asked: the client's environment is not the session's."""
        self._environ_requested = True

    def begin_shell(self, future: asyncio.Future[None]) -> None:
        if future.cancelled() or future.exception() is not None or self._closing:
            return
        self.service.spawn(Session(self).run())

    def term(self) -> str:
        """TERM: the client's first terminal type, lowercased as telnetd does."""
        name = str(self.get_extra_info("ttype1") or "").lower()
        return name if TERM_RE.fullmatch(name) else DEFAULT_TERM

    def size(self) -> tuple[int, int, int, int]:
        return int(self.get_extra_info("cols")), int(self.get_extra_info("rows")), 0, 0

    def on_naws(self, rows: int, cols: int) -> None:
        super().on_naws(rows, cols)
        if self.master is not None:
            set_size(self.master, (cols, rows, 0, 0))  # the kernel sends SIGWINCH

    def _control(self, character: int) -> Callable[[bytes], None]:
        """IAC IP and its kin: the terminal's character for it, into the pty."""

        def send(_command: bytes) -> None:
            if self.master is None:
                return
            with contextlib.suppress(OSError):
                os.write(self.master, termios.tcgetattr(self.master)[6][character])

        return send

    def _are_you_there(self, _command: bytes) -> None:
        assert self.writer is not None
        self.writer.write(b"\r\n[Yes]\r\n")


class Crlf:
    """Client bytes as telnetd passes them on: CR LF and CR NUL become CR, unless
    the client sends BINARY (a pair may be cut between two reads)."""

    def __init__(self) -> None:
        self.after_cr = False

    def __call__(self, data: bytes, binary: bool = False) -> bytes:
        if binary:
            self.after_cr = False
            return data
        if self.after_cr and data[:1] in (b"\n", b"\0"):
            data = data[1:]
        self.after_cr = data.endswith(b"\r")
        return CR_PAIR.sub(b"\r", data)


def to_client(data: bytes, binary: bool) -> bytes:
    """Pty bytes as telnetd sends them: a CR not followed by LF is CR NUL (not in BINARY)."""
    return data if binary else LONE_CR.sub(b"\r\0", data)


class Session:
    """The login dialogue, then the shell, of one connection."""

    def __init__(self, protocol: Protocol) -> None:
        assert protocol.reader is not None and protocol.writer is not None
        self.protocol = protocol
        self.service = protocol.service
        self.settings = protocol.service.settings
        self.reader, self.writer = protocol.reader, protocol.writer
        self.crlf = Crlf()
        self.typed = bytearray()  # read, filtered, and not yet used

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def run(self) -> None:
        transport = self.protocol._transport
        try:
            account = await asyncio.wait_for(self.login(), self.settings["login_timeout"])
            if account is not None:
                await self.shell(account)
        except TimeoutError:
            timeout = self.settings["login_timeout"]
            self.write(f"\r\nLogin timed out after {timeout:g} seconds.\r\n".encode())
        except (ConnectionError, OSError) as exc:
            log.info("%s: %s", self.protocol.peer, exc)
        except Exception:
            log.exception("%s: the session broke", self.protocol.peer)
        finally:
            self.writer.close()  # what is written still goes out
            if transport is not None:
                asyncio.get_running_loop().call_later(CLOSE_GRACE_S, transport.abort)

    # -- logging in ------------------------------------------------------

    async def login(self) -> Account | None:
        settings, host = self.settings, self.service.hostname
        tries = int(settings["max_tries"])
        self.write(b"\r\n" + self.service.issue + b"\r\n" if self.service.issue else b"\r\n")
        for _ in range(tries):
            name = b""
            while not name:
                self.write(f"{host} login: ".encode())
                line = await self.line(echo=True)
                if line is None:
                    return None
                name = line.strip()
            self.write(b"Password: ")
            password = await self.line(echo=False)
            if password is None:
                return None
            self.write(b"\r\n")
            account = await self.check(name.decode("utf-8", "replace"), password)
            if account is not None:
                return account
            await asyncio.sleep(settings["fail_delay"])
            self.write(b"\r\nLogin incorrect\r\n")
            self.protocol.touch()
        self.write(f"Maximum number of tries exceeded ({tries})\r\n".encode())
        log.info("%s: %d failed logins, disconnecting", self.protocol.peer, tries)
        return None

    async def line(self, *, echo: bool) -> bytes | None:
        """One line typed at the prompt, edited as a terminal's canonical mode does
        (erase, kill); None at end of file, ^D on an empty line, or a line too long."""
        echo = echo and self.writer.local_option.enabled(telopt.ECHO)
        line = bytearray()
        while True:
            for i, byte in enumerate(self.typed):
                if byte in (CR, LF):
                    del self.typed[: i + 1]
                    if echo:
                        self.write(b"\r\n")
                    self.protocol.touch()
                    return bytes(line)
                if byte in (BACKSPACE, DELETE):
                    if line:
                        line.pop()
                        if echo:
                            self.write(b"\b \b")
                elif byte == KILL:
                    if echo:
                        self.write(b"\b \b" * len(line))
                    line.clear()
                elif byte == EOT and not line:
                    return None
                elif byte >= 0x20:
                    line.append(byte)
                    if echo:
                        self.write(bytes((byte,)))
                    if len(line) > MAX_LINE:
                        log.info("%s: a login line too long, disconnecting", self.protocol.peer)
                        return None
            self.typed.clear()
            data = await self.reader.read(CHUNK)
            if not data:
                return None
            self.typed += self.crlf(data)

    async def check(self, name: str, password: bytes) -> Account | None:
        """The user's account, if the password is theirs and the host knows them."""
        loop = asyncio.get_running_loop()
        accounts = self.service.accounts
        text = password.decode("utf-8", "replace")
        good = await loop.run_in_executor(None, accounts.check, name, text)
        peer = self.protocol.peer
        if not good:
            log.info("failed login for %r from %s", name, peer)
            return None
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            log.warning(
                "refusing %r from %s: the user is declared but has no account in this host "
                "(/etc/passwd)",
                name,
                peer,
            )
            return None
        return account_of(entry)

    # -- the shell -------------------------------------------------------

    def environment(self, account: Account) -> dict[str, str]:
        return {
            "HOME": account.home,
            "USER": account.name,
            "LOGNAME": account.name,
            "SHELL": account.shell,
            "PATH": ROOT_PATH if account.uid == 0 else USER_PATH,
            "MAIL": f"/var/mail/{account.name}",
            "TERM": self.protocol.term(),
        }

    async def shell(self, account: Account) -> None:
        shell = account.shell or "/bin/sh"
        switch = not self.service.rootless
        master, slave = os.openpty()
        try:
            tty = os.ttyname(slave)
            if switch:
                _give(slave, account)
            if not self.writer.local_option.enabled(telopt.ECHO):  # the client echoes
                attributes = termios.tcgetattr(slave)
                attributes[3] &= ~termios.ECHO
                termios.tcsetattr(slave, termios.TCSANOW, attributes)
            set_size(master, self.protocol.size())
            pid = _fork(account, slave, shell, self.environment(account), switch)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.protocol.master = master
        os.set_blocking(master, False)
        pidfd = os.pidfd_open(pid)
        how = "" if switch else f" (rootless: as uid {os.getuid()})"
        log.info("%s logged in from %s on %s%s", account.name, self.protocol.peer, tty, how)
        idle = float(self.settings["idle_timeout"])
        if idle > 0:
            self.protocol.set_timeout(idle)  # type: ignore[arg-type]  # call_later takes floats
        status: int | None = None
        try:
            status = await self.copy(master, pid, pidfd)
        finally:
            self.protocol.master = None
            os.close(master)  # a hang-up, if the shell still runs
            if status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGHUP)
                self.service.spawn(_reap(pid, pidfd))
            else:
                os.close(pidfd)
        ended = (
            "the client left" if status is None else f"status {os.waitstatus_to_exitcode(status)}"
        )
        log.info("%s logged out from %s (%s)", account.name, self.protocol.peer, ended)

    async def copy(self, master: int, pid: int, pidfd: int) -> int | None:
        """Copy both ways until the shell exits (its wait status) or the client
        leaves (None)."""
        output = asyncio.ensure_future(self.output(master))
        client = asyncio.ensure_future(self.input(master))
        exited = asyncio.ensure_future(_ready(pidfd))
        tasks = (output, client, exited)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if output.done() and not exited.done():  # the shell let go of its terminal
                await asyncio.wait((client, exited), return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                return None
            if not output.done():  # a background job may hold the pty: not for long
                await asyncio.wait((output,), timeout=PTY_DRAIN_S)
            return os.waitpid(pid, 0)[1]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def output(self, master: int) -> None:
        """The pty's output to the client, as fast as it reads."""
        while True:
            await _ready(master)
            try:
                data = os.read(master, CHUNK)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # every slave is closed
                    return
                raise
            if not data:
                return
            self.writer.write(to_client(data, self.writer.outbinary))
            self.protocol.touch()
            await self.writer.drain()

    async def input(self, master: int) -> None:
        """The client's bytes to the pty, as fast as the shell takes them."""
        data = bytes(self.typed)  # typed ahead, during the login
        self.typed.clear()
        while True:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(master, view) :]
                except BlockingIOError:
                    await _ready(master, write=True)
                except OSError:  # the terminal is gone: what was not read is lost
                    view = view[:0]
            data = await self.reader.read(CHUNK)
            if not data:
                return
            self.protocol.touch()
            data = self.crlf(data, self.writer.inbinary)


def _give(slave: int, account: Account) -> None:
    """The terminal to the user, as login does: owner the user, group tty, mode 0620."""
    try:
        group = grp.getgrnam("tty").gr_gid
    except KeyError:
        group = account.gid
    os.fchown(slave, account.uid, group)
    os.fchmod(slave, 0o620)


def _fork(account: Account, slave: int, shell: str, env: dict[str, str], switch: bool) -> int:
    """The child: the user's login shell on the terminal ``slave``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 127
        try:
            become(account, [slave] * 3, slave, switch=switch)
            os.execve(shell, [f"-{Path(shell).name}"], env)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.write(2, f"netplay telnet: {exc}\r\n".encode())
        finally:
            os._exit(status)
    return pid


async def _ready(fd: int, *, write: bool = False) -> None:
    """Until ``fd`` is readable (or writable)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, ready)
    try:
        await done
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


async def _reap(pid: int, pidfd: int) -> None:
    """Wait for a child the session left running (hung up), and reap it."""
    try:
        await _ready(pidfd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    finally:
        os.close(pidfd)

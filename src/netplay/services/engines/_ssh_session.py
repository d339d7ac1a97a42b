"""The sessions of the ``ssh`` engine: what a logged-in user runs, run as that user.

Each session (an SSH ``session`` channel) gets a child process forked from
the server, which becomes the user as login(1) and sshd do: a new session
(``setsid``), the user's groups (``initgroups``), ``setgid``, ``setuid``, the
home directory as working directory, and an environment of its own: HOME,
USER, LOGNAME, SHELL, PATH, MAIL, SSH_CONNECTION, SSH_CLIENT, TERM and
SSH_TTY with a pty, and what the client sent (``env`` requests) but the
dynamic loader's variables and these.  Then:

- ``exec``: the user's shell runs ``shell -c COMMAND`` (so ``scp -t`` and
  ``scp -f``, the legacy SCP protocol, run the machine's scp as the user, as
  sshd does);
- ``shell``: the user's shell as a login shell (``-bash``);
- with a pty (``pty-req``), its slave is the child's controlling terminal
  and its stdin, stdout and stderr, with the terminal modes the client
  sent (its own terminal's: erase, intr, echo); the window size is set and
  changed (``window-change``, and the kernel sends SIGWINCH), ``signal``
  requests reach the child's process group, ``break`` is a tty break;
- ``subsystem sftp``: the child does not exec: it serves asyncssh's own SFTP
  server (:class:`asyncssh.SFTPServer`: the whole protocol, OpenSSH's
  extensions included) on a new event loop (uvloop's: with asyncio's own,
  downloads ran at 0.41x OpenSSH's, with uvloop 0.54x, benchmarks/transfer.py),
  over a socket pair whose other end the server copies to and from the
  channel.  So SFTP, and ``scp`` in
  its SFTP mode (OpenSSH 9's default), is asyncssh's, with exactly the
  user's permissions, and the server process never touches a user's files.
  (The alternatives: asyncssh's SFTP server in the server process would act
  as root; OpenSSH's sftp-server, exec'd as the user, is not asyncssh and
  is not installed everywhere.)

The server copies the channel to the child's stdin and the child's stdout
and stderr to the channel, with flow control both ways, and reports the
child's exit status (or signal) when it has exited and its output has
ended (with a pty: when the pty has nothing more to read, or shortly after).
A child dies with the server (PR_SET_PDEATHSIG); a channel that closes
hangs up the child's process group (SIGHUP).

Rootless (a user namespace that maps one uid only): switching to another
user is impossible, so sessions run as the mapped user, whoever logged in;
their home, shell and environment are still the user's entry's.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import pwd
import signal
import socket
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netplay import fabric

#: the most read from, or written to, a session's child at once (an SFTP reply of
#: 32 KiB and its header, and several of them, in one read)
CHUNK = 1 << 18
#: bytes of the client's input held for a child that does not read, before the
#: channel stops reading
STDIN_HIGH = 1 << 20
#: how long the output of a pty session is read after its shell has exited
PTY_DRAIN_S = 0.2
#: environment variables a client may not set
DENIED_ENV = ("LD_", "HOME", "USER", "LOGNAME", "SHELL", "PATH", "MAIL", "SSH_", "TERM")
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"


@dataclass(frozen=True, slots=True)
class Account:
    """A user as the host's /etc/passwd has it."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str


def account_of(entry: pwd.struct_passwd) -> Account:
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_shell)


def sessions_switch_user() -> bool:
    """Whether sessions can become another user: False in a user namespace that
    maps a single uid (rootless, without subordinate ids), where setuid to
    another uid is impossible."""
    return fabric.many_users()


def session_class() -> type[SessionLogic]:
    """The session class, an ``asyncssh.SSHServerSession`` (asyncssh is imported by
    the server only: every engine module is imported wherever netplay lists its kinds)."""
    import asyncssh

    return type("Session", (SessionLogic, asyncssh.SSHServerSession), {})


class SessionLogic:
    """One session channel, and its child."""

    def __init__(
        self,
        account: Account,
        conn: Any,
        rootless: bool,
        ended: Callable[[], None],
        active: Callable[[], None],
    ) -> None:
        self.account = account
        self.conn = conn
        self.rootless = rootless
        self.ended = ended  # called once, when the channel is closed
        self.active = active  # data went through: the connection is not idle
        self.chan: Any = None
        self.loop = asyncio.get_running_loop()
        self.term: str | None = None
        self.size = (80, 24, 0, 0)
        self.modes: dict[int, int] = {}  # the client's terminal modes (pty-req)
        self.command: str | None = None
        self.subsystem: str | None = None
        self.pid: int | None = None
        self.pidfd: int | None = None
        self.status: int | None = None
        self.master: int | None = None  # the pty's master
        self.stdin: int | None = None
        self.outputs: dict[int, int] = {}  # fd -> datatype (None: stdout, 1: stderr)
        self.paused = False
        self.pending = bytearray()  # for the child's stdin
        self.eof = False
        self.done = False
        self.drain: asyncio.TimerHandle | None = None

    # -- requests --------------------------------------------------------

    def connection_made(self, chan: Any) -> None:
        self.chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], modes: Any
    ) -> bool:
        self.term = term_type or "dumb"
        self.size = term_size
        self.modes = dict(modes)
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.command = command
        return True

    def xon_xoff_requested(self, client_can_do: bool) -> None:
        pass

    def subsystem_requested(self, subsystem: str) -> bool:
        self.subsystem = subsystem
        return subsystem == "sftp"

    def session_started(self) -> None:
        try:
            self._start()
        except OSError as exc:
            self.chan.write_stderr(f"netplay ssh: cannot start the session: {exc}\r\n".encode())
            self.chan.exit(1)

    # -- starting the child ----------------------------------------------

    def _environment(self) -> dict[str, str]:
        a = self.account
        peer = self.conn.get_extra_info("peername", ("?", 0))
        mine = self.conn.get_extra_info("sockname", ("?", 0))
        env = {
            name: value
            for name, value in self.chan.get_environment().items()
            if isinstance(name, str) and name.isidentifier() and not name.startswith(DENIED_ENV)
        }
        env.update(
            HOME=a.home,
            USER=a.name,
            LOGNAME=a.name,
            SHELL=a.shell,
            PATH=ROOT_PATH if a.uid == 0 else USER_PATH,
            MAIL=f"/var/mail/{a.name}",
            SSH_CONNECTION=f"{peer[0]} {peer[1]} {mine[0]} {mine[1]}",
            SSH_CLIENT=f"{peer[0]} {peer[1]} {mine[1]}",
        )
        if self.term is not None:
            env["TERM"] = self.term
        return env

    def _start(self) -> None:
        shell = self.account.shell or "/bin/sh"
        name = os.path.basename(shell)
        env = self._environment()
        if self.subsystem == "sftp":
            mine, theirs = socket.socketpair()
            client_version = str(self.conn.get_extra_info("client_version", ""))
            # stderr stays the server's log: the socket carries SFTP packets only
            self._fork([theirs.fileno(), theirs.fileno(), 2], None, None, (client_version, env))
            theirs.close()
            fd = mine.detach()
            self.stdin, self.outputs = fd, {fd: 0}
        elif self.term is not None:
            master, slave = os.openpty()
            self.master = master
            set_size(master, self.size)
            set_modes(slave, self.modes)
            env["SSH_TTY"] = os.ttyname(slave)
            argv = [f"-{name}"] if self.command is None else [name, "-c", self.command]
            try:
                self._fork([slave] * 3, slave, (shell, argv, env), None)
            finally:
                os.close(slave)
            self.stdin, self.outputs = master, {master: 0}
        else:
            pipes = [os.pipe() for _ in range(3)]
            argv = [f"-{name}"] if self.command is None else [name, "-c", self.command]
            try:
                self._fork([pipes[0][0], pipes[1][1], pipes[2][1]], None, (shell, argv, env), None)
            finally:
                for fd in (pipes[0][0], pipes[1][1], pipes[2][1]):
                    os.close(fd)
            self.stdin = pipes[0][1]
            self.outputs = {pipes[1][0]: 0, pipes[2][0]: 1}
        for fd in {self.stdin, *self.outputs}:
            os.set_blocking(fd, False)
        for fd in self.outputs:
            self.loop.add_reader(fd, self._readable, fd)
        assert self.pid is not None
        self.pidfd = os.pidfd_open(self.pid)
        self.loop.add_reader(self.pidfd, self._exited)

    def _fork(
        self,
        stdio: list[int],
        tty: int | None,
        program: tuple[str, list[str], dict[str, str]] | None,
        sftp: tuple[str, dict[str, str]] | None,
    ) -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            status = 127
            try:
                become(self.account, stdio, tty, switch=not self.rootless)
                if program is not None:
                    shell, argv, env = program
                    os.execve(shell, argv, env)
                assert sftp is not None
                status = _serve_sftp(*sftp)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.write(2, f"netplay ssh: {exc}\r\n".encode())
            finally:
                os._exit(status)
        self.pid = pid

    # -- copying ---------------------------------------------------------

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: a pty whose every slave is closed
                raise
            data = b""
        if data:
            self.active()
            with contextlib.suppress(BrokenPipeError):  # the channel is closing
                self.chan.write(data, self.outputs[fd] or None)
                return
        self._close_output(fd)

    def _close_output(self, fd: int) -> None:
        self.loop.remove_reader(fd)
        del self.outputs[fd]
        if fd != self.stdin:
            os.close(fd)
        self._maybe_done()

    def pause_writing(self) -> None:
        self.paused = True
        for fd in self.outputs:
            self.loop.remove_reader(fd)

    def resume_writing(self) -> None:
        self.paused = False
        for fd in self.outputs:
            self.loop.add_reader(fd, self._readable, fd)

    def data_received(self, data: bytes, datatype: Any) -> None:
        if self.stdin is None or datatype is not None:
            return
        self.active()
        self.pending += data
        self._write_stdin()

    def _write_stdin(self) -> None:
        assert self.stdin is not None
        try:
            while self.pending:
                sent = os.write(self.stdin, self.pending[:CHUNK])
                del self.pending[:sent]
        except BlockingIOError:
            pass
        except OSError:  # the child closed its stdin: what it did not read is lost
            self.pending.clear()
        self.loop.remove_writer(self.stdin)
        if self.pending:
            self.loop.add_writer(self.stdin, self._write_stdin)
            if len(self.pending) > STDIN_HIGH:
                self.chan.pause_reading()
        else:
            self.chan.resume_reading()
            if self.eof:
                self._close_stdin()

    def eof_received(self) -> bool:
        self.eof = True
        if not self.pending:
            self._close_stdin()
        return True  # half closed: the output goes on

    def _close_stdin(self) -> None:
        """At the client's EOF: a pipe or socket is closed (shut down); a pty's
        master is the output too, and is left alone."""
        fd = self.stdin
        if fd is None or fd == self.master:
            return
        if fd in self.outputs:  # the SFTP socket
            with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_WR)
            return
        self.loop.remove_writer(fd)
        os.close(fd)
        self.stdin = None

    # -- requests while it runs ------------------------------------------

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self.master is not None:
            set_size(self.master, (width, height, pixwidth, pixheight))

    def signal_received(self, name: str) -> None:
        number = getattr(signal, f"SIG{name}", None)
        if isinstance(number, signal.Signals) and self.pid is not None and self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, number)

    def break_received(self, msec: int) -> bool:
        if self.master is None:
            return False
        with contextlib.suppress(OSError):
            termios.tcsendbreak(self.master, 0)
        return True

    # -- the end ---------------------------------------------------------

    def _exited(self) -> None:
        assert self.pid is not None and self.pidfd is not None
        self.loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = None
        _pid, self.status = os.waitpid(self.pid, 0)
        if self.master is not None:  # a background job may hold the pty open: not for long
            self.drain = self.loop.call_later(PTY_DRAIN_S, self._drained)
        self._maybe_done()

    def _drained(self) -> None:
        for fd in list(self.outputs):
            with contextlib.suppress(OSError):  # BrokenPipeError: the channel is closing
                while data := os.read(fd, CHUNK):
                    self.chan.write(data)
            self._close_output(fd)

    def _maybe_done(self) -> None:
        if self.done or self.status is None or self.outputs:
            return
        self.done = True
        if self.drain is not None:
            self.drain.cancel()
        self._release()
        if os.WIFSIGNALED(self.status):
            number = os.WTERMSIG(self.status)
            name = signal.Signals(number).name[3:] if number in signal.valid_signals() else "KILL"
            self.chan.exit_with_signal(name, os.WCOREDUMP(self.status))
        else:
            self.chan.exit(os.waitstatus_to_exitcode(self.status) & 0xFF)

    def _release(self) -> None:
        """Let go of every descriptor of the child."""
        for fd in list(self.outputs):
            self.loop.remove_reader(fd)
            if fd != self.stdin:
                os.close(fd)
        self.outputs.clear()
        if self.stdin is not None:
            self.loop.remove_writer(self.stdin)
            os.close(self.stdin)
            self.stdin = None
        if self.pidfd is not None:
            self.loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None

    def connection_lost(self, exc: Exception | None) -> None:
        """The channel is closed: the child's terminal hangs up (SIGHUP to its
        process group), it is reaped once it exits."""
        self.ended()
        if self.status is None and self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGHUP)
            pid, pidfd = self.pid, self.pidfd
            self.pidfd = None
            if pidfd is not None:
                self.loop.remove_reader(pidfd)
                self.loop.add_reader(pidfd, _reap, self.loop, pid, pidfd)
        self.done = True
        if self.drain is not None:
            self.drain.cancel()
        self._release()


def _reap(loop: asyncio.AbstractEventLoop, pid: int, pidfd: int) -> None:
    loop.remove_reader(pidfd)
    os.close(pidfd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


# RFC 4254 8 (and RFC 8160's IUTF8): the terminal modes' opcodes, numbered from
# each group's first, and where each is in tcgetattr's list (0 iflag, 1 oflag,
# 2 cflag, 3 lflag, 6 the characters).  What this system's termios lacks
# (VDSUSP, VSTATUS, ...) is left out, as OpenSSH's sshd leaves it.
_MODE_GROUPS = (
    (
        1,
        6,
        "VINTR VQUIT VERASE VKILL VEOF VEOL VEOL2 VSTART VSTOP VSUSP VDSUSP VREPRINT"
        " VWERASE VLNEXT VFLUSH VSWTC VSTATUS VDISCARD",
    ),
    (30, 0, "IGNPAR PARMRK INPCK ISTRIP INLCR IGNCR ICRNL IUCLC IXON IXANY IXOFF IMAXBEL IUTF8"),
    (50, 3, "ISIG ICANON XCASE ECHO ECHOE ECHOK ECHONL NOFLSH TOSTOP IEXTEN ECHOCTL ECHOKE PENDIN"),
    (70, 1, "OPOST OLCUC ONLCR OCRNL ONOCR ONLRET"),
    (90, 2, "CS7 CS8 PARENB PARODD"),
)
_MODES = {
    first + i: (where, name)
    for first, where, names in _MODE_GROUPS
    for i, name in enumerate(names.split())
}
_DISABLED = 255  # a character the client's terminal does not have


def set_modes(fd: int, modes: dict[int, int]) -> None:
    """Give the pty ``fd`` the terminal modes the client sent with its pty
    request (its own terminal's: erase, intr, echo, ...), as sshd does;
    the speeds (128, 129) mean nothing to a pty and are ignored."""
    if not modes:
        return
    attributes = termios.tcgetattr(fd)
    for op, value in modes.items():
        where, name = _MODES.get(op, (None, ""))
        bit = getattr(termios, name, None)
        if where is None or bit is None:
            continue
        if where == 6:
            character = 0 if value == _DISABLED else value  # Linux's _POSIX_VDISABLE
            attributes[6][bit] = bytes([character & 0xFF])
        elif name in ("CS7", "CS8"):  # a character size, not a flag
            if value:
                attributes[2] = attributes[2] & ~termios.CSIZE | bit
        elif value:
            attributes[where] |= bit
        else:
            attributes[where] &= ~bit
    with contextlib.suppress(termios.error):
        termios.tcsetattr(fd, termios.TCSANOW, attributes)


def set_size(fd: int, size: tuple[int, int, int, int]) -> None:
    width, height, pixwidth, pixheight = (max(0, min(v, 0xFFFF)) for v in size)
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, pixwidth, pixheight))


def become(account: Account, stdio: list[int], tty: int | None, *, switch: bool) -> None:
    """In the forked child: a session of its own on ``stdio`` (``tty`` its controlling
    terminal), as ``account`` (unless ``switch`` is False: rootless), in its home."""
    from netplay.fabric import die_with_parent

    os.setsid()
    if tty is not None:
        fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
    for target, fd in enumerate(stdio):
        os.dup2(fd, target)
    for number in signal.valid_signals():
        with contextlib.suppress(OSError, ValueError):
            signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if switch and (os.getuid(), os.getgid()) != (account.uid, account.gid):
        os.initgroups(account.name, account.gid)
        os.setgid(account.gid)
        os.setuid(account.uid)
    die_with_parent(signal.SIGKILL)  # a change of user cleared it: set it again
    try:
        os.chdir(account.home)
    except OSError:
        os.write(2, f"Could not chdir to home directory {account.home}\r\n".encode())
        os.chdir("/")


def _serve_sftp(client_version: str, env: dict[str, str]) -> int:
    """In the forked child, as the user: asyncssh's SFTP server on stdin (a socket)
    until the client ends it.  The server's event loop, inherited, is left alone."""
    keep = {0, 1, 2}
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in keep:
            with contextlib.suppress(OSError):
                os.close(int(name))
    os.environ.clear()
    os.environ.update(env)
    asyncio.events._set_running_loop(None)
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(_sftp(client_version, env))
    return 0


class _Channel:
    """What asyncssh's SFTP server asks of its channel, for a socket."""

    def __init__(self, writer: asyncio.StreamWriter, client_version: str, env: dict[str, str]):
        self.writer = writer
        from asyncssh.logging import logger

        self.logger = logger.get_child("sftp")
        self.extra = {"client_version": client_version}
        self.env = env

    def is_closing(self) -> bool:
        return self.writer.is_closing()

    def get_environment(self) -> dict[str, str]:
        return self.env

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)


class _Reader:
    def __init__(self, reader: asyncio.StreamReader, channel: _Channel) -> None:
        self.reader = reader
        self.channel = channel
        self.logger = channel.logger

    async def readexactly(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.channel.get_extra_info(name, default)


class _Writer:
    def __init__(self, writer: asyncio.StreamWriter, channel: _Channel) -> None:
        self.writer = writer
        self.channel = channel
        self.logger = channel.logger

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def write_eof(self) -> None:
        with contextlib.suppress(OSError):
            self.writer.write_eof()

    def close(self) -> None:
        self.writer.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.channel.get_extra_info(name, default)


async def _sftp(client_version: str, env: dict[str, str]) -> None:
    import asyncssh
    from asyncssh.sftp import SFTPServer, run_sftp_server

    sock = socket.socket(fileno=os.dup(0))
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    reader, writer = await asyncio.open_connection(sock=sock)
    channel = _Channel(writer, client_version, env)
    server = SFTPServer(channel)  # type: ignore[arg-type]
    with contextlib.suppress(OSError, asyncssh.Error, EOFError):
        await run_sftp_server(server, _Reader(reader, channel), _Writer(writer, channel), 3)  # type: ignore[arg-type]
        await writer.drain()
    writer.close()
    with contextlib.suppress(OSError):  # what is still buffered goes out before the exit
        await writer.wait_closed()

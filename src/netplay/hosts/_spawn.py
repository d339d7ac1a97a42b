"""Background programs in a host: started, known to be ready, and stopped with all they started.

A spawned program writes its stdout and stderr to files of its own
(unnamed temporary files), never to pipes: a program that prints a lot
while nobody reads it can then never block on a full pipe, and stopping
it never waits for a pipe that a grandchild still holds.  Its output is
read from those files: line by line as it comes (:meth:`Spawned.readline`),
or all that is left when it is stopped.

It is ready when it has printed its first line, or when a socket of its
own listens on a port.  Sockets are read from ``/proc/PID/net/{tcp,tcp6,
udp,udp6}``, which lists those of the network namespace PID lives in, and
matched by inode with the sockets that the processes of its session hold
(``/proc/*/fd``), so a socket of another program on the same port does not
count.  Nothing needs to enter the host, and nothing is sent to the program.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from typing import IO

from netplay.errors import CommandFailedError, UsageError
from netplay.fabric import in_session

#: when a spawned program is ready: "line", a TCP port, "tcp/PORT", "udp/PORT", or None
Ready = int | str | None

POLL_S = 0.01
TCP_LISTEN = "0A"
STOP_S = 5.0


class Spawned:
    """A program running in the background in a host (see :meth:`Host.spawn`)."""

    def __init__(
        self,
        host: str,
        argv: list[str],
        proc: subprocess.Popen[bytes],
        out: IO[bytes],
        err: IO[bytes],
    ) -> None:
        self.host = host
        self.argv = argv
        self.proc = proc
        #: the first line it printed, when it was spawned with ``ready="line"``
        self.first_line: str | None = None
        self._out = out
        self._err = err
        self._read = 0  # how much of its stdout has been handed out

    def __repr__(self) -> str:
        return f"<Spawned {self.argv[0]!r} on {self.host} (pid {self.pid})>"

    def __enter__(self) -> Spawned:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def readline(self, timeout: float = 10.0) -> str:
        """Its next line of output (without the newline); CommandFailedError if
        none comes within ``timeout`` seconds or it ends first."""
        deadline = time.monotonic() + timeout
        while True:
            ended = self.proc.poll() is not None  # before reading: all it wrote is there
            pending = os.pread(self._out.fileno(), 1 << 20, self._read)
            end = pending.find(b"\n")
            if end >= 0:
                self._read += end + 1
                return pending[:end].decode(errors="replace").rstrip("\r")
            if ended:
                raise self._failure("ended before it printed a line")
            if time.monotonic() > deadline:
                raise self._failure(f"printed no line within {timeout:g} s")
            time.sleep(POLL_S)

    def stop(self, timeout: float = STOP_S) -> tuple[str, str]:
        """End it and everything it started (SIGTERM, then SIGKILL after
        ``timeout`` seconds); return what it printed that was not read yet, on
        stdout, and all it printed on stderr."""
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        _signal_group(self.proc.pid, signal.SIGKILL)  # what it left behind in its session
        if self._out.closed:
            return "", ""
        out = os.pread(self._out.fileno(), os.fstat(self._out.fileno()).st_size, self._read)
        err = os.pread(self._err.fileno(), os.fstat(self._err.fileno()).st_size, 0)
        self._out.close()
        self._err.close()
        return out.decode(errors="replace"), err.decode(errors="replace")

    def _failure(self, what: str) -> CommandFailedError:
        """What went wrong, and the last line the program wrote on its stderr
        (a traceback's exception, a server's complaint), if any."""
        status = self.proc.poll()
        out, err = self.stop()
        last = err.strip().splitlines()[-1:]
        said = f"{what} (it said: {last[0].strip()})" if last else what
        return CommandFailedError(
            self.host, self.argv, -9 if status is None else status, out, f"{err}\n{said}"
        )


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def output_files() -> tuple[IO[bytes], IO[bytes]]:
    """Two unnamed files for a program's stdout and stderr (gone once closed)."""
    return tempfile.TemporaryFile(), tempfile.TemporaryFile()


def wait_ready(spawned: Spawned, ready: Ready, timeout: float) -> None:
    """Return once ``spawned`` is ready; stop it and raise CommandFailedError if it is not."""
    if ready is None:
        return
    if ready == "line":
        spawned.first_line = spawned.readline(timeout)
        return
    protocol, port = _port(ready)
    deadline = time.monotonic() + timeout
    while not listening(spawned.pid, protocol, port):
        if spawned.proc.poll() is not None:
            raise spawned._failure(f"ended before it listened on {protocol}/{port}")
        if time.monotonic() > deadline:
            raise spawned._failure(f"did not listen on {protocol}/{port} within {timeout:g} s")
        time.sleep(POLL_S)


def _port(ready: int | str) -> tuple[str, int]:
    if isinstance(ready, int):
        return "tcp", ready
    protocol, _, number = ready.partition("/")
    if protocol not in ("tcp", "udp") or not number.isdigit():
        raise UsageError(
            f"ready={ready!r} is not a readiness", hint='use "line", a port, "tcp/80" or "udp/53"'
        )
    return protocol, int(number)


def listening(pid: int, protocol: str, port: int) -> bool:
    """Whether a process of the session ``pid`` leads has a socket listening
    on ``protocol``/``port`` (for UDP: bound to it)."""
    inodes = set()
    for table in (protocol, protocol + "6"):
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as f:
                next(f)  # the header
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if int(local.rsplit(":", 1)[1], 16) != port:
                        continue
                    if protocol == "udp" or state == TCP_LISTEN:
                        inodes.add(f"socket:[{inode}]")
        except (OSError, StopIteration):
            continue
    return bool(inodes) and bool(inodes & _sockets_of_session(pid))


def _sockets_of_session(sid: int) -> set[str]:
    """The sockets (``socket:[INODE]``) held by the processes of session ``sid``."""
    found = set()
    for member in in_session(sid):
        try:
            for fd in os.scandir(f"/proc/{member}/fd"):
                target = os.readlink(fd.path)
                if target.startswith("socket:"):
                    found.add(target)
        except OSError:
            continue
    return found

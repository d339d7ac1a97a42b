"""The runner: one small supervising process per service, inside its host.

``up`` forks one runner per service, all at once.  Each enters its host's
namespaces, starts the server in a process group of its own (so whatever
the server forks goes with it), and reports once over a pipe: ``ready``
when the engine's health check (one real protocol exchange) has passed,
or ``failed REASON``.  Then it supervises:

- a server that exits is restarted after a back-off (0.5 s, doubling to
  8 s), and must pass its health check again;
- after ``restart_limit`` restarts (default 5) within RESTART_WINDOW_S the
  service is ``failed``, and the reason is in its log and its state;
- the health check is retried for ``health_timeout`` seconds (default 15);
- signals control it: SIGHUP restarts the server, SIGUSR1 stops it,
  SIGUSR2 starts it again, SIGTERM stops it and ends the runner.

The runner's state (a :class:`RunnerState`: starting, running, restarting,
stopped or failed; the server's pid; restarts; the reason of a failure) is
a JSON file it rewrites on every change, which ``status`` reads.  Its log
holds the server's stdout and stderr and the runner's own lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from netplay._model import ServiceState, from_data, to_data
from netplay.fabric import Paths, die_with_parent, enter_host, name_process
from netplay.services._base import Context, Engine, HealthError

SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2}
HEALTH_TIMEOUT_S = 15.0
HEALTH_INTERVAL_S = 0.05
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
RESTART_WINDOW_S = 60.0
RESTART_LIMIT = 5
STOP_GRACE_S = 3.0


@dataclass(frozen=True, slots=True)
class Files:
    """Where one service's state and log are kept."""

    state: Path
    log: Path

    @classmethod
    def of(cls, paths: Paths, host: str, name: str) -> Files:
        base = directory(paths)
        return cls(base / f"{host}.{name}.json", base / f"{host}.{name}.log")


def directory(paths: Paths) -> Path:
    """Where the runners keep their states and logs."""
    return paths.dir / "services"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerState:
    """What a runner says of its service, in its state file."""

    id: str
    listens: tuple[str, ...] = ()
    state: ServiceState = ServiceState.STARTING
    pid: int | None = None
    restarts: int = 0
    reason: str = ""
    #: control signals handled so far: a controller that sent one waits for this to grow
    handled: int = 0


def read(files: Files) -> RunnerState | None:
    """The runner's last word, or None if it said nothing readable yet."""
    try:
        return from_data(RunnerState, json.loads(files.state.read_text()))
    except (OSError, ValueError):
        return None


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


class Runner:
    """Supervises the server of one service; runs in its own forked process."""

    def __init__(
        self, ctx: Context, engine: Engine, files: Files, log_fd: int, dir_fd: int, title: str
    ) -> None:
        self.ctx = ctx
        self.title = title  # what ps shows: "netplay: book www/https", then runner or server
        self.engine = engine
        self.files = files
        self.log_fd = log_fd
        self.dir_fd = dir_fd  # the directory of its state file
        self.server: int | None = None
        self.state = ServiceState.STARTING
        self.reason = ""
        self.restarts = 0
        self.recent: list[float] = []
        self.restart_at: float | None = None
        self.handled = 0
        self.limit = int(ctx.option("restart_limit", RESTART_LIMIT))
        self.health_timeout = float(ctx.option("health_timeout", HEALTH_TIMEOUT_S))

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with contextlib.suppress(OSError):
            os.write(self.log_fd, f"{stamp} netplay: {self.ctx.id} {message}\n".encode())

    def save(self) -> None:
        now = RunnerState(
            id=self.ctx.id,
            listens=tuple(self.engine.listens(self.ctx)),
            state=self.state,
            pid=self.server,
            restarts=self.restarts,
            reason=self.reason,
            handled=self.handled,
        )
        # through the directory opened before entering the host: the host does
        # not see the playground's runtime directory (netplay.hosts)
        name = self.files.state.name
        fd = os.open(
            f"{name}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=self.dir_fd
        )
        with open(fd, "w") as out:
            out.write(json.dumps(to_data(now)))
        os.replace(f"{name}.tmp", name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)

    # -- the server process ----------------------------------------------

    def _spawn(self) -> None:
        start = self.engine.start(self.ctx)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the server
            status = 1
            try:
                # a runner killed takes its server along, and the server its children
                # (granian's worker, inetd's commands): nothing outlives it holding a port
                die_with_parent(signal.SIGKILL)
                os.close(self.dir_fd)  # a way out of the host's view: runners only
                name_process(f"{self.title} server")  # a daemon it execs names itself
                os.register_at_fork(after_in_child=lambda: die_with_parent(signal.SIGKILL))
                os.setpgid(0, 0)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
                for sig in SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                # the log file, a line at a time, whatever sys.stdout was in the process
                # that made the playground (a terminal, pytest's capture, a notebook)
                sys.stdout = open(1, "w", buffering=1, closefd=False)
                sys.stderr = open(2, "w", buffering=1, closefd=False)
                start()
                status = 0
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        self.server = pid
        self.log(f"started (pid {pid})")

    def _stop(self) -> None:
        """Stop the server and everything in its process group."""
        pid = self.server
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, self.engine.stop_signal)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.02)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # what it left behind
        self.server = None
        self.log("stopped")

    def _healthy(self) -> str | None:
        """None once the health check passes, or why it never did."""
        deadline = time.monotonic() + self.health_timeout
        last = "no answer"
        attempt = 0
        while self.server is not None:
            done, status = os.waitpid(self.server, os.WNOHANG)
            if done:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.server, signal.SIGKILL)
                self.server = None
                return f"the server {_describe(status)} before it answered"
            try:  # short waits first: a UDP query sent before the bind is simply lost
                self.engine.health(self.ctx, timeout=min(0.1 * 2**attempt, 2.0))
                return None
            except (OSError, HealthError) as exc:
                last = str(exc) or exc.__class__.__name__
            attempt += 1
            if time.monotonic() > deadline:
                return f"no healthy answer in {self.health_timeout:g} s ({last})"
            time.sleep(HEALTH_INTERVAL_S)
        return "the server is gone"

    def _start(self) -> str | None:
        """Start and check the server; None if it is healthy, else why not."""
        self.state = ServiceState.STARTING
        self.save()
        try:
            self._spawn()
        except Exception as exc:
            return f"cannot start: {exc}"
        failure = self._healthy()
        if failure is None:
            self.state, self.reason = ServiceState.RUNNING, ""
            self.log("healthy")
        else:
            self.log(failure)
            self._stop()
        self.save()
        return failure

    def _crashed(self, reason: str) -> None:
        """Schedule a restart with back-off, or give up past the limit."""
        now = time.monotonic()
        self.recent = [t for t in self.recent if now - t < RESTART_WINDOW_S]
        if len(self.recent) >= self.limit:
            self.state = ServiceState.FAILED
            self.reason = (
                f"{reason}; gave up after {self.limit} restarts in {RESTART_WINDOW_S:.0f} s"
            )
            self.restart_at = None
            self.log(self.reason)
        else:
            self.recent.append(now)
            self.restarts += 1
            delay = min(BACKOFF_FIRST_S * 2 ** (len(self.recent) - 1), BACKOFF_MAX_S)
            self.state, self.reason = ServiceState.RESTARTING, reason
            self.restart_at = now + delay
            self.log(f"{reason}; restarting in {delay:g} s")
        self.save()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.server:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                self.server = None
                if self.state in (ServiceState.RUNNING, ServiceState.STARTING):
                    self._crashed(f"the server {_describe(status)}")

    # -- the supervising loop --------------------------------------------

    def run(self, report: int) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        failure = self._start()
        os.write(report, b"ready\n" if failure is None else f"failed {failure}\n".encode())
        os.close(report)
        if failure is not None:
            self.state, self.reason = ServiceState.FAILED, failure
            self.save()
        while True:
            if self.restart_at is None:
                info = signal.sigwaitinfo(SIGNALS)
                sig: int | None = info.si_signo
            else:
                wait = max(0.0, self.restart_at - time.monotonic())
                got = signal.sigtimedwait(SIGNALS, wait)
                sig = None if got is None else got.si_signo
            if sig is None:
                self.restart_at = None
                failure = self._start()
                if failure is not None:
                    self._crashed(failure)
            elif sig == signal.SIGCHLD:
                self._reap()
            elif sig == signal.SIGTERM:
                self._stop()
                self.state = ServiceState.STOPPED
                self.save()
                return
            elif sig in (signal.SIGHUP, signal.SIGUSR2):
                if sig == signal.SIGHUP or self.server is None:
                    self._stop()
                    self.recent.clear()
                    self.restart_at = None
                    failure = self._start()
                    if failure is not None:
                        self._crashed(failure)
                self.handled += 1
                self.save()
            elif sig == signal.SIGUSR1:
                self._stop()
                self.state, self.reason, self.restart_at = ServiceState.STOPPED, "", None
                self.handled += 1
                self.save()


def spawn(ctx: Context, engine: Engine, paths: Paths) -> tuple[int, int]:
    """Fork the runner of one service into its host; return its pid and the
    read end of the pipe it reports on (one line: ``ready`` or ``failed ...``)."""
    files = Files.of(paths, ctx.host, ctx.service.name)
    files.state.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_fd = os.open(files.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    dir_fd = os.open(files.state.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the runner
        status = 1
        try:
            os.close(report_r)
            null = os.open(os.devnull, os.O_RDWR)
            _release_inherited(null, keep={null, report_w, log_fd, dir_fd})
            os.setsid()
            enter_host(paths, ctx.host)
            # as a daemon does: not the directory ``up`` was run in, which it would
            # hold, and where granian would look for its application first; and
            # systemd's default umask, not that of whoever ran ``up`` (the sessions
            # of SSH and Telnet, and the files FTP and SFTP write, have it too)
            os.chdir("/")
            os.umask(0o022)
            title = f"netplay: {paths.name} {ctx.host}/{ctx.service.name}"
            name_process(f"{title} runner")
            os.dup2(null, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            sys.stdout = open(1, "w", buffering=1, closefd=False)
            sys.stderr = open(2, "w", buffering=1, closefd=False)
            Runner(ctx, engine, files, log_fd, dir_fd, title).run(report_w)
            status = 0
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.write(report_w, f"failed the runner broke: {exc}\n".encode())
            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(report_w)
    os.close(log_fd)
    os.close(dir_fd)
    return pid, report_r


def _release_inherited(null: int, keep: set[int]) -> None:
    """Let go of what the runner inherited from the process that made the
    playground (its sockets, pipes and files: a test's listening socket, the
    pipe a rootless playground's builder answers on), so that the runner and
    its server hold none of them.  Each fd is pointed at /dev/null rather than
    closed: a Python object of the parent's that still owns the number may
    close it when it is collected, and must not close something else then."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):  # the listing's own, now closed
                os.dup2(null, fd, inheritable=False)

"""A host of a running playground, and running programs inside it.

A program runs in a host by entering the host's network, UTS and mount
namespaces (as ``nsenter`` does) in the child between fork and exec, so
every socket it opens lives in the host's network, ``hostname`` prints the
host's name, and /etc/hosts and /etc/resolv.conf are the playground's.  Its
environment names the host (NETPLAY_HOST), the playground's CA
(NETPLAY_CA) and the host's certificate and key (NETPLAY_CERT,
NETPLAY_KEY), so that a TLS server needs no options to find them.

:meth:`Host.spawn` starts a background program and returns once it is
ready (it printed its first line, or its port listens): no sleeping.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any, NoReturn

from netplay.errors import CommandFailedError
from netplay.fabric import Paths, Realm, enter_host
from netplay.hosts._spawn import Ready, Spawned, output_files, wait_ready
from netplay.pki import Store

NOT_FOUND, CANNOT_RUN = 127, 126  # the statuses of a shell that cannot run a command


class Host:
    """A host of a playground; get one with ``playground.host(name)``."""

    def __init__(self, name: str, *, paths: Paths, realm: Realm, pki: Store) -> None:
        self.name = name
        self._paths = paths
        self._realm = realm
        self._pki = pki

    def __repr__(self) -> str:
        return f"<Host {self.name} of {self._paths.name}>"

    def _enter(self) -> None:
        """In a child between fork and exec: become part of the host, or say on
        its stderr why it cannot and end as a command that cannot run (126),
        since subprocess would only say that "an exception occurred in
        preexec_fn"."""
        try:
            self._realm.join()
            enter_host(self._paths, self.name, self._first_entry)
        except FileNotFoundError:  # its pins: the playground is down
            why = f"the playground {self._paths.name} is not running (start it with netplay up)"
        except BaseException as exc:
            why = f"cannot enter the host {self.name}: {exc}"
        else:
            return
        os.write(2, f"netplay: {why}\n".encode(errors="replace"))
        os._exit(CANNOT_RUN)

    def _first_entry(self, note: str) -> None:
        """What a host without services gets at its first entry, with its view
        (in the child, under the view's lock): its certificate."""
        self._pki.issue_later(self.name, note)

    def _may_issue(self) -> None:
        """Before forking a child that may enter the host first, load what
        issuing its certificate takes, here: else each such child would
        (0.1 s), and a parent entering many hosts keeps it loaded."""
        if self._paths.view(self.name).exists():
            Store.load_issuer()

    def environment(self) -> dict[str, str]:
        """What programs in the host find in their environment: its name, the
        playground's CA, and the host's own certificate and key (for servers)."""
        cert, key = self._pki.server(self.name)
        return {
            "NETPLAY_HOST": self.name,
            "NETPLAY_CA": str(self._pki.ca),
            "NETPLAY_CERT": str(cert),
            "NETPLAY_KEY": str(key),
        }

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the host; ``kwargs`` go to :class:`subprocess.Popen`."""
        env = kwargs.pop("env", None)
        self._may_issue()
        try:
            return subprocess.Popen(
                list(argv),
                env={**(os.environ if env is None else env), **self.environment()},
                preexec_fn=self._enter,
                **kwargs,
            )
        except (OSError, ValueError) as exc:
            raise self._cannot_run(argv, exc) from exc

    def _cannot_run(self, argv: Sequence[str], exc: OSError | ValueError) -> CommandFailedError:
        """What to say when ``argv`` cannot even start: no such program (127, as
        shells say; an empty name too), or one that is not a program (126)."""
        if isinstance(exc, FileNotFoundError | ValueError) or not argv[0]:
            return CommandFailedError(
                self.name, argv, NOT_FOUND, stderr=f"{argv[0]}: command not found"
            )
        why = exc.strerror or str(exc)
        return CommandFailedError(self.name, argv, CANNOT_RUN, stderr=f"{argv[0]}: {why}")

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to completion; return its status, stdout and stderr (text).

        With ``check=True`` a non-zero status raises :class:`CommandFailedError`;
        ``env`` is as for :meth:`spawn`.
        """
        with self.popen(
            argv,
            env=env,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            try:
                stdout, stderr = proc.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
                raise CommandFailedError(
                    self.name, argv, -9, stdout, f"timed out after {timeout} s"
                ) from None
        result = subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)
        if check and result.returncode != 0:
            raise CommandFailedError(self.name, argv, result.returncode, stdout, stderr)
        return result

    def spawn(
        self,
        argv: Sequence[str],
        *,
        ready: Ready = "line",
        timeout: float = 10.0,
        env: dict[str, str] | None = None,
    ) -> Spawned:
        """Start ``argv`` in the background and return once it is ready.

        ``ready`` is ``"line"`` (it printed its first line, kept as
        ``first_line``), a TCP port number or ``"tcp/PORT"`` / ``"udp/PORT"``
        (something in the host listens there), or None (do not wait).  It
        runs in a session of its own, so :meth:`Spawned.stop` ends whatever it
        started too; its output goes to files, read with :meth:`Spawned.readline`
        and returned by :meth:`Spawned.stop`.  ``env`` is its whole environment
        (default: this process's), as for :mod:`subprocess`; the host's
        variables are added to it.  If it
        exits or is not ready within ``timeout`` seconds, it is stopped and
        CommandFailedError says what it printed."""
        out, err = output_files()
        try:
            proc = self.popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            out.close()
            err.close()
            raise
        spawned = Spawned(self.name, list(argv), proc, out, err)
        wait_ready(spawned, ready, timeout)
        return spawned

    def execvp(self, argv: Sequence[str]) -> NoReturn:
        """Replace this process with ``argv`` inside the host (stdin, tty and status pass)."""
        os.environ.update(self.environment())
        self._enter()
        # Python ignores these; a program expects them as a shell leaves them
        # (`yes | head -1` ends on SIGPIPE), as subprocess restores them too
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        try:
            os.execvp(argv[0], list(argv))
        except (OSError, ValueError) as exc:
            raise self._cannot_run(argv, exc) from None

"""A host of a running playground, and running programs inside it.

A program runs in a host by entering the host's network, UTS and mount
namespaces (as ``nsenter`` does) in the child between fork and exec, so
every socket it opens lives in the host's network, ``hostname`` prints the
host's name, and /etc/hosts and /etc/resolv.conf are the playground's.  Its
environment names the host (NETPLAY_HOST), the playground's CA
(NETPLAY_CA) and the host's certificate and key (NETPLAY_CERT,
NETPLAY_KEY), so that a TLS server needs no options to find them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from netplay.errors import CommandFailedError
from netplay.fabric._namespaces import enter, open_host

if TYPE_CHECKING:
    from netplay._playground import Playground


class Host:
    """A host of a playground; get one with ``playground.host(name)``."""

    def __init__(self, playground: Playground, name: str) -> None:
        self.playground = playground
        self.name = name

    def __repr__(self) -> str:
        return f"<Host {self.name} of {self.playground.name}>"

    def _fds(self) -> list[tuple[int, int]]:
        return open_host(self.playground.paths, self.name)

    def environment(self) -> dict[str, str]:
        """What programs in the host find in their environment: its name, the
        playground's CA, and the host's own certificate and key (for servers)."""
        store = self.playground.pki
        cert, key = store.server(self.name)
        return {
            "NETPLAY_HOST": self.name,
            "NETPLAY_CA": str(store.ca),
            "NETPLAY_CERT": str(cert),
            "NETPLAY_KEY": str(key),
        }

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the host; ``kwargs`` go to :class:`subprocess.Popen`."""
        fds = self._fds()
        env = kwargs.pop("env", None)
        try:
            return subprocess.Popen(
                list(argv),
                env={**(os.environ if env is None else env), **self.environment()},
                preexec_fn=lambda: enter(fds),
                pass_fds=[*kwargs.pop("pass_fds", ()), *(fd for fd, _ in fds)],
                **kwargs,
            )
        except FileNotFoundError as exc:
            raise CommandFailedError(
                self.name, argv, 127, stderr=f"{argv[0]}: command not found"
            ) from exc
        finally:
            for fd, _ in fds:
                os.close(fd)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to completion; return its status, stdout and stderr (text).

        With ``check=True`` a non-zero status raises :class:`CommandFailedError`.
        """
        with self.popen(
            argv,
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

    def execvp(self, argv: Sequence[str]) -> NoReturn:
        """Replace this process with ``argv`` inside the host (stdin, tty and status pass)."""
        os.environ.update(self.environment())
        enter(self._fds())
        try:
            os.execvp(argv[0], list(argv))
        except FileNotFoundError:
            raise CommandFailedError(
                self.name, argv, 127, stderr=f"{argv[0]}: command not found"
            ) from None
        except PermissionError:
            raise CommandFailedError(
                self.name, argv, 126, stderr=f"{argv[0]}: permission denied"
            ) from None

"""The one exception tree of netplay.

Every error netplay raises derives from :class:`NetplayError`.  Each class
carries an ``exit_status`` (distinct per class, used by the CLI; local and
remote protocol errors share their base's) and a ``hint``: one sentence
saying what to do about it.  Lower-layer errors are translated once, at the
boundary, with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class NetplayError(Exception):
    """Base of every netplay error."""

    exit_status = 1
    hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross from a child process that works inside a rootless
        # playground's user namespace; subclasses take other arguments than
        # their message, so rebuild them from their attributes.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[NetplayError], args: tuple[Any, ...], attributes: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(attributes)
    return error


class UsageError(NetplayError):
    """The caller asked for something that does not make sense (local misuse)."""

    exit_status = 2


class NoPrivilegesError(NetplayError):
    """Neither root nor unprivileged user namespaces are available."""

    exit_status = 3
    hint = (
        "run it as root (sudo), or enable unprivileged user namespaces "
        "(sysctl kernel.unprivileged_userns_clone=1)"
    )


class MissingToolError(NetplayError):
    """A program netplay needs (e.g. ``nft``) is not installed."""

    exit_status = 4

    def __init__(self, tool: str, package: str) -> None:
        super().__init__(
            f"the program {tool!r} is not installed",
            hint=f"install it with: apt-get install {package}",
        )
        self.tool = tool
        self.package = package


class MissingKernelFeatureError(NetplayError):
    """The running kernel lacks a feature (e.g. the netem qdisc)."""

    exit_status = 4


class AlreadyRunningError(NetplayError):
    """A playground of that name is running already."""

    exit_status = 5


class TopologyError(NetplayError):
    """A topology is invalid; names the file, line and field where known."""

    exit_status = 6

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        where = ""
        if source:
            where = source + (f":{line}" if line else "") + ": "
        what = f"{field}: " if field else ""
        super().__init__(
            where + what + message,
            hint="see docs/topology.md for the format",
        )
        self.source = source
        self.line = line
        self.field = field
        self.reason = message


class UnknownHostError(NetplayError):
    """A host (or link, or service) name that the playground does not have."""

    exit_status = 7


class NotRunningError(NetplayError):
    """No playground of that name (or none at all) is running."""

    exit_status = 8
    hint = "start one with: netplay up --detach"


class CommandFailedError(NetplayError):
    """A command run inside a host failed; keeps its argv, status and output."""

    exit_status = 9

    def __init__(
        self,
        host: str,
        argv: Sequence[str],
        status: int,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        detail = stderr.strip().splitlines()[-1:] if stderr.strip() else []
        if status == 127:
            message = f"there is no program {argv[0]!r} on {host}"
        else:
            message = f"{argv[0]!r} failed on {host} with status {status}" + (
                f": {detail[0]}" if detail else ""
            )
        super().__init__(message, hint="check the command and its arguments")
        self.host = host
        self.argv = list(argv)
        self.status = status
        self.stdout = stdout
        self.stderr = stderr


class FabricError(NetplayError):
    """The kernel refused to build or change part of the playground."""

    exit_status = 10
    hint = "--debug shows the details"


class PkiError(NetplayError):
    """The playground's CA or certificates cannot be made or kept."""

    exit_status = 11


class ServiceError(NetplayError):
    """A service did not start, is unknown, or did not do what it was told."""

    exit_status = 12


class StateError(NetplayError):
    """A playground's state file is damaged or was written by another version of netplay."""

    exit_status = 14


class ProtocolError(NetplayError):
    """A protocol was broken: by us (:class:`LocalProtocolError`) or by the peer.

    ``reply`` is what a server should answer when it has something to say
    about it (an SMTP or POP3 reply such as ``"500 5.5.2 line too long"``
    or ``"-ERR ..."``; for the zen protocol, the text to send), or None.
    Only this tree may escape a sans-IO core (:mod:`netplay.protocols`).
    """

    exit_status = 13

    def __init__(self, message: str, *, hint: str | None = None, reply: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reply = reply


class LocalProtocolError(ProtocolError):
    """We tried to do what the protocol does not allow now (local misuse, like h11's)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol: what it sent, or when it ended, is not allowed."""

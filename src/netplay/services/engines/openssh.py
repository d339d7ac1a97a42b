"""The ``ssh`` kind served by OpenSSH's sshd: ``engine = "openssh"``.

OpenSSH (Debian's openssh-server) is the second engine of the kind, the
reference the builtin one is tested against: the same SSH tests run
against both.  Each service runs an sshd of its own, in the foreground
(``-D``, logging to stderr, the service's log), with a configuration that
netplay writes in the service's data directory (``openssh/sshd_config``)
at every start; the machine's /etc/ssh is never read for it (``-f``) and
never written.  It serves with the host keys the builtin engine keeps
(``ssh/``, made if missing), so a known_hosts line stays right whichever
engine runs.

What the builtin engine does, sshd does its own way:

- logging in: the topology's users only (``AllowUsers``), by password,
  checked against the host's own /etc/shadow (the yescrypt hash netplay
  sets there from the topology; sshd's own check, without PAM), or by a
  key in ``~/.ssh/authorized_keys`` in the host (where netplay writes the
  topology's ``keys``; StrictModes); never root;
- sessions: as the user, with sshd's privilege separation (the user
  ``sshd``, in /run/sshd, the host's own /run); SFTP is ``internal-sftp``;
- the options map to sshd's: ``login_timeout`` to LoginGraceTime,
  ``max_auth_tries`` to MaxAuthTries, ``max_sessions`` to MaxSessions,
  ``keepalive_interval`` to ClientAliveInterval (three unanswered end the
  connection), ``gateway_ports`` to GatewayPorts; sshd has no limit on
  connections once logged in: ``max_connections`` and ``max_per_client``
  limit the connections not yet logged in (MaxStartups and
  PerSourceMaxStartups).

sshd switches users for every login, so the engine needs root: a rootless
playground's user namespace maps one user, and ``up`` says so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from netplay.services._base import Context, Start
from netplay.services._registry import register
from netplay.services.engines._daemons import needs_root
from netplay.services.engines.ssh import (
    KEYS_DIR,
    SshEngine,
    host_keys,
    import_asyncssh,
    warm_key_exchange,
)

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = "/run/sshd"  # sshd's chroot for the unprivileged part of a login

CONFIG = """\
# written by netplay for {ident} at every start; edits are lost
{ports}
{host_keys}
PidFile none
AllowUsers {users}
PermitRootLogin no
PasswordAuthentication {passwords}
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding yes
GatewayPorts {gateway_ports}
PermitUserEnvironment no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
LoginGraceTime {login_timeout}
MaxAuthTries {max_auth_tries}
MaxSessions {max_sessions}
MaxStartups {max_connections}
PerSourceMaxStartups {max_per_client}
ClientAliveInterval {keepalive_interval}
ClientAliveCountMax 3
LogLevel INFO
"""


class OpenSshEngine(SshEngine):
    """sshd in the foreground, configured from the declaration (see the module's docstring)."""

    def unavailable(self) -> str | None:
        if not os.access(SSHD, os.X_OK):
            return (
                "the openssh engine needs Debian's OpenSSH server: install it "
                '(apt-get install openssh-server) or use engine = "builtin"'
            )
        return needs_root("openssh", "sshd", instead="builtin")

    def preload(self, contexts: Sequence[Context]) -> None:
        import_asyncssh()  # the host keys
        warm_key_exchange()  # the health check's

    def config(self, ctx: Context, keys: Sequence[Path]) -> str:
        settings = self.settings(ctx)
        users = [user.name for user in ctx.topology.users]
        return CONFIG.format(
            ident=ctx.id,
            ports="\n".join(f"Port {port}" for port in settings["ports"]),
            host_keys="\n".join(f"HostKey {key}" for key in keys),
            # no user may log in where the topology has none: a name no account has
            users=" ".join(users) or "netplay-nobody",
            passwords="yes" if any(user.password for user in ctx.topology.users) else "no",
            gateway_ports="yes" if settings["gateway_ports"] else "no",
            # whole seconds for sshd, never shorter than asked (0 would mean no limit)
            login_timeout=math.ceil(settings["login_timeout"]),
            max_auth_tries=settings["max_auth_tries"],
            max_sessions=settings["max_sessions"],
            max_connections=settings["max_connections"],
            max_per_client=settings["max_per_client"],
            keepalive_interval=math.ceil(settings["keepalive_interval"]),
        )

    def start(self, ctx: Context) -> Start:
        def run() -> None:
            keys = host_keys(ctx.data / KEYS_DIR)
            directory = ctx.data / "openssh"
            directory.mkdir(mode=0o700, exist_ok=True)
            config = directory / "sshd_config"
            config.write_text(self.config(ctx, keys))
            os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)  # the host's own /run
            # sshd re-executes itself for each connection: by its absolute path
            os.execv(SSHD, [SSHD, "-D", "-e", "-f", str(config)])

        return run


register("ssh", "openssh", OpenSshEngine())

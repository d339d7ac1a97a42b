"""The ``ftp`` kind served by vsftpd: ``engine = "vsftpd"``.

vsftpd (Debian's vsftpd, 3.0.3) is the second engine of the kind, the
reference the builtin one (pyftpdlib) is tested against: the same FTP
tests run against both, and tests/test_ftp.py's ``DIFFERENCES`` lists
where their answers differ.  It has the builtin engine's ports (21, AUTH
TLS; 990, implicit TLS), health check and sample area.

vsftpd does implicit TLS per instance (``implicit_ssl``), so each port is
a vsftpd of its own, in the foreground (``listen_ipv6=YES``: one socket for
IPv6 and IPv4; ``background=NO``), each with a configuration netplay
writes in the host's data directory at every start
(``vsftpd/SERVICE/PORT.conf``; the machine's /etc/vsftpd.conf is never
read or written).  With one port the server execs vsftpd; with more, the
server forks one vsftpd per port and waits: when one ends, it stops the
others and ends with it, and the runner restarts the service (each vsftpd
dies with the server, by PR_SET_PDEATHSIG, and vsftpd's own session
processes with their vsftpd).
vsftpd logs its transfers and logins to ``vsftpd/SERVICE/vsftpd.log`` beside
the configurations, not to the service's log: in a session process its
stderr is the client's socket.  What it says when it cannot start (``500
OOPS: ...``) is in the service's log.

Users: the topology's (``userlist_file``, with ``userlist_deny=NO``: any
other name is refused at USER), by password, checked by PAM's service
``vsftpd`` (Debian's /etc/pam.d/vsftpd: the host's /etc/shadow, where
netplay sets the yescrypt hash of each password; /etc/ftpusers;
pam_shells), each jailed in the home by vsftpd's chroot
(``chroot_local_user``, ``allow_writeable_chroot``), running as the user.
``anonymous`` (or ``ftp``) reads the builtin engine's sample area
(``anon_root``, made the same way), as the user ``ftp`` (or ``nobody``),
and writes nothing.  TLS: ``ssl_enable`` with the host's certificate, TLS
1.1 at least (vsftpd 3.0.3 can turn off SSLv2, SSLv3 and TLS 1.0 only),
anonymous sessions may use it, and data connections need not reuse the
control connection's TLS session (``require_ssl_reuse=NO``: ftplib never
does).

The options, and vsftpd's settings they become:

- ``tls``: the ports that are a vsftpd with ``implicit_ssl=YES``;
- ``require_tls``: ``force_local_logins_ssl``, ``force_local_data_ssl``,
  ``force_anon_logins_ssl`` and ``force_anon_data_ssl``;
- ``anonymous``: ``anonymous_enable``;
- ``passive_ports``: ``pasv_min_port`` and ``pasv_max_port``;
- ``idle_timeout``: ``idle_session_timeout``; ``data_timeout``:
  ``data_connection_timeout``; ``connect_timeout``: ``accept_timeout``
  (passive) and ``connect_timeout`` (active);
- ``max_connections``: ``max_clients``; ``max_per_client``:
  ``max_per_ip``; both count control connections, per port (each port is
  its own vsftpd), where the builtin engine counts data connections too,
  and a client's connections over all its ports;
- ``max_login_attempts``: ``max_login_fails`` (then vsftpd closes the
  connection without a word); a wrong password is answered after a second
  (``delay_failed_login``), as by the builtin engine.

``login_timeout`` has no equivalent (vsftpd's idle timeout is the only
limit before a login) and is refused.  Neither are the builtin engine's
limits on refused commands and on the length of a line vsftpd's: it
truncates a long line and answers every command.  Active mode: a PORT or
EPRT naming another address than the client's, or a privileged port, is
refused (``port_promiscuous=NO``), as RFC 2577 asks.

vsftpd switches to each user who logs in, so the engine needs root: a
rootless playground's user namespace maps one user, and ``up`` says so.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from netplay.services._base import Context, Start
from netplay.services._registry import register
from netplay.services.engines._daemons import needs_root
from netplay.services.engines.ftp import FtpEngine

VSFTPD = "/usr/sbin/vsftpd"
PAM_SERVICE = "vsftpd"  # Debian's /etc/pam.d/vsftpd
#: what the builtin engine has that vsftpd has not (refused, naming the option)
NO_EQUIVALENT = ("login_timeout",)

CONFIG = """\
# written by netplay for {ident} (port {port}) at every start; edits are lost
listen=NO
listen_ipv6=YES
listen_port={port}
background=NO
implicit_ssl={implicit}
secure_chroot_dir={empty}
nopriv_user=nobody
pam_service_name={pam}
session_support=NO
local_enable=YES
write_enable=YES
local_umask=022
chroot_local_user=YES
allow_writeable_chroot=YES
userlist_enable=YES
userlist_deny=NO
userlist_file={userlist}
anonymous_enable={anonymous}
anon_root={area}
ftp_username={ftp_user}
no_anon_password=YES
anon_upload_enable=NO
anon_mkdir_write_enable=NO
anon_other_write_enable=NO
anon_world_readable_only=YES
ssl_enable=YES
rsa_cert_file={cert}
rsa_private_key_file={key}
ssl_sslv2=NO
ssl_sslv3=NO
ssl_tlsv1=NO
ssl_ciphers=HIGH
require_ssl_reuse=NO
allow_anon_ssl=YES
force_local_logins_ssl={required}
force_local_data_ssl={required}
force_anon_logins_ssl={required}
force_anon_data_ssl={required}
pasv_enable=YES
pasv_min_port={passive_first}
pasv_max_port={passive_last}
pasv_promiscuous=NO
port_enable=YES
port_promiscuous=NO
connect_from_port_20=NO
max_clients={max_connections}
max_per_ip={max_per_client}
idle_session_timeout={idle_timeout}
data_connection_timeout={data_timeout}
accept_timeout={connect_timeout}
connect_timeout={connect_timeout}
max_login_fails={max_login_attempts}
delay_failed_login=1
ftpd_banner=netplay FTP server (vsftpd) on {fqdn} ready.
dirmessage_enable=NO
hide_ids=NO
ls_recurse_enable=NO
seccomp_sandbox=NO
xferlog_enable=YES
xferlog_std_format=NO
vsftpd_log_file={log}
syslog_enable=NO
"""


def _anonymous_user() -> str:
    """Who anonymous sessions run as: ``ftp`` (Debian's vsftpd makes it), else ``nobody``."""
    for name in ("ftp", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    return "nobody"


def _yes(value: bool) -> str:
    return "YES" if value else "NO"


class VsftpdEngine(FtpEngine):
    """vsftpd in the foreground, one per port (see the module's docstring)."""

    features: ClassVar[tuple[str, ...]] = ("REST STREAM", "SIZE", "MDTM", "PROT", "EPSV")
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        key: value for key, value in FtpEngine.options.items() if key not in NO_EQUIVALENT
    }

    def unavailable(self) -> str | None:
        if not os.access(VSFTPD, os.X_OK):
            return (
                "the vsftpd engine needs Debian's vsftpd: install it "
                '(apt-get install vsftpd) or use engine = "builtin"'
            )
        return needs_root("vsftpd", "vsftpd", instead="builtin")

    def config(self, ctx: Context, port: int, directory: Path, area: Path) -> str:
        settings = self.settings(ctx)
        cert, key = ctx.pki.server(ctx.host)
        first, last = settings["passive_ports"]
        return CONFIG.format(
            ident=ctx.id,
            port=port,
            implicit=_yes(port in settings["tls"]),
            empty=directory / "empty",
            pam=PAM_SERVICE,
            userlist=directory / "user_list",
            anonymous=_yes(settings["anonymous"]),
            area=area,
            ftp_user=_anonymous_user(),
            cert=cert,
            key=key,
            required=_yes(settings["require_tls"]),
            passive_first=first,
            passive_last=last,
            max_connections=settings["max_connections"],
            max_per_client=settings["max_per_client"],
            idle_timeout=max(1, round(settings["idle_timeout"])),
            data_timeout=max(1, round(settings["data_timeout"])),
            connect_timeout=max(1, round(settings["connect_timeout"])),
            max_login_attempts=settings["max_login_attempts"],
            fqdn=ctx.fqdn,
            log=directory / "vsftpd.log",
        )

    def start(self, ctx: Context) -> Start:
        settings: dict[str, Any] = self.settings(ctx)

        def run() -> None:
            from netplay.services.engines._ftp_server import SAMPLES_DIR, make_samples

            area = ctx.data / SAMPLES_DIR
            make_samples(area)  # also with anonymous off: anon_root must exist
            directory = ctx.data / "vsftpd" / ctx.service.name
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            empty = directory / "empty"  # vsftpd's chroot while nobody is logged in
            empty.mkdir(mode=0o755, exist_ok=True)
            os.chmod(empty, 0o755)
            names = [user.name for user in ctx.topology.users]
            if settings["anonymous"]:
                names += ["anonymous", "ftp"]
            (directory / "user_list").write_text("".join(f"{name}\n" for name in names))
            configs = []
            for port in settings["ports"]:
                config = directory / f"{port}.conf"
                config.write_text(self.config(ctx, port, directory, area))
                configs.append(config)
            if len(configs) == 1:
                os.execv(VSFTPD, [VSFTPD, str(configs[0])])
            _supervise(configs)

        return run


def _supervise(configs: list[Path]) -> None:
    """One vsftpd per configuration, until one ends: then the others are stopped,
    and this process ends saying which ended and how."""
    children: dict[int, Path] = {}
    for config in configs:
        pid = os.fork()  # the runner's at-fork hook: the child dies with this process
        if pid == 0:  # pragma: no cover - the daemon
            try:
                os.execv(VSFTPD, [VSFTPD, str(config)])
            finally:
                os._exit(127)
        children[pid] = config
    pid, status = os.wait()
    for other in children:
        if other != pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(other, signal.SIGTERM)
    for other in children:
        if other != pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(other, 0)
    if os.WIFSIGNALED(status):
        how = f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    else:
        how = f"exited with status {os.waitstatus_to_exitcode(status)}"
    print(f"vsftpd of {children[pid].name} {how}; stopping the others", file=sys.stderr)
    raise SystemExit(1)


register("ftp", "vsftpd", VsftpdEngine())

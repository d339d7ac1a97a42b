"""The ``smtp`` kind served by Postfix: ``engine = "postfix"``.

Postfix (Debian's postfix, 3.7) is the second engine of ``smtp``, delivering
into the same Maildir store as the ``aiosmtpd`` engine, which POP3 and IMAP
read: the host's mail domains (:func:`netplay.mail.mail_domains`) are
Postfix's virtual mailbox domains, each user of the topology a virtual
mailbox (``USER/``, a Maildir, delivered by Postfix's ``virtual`` as the
user ``mail``, :mod:`._daemons`).  Mail for other domains goes out as
Postfix sends it: the MX from the playground's DNS, STARTTLS verified
against the playground's CA, retries and bounces.

It runs as one Postfix instance per service, configured in the host's data
directory (``postfix/SERVICE/``: ``conf/`` with main.cf and master.cf,
written at every start, its queue and its data), never reading or writing
the machine's ``/etc/postfix`` but for the list of Postfix's own files
there.  Its master is the service's server: ``postfix start-fg`` would run
it in a session of its own, out of the reach of the runner's stop.  The
ports are the ``aiosmtpd`` engine's (25; 587 submission, STARTTLS then AUTH
required; 465 implicit TLS) and so are the options that Postfix has a
parameter for.  AUTH is Dovecot's SASL (Postfix's way to check passwords
without Cyrus): a Dovecot of the service's own, that only checks
passwords, answers Postfix on a socket in the queue directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from netplay.services._base import Context, Start
from netplay.services._registry import register
from netplay.services.engines._daemons import give, mail_user, needs_root, write_passwd
from netplay.services.engines.smtp import (
    MAX_CONNECTIONS,
    MAX_MESSAGE,
    MAX_PER_CLIENT,
    MAX_RECIPIENTS,
    QUEUE_LIFETIME_S,
    RETRY_S,
    TIMEOUT_S,
    SmtpEngine,
)

POSTFIX = "/usr/sbin/postfix"
MASTER = "/usr/lib/postfix/sbin/master"
DOVECOT = "/usr/sbin/dovecot"
AUTH_WAIT_S = 10.0
SETTLED_S = 5.0
IMPLICIT_SPARE = 4  # smtpds on an implicit TLS port, per max_connections
MAX_BACKOFF_S = 300  # the aiosmtpd engine's: retries double up to five minutes

MAIN_CF = """\
# written by netplay for {ident} at every start; edits are lost
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = /dev/stdout
myhostname = {fqdn}
mydomain = {domain}
myorigin = $myhostname
mydestination =
mynetworks = 127.0.0.0/8 [::1]/128
inet_interfaces = all
inet_protocols = all
alias_maps =
alias_database =
biff = no
smtpd_banner = $myhostname ESMTP
# the host's mail domains, each user a Maildir in netplay's store
virtual_mailbox_domains = {domains}
virtual_mailbox_base = {store}
virtual_mailbox_maps = texthash:{dir}/conf/mailboxes
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
virtual_mailbox_limit = 0
message_size_limit = {max_message}
smtpd_recipient_limit = {max_recipients}
smtpd_timeout = {timeout}s
default_process_limit = {max_connections}
smtpd_client_connection_count_limit = {max_per_client}
minimal_backoff_time = {retry}s
maximal_backoff_time = {max_backoff}s
queue_run_delay = {retry}s
maximal_queue_lifetime = {queue_lifetime}s
bounce_queue_lifetime = {queue_lifetime}s
# an unknown domain is no temporary failure: the playground's DNS is the root
unknown_address_reject_code = 550
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = reject_unknown_recipient_domain
smtpd_forbid_bare_newline = yes
smtpd_tls_chain_files = {key}, {cert}
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_protocols = >=TLSv1.2
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = no
smtp_tls_security_level = verify
smtp_tls_CAfile = {ca}
"""
MASTER_CF = """\
# written by netplay for {ident} at every start; edits are lost
# service type  private unpriv  chroot  wakeup  maxproc command
{listeners}
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""
SUBMISSION = (
    "  -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes"
    " -o smtpd_client_restrictions=permit_sasl_authenticated,reject"
)
IMPLICIT = (
    "  -o smtpd_tls_wrappermode=yes -o smtpd_starttls_timeout=10s -o smtpd_sasl_auth_enable=yes"
    " -o smtpd_client_restrictions=permit_sasl_authenticated,reject"
)
#: Dovecot as Postfix's SASL: only its auth service, on a socket Postfix's smtpd opens
DOVECOT_AUTH = """\
# written by netplay for {ident} at every start; edits are lost
base_dir = {dir}/dovecot
state_dir = {dir}/dovecot-state
log_path = /dev/stderr
protocols = none
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PBKDF2 username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home=/nonexistent
}}
service auth {{
  unix_listener {dir}/queue/private/auth {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""


def _settled(path: Path, text: str) -> None:
    """Write ``path``, dated a few seconds back: Postfix, finding a file changed in
    the last second (one still being written, it fears), waits and reads it again."""
    path.write_text(text)
    then = time.time() - SETTLED_S
    os.utime(path, (then, then))


class PostfixEngine(SmtpEngine):
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        key: SmtpEngine.options[key]
        for key in (
            "submission", "tls", "max_message", "max_recipients", "max_connections",
            "max_per_client", "timeout", "retry", "queue_lifetime",
        )
    }  # fmt: skip

    def unavailable(self) -> str | None:
        for binary, package in ((POSTFIX, "postfix"), (DOVECOT, "dovecot-core")):
            if not os.access(binary, os.X_OK):
                return (
                    f"the postfix engine of smtp needs {package} (its SASL is Dovecot's): "
                    f'install it (apt-get install {package}) or use engine = "aiosmtpd"'
                )
        return needs_root("postfix", "Postfix", instead="aiosmtpd")

    def start(self, ctx: Context) -> Start:
        from netplay.mail import MailStore, mail_domains

        submission, tls = self._roles(ctx)
        connections = int(ctx.option("max_connections", MAX_CONNECTIONS))
        listeners = []
        for port in self.ports(ctx):
            # Postfix runs an smtpd per connection, and checks the count per client
            # after the greeting: on an implicit TLS port, after the handshake, which
            # an idle client never starts.  There, more smtpds, and a handshake has
            # Postfix's own timeout under stress
            maxproc = IMPLICIT_SPARE * connections if port in tls else "-"
            line = f"{port:<9} inet  n       -       n       -       {maxproc:<7} smtpd"
            if port in submission:
                line += "\n" + SUBMISSION
            elif port in tls:
                line += "\n" + IMPLICIT
            listeners.append(line)
        numbers = {
            "max_message": int(ctx.option("max_message", MAX_MESSAGE)),
            "max_recipients": int(ctx.option("max_recipients", MAX_RECIPIENTS)),
            "max_connections": connections,
            "max_per_client": int(ctx.option("max_per_client", MAX_PER_CLIENT)),
            "timeout": max(1, round(ctx.option("timeout", TIMEOUT_S))),
            "retry": max(1, round(ctx.option("retry", RETRY_S))),
            "max_backoff": MAX_BACKOFF_S,
            "queue_lifetime": round(ctx.option("queue_lifetime", QUEUE_LIFETIME_S)),
        }

        def run() -> None:
            mail = mail_user()
            store = MailStore.open(ctx.data, ctx.topology, ctx.host)
            give(store.dir)
            directory = ctx.data / "postfix" / ctx.service.name
            # apart: Postfix wants what is under its configuration all root's
            conf, queue, data = (directory / sub for sub in ("conf", "queue", "data"))
            for made in (conf, queue, data):
                made.mkdir(parents=True, exist_ok=True)
            shutil.chown(data, "postfix", "postfix")
            for past in ("dovecot", "dovecot-state"):  # a past run's pid file and locks
                shutil.rmtree(directory / past, ignore_errors=True)
            domains = sorted(mail_domains(ctx.topology, ctx.host))
            _settled(
                conf / "mailboxes",
                "".join(f"{u.name}@{d} {u.name}/\n" for d in domains for u in ctx.topology.users),
            )
            write_passwd(directory / "passwd", ctx.topology.users)
            cert, key = ctx.pki.server(ctx.host)
            fields = {"ident": ctx.id, "dir": directory, "uid": mail.pw_uid, "gid": mail.pw_gid}
            main = MAIN_CF.format(
                **fields, **numbers, fqdn=ctx.fqdn, domain=ctx.topology.domain or ctx.fqdn,
                domains=", ".join(domains), store=store.dir, cert=cert, key=key, ca=ctx.pki.ca,
            )  # fmt: skip
            _settled(conf / "main.cf", main)
            master = MASTER_CF.format(ident=ctx.id, listeners="\n".join(listeners))
            _settled(conf / "master.cf", master)
            (directory / "dovecot.conf").write_text(DOVECOT_AUTH.format(**fields))
            # the queue's directories, owned as Postfix wants them (made if missing)
            subprocess.run([POSTFIX, "-c", str(conf), "check"], check=True)
            # Dovecot's auth, in the server's process group: stopped with Postfix.  Its
            # socket first: an smtpd of a submission port that finds none hangs, then dies
            (queue / "private" / "auth").unlink(missing_ok=True)  # a past run's
            auth = subprocess.Popen([DOVECOT, "-F", "-c", str(directory / "dovecot.conf")])
            deadline = time.monotonic() + AUTH_WAIT_S
            while not (queue / "private" / "auth").exists():
                if auth.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"Dovecot's auth did not start (status {auth.poll()})")
                time.sleep(0.01)
            # the master in the foreground, in this process group (-d: no setsid, no
            # redirection of stdout, the log's way out), with its daemons
            os.environ["MAIL_CONFIG"] = str(conf)
            os.execv(MASTER, [MASTER, "-d"])

        return run


register("smtp", "postfix", PostfixEngine())

"""The ``pop3`` and ``imap`` kinds served by Dovecot: ``engine = "dovecot"``.

Dovecot (Debian's dovecot-pop3d and dovecot-imapd) is the second engine of
both kinds, over the same Maildir store as the builtin ones: the store is
laid out as Dovecot lays out a Maildir (``dovecot-uidlist``, Maildir++
folders, flags in file names), so either engine sees the UIDs, flags and
folders the other left, and the protocol tests run against both
(docs/mail.md, Engines, lists where the answers differ).

Each service runs a Dovecot of its own, configured in the host's data
directory (``dovecot/SERVICE/``: its ``dovecot.conf``, the users' password
hashes, its sockets and its indexes), never reading or writing the
machine's ``/etc/dovecot``.  The accounts are the topology's users
(their passwords hashed with PBKDF2); the store belongs to the user
``mail`` while Dovecot runs (:mod:`._daemons`), so the engine needs root.

A host's pop3 and imap must both be Dovecot, or both builtin: each
engine locks a folder's ``dovecot-uidlist`` its own way, and the two ways
do not see each other.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import ClassVar

from netplay.errors import TopologyError
from netplay.services._base import Context, Start
from netplay.services._registry import register
from netplay.services.engines._daemons import give, mail_user, needs_root, write_passwd
from netplay.services.engines._mailbox import MAX_CONNECTIONS, MailboxEngine
from netplay.services.engines.imap import ImapEngine
from netplay.services.engines.pop3 import Pop3Engine

DOVECOT = "/usr/sbin/dovecot"
#: the binary each kind needs beside the master, and the package that has it
PROTOCOLS = {
    "imap": ("/usr/lib/dovecot/imap", "dovecot-imapd"),
    "pop3": ("/usr/lib/dovecot/pop3", "dovecot-pop3d"),
}
MAILBOX_KINDS = ("pop3", "imap")

CONFIG = """\
# written by netplay for {ident} at every start; edits are lost
base_dir = {dir}/run
state_dir = {dir}/state
log_path = /dev/stderr
protocols = {protocol}
listen = *, ::
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
default_process_limit = {connections}
default_client_limit = {clients}
# Dovecot's indexes stay out of the store, which netplay's engines share
mail_location = maildir:~:INDEX={dir}/index/%u
mail_max_userip_connections = {connections}
# RFC 1939's exclusive maildrop, and UIDL as netplay's: the Maildir base name
pop3_lock_session = yes
pop3_uidl_format = %f
namespace inbox {{
  inbox = yes
  separator = .
}}
passdb {{
  driver = passwd-file
  args = scheme=PBKDF2 username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={store}/%u
}}
service {protocol}-login {{
  # Dovecot's own listeners of the kind off: the declaration's ports follow
  inet_listener {protocol} {{
    port = 0
  }}
  inet_listener {protocol}s {{
    port = 0
  }}
{listeners}
  # one login process takes many connections: idle clients do not cost one each
  service_count = 0
  process_min_avail = 1
  client_limit = {connections}
}}
"""
LISTENER = """\
  inet_listener port{port} {{
    port = {port}
    ssl = {ssl}
  }}"""


class DovecotMailbox(MailboxEngine):
    """What the two kinds' Dovecot engines share; put before the builtin engine of
    the kind, whose ports, TLS ports and health check they keep."""

    protocol: ClassVar[str] = ""
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "tls": list,
        "max_connections": int,
    }
    minimums: ClassVar[Mapping[str, float]] = {"max_connections": 1}
    maximums: ClassVar[Mapping[str, float]] = {"max_connections": 65_536}

    def unavailable(self) -> str | None:
        binary, package = PROTOCOLS[self.protocol]
        if not os.access(DOVECOT, os.X_OK) or not os.access(binary, os.X_OK):
            return (
                f"the dovecot engine of {self.protocol} needs Dovecot: install it "
                f'(apt-get install {package}) or use engine = "builtin"'
            )
        return needs_root("dovecot", "Dovecot", instead="builtin")

    def check(self, ctx: Context, where: str) -> None:
        super().check(ctx, where)
        host = ctx.topology.host(ctx.host)
        for service in host.services:
            if service.kind in MAILBOX_KINDS and (service.engine == "dovecot") != (
                ctx.service.engine == "dovecot"
            ):
                raise TopologyError(
                    f"{ctx.host}'s pop3 and imap share its mail store, so they must have one "
                    f'engine: give {service.name} engine = "dovecot" too',
                    field=f"{where}.engine",
                )

    def start(self, ctx: Context) -> Start:
        from netplay.mail import MailStore

        tls, ports = self.tls_ports(ctx), self.ports(ctx)
        protocol = self.protocol
        connections = int(ctx.option("max_connections", MAX_CONNECTIONS))

        def run() -> None:
            mail = mail_user()
            store = MailStore.open(ctx.data, ctx.topology, ctx.host)
            give(store.dir)
            directory = ctx.data / "dovecot" / ctx.service.name
            for past in ("run", "state"):  # a past run's pid file and locks
                shutil.rmtree(directory / past, ignore_errors=True)
            (directory / "index").mkdir(parents=True, exist_ok=True)
            give(directory / "index")
            write_passwd(directory / "passwd", ctx.topology.users)
            cert, key = ctx.pki.server(ctx.host)
            listeners = "\n".join(
                LISTENER.format(port=port, ssl="yes" if port in tls else "no") for port in ports
            )
            config = directory / "dovecot.conf"
            config.write_text(
                CONFIG.format(
                    ident=ctx.id, dir=directory, protocol=protocol, cert=cert, key=key,
                    uid=mail.pw_uid, gid=mail.pw_gid, store=store.dir, listeners=listeners,
                    connections=connections, clients=max(1000, 4 * connections),
                )
            )  # fmt: skip
            os.execv(DOVECOT, [DOVECOT, "-F", "-c", str(config)])

        return run


class DovecotImap(DovecotMailbox, ImapEngine):
    protocol = "imap"


class DovecotPop3(DovecotMailbox, Pop3Engine):
    protocol = "pop3"


register("imap", "dovecot", DovecotImap())
register("pop3", "dovecot", DovecotPop3())

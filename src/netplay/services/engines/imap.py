"""The ``imap`` kind, built in: IMAP4rev1 on asyncio over the mail host's Maildir store.

The commands are read by the sans-IO core (:mod:`netplay.protocols.imap`);
what IMAP says about a message (ENVELOPE, BODYSTRUCTURE, sections, SEARCH)
comes from :mod:`netplay.mail.imap`, and each folder's UIDs and flags
from :class:`netplay.mail.Folder` (``dovecot-uidlist``, Maildir flags).
This module is the engine; the session is :mod:`._imap_session` (its states:
not authenticated, authenticated, selected, logout; one method per command,
``cmd_FETCH``) with the selected state's commands in :mod:`._imap_selected`,
which tell the client what the other sessions on the same folder did, as
untagged EXISTS, EXPUNGE and FETCH responses (RFC 3501 5.2, 7.4.1): after
every command (EXPUNGE only where RFC 3501 allows it: not during FETCH,
STORE or SEARCH), and every IDLE_POLL_S during IDLE (RFC 2177), so that a
delivery wakes an idling client.

Ports: 143 (STARTTLS offered; LOGIN and AUTHENTICATE wait for it,
LOGINDISABLED says so) and 993 (implicit TLS).  Extensions: LITERAL+,
SASL-IR, UIDPLUS (APPENDUID, COPYUID, UID EXPUNGE), MOVE, IDLE, NAMESPACE,
ID, CHILDREN, UNSELECT.  Flags are the letters of a Maildir file name, as
Dovecot keeps them: the system flags, and keywords named in the folder's
``dovecot-keywords`` (26 at most, Maildir's letters a-z: a STORE, APPEND or
COPY that would make a 27th gets ``NO [LIMIT]``; PERMANENTFLAGS has ``\\*``
until then).  A message is \\Recent in the first read-write session that
sees it, the one whose sync moves it out of ``new/`` (Dovecot's Maildir
rule; EXAMINE moves nothing).  RENAME INBOX moves INBOX's messages into the
new folder and leaves INBOX empty (RFC 3501 6.3.5).

Hostile clients: the core limits lines, literals (an APPEND as large as
SMTP takes) and bad commands; a client idle for ``idle_timeout`` seconds
(default 1,800, RFC 3501's thirty minutes) is logged out; a wrong password
is answered after a second; connections are held by
:class:`~netplay.services.Connections` (``max_connections``, ``max_per_client``
(default 16: a NAT'd home shares one address) per client).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from netplay.services._base import Context, HealthError
from netplay.services._registry import register
from netplay.services.engines._imap_words import IDLE_TIMEOUT_S
from netplay.services.engines._mailbox import MailboxEngine

PORTS = (143, 993)
IMPLICIT_TLS = (993,)


class ImapEngine(MailboxEngine):
    default_ports = PORTS
    implicit_tls = IMPLICIT_TLS
    idle_timeout = IDLE_TIMEOUT_S
    session = "netplay.services.engines._imap_session:Session"
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        **MailboxEngine.options,
        "max_literal": int,
    }
    minimums: ClassVar[Mapping[str, float]] = {**MailboxEngine.minimums, "max_literal": 1024}
    maximums: ClassVar[Mapping[str, float]] = {**MailboxEngine.maximums, "max_literal": 1 << 30}

    def settings(self, ctx: Context) -> dict[str, Any]:
        from netplay.protocols.imap import MAX_LITERAL

        return {**super().settings(ctx), "max_literal": int(ctx.option("max_literal", MAX_LITERAL))}

    def health(self, ctx: Context, timeout: float) -> None:
        """On each port: the greeting, TLS (STARTTLS or implicit) with the certificate
        verified, and CAPABILITY offering IMAP4rev1 and a login."""
        import imaplib

        tls = self.tls_ports(ctx)
        context = ctx.client_tls()
        for port in self.ports(ctx):
            client: imaplib.IMAP4
            try:
                if port in tls:
                    client = imaplib.IMAP4_SSL(
                        ctx.address, port, ssl_context=context, timeout=timeout
                    )
                else:
                    client = imaplib.IMAP4(ctx.address, port, timeout=timeout)
                    client.starttls(context)
                try:
                    offered = set(client.capabilities)
                    if not {"IMAP4REV1", "AUTH=PLAIN"} <= offered:
                        raise HealthError(f"port {port} offers {sorted(offered)}")
                finally:
                    client.logout()
            except imaplib.IMAP4.error as exc:
                raise HealthError(f"port {port}: {exc}") from exc


register("imap", "builtin", ImapEngine())

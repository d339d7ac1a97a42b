"""The ``smtp`` kind on aiosmtpd: a mail host's MTA, delivering into its Maildir store.

Ports, as a real MTA has them: 25 (mail from anyone, for the host's own mail
domains; STARTTLS offered), 587 (submission: STARTTLS required, then AUTH
PLAIN or LOGIN required before MAIL) and 465 (submission over implicit TLS,
RFC 8314).  Which port is which is the ``submission`` and ``tls`` options'
to say.  The conversation is Postfix's: a greeting and EHLO naming the
host, SIZE, 8BITMIME, SMTPUTF8, PIPELINING, ENHANCEDSTATUSCODES, STARTTLS
with the host's certificate, AUTH only after TLS and only on submission
ports, and ``250 2.0.0 Ok: queued as ID`` at the end of DATA.  Every reply
but the greeting, EHLO's and HELO's, 334 and 354 has an enhanced status code
(RFC 2034), aiosmtpd's own replies too (:func:`with_enhanced_code`).

Where mail goes (:class:`Handler`): a recipient in one of the host's mail
domains (:func:`netplay.mail.mail_domains`) is delivered to that user's
INBOX if the user exists (``550 5.1.1`` if not).  Mail for any other
domain is taken only from a client that logged in, and only for a domain
the playground's DNS knows; anyone else gets ``554 5.7.1 Relay access
denied``, so the playground has no open relay.  A message is durable before
250: delivered (:meth:`netplay.mail.Maildir.deliver`, with ``Return-Path``
and ``Received`` put in front, as an MTA's delivery agent does) or queued
(:class:`netplay.mail.Queue`), from where :class:`Relay` takes it to the
domain's exchangers, with retries and bounces.

Hostile clients: every command must come within ``timeout`` seconds of the
last (the whole of DATA too); lines are at most 1,000 bytes, commands 512;
a message at most ``max_message`` bytes (552), at most ``max_recipients``
recipients (452); NOOP, RSET, VRFY and HELP at most 100 times a
connection; five unknown commands end it.  DATA ends only at
``<CR><LF>.<CR><LF>``, and a message with a bare CR or LF is refused
(``550 5.6.11``), so nothing can be smuggled (SMTP smuggling, 2023).  A
wrong password costs a second before the answer.  Connections are held as
:class:`~netplay.services.Connections` holds them: ``max_connections`` in
all, ``max_per_client`` (16) from one address, the idlest giving way.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import dataclasses
import functools
import logging
import re
import secrets
import time
import warnings
from collections.abc import Mapping, Sequence
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, ClassVar

from netplay.errors import TopologyError
from netplay.services._base import Context, Engine, HealthError, Start, ensure_accounts
from netplay.services._connections import Connections
from netplay.services._registry import register

if TYPE_CHECKING:
    from netplay.accounts import Accounts
    from netplay.mail import Failure, MailStore, Queue, Queued

log = logging.getLogger("netplay.smtp")

PORTS = (25, 587, 465)
SUBMISSION = (587,)
IMPLICIT_TLS = (465,)
MAX_MESSAGE = 10_240_000  # Postfix's message_size_limit
MAX_RECIPIENTS = 1000  # Postfix's smtpd_recipient_limit
TIMEOUT_S = 300.0  # Postfix's smtpd_timeout
MAX_CONNECTIONS = 256
MAX_PER_CLIENT = 16
JUNK_LIMIT = 100  # Postfix's smtpd_junk_command_limit: NOOP, RSET, VRFY, HELP
CALL_LIMIT = 10_000  # any other command, in one connection
ERROR_SLEEP_S = 1.0  # Postfix's smtpd_error_sleep_time: a wrong password waits this long
RETRY_S = 5.0  # the first retry of mail for another domain; it doubles each time
MAX_BACKOFF_S = 300.0
QUEUE_LIFETIME_S = 86_400.0  # then it is bounced (Postfix keeps trying for 5 days)
BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
#: Postfix's answer to an address that does not parse, by the command it came in
BAD_ADDRESS = {
    "MAIL": "501 5.1.7 Bad sender address syntax",
    "RCPT": "501 5.1.3 Bad recipient address syntax",
}
#: the enhanced status code (RFC 3463, RFC 5248) of each reply aiosmtpd 1.4.6 writes
#: without one on our configuration, by how the reply starts (the first that does);
#: Postfix's code where Postfix has the reply
ENHANCED_CODES = (
    ("220 ", "2.0.0"),  # Ready to start TLS
    ("221 ", "2.0.0"),  # Bye
    ("250 ", "2.0.0"),  # OK, and HELP's answers
    ("454 ", "4.7.0"),  # TLS not available (STARTTLS on the implicit TLS port)
    ("500 Command line too long", "5.5.0"),
    ("500 Line too long", "5.5.0"),  # a message line over 1,000 bytes
    ("500 ", "5.5.2"),  # bad syntax, command not recognized, an exception's text
    ("501 ", "5.5.4"),  # Syntax: ..., bad MAIL parameters, AUTH's arguments, HELP's
    ("502 Could not VRFY", "5.1.3"),  # an address that does not parse
    ("502 ", "5.5.1"),  # EXPN not implemented
    ("503 ", "5.5.1"),  # send HELO first, need MAIL, need RCPT, nested MAIL, AUTH again
    ("530 ", "5.7.0"),  # Must issue a STARTTLS command first
    ("552 ", "5.3.4"),  # SIZE over the limit, too much mail data
    ("555 ", "5.5.4"),  # MAIL or RCPT parameters not recognized
)
REPLY = re.compile(r"[2-5]\d\d ")
CODED = re.compile(r"[2-5]\d\d [2-5]\.\d{1,3}\.\d{1,3}( |$)")


def _sender(address: str) -> str:
    """The reverse path as it is written between <>: "" for the null sender of a bounce."""
    return "" if address == "<>" else address


def _split(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local, domain.lower().rstrip(".")


def with_enhanced_code(reply: str, hostname: str) -> str:
    """``reply`` with an enhanced status code after its reply code if it has none: the
    one :data:`ENHANCED_CODES` gives, else X.0.0 of its class.  The greeting and the
    answers to EHLO (its continuation lines, ``250 HELP``) and HELO keep none, as RFC
    2034 says, and so do AUTH's 334 and DATA's 354, as in Postfix."""
    if not REPLY.match(reply) or CODED.match(reply):
        return reply
    if reply.startswith(("334 ", "354 ", f"220 {hostname} ")) or reply in (
        f"250 {hostname}",
        "250 HELP",
    ):
        return reply
    code = next((c for start, c in ENHANCED_CODES if reply.startswith(start)), f"{reply[0]}.0.0")
    return f"{reply[:4]}{code} {reply[4:]}"


class Handler:
    """aiosmtpd's hooks: who may send, where mail goes, and delivery."""

    def __init__(
        self,
        ctx: Context,
        domains: set[str],
        store: MailStore,
        accounts: Accounts,
        users: set[str],
        relay: Relay,
        *,
        submission: bool,
        max_recipients: int,
    ) -> None:
        self.hostname = ctx.fqdn
        self.domains = domains
        self.store = store
        self.accounts = accounts
        self.users = users
        self.relay = relay
        self.submission = submission
        self.max_recipients = max_recipients

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        extensions = [r for r in responses[1:-1] if self.submission or "AUTH" not in r]
        return [
            responses[0],
            *extensions,
            "250-PIPELINING",
            "250-ENHANCEDSTATUSCODES",
            "250 HELP",
        ]

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:
        return "250 2.0.0 Ok"

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 Ok"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return "221 2.0.0 Bye"

    async def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
        return "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"

    async def handle_AUTH(self, server: Any, session: Any, envelope: Any, args: list[str]) -> Any:
        from aiosmtpd.smtp import MISSING

        if not self.submission:
            return "503 5.5.1 Error: authentication not enabled"
        return MISSING  # the auth_ methods below

    async def auth_PLAIN(self, server: Any, args: list[str]) -> Any:
        """RFC 4616: ``authzid NUL authcid NUL password``, given or asked for."""
        from aiosmtpd.smtp import MISSING, AuthResult

        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            blob = _base64(args[1])
        parts = blob.split(b"\x00") if blob is not None else []
        if len(parts) != 3:
            return AuthResult(
                success=False, handled=False, message="501 5.5.2 Cannot decode AUTH PLAIN"
            )
        return await self._login(parts[1], parts[2], authzid=parts[0])

    async def auth_LOGIN(self, server: Any, args: list[str]) -> Any:
        """The LOGIN mechanism: user name, then password, each base64."""
        from aiosmtpd.smtp import MISSING, AuthResult

        if len(args) == 1:
            login = await server.challenge_auth("Username:")
            if login is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            login = _base64(args[1])
            if login is None:
                return AuthResult(
                    success=False, handled=False, message="501 5.5.2 Cannot decode AUTH LOGIN"
                )
        password = await server.challenge_auth("Password:")
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._login(login, password)

    async def _login(self, login: bytes, password: bytes, authzid: bytes = b"") -> Any:
        from aiosmtpd.smtp import AuthResult

        name = login.decode("utf-8", "replace")
        loop = asyncio.get_running_loop()
        good = await loop.run_in_executor(
            None, self.accounts.check, name, password.decode("utf-8", "replace")
        )
        if good and authzid in (b"", login):
            log.info("authenticated %s", name)
            return AuthResult(success=True, auth_data=name)
        log.info("authentication failed for %r", name)
        await asyncio.sleep(ERROR_SLEEP_S)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Error: authentication failed"
        )

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return "452 4.5.3 Error: too many recipients"
        local, domain = _split(address)
        if domain not in self.domains:
            if not session.authenticated:
                return f"554 5.7.1 <{address}>: Relay access denied"
            from netplay.mail import Failure, exchanges

            loop = asyncio.get_running_loop()
            try:  # a domain the playground's DNS does not know is refused now, not bounced
                await loop.run_in_executor(None, exchanges, domain)
            except Failure as failure:
                code = "550 5.1.2" if failure.permanent else "450 4.1.2"
                return f"{code} <{address}>: Recipient address rejected: {failure.text}"
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            return "250 2.1.5 Ok"
        if local.lower() not in self.users:
            return (
                f"550 5.1.1 <{address}>: Recipient address rejected: "
                "User unknown in local recipient table"
            )
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content
        if BARE.search(content):
            return "550 5.6.11 Error: bare <CR> or <LF> received; lines end in <CR><LF>"
        queue_id = secrets.token_hex(5).upper()
        tls = session.ssl is not None or server.transport.get_extra_info("sslcontext") is not None
        protocol = "ESMTP" if session.extended_smtp else "SMTP"
        protocol += ("S" if tls else "") + ("A" if session.authenticated else "")
        peer = session.peer[0] if session.peer else "unknown"
        loop = asyncio.get_running_loop()
        sender = _sender(envelope.mail_from)
        remote = tuple(r for r in envelope.rcpt_tos if _split(r)[1] not in self.domains)

        def received(recipient: str | None) -> bytes:
            text = (
                f"Received: from {session.host_name or 'unknown'} ([{peer}])\r\n"
                f"\tby {self.hostname} (netplay) with {protocol} id {queue_id}"
                + (f"\r\n\tfor <{recipient}>" if recipient else "")
                + f"; {formatdate(localtime=True)}\r\n"
            )
            return text.encode("utf-8", "surrogateescape")

        try:
            for recipient in envelope.rcpt_tos:
                if recipient in remote:
                    continue
                message = f"Return-Path: <{sender}>\r\n".encode() + received(recipient) + content
                box = self.store.of(_split(recipient)[0].lower())
                await loop.run_in_executor(None, box.deliver, message)
            if remote:
                message = received(remote[0] if len(remote) == 1 else None) + content
                await loop.run_in_executor(None, self.relay.queue.add, message, sender, remote)
                self.relay.wake()
        except OSError as exc:
            log.error("%s: delivery failed: %s", queue_id, exc)
            return "451 4.3.0 Error: queue file write error"
        log.info(
            "%s: from=<%s> to=<%s> size=%d %s",
            queue_id,
            sender,
            ">,<".join(envelope.rcpt_tos),
            len(content),
            "queued for other domains" if remote else "delivered",
        )
        return f"250 2.0.0 Ok: queued as {queue_id}"


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        return None


class Relay:
    """Mail for other domains, from the queue to their exchangers: one attempt when a
    message is queued, then again after ``retry`` seconds, doubling up to
    MAX_BACKOFF_S, until it is delivered or ``lifetime`` seconds have passed;
    a recipient that failed for good is bounced to the sender (a DSN; never to
    the null sender of a bounce)."""

    def __init__(
        self,
        queue: Queue,
        store: MailStore,
        domains: set[str],
        users: set[str],
        hostname: str,
        *,
        retry: float,
        lifetime: float,
    ) -> None:
        self.queue, self.store = queue, store
        self.domains, self.users = domains, users
        self.hostname = hostname
        self.retry, self.lifetime = retry, lifetime
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Something was queued: look at the queue now."""
        self._wakeup.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wakeup.clear()
            for item in await loop.run_in_executor(None, self.queue.pending):
                if item.next_try <= time.time():
                    await self._attempt(item)
            later = [item.next_try for item in await loop.run_in_executor(None, self.queue.pending)]
            wait = max(0.0, min(later) - time.time()) if later else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait)

    async def _attempt(self, item: Queued) -> None:
        from netplay.mail import Failure, deliver

        loop = asyncio.get_running_loop()
        message = await loop.run_in_executor(None, self.queue.message, item)
        by_domain: dict[str, list[str]] = {}
        for recipient in item.recipients:
            by_domain.setdefault(_split(recipient)[1], []).append(recipient)
        failures: dict[str, Failure] = {}
        for domain, recipients in by_domain.items():
            failures.update(
                await loop.run_in_executor(
                    None, deliver, message, item.sender, recipients, domain, self.hostname
                )
            )
        for recipient in item.recipients:
            if recipient not in failures:
                log.info("%s: to=<%s> relayed", item.id, recipient)
        expired = time.time() - item.arrived >= self.lifetime
        permanent = {r: f for r, f in failures.items() if f.permanent or expired}
        if expired:
            permanent = {
                r: Failure(f"{f.text}; gave up after {self.lifetime:g} s", True)
                for r, f in permanent.items()
            }
        later = {r: f for r, f in failures.items() if r not in permanent}
        for recipient, failure in permanent.items():
            log.info("%s: to=<%s> bounced: %s", item.id, recipient, failure.text)
        if permanent and item.sender:
            await self._bounce(message, item.sender, permanent)
        if later:
            delay = min(self.retry * 2**item.attempts, MAX_BACKOFF_S)
            first = next(iter(later.values())).text
            log.info("%s: deferred (%s); next try in %g s", item.id, first, delay)
            await loop.run_in_executor(
                None,
                self.queue.update,
                dataclasses.replace(
                    item,
                    recipients=tuple(later),
                    attempts=item.attempts + 1,
                    next_try=time.time() + delay,
                    last_error=first,
                ),
            )
        else:
            await loop.run_in_executor(None, self.queue.remove, item)

    async def _bounce(self, original: bytes, sender: str, failures: dict[str, Failure]) -> None:
        from netplay.mail import bounce

        report = bounce(original, sender, failures, self.hostname)
        local, domain = _split(sender)
        loop = asyncio.get_running_loop()
        if domain in self.domains:
            if local.lower() in self.users:
                message = b"Return-Path: <>\r\n" + report
                await loop.run_in_executor(None, self.store.of(local.lower()).deliver, message)
            return  # a local sender who does not exist: nobody to tell
        await loop.run_in_executor(None, self.queue.add, report, "", (sender,))
        self.wake()


def _session_class() -> type:
    """aiosmtpd's SMTP, its connections held in a :class:`Connections` (imported late:
    an engine module is cheap to import)."""
    from aiosmtpd.smtp import SMTP

    class Session(SMTP):
        """One client's connection; it counts as active when a command is taken."""

        def __init__(self, handler: Handler, connections: Connections, **kwargs: Any) -> None:
            # aiosmtpd 1.4.6 keeps the command size limits in a dict of its class, which
            # each new connection clears and each EHLO raises (MAIL's, for SIZE and
            # SMTPUTF8): one connection's EHLOs would widen another's limit
            self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
            super().__init__(handler, **kwargs)
            self.connections = connections
            self.held = False
            self.verb = "MAIL"  # the command whose address is being parsed
            self.peer: Any = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            first = self.transport is None  # not the TLS layer that STARTTLS puts on top
            super().connection_made(transport)
            if first:
                self.peer = transport.get_extra_info("peername")
                self.connections.add(self)
                self.held = True

        def connection_lost(self, error: Exception | None) -> None:
            if self.held:
                self.connections.discard(self)
                self.held = False
            super().connection_lost(error)

        async def push(self, status: Any) -> None:
            """Every reply, with its enhanced status code.  Handler hooks word only the
            answers to commands that are taken; aiosmtpd writes every refusal (syntax,
            order, limits, STARTTLS, AUTH's arguments, HELP, EXPN) as a literal in its
            ``smtp_*`` methods, with no hook.  All of them pass through ``push`` (public,
            documented), so the code is added here, once, instead of in copies of
            those methods.  Bytes are only AUTH's 334 challenges: passed as they are."""
            if isinstance(status, str):
                if status.startswith("553 5.1.3 Error: malformed address"):
                    status = BAD_ADDRESS[self.verb]
                status = with_enhanced_code(status, self.hostname)
            await super().push(status)

        # An address that does not parse, as Postfix answers it: aiosmtpd's answer
        # (553, the same for MAIL and RCPT) becomes Postfix's 501, told by the verb.
        # (wraps: HELP's text is what aiosmtpd's decorator put on its methods)
        @functools.wraps(SMTP.smtp_MAIL)
        async def smtp_MAIL(self, arg: str) -> None:
            self.verb = "MAIL"
            await super().smtp_MAIL(arg)

        @functools.wraps(SMTP.smtp_RCPT)
        async def smtp_RCPT(self, arg: str) -> None:
            self.verb = "RCPT"
            await super().smtp_RCPT(arg)

        @functools.wraps(SMTP.smtp_STARTTLS)
        async def smtp_STARTTLS(self, arg: str) -> None:
            """Not over TLS again: aiosmtpd 1.4.6 would put a second TLS inside the first."""
            if self._tls_protocol is not None and not arg:
                await self.push("554 5.5.1 Error: TLS already active")
                return
            await super().smtp_STARTTLS(arg)

        def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
            """aiosmtpd's parse (1.4.6), but for ``<broken``, which it takes for ``broken``."""
            if arg.lstrip().startswith("<") and ">" not in arg:
                return None, None
            return super()._getaddr(arg)

        def _reset_timeout(self, duration: float | None = None) -> None:
            super()._reset_timeout(duration)  # a command was taken (aiosmtpd 1.4.6)
            self.connections.touch(self)

        def close(self) -> None:
            if self.transport is not None:
                self.transport.close()

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            """What Connections asks: the client's address, kept from the start."""
            return self.peer if name == "peername" and self.peer else default

    return Session


async def serve(ctx: Context, settings: Mapping[str, Any]) -> None:
    """Listen on every port until the process is ended."""
    from netplay.accounts import Accounts
    from netplay.mail import MailStore, Queue, mail_domains

    domains = mail_domains(ctx.topology, ctx.host)
    accounts = Accounts.ensure(ctx.data, ctx.topology.users)
    store = MailStore.open(ctx.data, ctx.topology, ctx.host)
    names = {user.name for user in ctx.topology.users}
    relay = Relay(
        Queue(ctx.data),
        store,
        domains,
        names,
        ctx.fqdn,
        retry=settings["retry"],
        lifetime=settings["queue_lifetime"],
    )
    context = ctx.server_tls()
    session = _session_class()
    connections = Connections(
        settings["max_connections"], min(settings["max_per_client"], settings["max_connections"])
    )
    limits = {"NOOP": JUNK_LIMIT, "RSET": JUNK_LIMIT, "VRFY": JUNK_LIMIT, "HELP": JUNK_LIMIT}
    loop = asyncio.get_running_loop()
    servers = []
    for port in settings["ports"]:
        implicit = port in settings["tls"]
        submission = implicit or port in settings["submission"]
        handler = Handler(
            ctx,
            domains,
            store,
            accounts,
            names,
            relay,
            submission=submission,
            max_recipients=settings["max_recipients"],
        )
        options: dict[str, Any] = {
            "hostname": ctx.fqdn,
            "ident": "ESMTP netplay",
            "data_size_limit": settings["max_message"],
            "enable_SMTPUTF8": True,
            "timeout": settings["timeout"],
            "command_call_limit": {"*": CALL_LIMIT, **limits},
            # TLS below SMTP on an implicit port; STARTTLS on the others
            "tls_context": None if implicit else context,
            "require_starttls": port in settings["submission"],
            # AUTH before TLS on submission: 538; on 25 it is not offered at all (503)
            "auth_require_tls": not implicit and port in settings["submission"],
            "auth_required": submission,
        }

        def factory(handler: Handler = handler, options: dict[str, Any] = options) -> Any:
            return session(handler, connections, loop=loop, **options)

        servers.append(
            await loop.create_server(
                factory, None, port, backlog=1024, ssl=context if implicit else None
            )
        )
    print(
        f"smtp: {ctx.fqdn} listening on port {' '.join(map(str, settings['ports']))}, "
        f"mail for {', '.join(sorted(domains))}",
        flush=True,
    )
    await asyncio.gather(relay.run(), *(server.serve_forever() for server in servers))


class SmtpEngine(Engine):
    default_ports = PORTS
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "submission": list,
        "tls": list,
        "max_message": int,
        "max_recipients": int,
        "max_connections": int,
        "max_per_client": int,
        "timeout": (int, float),
        "retry": (int, float),
        "queue_lifetime": (int, float),
    }
    minimums: ClassVar[Mapping[str, float]] = {
        "retry": 0.1,
        "queue_lifetime": 0,
        "max_message": 1024,
        "max_recipients": 1,
        "max_connections": 1,
        "max_per_client": 1,
        "timeout": 0.1,
    }
    maximums: ClassVar[Mapping[str, float]] = {
        "max_message": 1 << 30,
        "max_recipients": 100_000,
        "max_connections": 65_536,
        "max_per_client": 65_536,
        "timeout": 86_400,
        "retry": 86_400,
        "queue_lifetime": 30 * 86_400,
    }

    def _roles(self, ctx: Context) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The submission ports and the implicit TLS ports, among its ports."""
        ports = self.ports(ctx)
        submission = tuple(ctx.option("submission", [p for p in SUBMISSION if p in ports]))
        tls = tuple(ctx.option("tls", [p for p in IMPLICIT_TLS if p in ports]))
        return submission, tls

    def check(self, ctx: Context, where: str) -> None:
        super().check(ctx, where)
        submission, tls = self._roles(ctx)
        for key, ports in (("submission", submission), ("tls", tls)):
            for i, port in enumerate(ports):
                if port not in self.ports(ctx) or isinstance(port, bool):
                    raise TopologyError(
                        f"{port!r} is not one of the service's ports", field=f"{where}.{key}[{i}]"
                    )
        both = set(submission) & set(tls)
        if both:
            raise TopologyError(
                f"port {min(both)} cannot be both submission (STARTTLS) and implicit TLS",
                field=f"{where}.tls",
            )

    def preload(self, contexts: Sequence[Context]) -> None:
        # aiosmtpd and the mail store: a tenth of a second each server would spend
        import aiosmtpd.smtp  # noqa: F401

        import netplay.mail  # noqa: F401

        ensure_accounts(contexts)

    def start(self, ctx: Context) -> Start:
        submission, tls = self._roles(ctx)
        settings = {
            "ports": self.ports(ctx),
            "submission": submission,
            "tls": tls,
            "max_message": int(ctx.option("max_message", MAX_MESSAGE)),
            "max_recipients": int(ctx.option("max_recipients", MAX_RECIPIENTS)),
            "max_connections": int(ctx.option("max_connections", MAX_CONNECTIONS)),
            "max_per_client": int(ctx.option("max_per_client", MAX_PER_CLIENT)),
            "timeout": float(ctx.option("timeout", TIMEOUT_S)),
            "retry": float(ctx.option("retry", RETRY_S)),
            "queue_lifetime": float(ctx.option("queue_lifetime", QUEUE_LIFETIME_S)),
        }

        def run() -> None:
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True
            )
            # aiosmtpd's own: a line per command, and warnings of what is meant here
            logging.getLogger("mail.log").setLevel(logging.ERROR)
            warnings.simplefilter("ignore")  # aiosmtpd warns of AUTH without STARTTLS on 465
            asyncio.run(serve(ctx, settings))

        return run

    def health(self, ctx: Context, timeout: float) -> None:
        """On each port: the greeting, EHLO, TLS (STARTTLS or implicit) with the
        certificate verified, EHLO again (AUTH offered on submission ports), NOOP."""
        import smtplib

        submission, tls = self._roles(ctx)
        context = ctx.client_tls()
        for port in self.ports(ctx):
            client: smtplib.SMTP
            try:
                if port in tls:
                    client = smtplib.SMTP_SSL(ctx.address, port, timeout=timeout, context=context)
                else:
                    client = smtplib.SMTP(ctx.address, port, timeout=timeout)
                with client:
                    client.ehlo("health.invalid")
                    if port not in tls:
                        client.starttls(context=context)
                        client.ehlo("health.invalid")
                    if (port in submission or port in tls) != client.has_extn("auth"):
                        raise HealthError(f"port {port} offers AUTH where it should not, or not")
                    code, text = client.noop()
                    if code != 250:
                        raise HealthError(f"NOOP on port {port} answered {code} {text!r}")
            except smtplib.SMTPException as exc:
                raise HealthError(f"port {port}: {exc}") from exc


register("smtp", "aiosmtpd", SmtpEngine())

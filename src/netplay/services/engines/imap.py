"""The ``imap`` kind, built in: IMAP4rev1 on asyncio over the mail host's Maildir store.

The commands are read by the sans-IO core (:mod:`netplay.protocols.imap`);
what IMAP says about a message (ENVELOPE, BODYSTRUCTURE, sections, SEARCH)
comes from :mod:`netplay.mail._imap`, and each folder's UIDs and flags
from :class:`netplay.mail.Folder` (``dovecot-uidlist``, Maildir flags).
This module is the session: its states (not authenticated, authenticated,
selected, logout), one method per command (``cmd_FETCH``), and what the
other sessions on the same folder did, told as untagged EXISTS, EXPUNGE and
FETCH responses (RFC 3501 5.2, 7.4.1): after every command (EXPUNGE only
where RFC 3501 allows it: not during FETCH, STORE or SEARCH), and every
IDLE_POLL_S during IDLE (RFC 2177), so that a delivery wakes an idling
client.

Ports: 143 (STARTTLS offered; LOGIN and AUTHENTICATE wait for it,
LOGINDISABLED says so) and 993 (implicit TLS).  Extensions: LITERAL+,
SASL-IR, UIDPLUS (APPENDUID, COPYUID, UID EXPUNGE), MOVE, IDLE, NAMESPACE,
ID, CHILDREN, UNSELECT.  Flags are the system flags a Maildir file name
holds; keywords are not kept (PERMANENTFLAGS has no ``\\*``) and no message
is \\Recent.

Hostile clients: the core limits lines, literals (an APPEND as large as
SMTP takes) and bad commands; a client idle for ``idle_timeout`` seconds
(default 1,800, RFC 3501's thirty minutes) is logged out; a wrong password
is answered after a second; connections are held by
:class:`~netplay.services.Connections` (``max_connections``, 16 per client).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from netplay.errors import TopologyError
from netplay.services._base import Context, Engine, HealthError, Start
from netplay.services._connections import Connections
from netplay.services._registry import register

if TYPE_CHECKING:
    from netplay.accounts import Accounts
    from netplay.mail import Folder, Maildir, MailStore, Stored

log = logging.getLogger("netplay.imap")

PORTS = (143, 993)
IMPLICIT_TLS = (993,)
IDLE_TIMEOUT_S = 1800.0  # RFC 3501 5.4: an autologout timer of at least 30 minutes
IDLE_POLL_S = 0.5  # how often an IDLE session looks for news
MAX_CONNECTIONS = 256
MAX_PER_CLIENT = 16
ERROR_SLEEP_S = 1.0
CHUNK = 65536
SEPARATOR = "."
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
CAPABILITIES = "IMAP4rev1 LITERAL+ SASL-IR UIDPLUS MOVE IDLE NAMESPACE ID CHILDREN UNSELECT"
_FETCH_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}
_BODY_ITEM = re.compile(r"^BODY(\.PEEK)?\[([^\]]*)\](?:<(\d+)\.(\d+)>)?$", re.IGNORECASE)
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


class No(Exception):
    """The command failed: ``TAG NO text``."""


class Bad(Exception):
    """The command was wrong: ``TAG BAD text``."""


def _text(value: Any, what: str = "a string") -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    raise Bad(f"{what} expected")


def _imap_date(when: float) -> str:
    stamp = dt.datetime.fromtimestamp(when, dt.UTC)
    return f"{stamp.day:02d}-{_MONTHS[stamp.month - 1]}-{stamp.year} {stamp:%H:%M:%S} +0000"


def _mailbox_name(value: Any) -> str:
    name = _text(value, "a mailbox name")
    if name.upper() == "INBOX":
        return "INBOX"
    if (
        not name
        or name.startswith(SEPARATOR)
        or name.endswith(SEPARATOR)
        or SEPARATOR * 2 in name
        or any(c in name for c in "/\\*%")
        or not name.isprintable()
        or len(name) > 255
    ):
        raise No(f"{name!r} is not a mailbox name here")
    return name


class Session:
    """One client's IMAP session."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        implicit: bool,
        store: MailStore,
        accounts: Accounts,
        connections: Connections,
        settings: Mapping[str, Any],
        tls: Any,
    ) -> None:
        from netplay.protocols.imap import ServerConnection

        self.reader, self.writer = reader, writer
        self.conn = ServerConnection(max_literal=int(settings["max_literal"]))
        self.tls_active, self.stls = implicit, not implicit
        self.store, self.accounts = store, accounts
        self.connections = connections
        self.idle = float(settings["idle_timeout"])
        self.tls = tls
        self.user: str | None = None
        self.maildir: Maildir | None = None
        self.folder: Folder | None = None
        self.folder_name = ""
        self.readonly = False
        self.view: list[Stored] = []  # the selected folder as this client knows it
        self.done = False

    # -- I/O -------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        if data:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self.idle)
            self.connections.touch(self.writer)

    async def read(self) -> None:
        self.conn.receive_data(await asyncio.wait_for(self.reader.read(CHUNK), self.idle))

    async def next(self) -> Any:
        """The next event of the core, reading as needed; None at the end."""
        from netplay.protocols import END, NEED_DATA

        while True:
            event = self.conn.next_event()
            await self.write(self.conn.data_to_send())
            if event is END:
                return None
            if event is not NEED_DATA:
                return event
            await self.read()

    async def run(self) -> None:
        from netplay.protocols.imap import Command, ImapError, untagged

        greeting = f"OK [CAPABILITY {self.capabilities()}] IMAP4rev1 server ready"
        await self.write(untagged(greeting))
        while not self.done:
            try:
                event = await self.next()
                if event is None:
                    return
                if isinstance(event, Command):
                    await self.command(event)
            except ImapError as exc:
                await self.write(self.conn.data_to_send() + f"{exc.reply}\r\n".encode())
                return

    async def command(self, cmd: Any) -> None:
        from netplay.protocols.imap import tagged

        name = cmd.name
        args = list(cmd.args)
        uid = False
        if name == "UID":
            if not args or not isinstance(args[0], str):
                await self.write(tagged(cmd.tag, "BAD", "UID needs a command"))
                return
            name, args, uid = args[0].upper(), args[1:], True
            if name not in ("FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE"):
                await self.write(tagged(cmd.tag, "BAD", f"UID {name} is not a command"))
                return
        method = getattr(self, f"cmd_{name}", None)
        allowed = self.allowed(name)
        if method is None or not allowed:
            text = "Unknown command." if method is None else f"{name} is not allowed now."
            await self.write(tagged(cmd.tag, "BAD", text))
            return
        try:
            text = await method(cmd.tag, args, uid)
            status = "OK"
        except No as exc:
            status, text = "NO", str(exc)
        except Bad as exc:
            status, text = "BAD", str(exc)
        except (IndexError, ValueError) as exc:
            status, text = "BAD", f"bad arguments ({exc})"
        if self.folder is not None and name not in ("LOGOUT", "IDLE", "STARTTLS"):
            await self.notify(expunges=name not in ("FETCH", "STORE", "SEARCH"))
        if text is not None:
            await self.write(tagged(cmd.tag, status, text))

    def allowed(self, name: str) -> bool:
        anywhere = {"CAPABILITY", "NOOP", "LOGOUT", "ID"}
        before = {"STARTTLS", "LOGIN", "AUTHENTICATE"}
        after = {
            "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE",
            "LIST", "LSUB", "STATUS", "APPEND", "NAMESPACE", "IDLE",
        }  # fmt: skip
        selected = {"CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE"}
        selected |= {"COPY", "MOVE"}
        if name in anywhere:
            return True
        if self.user is None:
            return name in before
        return name in after or (self.folder is not None and name in selected)

    def capabilities(self) -> str:
        if self.user is not None:
            return CAPABILITIES
        if self.stls and not self.tls_active:
            return f"{CAPABILITIES} STARTTLS LOGINDISABLED"
        return f"{CAPABILITIES} AUTH=PLAIN"

    # -- any state --------------------------------------------------------------

    async def cmd_CAPABILITY(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.protocols.imap import untagged

        await self.write(untagged(f"CAPABILITY {self.capabilities()}"))
        return "Capability completed."

    async def cmd_NOOP(self, tag: str, args: list[Any], uid: bool) -> str:
        return "NOOP completed."

    async def cmd_LOGOUT(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.protocols.imap import untagged

        await self.write(untagged("BYE Logging out"))
        self.done = True
        return "Logout completed."

    async def cmd_ID(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.protocols.imap import untagged

        await self.write(untagged('ID ("name" "netplay" "vendor" "netplay")'))
        return "ID completed."

    # -- not authenticated ----------------------------------------------------------

    async def cmd_STARTTLS(self, tag: str, args: list[Any], uid: bool) -> str | None:
        from netplay.protocols.imap import tagged

        if not self.stls or self.tls_active:
            raise Bad("TLS is already active." if self.tls_active else "STARTTLS is not offered.")
        # what came in clear before our OK must not count as sent over TLS, and nothing
        # may await between the OK and the switch (the client's handshake would be lost)
        self.reader._buffer.clear()  # type: ignore[attr-defined]
        self.writer.write(tagged(tag, "OK", "Begin TLS negotiation now."))
        await self.writer.start_tls(self.tls)
        self.tls_active, self.stls = True, False
        from netplay.protocols.imap import ServerConnection

        self.conn = ServerConnection(max_literal=self.conn.max_literal)  # forget the clear
        return None

    def _plaintext_refused(self) -> None:
        if self.stls and not self.tls_active:
            raise No(
                "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure "
                "(SSL/TLS) connections."
            )

    async def cmd_LOGIN(self, tag: str, args: list[Any], uid: bool) -> str:
        self._plaintext_refused()
        if len(args) != 2:
            raise Bad("LOGIN takes a user name and a password")
        return await self._login(_text(args[0]), _text(args[1]))

    async def cmd_AUTHENTICATE(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.protocols.imap import Line, continuation

        if not args or _text(args[0]).upper() != "PLAIN" or len(args) > 2:
            raise No("[CANNOT] Unsupported authentication mechanism (PLAIN only).")
        self._plaintext_refused()
        if len(args) == 2:
            response = _text(args[1]).encode()
        else:
            await self.write(continuation())
            self.conn.expect_line()
            event = await self.next()
            if not isinstance(event, Line):
                raise Bad("no response to the challenge")
            response = event.data
        if response == b"*":
            raise Bad("Authentication aborted.")
        try:
            parts = base64.b64decode(response, validate=True).split(b"\0")
        except binascii.Error:
            parts = []
        if len(parts) != 3 or parts[0] not in (b"", parts[1]):
            raise Bad("Invalid PLAIN response.")
        user, password = (part.decode("utf-8", "replace") for part in parts[1:])
        return await self._login(user, password)

    async def _login(self, user: str, password: str) -> str:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.accounts.check, user, password):
            log.info("authentication failed for %r", user)
            await asyncio.sleep(ERROR_SLEEP_S)
            raise No("[AUTHENTICATIONFAILED] Authentication failed.")
        self.user, self.maildir = user, self.store.of(user)
        log.info("%s logged in", user)
        return f"[CAPABILITY {CAPABILITIES}] Logged in"

    # -- authenticated: mailboxes -------------------------------------------------------

    def _folder_path(self, name: str) -> Path:
        assert self.maildir is not None
        return self.maildir.folder(name)

    def _exists(self, name: str) -> bool:
        return (self._folder_path(name) / "cur").is_dir()

    async def _select(self, args: list[Any], readonly: bool) -> str:
        from netplay.mail import Folder
        from netplay.protocols.imap import untagged

        self.folder, self.view = None, []
        name = _mailbox_name(args[0])
        if not self._exists(name):
            raise No("[NONEXISTENT] Mailbox doesn't exist.")
        folder = Folder(self._folder_path(name))
        view = await asyncio.get_running_loop().run_in_executor(None, folder.sync)
        unseen = next((i + 1 for i, m in enumerate(view) if "\\Seen" not in m.flags), None)
        lines = [
            f"FLAGS ({' '.join(SYSTEM_FLAGS)})",
            f"OK [PERMANENTFLAGS ({' '.join(SYSTEM_FLAGS)})] Flags permitted.",
            f"{len(view)} EXISTS",
            "0 RECENT",
            f"OK [UIDVALIDITY {folder.uidvalidity}] UIDs valid",
            f"OK [UIDNEXT {folder.next_uid}] Predicted next UID",
        ]
        if unseen is not None:
            lines.append(f"OK [UNSEEN {unseen}] First unseen.")
        await self.write(b"".join(untagged(line) for line in lines))
        self.folder, self.folder_name, self.view, self.readonly = folder, name, list(view), readonly
        return f"[{'READ-ONLY' if readonly else 'READ-WRITE'}] Select completed."

    async def cmd_SELECT(self, tag: str, args: list[Any], uid: bool) -> str:
        return await self._select(args, readonly=False)

    async def cmd_EXAMINE(self, tag: str, args: list[Any], uid: bool) -> str:
        return await self._select(args, readonly=True)

    async def cmd_CREATE(self, tag: str, args: list[Any], uid: bool) -> str:
        name = _mailbox_name(args[0])
        if name == "INBOX" or self._exists(name):
            raise No("[ALREADYEXISTS] Mailbox already exists.")
        assert self.maildir is not None
        await asyncio.get_running_loop().run_in_executor(None, self.maildir.make, name)
        return "Create completed."

    async def cmd_DELETE(self, tag: str, args: list[Any], uid: bool) -> str:
        name = _mailbox_name(args[0])
        if name == "INBOX":
            raise No("INBOX cannot be deleted.")
        if not self._exists(name):
            raise No("[NONEXISTENT] Mailbox doesn't exist.")
        if name == self.folder_name and self.folder is not None:
            raise No("[INUSE] Mailbox is selected: select another first.")
        await asyncio.get_running_loop().run_in_executor(
            None, shutil.rmtree, self._folder_path(name)
        )
        self._subscriptions(remove=frozenset({name}))
        return "Delete completed."

    async def cmd_RENAME(self, tag: str, args: list[Any], uid: bool) -> str:
        old, new = _mailbox_name(args[0]), _mailbox_name(args[1])
        if "INBOX" in (old, new):
            raise No("[CANNOT] INBOX cannot be renamed here.")
        if not self._exists(old):
            raise No("[NONEXISTENT] Mailbox doesn't exist.")
        if self._exists(new):
            raise No("[ALREADYEXISTS] Mailbox already exists.")
        assert self.maildir is not None
        for child in self._folders():
            if child == old or child.startswith(old + SEPARATOR):
                os.rename(self._folder_path(child), self._folder_path(new + child[len(old) :]))
        return "Rename completed."

    def _folders(self) -> list[str]:
        assert self.maildir is not None
        return self.maildir.folders()

    def _subscriptions(
        self, add: frozenset[str] = frozenset(), remove: frozenset[str] = frozenset()
    ) -> set[str]:
        assert self.maildir is not None
        path = self.maildir.root / "subscriptions"
        try:
            names = {line for line in path.read_text().splitlines() if line}
        except OSError:
            names = set()
        if add or remove:
            names = (names | add) - remove
            temporary = path.with_name(".subscriptions.tmp")
            temporary.write_text("".join(f"{n}\n" for n in sorted(names)))
            os.replace(temporary, path)
        return names

    async def cmd_SUBSCRIBE(self, tag: str, args: list[Any], uid: bool) -> str:
        name = _mailbox_name(args[0])
        if not self._exists(name):
            raise No("[NONEXISTENT] Mailbox doesn't exist.")
        self._subscriptions(add=frozenset({name}))
        return "Subscribe completed."

    async def cmd_UNSUBSCRIBE(self, tag: str, args: list[Any], uid: bool) -> str:
        self._subscriptions(remove=frozenset({_text(args[0])}))
        return "Unsubscribe completed."

    def _matching(self, reference: str, pattern: str, names: list[str]) -> list[str]:
        wanted = reference + pattern
        expression = "".join(
            ".*" if c == "*" else "[^.]*" if c == "%" else re.escape(c) for c in wanted
        )
        flags = re.IGNORECASE if wanted.upper().startswith("INBOX") else 0
        found = re.compile(expression + "$", flags)
        return [n for n in names if found.match(n)]

    async def _list(self, args: list[Any], command: str, subscribed: bool) -> str:
        from netplay.protocols.imap import astring, untagged

        reference, pattern = _text(args[0]), _text(args[1])
        if not pattern:
            await self.write(untagged(f'{command} (\\Noselect) "{SEPARATOR}" ""'))
            return f"{command} completed."
        names = self._folders()
        chosen = self._subscriptions() if subscribed else set(names)
        lines = []
        for name in self._matching(reference, pattern, names):
            if name not in chosen:
                continue
            children = any(n.startswith(name + SEPARATOR) for n in names)
            flag = "\\HasChildren" if children else "\\HasNoChildren"
            lines.append(untagged(f'{command} ({flag}) "{SEPARATOR}" '.encode() + astring(name)))
        await self.write(b"".join(lines))
        return f"{command} completed."

    async def cmd_LIST(self, tag: str, args: list[Any], uid: bool) -> str:
        return await self._list(args, "LIST", subscribed=False)

    async def cmd_LSUB(self, tag: str, args: list[Any], uid: bool) -> str:
        return await self._list(args, "LSUB", subscribed=True)

    async def cmd_NAMESPACE(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.protocols.imap import untagged

        await self.write(untagged(f'NAMESPACE (("" "{SEPARATOR}")) NIL NIL'))
        return "Namespace completed."

    async def cmd_STATUS(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.mail import Folder
        from netplay.protocols.imap import astring, untagged

        name = _mailbox_name(args[0])
        if not self._exists(name) or not isinstance(args[1], list):
            raise No("[NONEXISTENT] Mailbox doesn't exist.")
        folder = Folder(self._folder_path(name))
        messages = await asyncio.get_running_loop().run_in_executor(None, folder.sync)
        values = {
            "MESSAGES": len(messages),
            "RECENT": 0,
            "UIDNEXT": folder.next_uid,
            "UIDVALIDITY": folder.uidvalidity,
            "UNSEEN": sum("\\Seen" not in m.flags for m in messages),
        }
        items = []
        for item in args[1]:
            key = _text(item).upper()
            if key not in values:
                raise Bad(f"unknown status item {key}")
            items.append(f"{key} {values[key]}")
        await self.write(untagged(b"STATUS " + astring(name) + f" ({' '.join(items)})".encode()))
        return "Status completed."

    async def cmd_APPEND(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.mail import Folder, base_name

        name = _mailbox_name(args[0])
        message = args[-1]
        if not isinstance(message, bytes):
            raise Bad("APPEND takes the message as a literal")
        flags: list[str] = []
        when: float | None = None
        for extra in args[1:-1]:
            if isinstance(extra, list):
                flags = [_text(f) for f in extra]
            else:
                when = _parse_date_time(_text(extra))
        if not self._exists(name):
            raise No("[TRYCREATE] Mailbox doesn't exist.")
        assert self.maildir is not None
        maildir = self.maildir

        def append() -> tuple[int, int]:
            folder = Folder(self._folder_path(name))
            file_name = maildir.deliver(message, name)
            if when is not None:
                path = self._folder_path(name) / "new" / file_name
                os.utime(path, (when, when))
            with folder.locked():
                for stored in folder.refresh():
                    if base_name(stored.path.name) == file_name:
                        if flags:
                            folder.set_flags(stored, flags)
                        return folder.uidvalidity, stored.uid
            raise No("the message vanished as it was appended")

        validity, new_uid = await asyncio.get_running_loop().run_in_executor(None, append)
        return f"[APPENDUID {validity} {new_uid}] Append completed."

    # -- selected -----------------------------------------------------------------------

    def _numbers(self, text: Any, uid: bool) -> list[int]:
        """Indexes into the view of a sequence set (of UIDs with UID)."""
        from netplay.mail._imap import SearchError, sequence_set

        if not isinstance(text, str):
            raise Bad("a sequence set is expected")
        try:
            if uid:
                largest = self.view[-1].uid if self.view else 0
                wanted = sequence_set(text, max(largest, 1))
                return [i for i, m in enumerate(self.view) if m.uid in wanted]
            wanted = sequence_set(text, max(len(self.view), 1))
        except SearchError as exc:
            raise Bad(str(exc)) from None
        if not uid and any(n > len(self.view) for n in wanted):
            raise Bad("No such message.")
        return sorted(n - 1 for n in wanted)

    async def notify(self, expunges: bool) -> None:
        """Tell the client what other sessions changed in the selected folder."""
        from netplay.protocols.imap import untagged

        assert self.folder is not None
        now = await asyncio.get_running_loop().run_in_executor(None, self.folder.sync)
        current = {m.uid: m for m in now}
        out = []
        if expunges:
            for i in range(len(self.view) - 1, -1, -1):
                if self.view[i].uid not in current:
                    out.append(untagged(f"{i + 1} EXPUNGE"))
                    del self.view[i]
        for i, known in enumerate(self.view):
            fresh = current.get(known.uid)
            if fresh is not None and fresh.flags != known.flags:
                self.view[i] = fresh
                out.append(untagged(f"{i + 1} FETCH (FLAGS ({' '.join(sorted(fresh.flags))}))"))
        last = self.view[-1].uid if self.view else 0
        new = [m for m in now if m.uid > last]
        if new:
            self.view.extend(new)
            out.append(untagged(f"{len(self.view)} EXISTS"))
        await self.write(b"".join(out))

    async def cmd_CHECK(self, tag: str, args: list[Any], uid: bool) -> str:
        return "Check completed."

    async def _expunge(self, only: set[int] | None, report: bool) -> None:
        from netplay.protocols.imap import untagged

        assert self.folder is not None
        if self.readonly:
            raise No("[READ-ONLY] Mailbox is read-only.")
        await self.notify(expunges=True)
        doomed = [
            (i, m) for i, m in enumerate(self.view)
            if "\\Deleted" in m.flags and (only is None or m.uid in only)
        ]  # fmt: skip
        folder = self.folder
        await asyncio.get_running_loop().run_in_executor(
            None, folder.expunge, [m for _i, m in doomed]
        )
        out = []
        for i, _message in reversed(doomed):
            del self.view[i]
            out.append(untagged(f"{i + 1} EXPUNGE"))
        if report:
            await self.write(b"".join(out))

    async def cmd_EXPUNGE(self, tag: str, args: list[Any], uid: bool) -> str:
        only = None
        if uid:
            only = {self.view[i].uid for i in self._numbers(args[0], uid=True)}
        await self._expunge(only, report=True)
        return "Expunge completed."

    async def cmd_CLOSE(self, tag: str, args: list[Any], uid: bool) -> str:
        if not self.readonly:
            await self._expunge(None, report=False)
        self.folder, self.view = None, []
        return "Close completed."

    async def cmd_UNSELECT(self, tag: str, args: list[Any], uid: bool) -> str:
        self.folder, self.view = None, []
        return "Unselect completed."

    async def cmd_SEARCH(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.mail._imap import Candidate, Search, SearchError
        from netplay.protocols.imap import untagged

        largest_uid = self.view[-1].uid if self.view else 0
        try:
            search = Search(args, len(self.view), largest_uid)
        except SearchError as exc:
            if str(exc).startswith("[BADCHARSET"):
                raise No(str(exc)) from None
            raise Bad(str(exc)) from None

        def run() -> list[int]:
            found = []
            for i, message in enumerate(self.view):
                try:
                    info = message.path.stat()
                except FileNotFoundError:
                    continue
                candidate = Candidate(
                    number=i + 1,
                    uid=message.uid,
                    flags=message.flags,
                    internaldate=dt.datetime.fromtimestamp(info.st_mtime, dt.UTC),
                    size=info.st_size,
                    read=message.path.read_bytes,
                )
                try:
                    if search.matches(candidate):
                        found.append(message.uid if uid else i + 1)
                except FileNotFoundError:
                    continue
            return found

        found = await asyncio.get_running_loop().run_in_executor(None, run)
        await self.write(untagged(" ".join(["SEARCH", *map(str, found)])))
        return "Search completed."

    async def cmd_FETCH(self, tag: str, args: list[Any], uid: bool) -> str:
        indexes = self._numbers(args[0], uid)
        items = args[1] if isinstance(args[1], list) else [args[1]]
        names: list[str] = []
        for item in items:
            word = _text(item, "a fetch item")
            names.extend(_FETCH_MACROS.get(word.upper(), [word]))
        if uid and not any(n.upper() == "UID" for n in names):
            names.insert(0, "UID")
        loop = asyncio.get_running_loop()
        for i in indexes:
            response = await loop.run_in_executor(None, self._fetch_one, i, names)
            await self.write(response)
        return "Fetch completed."

    def _fetch_one(self, i: int, names: list[str]) -> bytes:
        from netplay.mail._imap import SearchError, bodystructure, envelope, section, split
        from netplay.protocols.imap import literal

        message = self.view[i]
        try:
            data = message.path.read_bytes()
            info = message.path.stat()
        except FileNotFoundError:  # expunged by another session: RFC 3501 allows NO or nothing
            assert self.folder is not None
            found = self.folder.locate(message.path.name.partition(":")[0])
            if found is None:
                return b""
            message = self.view[i] = type(message)(message.uid, found, message.flags)
            data, info = found.read_bytes(), found.stat()
        parts: list[bytes] = []
        seen = False
        for name in names:
            upper = name.upper()
            if upper == "UID":
                parts.append(b"UID %d" % message.uid)
            elif upper == "FLAGS":
                continue  # written last, once \Seen may have been set
            elif upper == "INTERNALDATE":
                parts.append(f'INTERNALDATE "{_imap_date(info.st_mtime)}"'.encode())
            elif upper == "RFC822.SIZE":
                parts.append(b"RFC822.SIZE %d" % len(data))
            elif upper == "ENVELOPE":
                parts.append(b"ENVELOPE " + envelope(split(data)))
            elif upper == "BODYSTRUCTURE":
                parts.append(b"BODYSTRUCTURE " + bodystructure(split(data)))
            elif upper == "BODY":
                parts.append(b"BODY " + bodystructure(split(data), extensible=False))
            elif upper == "RFC822":
                parts.append(b"RFC822 " + literal(data))
                seen = True
            elif upper == "RFC822.HEADER":
                parts.append(b"RFC822.HEADER " + literal(split(data).header))
            elif upper == "RFC822.TEXT":
                parts.append(b"RFC822.TEXT " + literal(split(data).body))
                seen = True
            else:
                body = _BODY_ITEM.match(name)
                if body is None:
                    raise Bad(f"unknown fetch item {name}")
                peek, spec, start, count = body.groups()
                try:
                    content = section(data, spec)
                except SearchError as exc:
                    raise Bad(str(exc)) from None
                label = f"BODY[{spec.upper()}]"
                if start is not None:
                    content = content[int(start) : int(start) + int(count)]
                    label += f"<{start}>"
                parts.append(label.encode() + b" " + literal(content))
                seen = seen or not peek
        flags = message.flags
        if seen and "\\Seen" not in flags and not self.readonly:
            assert self.folder is not None
            with contextlib.suppress(FileNotFoundError):
                message = self.view[i] = self.folder.set_flags(message, flags | {"\\Seen"})
                flags = message.flags
        if any(n.upper() == "FLAGS" for n in names) or seen:
            parts.append(f"FLAGS ({' '.join(sorted(flags))})".encode())
        return b"* %d FETCH (" % (i + 1) + b" ".join(parts) + b")\r\n"

    async def cmd_STORE(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.protocols.imap import untagged

        if self.readonly:
            raise No("[READ-ONLY] Mailbox is read-only.")
        indexes = self._numbers(args[0], uid)
        how = _text(args[1]).upper()
        mode, _dot, silent = how.partition(".")
        if mode not in ("FLAGS", "+FLAGS", "-FLAGS") or silent not in ("", "SILENT"):
            raise Bad(f"{how} is not FLAGS, +FLAGS or -FLAGS[.SILENT]")
        given = args[2] if isinstance(args[2], list) else args[2:]
        flags = {f for f in (_text(f) for f in given) if f in SYSTEM_FLAGS}
        assert self.folder is not None
        folder = self.folder
        out = []
        for i in indexes:
            message = self.view[i]
            wanted = {
                "FLAGS": flags,
                "+FLAGS": message.flags | flags,
                "-FLAGS": message.flags - flags,
            }[mode]
            try:
                message = self.view[i] = await asyncio.get_running_loop().run_in_executor(
                    None, folder.set_flags, message, wanted
                )
            except FileNotFoundError:
                continue  # expunged by another session
            if not silent:
                uid_part = f" UID {message.uid}" if uid else ""
                flag_text = " ".join(sorted(message.flags))
                out.append(untagged(f"{i + 1} FETCH (FLAGS ({flag_text}){uid_part})"))
        await self.write(b"".join(out))
        return "Store completed."

    async def _copy(self, args: list[Any], uid: bool) -> tuple[str, list[int]]:
        from netplay.mail import Folder, base_name

        indexes = self._numbers(args[0], uid)
        name = _mailbox_name(args[1])
        if not self._exists(name):
            raise No("[TRYCREATE] Mailbox doesn't exist.")
        assert self.maildir is not None
        maildir = self.maildir
        sources = [self.view[i] for i in indexes]

        def copy() -> str:
            target = Folder(self._folder_path(name))
            made = []
            for message in sources:
                try:
                    data = message.path.read_bytes()
                except FileNotFoundError:
                    continue
                made.append((message, maildir.deliver(data, name)))
            with target.locked():
                by_name = {base_name(m.path.name): m for m in target.refresh()}
                pairs = []
                for message, file_name in made:
                    stored = by_name[file_name]
                    if message.flags:
                        target.set_flags(stored, message.flags)
                    pairs.append((message.uid, stored.uid))
            if not pairs:
                return ""
            old = ",".join(str(a) for a, _b in pairs)
            new = ",".join(str(b) for _a, b in pairs)
            return f"[COPYUID {target.uidvalidity} {old} {new}] "

        code = await asyncio.get_running_loop().run_in_executor(None, copy)
        return code, indexes

    async def cmd_COPY(self, tag: str, args: list[Any], uid: bool) -> str:
        code, _indexes = await self._copy(args, uid)
        return f"{code}Copy completed."

    async def cmd_MOVE(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.protocols.imap import untagged

        if self.readonly:
            raise No("[READ-ONLY] Mailbox is read-only.")
        code, indexes = await self._copy(args, uid)
        if code:
            await self.write(untagged(f"OK {code.strip()}"))
        assert self.folder is not None
        moved = [self.view[i] for i in indexes]
        await asyncio.get_running_loop().run_in_executor(None, self.folder.expunge, moved)
        out = []
        for i in sorted(indexes, reverse=True):
            del self.view[i]
            out.append(untagged(f"{i + 1} EXPUNGE"))
        await self.write(b"".join(out))
        return "Move completed."

    async def cmd_IDLE(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.protocols.imap import Done, continuation

        await self.write(continuation("idling"))
        self.conn.expect_done()
        started = time.monotonic()
        reading = asyncio.ensure_future(self.next())
        try:
            while True:
                if self.folder is not None:
                    await self.notify(expunges=True)
                done, _pending = await asyncio.wait({reading}, timeout=IDLE_POLL_S)
                if done:
                    break
                if time.monotonic() - started > self.idle:
                    raise TimeoutError
        finally:
            reading.cancel()
        event = reading.result()
        if isinstance(event, Done):
            return "IDLE terminated."
        if event is None:
            self.done = True
            return "IDLE ended."
        raise Bad("expected DONE")


def _parse_date_time(text: str) -> float:
    try:
        return dt.datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp()
    except ValueError:
        raise Bad(f"{text!r} is not a date-time") from None


async def serve(ctx: Context, settings: Mapping[str, Any]) -> None:
    """Listen on every port until the process is ended."""
    from netplay.accounts import Accounts
    from netplay.mail import MailStore

    accounts = Accounts.ensure(ctx.data, ctx.topology.users)
    store = MailStore.open(ctx.data, ctx.topology, ctx.host)
    tls = ctx.server_tls()
    connections = Connections(settings["max_connections"], MAX_PER_CLIENT)

    def handler(implicit: bool) -> Callable[..., Any]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.add(writer)
            session = Session(
                reader,
                writer,
                implicit=implicit,
                store=store,
                accounts=accounts,
                connections=connections,
                settings=settings,
                tls=tls,
            )
            try:
                await session.run()
            except (TimeoutError, ConnectionError, OSError):
                pass  # idle, gone, or a TLS handshake that failed
            finally:
                connections.discard(writer)
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()

        return handle

    servers = []
    for port in settings["ports"]:
        implicit = port in settings["tls"]
        servers.append(
            await asyncio.start_server(
                handler(implicit), None, port, backlog=1024, ssl=tls if implicit else None
            )
        )
    print(f"imap: listening on port {' '.join(map(str, settings['ports']))}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


class ImapEngine(Engine):
    default_ports = PORTS
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "tls": list,
        "idle_timeout": (int, float),
        "max_connections": int,
        "max_literal": int,
    }
    minimums: ClassVar[Mapping[str, float]] = {
        "idle_timeout": 0.1,
        "max_connections": 1,
        "max_literal": 1024,
    }
    maximums: ClassVar[Mapping[str, float]] = {
        "idle_timeout": 86_400,
        "max_connections": 65_536,
        "max_literal": 1 << 30,
    }

    def _tls(self, ctx: Context) -> tuple[int, ...]:
        ports = self.ports(ctx)
        return tuple(ctx.option("tls", [p for p in IMPLICIT_TLS if p in ports]))

    def check(self, ctx: Context, where: str) -> None:
        super().check(ctx, where)
        for i, port in enumerate(self._tls(ctx)):
            if port not in self.ports(ctx) or isinstance(port, bool):
                raise TopologyError(
                    f"{port!r} is not one of the service's ports", field=f"{where}.tls[{i}]"
                )

    def start(self, ctx: Context) -> Start:
        from netplay.protocols.imap import MAX_LITERAL

        settings = {
            "ports": self.ports(ctx),
            "tls": self._tls(ctx),
            "idle_timeout": float(ctx.option("idle_timeout", IDLE_TIMEOUT_S)),
            "max_connections": int(ctx.option("max_connections", MAX_CONNECTIONS)),
            "max_literal": int(ctx.option("max_literal", MAX_LITERAL)),
        }

        def run() -> None:
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True
            )
            asyncio.run(serve(ctx, settings))

        return run

    def health(self, ctx: Context, timeout: float) -> None:
        """On each port: the greeting, TLS (STARTTLS or implicit) with the certificate
        verified, and CAPABILITY offering IMAP4rev1 and a login."""
        import imaplib

        tls = self._tls(ctx)
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

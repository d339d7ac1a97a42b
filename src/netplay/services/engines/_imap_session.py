"""An IMAP session: its states, the commands of any state, logging in, and mailboxes.

The commands of the selected state are :class:`~._imap_selected.SelectedCommands`,
which this class completes; :mod:`.imap` serves it.  One method per command
(``cmd_LIST``), which returns the text of the tagged OK or raises :class:`No`
or :class:`Bad`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netplay.services._connections import Connections
from netplay.services.engines._imap_selected import SelectedCommands
from netplay.services.engines._imap_words import (
    CAPABILITIES,
    CHUNK,
    ERROR_SLEEP_S,
    SEPARATOR,
    Bad,
    No,
    flags_lines,
    mailbox_name,
    parse_flags,
    text_of,
)

if TYPE_CHECKING:
    from netplay.accounts import Accounts
    from netplay.mail import Folder, Maildir, MailStore, Stored

log = logging.getLogger("netplay.imap")


class Session(SelectedCommands):
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
        self.announced: tuple[str, ...] = ()  # the keywords the client was told of
        self.done = False

    def close(self) -> None:
        """Nothing to let go of: IMAP holds no lock on a mailbox."""

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
        from netplay.mail import TooManyKeywords
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
        except TooManyKeywords as exc:  # a STORE, APPEND, COPY or MOVE: nothing was done
            status, text = "NO", f"[LIMIT] Too many keywords: {exc}."
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
        return await self._login(text_of(args[0]), text_of(args[1]))

    async def cmd_AUTHENTICATE(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.protocols.imap import Line, continuation

        if not args or text_of(args[0]).upper() != "PLAIN" or len(args) > 2:
            raise No("[CANNOT] Unsupported authentication mechanism (PLAIN only).")
        self._plaintext_refused()
        if len(args) == 2:
            response = text_of(args[1]).encode()
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
        name = mailbox_name(args[0])
        if not self._exists(name):
            raise No("[NONEXISTENT] Mailbox doesn't exist.")
        # a read-write session takes what is in new/ as its \Recent: EXAMINE must not
        folder = Folder(self._folder_path(name), claim_recent=not readonly)
        view = await asyncio.get_running_loop().run_in_executor(None, folder.sync)
        unseen = next((i + 1 for i, m in enumerate(view) if "\\Seen" not in m.flags), None)
        keywords = tuple(sorted(set(folder.keywords.values())))
        lines = [
            *flags_lines(keywords, readonly, folder.full()),
            f"{len(view)} EXISTS",
            f"{sum(m.uid in folder.recent for m in view)} RECENT",
            f"OK [UIDVALIDITY {folder.uidvalidity}] UIDs valid",
            f"OK [UIDNEXT {folder.next_uid}] Predicted next UID",
        ]
        if unseen is not None:
            lines.append(f"OK [UNSEEN {unseen}] First unseen.")
        await self.write(b"".join(untagged(line) for line in lines))
        self.folder, self.folder_name, self.view, self.readonly = folder, name, list(view), readonly
        self.announced = keywords
        return f"[{'READ-ONLY' if readonly else 'READ-WRITE'}] Select completed."

    async def cmd_SELECT(self, tag: str, args: list[Any], uid: bool) -> str:
        return await self._select(args, readonly=False)

    async def cmd_EXAMINE(self, tag: str, args: list[Any], uid: bool) -> str:
        return await self._select(args, readonly=True)

    async def cmd_CREATE(self, tag: str, args: list[Any], uid: bool) -> str:
        name = mailbox_name(args[0])
        if name == "INBOX" or self._exists(name):
            raise No("[ALREADYEXISTS] Mailbox already exists.")
        assert self.maildir is not None
        await asyncio.get_running_loop().run_in_executor(None, self.maildir.make, name)
        return "Create completed."

    async def cmd_DELETE(self, tag: str, args: list[Any], uid: bool) -> str:
        name = mailbox_name(args[0])
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
        old, new = mailbox_name(args[0]), mailbox_name(args[1])
        if not self._exists(old):
            raise No("[NONEXISTENT] Mailbox doesn't exist.")
        if new == "INBOX" or self._exists(new):
            raise No("[ALREADYEXISTS] Mailbox already exists.")
        assert self.maildir is not None
        if old == "INBOX":  # RFC 3501 6.3.5: its messages move, INBOX and its folders stay
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(None, self.maildir.rename_inbox, new)
            except FileExistsError:  # made by another session meanwhile
                raise No("[ALREADYEXISTS] Mailbox already exists.") from None
            return "Rename completed."
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
        name = mailbox_name(args[0])
        if not self._exists(name):
            raise No("[NONEXISTENT] Mailbox doesn't exist.")
        self._subscriptions(add=frozenset({name}))
        return "Subscribe completed."

    async def cmd_UNSUBSCRIBE(self, tag: str, args: list[Any], uid: bool) -> str:
        self._subscriptions(remove=frozenset({text_of(args[0])}))
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

        reference, pattern = text_of(args[0]), text_of(args[1])
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

        name = mailbox_name(args[0])
        if not self._exists(name) or not isinstance(args[1], list):
            raise No("[NONEXISTENT] Mailbox doesn't exist.")
        folder = Folder(self._folder_path(name))
        messages = await asyncio.get_running_loop().run_in_executor(None, folder.sync)
        values = {
            "MESSAGES": len(messages),
            "RECENT": len(folder.recent),  # what is in new/: no session has taken it yet
            "UIDNEXT": folder.next_uid,
            "UIDVALIDITY": folder.uidvalidity,
            "UNSEEN": sum("\\Seen" not in m.flags for m in messages),
        }
        items = []
        for item in args[1]:
            key = text_of(item).upper()
            if key not in values:
                raise Bad(f"unknown status item {key}")
            items.append(f"{key} {values[key]}")
        await self.write(untagged(b"STATUS " + astring(name) + f" ({' '.join(items)})".encode()))
        return "Status completed."

    async def cmd_APPEND(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.mail import Folder, base_name

        name = mailbox_name(args[0])
        message = args[-1]
        if not isinstance(message, bytes):
            raise Bad("APPEND takes the message as a literal")
        flags: frozenset[str] = frozenset()
        keywords: frozenset[str] = frozenset()
        when: float | None = None
        for extra in args[1:-1]:
            if isinstance(extra, list):
                flags, keywords = parse_flags(extra)
            else:
                when = _parse_date_time(text_of(extra))
        if not self._exists(name):
            raise No("[TRYCREATE] Mailbox doesn't exist.")
        assert self.maildir is not None
        maildir = self.maildir

        def append() -> tuple[int, int]:
            folder = Folder(self._folder_path(name))
            letters = folder.letters(flags, keywords)  # new keywords named first
            base = maildir.deliver(message, name, letters=letters, when=when)
            with folder.locked():
                for stored in folder.refresh():
                    if base_name(stored.path.name) == base:
                        return folder.uidvalidity, stored.uid
            raise No("the message vanished as it was appended")

        validity, new_uid = await asyncio.get_running_loop().run_in_executor(None, append)
        return f"[APPENDUID {validity} {new_uid}] Append completed."


def _parse_date_time(text: str) -> float:
    try:
        return dt.datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp()
    except ValueError:
        raise Bad(f"{text!r} is not a date-time") from None

"""The commands of IMAP's selected state, and what other sessions changed (RFC 3501 5.2, 7.4.1).

:class:`SelectedCommands` is completed by :class:`~._imap_session.Session`,
which holds the connection and the selected folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netplay.services.engines._imap_words import (
    IDLE_POLL_S,
    Bad,
    No,
    flag_list,
    flags_lines,
    mailbox_name,
    parse_flags,
    text_of,
)

if TYPE_CHECKING:
    from netplay.mail import Folder, Maildir, Stored

_FETCH_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}
_BODY_ITEM = re.compile(r"^BODY(\.PEEK)?\[([^\]]*)\](?:<(\d+)\.(\d+)>)?$", re.IGNORECASE)
FETCH_BATCH = 32  # messages a FETCH reads in one go, before it writes them
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


class _Gone(Exception):
    """The message was expunged by another session."""


def imap_date(when: float) -> str:
    stamp = dt.datetime.fromtimestamp(when, dt.UTC)
    return f"{stamp.day:02d}-{_MONTHS[stamp.month - 1]}-{stamp.year} {stamp:%H:%M:%S} +0000"


class SelectedCommands:
    """FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE, CLOSE, UNSELECT, CHECK and IDLE."""

    view: list[Stored]  # the selected folder as this client knows it
    folder: Folder | None
    readonly: bool
    announced: tuple[str, ...]  # the keywords the client was told of (FLAGS)
    maildir: Maildir | None
    conn: Any
    idle: float

    async def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def next(self) -> Any:
        raise NotImplementedError

    def _folder_path(self, name: str) -> Path:
        raise NotImplementedError

    def _exists(self, name: str) -> bool:
        raise NotImplementedError

    def _numbers(self, text: Any, uid: bool) -> list[int]:
        """Indexes into the view of a sequence set (of UIDs with UID)."""
        from netplay.mail.imap import SearchError, sequence_set

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

    def _recent(self, message: Stored) -> bool:
        return self.folder is not None and message.uid in self.folder.recent

    def _flags(self, message: Stored) -> str:
        return flag_list(message, self._recent(message))

    def _keywords_news(self) -> bytes:
        """FLAGS and PERMANENTFLAGS again if the folder's keywords are no longer those
        the client was told of (RFC 3501 7.2.6), before a FETCH shows a new one."""
        from netplay.protocols.imap import untagged

        assert self.folder is not None
        names = tuple(sorted(set(self.folder.keywords.values())))
        if names == self.announced:
            return b""
        self.announced = names
        lines = flags_lines(names, self.readonly, self.folder.full())
        return b"".join(untagged(line) for line in lines)

    async def notify(self, expunges: bool) -> None:
        """Tell the client what other sessions changed in the selected folder."""
        from netplay.protocols.imap import untagged

        assert self.folder is not None
        if not self.folder.changed():
            return
        now = await asyncio.get_running_loop().run_in_executor(None, self.folder.sync)
        current = {m.uid: m for m in now}
        out = [self._keywords_news()]
        if expunges:
            for i in range(len(self.view) - 1, -1, -1):
                if self.view[i].uid not in current:
                    out.append(untagged(f"{i + 1} EXPUNGE"))
                    del self.view[i]
        for i, known in enumerate(self.view):
            fresh = current.get(known.uid)
            if fresh is None or fresh == known:
                continue
            self.view[i] = fresh  # its file at least has moved: read it where it is now
            if (fresh.flags, fresh.keywords) != (known.flags, known.keywords):
                out.append(untagged(f"{i + 1} FETCH (FLAGS {self._flags(fresh)})"))
        last = self.view[-1].uid if self.view else 0
        new = [m for m in now if m.uid > last]
        if new:
            self.view.extend(new)
            recent = sum(self._recent(m) for m in self.view)
            out.append(untagged(f"{len(self.view)} EXISTS") + untagged(f"{recent} RECENT"))
        await self.write(b"".join(out))

    def _stat(self, message: Stored) -> tuple[Path, os.stat_result] | None:
        """The message's file now and its stat: where the view has it, or where another
        session's rename (flags, or out of new/) took it; None if it is gone."""
        from netplay.mail import base_name

        assert self.folder is not None
        path: Path | None = message.path
        for _attempt in range(2):
            if path is None:
                break
            try:
                return path, path.stat()
            except FileNotFoundError:
                path = self.folder.locate(base_name(message.path.name))
        return None

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
        from netplay.mail import base_name
        from netplay.mail.imap import Candidate, Search, SearchError
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
                located = self._stat(message)
                if located is None:
                    continue
                path, info = located
                candidate = Candidate(
                    number=i + 1,
                    uid=message.uid,
                    key=base_name(message.path.name),
                    flags=message.flags,
                    internaldate=dt.datetime.fromtimestamp(info.st_mtime, dt.UTC),
                    size=info.st_size,
                    read=path.read_bytes,
                    keywords=message.keywords,
                    recent=self._recent(message),
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
            word = text_of(item, "a fetch item")
            names.extend(_FETCH_MACROS.get(word.upper(), [word]))
        if uid and not any(n.upper() == "UID" for n in names):
            names.insert(0, "UID")
        loop = asyncio.get_running_loop()
        batch = []  # several messages to a thread and to a write: a hop each was the cost
        for i in indexes:
            batch.append(i)
            if len(batch) == FETCH_BATCH or i == indexes[-1]:
                answers = await loop.run_in_executor(None, self._fetch_many, batch, names)
                await self.write(answers)
                batch = []
        return "Fetch completed."

    def _fetch_many(self, indexes: list[int], names: list[str]) -> bytes:
        answers = []
        for i in indexes:
            try:
                answers.append(self._fetch_one(i, names))
            except _Gone:
                continue  # expunged by another session: RFC 3501 allows saying nothing
        return b"".join(answers)

    def _fetch_one(self, i: int, names: list[str]) -> bytes:
        from netplay.mail import base_name
        from netplay.mail.imap import (
            SearchError,
            bodystructure,
            envelope,
            remember,
            section,
            split,
        )
        from netplay.protocols.imap import literal

        message = self.view[i]
        key = base_name(message.path.name)  # a stored message's bytes never change
        found: list[tuple[bytes, os.stat_result]] = []

        def file() -> tuple[bytes, os.stat_result]:
            """Its bytes and stat, read once, and only for what the kept header and
            structure cannot answer; Gone if another session expunged it."""
            if not found:
                assert self.folder is not None
                path: Path | None = self.view[i].path
                for _attempt in range(2):  # renamed by another session (flags): look again
                    try:
                        with open(path, "rb") as opened:  # type: ignore[arg-type]
                            found.append((opened.read(), os.fstat(opened.fileno())))
                        break
                    except (FileNotFoundError, TypeError):
                        path = self.folder.locate(key)
                if not found:
                    raise _Gone
            return found[0]

        def data() -> bytes:
            return file()[0]

        def header() -> bytes:
            return remember(key, "header", lambda: split(data()).header)

        def structure(extensible: bool) -> bytes:
            return bodystructure(split(data()), extensible)

        parts: list[bytes] = []
        seen = False
        for name in names:
            upper = name.upper()
            if upper == "UID":
                parts.append(b"UID %d" % message.uid)
            elif upper == "FLAGS":
                continue  # written last, once \Seen may have been set
            elif upper == "INTERNALDATE":
                parts.append(f'INTERNALDATE "{imap_date(file()[1].st_mtime)}"'.encode())
            elif upper == "RFC822.SIZE":
                parts.append(b"RFC822.SIZE %d" % file()[1].st_size)
            elif upper == "ENVELOPE":
                made = remember(key, "envelope", lambda: envelope(split(header())))
                parts.append(b"ENVELOPE " + made)
            elif upper in ("BODYSTRUCTURE", "BODY"):
                wide = upper == "BODYSTRUCTURE"
                made = remember(key, upper, functools.partial(structure, wide))
                parts.append(upper.encode() + b" " + made)
            elif upper == "RFC822":
                parts.append(b"RFC822 " + literal(data()))
                seen = True
            elif upper == "RFC822.HEADER":
                parts.append(b"RFC822.HEADER " + literal(header()))
            elif upper == "RFC822.TEXT":
                parts.append(b"RFC822.TEXT " + literal(split(data()).body))
                seen = True
            else:
                body = _BODY_ITEM.match(name)
                if body is None:
                    raise Bad(f"unknown fetch item {name}")
                peek, spec, start, count = body.groups()
                source = header() if spec.upper().startswith("HEADER") else data()
                try:
                    content = section(source, spec)
                except SearchError as exc:
                    raise Bad(str(exc)) from None
                label = f"BODY[{spec.upper()}]"
                if start is not None:
                    content = content[int(start) : int(start) + int(count)]
                    label += f"<{start}>"
                parts.append(label.encode() + b" " + literal(content))
                seen = seen or not peek
        if seen and "\\Seen" not in message.flags and not self.readonly:
            assert self.folder is not None
            with contextlib.suppress(FileNotFoundError):
                message = self.view[i] = self.folder.set_flags(message, message.flags | {"\\Seen"})
        if any(n.upper() == "FLAGS" for n in names) or seen:
            parts.append(f"FLAGS {self._flags(message)}".encode())
        return b"* %d FETCH (" % (i + 1) + b" ".join(parts) + b")\r\n"

    async def cmd_STORE(self, tag: str, args: list[Any], uid: bool) -> str:
        from netplay.protocols.imap import untagged

        if self.readonly:
            raise No("[READ-ONLY] Mailbox is read-only.")
        indexes = self._numbers(args[0], uid)
        how = text_of(args[1]).upper()
        mode, _dot, silent = how.partition(".")
        if mode not in ("FLAGS", "+FLAGS", "-FLAGS") or silent not in ("", "SILENT"):
            raise Bad(f"{how} is not FLAGS, +FLAGS or -FLAGS[.SILENT]")
        given = args[2] if isinstance(args[2], list) else args[2:]
        flags, keywords = parse_flags(given)
        assert self.folder is not None
        folder = self.folder
        loop = asyncio.get_running_loop()
        if mode != "-FLAGS":  # new keywords named before any message has them, or none
            await loop.run_in_executor(None, folder.letters, (), keywords)
        out = []
        for i in indexes:
            message = self.view[i]
            wanted = {
                "FLAGS": flags,
                "+FLAGS": message.flags | flags,
                "-FLAGS": message.flags - flags,
            }[mode]
            # keywords are told apart without regard to case, as the folder names them
            given_names = {k.lower() for k in keywords}
            kept = {k for k in message.keywords if k.lower() not in given_names}
            wanted_keywords = {"FLAGS": keywords, "+FLAGS": kept | keywords, "-FLAGS": kept}[mode]
            try:
                message = self.view[i] = await loop.run_in_executor(
                    None, folder.set_flags, message, wanted, wanted_keywords
                )
            except FileNotFoundError:
                continue  # expunged by another session
            if not silent:
                uid_part = f" UID {message.uid}" if uid else ""
                out.append(untagged(f"{i + 1} FETCH (FLAGS {self._flags(message)}{uid_part})"))
        await self.write(self._keywords_news() + b"".join(out))
        return "Store completed."

    async def _copy(self, args: list[Any], uid: bool) -> tuple[str, list[int]]:
        from netplay.mail import Folder, base_name

        indexes = self._numbers(args[0], uid)
        name = mailbox_name(args[1])
        if not self._exists(name):
            raise No("[TRYCREATE] Mailbox doesn't exist.")
        assert self.maildir is not None
        maildir = self.maildir
        sources = [self.view[i] for i in indexes]

        def copy() -> str:
            target = Folder(self._folder_path(name))
            # the target has letters of its own: keywords are carried by name, and
            # those new to it are named before anything is copied (or none is)
            letters = {m.uid: target.letters(m.flags, m.keywords) for m in sources}
            made = []
            for message in sources:
                found = self._stat(message)
                try:
                    data = found[0].read_bytes() if found else None
                except FileNotFoundError:
                    data = None
                if found is None or data is None:
                    continue  # expunged by another session
                when = found[1].st_mtime
                base = maildir.deliver(data, name, letters=letters[message.uid], when=when)
                made.append((message, base))
            with target.locked():
                by_name = {base_name(m.path.name): m for m in target.refresh()}
                pairs = [(message.uid, by_name[base].uid) for message, base in made]
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

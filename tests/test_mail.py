"""The mail store (no sockets): durable Maildir delivery, the store of each user,
the sample mailbox, and which domains a host receives mail for."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from netplay.mail import (
    Failure,
    Folder,
    Maildir,
    MailStore,
    Queue,
    bounce,
    mail_domains,
    sample_messages,
)
from netplay.topology import User, load, loads

ALICE = User(name="alice", mailboxes=("Sent", "Archive"))


def test_delivery_lands_whole_in_new_and_leaves_nothing_in_tmp(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "alice")
    assert box.make() and not box.make()  # made once
    message = b"Subject: hi\r\n\r\nhello\r\n"
    name = box.deliver(message)
    assert name.endswith(f",S={len(message)}")
    assert (tmp_path / "alice" / "new" / name).read_bytes() == message
    assert list((tmp_path / "alice" / "tmp").iterdir()) == []
    second = box.deliver(message)
    assert second != name  # unique names, even in one second from one process
    assert [p.name for p in box.messages()] == sorted([name, second])


def test_a_delivery_that_fails_half_way_shows_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Maildir(tmp_path / "alice")
    box.make()
    written: list[int] = []
    real_write = os.write

    def disk_full(fd: int, data: bytes | memoryview) -> int:
        if written:
            raise OSError(28, "No space left on device")
        written.append(real_write(fd, bytes(data[:10])))  # half a message, then the disk fills
        return written[0]

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        box.deliver(b"Subject: cut\r\n\r\n" + b"x" * 1000)
    monkeypatch.undo()
    assert list(box.messages()) == []
    assert list((tmp_path / "alice" / "tmp").iterdir()) == []


def test_folders_are_maildir_plus_plus(tmp_path: Path) -> None:
    store = MailStore(tmp_path)
    store.ensure([ALICE], {})
    root = tmp_path / "mail" / "alice"
    assert {p.name for p in root.iterdir()} == {"cur", "new", "tmp", ".Sent", ".Archive"}
    assert (root / ".Sent" / "maildirfolder").exists()
    assert store.of("alice").folders() == ["INBOX", "Archive", "Sent"]
    store.of("alice").deliver(b"Subject: x\r\n\r\nx\r\n", "Sent")
    assert len(list(store.of("alice").messages("Sent"))) == 1
    assert list(store.of("alice").messages("inbox")) == []


def test_a_new_store_gets_its_samples_once(tmp_path: Path) -> None:
    samples = {"alice": [b"Subject: one\r\n\r\n1\r\n", b"Subject: two\r\n\r\n2\r\n"]}
    store = MailStore(tmp_path)
    store.ensure([ALICE, User(name="bob")], samples)
    store.ensure([ALICE, User(name="bob")], samples)  # the next up: kept, not added again
    assert [p.read_bytes() for p in store.of("alice").messages()] == samples["alice"]
    assert list(store.of("bob").messages()) == []


def _ensure(directory: str) -> int:
    store = MailStore(Path(directory))
    store.ensure([ALICE], {"alice": [b"Subject: s\r\n\r\ns\r\n"]})
    return len(list(store.of("alice").messages()))


def test_services_starting_at_once_give_the_samples_once(tmp_path: Path) -> None:
    with ProcessPoolExecutor(4) as pool:
        counts = list(pool.map(_ensure, [str(tmp_path)] * 4))
    assert counts == [1, 1, 1, 1]


def test_the_sample_mailbox() -> None:
    raw = sample_messages("brandon", "example.com")
    assert raw == sample_messages("brandon", "example.com")  # the same bytes every time
    for message in raw:
        assert b"\n" not in message.replace(b"\r\n", b"")  # CRLF line ends only
    parsed = [email.message_from_bytes(m, policy=email.policy.default) for m in raw]
    assert [m.get_content_type() for m in parsed] == [
        "text/plain",
        "multipart/alternative",
        "multipart/mixed",
        "text/plain",
    ]
    assert all(m["To"].addresses[0].addr_spec == "brandon@example.com" for m in parsed)
    attachment = next(parsed[2].iter_attachments())
    assert attachment.get_filename() == "gradient.png"
    assert attachment.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    international = parsed[3]
    assert b"=?utf-8?" in raw[3].split(b"\r\n\r\n")[0]  # RFC 2047 on the wire
    assert international["Subject"] == "Grüße aus Zürich — 東京からこんにちは"
    assert international["From"].addresses[0].display_name == "Jürgen Müller"
    assert "東京" in international.get_content()


def test_the_book_mail_host_receives_for_its_domains() -> None:
    book = load("book")
    assert mail_domains(book, "mail") == {
        "example.com",  # @ MX 10 mail
        "www.example.com",  # www MX 10 smtp, smtp CNAME mail
        "mail.example.com",  # no MX of its own: its address
        "smtp.example.com",
    }
    assert "www.example.com" not in mail_domains(book, "www")  # its MX sends it to mail


def test_mail_domains_of_a_playground_without_dns() -> None:
    topo = loads('domain = "t.test"\n[hosts.a]\n[lans.l.hosts]\na = ["10.0.0.1/24"]\n')
    assert mail_domains(topo, "a") == {"a.t.test"}


def test_the_queue_keeps_envelopes_and_forgets_orphans(tmp_path: Path) -> None:
    queue = Queue(tmp_path)
    assert queue.pending() == []
    first = queue.add(b"Subject: 1\r\n\r\n1\r\n", "ann@a.test", ("bob@b.test", "cy@b.test"))
    second = queue.add(b"Subject: 2\r\n\r\n2\r\n", "", ("ann@a.test",))  # a bounce
    assert [item.id for item in queue.pending()] == [first.id, second.id]
    assert queue.message(first) == b"Subject: 1\r\n\r\n1\r\n"
    later = dataclasses.replace(first, recipients=("cy@b.test",), attempts=1, last_error="x")
    queue.update(later)
    assert queue.pending()[0] == later
    (tmp_path / "queue" / "ORPHAN.eml").write_bytes(b"a crash before its envelope")
    (tmp_path / "queue" / "BROKEN.json").write_text("{not json")
    assert [item.id for item in queue.pending()] == [first.id, second.id]
    assert not (tmp_path / "queue" / "ORPHAN.eml").exists()
    queue.remove(later)
    queue.remove(second)
    assert queue.pending() == []
    assert {p.name for p in (tmp_path / "queue").iterdir()} == {"BROKEN.json"}


def test_a_bounce_is_a_delivery_status_notification() -> None:
    original = b"From: ann@a.test\r\nSubject: hello\r\n\r\nthe body stays private\r\n"
    report = bounce(original, "ann@a.test", {"bob@b.test": Failure("550 no", True)}, "mx1.a.test")
    assert b"\n" not in report.replace(b"\r\n", b"")
    parsed = email.message_from_bytes(report, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "delivery-status"
    text, status, headers = parsed.iter_parts()
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "<bob@b.test>: 550 no" in text.get_content()
    assert status.get_content_type() == "message/delivery-status"
    assert "Final-Recipient: rfc822; bob@b.test" in status.as_string()
    assert b"Subject: hello" in report and b"the body stays private" not in report


def _box(tmp_path: Path, count: int) -> Maildir:
    box = Maildir(tmp_path / "ann")
    box.make()
    for i in range(count):
        box.deliver(f"Subject: {i}\r\n\r\n{i}\r\n".encode())
    return box


def test_uids_are_given_in_delivery_order_and_kept(tmp_path: Path) -> None:
    box = _box(tmp_path, 3)
    first = box.index().sync()
    assert [m.uid for m in first] == [1, 2, 3]
    assert [m.path.read_bytes().split(b"\r\n")[0] for m in first] == [
        b"Subject: 0",
        b"Subject: 1",
        b"Subject: 2",
    ]
    again = box.index()  # another session, another process: the same UIDs
    assert [(m.uid, m.path) for m in again.sync()] == [(m.uid, m.path) for m in first]
    later = Folder(box.root)
    later.sync()
    assert again.uidvalidity == later.uidvalidity > 0
    header = (box.root / "dovecot-uidlist").read_text().splitlines()[0]
    assert header.startswith("3 V") and header.endswith(" N4")  # Dovecot's version 3


def test_uids_follow_deliveries_across_a_microsecond_digit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New files get UIDs in the order of their names: 0.099999 s, then 0.100000 s."""
    box = Maildir(tmp_path / "alice")
    box.make()
    for now, subject in ((1764633600.099999, b"first"), (1764633600.100001, b"second")):
        monkeypatch.setattr("time.time", lambda now=now: now)
        box.deliver(b"Subject: " + subject + b"\r\n\r\n")
    synced = box.index().sync()
    assert [m.path.read_bytes().split(b"\r\n")[0] for m in synced] == [
        b"Subject: first",
        b"Subject: second",
    ]


def test_uids_only_grow(tmp_path: Path) -> None:
    box = _box(tmp_path, 3)
    folder = box.index()
    messages = folder.sync()
    folder.expunge([messages[2]])  # the last one: its UID is not given again
    box.deliver(b"Subject: new\r\n\r\nnew\r\n")
    assert [m.uid for m in box.index().sync()] == [1, 2, 4]


def test_flags_live_in_the_file_name(tmp_path: Path) -> None:
    box = _box(tmp_path, 2)
    folder = box.index()
    first, second = folder.sync()
    assert first.flags == frozenset() and first.path.parent.name == "new"
    seen = folder.set_flags(first, {"\\Seen", "\\Flagged", "$Keyword"})
    assert seen.path.parent.name == "cur" and seen.path.name.endswith(":2,FS")
    assert box.index().sync()[0].flags == {"\\Seen", "\\Flagged"}
    # another session renames it first: ours still finds it by its base name
    other = Folder(box.root)
    other.set_flags(other.sync()[0], {"\\Answered"})
    deleted = folder.set_flags(seen, {"\\Deleted"})
    assert deleted.path.name.endswith(":2,T") and deleted.path.exists()
    other.expunge([other.sync()[0]])  # stale in `other`: found and removed all the same
    assert [m.uid for m in box.index().sync()] == [second.uid]
    with pytest.raises(FileNotFoundError):
        folder.set_flags(deleted, {"\\Seen"})


def test_a_damaged_list_starts_again_with_a_new_uidvalidity(tmp_path: Path) -> None:
    box = _box(tmp_path, 2)
    folder = box.index()
    folder.sync()
    before = folder.uidvalidity
    (box.root / "dovecot-uidlist").write_text("garbage\n")
    again = box.index()
    assert [m.uid for m in again.sync()] == [1, 2]
    assert again.uidvalidity > before  # clients must forget what they cached


def _deliver_and_sync(directory: str) -> list[int]:
    box = Maildir(Path(directory))
    for i in range(20):
        box.deliver(f"Subject: {os.getpid()} {i}\r\n\r\nx\r\n".encode())
        box.index().sync()
    return [m.uid for m in box.index().sync()]


def test_sessions_at_once_never_give_one_uid_twice(tmp_path: Path) -> None:
    _box(tmp_path, 0)
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(_deliver_and_sync, [str(tmp_path / "ann")] * 4))
    folder = Maildir(tmp_path / "ann").index()
    messages = folder.sync()
    assert [m.uid for m in messages] == list(range(1, 81))
    assert len({m.path for m in messages}) == 80

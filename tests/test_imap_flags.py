"""Keywords, \\Recent and RENAME INBOX (RFC 3501 2.3.2, 6.3.5) in the builtin IMAP server,
kept as Dovecot keeps them in a Maildir.

First the store without sockets: keywords are the letters a-z of a file name,
named in the folder's ``dovecot-keywords`` (read and written by Dovecot's own
imap too, when it is installed), and a message is \\Recent for the session
whose sync moves it out of ``new/``.  Then the real server in the book
playground (RENAME INBOX in a fresh one: it empties brandon's INBOX), from
h1, with IMAPClient and imaplib.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from _mail import IMAP_LOGIN
from _net import run_json
from netplay import Playground
from netplay.mail import Folder, Maildir, TooManyKeywords, read_keywords

# -- the store ---------------------------------------------------------------------------


def _box(root: Path, count: int) -> Maildir:
    box = Maildir(root)
    box.make()
    for i in range(count):
        box.deliver(f"Subject: {i}\r\n\r\n{i}\r\n".encode())
    return box


def _letters(path: Path) -> str:
    return path.name.partition(":2,")[2]


def test_keywords_are_letters_that_dovecot_keywords_names(tmp_path: Path) -> None:
    box = _box(tmp_path / "ann", 2)
    folder = box.index()
    first, second = folder.sync()
    first = folder.set_flags(first, {"\\Seen"}, {"Work", "$Forwarded"})
    assert _letters(first.path) == "Sab" and first.keywords == {"$Forwarded", "Work"}
    keywords = box.root / "dovecot-keywords"
    assert keywords.read_text() == "0 $Forwarded\n1 Work\n"  # Dovecot's lines: N name
    written = int(keywords.stat().st_mtime)
    # a keyword is one whatever its case: the folder's spelling is kept
    second = folder.set_flags(second, set(), {"work", "Later"})
    assert _letters(second.path) == "bc" and second.keywords == {"Work", "Later"}
    assert keywords.read_text() == "0 $Forwarded\n1 Work\n2 Later\n"
    assert int(keywords.stat().st_mtime) > written  # Dovecot rereads it only then
    again = Folder(box.root).sync()  # another session
    assert [m.keywords for m in again] == [{"$Forwarded", "Work"}, {"Work", "Later"}]
    kept = folder.set_flags(first, {"\\Seen", "\\Flagged"})  # its keywords, unsaid, stay
    assert _letters(kept.path) == "FSab"
    cleared = folder.set_flags(kept, {"\\Seen"}, set())
    assert _letters(cleared.path) == "S" and cleared.keywords == frozenset()
    assert keywords.read_text() == "0 $Forwarded\n1 Work\n2 Later\n"  # letters are for good


def test_letters_nobody_named_are_kept_and_given_to_no_keyword(tmp_path: Path) -> None:
    box = _box(tmp_path / "ann", 1)
    (old,) = box.root.joinpath("new").iterdir()
    odd = box.root / "cur" / f"{old.name}:2,PSqz"  # P: not IMAP's; q, z: no line names them
    old.rename(odd)
    (box.root / "dovecot-keywords").write_text(
        "damaged\n99 TooFar\n3 no(atom\nx y\n\n1 Fine\n2 Ünïcode\n"
    )
    folder = box.index()
    (message,) = folder.sync()
    assert message.flags == {"\\Seen"} and message.keywords == frozenset()
    assert folder.keywords == {"b": "Fine"}
    changed = folder.set_flags(message, {"\\Flagged"}, {"Fine", "New"})
    assert _letters(changed.path) == "FPabqz"  # New has a, the first letter in no file name
    assert changed.keywords == {"Fine", "New"}
    assert (box.root / "dovecot-keywords").read_text() == "0 New\n1 Fine\n"


def test_a_folder_has_26_letters_for_keywords(tmp_path: Path) -> None:
    box = _box(tmp_path / "ann", 1)
    folder = box.index()
    (message,) = folder.sync()
    names = [f"k{i}" for i in range(26)]
    message = folder.set_flags(message, set(), names)
    assert _letters(message.path) == "abcdefghijklmnopqrstuvwxyz" and folder.full()
    before = (box.root / "dovecot-keywords").read_text()
    with pytest.raises(TooManyKeywords, match="26"):
        folder.set_flags(message, set(), [*names, "one-more"])
    assert (box.root / "dovecot-keywords").read_text() == before
    assert folder.set_flags(message, set(), ["K3"]).keywords == {"k3"}


def _name_keywords(directory: str, who: int) -> dict[str, str]:
    folder = Folder(Path(directory))
    folder.sync()
    return {f"p{who}-{i}": folder.letters((), [f"p{who}-{i}"]) for i in range(6)}


def test_sessions_at_once_never_give_one_letter_twice(tmp_path: Path) -> None:
    box = _box(tmp_path / "ann", 1)
    with ProcessPoolExecutor(4) as pool:
        given = list(pool.map(_name_keywords, [str(box.root)] * 4, range(4)))
    letters = {name: letter for each in given for name, letter in each.items()}
    assert len(set(letters.values())) == 24
    assert read_keywords(box.root) == {letter: name for name, letter in letters.items()}


def test_the_session_that_moves_a_message_out_of_new_has_it_as_recent(tmp_path: Path) -> None:
    box = _box(tmp_path / "ann", 2)
    examining = box.index()  # EXAMINE: takes nothing
    examining.sync()
    assert examining.recent == {1, 2} and len(os.listdir(box.root / "new")) == 2
    first = Folder(box.root, claim_recent=True)
    assert [m.path.parent.name for m in first.sync()] == ["cur", "cur"]
    assert first.recent == {1, 2}
    assert all(name.endswith(":2,") for name in os.listdir(box.root / "cur"))  # as Dovecot
    second = Folder(box.root, claim_recent=True)
    second.sync()
    assert second.recent == set()
    box.deliver(b"Subject: late\r\n\r\nx\r\n")
    second.sync()
    first.sync()
    assert (first.recent, second.recent) == ({1, 2}, {3})
    examining.sync()
    assert examining.recent == {1, 2}


def test_rename_inbox_moves_its_messages_and_keywords(tmp_path: Path) -> None:
    box = _box(tmp_path / "ann", 3)
    box.make("INBOX.Sub")
    box.deliver(b"Subject: stays\r\n\r\nx\r\n", "INBOX.Sub")
    inbox = box.index()
    messages = inbox.sync()
    inbox.set_flags(messages[0], {"\\Flagged"}, {"Important"})
    box.rename_inbox("Old")
    assert box.index().sync() == []
    moved = box.index("Old").sync()
    assert [m.keywords for m in moved] == [{"Important"}, set(), set()]
    assert [m.path.parent.name for m in moved] == ["cur", "new", "new"]  # still \Recent
    assert len(box.index("INBOX.Sub").sync()) == 1
    with pytest.raises(FileExistsError):
        box.rename_inbox("INBOX.Sub")


# -- with Dovecot's own imap on the same store -------------------------------------------

DOVECOT_IMAP = Path("/usr/lib/dovecot/imap")
DOVECOT_USER = "mail"  # Debian's: Dovecot opens no mailbox as root
DOVECOT_CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = /dev/stderr
first_valid_uid = 1
ssl = no
mail_location = maildir:{store}
"""


@pytest.fixture
def dovecot_dir() -> Iterator[Path]:
    """A directory Dovecot's user may enter (pytest's tmp_path is for its creator only)."""
    if not DOVECOT_IMAP.exists():
        pytest.skip(f"{DOVECOT_IMAP} is missing (apt-get install dovecot-imapd)")
    path = Path(tempfile.mkdtemp(prefix="netplay-flags-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _dovecot(directory: Path, store: Path, commands: list[str]) -> list[str]:
    """Dovecot's imap, logged in already (PREAUTH), on the Maildir ``store``: its lines."""
    conf = directory / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(dir=directory, store=store))
    conf.chmod(0o644)
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        user = pwd.getpwnam(DOVECOT_USER)
        for path in [store, *store.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    done = subprocess.run(
        [str(DOVECOT_IMAP), "-c", str(conf)],
        input="".join(f"{c}\r\n" for c in [*commands, "z LOGOUT"]).encode(),
        env={"USER": "ann", "HOME": str(store), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        timeout=30,
        check=False,
        **as_user,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().splitlines()


def test_dovecot_and_netplay_read_each_others_keywords(dovecot_dir: Path) -> None:
    store = dovecot_dir / "ann"
    box = _box(store, 2)
    folder = box.index()
    first, _second = folder.sync()
    folder.set_flags(first, {"\\Seen"}, {"$Forwarded", "Work"})
    said = _dovecot(
        dovecot_dir,
        store,
        ["a SELECT INBOX", "b UID FETCH 1:* (FLAGS)", "c UID STORE 2 +FLAGS.SILENT (Later Work)"],
    )
    assert "* 1 FETCH (UID 1 FLAGS (\\Seen $Forwarded Work))" in said, said
    assert any(line.startswith("c OK") for line in said), said
    again = box.index().sync()
    assert [m.keywords for m in again] == [{"$Forwarded", "Work"}, {"Later", "Work"}]
    assert (store / "dovecot-keywords").read_text() == "0 $Forwarded\n1 Work\n2 Later\n"


# -- the server, from h1 -----------------------------------------------------------------


def python(pg: Playground, source: str, *args: str) -> Any:
    return run_json(pg.host("h1"), source, *args)


def _store(pg: Playground) -> Path:
    """brandon's Maildir on mail.example.com, as the server keeps it."""
    return pg.paths.service_data / "mail" / "mail" / "brandon"


KEYWORDS = r"""
import json, ssl, sys
from imapclient import IMAPClient
marker = sys.argv[1]
box, other = f"Kw-{marker}", f"Kw2-{marker}"
text = lambda flags: sorted(f.decode() for f in flags)
out = {}
with IMAPClient("mail.example.com", ssl=True, ssl_context=ssl.create_default_context()) as c:
    c.login("brandon", "abc123")
    c.create_folder(box)
    c.create_folder(other)
    c.append(other, b"Subject: there first\r\n\r\nx\r\n", flags=[b"Elsewhere", b"Zed"])
    c.append(box, f"Subject: kw {marker}\r\n\r\nx\r\n".encode(), flags=[b"\\Seen", b"$Forwarded"])
    c.append(box, b"Subject: plain\r\n\r\nx\r\n")
    info = c.select_folder(box)
    out["flags"], out["permanent"] = text(info[b"FLAGS"]), text(info[b"PERMANENTFLAGS"])
    first, second = c.search(["ALL"])
    c.add_flags([first], [b"Work", b"$label1"])
    c.remove_flags([first], [b"$forwarded"])
    c.add_flags([second], [b"work"])
    flags = c.get_flags([first, second])
    out["first"], out["second"] = text(flags[first]), text(flags[second])
    out["keyword"] = c.search(["KEYWORD", "WORK"])
    out["unkeyword"] = c.search(["UNKEYWORD", "$label1"])
    out["uids"] = [first, second]
    c.copy([first], other)
    c.move([second], other)
    c.select_folder(other)
    copies = c.search(["KEYWORD", "Work"])
    out["copies"] = [text(f) for _uid, f in sorted(c.get_flags(copies).items())]
    out["elsewhere"] = c.search(["KEYWORD", "Elsewhere"])
print(json.dumps(out))
"""


def test_keywords_are_stored_searched_and_carried_by_name(book: Playground) -> None:
    marker = uuid.uuid4().hex
    out = python(book, KEYWORDS, marker)
    assert {"\\Seen", "$Forwarded"} <= set(out["flags"])
    assert {"\\Seen", "$Forwarded", "\\*"} <= set(out["permanent"])
    assert out["first"] == ["$label1", "Work", "\\Recent", "\\Seen"]
    assert out["second"] == ["Work", "\\Recent"]  # the folder's spelling
    first, second = out["uids"]
    assert out["keyword"] == [first, second] and out["unkeyword"] == [second]
    assert out["copies"] == [["$label1", "Work", "\\Recent", "\\Seen"], ["Work", "\\Recent"]]
    assert out["elsewhere"] == [1]
    # on disk, as Dovecot keeps them: each folder names its own letters
    box, other = _store(book) / f".Kw-{marker}", _store(book) / f".Kw2-{marker}"
    assert (box / "dovecot-keywords").read_text() == "0 $Forwarded\n1 $label1\n2 Work\n"
    assert (other / "dovecot-keywords").read_text() == "0 Elsewhere\n1 Zed\n2 $label1\n3 Work\n"
    letters = sorted(_letters(p) for p in (other / "cur").iterdir())
    assert letters == ["Scd", "ab", "d"]


LIMITS = (
    IMAP_LOGIN
    + r"""
marker = sys.argv[1]
box = f"Full-{marker}"
def said(m, key):
    return [x.decode() for x in m.untagged_responses.pop(key, [])]
def answer(call):
    try:
        typ, data = call()
    except imaplib.IMAP4.error as exc:
        return ["BAD", str(exc)]
    return [typ, data[-1].decode() if data and data[-1] else ""]
def store(m, flags):
    return answer(lambda: m.store("1", "+FLAGS.SILENT", flags))
a, b = session(), session()
a.create(box)
a.append(box, None, None, b"Subject: full\r\n\r\nx\r\n")
a.select(box)
b.select(box)
said(b, "FLAGS")  # SELECT's
out = {}
out["store25"] = store(a, "(" + " ".join(f"k{i}" for i in range(25)) + ")")
b.noop()
out["b_flags"], out["b_fetch"] = said(b, "FLAGS"), said(b, "FETCH")
out["store26"] = store(a, "(k25)")
out["store27"] = store(a, "(k26)")
out["append27"] = answer(lambda: a.append(box, "(k26)", None, b"Subject: x\r\n\r\nx\r\n"))
out["old_one"] = store(a, "(K3)")
out["refused"] = [store(a, flags)[0] for flags in (
    "(\\Bogus)", "(\\Recent)", '("two words")', "(100%)", "(" + "x" * 51 + ")")]
a.select(box)
out["permanent"] = said(a, "PERMANENTFLAGS")
typ, data = a.fetch("1", "(FLAGS)")
out["flags"] = data[0].decode()
print(json.dumps(out))
"""
)


def test_a_folder_holds_26_keywords_and_refuses_a_27th(book: Playground) -> None:
    out = python(book, LIMITS, uuid.uuid4().hex)
    assert out["store25"][0] == "OK"
    assert out["b_flags"] and "k24" in out["b_flags"][0]  # told of the new keywords first
    assert out["b_fetch"] and "k0" in out["b_fetch"][0] and "\\Recent" not in out["b_fetch"][0]
    assert out["store26"][0] == "OK"
    for refused in ("store27", "append27"):
        assert out[refused][0] == "NO" and "[LIMIT]" in out[refused][1], out[refused]
        assert "26" in out[refused][1]
    assert out["old_one"][0] == "OK"
    # as Dovecot answers: no flag, or \Recent, is BAD; a keyword it cannot keep is NO
    assert out["refused"] == ["BAD", "BAD", "BAD", "NO", "NO"]
    assert out["permanent"] and "\\*" not in out["permanent"][0] and "k25" in out["permanent"][0]
    words = out["flags"].replace("(", " ").replace(")", " ").split()
    assert {w for w in words if w.startswith("k")} == {f"k{i}" for i in range(26)}


ODD = r"""
import imaplib, json, ssl, sys
box = sys.argv[1]
m = imaplib.IMAP4_SSL("mail.example.com", ssl_context=ssl.create_default_context())
m.login("brandon", "abc123")
out = {"select": m.select(box)[0], "flags": m.untagged_responses.pop("FLAGS", [b""])[-1].decode()}
out["fetch"] = m.fetch("1:*", "(FLAGS)")[1][0].decode()
out["store"] = m.store("1", "+FLAGS", "(New \\Flagged)")[1][0].decode()
out["search"] = m.search(None, "KEYWORD", "Fine")[1][0].decode()
m.logout()
print(json.dumps(out))
"""


def test_letters_and_lines_nobody_can_read_do_not_harm_a_session(book: Playground) -> None:
    name = f"Odd-{uuid.uuid4().hex}"
    box = Maildir(_store(book))
    box.make(name)
    folder = box.folder(name)
    base = box.deliver(b"Subject: odd\r\n\r\nx\r\n", name)
    (folder / "new" / base).rename(folder / "cur" / f"{base}:2,PSbqz~\u00e9,XY")
    (folder / "dovecot-keywords").write_text("damaged\n99 TooFar\n3 no(atom\n1 Fine\n2 \u00dcber\n")
    out = python(book, ODD, name)
    assert out["select"] == "OK" and "Fine" in out["flags"] and "ber" not in out["flags"]
    assert out["fetch"] == "1 (FLAGS (\\Seen Fine))"
    assert out["store"] == "1 (FLAGS (\\Flagged \\Seen Fine New))"
    assert out["search"] == "1"
    (path,) = (folder / "cur").iterdir()
    assert path.name == f"{base}:2,FPSabqz~\u00e9,XY"  # New has a, no file name's letter


RECENT = (
    IMAP_LOGIN
    + r"""
marker = sys.argv[1]
box = f"Recent-{marker}"
def recent(m):
    return [x.decode() for x in m.untagged_responses.pop("RECENT", [])]
def flags(m, number):
    return m.fetch(number, "(FLAGS)")[1][0].decode()
def search(m, key):
    return m.search(None, key)[1][0].decode().split()
def status(m):
    return m.status(box, "(MESSAGES RECENT)")[1][0].decode()
out = {}
a, b, e, s = session(), session(), session(), session()
s.create(box)
s.append(box, None, None, b"Subject: one\r\n\r\nx\r\n")
out["status_new"] = status(s)
e.select(box, readonly=True)
out["examine"] = [recent(e), flags(e, "1"), search(e, "RECENT")]
out["status_after_examine"] = status(s)
a.select(box)
out["a"] = [recent(a), flags(a, "1"), search(a, "NEW"), search(a, "OLD")]
b.select(box)
out["b"] = [recent(b), flags(b, "1"), search(b, "RECENT"), search(b, "OLD")]
out["status_after_select"] = status(s)
s.append(box, None, None, b"Subject: two\r\n\r\nx\r\n")
b.noop()  # b looks first: the second message is b's
out["b_noop"] = [recent(b), flags(b, "2")]
a.noop()
out["a_noop"] = [recent(a), flags(a, "2"), flags(a, "1"), search(a, "RECENT")]
e.noop()
out["e_noop"] = search(e, "RECENT")
print(json.dumps(out))
"""
)


def test_a_message_is_recent_in_the_first_session_that_selects_its_folder(
    book: Playground,
) -> None:
    out = python(book, RECENT, uuid.uuid4().hex)
    assert "RECENT 1" in out["status_new"]
    recent, flags, found = out["examine"]
    assert recent == ["1"] and "\\Recent" in flags and found == ["1"]
    assert "RECENT 1" in out["status_after_examine"]  # EXAMINE took nothing
    recent, flags, new, old = out["a"]
    assert recent == ["1"] and "\\Recent" in flags and new == ["1"] and old == []
    recent, flags, found, old = out["b"]
    assert recent == ["0"] and "\\Recent" not in flags and found == [] and old == ["1"]
    assert "RECENT 0" in out["status_after_select"]
    recent, flags = out["b_noop"]
    assert recent == ["1"] and "\\Recent" in flags
    recent, second, first, found = out["a_noop"]
    assert recent in ([], ["1"])  # told again with EXISTS, or (Dovecot) not, as unchanged
    assert "\\Recent" not in second and "\\Recent" in first
    assert found == ["1"]
    assert out["e_noop"] == ["1"]


RENAME = (
    IMAP_LOGIN
    + r"""
def subjects(m):
    typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return sorted(part[1].decode().strip() for part in data if isinstance(part, tuple))
out = {}
m, n = session(), session()
count = int(m.select("INBOX")[1][0])
m.store("1", "+FLAGS", "(\\Flagged Important)")
out["subjects"] = subjects(m)
m.create("INBOX.Kept")
m.append("INBOX.Kept", None, None, b"Subject: stays\r\n\r\nx\r\n")
out["rename"] = n.rename("INBOX", "Old")[0]
m.noop()
out["expunged"] = len(m.untagged_responses.get("EXPUNGE", []))
out["inbox"] = int(n.select("INBOX")[1][0])
out["old"] = int(n.select("Old")[1][0]) == count
out["old_subjects"] = subjects(n)
out["old_first"] = n.fetch("1", "(FLAGS)")[1][0].decode()
out["kept"] = n.status("INBOX.Kept", "(MESSAGES)")[1][0].decode()
out["back"] = n.rename("Old", "INBOX")[0]
out["onto"] = n.rename("INBOX", "Sent")[0]
with smtplib.SMTP("mail.example.com", 25) as smtp:
    smtp.sendmail("x@h1.example.com", ["brandon@example.com"], b"Subject: after\r\n\r\nx\r\n")
out["inbox_after"] = int(n.select("INBOX")[1][0])
print(json.dumps(out))
"""
)


def test_rename_inbox_moves_its_messages_and_leaves_it_empty(playground: Playground) -> None:
    out = python(playground, RENAME)
    assert out["rename"] == "OK" and out["old"] and out["inbox"] == 0
    assert out["expunged"] > 0 and out["old_subjects"] == out["subjects"]
    assert "\\Flagged" in out["old_first"] and "Important" in out["old_first"]
    assert "MESSAGES 1" in out["kept"]  # INBOX's folders stay where they are
    assert out["back"] == "NO" and out["onto"] == "NO"
    assert out["inbox_after"] == 1  # INBOX goes on taking mail
    root = _store(playground)
    assert (root / ".Old" / "dovecot-keywords").read_text() == "0 Important\n"

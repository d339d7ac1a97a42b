"""Accounts: salted scrypt hashes kept in a host's data directory, checked in constant time."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from netplay.accounts import ACCOUNTS_FILE, Accounts, hash_password, verify
from netplay.topology import User

ALICE = User(name="alice", password="correct horse")
BOB = User(name="bob", password="hunter2")
KEYS_ONLY = User(name="carol", keys=("ssh-ed25519 AAAA carol",))


def test_a_hash_is_salted_and_verifies_only_its_password() -> None:
    first, second = hash_password("abc123"), hash_password("abc123")
    assert first != second and first.startswith("$scrypt$ln=14,r=8,p=1$")
    assert "abc123" not in first
    assert verify(first, "abc123") and verify(second, "abc123")
    assert not verify(first, "abc124") and not verify(first, "")


def test_hashes_that_cannot_be_read_or_cost_too_much_verify_nothing() -> None:
    good = hash_password("x")
    for broken in (
        "",
        "x",
        "$md5$abc$def",
        good.replace("$scrypt$", "$bcrypt$"),
        good.replace("ln=14", "ln=40"),  # a file that asks for terabytes of memory
        good.replace("r=8", "r=x"),
        good[:-3] + "!!!",
    ):
        assert not verify(broken, "x"), broken


def test_ensure_writes_hashes_never_passwords_and_keeps_them(tmp_path: Path) -> None:
    accounts = Accounts.ensure(tmp_path, [ALICE, BOB, KEYS_ONLY])
    path = tmp_path / ACCOUNTS_FILE
    text = path.read_text()
    assert "correct horse" not in text and "hunter2" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(json.loads(text)) == {"alice", "bob"}  # carol logs in with keys only
    assert accounts.check("alice", "correct horse") and accounts.check("bob", "hunter2")
    assert not accounts.check("alice", "hunter2")
    assert not accounts.check("carol", "") and not accounts.check("nobody", "hunter2")
    assert "alice" in accounts and "carol" not in accounts

    mtime = path.stat().st_mtime_ns
    again = Accounts.ensure(tmp_path, [ALICE, BOB])
    assert path.read_text() == text and path.stat().st_mtime_ns == mtime  # unchanged
    assert again.check("bob", "hunter2")

    changed = Accounts.ensure(tmp_path, [User(name="alice", password="new"), BOB])
    assert changed.check("alice", "new") and not changed.check("alice", "correct horse")
    assert json.loads(path.read_text())["bob"] == json.loads(text)["bob"]


def test_a_damaged_file_is_rewritten(tmp_path: Path) -> None:
    (tmp_path / ACCOUNTS_FILE).write_text("{not json")
    assert Accounts.ensure(tmp_path, [ALICE]).check("alice", "correct horse")
    (tmp_path / ACCOUNTS_FILE).write_text('["a list"]')
    assert Accounts.ensure(tmp_path, [ALICE]).check("alice", "correct horse")
    assert not list(tmp_path.glob(".*.tmp"))


def _ensure(directory: str) -> str:
    Accounts.ensure(Path(directory), [ALICE, BOB])
    return (Path(directory) / ACCOUNTS_FILE).read_text()


def test_services_starting_at_once_agree_on_one_file(tmp_path: Path) -> None:
    with ProcessPoolExecutor(4) as pool:
        seen = set(pool.map(_ensure, [str(tmp_path)] * 4))
    assert len(seen) == 1  # the first hashed; the others kept its hashes
    assert {p.name for p in tmp_path.iterdir()} == {ACCOUNTS_FILE, ".accounts.lock"}

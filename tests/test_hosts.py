"""Hosts are separate machines: none sees the playground's secrets, or another host's."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from netplay import Playground
from netplay.errors import CommandFailedError
from netplay.fabric import SERVICE_DATA


def _sees(pg: Playground, host: str, path: Path) -> bool:
    return pg.host(host).run(["test", "-e", str(path)]).returncode == 0


def test_a_host_sees_only_what_is_its_own(book: Playground) -> None:
    store = book.pki
    www_cert, www_key = store.server("www")
    _h1_cert, h1_key = store.server("h1")
    assert not _sees(book, "h1", store.dir / "ca.key")  # the CA's key: no host
    assert not _sees(book, "www", store.dir / "ca.key")
    assert not _sees(book, "h1", www_key) and not _sees(book, "h1", www_cert)
    assert _sees(book, "www", www_key) and _sees(book, "h1", h1_key)  # its own
    assert _sees(book, "h1", store.ca) and _sees(book, "h1", store.client()[0])
    assert not _sees(book, "h1", book.paths.state)  # the playground's state, pins, logs
    assert not _sees(book, "h1", book.paths.dir)
    assert not _sees(book, "h1", book.paths.net_pin("www"))


def test_what_hosts_share_is_read_only(book: Playground) -> None:
    for target in ("/etc/hosts", "/etc/resolv.conf", "/etc/ssl/certs/ca-certificates.crt"):
        wrote = book.host("h1").run(["sh", "-c", f"echo x >> {target}"])
        assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr, target


def test_a_host_s_services_keep_their_data_where_no_other_host_sees_it(
    book: Playground,
) -> None:
    data = Path(book.state.data) / SERVICE_DATA
    mine = data / "www" / "kept-by-www.txt"
    written = book.host("www").run(["sh", "-c", f"echo kept > {mine}"])
    assert written.returncode == 0, written.stderr
    try:
        assert mine.read_text() == "kept\n"  # on the machine, in the data directory
        assert not _sees(book, "mail", mine)
        assert not _sees(book, "mail", data / "www")
    finally:
        mine.unlink()


def test_no_server_holds_a_way_out_of_its_host(book: Playground) -> None:
    # a directory descriptor of the runtime directory would undo the covers (openat)
    servers = [s.pid for s in book.services() if s.pid is not None]
    assert servers
    for pid in servers:
        fds = Path(f"/proc/{pid}/fd")
        for fd in fds.iterdir():
            with contextlib.suppress(FileNotFoundError):
                target = fd.resolve()
                assert not (target.is_dir() and target.is_relative_to(book.paths.base)), (
                    pid,
                    target,
                )


def test_a_host_cannot_reach_the_machine_s_unix_sockets(
    tmp_path: Path, playground_factory: Callable[..., Playground]
) -> None:
    path = tmp_path / "machine daemon.sock"  # a space: /proc/net/unix's last field
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen()
        pg = playground_factory("line:2", services=False)
        connect = f"import socket; socket.socket(socket.AF_UNIX).connect({str(path)!r})"
        refused = pg.host("h1").run(["python3", "-c", connect])
        assert refused.returncode != 0 and "ConnectionRefusedError" in refused.stderr
        with socket.socket(socket.AF_UNIX) as client:  # the machine's own still can
            client.connect(str(path))


def test_remove_files_takes_what_a_killed_up_was_writing(tmp_path: Path) -> None:
    """An up killed while it wrote a CA bundle leaves its temporary file: down takes it."""
    from netplay.fabric import Paths
    from netplay.hosts import remove_files

    paths = Paths(name="t", root=True, base=tmp_path / "run", data_base=tmp_path / "data")
    paths.etc_dir.mkdir(parents=True)
    (paths.etc_dir / "trust0.pem").write_text("ca")
    (paths.etc_dir / ".trust1.pem.tmp").write_text("half a bundle")
    mine = paths.etc_dir / "not-netplay-s"
    remove_files(paths)
    assert not paths.etc_dir.exists()
    mine.parent.mkdir(parents=True)
    mine.write_text("someone else's")
    remove_files(paths)
    assert mine.exists()  # only what netplay writes


def test_a_host_of_a_playground_that_is_down_says_so_and_runs_nothing(
    playground_factory: Callable[..., Playground],
) -> None:
    pg = playground_factory("book", services=False)
    h1 = pg.host("h1")
    pg.down()
    done = h1.run(["touch", "/tmp/ran"])
    assert done.returncode == 126
    assert (
        done.stderr
        == f"netplay: the playground {pg.name} is not running (start it with netplay up)\n"
    )
    assert not Path("/tmp/ran").exists()
    with pytest.raises(CommandFailedError, match=r"ended before .*\(it said: netplay: the play"):
        h1.spawn(["sleep", "60"])

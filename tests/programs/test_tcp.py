"""TCP: tcp_sixteen (exact reads, NAT seen by the server), tcp_deadlock and its fix, tcp_file
(a stream as a file), as pieces over socketpairs and from h1 to www.
"""

from __future__ import annotations

import io
import socket
import threading

import pytest
from _programs import client, server_in

from netplay import Playground
from netplay.programs import _net, tcp_deadlock, tcp_file, tcp_sixteen
from netplay.programs._cli import ProgramError


def test_recvall_and_early_close() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"Hi there, ")
        b.sendall(b"server")
        assert tcp_sixteen.recvall(a, 16) == b"Hi there, server"
        b.sendall(b"short")
        b.shutdown(socket.SHUT_WR)
        with pytest.raises(ProgramError, match="after 5 of 16 bytes"):
            tcp_sixteen.recvall(a, 16)
    assert _net.peer_name(("::ffff:10.25.1.65", 5, 0, 0)) == ("10.25.1.65", 5)
    assert _net.peer_name(("fd6e::11", 5, 0, 0)) == ("fd6e::11", 5)


def test_deadlock_pieces_over_a_socketpair() -> None:
    a, b = socket.socketpair()
    server = threading.Thread(target=tcp_deadlock.serve_one, args=(b,))
    server.start()
    with a:
        done = tcp_deadlock.transfer(a, 20_000_000, fix=True)
    server.join()
    b.close()
    assert done == tcp_deadlock.Transfer(20_000_000, 20_000_000, stalled=False)


def test_lines_over_a_stream_byte_by_byte() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"one")  # a line may arrive in pieces
        b.sendall(b" two\nthree\n")
        b.shutdown(socket.SHUT_WR)
        with a.makefile("rwb") as server_side:
            assert tcp_file.serve_lines(server_side) == 2
        a.shutdown(socket.SHUT_WR)
        with b.makefile("rb") as answers:
            assert answers.read() == b"2 words, 7 bytes\n1 words, 5 bytes\n"
    too_long = io.BytesIO(b"x" * (tcp_file.MAX_LINE + 10) + b"\n")
    assert tcp_file.serve_lines(too_long) == 0
    assert too_long.getvalue().endswith(b"error: line too long\n")


def test_tcp_sixteen_server_sees_the_nat_address(book: Playground) -> None:
    with server_in(book, "www", "tcp_sixteen") as said:
        v4 = client(book, "tcp_sixteen", "-4", "www")
        v6 = client(book, "tcp_sixteen", "-6", "www")
        by_name = client(book, "tcp_sixteen", "www")
    assert v4.stdout.endswith("The server said b'Farewell, client'\n"), v4.stderr
    assert v6.returncode == 0 and by_name.returncode == 0, v6.stderr + by_name.stderr
    accepted = [line for line in said if line.startswith("We have accepted")]
    assert "('10.25.1.65'," in accepted[0]  # modemA: the connection crossed NAT
    assert "('fd6e:7000:25:a::11'," in accepted[1]  # IPv6 is not translated
    assert "('10.25.1.65'," in accepted[2]  # by name: IPv4 first, as RFC 6724 orders them
    refused = client(book, "tcp_sixteen", "-4", "www", "-p", "1079")
    assert (refused.returncode, refused.stderr) == (1, "tcp_sixteen: connection refused\n")


def test_tcp_deadlock_stalls_and_the_fix_completes(book: Playground) -> None:
    with server_in(book, "www", "tcp_deadlock"):
        stuck = client(book, "tcp_deadlock", "www", "100000000")
        fixed = client(book, "tcp_deadlock", "www", "100000000", "--fix")
    assert stuck.returncode == 2 and stuck.stdout.startswith("stalled: sent "), stuck.stderr
    sent = int(stuck.stdout.split()[2])
    assert 0 < sent < 100_000_000 and "received 0" in stuck.stdout
    assert fixed.returncode == 0
    assert fixed.stdout == "sent 100000000 bytes and received all 100000000 back\n"


def test_tcp_stream_as_a_file(book: Playground) -> None:
    with server_in(book, "www", "tcp_file") as said:
        result = client(
            book, "tcp_file", "www", "--line", "hello there", "--line", "", "--line", "a b c d"
        )
    assert result.stdout == "2 words, 11 bytes\n0 words, 0 bytes\n4 words, 7 bytes\n"
    assert any("3 lines answered" in line for line in said)

"""Link faults on real links: loss, down/up, rate, and honest netem detection."""

from __future__ import annotations

import pytest

from _net import TCP_SEND, TCP_SINK, UDP_COUNT, UDP_SEND, readline, run, start, stop
from netplay import MissingKernelFeatureError, Playground

pytestmark = pytest.mark.playground


def _udp_through(pg: Playground, count: int) -> int:
    """Datagrams from modemA that reach isp across modemA's cable."""
    receiver, port = start(pg.host("isp"), UDP_COUNT, "0.0.0.0", 0, 1.0)
    run(pg.host("modemA"), UDP_SEND, "10.25.1.1", port, count)
    received = int(readline(receiver, 20))
    stop(receiver)
    return received


def test_loss_then_clear(book: Playground) -> None:
    # resolve the neighbours first, so that loss hits the datagrams, not ARP
    assert book.host("modemA").run(["ping", "-c", "1", "-W", "2", "10.25.1.1"]).returncode == 0
    book.link("modemA", "isp", loss="50%")
    try:
        assert 120 <= _udp_through(book, 400) <= 280  # 30 % to 70 % of 400
    finally:
        book.link("modemA", "isp", clear=True)
    assert _udp_through(book, 400) == 400


def test_total_loss_drops_everything(book: Playground) -> None:
    assert book.host("modemA").run(["ping", "-c", "1", "-W", "2", "10.25.1.1"]).returncode == 0
    book.link("modemA", "isp", loss="100%")
    try:
        assert _udp_through(book, 100) == 0
    finally:
        book.link("modemA", "isp", clear=True)
    assert _udp_through(book, 100) == 100


def test_down_cuts_and_up_restores(book: Playground) -> None:
    ping = ["ping", "-c", "1", "-W", "1", "www"]
    book.link("modemA", "isp", down=True)
    try:
        assert book.host("h1").run(ping).returncode != 0
        assert book.status()["faults"]["modemA/isp-lan"] == {"down": True}
    finally:
        book.link("modemA", "isp", up=True)
    assert book.host("h1").run(ping).returncode == 0
    assert book.status()["faults"] == {}


def test_rate_limits_a_bulk_transfer(book: Playground) -> None:
    rate_bits = 8_000_000
    size = 2_000_000  # two seconds at 8 Mbit/s
    book.link("backbone", "example", rate="8mbit")
    try:
        sink, port = start(book.host("www"), TCP_SINK)
        result = run(book.host("h1"), TCP_SEND, "www", port, size)
        assert result.returncode == 0, result.stderr
        total, seconds = readline(sink, 30).split()
        stop(sink)
    finally:
        book.link("backbone", "example", clear=True)
    assert int(total) == size
    measured = int(total) * 8 / float(seconds)
    assert 0.8 * rate_bits <= measured <= 1.2 * rate_bits, measured


def test_delay_without_netem_is_reported(book: Playground) -> None:
    try:
        book.link("isp", "backbone", delay="20ms")
    except MissingKernelFeatureError as exc:
        assert "netem" in str(exc)
    else:  # a kernel with netem: the delay must really be there
        result = book.host("isp").run(["ping", "-c", "1", "-W", "2", "10.1.1.1"])
        book.link("isp", "backbone", clear=True)
        assert "time=" in result.stdout
        assert float(result.stdout.split("time=")[1].split()[0]) >= 20

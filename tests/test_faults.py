"""Link faults on real links: loss, down/up, rate, and honest netem detection."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from _net import TCP_SEND, TCP_SINK, UDP_COUNT, UDP_SEND, python, run
from netplay import CableFaults, MissingKernelFeatureError, Playground, Spawned, UsageError

Spawn = Callable[..., Spawned]
LinkFault = Callable[..., CableFaults]


def _udp_through(pg: Playground, spawn: Spawn, count: int) -> int:
    """Datagrams from modemA that reach isp across modemA's cable."""
    receiver = spawn(pg.host("isp"), python(UDP_COUNT, "0.0.0.0", 0, 1.0))
    run(pg.host("modemA"), UDP_SEND, "10.25.1.1", receiver.first_line, count)
    received = int(receiver.readline(20))
    receiver.stop()
    return received


def test_loss_then_clear(book: Playground, spawn: Spawn, link_fault: LinkFault) -> None:
    # resolve the neighbours first, so that loss hits the datagrams, not ARP
    assert book.host("modemA").run(["ping", "-c", "1", "-W", "2", "10.25.1.1"]).returncode == 0
    assert link_fault(book, "modemA", "isp", loss="50%") == CableFaults(loss=50.0)
    assert 120 <= _udp_through(book, spawn, 400) <= 280  # 30 % to 70 % of 400
    assert book.link("modemA", "isp", clear=True) == CableFaults()
    assert _udp_through(book, spawn, 400) == 400


def test_total_loss_drops_everything(book: Playground, spawn: Spawn, link_fault: LinkFault) -> None:
    assert book.host("modemA").run(["ping", "-c", "1", "-W", "2", "10.25.1.1"]).returncode == 0
    link_fault(book, "modemA", "isp", loss="100%")
    assert _udp_through(book, spawn, 100) == 0
    book.link("modemA", "isp", clear=True)
    assert _udp_through(book, spawn, 100) == 100


def _udp_into_modem_a(pg: Playground, spawn: Spawn, count: int) -> int:
    """Datagrams from isp that reach modemA across modemA's cable."""
    receiver = spawn(pg.host("modemA"), python(UDP_COUNT, "0.0.0.0", 0, 1.0))
    run(pg.host("isp"), UDP_SEND, "10.25.1.65", receiver.first_line, count)
    received = int(receiver.readline(20))
    receiver.stop()
    return received


def test_loss_in_one_direction(book: Playground, spawn: Spawn, link_fault: LinkFault) -> None:
    assert book.host("modemA").run(["ping", "-c", "1", "-W", "2", "10.25.1.1"]).returncode == 0
    out = link_fault(book, "modemA", "isp", loss="100%", direction="out")
    assert out == CableFaults(loss=100.0, only_from="modemA")
    assert (_udp_through(book, spawn, 100), _udp_into_modem_a(book, spawn, 100)) == (0, 100)
    # turned: what modemA receives from its LAN, the switch's side of its cable
    back = book.link("modemA", "isp", direction="in")
    assert back == CableFaults(loss=100.0, only_from="isp-lan")
    assert book.status().faults == {"modemA/isp-lan": back}
    assert (_udp_through(book, spawn, 100), _udp_into_modem_a(book, spawn, 100)) == (100, 0)
    assert book.link("modemA", "isp", direction="both") == CableFaults(loss=100.0)
    assert (_udp_through(book, spawn, 50), _udp_into_modem_a(book, spawn, 50)) == (0, 0)


def test_a_direction_of_nothing_or_a_bad_value_changes_nothing(
    book: Playground, spawn: Spawn
) -> None:
    with pytest.raises(UsageError, match="--direction says which way"):
        book.link("modemA", "isp", direction="out")
    with pytest.raises(UsageError, match="direction 'up' is not one of"):
        book.link("modemA", "isp", loss="100%", direction="up")
    with pytest.raises(UsageError, match="is not a rate"):
        book.link("modemA", "isp", loss="100%", rate="fast")
    assert book.status().faults == {}
    assert _udp_through(book, spawn, 50) == 50  # the loss before the bad rate was not made


def test_a_link_is_one_cable_whichever_end_is_named(
    book: Playground, link_fault: LinkFault
) -> None:
    assert link_fault(book, "backbone", "isp", loss="5%", direction="out") == CableFaults(
        loss=5.0, only_from="backbone"
    )
    assert book.status().faults == {"isp/isp-backbone": CableFaults(loss=5.0, only_from="backbone")}
    assert book.link("isp", "backbone", clear=True) == CableFaults()
    assert book.status().faults == {}


def test_down_cuts_and_up_restores(book: Playground, link_fault: LinkFault) -> None:
    ping = ["ping", "-c", "1", "-W", "1", "www"]
    cut = link_fault(book, "modemA", "isp", down=True)
    assert cut == CableFaults(down=True) and cut
    assert book.host("h1").run(ping).returncode != 0
    assert book.status().faults == {"modemA/isp-lan": CableFaults(down=True)}
    restored = book.link("modemA", "isp", up=True)
    assert not restored
    assert book.host("h1").run(ping).returncode == 0
    assert book.status().faults == {}


def _bulk_rate(pg: Playground, spawn: Spawn, size: int) -> float:
    """Bits per second of ``size`` bytes sent from h1 to www, as www counts them."""
    sink = spawn(pg.host("www"), python(TCP_SINK))
    result = run(pg.host("h1"), TCP_SEND, "www", sink.first_line, size)
    assert result.returncode == 0, result.stderr
    total, seconds = sink.readline(30).split()
    assert int(total) == size
    return int(total) * 8 / float(seconds)


def test_rate_limits_a_bulk_transfer(
    playground: Playground, spawn: Spawn, link_fault: LinkFault
) -> None:
    """On a book of its own: a limit that clearing left behind would slow every later test."""
    rate_bits = 8_000_000
    size = 2_000_000  # two seconds at 8 Mbit/s
    limited = link_fault(playground, "backbone", "example", rate="8mbit")
    assert limited == CableFaults(rate="8mbit")
    measured = _bulk_rate(playground, spawn, size)
    assert 0.8 * rate_bits <= measured <= 1.2 * rate_bits, measured
    assert playground.link("backbone", "example", clear=True) == CableFaults()
    unlimited = _bulk_rate(playground, spawn, size)
    assert unlimited > 5 * rate_bits, f"still limited after clear: {unlimited:.0f} bit/s"
    # one way: h1 to www goes from backbone to example, and only that is limited
    towards = link_fault(playground, "example", "backbone", rate="8mbit", direction="in")
    assert towards == CableFaults(rate="8mbit", only_from="backbone")
    assert _bulk_rate(playground, spawn, size) <= 1.2 * rate_bits
    playground.link("example", "backbone", direction="out")  # turned: now only from example
    assert _bulk_rate(playground, spawn, size) > 5 * rate_bits


def test_delay_without_netem_is_reported(book: Playground, link_fault: LinkFault) -> None:
    try:
        delayed = link_fault(book, "isp", "backbone", delay="20ms")
    except MissingKernelFeatureError as exc:
        assert "netem" in str(exc)
    else:  # a kernel with netem: the delay must really be there
        assert delayed == CableFaults(delay="20ms")
        result = book.host("isp").run(["ping", "-c", "1", "-W", "2", "10.1.1.1"])
        assert "time=" in result.stdout
        assert float(result.stdout.split("time=")[1].split()[0]) >= 20

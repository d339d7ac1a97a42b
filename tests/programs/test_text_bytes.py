"""text_bytes: the tour of text and bytes, as pieces and in a host."""

from __future__ import annotations

import sys

from netplay import Playground
from netplay.programs import text_bytes


def test_text_and_bytes_tour() -> None:
    assert text_bytes.decode_pieces([b"Gr\xc3", b"\xbc\xc3", b"\x9fe"]) == "Grüße"
    every_cut = "€uro".encode()
    for i in range(len(every_cut) + 1):
        assert text_bytes.decode_pieces([every_cut[:i], every_cut[i:]]) == "€uro"
    encoded = dict(text_bytes.encodings("Grüße"))
    assert encoded["utf-8"] == b"Gr\xc3\xbc\xc3\x9fe" and encoded["latin-1"] == b"Gr\xfc\xdfe"
    assert encoded["ascii"] is None
    tour = "\n".join(text_bytes.tour())
    assert "24 characters, 46 bytes in UTF-8" in tour and "incremental decoder:   'Grü" in tour
    assert text_bytes.tour("plain")[-1].startswith("all ASCII")


def test_text_and_bytes_tour_in_a_host(book: Playground) -> None:
    result = book.host("h1").run([sys.executable, "-m", "netplay.programs.text_bytes"])
    assert result.returncode == 0 and "an incremental decoder:   'Grüße'" in result.stdout

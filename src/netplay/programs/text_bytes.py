"""A short tour of text and bytes: what goes over a socket is bytes, never text.

Text becomes bytes by an encoding and bytes become text by decoding, and
the two must agree.  The tour shows: lengths of text and of its bytes; the
same text in several encodings; what a wrong guess does; and the trap of a
network program: a multi-byte character split across two ``recv`` calls,
which decoding each piece on its own breaks and an incremental decoder
handles.

    netplay exec h1 -- python3 -m netplay.programs.text_bytes
"""

from __future__ import annotations

import argparse
import codecs
import sys
from collections.abc import Iterable, Sequence

from netplay.programs._cli import run

SAMPLE = "Grüße, Καλημέρα, こんにちは €"
ENCODINGS = ("utf-8", "utf-16-le", "latin-1", "cp1252", "ascii")


def encodings(text: str) -> list[tuple[str, bytes | None]]:
    """``text`` in each encoding of ENCODINGS (None where it cannot be written)."""
    found: list[tuple[str, bytes | None]] = []
    for name in ENCODINGS:
        try:
            found.append((name, text.encode(name)))
        except UnicodeEncodeError:
            found.append((name, None))
    return found


def decode_pieces(pieces: Iterable[bytes], encoding: str = "utf-8") -> str:
    """Decode bytes that arrive in pieces, however the pieces cut the characters."""
    decoder = codecs.getincrementaldecoder(encoding)()
    text = "".join(decoder.decode(piece) for piece in pieces)
    return text + decoder.decode(b"", final=True)


def tour(text: str = SAMPLE) -> list[str]:
    data = text.encode("utf-8")
    lines = [
        f"text:  {text!r}",
        f"       {len(text)} characters, {len(data)} bytes in UTF-8",
        "",
        "the same text in other encodings:",
    ]
    for name, encoded in encodings(text):
        shown = f"{len(encoded)} bytes, starting {encoded[:12]!r}" if encoded else "cannot say it"
        lines.append(f"  {name:<10} {shown}")
    wrong = data.decode("latin-1")
    lines += ["", f"UTF-8 bytes decoded as Latin-1 (a wrong guess): {wrong[:20]!r}...", ""]
    wide = next((ch for ch in text if len(ch.encode()) > 1), None)
    if wide is None:
        return [*lines, "all ASCII: one byte per character, no character to split"]
    cut = data.index(wide.encode()) + 1
    first, second = data[:cut], data[cut:]
    broken = first.decode("utf-8", errors="replace") + second.decode("utf-8", errors="replace")
    end = text.index(wide) + 4
    return [
        *lines,
        f"split across two recv() calls in the middle of {wide!r}:",
        f"  each piece decoded alone: {broken[:end]!r} (replacement characters)",
        f"  an incremental decoder:   {decode_pieces([first, second])[: end - 1]!r}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="text_bytes", description="A tour of text and bytes.")
    parser.add_argument("--text", default=SAMPLE, help="the text to take apart")
    args = parser.parse_args(argv)
    return run("text_bytes", lambda: print("\n".join(tour(args.text))))


if __name__ == "__main__":
    sys.exit(main())

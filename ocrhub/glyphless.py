"""The glyph-less font of searchable PDFs (``ocrhub.textlayer``): a TrueType font whose glyphs draw
nothing, each one advance wide, and the ToUnicode CMap that says which character each code stands for.

Its glyphs have no outline, only two points at corners of the em box: pdfium drops text whose glyph
boxes have no width (a line that runs up a page turned a quarter, a line of one character) and gives
characters of empty glyphs boxes of no height. Characters get 2-byte codes 1, 2, ... in order of first
use in the document (``codes``), each code its own glyph, all alike; one ToUnicode CMap maps each code
to its character, so that any code point (Chinese, or beyond U+FFFF as a surrogate pair) is found and
copied right with no font covering it. Built with ``struct``: the required tables only, checksums right.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from ocrhub.errors import InputError

UNITS, ADVANCE, ASCENT, DESCENT = 1000, 500, 800, -200  # the font's em, glyph advance and em box
FONT_NAME = "GlyphLessFont"


def codes(texts: Iterable[str]) -> dict[str, int]:
    """Each character's 2-byte code (its CID and glyph), 1, 2, ... in order of first use."""
    assigned: dict[str, int] = {}
    for text in texts:
        for char in text:
            assigned.setdefault(char, len(assigned) + 1)
    if len(assigned) >= 0xFFFF:
        raise InputError(f"too many different characters for one PDF font: {len(assigned)} (limit 65534); send fewer pages")
    return assigned


def to_unicode(codes: dict[str, int]) -> str:
    """The CMap from each code to its character in UTF-16BE, in blocks of at most 100."""
    pairs = [f"<{code:04X}> <{char.encode('utf-16-be').hex().upper()}>\n" for char, code in codes.items()]
    blocks = [pairs[start : start + 100] for start in range(0, len(pairs), 100)]
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n/CMapName /Adobe-Identity-UCS def\n"
        "/CMapType 2 def\n1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + "".join(f"{len(block)} beginbfchar\n{''.join(block)}endbfchar\n" for block in blocks)
        + "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    )


def truetype(glyphs: int) -> bytes:
    """A TrueType font: glyph 0 empty, the others two points apart from no outline, marking the em box
    (module docstring); each ``ADVANCE`` wide. The required tables only."""
    blank = struct.pack(">h4h2HH2B2h2h", 2, 0, DESCENT, ADVANCE, ASCENT, 0, 1, 0, 1, 1, 0, ADVANCE, DESCENT, ASCENT - DESCENT)
    names = [(1, FONT_NAME), (2, "Regular"), (3, FONT_NAME), (4, FONT_NAME), (5, "Version 1.0"), (6, FONT_NAME)]
    strings = [text.encode("utf-16-be") for _, text in names]
    starts = [sum(map(len, strings[:index])) for index in range(len(strings))]
    records = [struct.pack(">6H", 3, 1, 0x409, nid, len(s), start) for (nid, _), s, start in zip(names, strings, starts)]
    return _sfnt({
        b"OS/2": struct.pack(
            ">HhHHH8h3h10s4I4sHHHhhhHH2I2h3H", 4, ADVANCE, 400, 5, 0, *[UNITS // 2, UNITS // 2, 0, 0] * 2, 50, 250, 0, bytes(10),
            0, 0, 0, 0, b"OCRH", 0x40, 0x20, 0xFFFF, ASCENT, DESCENT, 0, ASCENT, -DESCENT, 1, 0, 500, ASCENT, 0, 0x20, 0,
        ),
        b"cmap": struct.pack(">4HI12H", 0, 1, 3, 1, 12, 4, 24, 0, 2, 2, 0, 0, 0xFFFF, 0, 0xFFFF, 1, 0),  # maps no character
        b"glyf": blank * (glyphs - 1),
        b"head": struct.pack(  # long offsets in loca
            ">4I2H2q4h2H3h", 0x10000, 0x10000, 0, 0x5F0F3CF5, 0x000B, UNITS, 0, 0, 0, DESCENT, ADVANCE, ASCENT, 0, 3, 2, 1, 0
        ),
        b"hhea": struct.pack(">I3hH6h4hhH", 0x10000, ASCENT, DESCENT, 0, ADVANCE, 0, 0, ADVANCE, 1, 0, 0, 0, 0, 0, 0, 0, 1),
        b"hmtx": struct.pack(">Hh", ADVANCE, 0) + bytes(2 * (glyphs - 1)),
        b"loca": struct.pack(f">{glyphs + 1}I", 0, *range(0, len(blank) * glyphs, len(blank))),
        b"maxp": struct.pack(">IH13H", 0x10000, glyphs, 2, 2, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0),
        b"name": struct.pack(">3H", 0, len(names), 6 + 12 * len(names)) + b"".join(records) + b"".join(strings),
        b"post": struct.pack(">IIhhI4I", 0x30000, 0, -100, 50, 1, 0, 0, 0, 0),
    })  # fmt: skip


def _sfnt(tables: dict[bytes, bytes]) -> bytes:
    """The tables (by tag, 4-byte aligned) after their directory, with checksums and head's checkSumAdjustment."""
    count, power = len(tables), 1 << (len(tables).bit_length() - 1)
    font = bytearray(struct.pack(">IHHHH", 0x10000, count, 16 * power, power.bit_length() - 1, 16 * (count - power)))
    offsets, offset = {}, 12 + 16 * count
    for tag in sorted(tables):
        font += struct.pack(">4sIII", tag, _checksum(tables[tag]), offset, len(tables[tag]))
        offsets[tag], offset = offset, offset + len(tables[tag]) + -len(tables[tag]) % 4
    for tag in sorted(tables):
        font += tables[tag] + bytes(-len(tables[tag]) % 4)
    font[offsets[b"head"] + 8 : offsets[b"head"] + 12] = struct.pack(">I", (0xB1B0AFBA - _checksum(bytes(font))) % 2**32)
    return bytes(font)


def _checksum(data: bytes) -> int:
    padded = data + bytes(-len(data) % 4)
    return sum(struct.unpack(f">{len(padded) // 4}I", padded)) % 2**32

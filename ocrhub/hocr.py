"""hOCR (https://kba.github.io/hocr-spec/1.2/): a document's pages as XHTML, the exchange format of
archives and libraries. ``POST /ocr?format=hocr`` answers it.

Each page is an ``ocr_page`` (bbox: the page in pixels at the dpi it was read at; ``ppageno``: 0-based),
each line an ``ocr_line`` whose bbox bounds its four-point ``text_region`` (the JSON answer's), and each
space-separated word of a line an ``ocrx_word``. PP-OCR reads lines, not words: a word's box is the
line's box cut along its width in proportion to characters (a space counts as one), so it is exact
for monospaced text and close for proportional text; Chinese and Japanese text without spaces is one
word per line. ``x_wconf`` is the line's confidence in percent, for the line and each of its words.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from ocrhub.documents import Line, Page

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
<head>
<title>OCR</title>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8"/>
<meta name="ocr-system" content="ocrhub (PaddleOCR models)"/>
<meta name="ocr-capabilities" content="ocr_page ocr_line ocrx_word"/>
</head>
<body>
"""


def as_hocr(pages: Iterable[Page]) -> str:
    return HEAD + "".join(_page(page) for page in pages) + "</body>\n</html>\n"


def bbox(line: Line) -> tuple[int, int, int, int]:
    """The bounds of a line's four-point region: left, top, right, bottom."""
    xs, ys = [point[0] for point in line["text_region"]], [point[1] for point in line["text_region"]]
    return min(xs), min(ys), max(xs), max(ys)


def word_boxes(line: Line) -> list[tuple[str, tuple[int, int, int, int]]]:
    """The line's space-separated words, each with its share of the line's box (module docstring)."""
    left, top, right, bottom = bbox(line)
    text = line["text"]
    scale = (right - left) / max(1, len(text))
    boxes, start = [], 0
    for word in text.split(" "):
        if word:
            boxes.append((word, (left + round(start * scale), top, left + round((start + len(word)) * scale), bottom)))
        start += len(word) + 1
    return boxes


def _page(page: Page) -> str:
    number = page["page"]
    title = f"bbox 0 0 {page['width']} {page['height']}; ppageno {number - 1}"
    lines = "".join(_line(line, f"{number}_{index}") for index, line in enumerate(page["lines"], 1))
    return f'<div class="ocr_page" id="page_{number}" title="{title}">\n{lines}</div>\n'


def _line(line: Line, name: str) -> str:
    confidence = round(100 * line["confidence"])
    words = "".join(
        f'<span class="ocrx_word" id="word_{name}_{index}" title="{_title(box, confidence)}">{escape(word)}</span> '
        for index, (word, box) in enumerate(word_boxes(line), 1)
    )
    return f'<span class="ocr_line" id="line_{name}" title="{_title(bbox(line), confidence)}">{words.rstrip()}</span>\n'


def _title(box: tuple[int, int, int, int], confidence: int) -> str:
    return "bbox {} {} {} {}; x_wconf {}".format(*box, confidence)

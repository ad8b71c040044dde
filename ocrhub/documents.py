"""Documents: a PDF's pages → per page lines in ``ocr_system``'s shape, from its text layer or by OCR.

``sniff`` tells a PDF from an image by its magic bytes. ``pdf_pages`` opens a PDF, checks the page
selection against ``Limits`` before any page is read, then yields one page at a time (``Pages``, which
knows how many it will yield), each read and released before the next, so a long PDF never sits
decoded in memory::

    {"page": 3, "source": "text-layer" | "ocr", "dpi": 200, "width": 1700, "height": 2200,
     "lines": [{"text", "confidence", "text_region"}, ...]}

Coordinates are pixels of the page rendered at ``dpi`` (origin top-left), whichever the source, so a
page's boxes do not depend on where its text came from. ``dpi`` is the requested one unless that render
would exceed ``Limits.max_page_pixels``: then the page is rendered at the highest DPI that fits, and
``dpi`` says which. Lines are ordered as ``ocr_system`` orders its boxes: top-to-bottom, left-to-right.

A page *has a text layer* when its text inside the page (filled-in form fields and annotations
included) has at least ``MIN_TEXT_CHARS`` printable, non-whitespace characters: a scan whose only text
is a stamped page or Bates number is still OCR'd. With ``ocr=never`` a page gets whatever text it has.

Text-layer lines come from pdfium's characters and their loose boxes (the font's full height): a line
ends at pdfium's line breaks, after a hyphen that ends a line, and where more than
``GAP_IN_LINE_HEIGHTS`` line heights separate two characters (table cells). A line's box is its
characters' bounding rectangle, clipped to the page; text outside the page is dropped. Confidence is 1.0.

pdfium is not thread-safe: use this module from one thread per process (the inference worker's).
"""

from __future__ import annotations

import io
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, TypedDict

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from ocrhub.errors import InputError, TimeBudgetError

OcrMode = Literal["auto", "always", "never"]
Source = Literal["text-layer", "ocr"]
OCR_MODES = ("auto", "always", "never")
MIN_DPI, MAX_DPI = 50, 600
MIN_TEXT_CHARS = 20  # more than a stamped page number, date or Bates number
GAP_IN_LINE_HEIGHTS = 2.0  # wider than a justified word space, narrower than a table's gutter
_PDF_HEADER_WINDOW = 1024  # pdfium, like Acrobat, finds "%PDF-" anywhere in the first 1 KiB
_RANGE = re.compile(r"(\d+)(?:(-)(\d*))?")
_OPEN_ERRORS = {
    pdfium_c.FPDF_ERR_PASSWORD: "the PDF is password-protected: send a copy without the password",
    pdfium_c.FPDF_ERR_SECURITY: "the PDF uses an unsupported encryption scheme: send an unencrypted copy",
}
_UNREADABLE = "not a readable PDF (damaged or truncated): send the complete file"
PDFIUM_HYPHENS = ("\x02", "\ufffe")  # pdfium's marks for a hyphen ending a line (char, text APIs)

Box = tuple[float, float, float, float]  # left, bottom, right, top in PDF points (origin bottom-left)


class Line(TypedDict):
    text: str
    confidence: float
    text_region: list[list[int]]


class Page(TypedDict):
    page: int
    source: Source
    dpi: int
    width: int
    height: int
    lines: list[Line]


Ocr = Callable[[np.ndarray], list]  # a BGR page image → ocr_system's lines for it


@dataclass(frozen=True)
class Options:
    """What to read: ``pages`` are 1-based ranges ("1-3,5", "7-" to the end; "" for all), ``dpi`` the
    render resolution (200: 10 pt text is ~28 px high, near the recognizer's 48 px input, and an A4 page
    is 3.9 Mpx), ``ocr`` auto (the text layer where a page has one), always, or never (text layer only)."""

    pages: str = ""
    dpi: int = 200
    ocr: OcrMode = "auto"

    def __post_init__(self):
        _page_ranges(self.pages)
        if type(self.dpi) is not int or not MIN_DPI <= self.dpi <= MAX_DPI:
            raise InputError(f"dpi must be a whole number from {MIN_DPI} to {MAX_DPI}, got {self.dpi!r}")
        if self.ocr not in OCR_MODES:
            raise InputError(f"ocr must be one of {', '.join(OCR_MODES)}, got {self.ocr!r}")

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Options:
        """``pages``, ``dpi`` and ``ocr`` from a request's query parameters; others are left to the caller."""
        values: dict = {key: query[key].strip() for key in ("pages", "dpi", "ocr") if query.get(key, "").strip()}
        if "dpi" in values:
            values["dpi"] = int(values["dpi"]) if values["dpi"].isdecimal() else values["dpi"]
        return cls(**values)


@dataclass(frozen=True)
class Limits:
    """``max_pages`` per request (after ``pages`` selects them); ``max_page_pixels`` per rendered page,
    the same bound as one uploaded image (OCR_MAX_IMAGE_PIXELS). 0 means no limit."""

    max_pages: int = 100
    max_page_pixels: int = 40_000_000


def sniff(data: bytes) -> Literal["pdf", "image"] | None:
    """ "pdf", "image" (any format Pillow opens, from its header alone) or None."""
    if b"%PDF-" in data[:_PDF_HEADER_WINDOW]:
        return "pdf"
    try:
        with Image.open(io.BytesIO(data)):
            return "image"
    except Image.DecompressionBombError:  # an image all the same; the caller's pixel limit refuses it
        return "image"
    except Exception:  # noqa: BLE001 - Pillow's plugins fail on junk in many ways; none is an image
        return None


class Pages(Iterator[Page]):
    """The pages of a document, read one at a time as it is iterated; ``count`` of them in all."""

    def __init__(self, count: int, pages: Iterator[Page]):
        self.count, self._pages = count, pages

    def __next__(self) -> Page:
        return next(self._pages)

    def close(self) -> None:
        """Stop reading (and free the document) before the last page."""
        close = getattr(self._pages, "close", None)
        if close:
            close()


def pdf_pages(data: bytes, options: Options, limits: Limits, ocr: Ocr, deadline: float | None = None) -> Pages:
    """The selected pages of a PDF, one at a time. Errors in the document, its page selection or the
    limits raise ``InputError`` here, before any page is read; a damaged page raises it when reached,
    and ``TimeBudgetError`` is raised between pages once ``time.monotonic()`` passes ``deadline``."""
    pdf = _open(data)
    try:
        numbers = _select(options.pages, len(pdf), limits.max_pages)
    except InputError:
        pdf.close()
        raise
    return Pages(len(numbers), _read_pages(pdf, numbers, options, limits, ocr, deadline))


def as_text(pages: Iterable[Page]) -> str:
    """Plain text: each page's lines in their order, one per line; pages separated by a form feed."""
    return "\f".join("\n".join(line["text"] for line in page["lines"]) for page in pages)


# Opening and selecting pages.


def _open(data: bytes) -> pdfium.PdfDocument:
    if not data:
        raise InputError("empty body: send a PDF or an image file")
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        raise InputError(_why_unopened(data)) from None
    pdf.init_forms()  # so that filled-in form fields are rendered too
    return pdf


def _why_unopened(data: bytes) -> str:
    """pypdfium2 refuses a PDF that loads but has no pages too, then with pdfium's last error, left over
    from an earlier document: so load it again to tell the cases apart."""
    raw = pdfium_c.FPDF_LoadMemDocument64(data, len(data), None)
    if raw:
        pdfium_c.FPDF_CloseDocument(raw)
        return "the PDF has no pages"
    return _OPEN_ERRORS.get(pdfium_c.FPDF_GetLastError(), _UNREADABLE)


def _page_ranges(spec: str) -> list[tuple[int, int | None]]:
    """ "1-3,5,7-" → [(1, 3), (5, 5), (7, None)]; None runs to the last page."""
    if not isinstance(spec, str):
        raise InputError(f"pages must be a string such as 1-3,5, got {type(spec).__name__}")
    ranges = [_page_range(item) for item in spec.split(",")] if spec.strip() else []
    if None in ranges:
        raise InputError(f"pages must be 1-based page numbers and ranges such as 1-3,5 or 7-, got {spec!r}")
    return ranges


def _page_range(item: str) -> tuple[int, int | None] | None:
    match = _RANGE.fullmatch(item.strip())
    if not match:
        return None
    first, dash, last = int(match[1]), match[2], match[3]
    last = (int(last) if last else None) if dash else first
    return (first, last) if first >= 1 and (last is None or last >= first) else None


def _select(spec: str, page_count: int, max_pages: int) -> list[int]:
    ranges = _page_ranges(spec) or [(1, None)]
    if any(max(first, last or first) > page_count for first, last in ranges):
        raise InputError(f"pages={spec}: the document has {page_count} page{'s' * (page_count != 1)}")
    numbers = sorted({n for first, last in ranges for n in range(first, (last or page_count) + 1)})
    if max_pages and len(numbers) > max_pages:
        raise InputError(
            f"too many pages: {len(numbers)} (limit {max_pages} per request, OCR_MAX_PAGES); "
            f"send a range at a time, e.g. pages=1-{max_pages}"
        )
    return numbers


# Reading pages.


def _read_pages(
    pdf: pdfium.PdfDocument, numbers: list[int], options: Options, limits: Limits, ocr: Ocr, deadline: float | None
) -> Iterator[Page]:
    try:
        for done, number in enumerate(numbers):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeBudgetError(
                    f"request exceeded its time budget after {done} of {len(numbers)} "
                    f"pages (OCR_REQUEST_TIMEOUT); send fewer pages or a lower dpi"
                )
            yield _read_page(pdf, number, options, limits, ocr)
    finally:
        pdf.close()


def _read_page(pdf: pdfium.PdfDocument, number: int, options: Options, limits: Limits, ocr: Ocr) -> Page:
    try:
        page = _load_page(pdf, number)
        try:
            return _read_loaded_page(page, number, options, limits, ocr)
        finally:
            page.close()  # and its text page: pdfium frees the page's parsed content
    except pdfium.PdfiumError:
        raise InputError(f"page {number}: cannot be read; the PDF is damaged") from None


def _load_page(pdf: pdfium.PdfDocument, number: int) -> pdfium.PdfPage:
    """The page with its annotations and filled-in form fields merged into its content, so that its text
    layer has them as its render does (pdfium shows a flattened page only when it is loaded again)."""
    page = pdf[number - 1]
    if (
        pdfium_c.FPDFPage_GetAnnotCount(page) > 0
        and pdfium_c.FPDFPage_Flatten(page, pdfium_c.FLAT_NORMALDISPLAY) == pdfium_c.FLATTEN_SUCCESS
    ):
        page.close()
        page = pdf[number - 1]
    return page


def _read_loaded_page(page: pdfium.PdfPage, number: int, options: Options, limits: Limits, ocr: Ocr) -> Page:
    size_pt = page.get_size()
    dpi = _fit_dpi(size_pt, options.dpi, limits.max_page_pixels)
    size = _pixel_size(size_pt, dpi)
    if options.ocr != "always":
        lines = _text_layer_lines(page, size)
        if options.ocr == "never" or _has_text_layer(lines):
            return _page(number, "text-layer", dpi, size, lines)
    return _page(number, "ocr", dpi, size, list(ocr(_render(page, dpi, size))))


def _page(number: int, source: Source, dpi: int, size: tuple[int, int], lines: list) -> Page:
    return {"page": number, "source": source, "dpi": dpi, "width": size[0], "height": size[1], "lines": lines}


def _scale(dpi: int) -> float:
    # A hair under dpi/72, so float noise (792 pt × 150/72 = 1650.0000000000002) adds no pixel column.
    return dpi / 72 * (1 - 1e-9)


def _pixel_size(size_pt: tuple[float, float], dpi: int) -> tuple[int, int]:
    """The page's size in pixels at ``dpi``, as ``PdfPage.render`` sizes its bitmap (rotation included)."""
    width, height = size_pt
    return max(1, math.ceil(width * _scale(dpi))), max(1, math.ceil(height * _scale(dpi)))


def _fit_dpi(size_pt: tuple[float, float], dpi: int, max_pixels: int) -> int:
    """``dpi``, or the highest lower one whose render has at most ``max_pixels`` pixels."""
    pixels = math.prod(_pixel_size(size_pt, dpi))
    while max_pixels and dpi > 1 and pixels > max_pixels:
        dpi = min(dpi - 1, max(1, int(dpi * math.sqrt(max_pixels / pixels))))
        pixels = math.prod(_pixel_size(size_pt, dpi))
    return dpi


def _render(page: pdfium.PdfPage, dpi: int, size: tuple[int, int]) -> np.ndarray:
    """The page as an 8-bit BGR array of ``size`` (white paper, annotations and form fields drawn)."""
    image = page.render(scale=_scale(dpi), may_draw_forms=True).to_numpy()
    assert image.shape[1::-1] == size, (image.shape, size)
    return image


# The text layer.


def _has_text_layer(lines: list[Line]) -> bool:
    return sum(len(line["text"].replace(" ", "")) for line in lines) >= MIN_TEXT_CHARS


def _text_layer_lines(page: pdfium.PdfPage, size: tuple[int, int]) -> list[Line]:
    textpage = page.get_textpage()
    to_pixels = pdfium.PdfPosConv(page, (0, 0, *size, 0))  # the same mapping as the render's
    lines = [_line(run, to_pixels, size) for run in _runs(_chars(textpage))]
    return _reading_order([line for line in lines if line])


def _chars(textpage: pdfium.PdfTextPage) -> Iterator[tuple[str, Box | None]]:
    """The page's characters in pdfium's order, with their loose boxes; "\\n" at line breaks, and " " (with
    no box) for every space: a space's box is not ink."""
    for index in range(textpage.count_chars()):
        char = chr(pdfium_c.FPDFText_GetUnicode(textpage, index))
        if char in PDFIUM_HYPHENS:  # pdfium joins a line ending in a hyphen to the next: split them again
            yield "-", textpage.get_charbox(index, loose=True)
            yield "\n", None
        elif char.isspace():
            yield ("\n" if char == "\n" else " "), None
        elif char.isprintable() and char != "\ufffd":  # U+FFFD: a glyph pdfium cannot map to Unicode
            yield char, textpage.get_charbox(index, loose=True)


def _runs(chars: Iterable[tuple[str, Box | None]]) -> Iterator[list[tuple[str, Box | None]]]:
    """Characters grouped into lines: split at line breaks and at wide gaps."""
    run: list[tuple[str, Box | None]] = []
    previous: Box | None = None
    for char, box in chars:
        if char == "\n" or (box and previous and _far_apart(previous, box)):
            yield run
            run, previous = [], None
        if char != "\n":
            run.append((char, box))
            previous = box or previous
    yield run


def _far_apart(previous: Box, box: Box) -> bool:
    """A gap of more than ``GAP_IN_LINE_HEIGHTS`` line heights between two characters, forwards (table
    cells) or backwards (text drawn out of order); right-to-left and sideways text have no such gaps."""
    gap = max(box[0] - previous[2], previous[0] - box[2])
    return gap > GAP_IN_LINE_HEIGHTS * max(previous[3] - previous[1], box[3] - box[1])


def _line(run: list[tuple[str, Box | None]], to_pixels: pdfium.PdfPosConv, size: tuple[int, int]) -> Line | None:
    text = " ".join("".join(char for char, _ in run).split())
    boxes = [box for _, box in run if box]
    region = _pixel_region(_union(boxes), to_pixels, size) if boxes else None
    if not text or not region:
        return None
    return {"text": text, "confidence": 1.0, "text_region": region}


def _union(boxes: list[Box]) -> Box:
    lefts, bottoms, rights, tops = zip(*boxes)
    return min(lefts), min(bottoms), max(rights), max(tops)


def _pixel_region(box: Box, to_pixels: pdfium.PdfPosConv, size: tuple[int, int]) -> list[list[int]] | None:
    """A box in PDF points → four [x, y] pixel points clockwise from top-left, clipped to the page; None
    if it lies outside the page."""
    left, bottom, right, top = box
    (x1, y1), (x2, y2) = to_pixels.to_bitmap(left, bottom), to_pixels.to_bitmap(right, top)
    width, height = size
    x_min, x_max = max(0, min(x1, x2)), min(width, max(x1, x2))
    y_min, y_max = max(0, min(y1, y2)), min(height, max(y1, y2))
    if x_min >= x_max or y_min >= y_max:
        return None
    return [[x_min, y_min], [x_max, y_min], [x_max, y_max], [x_min, y_max]]


def _reading_order(lines: list[Line]) -> list[Line]:
    """PaddleOCR's ``sorted_boxes`` order: by top-left corner, top-to-bottom, then left-to-right among
    lines whose tops are within 10 px, so text-layer and OCR pages read alike."""
    ordered = sorted(lines, key=lambda line: (line["text_region"][0][1], line["text_region"][0][0]))
    for i in range(len(ordered) - 1):
        for j in range(i, -1, -1):
            (x_next, y_next), (x, y) = ordered[j + 1]["text_region"][0], ordered[j]["text_region"][0]
            if abs(y_next - y) >= 10 or x_next >= x:
                break
            ordered[j], ordered[j + 1] = ordered[j + 1], ordered[j]
    return ordered

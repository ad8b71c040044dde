"""PDF documents: text-layer lines and their boxes, rendering for OCR, page selection, limits and errors.

Every PDF is built here with reportlab. Where a page goes to OCR, ``InkFinder`` stands in for
``ocr_system``: it reads no text, it reports where the dark pixels of the page image are, so the tests
check what OCR would be given (size, DPI, where the ink lands). Real OCR is tested over the server.
"""

import io
import re
import time

import numpy as np
import psutil
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib import pdfencrypt
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from ocrhub import documents
from ocrhub.documents import Limits, Options, as_text, pdf_pages, sniff
from ocrhub.errors import InputError, TimeBudgetError

LETTER = (612, 792)  # points; 1700×2200 pixels at the default 200 dpi
SENTENCES = ["Invoice 2026-0042 for Example GmbH", "Total amount due: 1,234.56 EUR", "Thank you for your order"]


# Building PDFs.


def text(*lines: str, x: float = 72, top: float = 720, size: float = 12, step: float = 20):
    def draw(canvas: Canvas) -> None:
        canvas.setFont("Helvetica", size)
        for index, line in enumerate(lines):
            canvas.drawString(x, top - index * step, line)

    return draw


def picture(image: Image.Image):
    def draw(canvas: Canvas) -> None:
        canvas.drawImage(ImageReader(image), 0, 0, *LETTER)  # the whole page, stored losslessly

    return draw


def together(*draws):
    def draw(canvas: Canvas) -> None:
        for each in draws:
            each(canvas)

    return draw


def build(*pages, encrypt=None) -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=LETTER, encrypt=encrypt)
    for draw in pages:
        draw(canvas)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def rotated(data: bytes, degrees: int) -> bytes:
    """The PDF with every page's /Rotate set: viewers and renderers turn the page clockwise."""
    pdf = pdfium.PdfDocument(data)
    for page in pdf:
        page.set_rotation(degrees)
    return saved(pdf)


def saved(pdf: pdfium.PdfDocument) -> bytes:
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


def scan(*words: str) -> Image.Image:
    """A "scanned" letter page at 100 dpi: black words on white, no text layer once in a PDF."""
    image = Image.new("L", (850, 1100), 255)
    draw = ImageDraw.Draw(image)
    for index, word in enumerate(words):
        draw.text((100, 150 + 60 * index), word, fill=0, font=ImageFont.load_default(size=36))
    return image


# Looking at page images.


def ink_box(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) around every dark pixel, right/bottom exclusive; None on a blank page."""
    gray = np.minimum(np.minimum(image[..., 0], image[..., 1]), image[..., 2]) if image.ndim == 3 else image
    dark = gray < 128
    rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
    return (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) if rows.size else None


class InkFinder:
    """The ``ocr`` callable for rendering tests: one region around the page's ink, no text read."""

    def __init__(self, delay: float = 0.0):
        self.shapes, self.delay = [], delay

    def __call__(self, image: np.ndarray) -> list[dict]:
        self.shapes.append(image.shape)
        time.sleep(self.delay)
        box = ink_box(image)
        return [] if box is None else [{"text": "", "confidence": 0.0, "text_region": region(box)}]


def region(box) -> list[list[int]]:
    left, top, right, bottom = (int(v) for v in box)
    return [[left, top], [right, top], [right, bottom], [left, bottom]]


def rect(line: dict) -> tuple[int, int, int, int]:
    (left, top), _, (right, bottom), _ = line["text_region"]
    return left, top, right, bottom


def inside(inner, outer, slack: int = 2) -> bool:
    return (
        inner[0] >= outer[0] - slack
        and inner[1] >= outer[1] - slack
        and inner[2] <= outer[2] + slack
        and inner[3] <= outer[3] + slack
    )


def read(data: bytes, limits: Limits | None = None, finder=None, deadline=None, **options) -> list[dict]:
    return list(pdf_pages(data, Options(**options), limits or Limits(), finder or InkFinder(), deadline))


# Text layer.


def test_text_layer_lines_are_the_drawn_text_in_reading_order():
    data = build(together(text(*SENTENCES), text("Page 1 of 1", x=450, top=720)))
    [page] = read(data)
    assert {key: page[key] for key in ("page", "source", "dpi", "width", "height")} == {
        "page": 1,
        "source": "text-layer",
        "dpi": 200,
        "width": 1700,
        "height": 2200,
    }
    # A cell far right on the same baseline is a line of its own, read after its left neighbour.
    assert [line["text"] for line in page["lines"]] == [SENTENCES[0], "Page 1 of 1", *SENTENCES[1:]]
    assert all(line["confidence"] == 1.0 for line in page["lines"])


@pytest.mark.parametrize("dpi", [72, 200, 300])
def test_text_layer_boxes_are_where_the_text_was_drawn(dpi):
    size, x, baseline = 12, 72, 720
    [page] = read(build(text(*SENTENCES, x=x, top=baseline, size=size)), dpi=dpi)
    scale = dpi / 72
    for index, line in enumerate(page["lines"]):
        left, top, right, bottom = rect(line)
        baseline_px = (LETTER[1] - (baseline - 20 * index)) * scale  # PDF origin is bottom-left
        assert abs(left - x * scale) <= 1.5
        assert abs(right - (x + stringWidth(SENTENCES[index], "Helvetica", size)) * scale) <= 1.5
        assert top < baseline_px - 0.7 * size * scale and baseline_px < bottom  # cap height above, descent below
        assert size * scale <= bottom - top <= 1.3 * size * scale
        assert line["text_region"] == [[left, top], [right, top], [right, bottom], [left, bottom]]


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_text_layer_boxes_cover_the_rendered_ink(rotation):
    """The same page read from its text layer and rendered for OCR: both in one pixel space."""
    data = rotated(build(text(*SENTENCES, size=14)), rotation)
    [page] = read(data, dpi=150)
    [rendered] = read(data, dpi=150, ocr="always")
    assert (rendered["width"], rendered["height"]) == (page["width"], page["height"])
    assert (page["width"] > page["height"]) == (rotation in (90, 270))
    boxes = [rect(line) for line in page["lines"]]
    union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    ink = rect(rendered["lines"][0])
    assert inside(ink, union) and inside(union, ink, slack=8)  # loose boxes: the font's full height


def test_text_outside_the_page_is_dropped():
    [page] = read(build(together(text(*SENTENCES), text("off the page edge", x=700))), ocr="never")
    assert [line["text"] for line in page["lines"]] == SENTENCES


def test_a_hyphen_ending_a_line_is_kept_and_ends_the_line():
    """pdfium joins a hyphenated word across lines; the lines are split again where they were drawn."""
    [page] = read(build(text("A sentence split by a hyphen-", "ation at the end of its line", "Re-", "start")))
    assert [line["text"] for line in page["lines"]] == [
        "A sentence split by a hyphen-",
        "ation at the end of its line",
        "Re-",
        "start",
    ]


def test_filled_in_form_fields_are_in_the_text_layer():
    def form(canvas: Canvas) -> None:
        text(*SENTENCES)(canvas)
        canvas.acroForm.textfield(
            name="customer",
            value="Filled-in customer name",
            x=72,
            y=500,
            width=300,
            height=24,
            borderWidth=0,
            fontSize=12,
        )

    [page] = read(build(form))
    assert [line["text"] for line in page["lines"]] == [*SENTENCES, "Filled-in customer name"]
    left, top, right, bottom = rect(page["lines"][-1])
    assert 200 <= left and right <= 200 + 300 * 200 / 72 and (792 - 524) * 200 / 72 <= top < bottom <= 1450


def test_sideways_text_keeps_its_lines():
    def sideways(canvas: Canvas) -> None:
        canvas.translate(300, 100)
        canvas.rotate(90)
        text("A table heading turned sideways", x=0, top=0)(canvas)

    [page] = read(build(sideways), ocr="never")
    [line] = page["lines"]
    left, top, right, bottom = rect(line)
    assert line["text"] == "A table heading turned sideways" and bottom - top > 8 * (right - left)


# Pages without text: rendered for OCR.


def test_scanned_page_is_rendered_at_the_dpi_for_ocr():
    image = scan("Scanned words", "on a page")
    finder = InkFinder()
    [page] = read(build(picture(image)), finder=finder)
    assert page["source"] == "ocr" and (page["width"], page["height"], page["dpi"]) == (1700, 2200, 200)
    assert finder.shapes == [(2200, 1700, 3)]
    drawn = ink_box(np.asarray(image))  # at 100 dpi: twice as small as the render
    found = rect(page["lines"][0])  # what ocr returned is the page's lines, untouched
    assert all(abs(f - 2 * d) <= 3 for f, d in zip(found, drawn)), (found, drawn)


def test_page_images_for_ocr_are_bgr():
    def red_square(canvas: Canvas) -> None:
        canvas.setFillColorRGB(1, 0, 0)
        canvas.rect(72, 72, 72, 72, stroke=0, fill=1)

    images = []
    read(build(red_square), finder=lambda image: images.append(image.copy()) or [])
    assert images[0].dtype == np.uint8 and images[0][1900, 300].tolist() == [0, 0, 255]  # 1 in from the bottom-left


def test_mixed_pdf_reads_each_page_from_where_its_text_is():
    data = build(text(*SENTENCES), picture(scan("Scanned words")))
    assert [page["source"] for page in read(data)] == ["text-layer", "ocr"]
    assert [page["source"] for page in read(data, ocr="always")] == ["ocr", "ocr"]
    never = read(data, ocr="never")
    assert [page["source"] for page in never] == ["text-layer", "text-layer"] and never[1]["lines"] == []


def test_a_stamp_on_a_scan_is_not_a_text_layer():
    stamped = build(together(picture(scan("Scanned words")), text("ABC-000123", x=450, top=40)))
    assert len("ABC000123") < documents.MIN_TEXT_CHARS
    [page] = read(stamped)
    assert page["source"] == "ocr"
    [page] = read(stamped, ocr="never")
    assert [line["text"] for line in page["lines"]] == ["ABC-000123"]


def test_a_page_too_large_to_render_is_rendered_at_a_lower_dpi():
    finder = InkFinder()
    limits = Limits(max_page_pixels=1_000_000)
    [scanned, typed] = read(build(picture(scan("Scanned")), text(*SENTENCES)), limits, finder)
    assert scanned["dpi"] == typed["dpi"] == 103  # 8.5 × 11 in: 876 × 1133 px; 104 dpi would be 1.01 Mpx
    assert (scanned["width"], scanned["height"]) == (typed["width"], typed["height"]) == (876, 1133)
    assert finder.shapes == [(1133, 876, 3)]
    assert abs(rect(typed["lines"][0])[0] - 72 * 103 / 72) <= 1.5


# Page selection and limits.


@pytest.mark.parametrize(
    "pages, numbers",
    [("", [1, 2, 3]), ("2", [2]), ("2-3", [2, 3]), ("3,1", [1, 3]), ("2-", [2, 3]), (" 1-2 , 2-3 ", [1, 2, 3])],
)
def test_pages_selects_pages(pages, numbers):
    data = build(*(text(f"Page {n} says something long enough") for n in (1, 2, 3)))
    result = read(data, pages=pages)
    assert [page["page"] for page in result] == numbers
    assert [page["lines"][0]["text"] for page in result] == [f"Page {n} says something long enough" for n in numbers]


@pytest.mark.parametrize("pages", ["4", "2-5", "4-"])
def test_pages_outside_the_document_are_refused_before_reading(pages):
    data = build(*(text(*SENTENCES) for _ in range(3)))
    with pytest.raises(InputError, match=f"^pages={pages}: the document has 3 pages$"):
        pdf_pages(data, Options(pages=pages), Limits(), InkFinder())  # raised on the call: nothing read


@pytest.mark.parametrize(
    "query, message",
    [
        ({"dpi": "abc"}, "dpi must be a whole number from 50 to 600, got 'abc'"),
        ({"dpi": "20"}, "dpi must be a whole number from 50 to 600, got 20"),
        ({"dpi": "150.5"}, "dpi must be a whole number"),
        ({"ocr": "maybe"}, "ocr must be one of auto, always, never, got 'maybe'"),
        ({"pages": "0"}, "pages must be 1-based page numbers"),
        ({"pages": "3-1"}, "pages must be 1-based page numbers"),
        ({"pages": "1,,2"}, "pages must be 1-based page numbers"),
        ({"pages": "first"}, "pages must be 1-based page numbers"),
    ],
)
def test_bad_query_parameters_name_the_parameter(query, message):
    with pytest.raises(InputError, match="^" + message):
        Options.from_query(query)


def test_query_parameters_and_defaults():
    assert Options.from_query({}) == Options(pages="", dpi=200, ocr="auto")
    assert Options.from_query({"pages": "1-3", "dpi": " 300", "ocr": "never", "format": "text"}) == Options(
        pages="1-3", dpi=300, ocr="never"
    )
    assert Options.from_query({"dpi": "", "ocr": ""}) == Options()


@pytest.fixture(scope="module")
def long_pdf() -> bytes:
    return build(*(text(f"Page {n} of a long report", *SENTENCES) for n in range(1, 201)))


def test_too_many_pages_are_refused_with_the_numbers(long_pdf):
    with pytest.raises(
        InputError,
        match=r"^too many pages: 200 \(limit 100 per request, OCR_MAX_PAGES\); "
        r"send a range at a time, e\.g\. pages=1-100$",
    ):
        pdf_pages(long_pdf, Options(), Limits(), InkFinder())
    assert len(read(long_pdf, pages="101-200")) == 100


def rss() -> int:
    return psutil.Process().memory_info().rss


@pytest.mark.parametrize("ocr", ["never", "always"])
def test_long_pdf_is_read_one_page_at_a_time_in_flat_memory(long_pdf, ocr):
    finder = InkFinder()
    pages = pdf_pages(long_pdf, Options(ocr=ocr), Limits(max_pages=200), finder, time.monotonic() + 60)
    first = next(pages)
    assert first["page"] == 1 and len(finder.shapes) == (ocr == "always")  # nothing read ahead
    memory = []
    for page in pages:
        assert page["lines"]
        memory.append(rss())
    assert page["page"] == 200 and len(finder.shapes) == 200 * (ocr == "always")
    # A page rendered at 200 dpi is 11 MB: 190 of them held at once would add 2 GB.
    growth = max(memory[10:]) - memory[10]
    assert growth < 20 * 2**20, f"memory grew by {growth / 2**20:.0f} MB over 190 pages"


def test_deadline_is_checked_between_pages():
    data = build(*(picture(scan("Scanned")) for _ in range(3)))
    with pytest.raises(TimeBudgetError, match="after 0 of 3 pages"):
        read(data, deadline=time.monotonic() - 1)
    pages = pdf_pages(data, Options(), Limits(), InkFinder(delay=0.4), time.monotonic() + 0.3)
    assert next(pages)["page"] == 1
    with pytest.raises(TimeBudgetError, match="^request exceeded its time budget after 1 of 3 pages"):
        next(pages)


# Damaged, protected and empty documents.


def test_bad_documents_are_refused_with_a_reason():
    good = build(text(*SENTENCES))
    cases = {
        b"": "^empty body: send a PDF or an image file$",
        b"%PDF-1.7\n" + b"\x00garbage" * 100: r"^not a readable PDF \(damaged or truncated\)",
        good[: len(good) // 2]: r"^not a readable PDF \(damaged or truncated\)",
        build(text(*SENTENCES), encrypt="secret"): "^the PDF is password-protected: send a copy without",
        saved(pdfium.PdfDocument.new()): "^the PDF has no pages$",
    }
    for data, message in cases.items():
        with pytest.raises(InputError, match=message):
            pdf_pages(data, Options(), Limits(), InkFinder())


def test_a_damaged_page_is_refused_when_reached():
    data = build(text(*SENTENCES), text(*SENTENCES))
    second = re.search(rb"/Kids \[ \d+ 0 R (\d+) 0 R \]", data)[1]  # page 2's object number
    start = data.index(b"\n%s 0 obj\n" % second) + len(b"\n%s 0 obj\n" % second)
    end = data.index(b"endobj", start)
    damaged = data[:start] + b"null".ljust(end - start) + data[end:]  # same length: offsets stay valid
    pages = pdf_pages(damaged, Options(), Limits(), InkFinder())
    assert next(pages)["page"] == 1
    with pytest.raises(InputError, match="^page 2: cannot be read; the PDF is damaged$"):
        next(pages)


def test_a_pdf_with_only_an_owner_password_is_read():
    """Such PDFs (no printing, no copying) open without a password, in every viewer too."""
    protected = build(text(*SENTENCES), encrypt=pdfencrypt.StandardEncryption("", "owner", canCopy=0))
    assert [line["text"] for line in read(protected)[0]["lines"]] == SENTENCES


# Sniffing and plain text.


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_sniff_images(fmt):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3)).save(buffer, fmt)
    assert sniff(buffer.getvalue()) == "image"


def test_sniff_pdfs_and_others():
    pdf = build(text("x"))
    assert sniff(pdf) == "pdf" and sniff(b"\r\n" + pdf) == "pdf"  # pdfium allows bytes before the header
    assert sniff(b"") is None and sniff(b"plain text, not a document") is None and sniff(b"\x00" * 64) is None


def test_plain_text_is_lines_in_order_and_pages_split_by_form_feed():
    data = build(text(*SENTENCES), text("Second page, first line here", "and its last line here too"))
    assert as_text(read(data)) == "\n".join(SENTENCES) + "\fSecond page, first line here\nand its last line here too"
    ocr_page = {
        "page": 3,
        "source": "ocr",
        "dpi": 200,
        "width": 9,
        "height": 9,
        "lines": [{"text": "read by OCR", "confidence": 0.9, "text_region": region((0, 0, 9, 9))}],
    }
    empty_page = {**ocr_page, "lines": []}
    assert as_text([ocr_page, empty_page, ocr_page]) == "read by OCR\f\fread by OCR"
    assert as_text([]) == ""

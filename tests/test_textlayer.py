"""Searchable PDFs (``ocrhub.textlayer``): real OCR of scanned pages, then what viewers make of the text layer.

Scans are letter pages holding a JPEG of a ``harness.testimages`` page, built with reportlab (then turned
and cropped with pikepdf); their ``pages`` come from the real reader and the in-process ``ocr_system``
pipeline (``OcrService.read_document``), once per document. pdfium (the engine of Chromium's viewer)
and poppler (pdftotext, pdftoppm) judge the result: the text is found where its ink is, and nothing
visible has changed.
"""

from __future__ import annotations

import ctypes
import io
import re
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pikepdf
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from pikepdf import Name, String
from PIL import Image, ImageFont
from reportlab.lib.utils import ImageReader

from conftest import LETTER, WRITTEN, normalized, written
from ocrhub import documents, glyphless, images, textlayer
from ocrhub.config import load_config
from ocrhub.errors import InputError
from ocrhub.service import OcrService
from test_documents import build

SCAN_DPI = 200
CYCLE = ("english", "chinese", "mixed")


@dataclass
class Document:
    data: bytes  # the input
    pages: list  # as the reader gives them
    out: bytes  # searchable_pdf's answer


# Building documents.


def scan_image(sample, number: int) -> bytes:
    """Page ``number`` scanned at 200 dpi, as a JPEG: the sample's text on white paper, placed a little
    differently on each page (so that no two pages share an image, as in a real scan)."""
    paper = Image.new("RGB", (LETTER[0] * SCAN_DPI // 72, LETTER[1] * SCAN_DPI // 72), "white")
    paper.paste(Image.fromarray(sample.image[:, :, ::-1]), (160 + 9 * number, 220 + 31 * number))
    buffer = io.BytesIO()
    paper.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def scanned(sample, number: int):
    return lambda canvas: canvas.drawImage(ImageReader(io.BytesIO(scan_image(sample, number))), 0, 0, *LETTER)


MARGIN = (30, 45)  # the turned pages' MediaBox reaches this far beyond their CropBox


def turned(data: bytes, rotations: list, inherited: int) -> bytes:
    """Each page's content turned against its /Rotate (None: it inherits ``inherited`` from the page tree),
    so that the page shows as before, upright, inside a CropBox that does not start at (0, 0); the first
    page's CropBox is larger than its MediaBox instead, so what shows is the MediaBox."""
    pdf = open_pdf(data)
    pdf.Root.Pages.Rotate = inherited
    (width, height), (dx, dy) = LETTER, MARGIN
    for index, (page, rotate) in enumerate(zip(pdf.pages, rotations)):
        turns = (inherited if rotate is None else rotate) // 90 % 4
        matrix = [(1, 0, 0, 1, 0, 0), (0, 1, -1, 0, height, 0), (-1, 0, 0, -1, width, height), (0, -1, 1, 0, 0, width)][turns]
        a, b, c, d, e, f = matrix
        page.contents_add(pikepdf.Stream(pdf, f"q {a} {b} {c} {d} {e + dx} {f + dy} cm\n".encode()), prepend=True)
        page.contents_add(pikepdf.Stream(pdf, b"Q\n"))
        box_w, box_h = (height, width) if turns % 2 else (width, height)
        shown, whole = [dx, dy, dx + box_w, dy + box_h], [0, 0, box_w + 2 * dx, box_h + 2 * dy]
        page.obj.MediaBox, page.obj.CropBox = (shown, whole) if index == 0 else (whole, shown)
        if rotate is None:
            del page.obj.Rotate  # reportlab writes /Rotate 0 on every page
        else:
            page.obj.Rotate = rotate
    return save(pdf)


def open_pdf(data: bytes) -> pikepdf.Pdf:
    """As it is: pikepdf would otherwise copy attributes inherited from the page tree onto each page."""
    return pikepdf.open(io.BytesIO(data), inherit_page_attributes=False)


def save(pdf: pikepdf.Pdf, **options) -> bytes:
    buffer = io.BytesIO()
    pdf.save(buffer, **options)
    return buffer.getvalue()


def blank_page(lines: list[tuple[str, list]]) -> dict:
    """A page dict as the reader gives it for a letter page at 200 dpi, with hand-made lines."""
    lines = [{"text": text, "confidence": 0.9, "text_region": region} for text, region in lines]
    return {"page": 1, "source": "ocr", "dpi": SCAN_DPI, "width": 1700, "height": 2200, "lines": lines}


def box(left, top, right, bottom) -> list:
    return [[left, top], [right, top], [right, bottom], [left, bottom]]


# Reading them.


@pytest.fixture(scope="module")
def service(data_dir):
    return OcrService("ocr_system", load_config({"data_dir": str(data_dir)}, environ={}))


def document(service, data: bytes) -> Document:
    pages = list(service.read_document(data, documents.Options()))
    return Document(data, pages, textlayer.searchable_pdf(data, pages))


@pytest.fixture(scope="module")
def scan(service, pages) -> Document:
    """12 scanned pages, English, Chinese and mixed in turn, and page 5 with a text layer (not OCR'd)."""
    draws = [scanned(pages[CYCLE[index % 3]], index) for index in range(12)]
    draws[4] = written(WRITTEN[0])
    return document(service, build(*draws))


ROTATIONS = [0, 90, 180, 270, -90, 450, None]  # None: inherited from the page tree


@pytest.fixture(scope="module")
def turned_scan(service, pages) -> Document:
    """Scans shown upright by /Rotate 0, 90, 180, 270, -90, 450 and an inherited 270, in offset CropBoxes."""
    data = build(*[scanned(pages[CYCLE[index % 3]], index) for index in range(len(ROTATIONS))])
    return document(service, turned(data, ROTATIONS, inherited=270))


def ocr_pages(doc: Document) -> list:
    return [page for page in doc.pages if page["source"] == "ocr"]


def user_box(pdf_page: pdfium.PdfPage, page: dict, region: list, inset: float = 0.0) -> tuple:
    """A line's pixel region → left, bottom, right, top in user space, by pdfium's own mapping."""
    to_page = pdfium.PdfPosConv(pdf_page, (0, 0, page["width"], page["height"], 0)).to_page
    xs, ys = zip(*(to_page(int(x), int(y)) for x, y in region))
    return min(xs) + inset, min(ys) + inset, max(xs) - inset, max(ys) - inset


def texts_in_boxes(data: bytes, pages: list) -> list[tuple[str, str]]:
    """(text pdfium finds in each line's box, the line's text) for every OCR'd line."""
    found = []
    pdf = pdfium.PdfDocument(data)
    for page in pages:
        pdf_page = pdf[page["page"] - 1]
        textpage = pdf_page.get_textpage()
        for line in page["lines"]:
            inside = textpage.get_text_bounded(*user_box(pdf_page, page, line["text_region"], inset=1.0))
            found.append((" ".join(inside.split()), " ".join(line["text"].split())))
    pdf.close()
    return found


def pdftotext(path: Path, number: int | None = None) -> str:
    pages = ["-f", str(number), "-l", str(number)] if number else []
    command = ["pdftotext", "-enc", "UTF-8", *pages, str(path), "-"]
    done = subprocess.run(command, capture_output=True, encoding="utf-8", check=True)
    assert done.stderr == "", done.stderr  # poppler takes the font without complaint
    return done.stdout


def pdfium_renders(data: bytes, dpi: int = 100) -> list[np.ndarray]:
    pdf = pdfium.PdfDocument(data)
    renders = [page.render(scale=dpi / 72).to_numpy() for page in pdf]
    pdf.close()
    return renders


def poppler_renders(path: Path, dpi: int = 100) -> list[bytes]:
    folder = path.parent / (path.stem + "-pages")
    folder.mkdir()
    done = subprocess.run(["pdftoppm", "-r", str(dpi), str(path), str(folder / "p")], capture_output=True, text=True, check=True)
    assert done.stderr == "", done.stderr
    return [page.read_bytes() for page in sorted(folder.iterdir())]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# The text is there, where its ink is.


def test_pdftotext_finds_the_ocr_text_on_each_page(scan, tmp_path):
    path = write(tmp_path / "out.pdf", scan.out)
    found, total, scripts = 0, 0, set()
    for page in ocr_pages(scan):
        text = normalized(pdftotext(path, page["page"]))
        wanted = [normalized(line["text"]) for line in page["lines"]]
        found += sum(line in text for line in wanted)
        total += len(wanted)
        scripts |= {"han" if re.search(r"[\u4e00-\u9fff]", line) else "latin" for line in wanted}
    assert total >= 30 and scripts == {"han", "latin"}
    assert found >= 0.99 * total, (found, total)
    assert "".join(WRITTEN[0][0].split()) in normalized(pdftotext(path, 5))  # the text-layer page keeps its own


@pytest.mark.parametrize("which", ["scan", "turned_scan"])
def test_pdfium_finds_each_line_in_its_box(which, request):
    doc = request.getfixturevalue(which)
    found = texts_in_boxes(doc.out, ocr_pages(doc))
    assert len(found) >= 20
    assert [text for text, _ in found] == [wanted for _, wanted in found]


def test_rotated_and_cropped_pages_map_pixels_as_pdfium_does(turned_scan):
    """Requirement: a pixel of the page as read maps where pdfium's own mapping (its render's) puts it."""
    pdf, pike = pdfium.PdfDocument(turned_scan.out), open_pdf(turned_scan.out)
    assert [int(page.get_rotation()) for page in pdf] == [0, 90, 180, 270, 270, 90, 270]
    assert "/Rotate" not in pike.pages[6].obj and pike.Root.Pages.Rotate == 270  # still inherited
    for page in turned_scan.pages:
        width, height = page["width"], page["height"]
        mapping = textlayer._page_mapping(pike.pages[page["page"] - 1], (width, height))
        conv = pdfium.PdfPosConv(pdf[page["page"] - 1], (0, 0, width, height, 0))
        for x, y in [(0, 0), (width, 0), (width, height), (0, height), (width // 3, height // 7), (17, height - 5)]:
            assert mapping(x, y) == pytest.approx(conv.to_page(x, y), abs=0.01), (page["page"], x, y)


def test_text_runs_along_a_turned_box():
    """A box at 30°: each character's origin lies on the box's baseline (20 % up its height, the font's
    descent), the characters share its top edge's length evenly, and the text copies out whole."""
    text, (x0, y0), width, height, angle = "Tilted 倾斜 text", (400, 900), 800, 60, np.radians(-30)
    along, up = np.array([np.cos(angle), np.sin(angle)]), np.array([np.sin(angle), -np.cos(angle)])
    top_left = np.array([x0, y0])
    corners = [top_left, top_left + width * along, top_left + width * along - height * up, top_left - height * up]
    page = blank_page([(text, [[round(v) for v in corner] for corner in corners])])
    out = textlayer.searchable_pdf(build(lambda canvas: None), [page])
    pdf = pdfium.PdfDocument(out)
    textpage = pdf[0].get_textpage()
    assert textpage.get_text_range() == text
    to_page = pdfium.PdfPosConv(pdf[0], (0, 0, 1700, 2200, 0)).to_page
    top_left_pt, top_right_pt, _, bottom_left_pt = (np.array(to_page(*[round(v) for v in c])) for c in corners)
    for index in range(len(text)):
        x, y = ctypes.c_double(), ctypes.c_double()
        assert pdfium_c.FPDFText_GetCharOrigin(textpage, index, x, y)
        expected = bottom_left_pt + 0.2 * (top_left_pt - bottom_left_pt) + index / len(text) * (top_right_pt - top_left_pt)
        assert (x.value, y.value) == pytest.approx(tuple(expected), abs=0.05), index


def test_a_line_scanned_askew_is_laid_level_and_a_steep_one_is_not(tmp_path):
    """A full-width line tilted 1° (it drifts 26 px, its height is 40 px) is laid level about its centre,
    so that poppler reads it whole; at 2° (52 px) it keeps its slant, as one at 30° does
    (test_text_runs_along_a_turned_box), and poppler breaks it apart."""
    text, centre, length, height = "A line of a page scanned a degree askew, and read whole", (850, 600), 1500, 40
    assert not in_pdftotext(askew(text, centre, length, height, 2), text, tmp_path)
    out = askew(text, centre, length, height, 1)
    assert in_pdftotext(out, text, tmp_path)
    pdf = pdfium.PdfDocument(out)
    textpage = pdf[0].get_textpage()
    boxes = [textpage.get_charbox(index, loose=True) for index in range(len(text))]
    assert len({(round(bottom, 2), round(top, 2)) for _, bottom, _, top in boxes}) == 1  # level
    middle = pdfium.PdfPosConv(pdf[0], (0, 0, 1700, 2200, 0)).to_page(*centre)
    assert ((boxes[0][0] + boxes[-1][2]) / 2, (boxes[0][1] + boxes[0][3]) / 2) == pytest.approx(middle, abs=0.5)


def askew(text: str, centre: tuple, length: float, height: float, degrees: float) -> bytes:
    """A searchable PDF of one line of ``text`` on a box turned ``degrees`` anticlockwise about ``centre``."""
    angle = np.radians(degrees)
    along, up = np.array([np.cos(angle), -np.sin(angle)]), np.array([-np.sin(angle), -np.cos(angle)])
    top_left = np.array(centre) - along * length / 2 + up * height / 2
    corners = [top_left, top_left + along * length, top_left + along * length - up * height, top_left - up * height]
    page = blank_page([(text, [[round(v) for v in corner] for corner in corners])])
    return textlayer.searchable_pdf(build(lambda canvas: None), [page])


def in_pdftotext(pdf: bytes, text: str, tmp_path: Path) -> bool:
    return text in pdftotext(write(tmp_path / "line.pdf", pdf)).split("\n")


def test_a_vertical_line_runs_down_its_box(tmp_path):
    """A box 1.5 times taller than wide is read turned a quarter (ocrhub.stages.crop), top to bottom:
    its characters go down the box, each in its own share of the height, and copy out whole."""
    text, (left, top, right, bottom) = "竖排文字识别中", (800, 300, 860, 1140)
    out = textlayer.searchable_pdf(build(lambda canvas: None), [blank_page([(text, box(left, top, right, bottom))])])
    pdf = pdfium.PdfDocument(out)
    textpage = pdf[0].get_textpage()
    assert textpage.get_text_range() == text
    assert text in "".join(pdftotext(write(tmp_path / "out.pdf", out)).split())
    to_page = pdfium.PdfPosConv(pdf[0], (0, 0, 1700, 2200, 0)).to_page
    for index in range(len(text)):  # in points: y grows upwards
        char_left, char_bottom, char_right, char_top = textpage.get_charbox(index, loose=True)
        (x_min, y_max), (x_max, y_min) = (
            to_page(left, top + index * 840 // len(text)),
            to_page(right, top + (index + 1) * 840 // len(text)),
        )
        assert (char_left, char_right) == pytest.approx((x_min, x_max), abs=0.5)
        assert (char_bottom, char_top) == pytest.approx((y_min, y_max), abs=0.5)


def test_characters_beyond_the_bmp_copy_out_whole(tmp_path):
    text = "𠀀 U+20000, 😀 and 𝄞 next to 汉字 and Ünïcode"
    han = "".join(chr(0x4E00 + 7 * n) for n in range(120))  # more characters than a ToUnicode block holds
    lines = [(text, box(200, 300, 1500, 360)), ("", box(200, 400, 900, 460)), (han, box(100, 500, 1600, 540))]
    out = textlayer.searchable_pdf(build(lambda canvas: None), [blank_page(lines)])
    assert pdfium.PdfDocument(out)[0].get_textpage().get_text_range().split("\r\n") == [text, han]  # the empty line: skipped
    assert {text, han} <= set(pdftotext(write(tmp_path / "out.pdf", out)).split("\n"))
    pdf = open_pdf(out)
    cmap = pdf.pages[0].obj.Resources.Font.OCR.ToUnicode.read_bytes().decode()
    assert [int(n) for n in re.findall(r"(\d+) beginbfchar", cmap)] == [100, len(set(text + han)) - 100]
    assert "<0001> <D840DC00>" in cmap  # U+20000, the first character, as a surrogate pair


# Nothing visible changes; nothing is re-encoded.


@pytest.mark.parametrize("which", ["scan", "turned_scan"])
def test_renders_are_pixel_identical(which, request, tmp_path):
    doc = request.getfixturevalue(which)
    before, after = pdfium_renders(doc.data), pdfium_renders(doc.out)
    assert len(before) == len(after) == len(doc.pages)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    poppler_before = poppler_renders(write(tmp_path / "in.pdf", doc.data))
    assert poppler_renders(write(tmp_path / "out.pdf", doc.out)) == poppler_before


def test_output_is_at_most_5_percent_larger(scan):
    added = len(scan.out) - len(scan.data)
    print(f"{len(scan.data)} → {len(scan.out)} bytes: +{added} ({added / len(ocr_pages(scan)):.0f} per OCR'd page)")
    assert 0 < added <= 0.05 * len(scan.data)


def test_pages_keep_their_content_and_images(scan):
    before, after = open_pdf(scan.data), open_pdf(scan.out)
    assert after.check_pdf_syntax() == []
    for page in scan.pages:
        old, new = before.pages[page["page"] - 1], after.pages[page["page"] - 1]
        old_streams, new_streams = streams(old.obj.Contents), streams(new.obj.Contents)
        if page["source"] == "ocr":  # q, the page's own streams, then Q and the text, Flate-compressed
            assert new_streams[1:-1] == old_streams
            assert zlib.decompress(new_streams[0]) == b"q\n" and zlib.decompress(new_streams[-1]).startswith(b"Q\nBT ")
        else:
            assert new_streams == old_streams and set(new.obj.keys()) == set(old.obj.keys())
            assert set(new.obj.Resources.Font.keys()) == set(old.obj.Resources.Font.keys())
        embedded = [[image.read_raw_bytes() for image in each.get_images().values()] for each in (old, new)]
        assert embedded[0] == embedded[1] and len(embedded[0]) == (page["source"] == "ocr")


def streams(contents: pikepdf.Object) -> list[bytes]:
    items = contents if isinstance(contents, pikepdf.Array) else [contents]
    return [item.read_raw_bytes() for item in items]


def test_one_font_and_one_tounicode_serve_the_document(scan):
    pdf = open_pdf(scan.out)
    fonts = {page.obj.Resources.Font.OCR.objgen for page, read in zip(pdf.pages, scan.pages) if read["source"] == "ocr"}
    assert len(fonts) == 1
    font = pdf.get_object(fonts.pop())
    assert font.Subtype == "/Type0" and font.Encoding == "/Identity-H"
    cid_font = font.DescendantFonts[0]
    assert cid_font.Subtype == "/CIDFontType2" and cid_font.CIDToGIDMap == "/Identity" and cid_font.DW == glyphless.ADVANCE
    cmap = font.ToUnicode.read_bytes().decode()
    counts = [int(n) for n in re.findall(r"(\d+) beginbfchar", cmap)]
    characters = {char for page in ocr_pages(scan) for line in page["lines"] for char in line["text"]}
    assert sum(counts) == len(characters) and max(counts) <= 100
    check_truetype(cid_font.FontDescriptor.FontFile2.read_bytes(), glyphs=len(characters) + 1)


def check_truetype(font: bytes, glyphs: int) -> None:
    """The embedded font: the required tables, each one's checksum and the whole font's right, and
    FreeType (the rasterizer of pdfium and poppler) loads it."""
    count = int.from_bytes(font[4:6], "big")
    entries = [struct.unpack(">4sIII", font[12 + 16 * i : 28 + 16 * i]) for i in range(count)]
    tables = {tag: font[offset : offset + length] for tag, _, offset, length in entries}
    assert set(tables) == {b"head", b"hhea", b"maxp", b"hmtx", b"loca", b"glyf", b"cmap", b"name", b"post", b"OS/2"}
    for tag, checksum, _, _ in entries:
        data = tables[tag][:8] + bytes(4) + tables[tag][12:] if tag == b"head" else tables[tag]  # without checkSumAdjustment
        assert words_sum(data) == checksum, tag
    assert words_sum(font) == 0xB1B0AFBA  # what checkSumAdjustment is for
    assert struct.unpack(">H", tables[b"maxp"][4:6])[0] == glyphs
    assert ImageFont.truetype(io.BytesIO(font), 20).getname() == ("GlyphLessFont", "Regular")
    assert len(zlib.compress(font)) < 1500 + glyphs


def words_sum(data: bytes) -> int:
    data += bytes(-len(data) % 4)
    return sum(int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data), 4)) % 2**32


# Pages' own quirks: graphics states left behind, inherited resources, object streams, XMP metadata.


def test_a_graphics_state_left_open_or_popped_does_not_move_the_text():
    pdf = open_pdf(build(written(["drawn first"]), written(["drawn first"])))
    pdf.pages[0].contents_add(pikepdf.Stream(pdf, b"q 0.5 0 0 0.5 100 100 cm q\n"))  # leaves two q open
    pdf.pages[1].contents_add(pikepdf.Stream(pdf, b"Q Q Q 2 0 0 2 50 50 cm\n"))  # pops three it never pushed
    data = save(pdf)
    pages = [{**blank_page([("where it belongs", box(300, 400, 1100, 460))]), "page": number} for number in (1, 2)]
    out = textlayer.searchable_pdf(data, pages)
    assert all(np.array_equal(a, b) for a, b in zip(pdfium_renders(out), pdfium_renders(data)))
    assert [text for text, _ in texts_in_boxes(out, pages)] == ["where it belongs"] * 2
    result = open_pdf(out)
    wrapped = [[stream.read_bytes() for stream in page.obj.Contents] for page in result.pages]
    assert [(page[0], page[-1].split(b"BT")[0]) for page in wrapped] == [(b"q\n", b"Q\n" * 3), (b"q\n" * 4, b"Q\n")]


def test_inherited_resources_are_kept_and_no_font_name_clashes():
    """Page 2 gets its own /Resources, the inherited ones and our font under a name not taken; page 1,
    whose OCR found no text, is left as it is, inheriting its resources."""
    data = build(written(WRITTEN[0]), written(WRITTEN[1]))
    pdf = open_pdf(data)
    shared = pdf.pages[0].obj.Resources
    shared.Font.OCR = shared.Font.F1  # a name of ours, taken
    pdf.Root.Pages.Resources = pdf.make_indirect(shared)
    for page in pdf.pages:
        del page.obj.Resources
    data = save(pdf)
    pages = [
        blank_page([(" ", box(200, 1000, 1000, 1060))]),
        {**blank_page([("over the text", box(200, 1000, 1000, 1060))]), "page": 2},
    ]
    out = textlayer.searchable_pdf(data, pages)
    assert all(np.array_equal(a, b) for a, b in zip(pdfium_renders(out), pdfium_renders(data)))
    result = open_pdf(out)
    given = open_pdf(data)
    assert streams(result.pages[0].obj.Contents) == streams(given.pages[0].obj.Contents)
    assert "/Resources" not in result.pages[0].obj and set(result.Root.Pages.Resources.Font.keys()) == {"/F1", "/OCR"}
    fonts = result.pages[1].obj.Resources.Font
    assert set(fonts.keys()) == {"/F1", "/OCR", "/OCR1"} and fonts.OCR1.Subtype == "/Type0"
    assert pdfium.PdfDocument(out)[1].get_textpage().get_text_range().endswith("over the text")


def test_object_streams_stay_and_xmp_metadata_needs_no_lxml(scan, monkeypatch):
    pdf = open_pdf(scan.data)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    xmp += b'<rdf:Description xmlns:pdf="http://ns.adobe.com/pdf/1.3/" pdf:PDFVersion="1.3"/></rdf:RDF></x:xmpmeta>'
    pdf.Root.Metadata = pikepdf.Stream(pdf, xmp)
    data = save(pdf, object_stream_mode=pikepdf.ObjectStreamMode.generate)
    for module in [name for name in sys.modules if name == "lxml" or name.startswith(("lxml.", "pikepdf.models.metadata"))]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "lxml", None)  # the lean image has none
    out = textlayer.searchable_pdf(data, scan.pages)
    assert out.count(b"/ObjStm") == data.count(b"/ObjStm") >= 1
    assert open_pdf(out).Root.Metadata.read_bytes() == open_pdf(data).Root.Metadata.read_bytes()


# Image uploads.


def exif_rotated(image: Image.Image) -> bytes:
    """A JPEG stored turned a quarter left, with EXIF orientation 6 (turn it right to show it)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def encoded(image: Image.Image, kind: str) -> bytes:
    if kind == "jpeg-exif6":
        return exif_rotated(image)
    buffer = io.BytesIO()
    image.save(buffer, kind.upper(), **({"quality": 90} if kind == "jpeg" else {}))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["png", "jpeg", "jpeg-exif6"])
def test_an_image_becomes_a_searchable_page_showing_it_as_decoded(kind, service, pages):
    data = encoded(Image.fromarray(pages["mixed"].image[:, :, ::-1]), kind)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    doc = document(service, data)
    assert [(page["width"], page["height"]) for page in doc.pages] == [decoded.shape[1::-1]]
    pdf = pdfium.PdfDocument(doc.out)
    assert len(pdf) == 1
    page_width, _ = pdf[0].get_size()
    render = pdf[0].render(scale=decoded.shape[1] / page_width).to_numpy()
    assert render.shape == decoded.shape
    difference = np.abs(render.astype(int) - decoded.astype(int))
    if kind == "png":
        assert difference.max() == 0
    else:  # pdfium's and OpenCV's JPEG decoders may round differently; the data is the file's own
        assert difference.mean() < 1.0 and np.percentile(difference, 99.9) <= 8
        pdf = open_pdf(doc.out)
        image = next(iter(pdf.pages[0].get_images().values()))
        assert image.Filter == "/DCTDecode" and image.read_raw_bytes() == data
    found = texts_in_boxes(doc.out, doc.pages)
    assert len(found) == 4 and [text for text, _ in found] == [wanted for _, wanted in found]


@pytest.mark.parametrize(
    "kind, orientation",
    [("PNG", n) for n in range(1, 9)] + [("WEBP", 6), ("TIFF", 6), ("TIFF", 3), ("TIFF-G4", 8)],
)
def test_every_exif_orientation_shows_as_opencv_decodes_it(kind, orientation, pages):
    """OpenCV turns and mirrors PNG, JPEG and TIFF images as their EXIF orientation says, not WebP; Pillow
    turns TIFFs as it decodes them for img2pdf, except Group 4 ones, which img2pdf embeds as they are."""
    image = Image.fromarray(pages["mixed"].image[:, :, ::-1])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    if kind == "TIFF-G4":
        image.convert("1").save(buffer, "TIFF", compression="group4", exif=exif.tobytes())
    else:
        image.save(buffer, kind, exif=exif.tobytes(), **({"lossless": True} if kind == "WEBP" else {}))
    decoded = images.to_bgr(images.read_file(buffer.getvalue(), 0, 0))
    page = {"page": 1, "source": "ocr", "dpi": None, "width": 1, "height": 1, "lines": []}  # its size: the decoded image's
    pdf = pdfium.PdfDocument(textlayer.searchable_pdf(buffer.getvalue(), [page]))
    render = pdf[0].render(scale=decoded.shape[1] / pdf[0].get_size()[0]).to_numpy()
    assert render.shape == decoded.shape and np.array_equal(render, decoded)


# Refusals.


def plain_pdf() -> bytes:
    return build(written(WRITTEN[0]))


def encrypted() -> bytes:
    return save(open_pdf(plain_pdf()), encryption=pikepdf.Encryption(owner="x", user=""))


def broken_startxref() -> bytes:
    data = plain_pdf()
    offset = int(re.search(rb"startxref\s+(\d+)", data)[1])
    return data.replace(b"startxref\n%d" % offset, b"startxref\n%d" % (offset + 40))


def broken_xref_table() -> bytes:
    data = plain_pdf()
    table = data.rindex(b"\nxref\n") + 6
    return data[:table] + re.sub(rb"\d{10} 00000 n", b"0000000009 00000 n", data[table:], count=3)


def signed(flags: int = 3, value: bool = True) -> bytes:
    """A signature field whose widget inherits /FT /Sig from its parent field, signed (a /V signature
    dictionary, not a valid signature) if ``value``; /SigFlags ``flags`` (0: none)."""
    pdf = open_pdf(plain_pdf())
    widget = pdf.make_indirect(pikepdf.Dictionary(Type=Name.Annot, Subtype=Name.Widget, Rect=[0, 0, 0, 0], T=String("1")))
    if value:
        widget.V = pdf.make_indirect(
            pikepdf.Dictionary(
                Type=Name.Sig,
                Filter=Name("/Adobe.PPKLite"),
                SubFilter=Name("/adbe.pkcs7.detached"),
                ByteRange=[0, 0, 0, 0],
                Contents=String(bytes(64)),
            )  # fmt: skip
        )
    widget.Parent = pdf.make_indirect(pikepdf.Dictionary(FT=Name.Sig, T=String("Signature"), Kids=[widget]))
    widget.P, pdf.pages[0].obj.Annots = pdf.pages[0].obj, [widget]
    pdf.Root.AcroForm = pikepdf.Dictionary(Fields=[widget.Parent], **({"SigFlags": flags} if flags else {}))
    return save(pdf)


@pytest.mark.parametrize(
    "make, reason",
    [
        (encrypted, "encrypted: .* send an unencrypted copy"),
        (broken_startxref, "damaged .* `qpdf in.pdf out.pdf`"),
        (broken_xref_table, "damaged .* `qpdf in.pdf out.pdf`"),
        (signed, "digitally signed: .* invalidate the signature"),
        (lambda: signed(flags=0), "digitally signed"),  # a signed /Sig field alone
        (lambda: signed(flags=1, value=False), "digitally signed"),  # SignaturesExist alone
    ],
)
def test_refuses_what_a_rewrite_would_harm(make, reason):
    data = make()
    assert pdfium.PdfDocument(data)  # each opens in a viewer: only a rewrite would harm it
    with pytest.raises(InputError, match=reason):
        textlayer.check_rewritable(data)
    with pytest.raises(InputError, match=reason):
        textlayer.searchable_pdf(data, [{**blank_page([]), "page": 1}])


def test_accepts_plain_pdfs_images_and_unsigned_signature_fields(pages):
    textlayer.check_rewritable(plain_pdf())
    textlayer.check_rewritable(signed(flags=0, value=False))  # an empty signature field: nothing to break
    textlayer.check_rewritable(encoded(Image.fromarray(pages["english"].image), "png"))


def test_a_form_deeper_than_python_recursion_or_cyclic_is_walked(pages):
    """A hostile field tree: 5,000 nested kids with the signed field at the bottom, and a cycle."""
    pdf = open_pdf(plain_pdf())
    field = pdf.make_indirect(pikepdf.Dictionary(FT=Name.Sig, T=String("deep"), V=pikepdf.Dictionary(Type=Name.Sig)))
    for _ in range(5000):
        field = pdf.make_indirect(pikepdf.Dictionary(T=String("level"), Kids=[field]))
    pdf.Root.AcroForm = pikepdf.Dictionary(Fields=[field])
    with pytest.raises(InputError, match="digitally signed"):
        textlayer.check_rewritable(save(pdf))
    pdf = open_pdf(plain_pdf())
    loop = pdf.make_indirect(pikepdf.Dictionary(T=String("loop")))
    loop.Kids = [loop]
    pdf.Root.AcroForm = pikepdf.Dictionary(Fields=[loop])
    textlayer.check_rewritable(save(pdf))


def test_a_pdf_with_its_own_text_on_every_page_comes_back_as_it_was(service):
    data = build(written(WRITTEN[0]), written(WRITTEN[1]))
    pages = list(service.read_document(data, documents.Options()))
    assert [page["source"] for page in pages] == ["text-layer", "text-layer"]
    assert textlayer.searchable_pdf(data, pages) == data
    with pytest.raises(InputError, match="^the PDF is encrypted"):  # refused all the same
        textlayer.searchable_pdf(encrypted(), [])


def test_pages_qpdf_does_not_find_are_refused():
    page = {**blank_page([("page three", box(100, 100, 600, 150))]), "page": 3}
    with pytest.raises(InputError, match="^the PDF is damaged: PDFium and qpdf find different numbers of pages"):
        textlayer.searchable_pdf(plain_pdf(), [page])


def test_damaged_pdfs_are_refused_or_rewritten_never_a_crash(scan):
    """400 mutated copies of a real scan (bytes flipped, runs zeroed, cut short): each is refused with
    an InputError, or comes back as a PDF that opens — no other exception reaches the worker."""
    rng = np.random.default_rng(21)
    data, page = scan.data, {**blank_page([("fuzz 测试", box(100, 100, 600, 150))]), "page": 1}
    outcomes = {"refused": 0, "rewritten": 0}
    for _ in range(400):
        mutated = bytearray(data)
        for _ in range(rng.integers(1, 8)):
            start = int(rng.integers(0, len(mutated)))
            kind = rng.integers(0, 3)
            if kind == 0:
                mutated[start] = int(rng.integers(0, 256))
            elif kind == 1:
                mutated[start : start + int(rng.integers(1, 64))] = bytes(64)[: len(mutated[start : start + 64])]
            else:
                del mutated[start:]
                mutated += b"%%EOF\n" if rng.integers(0, 2) else b""
        try:
            out = textlayer.searchable_pdf(bytes(mutated), [page])
        except InputError:
            outcomes["refused"] += 1
            continue
        assert out.startswith(b"%PDF-") and len(pdfium.PdfDocument(out)) >= 1
        outcomes["rewritten"] += 1
    assert outcomes["refused"] and outcomes["rewritten"], outcomes  # both paths were taken

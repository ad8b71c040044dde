"""Searchable PDFs: an invisible text layer over the OCR'd pages, so that viewers find, select and copy their text.

``Rewrite`` opens the uploaded file, refusing what cannot take a text layer, and ``searchable`` lays
it over the pages as ``ocrhub.documents`` (or, for an image, the service) read them. An image file
becomes a one-page PDF first (img2pdf: JPEG, PNG and Group 4 TIFF data embedded as they are, other
formats losslessly), turned and mirrored as its EXIF orientation says wherever OpenCV's IMREAD_COLOR
applies it, so that the page shows the very pixels that were OCR'd.

A pixel (x, y) of a page read at ``width``×``height`` maps linearly onto the page as pdfium renders it:
the CropBox intersected with the MediaBox, turned clockwise by /Rotate, each inherited from the page
tree or not (/Rotate in whole quarter turns, negative or over 360 alike). /UserUnit is ignored, as
pdfium, which rendered the pages for OCR, ignores it. Each line is one invisible text object (render
mode 3) at font size 1 whose text matrix lays the line's characters (spaces too, each one advance wide)
along the box's top edge, in its direction and over exactly its length, and the font's em box (descent
to ascent) over the box's height: rotated and skewed boxes work, and a selection covers the line's ink.
A vertical line (a box 1.5 times taller than wide, which the recognizer reads turned a quarter) runs
down its box. A line tilted so little that levelling it moves its ends by at most half its height (a
page scanned a degree or two askew) is laid level: poppler breaks tilted lines apart.

The font is ``ocrhub.glyphless``'s, under a Type0 font (Identity-H, CIDToGIDMap Identity) whose one
ToUnicode CMap serves the whole document; one font object serves every page.

Pages left as they are, byte for byte: those not OCR'd, not read, or with no text. An OCR'd page keeps
its content streams, wrapped in q … Q (so that a graphics state they leave behind, or their stray Q,
do not move the text), followed by a Flate-compressed text stream; it gets its own copy of its
/Resources, with the font under a name it does not use. No stream is decoded or re-encoded, object
streams stay as they were. ``check_rewritable`` refuses what a rewrite would harm: encrypted PDFs,
damaged ones (qpdf had to repair them) and signed ones. pikepdf's XMP API is not used: the lean image
has no lxml.
"""

from __future__ import annotations

import io
import math
import re
import zlib
from collections.abc import Callable, Iterable

import img2pdf
import pikepdf
from pikepdf import Array, Dictionary, Name
from PIL import Image

from ocrhub import glyphless
from ocrhub.documents import Page, sniff
from ocrhub.errors import InputError
from ocrhub.stages.crop import TALL

LEVEL_DRIFT = 1.0  # a line drifting across its axis by at most this many heights is laid level
_LETTER = (0.0, 0.0, 612.0, 792.0)  # pdfium's MediaBox for a page without one
_EXIF_FORMATS = ("JPEG", "MPO", "PNG", "TIFF")  # whose EXIF orientation cv2.IMREAD_COLOR applies
_ENCRYPTED = "the PDF is encrypted: adding a text layer would remove or need its owner password; send an unencrypted copy"
_SIGNED = "the PDF is digitally signed: adding a text layer would invalidate the signature; send an unsigned copy"
Point = tuple[float, float]


class Rewrite:
    """An uploaded file (PDF or image) opened to be given a text layer. Opening it refuses, with an
    ``InputError``, what cannot take one without harm, so a worker opens it before reading any page,
    and ``searchable`` writes the layer once they are read, from the document already opened and checked."""

    def __init__(self, data: bytes):
        self.data, self.kind = data, sniff(data)
        if self.kind is None:
            raise InputError("not a PDF nor an image file: send a PDF, PNG, JPEG, TIFF, BMP or WebP")
        self.pdf = _open(data) if self.kind == "pdf" else None

    def __enter__(self) -> Rewrite:
        return self

    def __exit__(self, *_exc) -> None:
        if self.pdf is not None:
            self.pdf.close()

    def searchable(self, pages: Iterable[Page]) -> bytes:
        """The PDF, or the image file as a PDF, with an invisible text layer on each page whose source is
        OCR; a PDF that gets no text at all (its pages had their own) comes back as it was sent, byte for byte."""
        read = [page for page in pages if page["source"] == "ocr"]
        if self.pdf is not None and not any(line["text"].strip() for page in read for line in page["lines"]):
            return self.data
        if self.pdf is not None:
            return _written(self.pdf, read, {page["page"]: (page["width"], page["height"]) for page in read})
        pdf, size = _image_pdf(self.data)
        with pdf:
            return _written(pdf, read, {1: size})  # the decoded image's size, whatever the page says


def check_rewritable(data: bytes) -> None:
    """Raise ``InputError`` if ``data`` cannot be given a text layer without harm (``Rewrite``)."""
    with Rewrite(data):
        pass


def searchable_pdf(data: bytes, pages: Iterable[Page]) -> bytes:
    """``data`` with an invisible text layer over its OCR'd ``pages`` (``Rewrite.searchable``)."""
    with Rewrite(data) as rewrite:
        return rewrite.searchable(pages)


def _written(pdf: pikepdf.Pdf, read: list[Page], sizes: dict[int, tuple[int, int]]) -> bytes:
    """``pdf`` saved with the text of the ``read`` pages laid over them."""
    codes = glyphless.codes(line["text"] for page in read for line in page["lines"])
    font = _font(pdf, codes)
    if any(page["page"] > len(pdf.pages) for page in read):  # pdfium, which read it, found more pages
        raise InputError(
            "the PDF is damaged: PDFium and qpdf find different numbers of pages in it; repair it first, "
            "e.g. with `qpdf in.pdf out.pdf`, and send the repaired file"
        )
    for page in read:
        _add_text(pdf, pdf.pages[page["page"] - 1], page["lines"], sizes[page["page"]], font, codes)
    out = io.BytesIO()
    pdf.save(
        out, min_version="1.3", fix_metadata_version=False, compress_streams=False,
        stream_decode_level=pikepdf.StreamDecodeLevel.none, object_stream_mode=pikepdf.ObjectStreamMode.preserve,
    )  # fmt: skip
    return out.getvalue()


# Refusals.


def _open(data: bytes) -> pikepdf.Pdf:
    try:  # pikepdf would otherwise copy what pages inherit from the page tree onto every page
        pdf = pikepdf.open(io.BytesIO(data), inherit_page_attributes=False)
    except pikepdf.PasswordError:
        raise InputError(_ENCRYPTED) from None
    except pikepdf.PdfError as err:
        raise InputError(_damaged(str(err))) from None
    try:
        reason = _ENCRYPTED if pdf.is_encrypted else _damage(pdf) or (_SIGNED if _signed(pdf) else None)
    except pikepdf.PdfError as err:  # an object qpdf could not even repair
        reason = _damaged(str(err))
    if reason:
        pdf.close()
        raise InputError(reason)
    return pdf


def _damage(pdf: pikepdf.Pdf) -> str | None:
    """What qpdf repaired, opening the file or parsing its objects (a broken xref table shows only then)."""
    for _ in pdf.objects:  # each object is parsed as it is taken (a null one comes as None)
        pass
    warnings = pdf.get_warnings()
    return _damaged(*warnings) if warnings else None


def _damaged(*problems: str) -> str:
    detail = "; ".join(re.sub(r"^stream <[^>]*>:? ?", "", problem) for problem in problems[:2])[:200]
    return f"the PDF is damaged (qpdf: {detail}); repair it first, e.g. with `qpdf in.pdf out.pdf`, and send the repaired file"


def _signed(pdf: pikepdf.Pdf) -> bool:
    """/SigFlags says signatures exist, or a signature field (/FT is inherited by kids) has a value."""
    form = pdf.Root.get("/AcroForm")
    if not isinstance(form, Dictionary):
        return False
    flags = form.get("/SigFlags", 0)
    return isinstance(flags, int) and bool(flags & 1) or _signature_value(form.get("/Fields"))


def _signature_value(fields: pikepdf.Object | None) -> bool:
    """A signature field with a value anywhere in the field tree, walked with a stack (a hostile tree
    may be deeper than Python's recursion, or a cycle: a field is visited once)."""
    stack, seen = [(fields, None)], set()
    while stack:
        fields, kind = stack.pop()
        for field in fields if isinstance(fields, Array) else ():
            if not isinstance(field, Dictionary) or field.objgen in seen:
                continue
            if field.is_indirect:  # only indirect objects can make a cycle
                seen.add(field.objgen)
            own = field.get("/FT", kind)  # a kid inherits its parent's field type
            if own == Name.Sig and "/V" in field:
                return True
            stack.append((field.get("/Kids"), own))
    return False


# Image files.


def _image_pdf(data: bytes) -> tuple[pikepdf.Pdf, tuple[int, int]]:
    """A one-page PDF showing the image as OpenCV decodes it, and that image's size in pixels."""
    with Image.open(io.BytesIO(data)) as image:
        alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info  # read IMREAD_UNCHANGED
        orientation = image.getexif().get(0x0112, 1) if image.format in _EXIF_FORMATS and not alpha else 1
        # img2pdf embeds these undecoded; Pillow, which decodes the others for it, turns a TIFF as it does
        undecoded = image.format in ("JPEG", "MPO", "PNG") or image.info.get("compression") == "group4"
        if not undecoded and orientation in range(5, 9):  # img2pdf would take the size from before the turn
            data = _turned_tiff(image)
    try:
        pdf = pikepdf.open(io.BytesIO(img2pdf.convert(data, rotation=img2pdf.Rotation.none, first_frame_only=True)))
    except Exception as err:  # noqa: BLE001 - img2pdf refuses some images (16-bit with alpha, ...), each its own way
        raise InputError(f"cannot make a PDF of this image ({err}); send it as PNG or JPEG") from None
    return pdf, _orient(pdf, pdf.pages[0], orientation if undecoded and orientation in range(1, 9) else 1)


def _turned_tiff(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "TIFF", compression="tiff_adobe_deflate")  # as Pillow decodes it: turned, lossless
    return buffer.getvalue()


def _orient(pdf: pikepdf.Pdf, page: pikepdf.Page, orientation: int) -> tuple[int, int]:
    """Draw the page's image turned and mirrored as EXIF ``orientation`` (1-8) says, on a page of its
    shape; the image's size as shown."""
    (name, image), (_, _, width, height) = next(iter(page.obj.Resources.XObject.items())), map(float, page.obj.MediaBox)
    shown_size = (int(image.Width), int(image.Height))
    if orientation >= 5:
        width, height, shown_size = height, width, shown_size[::-1]
        page.obj.MediaBox = Array([0, 0, width, height])

    def shown(x: float, y: float) -> Point:  # a point of the stored image (fractions across and down) → user space
        x, y = (y, x) if orientation >= 5 else (x, y)
        x, y = (1 - x if orientation in (2, 3, 6, 7) else x), (1 - y if orientation in (3, 4, 7, 8) else y)
        return x * width, (1 - y) * height

    (ox, oy), (ux, uy), (vx, vy) = shown(0, 1), shown(1, 1), shown(0, 0)  # image space (0, 0), (1, 0), (0, 1)
    page.obj.Contents = _stream(pdf, f"q {_numbers((ux - ox, uy - oy, vx - ox, vy - oy, ox, oy))} cm {name} Do Q\n")
    return shown_size


# Page geometry.


def _page_mapping(page: pikepdf.Page, size: tuple[int, int]) -> Callable[[float, float], Point]:
    """Pixels of the page as rendered at ``size`` → user space."""
    media = _rect(_inherited(page.obj, "/MediaBox")) or _LETTER
    crop = _rect(_inherited(page.obj, "/CropBox")) or media
    left, bottom, right, top = (*map(max, crop[:2], media[:2]), *map(min, crop[2:], media[2:]))
    turns = _quarter_turns(_inherited(page.obj, "/Rotate"))

    def to_user(x: float, y: float) -> Point:
        u, v = x / size[0], y / size[1]  # fractions across and down the page as shown
        for _ in range(turns):  # undo a quarter turn clockwise
            u, v = v, 1 - u
        return left + u * (right - left), top - v * (top - bottom)

    return to_user


def _quarter_turns(rotate: object) -> int:
    """pdfium's reading of /Rotate: whole quarter turns, truncated towards zero, modulo 4 (-90 is 270)."""
    try:
        return int(int(rotate) / 90) % 4
    except (TypeError, ValueError):
        return 0


def _inherited(obj: pikepdf.Object, key: str) -> pikepdf.Object | None:
    """A page attribute, from the page or the nearest node above it in the page tree that has it."""
    for _ in range(64):  # a deeper tree is a cycle
        if key in obj:
            return obj[key]
        obj = obj.get("/Parent")
        if not isinstance(obj, Dictionary):
            break
    return None


def _rect(value: pikepdf.Object | None) -> tuple[float, ...] | None:
    if not isinstance(value, Array) or len(value) != 4:
        return None
    x0, y0, x1, y1 = (float(v) for v in value)
    rect = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    return rect if rect[2] > rect[0] and rect[3] > rect[1] else None


# The text layer.


def _add_text(pdf: pikepdf.Pdf, page: pikepdf.Page, lines: list, size: tuple[int, int], font, codes: dict[str, int]) -> None:
    to_user, name = _page_mapping(page, size), _font_name(page)
    corners = (_levelled(_as_read(line["text_region"])) for line in lines)
    objects = [_text_object(line["text"], [to_user(*p) for p in box], name, codes) for line, box in zip(lines, corners)]
    if not any(objects):
        return
    saves, restores = _unbalanced(page)
    _own_fonts(page)[name] = font
    page.contents_add(_stream(pdf, "q\n" * saves), prepend=True)
    page.contents_add(_stream(pdf, "Q\n" * restores + "".join(filter(None, objects))))


def _font_name(page: pikepdf.Page) -> Name:
    """A font name that the page's resources, its own or inherited, do not use."""
    resources = _inherited(page.obj, "/Resources")
    fonts = resources.get("/Font") if isinstance(resources, Dictionary) else None
    used = set(fonts.keys()) if isinstance(fonts, Dictionary) else set()
    number = 0
    while f"/OCR{number or ''}" in used:
        number += 1
    return Name(f"/OCR{number or ''}")


def _own_fonts(page: pikepdf.Page) -> Dictionary:
    """The page's /Font dictionary, once the page has its own copies of its /Resources and /Font (inherited
    or shared ones are copied, their entries shared: no other page changes)."""
    resources = _inherited(page.obj, "/Resources")
    page.obj.Resources = Dictionary(dict(resources.items()) if isinstance(resources, Dictionary) else {})
    fonts = page.obj.Resources.get("/Font")
    page.obj.Resources.Font = Dictionary(dict(fonts.items()) if isinstance(fonts, Dictionary) else {})
    return page.obj.Resources.Font


def _unbalanced(page: pikepdf.Page) -> tuple[int, int]:
    """How many q to put before the page's content so that its stray Q pop none of ours (one if it has
    none), and how many Q after it to restore the state it started in."""
    depth = lowest = 0
    try:
        for instruction in pikepdf.parse_content_stream(page, "q Q"):
            depth += 1 if str(instruction.operator) == "q" else -1
            lowest = min(lowest, depth)
    except pikepdf.PdfError:
        return 1, 1
    return 1 - lowest, 1 - lowest + depth


def _as_read(region: list) -> list:
    """A line's corners as its text was read: top-left, top-right, bottom-right, bottom-left. A box
    ``TALL`` times taller than wide was turned a quarter counterclockwise to be read (``crop_line``):
    its text runs down the box, the tops of its characters to the right."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = region
    width = int(max(math.hypot(x1 - x0, y1 - y0), math.hypot(x2 - x3, y2 - y3)))
    height = int(max(math.hypot(x3 - x0, y3 - y0), math.hypot(x2 - x1, y2 - y1)))
    return region[1:] + region[:1] if width and height / width >= TALL else region


def _levelled(corners: list) -> list:
    """A slightly tilted line's corners turned level (or plumb) about its centre, when no end moves by
    more than half its height (``LEVEL_DRIFT``): poppler (pdftotext, Evince) builds lines from baselines
    and breaks a tilted one apart (at 2-3° on rendered pages), while a selection of the levelled line
    still covers most of its ink."""
    (x0, y0), (x1, y1), _, (x3, y3) = corners
    length, height = math.hypot(x1 - x0, y1 - y0), math.hypot(x3 - x0, y3 - y0)
    along = (math.copysign(1, x1 - x0), 0) if abs(x1 - x0) >= abs(y1 - y0) else (0, math.copysign(1, y1 - y0))
    drift = abs((x1 - x0) * along[1] - (y1 - y0) * along[0])  # across the nearest axis, over the line
    if not height or drift > LEVEL_DRIFT * height:
        return corners
    up = (-along[1], along[0]) if (x0 - x3) * -along[1] + (y0 - y3) * along[0] > 0 else (along[1], -along[0])
    cx, cy = (sum(point[0] for point in corners) / 4, sum(point[1] for point in corners) / 4)
    a, b = (along[0] * length / 2, along[1] * length / 2), (up[0] * height / 2, up[1] * height / 2)
    return [
        (cx - a[0] + b[0], cy - a[1] + b[1]),
        (cx + a[0] + b[0], cy + a[1] + b[1]),
        (cx + a[0] - b[0], cy + a[1] - b[1]),
        (cx - a[0] - b[0], cy - a[1] - b[1]),
    ]


def _text_object(text: str, corners: list[Point], font: Name, codes: dict[str, int]) -> str | None:
    """A line's text over its box: ``corners`` top-left, top-right, bottom-right, bottom-left in user space."""
    if not text.strip():
        return None
    (tlx, tly), (trx, try_), _, (blx, bly) = corners
    em, advance = glyphless.UNITS, glyphless.ADVANCE
    length, height = len(text) * advance / em, (glyphless.ASCENT - glyphless.DESCENT) / em  # in text space
    a, b = (trx - tlx) / length, (try_ - tly) / length  # x: along the top edge
    c, d = (tlx - blx) / height, (tly - bly) / height  # y: up the left edge
    e, f = blx - c * glyphless.DESCENT / em, bly - d * glyphless.DESCENT / em  # the baseline starts above the descent
    if abs(a * d - b * c) < 1e-9:
        return None
    glyphs = "".join(f"{codes[char]:04X}" for char in text)
    return f"BT {font} 1 Tf 3 Tr {_numbers((a, b, c, d, e, f))} Tm <{glyphs}> Tj ET\n"


def _numbers(values: Iterable[float]) -> str:
    """PDF numbers: four decimals (1/10000 pt), no exponent, no trailing zeros."""
    texts = (f"{value:.4f}".rstrip("0").rstrip(".") for value in values)
    return " ".join("0" if text == "-0" else text for text in texts)


def _stream(pdf: pikepdf.Pdf, text: str | bytes) -> pikepdf.Stream:
    stream = pikepdf.Stream(pdf, b"")
    stream.write(zlib.compress(text.encode() if isinstance(text, str) else text, 9), filter=Name.FlateDecode)
    return stream


# The font.


def _font(pdf: pikepdf.Pdf, codes: dict[str, int]) -> pikepdf.Object:
    """The Type0 font over the glyph-less TrueType font, with its ToUnicode CMap (``ocrhub.glyphless``)."""
    name, descent, advance, ascent = Name("/" + glyphless.FONT_NAME), glyphless.DESCENT, glyphless.ADVANCE, glyphless.ASCENT
    descriptor = Dictionary(
        Type=Name.FontDescriptor, FontName=name, Flags=4, FontBBox=[0, descent, advance, ascent], ItalicAngle=0,
        Ascent=ascent, Descent=descent, CapHeight=ascent, StemV=80, FontFile2=_stream(pdf, glyphless.truetype(len(codes) + 1)),
    )  # fmt: skip
    cid_font = Dictionary(
        Type=Name.Font, Subtype=Name.CIDFontType2, BaseFont=name, DW=advance, CIDToGIDMap=Name.Identity,
        CIDSystemInfo=Dictionary(Registry=pikepdf.String("Adobe"), Ordering=pikepdf.String("Identity"), Supplement=0),
        FontDescriptor=pdf.make_indirect(descriptor),
    )  # fmt: skip
    return pdf.make_indirect(Dictionary(
        Type=Name.Font, Subtype=Name.Type0, BaseFont=name, Encoding=Name("/Identity-H"),
        DescendantFonts=[pdf.make_indirect(cid_font)], ToUnicode=_stream(pdf, glyphless.to_unicode(codes)),
    ))  # fmt: skip

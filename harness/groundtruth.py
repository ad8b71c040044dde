"""Ground truth for OCR: pages of real typeset PDFs whose text layer is the truth, rendered and degraded;
word and line crops of that text rendered in installed fonts; and real photos transcribed by hand.

    from harness import groundtruth
    pdfs = groundtruth.fetch_pdfs(groundtruth.SOURCES, cache)      # {key: path}, SHA-256 checked
    document = pypdfium2.PdfDocument(pdfs["texlive-en"])
    lines = groundtruth.truth_lines(document[2])                   # [TruthLine(text, box in PDF points)]
    page = groundtruth.render(document[2], lines, dpi=150)         # BGR image, texts, pixel polygons
    rotated = groundtruth.degrade(page, "rotate")                  # the polygons turned with the image
    crop = groundtruth.render_crop("Revenue", groundtruth.find_font("DejaVu Serif"))
    photos, notes = groundtruth.load_photos(Path("../shared/images"))  # those of data/shared_photos.json

The PDFs come from Debian packages (``apt-get download`` of a pinned version, unpacked with
``dpkg-deb -x``, nothing installed), each pinned in ``SOURCES`` by package version and the PDF's
SHA-256. Pages were chosen by looking at them: running text in the document's body font, no
figures, tables, formulas or page-filling code listings, and fonts that differ between documents.

Truth lines: pdfium's characters in content order with their loose boxes (font ascent to descent); a
character starts a new line when its box overlaps the current line's by less than half the smaller
height, or when it jumps back left (a new line). pdfium's spaces (its own, put where words are
apart) become one space, and so does a wider gap it put none in. Hyphenation is kept as printed: a
word broken across two lines is "How-" on one and "ever" on the next (pdfium marks that hyphen; it
becomes "-"), since OCR reads the lines as printed. Texts are ``textmetrics.normalize``d.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageDraw, ImageFont

from harness import testimages
from harness.textmetrics import CJK, normalize, words
from ocrhub.documents import PDFIUM_HYPHENS
from ocrhub.fetch import sha256

Box = tuple[float, float, float, float]  # left, bottom, right, top in PDF points (origin bottom-left)
SPACE_GAP = 0.5  # a gap between two characters wider than this many line heights is a space


@dataclass(frozen=True)
class PdfSource:
    key: str  # the document's name in reports
    package: str  # the Debian package that ships it
    version: str
    member: str  # its path inside the package
    sha256: str
    pages: tuple[int, ...]  # 1-based, in file order (not the printed page numbers)
    language: str  # "en" or "zh"
    note: str  # what it is and its licence


_TEXLIVE_DOC = "./usr/share/doc/texlive-doc/"
SOURCES = (
    PdfSource(
        key="texlive-en",
        package="texlive-base",
        version="2022.20230122-3",
        member=_TEXLIVE_DOC + "texlive/texlive-en/texlive-en.pdf",
        sha256="d449da152b20ee57014ad98c4724ab3f980f1d017e2e588c08b6e6f55be3b651",
        pages=(3,),
        language="en",
        note="The TeX Live Guide 2022 (Latin Modern); public domain",
    ),
    PdfSource(
        key="btxdoc",
        package="texlive-base",
        version="2022.20230122-3",
        member=_TEXLIVE_DOC + "bibtex/base/btxdoc.pdf",
        sha256="24222cc79da935285224586202b5291d54d56f01fb084f9fc4097abc5a1866aa",
        pages=(1,),
        language="en",
        note="BibTeXing, O. Patashnik (Computer Modern); BibTeX's Knuth-style free licence",
    ),
    PdfSource(
        key="texdoc",
        package="texlive-base",
        version="2022.20230122-3",
        member=_TEXLIVE_DOC + "support/texdoc/texdoc.pdf",
        sha256="7cb502817e498b8b7ae32e53c430331ec5c0fee3c5d2558747ac484ad8a211bf",
        pages=(2,),
        language="en",
        note="Texdoc manual v3.4.1 (DejaVu Sans); GPL-3+",
    ),
    PdfSource(
        key="pdftex",
        package="texlive-base",
        version="2022.20230122-3",
        member=_TEXLIVE_DOC + "pdftex/manual/pdftex-a.pdf",
        sha256="10bc2302bf54041a29f7332aaef33782e558f51f42557015c78d8584e68b57e2",
        pages=(5,),
        language="en",
        note="The pdfTeX user manual (TeX Gyre Pagella); GNU FDL 1.2+",
    ),
    PdfSource(
        key="texlive-zh-cn",
        package="texlive-lang-chinese",
        version="2022.20230122-1",
        member=_TEXLIVE_DOC + "texlive/texlive-zh-cn/texlive-zh-cn.pdf",
        sha256="1bee53943ad19bfc5889dcc19f29db1f502172129f79d7be24e0cd7a55a32f26",
        pages=(4, 35),
        language="zh",
        note="TeX Live Guide, Simplified Chinese translation (STSongti); public domain",
    ),
    PdfSource(
        key="zhlipsum",
        package="texlive-lang-chinese",
        version="2022.20230122-1",
        member=_TEXLIVE_DOC + "latex/zhlipsum/zhlipsum.pdf",
        sha256="bcaa7e2fe66017fa756cc1db62f3c5ef98e65a255212b4001522b165155a17e3",
        pages=(1,),
        language="zh",
        note="zhlipsum manual, Chinese dummy text (Source Han Serif, Kai); LPPL 1.3c",
    ),
    PdfSource(
        key="lshort-zh-cn",
        package="texlive-lang-chinese",
        version="2022.20230122-1",
        member=_TEXLIVE_DOC + "latex/lshort-chinese/lshort-zh-cn.pdf",
        sha256="4f6b11c04054fcdbb23d6d3c8527b145d27c21abb9efa7e57f96be2b7def484c",
        pages=(14,),
        language="zh",
        note="lshort-zh-cn, the Chinese 'Not So Short Introduction to LaTeX' (Fandol Song); GNU FDL 1.3+",
    ),
)


# ------------------------------------------------------------------------------------------ fetching


def fetch_pdfs(sources: tuple[PdfSource, ...], cache: Path) -> dict[str, Path]:
    """Every source's PDF in ``cache``, downloaded (one ``apt-get download`` per package) when missing."""
    cache.mkdir(parents=True, exist_ok=True)
    paths = {source.key: cache / f"{source.key}-{source.sha256[:12]}.pdf" for source in sources}
    missing = [source for source in sources if not _verified(paths[source.key], source.sha256)]
    for package, version in dict.fromkeys((source.package, source.version) for source in missing):
        wanted = [source for source in missing if (source.package, source.version) == (package, version)]
        _extract_from_deb(package, version, {source.member: paths[source.key] for source in wanted})
        for source in wanted:
            if not _verified(paths[source.key], source.sha256):
                paths[source.key].unlink(missing_ok=True)
                raise RuntimeError(f"{source.member} of {package}={version} does not have the pinned SHA-256")
    return paths


def _verified(path: Path, digest: str) -> bool:
    return path.is_file() and sha256(path) == digest


def _extract_from_deb(package: str, version: str, members: dict[str, Path]) -> None:
    """``apt-get download`` the package into a temporary folder and copy out ``members`` (no install)."""
    with tempfile.TemporaryDirectory(prefix="ocrhub-accuracy-") as tmp:
        _run(["apt-get", "download", f"{package}={version}"], tmp, hint="run 'apt-get update' first?")
        unpacked = Path(tmp) / "unpacked"
        _run(["dpkg-deb", "-x", *map(str, Path(tmp).glob("*.deb")), str(unpacked)], tmp)
        for member, destination in members.items():
            shutil.copyfile(unpacked / member, destination)


def _run(command: list[str], cwd: str, hint: str = "") -> None:
    """A Debian tool's run; RuntimeError with its last words (and ``hint``) when it fails or is missing."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except OSError as err:
        raise RuntimeError(f"{command[0]}: {err} (the PDFs come from Debian packages)") from None
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed{' (' + hint + ')' if hint else ''}: {done.stderr.strip()[-300:]}")


# --------------------------------------------------------------------------------------- truth lines


@dataclass(frozen=True)
class TruthLine:
    text: str  # normalized
    box: Box


def truth_lines(page: pdfium.PdfPage) -> list[TruthLine]:
    """The page's text lines from its text layer, in content order."""
    lines = (_line(run) for run in _runs(_chars(page.get_textpage())))
    return [line for line in lines if line.text]


def _chars(textpage: pdfium.PdfTextPage) -> Iterator[tuple[str, Box | None]]:
    """Characters with their loose boxes; " " (no box) for pdfium's spaces and line breaks alike."""
    for index in range(textpage.count_chars()):
        char = chr(pdfium_c.FPDFText_GetUnicode(textpage, index))
        if char in PDFIUM_HYPHENS:
            yield "-", textpage.get_charbox(index, loose=True)
        elif char.isspace():
            yield " ", None
        elif char.isprintable() and char != "\ufffd":  # U+FFFD: a glyph pdfium cannot map to Unicode
            yield char, textpage.get_charbox(index, loose=True)


def _runs(chars: Iterator[tuple[str, Box | None]]) -> Iterator[list[tuple[str, Box]]]:
    """Characters grouped into lines; a space is kept as a " " before the next character of its line."""
    run: list[tuple[str, Box]] = []
    spaced = False
    for char, box in chars:
        if box is None:
            spaced = bool(run)
            continue
        if run and not _continues(run, box):
            yield run
            run, spaced = [], False
        if run and (spaced or _apart(run[-1][1], box)):
            run.append((" ", box))
        run.append((char, box))
        spaced = False
    if run:
        yield run


def _apart(previous: Box, box: Box) -> bool:
    """A gap pdfium put no space in, yet wider than a word space (text drawn in separate pieces)."""
    return box[0] - previous[2] > SPACE_GAP * (box[3] - box[1])


def _continues(run: list[tuple[str, Box]], box: Box) -> bool:
    """Whether ``box`` is on the line of ``run``: it overlaps the line's height by half the smaller
    height at least, and does not go back left of the previous character (by more than its height)."""
    bottom, top = min(b[1] for _, b in run), max(b[3] for _, b in run)
    overlap = min(top, box[3]) - max(bottom, box[1])
    height = min(top - bottom, box[3] - box[1])
    previous = run[-1][1]
    return overlap >= 0.5 * height and box[0] >= previous[0] - (box[3] - box[1])


def _line(run: list[tuple[str, Box]]) -> TruthLine:
    boxes = [box for char, box in run if char != " "]
    lefts, bottoms, rights, tops = zip(*boxes)
    return TruthLine(normalize("".join(char for char, _ in run)), (min(lefts), min(bottoms), max(rights), max(tops)))


# ----------------------------------------------------------------------------- page images, degraded


@dataclass
class PageImage:
    image: np.ndarray  # BGR
    texts: list[str]  # the truth lines
    polygons: list[np.ndarray]  # one per line: 4×2 float32 pixel points, clockwise from top-left
    dpi: int = 0  # of a rendered page; 0 for a photo
    ignored: list[np.ndarray] = field(default_factory=list)  # polygons of text that cannot be read for sure


def render(page: pdfium.PdfPage, lines: list[TruthLine], dpi: int) -> PageImage:
    """The page at ``dpi`` with its truth lines' boxes in the image's pixels (pdfium's own mapping)."""
    bitmap = page.render(scale=dpi / 72)
    to_pixels = bitmap.get_posconv(page)
    image = np.ascontiguousarray(bitmap.to_numpy()[:, :, :3])  # pdfium renders BGR(x)
    polygons = [_pixel_polygon(line.box, to_pixels) for line in lines]
    return PageImage(image, [line.text for line in lines], polygons, dpi)


def _pixel_polygon(box: Box, to_pixels: pdfium.PdfPosConv) -> np.ndarray:
    (x1, y1), (x2, y2) = to_pixels.to_bitmap(box[0], box[1]), to_pixels.to_bitmap(box[2], box[3])
    left, right, top, bottom = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float32)


ROTATION_DEGREES = 1.5  # a page fed slightly askew
JPEG_QUALITY = 50
BLUR_SIGMA_MM = 0.17  # Gaussian blur in page millimetres: 1 px at 150 dpi, 2 px at 300
NOISE_SIGMA = 12.0  # Gaussian noise, in grey levels of 255
CONDITIONS = ("clean", "jpeg", "blur", "rotate", "noise", "upside_down")  # upside_down: a page fed the wrong way round


def degrade(page: PageImage, condition: str, seed: int = 0) -> PageImage:
    """The page under one of ``CONDITIONS``; only the turns move the truth polygons."""
    image, polygons = page.image, page.polygons
    if condition == "jpeg":
        encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1]
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    elif condition == "blur":
        image = cv2.GaussianBlur(image, (0, 0), BLUR_SIGMA_MM * page.dpi / 25.4)
    elif condition == "rotate":
        image, moved = _rotated(image, [*polygons, *page.ignored], ROTATION_DEGREES)
        return PageImage(image, page.texts, moved[: len(polygons)], page.dpi, moved[len(polygons) :])
    elif condition == "upside_down":
        corner = np.array(image.shape[1::-1], np.float32)  # (width, height): a point p goes to corner - p
        turned = [[corner - polygon for polygon in group] for group in (polygons, page.ignored)]
        return PageImage(cv2.rotate(image, cv2.ROTATE_180), page.texts, turned[0], page.dpi, turned[1])
    elif condition == "noise":
        noise = np.random.default_rng(seed).normal(0, NOISE_SIGMA, image.shape[:2])[:, :, None]
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    elif condition != "clean":
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    return PageImage(image, page.texts, polygons, page.dpi, page.ignored)


def _rotated(image: np.ndarray, polygons: list[np.ndarray], degrees: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Turned counter-clockwise about the centre on a canvas grown to hold every corner, white around."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (int(np.ceil(width * cos + height * sin)), int(np.ceil(width * sin + height * cos)))
    matrix[:, 2] += (size[0] - width) / 2, (size[1] - height) / 2
    turned = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))
    moved = [(polygon @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32) for polygon in polygons]
    return turned, moved


def seed_of(*parts) -> int:
    """A stable seed from a page's name, so that every run adds the same noise."""
    return zlib.crc32(" ".join(map(str, parts)).encode())


# ------------------------------------------------------------------------------------------- photos

PHOTO_TRUTH = Path(__file__).resolve().parent / "data" / "shared_photos.json"  # its "about" says how it was made


@dataclass
class Photo:
    name: str  # the file's
    language: str
    page: PageImage


def load_photos(folder: Path, truth_file: Path = PHOTO_TRUTH) -> tuple[list[Photo], list[str]]:
    """The transcribed photos of ``folder``, and a note for each one missing there or changed since (its
    SHA-256 differs): those are left out, since their transcription would not be their truth."""
    photos, notes = [], []
    for entry in json.loads(truth_file.read_text(encoding="utf-8"))["images"]:
        path = folder / entry["file"]
        if _verified(path, entry["sha256"]):
            photos.append(_photo(entry, path.read_bytes()))
        else:
            notes.append(f"{entry['file']}: {'changed since it was transcribed' if path.is_file() else 'missing'}")
    return photos, notes


def _photo(entry: dict, data: bytes) -> Photo:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    known = [line for line in entry["lines"] if line["text"] is not None]
    page = PageImage(
        image,
        [normalize(line["text"]) for line in known],
        [_polygon(line["box"]) for line in known],
        ignored=[_polygon(line["box"]) for line in entry["lines"] if line["text"] is None],
    )
    return Photo(entry["file"], entry["language"], page)


def _polygon(points: list) -> np.ndarray:
    return np.asarray(points, np.float32).reshape(4, 2)


# ---------------------------------------------------------------------------------------- text crops

FONT_PACKAGES = "fonts-dejavu-core fonts-liberation fonts-wqy-microhei"  # apt-get install these for every font
LATIN_FONTS = {"serif": "Liberation Serif", "sans": "DejaVu Sans", "mono": "DejaVu Sans Mono"}
CROP_FONT_PX = 32  # text size of a crop, near the recognizer's 48 px input height once padded
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]{2,}")
PHRASE_CHARS = 4  # Chinese has no spaces: its "words" are runs of ideographs cut to this many


def find_font(family: str) -> str | None:
    """The file of an installed font family (fontconfig), or None (fc-match's fallback is not it)."""
    try:
        found = subprocess.run(["fc-match", "--format=%{family}\t%{file}", family], capture_output=True, text=True).stdout
    except OSError:
        return None
    families, _, path = found.partition("\t")
    return path if family in families.split(",") else None


def crop_fonts(language: str) -> dict[str, str]:
    """Name → file of the fonts crops of ``language`` are rendered in (those installed)."""
    if language == "zh":
        try:
            return {"cjk-sans": testimages.find_cjk_font()}
        except FileNotFoundError:
            return {}
    found = {name: find_font(family) for name, family in LATIN_FONTS.items()}
    return {name: path for name, path in found.items() if path}


def crop_texts(lines: list[str], language: str, count: int, kind: str, seed: int = 0) -> list[str]:
    """``count`` distinct words or lines taken from truth ``lines``, chosen at random (seeded).
    English words: tokens of 2+ characters with a letter. Chinese "words": runs of ideographs cut into
    ``PHRASE_CHARS``-long pieces (2 at least). Lines: whole truth lines of a length one crop holds."""
    if kind == "word":
        found = {token for line in lines for token in _words_of(line, language)}
    elif kind == "line":
        found = {line for line in lines if _crop_line(line, language)}
    else:
        raise ValueError(f"kind is 'word' or 'line', got {kind!r}")
    candidates = sorted(found)
    return random.Random(seed).sample(candidates, min(count, len(candidates)))


def _words_of(line: str, language: str) -> list[str]:
    if language != "zh":
        return [word for word in words(line) if len(word) >= 2 and any(char.isalpha() for char in word)]
    runs = _CJK_RUN.findall(line)
    pieces = [run[i : i + PHRASE_CHARS] for run in runs for i in range(0, len(run), PHRASE_CHARS)]
    return [piece for piece in pieces if len(piece) >= 2]


def _crop_line(line: str, language: str) -> bool:
    if language == "zh":
        return len(re.findall(f"[{CJK}]", line)) >= 8 and len(line) <= 40
    return len(line.split()) >= 3 and 20 <= len(line) <= 60


def render_crop(text: str, font_path: str, size: int = CROP_FONT_PX) -> np.ndarray | None:
    """Black text on white, its ink padded by a quarter of ``size``; None when the font lacks a glyph."""
    font = ImageFont.truetype(font_path, size)
    if not _has_glyphs(font, text):
        return None
    left, top, right, bottom = font.getbbox(text)
    pad = size // 4
    image = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), "white")
    ImageDraw.Draw(image).text((pad - left, pad - top), text, font=font, fill="black")
    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1])


def _has_glyphs(font: ImageFont.FreeTypeFont, text: str) -> bool:
    """A missing glyph draws the font's .notdef, as does a code point no font has."""
    notdef = _mask(font, "\U0010fffd")
    return all(char.isspace() or _mask(font, char) != notdef for char in set(text))


def _mask(font: ImageFont.FreeTypeFont, char: str) -> tuple:
    mask = font.getmask(char)
    return mask.size, bytes(mask)

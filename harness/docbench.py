"""The documents part of ``scripts/bench.py``: ``POST /ocr`` on a scan made of the benchmark's images.

Each image is a page of one PDF, as a scanner at 200 dpi would make it (a JPEG stays as it is; a PNG
is stored as a JPEG), read at 200 dpi: the same pixels as the image. Against one ``ocrhub-serve``
(its defaults), each round times, in a rotating order, the same document answered as whole JSON, as
the NDJSON stream (and when its first page arrived), as a whole searchable PDF and as a stream ending
in one. Then: the PDF's size against the upload's, the text layer's own cost in process
(``textlayer.searchable_pdf``), and the share of OCR lines found on their page of the PDF by pdfium
(Chromium's PDF engine) and by poppler's ``pdftotext``, in reading order and with ``-raw``.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pypdfium2 as pdfium
import requests

from harness import report
from harness.photos import Photo
from harness.servers import Server
from harness.stats import span, summary
from ocrhub import textlayer

DPI = 200
MODES = {  # label: (query, streamed)
    "JSON": ({}, False),
    "JSON, streamed": ({}, True),
    "searchable PDF": ({"format": "pdf"}, False),
    "searchable PDF, streamed": ({"format": "pdf"}, True),
}


def scan(images: list[Photo]) -> bytes:
    """The images as the pages of one PDF at ``DPI``: a JPEG's bytes as they are, others as JPEGs."""
    return jpeg_pages([image.data if image.data.startswith(b"\xff\xd8") else _jpeg(image) for image in images], DPI)


def jpeg_pages(jpegs: list[bytes], dpi: int) -> bytes:
    """A PDF of JPEG files, each a page of its size at ``dpi`` (rendered at ``dpi``: the same pixels),
    embedded as they are, as a scanner does."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen.canvas import Canvas

    buffer = io.BytesIO()
    canvas = Canvas(buffer)
    for jpeg in jpegs:
        reader = ImageReader(io.BytesIO(jpeg))
        width, height = (side * 72 / dpi for side in reader.getSize())
        canvas.setPageSize((width, height))
        canvas.drawImage(reader, 0, 0, width, height)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _jpeg(image: Photo) -> bytes:
    import cv2

    return cv2.imencode(".jpg", image.bgr(), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def measure(images: list[Photo], rounds: int, workdir: Path) -> dict:
    data = scan(images)
    workdir.mkdir(parents=True, exist_ok=True)
    with Server.production(workdir, OCR_MAX_REQUEST_PIXELS="0") as server:
        pages = _post(server.url, data, {}, False)[1]  # warm-up, and the lines to look for
        runs = {mode: [] for mode in MODES}
        first_page = []
        for index in range(rounds):
            for mode in list(MODES)[index % len(MODES) :] + list(MODES)[: index % len(MODES)]:
                query, streamed = MODES[mode]
                seconds, answer, first = _post(server.url, data, query, streamed)
                runs[mode].append(seconds)
                if streamed and not query:
                    first_page.append(first)
                if query and not streamed:
                    searchable = answer
    write_ms = [1000 * _seconds(textlayer.searchable_pdf, data, pages) for _ in range(5)]
    return {
        "pages": len(pages),
        "lines": sum(len(page["lines"]) for page in pages),
        "input_bytes": len(data),
        "output_bytes": len(searchable),
        "runs": {mode: summary(values) for mode, values in runs.items()},
        "first_page_s": summary(first_page),
        "write_ms": summary(write_ms),
        "found": {reader: _found(text, pages) for reader, text in _page_texts(searchable).items()},
    }


def _post(url: str, data: bytes, query: dict, streamed: bool) -> tuple[float, object, float | None]:
    """Seconds to the whole answer, the answer (the pages' JSON, or the PDF's bytes), and for a stream
    the seconds to its first page."""
    headers = {"Accept": "application/x-ndjson"} if streamed else {}
    started, first = time.monotonic(), None
    response = requests.post(url + "/ocr", files={"file": ("scan.pdf", data)}, params=query, headers=headers, stream=streamed)
    response.raise_for_status()
    if not streamed:
        answer = response.content if query else response.json()["results"]
        return time.monotonic() - started, answer, None
    for line in response.iter_lines(chunk_size=1 << 16):  # the default 512 B is quadratic on a PDF's line
        event = json.loads(line)
        if event["event"] == "page" and first is None:
            first = time.monotonic() - started
        assert event["event"] != "error", event
    return time.monotonic() - started, event, first


def _seconds(function, *args) -> float:
    started = time.monotonic()
    function(*args)
    return time.monotonic() - started


def _page_texts(pdf: bytes) -> dict[str, list[str]]:
    """Each reader's text of each page: pdfium's, and pdftotext's (when installed)."""
    document = pdfium.PdfDocument(pdf)
    texts = {"pdfium (Chromium)": [page.get_textpage().get_text_range() for page in document]}
    if shutil.which("pdftotext"):
        with tempfile.NamedTemporaryFile(suffix=".pdf") as file:
            file.write(pdf)
            file.flush()
            for reader, options in (("pdftotext", []), ("pdftotext -raw", ["-raw"])):
                run = subprocess.run(["pdftotext", *options, "-enc", "UTF-8", file.name, "-"], capture_output=True, text=True)
                texts[reader] = run.stdout.split("\f")
    return texts


def _found(texts: list[str], pages: list[dict]) -> str:
    """ "found/lines": the OCR lines whose text (spaces aside) is in their page's text."""
    found_pages = ["".join(text.split()) for text in texts]
    lines = [("".join(line["text"].split()), number) for number, page in enumerate(pages) for line in page["lines"]]
    return f"{sum(text in found_pages[number] for text, number in lines)}/{len(lines)}"


def section(res: dict | None) -> list[str]:
    """The report's section on documents (none when the part did not run)."""
    if not res:
        return []
    whole = res["runs"]["JSON"]["median"]
    rows = [[mode, span(stats), stats["median"] / whole, stats["n"]] for mode, stats in res["runs"].items()]
    overhead = res["output_bytes"] / res["input_bytes"] - 1
    return [
        f"## Documents: `POST /ocr` on a {res['pages']}-page scan of the images ({DPI} dpi, {res['lines']} lines)",
        "",
        report.table(["answer", "seconds, median (min–max)", "÷ JSON", "rounds"], rows),
        "",
        f"- first page of the stream after {span(res['first_page_s'])} s (the whole document: {whole:.2f} s)",
        f"- searchable PDF: {res['output_bytes']} bytes for {res['input_bytes']} uploaded (+{overhead:.2%}); "
        f"its text layer written in {span(res['write_ms'])} ms in process",
        "- OCR lines found on their page of it: " + ", ".join(f"{reader} {found}" for reader, found in res["found"].items()),
    ]

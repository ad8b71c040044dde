#!/usr/bin/env python3
"""OCR images and PDFs with the ocrhub service, from a shell or from Python.

    python scripts/ocr_client.py photo.jpg scans/ 'receipts/**/*.png'
    python scripts/ocr_client.py --json --module ocr_det --concurrency 4 scans/ > boxes.jsonl
    python scripts/ocr_client.py --quiet --draw vis/ scans/   # save each image with its boxes and text
    python scripts/ocr_client.py --pages 1-3 --ocr always report.pdf > report.txt
    python scripts/ocr_client.py --output scan.searchable.pdf scan.pdf   # the scan, its text searchable
    python scripts/ocr_client.py --format hocr scan.pdf > scan.hocr
    python scripts/ocr_client.py --format pdf --output searchable/ scans/   # searchable/<name>.pdf each
    OCR_API_KEY=$(cat ocr.key) python scripts/ocr_client.py --url https://ocr.example.org scans/

Images go to ``POST /predict/<module>`` (PaddleOCR's hubserving protocol). PDFs, and images too with
``--document``, go to ``POST /ocr``, which reads each page's text layer where it has one and OCRs the
others (``--ocr auto|always|never``, ``--pages 1-3,5``, ``--dpi 200``); documents are always read with
ocr_system, whatever ``--module`` says. ``--draw DIR`` (formerly ``--out``, still accepted) draws the
images sent to /predict only: the client does not render PDF pages.

Answers (``--format``):

- ``text`` (default): the lines. A document's pages follow one another, every page after the first
  starting a line with a form feed (FF, as pdftotext breaks pages; a terminal shows a line break).
  With several files each is headed ``==> file <==`` like head(1).
- ``json`` (``--json``): JSON Lines, one object per image (``{"file", "results"}``) or per document
  page: ``{"file", "page", "source": "text-layer" | "ocr", "dpi", "width", "height", "lines"}``, the
  boxes in pixels of the page rendered at ``dpi`` (null for an image file).
- ``hocr``: hOCR 1.2 XHTML of a document: pages, lines and words with their boxes and confidences.
- ``pdf``: a searchable PDF: the PDF as it was (an image becomes a one-page PDF) with an invisible text
  layer over each page it OCR'd, so that a viewer finds and copies the text. Pages with a text layer of
  their own are left as they are, so ``--ocr`` must stay auto.

hocr and pdf send images to /ocr too, and are whole files: they are written to stdout only for a single
input and only into a pipe or a file, never onto a terminal (a usage error). ``--output PATH`` writes
the answers to files instead of stdout: with one input PATH is the file (a folder that exists, or a
PATH ending in /, gets ``<name>.<suffix>`` in it), with several it is a folder (made if need be) of
``<name>.pdf|hocr|txt|json`` (``<name>-2.pdf`` for a second file of that name). Without ``--format``, an
output file named ``.pdf``, ``.hocr`` or ``.html``, ``.txt`` or ``.json`` gives the format. A file's
answer in text or json is what stdout would show of it alone; a failed file gets no output file.

Progress: on a terminal (stderr), without ``--quiet`` and with tqdm installed, a bar counts the files
when there are several, and a bar counts the pages of each document while it is read (the document is
then streamed, ``Accept: application/x-ndjson``, page by page; under the files' bar such a bar is
cleared when its document is done). The bars never change what goes to stdout or into files.

Folders are searched recursively for image and PDF files; globs are expanded (quote them to use ``**``).
Each file is one request, so a bad file fails alone: it is named on stderr with the server's
message, and the exit status is 1 when any file failed (2 for a usage error). A refused
connection or a server still loading (503) is retried with exponential backoff.

API keys: a server started with ``OCR_API_KEYS`` answers HTTP 401 to a request without one of its keys.
Give the key with ``--api-key KEY`` or in the environment variable ``OCR_API_KEY`` (the option wins;
``--api-key ''`` sends none); it is sent as ``Authorization: Bearer <key>`` with every request. Prefer
the variable: a command line is visible to every user of the machine (ps). A 401 is not retried: the
client prints the server's message ("no API key: ..." or "a wrong API key: ...") once, sends no
further file and exits with status 1.

As a library (with scripts/ on ``sys.path``; needs only ``requests``, plus Pillow to visualise and tqdm
for bars):

    from ocr_client import OcrClient, OcrError
    client = OcrClient("http://127.0.0.1:9000", api_key=None)  # or the server's key
    for line in client.ocr("photo.jpg"):
        print(line["text"], line["confidence"], line["text_region"])
    for page in client.document("report.pdf", pages="1-3"):
        print(page["page"], page["source"], [line["text"] for line in page["lines"]])
    Path("scan.searchable.pdf").write_bytes(client.searchable_pdf("scan.pdf"))
    xhtml = client.hocr("scan.pdf", progress=lambda event: print(event["event"], event.get("page")))
    for event in client.document_stream("scan.pdf", format="text"):  # start, page..., end
        print(event["event"], event.get("page") or event.get("text"))

``document``, ``hocr`` and ``searchable_pdf`` get one whole answer, or with ``progress`` (called with
each event) read the stream; ``document_stream`` yields the stream's events as they arrive.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import functools
import glob
import io
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

DEFAULT_URL = "http://127.0.0.1:9000"
STREAM_READ = 1 << 16  # bytes per read of an NDJSON stream
MODULES = ("ocr_system", "ocr_det", "ocr_rec", "ocr_cls")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
DOCUMENT_SUFFIXES = {".pdf"}
OCR_MODES = ("auto", "always", "never")
MIN_DPI, MAX_DPI = 50, 600
NDJSON = "application/x-ndjson"
PAGE_RANGES = re.compile(r"\d+(-\d*)?(,\d+(-\d*)?)*")  # 1-3,5,7-
FORMATS = ("text", "json", "hocr", "pdf")
WHOLE_FILES = ("hocr", "pdf")  # one whole file per input: not shown on a terminal, nor several in one stream
SUFFIX_OF = {"text": ".txt", "json": ".json", "hocr": ".hocr", "pdf": ".pdf"}
FORMAT_OF = {".txt": "text", ".json": "json", ".hocr": "hocr", ".html": "hocr", ".pdf": "pdf"}
Progress = Callable[[dict], object]  # called with each event of a document's stream
PALETTE = [(37, 99, 235), (220, 38, 38), (5, 150, 105), (217, 119, 6), (124, 58, 237), (8, 145, 178)]


class OcrError(Exception):
    """The server answered with an error envelope, or could not be reached."""

    def __init__(self, message: str, status: str | None = None, http_status: int | None = None):
        super().__init__(message)
        self.status, self.http_status = status, http_status


class OcrClient:
    """One server. ``predict`` sends images in one request; ``document``, ``hocr`` and ``searchable_pdf``
    one PDF or image file to /ocr, whole or (with ``progress``) streamed page by page; ``document_stream``
    gives the stream's events themselves. The methods are safe to call from threads."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        module: str = "ocr_system",
        timeout: float = 300,
        retries: int = 4,
        backoff: float = 0.5,
        api_key: str | None = None,
    ):
        """``api_key``: sent as ``Authorization: Bearer <key>`` when the server wants one (the class
        does not read ``OCR_API_KEY``; the command line does). A wrong or missing key raises OcrError
        with ``http_status`` 401, never retried. ``timeout``: seconds to wait for an answer, or for the
        next line of a stream."""
        self.url, self.module, self.timeout = url.rstrip("/"), module, timeout
        self.retries, self.backoff = retries, backoff
        key = (api_key or "").strip()
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}

    def predict(self, images: list, module: str | None = None) -> list:
        """Results for each image (a path or the bytes of an image file), in order: for ocr_system a
        list of ``{text, confidence, text_region}``, ocr_det a list of ``{text_region}``, ocr_rec one
        ``{text, confidence}``, ocr_cls one ``{angle, confidence}``. Raises OcrError."""
        module = module or self.module
        body = {"images": [base64.b64encode(_read(image)).decode("ascii") for image in images]}
        results = _results(self._post(f"{self.url}/predict/{module}", json=body))
        # PaddleOCR's ocr_rec and ocr_cls answer [[one object per image]]
        return results[0] if module in ("ocr_rec", "ocr_cls") else results

    def ocr(self, image, module: str | None = None):
        """The result of one image (see ``predict``)."""
        return self.predict([image], module)[0]

    def document(
        self,
        path_or_bytes,
        pages: str | None = None,
        dpi: int | None = None,
        ocr: str | None = None,
        progress: Progress | None = None,
    ) -> list[dict]:
        """The pages of a PDF (or of an image file: one page) read by ``POST /ocr``, in order: each
        ``{page, source: "text-layer" | "ocr", dpi, width, height, lines}``, its lines as ocr_system's
        ``{text, confidence, text_region}``. ``pages`` ("1-3,5", "7-"), ``dpi`` (50-600) and ``ocr``
        ("auto", "always", "never") default to the server's: all pages, 200, auto. ``progress``: a
        function called with each event of the stream (see ``document_stream``), which is then used
        instead of one whole answer. Raises OcrError."""
        return self._answer(path_or_bytes, "json", _options(pages, dpi, ocr), progress)

    def hocr(
        self,
        path_or_bytes,
        pages: str | None = None,
        dpi: int | None = None,
        ocr: str | None = None,
        progress: Progress | None = None,
    ) -> str:
        """The document's pages as hOCR 1.2 XHTML (words with boxes and confidences); options as ``document``."""
        return self._answer(path_or_bytes, "hocr", _options(pages, dpi, ocr), progress)

    def searchable_pdf(
        self, path_or_bytes, pages: str | None = None, dpi: int | None = None, progress: Progress | None = None
    ) -> bytes:
        """The PDF (or a one-page PDF of an image file) with an invisible text layer on each page that
        had none, so that viewers find and copy its text; pages outside ``pages`` are left as they
        are. Options as ``document`` (OCR is always ``auto``: a page's own text layer is kept)."""
        return self._answer(path_or_bytes, "pdf", _options(pages, dpi, None), progress)

    def document_stream(
        self, path_or_bytes, pages: str | None = None, dpi: int | None = None, ocr: str | None = None, format: str = "json"
    ) -> Iterator[dict]:
        """The events of ``POST /ocr`` streamed as NDJSON, each a dict as it arrives: ``{"event": "start",
        "pages": n}``, one ``{"event": "page", ...}`` per page (a page of ``document``), then ``{"event":
        "end", "status": "000", "msg": "", "pages": n, "seconds": s}``, which carries the answer of a
        ``format`` other than json: ``"text"``, ``"hocr"``, or ``"pdf"`` (base64). The request is sent
        when the iteration begins; stopping it early closes the connection, and the server stops reading
        pages. Raises OcrError: for a refusal before the first page (the usual envelope), for an
        ``error`` event (its ``status``; ``http_status`` None: the stream had begun as HTTP 200), or for a
        stream that breaks off."""
        name, data = _named(path_or_bytes)
        params = {**_options(pages, dpi, ocr), "format": format}
        response = self._post(
            f"{self.url}/ocr", params=params, files={"file": (name, data)}, headers={"Accept": NDJSON}, stream=True
        )
        with response:  # closed however the iteration ends
            if not response.headers.get("content-type", "").startswith(NDJSON):
                _results(response)  # the error envelope: raises
                raise OcrError(f"HTTP {response.status_code}: not a stream", http_status=response.status_code)
            yield from self._events(response)

    def _events(self, response: requests.Response):
        try:
            # bytes: split at \n only, never inside a JSON string; in 64 KiB reads: requests joins a line's
            # pieces one read at a time, and the end event of a PDF is one line of megabytes
            for line in response.iter_lines(chunk_size=STREAM_READ):
                if not line:
                    continue
                event = json.loads(line)
                if event.get("event") == "error":
                    raise OcrError(event.get("msg") or f"status {event.get('status')}", event.get("status"))
                yield event
                if event.get("event") == "end":
                    return
        except requests.RequestException as err:
            raise OcrError(f"the stream from {self.url} broke off: {_reason(err)}") from None
        except ValueError:
            raise OcrError(f"the stream from {self.url} sent a line that is not JSON: {line[:200]!r}") from None
        raise OcrError(f"the stream from {self.url} ended before its end event")

    def _answer(self, path_or_bytes, format: str, options: dict, progress: Progress | None):
        """``POST /ocr`` in ``format``: the pages (json), the text (hocr) or the bytes (pdf). Streamed only
        for ``progress``: a whole answer carries a PDF as it is, a stream's end event in base64."""
        if progress is None:
            return self._whole(path_or_bytes, format, options)
        pages = []
        for event in self.document_stream(path_or_bytes, format=format, **options):
            progress(event)
            if event["event"] == "page":
                pages.append({key: value for key, value in event.items() if key != "event"})
        if format == "json":
            return pages
        return base64.b64decode(event["pdf"]) if format == "pdf" else event[format]

    def _whole(self, path_or_bytes, format: str, options: dict):
        name, data = _named(path_or_bytes)
        response = self._post(f"{self.url}/ocr", params={**options, "format": format}, files={"file": (name, data)})
        if format == "json" or not response.ok or response.headers.get("content-type", "").startswith("application/json"):
            return _results(response)  # an error envelope raises
        return response.content if format == "pdf" else response.text

    def _post(self, url: str, headers: dict | None = None, **body) -> requests.Response:
        """``requests.post(url, **body)`` with the key, retried while the server is unreachable or loading
        (any other answer, a 401 included, is returned at once)."""
        for attempt in range(self.retries + 1):
            try:
                response = requests.post(url, headers={**self._headers, **(headers or {})}, timeout=self.timeout, **body)
                if response.status_code != 503 or attempt == self.retries:  # 503: the models are loading
                    return response
                response.close()  # a streamed answer holds its connection until closed
            except requests.Timeout as err:
                if not isinstance(err, requests.ConnectTimeout):
                    raise OcrError(f"no answer from {self.url} within {self.timeout:g} s") from None
                if attempt == self.retries:
                    raise OcrError(f"cannot reach {self.url}: connection timed out") from None
            except requests.ConnectionError as err:
                if attempt == self.retries:
                    raise OcrError(f"cannot reach {self.url}: {_reason(err)}") from None
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")


def _results(response: requests.Response):
    """The ``results`` of a successful envelope; an error envelope (or none) raises OcrError."""
    try:
        answer = response.json()
    except ValueError:
        raise OcrError(
            f"HTTP {response.status_code} without a JSON envelope: {response.text[:200]}",
            http_status=response.status_code,
        ) from None
    if answer.get("status") != "000":
        raise OcrError(answer.get("msg") or f"status {answer.get('status')}", answer.get("status"), response.status_code)
    return answer["results"]


def _options(pages: str | None, dpi: int | None, ocr: str | None) -> dict:
    """The query of POST /ocr: the options given (the server has defaults for the others)."""
    return {key: value for key, value in {"pages": pages, "dpi": dpi, "ocr": ocr}.items() if value is not None}


def _named(path_or_bytes) -> tuple[str, bytes]:
    """The upload's file name (the server goes by its content, a log by its name) and its bytes."""
    name = Path(path_or_bytes).name if isinstance(path_or_bytes, (str, Path)) else "document"
    return name, _read(path_or_bytes)


def _read(image) -> bytes:
    return image if isinstance(image, (bytes, bytearray)) else Path(image).read_bytes()


def _reason(err: Exception) -> str:
    """'Connection refused' rather than urllib3's nested retry message."""
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(err))
    return match.group(1).strip() if match else str(err)


# ---- visualisation -------------------------------------------------------------------------------


def find_cjk_font() -> str | None:
    """A font covering Chinese, from fontconfig (Debian: fonts-wqy-microhei)."""
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True).stdout
    except OSError:
        return None
    fonts = sorted(line.strip().rstrip(":") for line in listed.splitlines() if line.strip())
    return fonts[0] if fonts else None


@functools.lru_cache(maxsize=64)
def _font(path: str | None, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def visualize(data: bytes, module: str, result, font_path: str | None = None):
    """A PIL image: the picture with its boxes drawn (left) beside the text written where it was found."""
    from PIL import Image, ImageDraw, ImageOps

    picture = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))  # the server honours EXIF rotation too
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:  # laid on white, as the server does
        picture = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture.convert("RGBA"))
    picture = picture.convert("RGB")
    width, height = picture.size
    whole = [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]
    if module == "ocr_system":
        entries = [(line["text_region"], line["text"]) for line in result]
    elif module == "ocr_det":
        entries = [(box["text_region"], str(i + 1)) for i, box in enumerate(result)]
    elif module == "ocr_cls":
        entries = [(whole, f"{result['angle']}° ({result['confidence']:.2f})")]
    else:
        entries = [(whole, result["text"])]

    shade = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    text_side = Image.new("RGB", picture.size, "white")
    boxes, writing = ImageDraw.Draw(shade), ImageDraw.Draw(text_side)
    for i, (region, label) in enumerate(entries):
        color, points = PALETTE[i % len(PALETTE)], [tuple(point) for point in region]
        if region is not whole:
            boxes.polygon(points, fill=color + (50,), outline=color + (255,), width=2)
            writing.polygon(points, outline=color, width=1)
        box_width, box_height = math.dist(points[0], points[1]), math.dist(points[0], points[3])
        size = max(8, int(box_height * 0.8))
        text_width = writing.textlength(label, font=_font(font_path, size))
        if text_width > box_width - 4:
            size = max(8, int(size * (box_width - 4) / text_width))
        left, middle = min(x for x, _ in points) + 2, sum(y for _, y in points) / 4
        writing.text((left, middle), label, font=_font(font_path, size), fill=(20, 20, 20), anchor="lm")

    canvas = Image.new("RGB", (2 * width, height), "white")
    canvas.paste(Image.alpha_composite(picture.convert("RGBA"), shade).convert("RGB"), (0, 0))
    canvas.paste(text_side, (width, 0))
    ImageDraw.Draw(canvas).line([(width, 0), (width, height)], fill=(200, 200, 200))
    return canvas


# ---- command line --------------------------------------------------------------------------------


def collect(patterns: list[str], parser: argparse.ArgumentParser) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES | DOCUMENT_SUFFIXES and p.is_file())
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        if not found:
            parser.error(f"{pattern}: no such file, no images or PDFs in that folder, or no match")
        files += found
    return list(dict.fromkeys(files))


def as_text(module: str, result) -> list[str]:
    if module == "ocr_system":
        return [line["text"] for line in result]
    if module == "ocr_det":
        return [" ".join(f"{x},{y}" for x, y in box["text_region"]) for box in result]
    if module == "ocr_cls":
        return [f"{result['angle']}° (confidence {result['confidence']:.3f})"]
    return [result["text"]] if module == "ocr_rec" else [json.dumps(result, ensure_ascii=False)]


def document_text(pages: list[dict]) -> list[str]:
    """A document's lines, each page after the first starting with a form feed; [] when it has no text."""
    text = "\n\f".join("\n".join(line["text"] for line in page["lines"]) for page in pages)
    return [text] if text else []


def json_lines(record: dict) -> list[str]:
    """One JSON object per image, per document page, or per failed file."""
    pages = [{"file": record["file"], **page} for page in record["pages"]] if "pages" in record else [record]
    return [json.dumps(page, ensure_ascii=False) for page in pages]


def text_lines(record: dict, module: str) -> list[str]:
    return document_text(record["pages"]) if "pages" in record else as_text(module, record["results"])


def printed(record: dict, args: argparse.Namespace, headed: bool) -> list[str]:
    """What stdout shows of one file in text or json: its JSON, or its text, headed like head(1) and
    tail(1) when there are several files."""
    if args.quiet:
        return []
    if args.format == "json":
        return json_lines(record)
    if "error" in record:
        return []
    lines = text_lines(record, args.module)
    return [f"==> {record['file']} <==", *lines, ""] if headed else lines


def answer_bytes(record: dict, args: argparse.Namespace) -> bytes:
    """One file's answer as --output writes it: its PDF, its hOCR, or what stdout shows of it alone."""
    if args.format in WHOLE_FILES:
        answer = record["answer"]
        return answer if isinstance(answer, bytes) else answer.encode()
    lines = json_lines(record) if args.format == "json" else text_lines(record, args.module)
    return "".join(f"{line}\n" for line in lines).encode()


def numbered_names(files: list[Path], folder: Path, mark: str, suffix: str) -> list[Path]:
    """<stem><mark><suffix> per file, numbered (<stem><mark>-2<suffix>) when two files share a stem."""
    names, used = [], set()
    for path in files:
        name, n = f"{path.stem}{mark}{suffix}", 1
        while name in used:
            n += 1
            name = f"{path.stem}{mark}-{n}{suffix}"
        used.add(name)
        names.append(folder / name)
    return names


def process(client: OcrClient, path: Path, draw: Path | None, font: str | None) -> dict:
    """One image through /predict: its record, with "results" or "error"."""
    record = {"file": str(path)}
    try:
        data = path.read_bytes()
        record["results"] = client.ocr(data)
        if draw:
            visualize(data, client.module, record["results"], font).save(draw, quality=90)
            record["visualization"] = str(draw)
    except (OcrError, OSError) as err:
        record.update(failed(err))
    except Exception as err:  # Pillow cannot draw a file the server could read
        record["error"] = f"visualisation failed: {type(err).__name__}: {err}"
    return record


def process_document(client: OcrClient, path: Path, args: argparse.Namespace, progress: PageBar | None) -> dict:
    """One document through /ocr: its record, with "pages" (json, text), "answer" (hocr, pdf) or "error".
    Streamed only when a bar shows its pages (``progress``)."""
    record = {"file": str(path)}
    try:
        data = path.read_bytes()
        if args.format == "pdf":
            record["answer"] = client.searchable_pdf(data, args.pages, args.dpi, progress)
        elif args.format == "hocr":
            record["answer"] = client.hocr(data, args.pages, args.dpi, args.ocr, progress)
        else:
            record["pages"] = client.document(data, args.pages, args.dpi, args.ocr, progress)
    except (OcrError, OSError) as err:
        record.update(failed(err))
    finally:
        if progress:
            progress.close()
    return record


def failed(err: OcrError | OSError) -> dict:
    """A file's record fields for a server error (a 401 marked, so no other file is tried) or a read error."""
    if isinstance(err, OSError):
        return {"error": f"{err.strerror or err}"}
    return {"error": failure(err), **({"unauthorized": True} if err.http_status == 401 else {})}


def failure(err: OcrError) -> str:
    return re.sub(r"^image 0: ", "", str(err))  # one file per request: the index says nothing


# ---- progress bars -------------------------------------------------------------------------------


class Bars:
    """Progress on stderr, only where it is a terminal (tqdm's ``disable=None``), without --quiet, and
    with tqdm installed: one bar over the files when there are several, and one over the pages of each
    document while it is read (below the files' bar and cleared when done; kept when it is the only
    file). Results go to stdout through ``write``, which takes the bars off the terminal meanwhile."""

    def __init__(self, count: int, quiet: bool):
        self.tqdm = None if quiet or not sys.stderr.isatty() else _tqdm()
        self.stopped = False  # Ctrl-C: see PageBar
        self.several = count > 1
        self.files = self.new(total=count, unit="file") if self.tqdm and self.several else None

    def new(self, **options):
        return self.tqdm(file=sys.stderr, disable=None, dynamic_ncols=True, **options)

    def pages(self, path: Path) -> PageBar | None:
        """A document's progress function; None without bars (the document is then read in one answer)."""
        return PageBar(self, path.name) if self.tqdm else None

    def file_done(self, _future) -> None:
        if not self.stopped:  # after Ctrl-C a file is stopped, not done
            self.files.update()

    def write(self, text: str, file) -> None:
        if self.tqdm:
            self.tqdm.write(text, file=file)  # under tqdm's lock: no bar is drawn halfway through it
            file.flush()
        else:
            print(text, file=file, flush=True)

    def close(self) -> None:
        if self.files:
            self.files.close()


class PageBar:
    """One document's bar: made when its stream starts (the start event has the page count), a step per page."""

    def __init__(self, bars: Bars, name: str):
        self.bars, self.name, self.bar = bars, name, None

    def __call__(self, event: dict) -> None:
        if self.bars.stopped:  # Ctrl-C: leave the stream, which closes its connection: the server stops reading
            raise KeyboardInterrupt
        if event["event"] == "start":
            self.bar = self.bars.new(total=event["pages"], unit="page", desc=self.name, leave=not self.bars.several)
        elif event["event"] == "page" and self.bar:
            self.bar.update()

    def close(self) -> None:
        if self.bar:
            self.bar.close()


def _tqdm():
    try:
        from tqdm import tqdm
    except ImportError:  # optional: the client needs only requests
        return None
    return tqdm


# ---- options -------------------------------------------------------------------------------------


def check_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Usage errors the server would report for every file, reported once (exit status 2)."""
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if args.pages is not None and not PAGE_RANGES.fullmatch(args.pages.replace(" ", "")):
        parser.error(f"--pages must be page numbers and ranges such as 1-3,5 or 7-, got {args.pages!r}")
    if args.dpi is not None and not MIN_DPI <= args.dpi <= MAX_DPI:
        parser.error(f"--dpi must be from {MIN_DPI} to {MAX_DPI}, got {args.dpi}")
    if args.json and args.format not in (None, "json"):
        parser.error(f"--json is --format json: it contradicts --format {args.format}")


def answer_format(args: argparse.Namespace, to_one_file: bool) -> str:
    """--format, else --json, else the suffix of an --output file, else text."""
    if args.format or args.json:
        return args.format or "json"
    return FORMAT_OF.get(Path(args.output).suffix.lower(), "text") if to_one_file else "text"


def check_format(args: argparse.Namespace, count: int, parser: argparse.ArgumentParser) -> None:
    """Usage errors of the answer's format, once it is known."""
    reader = "--document" if args.document else f"--format {args.format}"
    if args.module != "ocr_system" and (args.document or args.format in WHOLE_FILES):
        parser.error(f"{reader} reads with ocr_system: --module applies to images sent to /predict")
    if args.format == "pdf" and args.ocr in ("always", "never"):
        harm = "lay a second over a page's own" if args.ocr == "always" else "lay none"
        parser.error(f"--format pdf lays a text layer on the pages without one (--ocr auto): --ocr {args.ocr} would {harm}")
    if args.format in WHOLE_FILES and not args.output:
        if count > 1:  # whole files, one after another in one stream, cannot be taken apart
            parser.error(f"--format {args.format} answers one file per input: with {count} inputs give --output DIR")
        if sys.stdout.isatty():
            shown = "a PDF" if args.format == "pdf" else "XHTML"
            parser.error(f"--format {args.format} would write {shown} on the terminal: give --output FILE or redirect stdout")


def writes_into_folder(output: str, count: int) -> bool:
    """--output is a folder with several inputs, an existing folder, or a path ending in a slash."""
    return count > 1 or Path(output).is_dir() or output.endswith(("/", os.sep))


def output_targets(files: list[Path], args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Path | None]:
    """Where each file's answer goes: a file (--output), or None for stdout."""
    if not args.output:
        return [None] * len(files)
    target, suffix = Path(args.output), SUFFIX_OF[args.format]
    if not writes_into_folder(args.output, len(files)):
        targets = [target]
    elif target.exists() and not target.is_dir() or not target.exists() and target.suffix.lower() in FORMAT_OF:
        parser.error(
            f"--output {args.output}: with {len(files)} input files --output must be a folder "
            f"(each answer is written to it as <name>{suffix}), not a file"
        )
    else:
        targets = numbered_names(files, target, "", suffix)
    inputs = {path.resolve() for path in files}
    for path in targets:
        if path.resolve() in inputs:
            parser.error(f"--output would overwrite the input file {path}")
    return targets


def drawing_font(args: argparse.Namespace, draws_documents: bool) -> str | None:
    """The font of --draw, with a warning on stderr when it will not do or draw everything."""
    font = args.font or find_cjk_font()
    if not font:
        print(
            "ocr_client: no CJK font found (install fonts-wqy-microhei or pass --font); "
            "Chinese text will not show in the pictures",
            file=sys.stderr,
        )
    if draws_documents:
        print("ocr_client: --draw draws images only; documents sent to /ocr are not drawn", file=sys.stderr)
    return font


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="OCR image and PDF files with an ocrhub server.",
        epilog="Exit status: 0 all files done, 1 some file failed, 2 usage error.",
    )
    parser.add_argument("paths", nargs="+", help="image or PDF files, folders (searched recursively) or globs")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server address (default {DEFAULT_URL})")
    parser.add_argument(
        "--module",
        default="ocr_system",
        choices=MODULES,
        help="for images (default ocr_system); documents are read with ocr_system",
    )
    parser.add_argument("--concurrency", type=int, default=2, metavar="N", help="requests in flight (default 2)")
    answers = parser.add_argument_group("answers")
    answers.add_argument(
        "--format",
        choices=FORMATS,
        help="text: the lines (default); json: one object per image or document page; hocr: hOCR XHTML; "
        "pdf: the document with an invisible text layer, searchable (hocr and pdf send images to /ocr too)",
    )
    answers.add_argument(
        "--output",
        metavar="PATH",
        help="write the answers to files instead of stdout: PATH itself for one input file (its suffix .pdf, "
        ".hocr or .html, .txt, .json gives the format), else a folder of <name>.pdf|hocr|txt|json",
    )
    shown = answers.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="--format json")
    shown.add_argument("--quiet", action="store_true", help="print no results and no progress bars (failures still show)")
    answers.add_argument("--draw", type=Path, metavar="DIR", help="save <name>_ocr.jpg per image: boxes, and the text beside")
    answers.add_argument("--out", type=Path, dest="draw", help=argparse.SUPPRESS)  # its old name
    answers.add_argument("--font", metavar="PATH", help="font for --draw (default: a CJK font from fc-list :lang=zh)")
    documents = parser.add_argument_group("documents (PDFs, and images with --document; sent to POST /ocr)")
    documents.add_argument("--document", action="store_true", help="send images to /ocr too, as one-page documents")
    documents.add_argument("--pages", metavar="RANGES", help="1-based pages such as 1-3,5 or 7- (default all)")
    documents.add_argument("--dpi", type=int, help=f"render resolution, {MIN_DPI}-{MAX_DPI} (default 200)")
    documents.add_argument(
        "--ocr",
        choices=OCR_MODES,
        help="auto: text layer where a page has one (default); always; never: text layer only",
    )
    connection = parser.add_argument_group("connection")
    connection.add_argument(
        "--timeout", type=float, default=300, metavar="SECONDS", help="seconds to wait for an answer (default 300)"
    )
    connection.add_argument(
        "--retries",
        type=int,
        default=4,
        metavar="N",
        help="retries of a refused connection or a loading server (default 4)",
    )
    connection.add_argument(
        "--api-key",
        metavar="KEY",
        help="the server's API key, sent as 'Authorization: Bearer KEY' (default: $OCR_API_KEY)",
    )
    return parser


# ---- running -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)
    check_options(args, parser)
    files = collect(args.paths, parser)
    args.format = answer_format(args, bool(args.output) and not writes_into_folder(args.output, len(files)))
    check_format(args, len(files), parser)
    targets = output_targets(files, args, parser)
    for folder in {target.parent for target in targets if target}:
        folder.mkdir(parents=True, exist_ok=True)
    all_to_ocr = args.document or args.format in WHOLE_FILES  # /predict answers neither hOCR nor PDF
    is_document = {path: all_to_ocr or path.suffix.lower() in DOCUMENT_SUFFIXES for path in files}
    font = None
    if args.draw:
        args.draw.mkdir(parents=True, exist_ok=True)
        font = drawing_font(args, any(is_document.values()))
    drawings = numbered_names(files, args.draw, "_ocr", ".jpg") if args.draw else [None] * len(files)
    api_key = args.api_key if args.api_key is not None else os.environ.get("OCR_API_KEY", "")
    client = OcrClient(args.url, args.module, timeout=args.timeout, retries=args.retries, api_key=api_key)

    bars = Bars(len(files), args.quiet)
    failures = []
    pool = concurrent.futures.ThreadPoolExecutor(args.concurrency)
    try:
        futures = [
            pool.submit(process_document, client, path, args, bars.pages(path))
            if is_document[path]
            else pool.submit(process, client, path, drawing, font)
            for path, drawing in zip(files, drawings)
        ]
        if bars.files:
            for future in futures:
                future.add_done_callback(bars.file_done)
        for future, target in zip(futures, targets):  # in input order, as each is ready
            record = future.result()
            if record.get("unauthorized"):  # every other file would fail the same way: stop here
                pool.shutdown(wait=False, cancel_futures=True)
                hint = "check --api-key or OCR_API_KEY" if api_key.strip() else "pass it with --api-key KEY or in OCR_API_KEY"
                bars.write(f"ocr_client: {record['error']} (HTTP 401 from {args.url}); {hint}", file=sys.stderr)
                return 1
            if target and "error" not in record:
                save(record, target, args)
            if "error" in record:
                failures.append(record["file"])
                bars.write(f"ocr_client: {record['file']}: {record['error']}", file=sys.stderr)
            if not target:
                show(record, args, len(files) > 1, bars)
    except KeyboardInterrupt:
        bars.stopped = True  # a document being streamed stops at its next page; one read whole is waited for
        pool.shutdown(wait=False, cancel_futures=True)
        return 130
    finally:
        pool.shutdown()
        bars.close()
    if failures:
        kind = "files" if any(is_document.values()) else "images"
        print(f"ocr_client: {len(failures)} of {len(files)} {kind} failed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


def save(record: dict, target: Path, args: argparse.Namespace) -> None:
    """Write a file's answer to its --output file; a failure to write is the file's error."""
    try:
        target.write_bytes(answer_bytes(record, args))
    except OSError as err:
        record["error"] = f"cannot write {target}: {err.strerror or err}"


def show(record: dict, args: argparse.Namespace, headed: bool, bars: Bars) -> None:
    """Print a file's answer on stdout: a PDF or hOCR as it is (the only file), text or JSON by lines."""
    if args.format in WHOLE_FILES:
        if "error" not in record and not args.quiet:
            sys.stdout.flush()
            sys.stdout.buffer.write(answer_bytes(record, args))
            sys.stdout.buffer.flush()
        return
    lines = printed(record, args, headed)
    if lines:
        bars.write("\n".join(lines), file=sys.stdout)


if __name__ == "__main__":
    sys.exit(main())

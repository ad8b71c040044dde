#!/usr/bin/env python3
"""OCR images and PDFs with the ocrhub service, from a shell or from Python.

    python scripts/ocr_client.py photo.jpg scans/ 'receipts/**/*.png'
    python scripts/ocr_client.py --json --module ocr_det --concurrency 4 scans/ > boxes.jsonl
    python scripts/ocr_client.py --quiet --out vis/ scans/   # save each image with its boxes and text
    python scripts/ocr_client.py --pages 1-3 --ocr always report.pdf > report.txt
    OCR_API_KEY=$(cat ocr.key) python scripts/ocr_client.py --url https://ocr.example.org scans/

Images go to ``POST /predict/<module>`` (PaddleOCR's hubserving protocol). PDFs, and images too with
``--document``, go to ``POST /ocr``, which reads each page's text layer where it has one and OCRs the
others (``--ocr auto|always|never``, ``--pages 1-3,5``, ``--dpi 200``); documents are always read with
ocr_system, whatever ``--module`` says. A document prints its pages' lines; every page after the first
starts a line with a form feed (FF, as pdftotext breaks pages; a terminal shows a line break). With
``--json`` it prints one object per page: ``{"file", "page", "source": "text-layer" | "ocr", "dpi",
"width", "height", "lines"}``, the boxes in pixels of the page rendered at ``dpi`` (null for an image
file). ``--out`` draws the images sent to /predict only: the client does not render PDF pages.

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

As a library (with scripts/ on ``sys.path``; needs only ``requests``, plus Pillow to visualise):

    from ocr_client import OcrClient, OcrError
    client = OcrClient("http://127.0.0.1:9000", api_key=None)  # or the server's key
    for line in client.ocr("photo.jpg"):
        print(line["text"], line["confidence"], line["text_region"])
    for page in client.document("report.pdf", pages="1-3"):
        print(page["page"], page["source"], [line["text"] for line in page["lines"]])
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
from pathlib import Path

import requests

DEFAULT_URL = "http://127.0.0.1:9000"
MODULES = ("ocr_system", "ocr_det", "ocr_rec", "ocr_cls")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
DOCUMENT_SUFFIXES = {".pdf"}
OCR_MODES = ("auto", "always", "never")
MIN_DPI, MAX_DPI = 50, 600
PAGE_RANGES = re.compile(r"\d+(-\d*)?(,\d+(-\d*)?)*")  # 1-3,5,7-
PALETTE = [(37, 99, 235), (220, 38, 38), (5, 150, 105), (217, 119, 6), (124, 58, 237), (8, 145, 178)]


class OcrError(Exception):
    """The server answered with an error envelope, or could not be reached."""

    def __init__(self, message: str, status: str | None = None, http_status: int | None = None):
        super().__init__(message)
        self.status, self.http_status = status, http_status


class OcrClient:
    """One server. ``predict`` sends images in one request, ``document`` one PDF or image file to /ocr;
    the methods are safe to call from threads."""

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
        with ``http_status`` 401, never retried."""
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

    def document(self, path_or_bytes, pages: str | None = None, dpi: int | None = None, ocr: str | None = None) -> list[dict]:
        """The pages of a PDF (or of an image file: one page) read by ``POST /ocr``, in order: each
        ``{page, source: "text-layer" | "ocr", dpi, width, height, lines}``, its lines as ocr_system's
        ``{text, confidence, text_region}``. ``pages`` ("1-3,5", "7-"), ``dpi`` (50-600) and ``ocr``
        ("auto", "always", "never") default to the server's: all pages, 200, auto. Raises OcrError."""
        name = Path(path_or_bytes).name if isinstance(path_or_bytes, (str, Path)) else "document"
        options = {key: value for key, value in {"pages": pages, "dpi": dpi, "ocr": ocr}.items() if value is not None}
        response = self._post(f"{self.url}/ocr", params=options, files={"file": (name, _read(path_or_bytes))})
        return _results(response)

    def _post(self, url: str, **body) -> requests.Response:
        """``requests.post(url, **body)`` with the key, retried while the server is unreachable or loading
        (any other answer, a 401 included, is returned at once)."""
        for attempt in range(self.retries + 1):
            try:
                response = requests.post(url, headers=self._headers, timeout=self.timeout, **body)
                if response.status_code != 503 or attempt == self.retries:  # 503: the models are loading
                    return response
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


def printed(record: dict, args: argparse.Namespace, headed: bool) -> list[str]:
    """What stdout shows of one file: its JSON (one object per page of a document), or its text, headed
    like head(1) and tail(1) when there are several files."""
    if args.json:
        pages = [{"file": record["file"], **page} for page in record["pages"]] if "pages" in record else [record]
        return [json.dumps(page, ensure_ascii=False) for page in pages]
    if args.quiet or "error" in record:
        return []
    lines = document_text(record["pages"]) if "pages" in record else as_text(args.module, record["results"])
    return [f"==> {record['file']} <==", *lines, ""] if headed else lines


def output_names(files: list[Path], folder: Path) -> list[Path]:
    """<stem>_ocr.jpg per image, numbered when two images share a name."""
    names, used = [], set()
    for path in files:
        name, n = f"{path.stem}_ocr.jpg", 1
        while name in used:
            n += 1
            name = f"{path.stem}_ocr-{n}.jpg"
        used.add(name)
        names.append(folder / name)
    return names


def process(client: OcrClient, path: Path, out: Path | None, font: str | None) -> dict:
    """One image: its JSON line, with "results" or "error"."""
    record = {"file": str(path)}
    try:
        data = path.read_bytes()
        record["results"] = client.ocr(data)
        if out:
            visualize(data, client.module, record["results"], font).save(out, quality=90)
            record["visualization"] = str(out)
    except (OcrError, OSError) as err:
        record.update(failed(err))
    except Exception as err:  # Pillow cannot draw a file the server could read
        record["error"] = f"visualisation failed: {type(err).__name__}: {err}"
    return record


def process_document(client: OcrClient, path: Path, args: argparse.Namespace) -> dict:
    """One document through /ocr: its record, with "pages" or "error"."""
    record = {"file": str(path)}
    try:
        record["pages"] = client.document(path.read_bytes(), args.pages, args.dpi, args.ocr)
    except (OcrError, OSError) as err:
        record.update(failed(err))
    return record


def failed(err: OcrError | OSError) -> dict:
    """A file's record fields for a server error (a 401 marked, so no other file is tried) or a read error."""
    if isinstance(err, OSError):
        return {"error": f"{err.strerror or err}"}
    return {"error": failure(err), **({"unauthorized": True} if err.http_status == 401 else {})}


def failure(err: OcrError) -> str:
    return re.sub(r"^image 0: ", "", str(err))  # one file per request: the index says nothing


def progress_bar(total: int):
    if total <= 3 or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="file", file=sys.stderr)


def check_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Usage errors the server would report for every file, reported once (exit status 2)."""
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if args.pages is not None and not PAGE_RANGES.fullmatch(args.pages.replace(" ", "")):
        parser.error(f"--pages must be page numbers and ranges such as 1-3,5 or 7-, got {args.pages!r}")
    if args.dpi is not None and not MIN_DPI <= args.dpi <= MAX_DPI:
        parser.error(f"--dpi must be from {MIN_DPI} to {MAX_DPI}, got {args.dpi}")
    if args.document and args.module != "ocr_system":
        parser.error("--document reads with ocr_system: --module applies to images sent to /predict")


def main(argv: list[str] | None = None) -> int:
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
    documents = parser.add_argument_group("documents (PDFs, and images with --document; sent to POST /ocr)")
    documents.add_argument("--document", action="store_true", help="send images to /ocr too, as one-page documents")
    documents.add_argument("--pages", metavar="RANGES", help="1-based pages such as 1-3,5 or 7- (default all)")
    documents.add_argument("--dpi", type=int, help=f"render resolution, {MIN_DPI}-{MAX_DPI} (default 200)")
    documents.add_argument(
        "--ocr",
        choices=OCR_MODES,
        help="auto: text layer where a page has one (default); always; never: text layer only",
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print one JSON object per image or document page")
    shown.add_argument("--quiet", action="store_true", help="print no results (failures still go to stderr)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="save <name>_ocr.jpg per image: boxes, and the text beside")
    parser.add_argument("--font", metavar="PATH", help="font for --out (default: a CJK font from fc-list :lang=zh)")
    parser.add_argument(
        "--timeout", type=float, default=300, metavar="SECONDS", help="seconds to wait for an answer (default 300)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=4,
        metavar="N",
        help="retries of a refused connection or a loading server (default 4)",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="the server's API key, sent as 'Authorization: Bearer KEY' (default: $OCR_API_KEY)",
    )
    args = parser.parse_args(argv)
    check_options(args, parser)
    files = collect(args.paths, parser)
    is_document = {path: args.document or path.suffix.lower() in DOCUMENT_SUFFIXES for path in files}
    font = None
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        font = args.font or find_cjk_font()
        if not font:
            print(
                "ocr_client: no CJK font found (install fonts-wqy-microhei or pass --font); "
                "Chinese text will not show in the pictures",
                file=sys.stderr,
            )
        if any(is_document.values()):
            print("ocr_client: --out draws images only; documents sent to /ocr are not drawn", file=sys.stderr)
    outs = output_names(files, args.out) if args.out else [None] * len(files)
    api_key = args.api_key if args.api_key is not None else os.environ.get("OCR_API_KEY", "")
    client = OcrClient(args.url, args.module, timeout=args.timeout, retries=args.retries, api_key=api_key)

    bar = progress_bar(len(files))
    write = bar.write if bar else lambda text, file: print(text, file=file, flush=True)
    failed = []
    pool = concurrent.futures.ThreadPoolExecutor(args.concurrency)
    try:
        futures = [
            pool.submit(process_document, client, path, args)
            if is_document[path]
            else pool.submit(process, client, path, out, font)
            for path, out in zip(files, outs)
        ]
        if bar:
            for future in futures:
                future.add_done_callback(lambda _: bar.update())
        for future in futures:  # in input order, as each is ready
            record = future.result()
            if record.get("unauthorized"):  # every other file would fail the same way: stop here
                pool.shutdown(wait=False, cancel_futures=True)
                hint = "check --api-key or OCR_API_KEY" if api_key.strip() else "pass it with --api-key KEY or in OCR_API_KEY"
                write(f"ocr_client: {record['error']} (HTTP 401 from {args.url}); {hint}", file=sys.stderr)
                return 1
            if "error" in record:
                failed.append(record["file"])
                write(f"ocr_client: {record['file']}: {record['error']}", file=sys.stderr)
            lines = printed(record, args, headed=len(files) > 1)
            if lines:
                write("\n".join(lines), file=sys.stdout)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        return 130
    finally:
        pool.shutdown()
        if bar:
            bar.close()
    if failed:
        kind = "files" if any(is_document.values()) else "images"
        print(f"ocr_client: {len(failed)} of {len(files)} {kind} failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

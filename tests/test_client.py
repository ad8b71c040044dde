"""scripts/ocr_client.py against the production server: as a command and as a class, images and PDFs,
with and without an API key."""

import fcntl
import io
import json
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

import ocr_client
from conftest import ROOT, WRITTEN, normalized, rect
from harness.servers import Server, free_port
from ocr_client import OcrClient, OcrError  # scripts/ is on pytest's pythonpath (pyproject.toml)
from test_documents import SENTENCES, build
from test_documents import text as text_layer

CLIENT = ROOT / "scripts" / "ocr_client.py"
API_KEY = "client-test-key-82d4"
KEY_MESSAGE = "send the key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


@pytest.fixture(scope="module")
def folder(pages, tmp_path_factory):
    """The rendered pages as PNG files, one per page."""
    path = tmp_path_factory.mktemp("scans")
    for name, sample in pages.items():
        Image.fromarray(sample.image[:, :, ::-1]).save(path / f"{name}.png")
    return path


@pytest.fixture(scope="module")
def report(report_pdf):
    return report_pdf


def expected(sample) -> list[str]:
    texts = [normalized(text) for text in sample.texts]
    return texts[::-1] if sample.name.endswith("_180") else texts  # lines come top to bottom


def run(server, *args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, CLIENT, "--url", server.url, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def test_folder_to_text(server, pages, folder):
    done = run(server, folder)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar: stderr is not a terminal
    blocks = re.findall(r"^==> ([^\n]+) <==\n(.*?)\n\n", done.stdout, re.MULTILINE | re.DOTALL)
    assert [name for name, _ in blocks] == [str(folder / f"{name}.png") for name in sorted(pages)]
    for name, text in blocks:
        sample = pages[name.rsplit("/", 1)[1].removesuffix(".png")]
        assert [normalized(line) for line in text.splitlines()] == expected(sample), name


def test_json_lines_and_visualisations(server, pages, folder, tmp_path):
    out = tmp_path / "vis"
    done = run(server, "--json", "--concurrency", "3", "--draw", out, folder / "*.png")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(folder / f"{name}.png") for name in sorted(pages)]
    for record in records:
        sample = pages[record["file"].rsplit("/", 1)[1].removesuffix(".png")]
        assert [normalized(line["text"]) for line in record["results"]] == expected(sample)
        assert record["visualization"] == str(out / f"{sample.name}_ocr.jpg")
        drawing = np.asarray(Image.open(record["visualization"]).convert("RGB")).astype(int)
        height, width = sample.image.shape[:2]
        assert drawing.shape == (height, 2 * width, 3)  # the image, and its text beside it
        for line in record["results"]:
            x0, y0, x1, y1 = rect(line["text_region"])
            shaded = drawing[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3]  # the box on the left: tinted, the page is grey
            assert (shaded.max(axis=2) - shaded.min(axis=2)).mean() > 12, (sample.name, line)
            written = drawing[y0 + 3 : y1 - 3, width + x0 + 3 : width + x1 - 3]  # the text on the right
            assert (written.max(axis=2) < 100).mean() > 0.03, (sample.name, line)


def test_a_bad_file_fails_alone_and_is_named(server, pages, folder, tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    good = folder / "english.png"
    done = run(server, good, tmp_path / "notes.png")
    assert done.returncode == 1
    assert f"{tmp_path / 'notes.png'}: not a decodable image" in done.stderr
    assert f"1 of 2 images failed: {tmp_path / 'notes.png'}" in done.stderr
    assert f"==> {good} <==\nQuarterly report 2026" in done.stdout  # the good image still answered

    done = run(server, "--json", tmp_path / "notes.png")
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"file": str(tmp_path / "notes.png"), "error": "not a decodable image"}

    done = run(server, tmp_path / "missing.png")
    assert done.returncode == 2 and "missing.png: no such file" in done.stderr


def on_terminal(server, *args, terminal_for: str = "stderr", preamble: str = "") -> tuple[int, str, str]:
    """Run the client with its stderr (or stdout) on a terminal 100 columns wide: its exit status, what
    the other stream got, and what the terminal showed. ``preamble``: Python run before the client."""
    command = [sys.executable, "-c", f"{preamble}\nimport runpy; runpy.run_path({str(CLIENT)!r}, run_name='__main__')"]
    terminal, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with tempfile.TemporaryFile() as other:  # a file, not a pipe: nobody reads it while the terminal is read
        streams = {"stdout": other, "stderr": child} if terminal_for == "stderr" else {"stdout": child, "stderr": other}
        process = subprocess.Popen([*command, "--url", server.url, *map(str, args)], **streams)
        os.close(child)
        shown = b""
        while True:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # the client exited and its end of the terminal is closed
                break
            if not chunk:
                break
            shown += chunk
        os.close(terminal)
        status = process.wait(timeout=120)
        other.seek(0)
        return status, other.read().decode(), shown.decode()


def finished_bar(shown: str, total: int, unit: str, name: str = "") -> bool:
    """tqdm drew the bar full: "name: 100%|███| 4/4 [00:01<00:00, 2.5file/s]" (or "1.3s/file" when slow)."""
    rate = rf"(?:{unit}/s|s/{unit})"
    return bool(re.search(rf"{re.escape(name)}100%\|[^|]*\| {total}/{total} \[[^\]]*{rate}\]", shown))


def test_progress_bars_only_on_a_terminal_and_not_with_quiet(server, folder, report):
    done = run(server, "--quiet", folder)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")

    status, _, shown = on_terminal(server, folder)  # one bar over the files
    assert status == 0 and finished_bar(shown, 4, "file"), shown

    status, _, shown = on_terminal(server, "--quiet", "--pages", "1", report)
    assert (status, shown) == (0, "")


def test_a_document_shows_its_pages_and_prints_the_same(server, pages, folder, report):
    status, printed, shown = on_terminal(server, report)  # streamed, a bar over its pages
    assert status == 0 and finished_bar(shown, 3, "page", "report.pdf: "), shown
    *written, scanned = printed.split("\n\f")
    assert written == ["\n".join(lines) for lines in WRITTEN]
    assert [normalized(line) for line in scanned.splitlines()] == expected(pages["english"])

    english = folder / "english.png"
    status, printed, shown = on_terminal(server, "--pages", "1-2", english, report)  # the files' bar, and the pages'
    assert status == 0 and finished_bar(shown, 2, "file"), shown
    assert printed == run(server, "--pages", "1-2", english, report).stdout  # the results as without bars


def test_without_tqdm_there_is_no_bar(server, report):
    status, printed, shown = on_terminal(server, "--pages", "1", report, preamble="import sys; sys.modules['tqdm'] = None")
    assert (status, printed, shown) == (0, "\n".join(WRITTEN[0]) + "\n", "")


def test_the_class_in_process(server, pages, lines, folder):
    client = OcrClient(server.url)
    english, chinese = folder / "english.png", (folder / "chinese.png").read_bytes()
    results = client.predict([english, chinese])  # paths or bytes, one request
    assert [[normalized(line["text"]) for line in r] for r in results] == [
        expected(pages["english"]),
        expected(pages["chinese"]),
    ]
    assert [set(line) for line in results[0]] == [{"text", "confidence", "text_region"}] * 3

    assert len(client.ocr(english, module="ocr_det")) == 3
    encoded = []
    for line in lines:
        Image.fromarray(line.image[:, :, ::-1]).save(buffer := io.BytesIO(), "PNG")
        encoded.append(buffer.getvalue())
    recognized = client.predict(encoded, module="ocr_rec")  # one {text, confidence} per image
    assert [normalized(r["text"]) for r in recognized] == [normalized(line.texts[0]) for line in lines]
    assert [r["angle"] for r in client.predict(encoded, module="ocr_cls")] == ["0", "0"]

    with pytest.raises(OcrError) as failure:
        client.predict([chinese, b"not a picture"])
    assert (str(failure.value), failure.value.status, failure.value.http_status) == (
        "image 1: not a decodable image",
        "101",
        400,
    )


def forward_later(target_port: int, delay: float) -> int:
    """A port that refuses connections for ``delay`` seconds, then passes one connection to ``target_port``."""
    port = free_port()

    def pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def serve():
        time.sleep(delay)
        with socket.create_server(("127.0.0.1", port)) as listener:
            caller, _ = listener.accept()
            with caller, socket.create_connection(("127.0.0.1", target_port)) as upstream:
                threading.Thread(target=pipe, args=(caller, upstream), daemon=True).start()
                pipe(upstream, caller)

    threading.Thread(target=serve, daemon=True).start()
    return port


def test_a_refused_connection_is_retried_with_backoff(server, pages, folder):
    started = time.monotonic()
    port = forward_later(server.port, delay=1.0)
    lines = OcrClient(f"http://127.0.0.1:{port}", retries=6, backoff=0.2).ocr(folder / "english.png")
    assert time.monotonic() - started >= 1.0  # it kept trying until the server was reachable
    assert [normalized(line["text"]) for line in lines] == expected(pages["english"])

    nobody = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(OcrError, match=f"^cannot reach {re.escape(nobody)}: Connection refused$"):
        OcrClient(nobody, retries=2, backoff=0.2).ocr(folder / "english.png")
    assert time.monotonic() - started >= 0.2 + 0.4  # two waits, the second twice as long


def test_a_pdf_prints_the_text_of_its_text_layer(server, report):
    done = run(server, "--pages", "1-2", report)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "\n\f".join("\n".join(lines) for lines in WRITTEN) + "\n"  # a form feed starts a page


def test_a_pdf_as_json_lines_one_per_page(server, pages, report):
    done = run(server, "--json", report)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["file"], r["page"], r["source"], r["dpi"], r["width"], r["height"]) for r in records] == [
        (str(report), n, source, 200, 1700, 2200) for n, source in [(1, "text-layer"), (2, "text-layer"), (3, "ocr")]
    ]
    assert [[line["text"] for line in r["lines"]] for r in records[:2]] == WRITTEN
    assert [normalized(line["text"]) for line in records[2]["lines"]] == expected(pages["english"])
    left, top, _, _ = rect(records[0]["lines"][0]["text_region"])
    assert left == 200 and abs(top - (792 - 700 - 14) * 200 / 72) < 12  # 1 inch from the left, in 200 dpi pixels

    done = run(server, "--json", "--pages", "3", "--ocr", "never", "--dpi", "100", report)
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"file": str(report), "page": 3, "source": "text-layer", "dpi": 100, "width": 850, "height": 1100, "lines": []}
    ]  # the scan has no text layer, and OCR was refused


def test_folders_include_pdfs_and_document_sends_images_to_ocr(server, pages, folder, report, tmp_path):
    (tmp_path / "report.pdf").write_bytes(report.read_bytes())
    (tmp_path / "english.png").write_bytes((folder / "english.png").read_bytes())
    done = run(server, "--json", "--pages", "2", tmp_path)
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["file"], "results" in r, r.get("page")) for r in records] == [
        (str(tmp_path / "english.png"), True, None),
        (str(tmp_path / "report.pdf"), False, 2),
    ]

    done = run(server, "--document", tmp_path / "english.png", tmp_path / "report.pdf")
    assert done.returncode == 0, done.stderr
    english, report_text = re.findall(r"^==> [^\n]+ <==\n(.*?)\n\n", done.stdout, re.MULTILINE | re.DOTALL)
    assert [normalized(line) for line in english.splitlines()] == expected(pages["english"])
    assert report_text.split("\n\f")[:2] == ["\n".join(lines) for lines in WRITTEN]


def test_a_bad_document_fails_alone_and_bad_options_are_usage_errors(server, report, tmp_path):
    (tmp_path / "broken.pdf").write_bytes(report.read_bytes()[:400])  # truncated
    done = run(server, "--pages", "1", report, tmp_path / "broken.pdf")
    assert done.returncode == 1
    assert f"{tmp_path / 'broken.pdf'}: not a readable PDF (damaged or truncated)" in done.stderr
    assert f"1 of 2 files failed: {tmp_path / 'broken.pdf'}" in done.stderr
    assert f"==> {report} <==\n{WRITTEN[0][0]}" in done.stdout

    done = run(server, "--json", "--pages", "9", report)
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"file": str(report), "error": "pages=9: the document has 3 pages"}

    for option in (["--pages", "two"], ["--dpi", "20"], ["--ocr", "maybe"], ["--document", "--module", "ocr_det"]):
        done = run(server, *option, report)
        assert done.returncode == 2 and done.stdout == "", option


def test_the_document_method(server, pages, folder, report):
    client = OcrClient(server.url)
    read = client.document(report, pages="2-", dpi=100)  # a path, or bytes
    assert [(page["page"], page["source"], page["dpi"]) for page in read] == [(2, "text-layer", 100), (3, "ocr", 100)]
    assert [line["text"] for line in read[0]["lines"]] == WRITTEN[1]
    assert all(line["confidence"] == 1.0 for line in read[0]["lines"])

    forced = client.document(report.read_bytes(), pages="1", ocr="always")
    assert forced[0]["source"] == "ocr"
    assert [normalized(line["text"]) for line in forced[0]["lines"]] == [normalized(t) for t in WRITTEN[0]]

    image = client.document(folder / "english.png")  # an image is a one-page document, in its own pixels
    height, width = pages["english"].image.shape[:2]
    assert [{key: page[key] for key in ("page", "source", "dpi", "width", "height")} for page in image] == [
        {"page": 1, "source": "ocr", "dpi": None, "width": width, "height": height}
    ]
    assert [normalized(line["text"]) for line in image[0]["lines"]] == expected(pages["english"])

    with pytest.raises(OcrError) as failure:
        client.document(b"%PDF-1.7 and nothing else")
    assert (failure.value.status, failure.value.http_status) == ("101", 400)
    assert str(failure.value).startswith("not a readable PDF")


# ---- answer formats and output files ------------------------------------------------------------


@pytest.fixture(scope="module")
def scan(pages, tmp_path_factory) -> Path:
    """A one-page scan of the english page, without a text layer, at 1 point per pixel (read it at 72 dpi)."""
    image = Image.fromarray(pages["english"].image[:, :, ::-1])
    path = tmp_path_factory.mktemp("scan") / "scan.pdf"
    canvas = Canvas(str(path), pagesize=image.size)
    canvas.drawImage(ImageReader(image), 0, 0, *image.size)
    canvas.showPage()
    canvas.save()
    return path


def pdf_text(data: bytes) -> list[str]:
    """The text of each page of a PDF, as a viewer finds it."""
    return [page.get_textpage().get_text_range() for page in pdfium.PdfDocument(data)]


def found(lines: list[str], text: str) -> bool:
    return all(normalized(line) in normalized(text) for line in lines)


def test_output_a_searchable_pdf(server, pages, scan, tmp_path):
    out = tmp_path / "made" / "scan.searchable.pdf"  # its folder made; its suffix gives the format
    done = run(server, "--dpi", "72", "--output", out, scan)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert pdf_text(scan.read_bytes()) == [""]
    [text] = pdf_text(out.read_bytes())
    assert found(expected(pages["english"]), text), text


def test_hocr_into_a_pipe_or_a_file(server, pages, folder, report, tmp_path):
    done = run(server, "--format", "hocr", folder / "english.png")  # an image: sent to /ocr
    assert done.returncode == 0, done.stderr
    words = ElementTree.fromstring(done.stdout).iter("{http://www.w3.org/1999/xhtml}span")
    lines = ["".join(word.text for word in line) for line in words if line.get("class") == "ocr_line"]
    assert [normalized(line) for line in lines] == expected(pages["english"])

    done = run(server, "--pages", "1", "--output", tmp_path / "report.html", report)  # .html: hOCR
    assert done.returncode == 0, done.stderr
    root = ElementTree.parse(tmp_path / "report.html").getroot()
    assert " ".join(span.text for span in root.iter() if span.get("class") == "ocrx_word") == " ".join(WRITTEN[0])


def test_a_folder_to_a_folder_of_searchable_pdfs(server, pages, folder, scan, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("english", "chinese"):
        (inputs / f"{name}.png").write_bytes((folder / f"{name}.png").read_bytes())
    (inputs / "scan.pdf").write_bytes(scan.read_bytes())
    done = run(server, "--format", "pdf", "--dpi", "72", "--output", tmp_path / "out", inputs)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["chinese.pdf", "english.pdf", "scan.pdf"]
    for name, sample in [("english", "english"), ("chinese", "chinese"), ("scan", "english")]:
        [text] = pdf_text((tmp_path / "out" / f"{name}.pdf").read_bytes())
        assert found(expected(pages[sample]), text), (name, text)


def test_text_and_json_files_numbered_when_names_repeat(server, report, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "report.pdf").write_bytes(report.read_bytes())
    inputs = [tmp_path / "a" / "report.pdf", tmp_path / "b" / "report.pdf"]
    done = run(server, "--pages", "1-2", "--output", tmp_path / "text", *inputs)
    assert (done.returncode, done.stdout) == (0, "")
    alone = run(server, "--pages", "1-2", inputs[0]).stdout
    assert [(tmp_path / "text" / name).read_text() for name in ("report.txt", "report-2.txt")] == [alone, alone]

    done = run(server, "--json", "--pages", "2", "--output", f"{tmp_path / 'json'}/", inputs[0])  # a slash: a folder
    assert done.returncode == 0, done.stderr
    [page] = [json.loads(line) for line in (tmp_path / "json" / "report.json").read_text().splitlines()]
    assert (page["file"], page["page"], [line["text"] for line in page["lines"]]) == (str(inputs[0]), 2, WRITTEN[1])


def test_output_and_format_usage_errors(server, folder, report, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    english = folder / "english.png"
    refused = {
        ("--output", tmp_path / "notes.txt", english, report): "with 2 input files --output must be a folder",
        ("--output", tmp_path / "both.pdf", english, report): "with 2 input files --output must be a folder",
        ("--format", "pdf", english, report): "with 2 inputs give --output DIR",
        ("--format", "pdf", "--ocr", "always", report): "--ocr always would lay a second over a page's own",
        ("--json", "--format", "hocr", report): "--json is --format json",
        ("--format", "hocr", "--module", "ocr_det", english): "--format hocr reads with ocr_system",
        ("--output", report, report): f"--output would overwrite the input file {report}",
    }
    for args, message in refused.items():
        done = run(server, *args)
        assert (done.returncode, done.stdout) == (2, ""), args
        assert message in done.stderr, (args, done.stderr)
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / "both.pdf").exists()

    for format, shown in [("pdf", "a PDF"), ("hocr", "XHTML")]:  # not onto a terminal; into a pipe it is fine
        status, errors, _ = on_terminal(server, "--format", format, report, terminal_for="stdout")
        assert status == 2 and f"--format {format} would write {shown} on the terminal" in errors, errors
    assert ocr_client.arguments().parse_args(["--out", "vis", "a.png"]).draw == Path("vis")  # --draw's old name


def test_the_stream_and_the_answers_in_each_format(server, pages, scan, report):
    client = OcrClient(server.url)
    events = list(client.document_stream(report, pages="2-", format="text"))
    assert [(event["event"], event.get("page"), event.get("source")) for event in events] == [
        ("start", None, None),
        ("page", 2, "text-layer"),
        ("page", 3, "ocr"),
        ("end", None, None),
    ]
    assert (events[0]["pages"], events[-1]["pages"], events[-1]["status"]) == (2, 2, "000")
    assert events[-1]["text"].split("\f")[0] == "\n".join(WRITTEN[1])

    seen = []
    searchable = client.searchable_pdf(scan.read_bytes(), dpi=72, progress=seen.append)  # streamed
    assert [event["event"] for event in seen] == ["start", "page", "end"]
    assert found(expected(pages["english"]), pdf_text(searchable)[0])

    whole = client.document(report, pages="1-2")  # the same answers whole or streamed
    assert client.document(report, pages="1-2", progress=seen.append) == whole
    xhtml = client.hocr(report, pages="1")
    assert client.hocr(report, pages="1", progress=seen.append) == xhtml and ">Invoice</span>" in xhtml


def test_stream_errors(server):
    data = build(text_layer(*SENTENCES), text_layer(*SENTENCES))
    second = re.search(rb"/Kids \[ \d+ 0 R (\d+) 0 R \]", data)[1]  # page 2 made unreadable
    start = data.index(b"\n%s 0 obj\n" % second) + len(b"\n%s 0 obj\n" % second)
    end = data.index(b"endobj", start)
    damaged = data[:start] + b"null".ljust(end - start) + data[end:]
    client, seen = OcrClient(server.url), []
    with pytest.raises(OcrError) as failure:
        for event in client.document_stream(damaged):
            seen.append(event["event"])
    assert seen == ["start", "page"]  # the first page came, then the error event
    assert (str(failure.value), failure.value.status, failure.value.http_status) == (
        "page 2: cannot be read; the PDF is damaged",
        "101",
        None,
    )
    with pytest.raises(OcrError) as failure:  # refused before the first page: the envelope
        list(client.document_stream(b"not a document at all"))
    assert (failure.value.status, failure.value.http_status) == ("101", 400)
    with pytest.raises(OcrError, match="^not a PDF nor an image file"):
        client.searchable_pdf(b"not a document at all")


# ---- API keys ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """A production server that wants one of its API keys in every request."""
    with Server.production(tmp_path_factory.mktemp("keyed"), OCR_WORKERS="1", OCR_API_KEYS=f"{API_KEY},another-key") as server:
        yield server


def without_key(**extra: str) -> dict:
    """This environment without OCR_API_KEY, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if k != "OCR_API_KEY"}, **extra}


def refused(server, path: str = "/predict/ocr_system", settle: float = 0.5) -> int:
    """The server's 401 answers to ``POST path`` so far, from its access log (once it stops growing)."""
    count = -1
    while (now := server.log().count(f'"POST {path}" 401')) != count:
        count = now
        time.sleep(settle)
    return count


def test_the_key_from_the_option_or_the_environment(keyed, pages, folder, report):
    english = folder / "english.png"
    for option, variable in ([API_KEY, None], [None, API_KEY], [API_KEY, "wrong"]):  # the option wins
        args = ["--api-key", option] if option else []
        env = without_key(**({"OCR_API_KEY": variable} if variable else {}))
        done = run(keyed, *args, english, env=env)
        assert done.returncode == 0, (option, variable, done.stderr)
        assert [normalized(line) for line in done.stdout.splitlines()] == expected(pages["english"])

    done = run(keyed, "--pages", "1-2", report, env=without_key(OCR_API_KEY=API_KEY))  # /ocr takes it too
    assert done.returncode == 0, done.stderr
    assert done.stdout == "\n\f".join("\n".join(lines) for lines in WRITTEN) + "\n"


def test_a_missing_or_wrong_key_fails_at_once_with_the_servers_message(keyed, folder, report):
    before = refused(keyed)
    done = run(keyed, "--api-key", "wrong", "--retries", "4", folder / "english.png", env=without_key(OCR_API_KEY=API_KEY))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"ocr_client: a wrong API key: {KEY_MESSAGE} (HTTP 401 from {keyed.url}); check --api-key or OCR_API_KEY\n"
    )
    assert refused(keyed) == before + 1  # one request: a 401 is not retried

    done = run(keyed, "--json", folder, report, env=without_key())  # 5 files: one message, then it stops
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"ocr_client: no API key: {KEY_MESSAGE} (HTTP 401 from {keyed.url}); pass it with --api-key KEY or in OCR_API_KEY\n"
    )

    done = run(keyed, "--api-key", "", folder / "english.png", env=without_key(OCR_API_KEY=API_KEY))  # '' sends none
    assert done.returncode == 1 and "no API key" in done.stderr


def test_the_class_with_a_key(keyed, pages, folder, report):
    english = folder / "english.png"
    client = OcrClient(keyed.url, api_key=API_KEY)
    assert [normalized(line["text"]) for line in client.ocr(english)] == expected(pages["english"])
    assert [line["text"] for line in client.document(report, pages="1")[0]["lines"]] == WRITTEN[0]

    before = refused(keyed)
    started = time.monotonic()
    with pytest.raises(OcrError) as failure:
        OcrClient(keyed.url, api_key="wrong", retries=4, backoff=2).ocr(english)
    assert time.monotonic() - started < 2  # no backoff: not retried
    assert (str(failure.value), failure.value.status, failure.value.http_status) == (
        f"a wrong API key: {KEY_MESSAGE}",
        "101",
        401,
    )
    assert refused(keyed) == before + 1
    with pytest.raises(OcrError, match="^no API key: ") as failure:
        OcrClient(keyed.url).document(report)
    assert failure.value.http_status == 401

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
import termios
import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, WRITTEN, normalized, rect
from harness.servers import Server, free_port
from ocr_client import OcrClient, OcrError  # scripts/ is on pytest's pythonpath (pyproject.toml)

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
    done = run(server, "--json", "--concurrency", "3", "--out", out, folder / "*.png")
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


def test_progress_bar_only_on_a_terminal(server, folder):
    done = run(server, "--quiet", folder)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")

    terminal, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    process = subprocess.Popen(
        [sys.executable, CLIENT, "--url", server.url, "--quiet", folder], stdout=subprocess.DEVNULL, stderr=child
    )
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
    assert process.wait(timeout=60) == 0
    assert re.search(r"100%\|.*\| 4/4 ", shown.decode()), shown


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

"""POST /ocr over the real session server: searchable PDFs, and pages streamed as NDJSON as they are read."""

import base64
import io
import json
import subprocess
import time

import cv2
import numpy as np
import pytest
import requests

from conftest import normalized
from harness.docbench import jpeg_pages
from harness.servers import metric
from test_documents import SENTENCES, build, text

NDJSON = {"Accept": "application/x-ndjson"}


def scanned_pdf(images: list[np.ndarray], dpi: int = 72) -> bytes:
    """A scan: each BGR image a JPEG on its own page at ``dpi`` (rendered at that dpi, the same pixels)."""
    return jpeg_pages([cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for image in images], dpi)


@pytest.fixture(scope="module")
def scan_pages(pages) -> list[np.ndarray]:
    """20 letter-like pages of English, Chinese and mixed text, each three samples stacked."""
    names = ["english", "chinese", "mixed"]
    return [np.vstack([pages[names[(n + k) % 3]].image for k in range(3)]) for n in range(20)]


def post(server, data: bytes, headers=None, stream=False, **params) -> requests.Response:
    return requests.post(
        server.url + "/ocr", files={"file": ("scan.pdf", data)}, params=params, headers=headers, stream=stream, timeout=300
    )


def events(response: requests.Response):
    """The stream's objects, each with the seconds since the request was sent."""
    started = time.monotonic()
    for line in response.iter_lines(chunk_size=1 << 16):
        yield json.loads(line), time.monotonic() - started


def pdftotext_pages(path) -> list[str]:
    found = subprocess.run(["pdftotext", "-enc", "UTF-8", path, "-"], capture_output=True, check=True, text=True)
    return found.stdout.split("\f")


def pdftoppm(path, tmp_path, name: str) -> list[bytes]:
    subprocess.run(["pdftoppm", "-r", "36", path, tmp_path / name], check=True)
    return [file.read_bytes() for file in sorted(tmp_path.glob(f"{name}-*.ppm"))]


def test_a_20_page_scan_streams_in_order_and_ends_with_its_searchable_pdf(server, scan_pages, tmp_path):
    # scanned at 180 dpi, as an office scanner's grey pages are (a page of JPEG is some 50 KB); read at 72 dpi
    data = scanned_pdf([cv2.resize(page, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC) for page in scan_pages], dpi=180)
    response = post(server, data, NDJSON, stream=True, dpi="72", format="pdf")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["x-accel-buffering"] == "no"  # a proxy such as nginx passes each line on at once
    received = list(events(response))
    kinds = [event["event"] for event, _ in received]
    assert kinds == ["start"] + ["page"] * 20 + ["end"] and received[0][0]["pages"] == 20
    pages = [event for event, _ in received[1:-1]]
    assert [page["page"] for page in pages] == list(range(1, 21)) and {page["source"] for page in pages} == {"ocr"}
    first_page_at, end_at = received[1][1], received[-1][1]
    assert first_page_at < end_at / 4, (first_page_at, end_at)  # sent as read, not all at the end
    end = received[-1][0]
    assert (end["status"], end["msg"], end["pages"]) == ("000", "", 20)

    searchable = base64.b64decode(end["pdf"])
    (tmp_path / "in.pdf").write_bytes(data)
    (tmp_path / "out.pdf").write_bytes(searchable)
    assert len(searchable) <= 1.05 * len(data), (len(searchable), len(data))
    found = pdftotext_pages(tmp_path / "out.pdf")
    lines = [(number, normalized(line["text"])) for number, page in enumerate(pages) for line in page["lines"]]
    missing = [line for number, line in lines if line not in normalized(found[number])]
    assert len(lines) >= 20 * 9 and len(missing) <= 0.01 * len(lines), missing
    assert any("光学字符识别" in page for page in found) and any("Quarterly" in page for page in found)
    assert pdftoppm(tmp_path / "out.pdf", tmp_path, "out") == pdftoppm(tmp_path / "in.pdf", tmp_path, "in")


def test_the_pdf_answer_of_a_whole_request_and_of_an_image(server, pages):
    data = scanned_pdf([pages["mixed"].image])
    response = post(server, data, {"Accept": "application/pdf"}, dpi="72")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-") and b"/Identity-H" not in data
    ok, png = cv2.imencode(".png", pages["chinese"].image)
    image = requests.post(server.url + "/ocr", files={"file": ("page.png", png.tobytes())}, params={"format": "pdf"}, timeout=60)
    assert image.status_code == 200 and image.content.startswith(b"%PDF-")
    as_json = requests.post(server.url + "/ocr", files={"file": ("page.png", png.tobytes())}, timeout=60).json()
    pdf_text = requests.post(
        server.url + "/ocr", files={"file": ("page.pdf", image.content)}, params={"ocr": "never"}, timeout=60
    ).json()
    assert [normalized(line["text"]) for line in pdf_text["results"][0]["lines"]] == [
        normalized(line["text"]) for line in as_json["results"][0]["lines"]
    ]  # its text layer reads back as the OCR's lines


def test_documents_are_counted_by_format_and_delivery(server):
    exposition = requests.get(server.url + "/metrics", timeout=10).text
    assert 'ocr_documents_total{delivery="whole",format="pdf"}' in exposition
    assert 'ocr_documents_total{delivery="stream",format="pdf"}' in exposition


def test_a_pdf_that_cannot_be_rewritten_is_refused_before_any_page_is_read(server):
    import pikepdf

    source = pikepdf.open(io.BytesIO(build(text(*SENTENCES))))
    encrypted = io.BytesIO()
    source.save(encrypted, encryption=pikepdf.Encryption(owner="owner", user=""))
    for headers, params in (({}, {"format": "pdf"}), (NDJSON, {"format": "pdf"})):
        response = post(server, encrypted.getvalue(), headers, **params)
        assert response.status_code == 400 and response.json()["status"] == "101", response.text
        assert "encrypt" in response.json()["msg"]
    always = post(server, build(text(*SENTENCES)), format="pdf", ocr="always")
    assert always.status_code == 400 and "ocr=always would lay a second" in always.json()["msg"]


@pytest.mark.parametrize("answer", ["json", "pdf"])  # pdf: the rewrite check parses a null object too
def test_an_error_after_the_first_page_ends_the_stream_with_an_error_object(server, answer):
    import re

    data = build(text(*SENTENCES), text(*SENTENCES))
    second = re.search(rb"/Kids \[ \d+ 0 R (\d+) 0 R \]", data)[1]
    start = data.index(b"\n%s 0 obj\n" % second) + len(b"\n%s 0 obj\n" % second)
    end = data.index(b"endobj", start)
    damaged = data[:start] + b"null".ljust(end - start) + data[end:]
    response = post(server, damaged, NDJSON, stream=True, format=answer)
    assert response.status_code == 200, response.text
    received = [event for event, _ in events(response)]
    assert [event["event"] for event in received] == ["start", "page", "error"]
    assert received[-1] == {"event": "error", "status": "101", "msg": "page 2: cannot be read; the PDF is damaged"}
    bad = post(server, b"not a document at all", NDJSON)
    assert bad.status_code == 400 and bad.json()["msg"].startswith("not a PDF nor an image file")


@pytest.mark.parametrize("streamed", [True, False])
def test_a_client_that_goes_away_stops_the_work(server, scan_pages, streamed):
    data = scanned_pdf(scan_pages * 2)  # 40 pages: 10 s or more of work
    before = metric(server.url, "ocr_pages_total")
    gone = metric(server.url, 'ocr_abandoned_requests_total{module="ocr"}')
    if streamed:
        response = post(server, data, NDJSON, stream=True, dpi="72", ocr="always")
        lines = response.iter_lines()
        assert json.loads(next(lines)) == {"event": "start", "pages": 40}
        assert json.loads(next(lines))["page"] == 1
        response.close()
    else:
        with pytest.raises(requests.ReadTimeout):  # the client gives up, and closes its connection
            requests.post(server.url + "/ocr", files={"file": ("scan.pdf", data)}, params={"dpi": "72"}, timeout=1.5)
    time.sleep(1.5)
    stopped_at = metric(server.url, "ocr_pages_total")
    time.sleep(2)
    # no page read since, and half the document or more never read (a page takes 0.2-0.4 s here)
    assert metric(server.url, "ocr_pages_total") == stopped_at < before + 20, (before, stopped_at)
    assert metric(server.url, 'ocr_abandoned_requests_total{module="ocr"}') == gone + 1
    answer = post(server, build(text(*SENTENCES))).json()
    assert [line["text"] for line in answer["results"][0]["lines"]] == SENTENCES

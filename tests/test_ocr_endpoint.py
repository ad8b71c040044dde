"""POST /ocr over the real session server: PDFs and images in, pages of lines (or plain text) out."""

import io
import time
from xml.etree import ElementTree

import cv2
import pypdfium2 as pdfium
import pytest
import requests
from PIL import Image
from reportlab.lib.utils import ImageReader

from conftest import b64, normalized
from ocrhub import hocr
from test_documents import SENTENCES, build, saved, text


def ocr(server, data: bytes, filename="doc.pdf", field="file", timeout=120, **params) -> requests.Response:
    return requests.post(server.url + "/ocr", files={field: (filename, data)}, params=params, timeout=timeout)


def page_of(image_bgr):
    """One PDF page holding the image at 1 point per pixel: rendered at 72 dpi it is the same pixels."""
    height, width = image_bgr.shape[:2]
    reader = ImageReader(Image.fromarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)))

    def draw(canvas):
        canvas.setPageSize((width, height))
        canvas.drawImage(reader, 0, 0, width, height)

    return draw


def test_a_text_layer_pdf_gives_its_text_exactly_with_boxes(server):
    response = ocr(server, build(text(*SENTENCES)))
    answer = response.json()
    assert response.status_code == 200 and answer["status"] == "000", answer
    [page] = answer["results"]
    assert (page["page"], page["source"], page["dpi"], page["width"], page["height"]) == (
        1,
        "text-layer",
        200,
        1700,
        2200,
    )
    assert [line["text"] for line in page["lines"]] == SENTENCES
    assert all(line["confidence"] == 1.0 and len(line["text_region"]) == 4 for line in page["lines"])


def test_a_scanned_page_reads_as_the_same_image_sent_to_ocr_system(server, pages):
    sample = pages["mixed"]
    answer = ocr(server, build(page_of(sample.image)), dpi="72").json()
    [page] = answer["results"]
    assert page["source"] == "ocr" and (page["height"], page["width"]) == sample.image.shape[:2]
    direct = requests.post(server.url + "/predict/ocr_system", json={"images": [b64(sample.image)]}, timeout=60).json()[
        "results"
    ][0]
    assert [line["text"] for line in page["lines"]] == [line["text"] for line in direct]
    for ours, theirs in zip(page["lines"], direct):
        assert max(abs(a - b) for p, q in zip(ours["text_region"], theirs["text_region"]) for a, b in zip(p, q)) <= 2
    assert [normalized(line["text"]) for line in direct] == [normalized(t) for t in sample.texts]


def test_a_mixed_pdf_as_plain_text(server, pages):
    data = build(text(*SENTENCES), page_of(pages["english"].image))
    response = requests.post(
        server.url + "/ocr", data=data, timeout=120, headers={"Content-Type": "application/pdf", "Accept": "text/plain"}
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    first, second = response.text.split("\f")
    assert first.splitlines() == SENTENCES
    assert [normalized(line) for line in second.splitlines()] == [normalized(t) for t in pages["english"].texts]
    sources = [page["source"] for page in ocr(server, data, dpi="72").json()["results"]]
    assert sources == ["text-layer", "ocr"]
    assert [p["source"] for p in ocr(server, data, ocr="always", dpi="72").json()["results"]] == ["ocr", "ocr"]


def test_an_image_file_is_one_page(server, pages):
    ok, png = cv2.imencode(".png", pages["english"].image)
    response = requests.post(
        server.url + "/ocr?format=text", data=png.tobytes(), timeout=60, headers={"Content-Type": "image/png"}
    )
    assert [normalized(line) for line in response.text.splitlines()] == [normalized(t) for t in pages["english"].texts]


def test_a_long_pdf_is_refused_past_the_page_limit_and_read_within_it(server):
    data = build(*(text(f"Page {n} of a long report", *SENTENCES) for n in range(1, 201)))
    started = time.monotonic()
    refused = ocr(server, data)
    assert refused.status_code == 400 and time.monotonic() - started < 5
    assert refused.json()["msg"].startswith("too many pages: 200 (limit 100 per request, OCR_MAX_PAGES)")
    started = time.monotonic()
    answer = ocr(server, data, pages="101-200").json()
    seconds = time.monotonic() - started
    print(f"100 text-layer pages in {seconds:.1f} s ({100 / seconds:.0f} pages/s)")
    assert [page["page"] for page in answer["results"]] == list(range(101, 201))
    assert answer["results"][-1]["lines"][0]["text"] == "Page 200 of a long report"


def encrypted() -> bytes:
    return build(text(*SENTENCES), encrypt="secret")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"data": lambda: b"%PDF-1.7\n" + b"\x00garbage" * 100}, "not a readable PDF (damaged or truncated)"),
        (
            {"data": lambda: (lambda pdf: pdf[: len(pdf) // 2])(build(text(*SENTENCES)))},
            "not a readable PDF (damaged or truncated)",
        ),
        ({"data": encrypted}, "the PDF is password-protected"),
        ({"data": lambda: saved(pdfium.PdfDocument.new())}, "the PDF has no pages"),
        ({"data": lambda: b""}, "the file is empty"),
        ({"data": lambda: b"just some text"}, "not a PDF nor an image file"),
        (
            {"data": lambda: build(text("x")), "field": "document"},
            "no file in the multipart field 'file' (fields sent: document)",
        ),
        ({"data": lambda: build(text("x")), "pages": "5"}, "pages"),
        ({"data": lambda: build(text("x")), "dpi": "5000"}, "dpi must be a whole number from 50 to 600"),
        ({"data": lambda: build(text("x")), "ocr": "maybe"}, "ocr must be one of auto, always, never"),
    ],
)
def test_bad_documents_get_the_envelope_and_the_server_goes_on(server, kwargs, message):
    kwargs = dict(kwargs)
    data = kwargs.pop("data")()
    response = ocr(server, data, **kwargs)
    assert response.status_code == 400 and response.json()["status"] == "101"
    assert message in response.json()["msg"], response.json()
    still = ocr(server, build(text("Still serving after a bad document"))).json()
    assert still["results"][0]["lines"][0]["text"] == "Still serving after a bad document"


def test_a_raw_body_of_another_type_is_refused_with_usage(server):
    response = requests.post(server.url + "/ocr", data=b"{}", headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 400
    assert "send one file as multipart/form-data in the field 'file'" in response.json()["msg"]


def test_pages_are_counted_by_source(server):
    lines = requests.get(server.url + "/metrics", timeout=10).text
    assert 'ocr_pages_total{source="text-layer"}' in lines and 'ocr_pages_total{source="ocr"}' in lines


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(server):
    buffer = io.BytesIO()
    Image.new("1", (10000, 10000)).save(buffer, "PNG", optimize=True)
    response = requests.post(server.url + "/ocr", data=buffer.getvalue(), headers={"Content-Type": "image/png"}, timeout=30)
    assert response.status_code == 400 and "image 0: image too large: 10000×10000" in response.json()["msg"]


def test_hocr_is_xhtml_with_the_json_answers_line_boxes(server, pages):
    """?format=hocr: well-formed XHTML (hOCR 1.2's ocr_page, ocr_line, ocrx_word), lines and boxes as in JSON."""
    data = build(text(*SENTENCES), page_of(pages["mixed"].image))
    response = ocr(server, data, dpi="72", format="hocr")
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    root = ElementTree.fromstring(response.content)  # XHTML is XML: a parse error fails the test
    namespace = {"x": "http://www.w3.org/1999/xhtml"}
    answer = ocr(server, data, dpi="72").json()["results"]
    hocr_pages = root.findall(".//x:div[@class='ocr_page']", namespace)
    assert [page.get("title") for page in hocr_pages] == [
        f"bbox 0 0 {page['width']} {page['height']}; ppageno {page['page'] - 1}" for page in answer
    ]
    for hocr_page, page in zip(hocr_pages, answer, strict=True):
        hocr_lines = hocr_page.findall("x:span[@class='ocr_line']", namespace)
        assert [line.get("title").split(";")[0] for line in hocr_lines] == [
            "bbox {} {} {} {}".format(*hocr.bbox(line)) for line in page["lines"]
        ]
        words = [[word.text for word in line.findall("x:span[@class='ocrx_word']", namespace)] for line in hocr_lines]
        assert [" ".join(line) for line in words] == [" ".join(line["text"].split()) for line in page["lines"]]
    assert "PaddleOCR" in response.text and "价格" in response.text  # UTF-8, Chinese and Latin
    bad = ocr(server, data, format="xml")
    assert bad.status_code == 400 and bad.json()["msg"] == "format must be one of json, text, hocr, pdf, got 'xml'"


def test_hocr_word_boxes_split_the_line_by_characters():
    line = {"text": "Total 42 EUR", "confidence": 0.9, "text_region": [[100, 10], [220, 10], [220, 30], [100, 30]]}
    assert hocr.word_boxes(line) == [("Total", (100, 10, 150, 30)), ("42", (160, 10, 180, 30)), ("EUR", (190, 10, 220, 30))]
    assert hocr.word_boxes({**line, "text": "价格：128元"}) == [("价格：128元", (100, 10, 220, 30))]
    assert 'x_wconf 90">Total</span>' in hocr.as_hocr([{"page": 1, "width": 300, "height": 40, "lines": [line]}])

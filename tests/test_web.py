"""The try-it page at / in a real headless Chromium, against the production server and real models:
images through /predict/<module>, PDFs streamed page by page through /ocr and downloaded back searchable;
the page within its Content-Security-Policy, with the API key of a keyed server, and the API called from
other origins (CORS)."""

import base64
import http.server
import io
import json
import os
import re
import tempfile
import threading
from pathlib import Path

import numpy as np
import pikepdf
import pypdfium2 as pdfium
import pytest
import requests
from PIL import Image
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import ROOT, WRITTEN, covers, normalized
from harness.servers import Server
from test_documents import SENTENCES, build, text

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# The README's screenshot is refreshed on demand (UPDATE_SCREENSHOT=1), so test runs leave the tree clean.
SCREENSHOT = (
    ROOT / "docs" / "screenshot.png"
    if os.environ.get("UPDATE_SCREENSHOT")
    else Path(tempfile.gettempdir()) / "ocrhub-screenshot.png"
)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
    reason="no headless browser: apt-get install -y chromium chromium-driver",
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # warnings too, for CSP reports
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def files(pages, tmp_path_factory):
    """The rendered pages as PNG files, and a text file named like an image."""
    folder = tmp_path_factory.mktemp("uploads")
    for name, sample in pages.items():
        Image.fromarray(sample.image[:, :, ::-1]).save(folder / f"{name}.png")
    (folder / "notes.png").write_text("this is text, not a picture")
    return folder


@pytest.fixture(scope="module")
def report(report_pdf):
    return report_pdf


def scanned_pdf(path: Path, images) -> Path:
    """A scan as a scanner makes one: each BGR image a page of its own at 200 dpi, so that /ocr (200 dpi by
    default) reads each page as the image's pixels."""
    canvas = Canvas(str(path))
    for image in images:
        scan = Image.fromarray(image[:, :, ::-1])
        width, height = (side * 72 / 200 for side in scan.size)
        canvas.setPageSize((width, height))
        canvas.drawImage(ImageReader(scan), 0, 0, width, height)
        canvas.showPage()
    canvas.save()
    return path


SCAN = [("english", "chinese"), ("mixed", "english"), ("chinese", "mixed")] * 2  # the samples on each page


@pytest.fixture(scope="module")
def scans(pages, tmp_path_factory):
    """Two scanned PDFs: quarterly.pdf, one page (the english sample), and scan.pdf, six of two samples each."""
    folder = tmp_path_factory.mktemp("scans")
    quarterly = scanned_pdf(folder / "quarterly.pdf", [pages["english"].image])
    scan = scanned_pdf(folder / "scan.pdf", [np.vstack([pages[name].image for name in both]) for both in SCAN])
    return quarterly, scan


def open_page(browser, server):
    browser.get(server.url)
    browser.execute_script("localStorage.clear(); sessionStorage.clear()")  # settings persist: start from the defaults
    browser.refresh()
    wait(browser, "return document.querySelector('#health').textContent.startsWith('ready')")


def wait(browser, script, timeout=120):
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda driver: driver.execute_script(script))


def upload(browser, *paths):
    """Choose files as a user does; wait for the answer (cards, or the error box)."""
    browser.find_element(By.ID, "files").send_keys("\n".join(str(path) for path in paths))
    wait_for_answer(browser)


def drop(browser, *paths):
    """Drop files on the page as from a file manager (WebDriver can only type paths into a file input)."""
    source = browser.execute_script("""
        const input = Object.assign(document.createElement('input'), {type: 'file', multiple: true});
        input.className = 'visually-hidden';
        document.body.append(input);
        return input;""")
    source.send_keys("\n".join(str(path) for path in paths))
    browser.execute_script(
        """
        const input = arguments[0], dataTransfer = new DataTransfer();
        [...input.files].forEach(file => dataTransfer.items.add(file));
        input.remove();
        document.querySelector('#drop').dispatchEvent(new DragEvent('drop', {dataTransfer, bubbles: true}));""",
        source,
    )
    wait_for_answer(browser)


def wait_for_answer(browser):
    wait(
        browser,
        "const status = document.querySelector('#status');return !status.hidden && !status.classList.contains('busy')",
    )


def cards(browser) -> dict:
    """Per image card, in page order: its line texts, and its boxes as drawn, in the image's pixels (PDF
    pages have no image: see ``sheets``)."""
    return dict(
        browser.execute_script("""
        return [...document.querySelectorAll('.card:has(img)')].map(card => {
            const img = card.querySelector('img'), frame = img.getBoundingClientRect();
            const scale = img.naturalWidth / frame.width;
            const boxes = [...card.querySelectorAll('.box')].map(box => {
                const r = box.getBoundingClientRect();
                return [r.left - frame.left, r.top - frame.top, r.right - frame.left, r.bottom - frame.top]
                    .map(v => Math.round(v * scale));
            });
            const lines = [...card.querySelectorAll('.line .text')].map(text => text.textContent);
            return [card.querySelector('.name').textContent,
                    {lines, boxes, meta: card.querySelector('.meta').textContent}];
        });""")
    )


def sheets(browser) -> list:
    """Per PDF page card, in page order: its labels, its lines, the text written on its sheet, and its
    boxes as drawn, in the page's pixels."""
    return browser.execute_script("""
        return [...document.querySelectorAll('.card:has(.sheet)')].map(card => {
            const sheet = card.querySelector('.sheet').getBoundingClientRect();
            const [, , width, height] = card.querySelector('svg').getAttribute('viewBox').split(' ').map(Number);
            const boxes = [...card.querySelectorAll('.box')].map(box => {
                const r = box.getBoundingClientRect();
                return [r.left - sheet.left, r.top - sheet.top, r.right - sheet.left, r.bottom - sheet.top]
                    .map(v => Math.round(v * width / sheet.width));
            });
            const texts = selector => [...card.querySelectorAll(selector)].map(item => item.textContent);
            return {name: card.querySelector('.name').textContent, tag: card.querySelector('.tag').textContent,
                    meta: card.querySelector('.meta').textContent, lines: texts('.line .text'),
                    written: texts('svg text'), confidences: texts('.line .conf').length, boxes,
                    shape: [width / height, sheet.width / sheet.height]};
        });""")


def documents(browser) -> list:
    """Per PDF row, in page order: its name, state, progress [value, max], the name its searchable PDF
    downloads as (None without one) and its note (None without one)."""
    return browser.execute_script("""
        return [...document.querySelectorAll('.document')].map(row => {
            const link = row.querySelector('.download'), note = row.querySelector('.document-note');
            const bar = row.querySelector('progress');
            return {name: row.querySelector('.document-name').textContent,
                    state: row.querySelector('.document-state').textContent, progress: [bar.value, bar.max],
                    download: link.hidden ? null : link.download, note: note.hidden ? null : note.textContent};
        });""")


def expected_lines(sample):
    texts = [normalized(text) for text in sample.texts]
    return texts[::-1] if sample.name.endswith("_180") else texts


def test_upload_shows_the_text_and_a_box_over_each_line(browser, server, pages, files):
    open_page(browser, server)
    names = ["mixed", "english", "chinese", "mixed_180"]
    upload(browser, *[files / f"{name}.png" for name in names])

    shown = cards(browser)
    assert sorted(shown) == sorted(f"{name}.png" for name in names)
    names = [name.removesuffix(".png") for name in shown]
    for name in names:
        card, sample = shown[f"{name}.png"], pages[name]
        assert [normalized(line) for line in card["lines"]] == expected_lines(sample), name
        assert len(card["boxes"]) == len(card["lines"])
        ink = sorted(sample.boxes, key=lambda box: box[1])  # lines come top to bottom
        for drawn, line_ink in zip(card["boxes"], ink):  # drawn where the text is, in image pixels
            assert covers(drawn, line_ink, slack=8, margin=14), (name, drawn, line_ink)
    summary = browser.find_element(By.ID, "summary").text
    count = sum(len(pages[name].texts) for name in names)
    assert re.fullmatch(rf"4 images · {count} lines · [\d.]+ (ms|s) request · \d+ KB sent", summary), summary
    assert browser.find_element(By.ID, "error").is_displayed() is False

    # hovering a line highlights its box, and hovering a box its line
    first = browser.find_elements(By.CSS_SELECTOR, ".card")[0]
    lines, boxes = first.find_elements(By.CSS_SELECTOR, ".line"), first.find_elements(By.CSS_SELECTOR, ".box")
    ActionChains(browser).move_to_element(lines[1]).perform()
    assert ["active" in box.get_attribute("class") for box in boxes] == [i == 1 for i in range(len(boxes))]
    ActionChains(browser).move_to_element(boxes[2]).perform()
    assert ["active" in line.get_attribute("class") for line in lines] == [i == 2 for i in range(len(lines))]

    # "Copy all text" puts every image's lines on the clipboard
    permissions = ["clipboardReadWrite", "clipboardSanitizedWrite"]
    browser.execute_cdp_cmd("Browser.grantPermissions", {"origin": server.url, "permissions": permissions})
    browser.find_element(By.ID, "copy-all").click()
    wait(browser, "return document.querySelector('#copy-all').textContent.startsWith('Copied')", timeout=5)
    copied = browser.execute_async_script("navigator.clipboard.readText().then(arguments[0])")
    assert [normalized(t) for t in copied.split("\n") if t] == [t for n in names for t in expected_lines(pages[n])]
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []


def test_an_invalid_file_shows_the_servers_message(browser, server, files):
    open_page(browser, server)
    upload(browser, files / "english.png", files / "notes.png")
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed()
    assert "notes.png: not a decodable image" in error.text  # the server's "image 1: ..." names the file
    assert "HTTP 400" in error.text
    assert browser.find_elements(By.CSS_SELECTOR, ".card") == []


def test_downscaled_upload_still_draws_boxes_on_the_text(browser, server, pages, files, tmp_path):
    sample = pages["english"]
    big = Image.fromarray(sample.image[:, :, ::-1])
    big = big.resize((big.width * 3, big.height * 3), Image.Resampling.BICUBIC)
    big.save(tmp_path / "big.png")
    open_page(browser, server)
    browser.find_element(By.ID, "shrink").click()
    upload(browser, tmp_path / "big.png")

    card = cards(browser)["big.png"]
    sent_height = int(big.height * 2000 / big.width + 0.5)
    assert card["meta"] == f"{big.width}×{big.height} px · sent as 2000×{sent_height}"
    assert [normalized(line) for line in card["lines"]] == expected_lines(sample)
    assert len(card["boxes"]) == len(sample.texts)
    for drawn, (x0, y0, x1, y1) in zip(card["boxes"], sample.boxes):
        assert covers(drawn, (3 * x0, 3 * y0, 3 * x1, 3 * y1), slack=24, margin=42), drawn


def test_each_module_can_be_chosen(browser, server, pages, lines, files, tmp_path):
    for line in lines:
        Image.fromarray(line.image[:, :, ::-1]).save(tmp_path / f"{line.name}.png")
    open_page(browser, server)
    module = Select(browser.find_element(By.ID, "module"))
    module.select_by_value("ocr_rec")
    upload(browser, *[tmp_path / f"{line.name}.png" for line in lines])
    shown = cards(browser)
    assert [[normalized(t) for t in shown[f"{line.name}.png"]["lines"]] for line in lines] == [
        [normalized(line.texts[0])] for line in lines
    ]
    assert "/predict/ocr_rec" in browser.find_element(By.ID, "api-curl").text

    module.select_by_value("ocr_cls")  # runs the same images again
    wait_for_answer(browser)
    assert [card["lines"] for card in cards(browser).values()] == [["upright (0°)"]] * len(lines)

    module.select_by_value("ocr_det")
    upload(browser, files / "chinese.png")
    card = cards(browser)["chinese.png"]
    assert len(card["boxes"]) == len(card["lines"]) == len(pages["chinese"].texts)
    assert all(re.fullmatch(r"\d+×\d+ px at \d+, \d+", line) for line in card["lines"])


def test_nothing_leaves_the_servers_origin(browser, server, files):
    origin = server.url
    html = requests.get(origin + "/", timeout=10).text
    assert re.findall(r"https?://", html) == []  # not one absolute URL: assets and examples are relative
    assert all(re.match(r"/[^/]|data:", link) for link in re.findall(r'(?:src|href)="([^"]*)"', html))

    open_page(browser, server)
    upload(browser, files / "english.png")
    requested = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert f"{origin}/predict/ocr_system" in requested
    assert all(url.startswith(origin + "/") for url in requested), requested
    rendered = re.findall(r"(?:blob:)?https?://[^\s\"'<>]+", browser.page_source)
    assert rendered and all(re.match(f"(blob:)?{re.escape(origin)}(/|$)", url) for url in rendered), rendered
    assert f"{origin}/predict/ocr_system" in browser.find_element(By.ID, "api-python").text


def test_phone_width_stacks_the_text_under_the_image(browser, server, files, report):
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
    )
    try:
        open_page(browser, server)
        for chosen in (files / "chinese.png", report):  # an image, then a PDF's pages
            upload(browser, chosen)
            layout = browser.execute_script("""
                const figure = document.querySelector('.figure').getBoundingClientRect();
                const lines = document.querySelector('.lines').getBoundingClientRect();
                return {overflow: document.documentElement.scrollWidth - innerWidth,
                        figureBottom: figure.bottom, linesTop: lines.top, figureRight: figure.right};""")
            assert layout["overflow"] <= 0, chosen
            assert layout["linesTop"] >= layout["figureBottom"] and layout["figureRight"] <= 390, chosen
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_a_pdf_shows_each_page_as_a_sheet_with_its_text(browser, server, pages, report):
    open_page(browser, server)
    browser.get_log("browser")  # the log is the browser's: drop what earlier tests left in it
    upload(browser, report)

    shown = sheets(browser)
    assert [(page["name"], page["tag"], page["meta"]) for page in shown] == [
        ("report.pdf", f"page {n} · {source}", "1700×2200 px at 200 dpi")
        for n, source in [(1, "text-layer"), (2, "text-layer"), (3, "ocr")]
    ]
    assert [page["lines"] for page in shown[:2]] == WRITTEN  # the PDF's own text, exactly
    assert [normalized(line) for line in shown[2]["lines"]] == expected_lines(pages["english"])
    for page in shown:
        assert page["written"] == page["lines"]  # each line is written in its box on the sheet
        assert len(page["boxes"]) == len(page["lines"])
        assert page["shape"][1] == pytest.approx(page["shape"][0], rel=0.01)  # a letter-size sheet
    assert [page["confidences"] for page in shown] == [0, 0, 3]  # the text layer is not recognized: no score
    for drawn in shown[0]["boxes"]:
        assert abs(drawn[0] - 200) <= 3, drawn  # an inch from the left edge, in 200 dpi pixels
    tops = [drawn[1] for drawn in shown[0]["boxes"]]
    assert tops == sorted(tops) and tops[1] - tops[0] == pytest.approx(24 * 200 / 72, abs=3)  # 24 pt apart
    scanned = pages["english"].boxes  # the scan was placed 1 inch (200 px) from the top and the left
    for drawn, (x0, y0, x1, y1) in zip(shown[2]["boxes"], scanned):
        assert covers(drawn, (x0 + 200, y0 + 200, x1 + 200, y1 + 200), slack=8, margin=14), drawn

    summary = browser.find_element(By.ID, "summary").text
    assert re.fullmatch(r"1 PDF · 3 pages · 7 lines · [\d.]+ (ms|s) request · \d+ KB sent", summary), summary
    requested = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert f"{server.url}/ocr?format=pdf" in requested and not any("/predict/" in url for url in requested)
    [row] = documents(browser)  # its row: every page read, and page 3 (read by OCR) made searchable
    assert re.fullmatch(r"3 of 3 pages read · [\d.]+ (ms|s)", row["state"]) and row["progress"] == [3, 3]
    assert (row["name"], row["download"], row["note"]) == ("report.pdf", "report.searchable.pdf", None)

    # "Copy all text": the pages' lines, every page after the first starting with a form feed
    permissions = ["clipboardReadWrite", "clipboardSanitizedWrite"]
    browser.execute_cdp_cmd("Browser.grantPermissions", {"origin": server.url, "permissions": permissions})
    browser.find_element(By.ID, "copy-all").click()
    wait(browser, "return document.querySelector('#copy-all').textContent.startsWith('Copied')", timeout=5)
    copied = browser.execute_async_script("navigator.clipboard.readText().then(arguments[0])").split("\n\f")
    assert copied[:2] == ["\n".join(lines) for lines in WRITTEN]
    assert [normalized(line) for line in copied[2].split("\n")] == expected_lines(pages["english"])
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []


def test_dropped_images_and_pdfs_are_shown_together_and_a_bad_pdf_fails_alone(browser, server, pages, files, report, tmp_path):
    (tmp_path / "broken.pdf").write_bytes(report.read_bytes()[:400])  # truncated
    open_page(browser, server)
    drop(browser, report, files / "english.png", tmp_path / "broken.pdf")

    names = browser.execute_script("return [...document.querySelectorAll('.card .name')].map(n => n.textContent)")
    assert names == ["english.png", "report.pdf", "report.pdf", "report.pdf"]  # in name order; broken.pdf failed
    assert [row["name"] for row in documents(browser)] == ["report.pdf"]  # a PDF refused outright has no row
    assert [normalized(line) for line in cards(browser)["english.png"]["lines"]] == expected_lines(pages["english"])
    assert [page["tag"] for page in sheets(browser)] == ["page 1 · text-layer", "page 2 · text-layer", "page 3 · ocr"]
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed() and "broken.pdf: not a readable PDF (damaged or truncated)" in error.text
    assert "HTTP 400" in error.text
    summary = browser.find_element(By.ID, "summary").text
    # 4 requests: format=pdf refused broken.pdf at once, and the page tried again without it, to read its text
    assert re.fullmatch(r"1 image · 1 PDF · 3 pages · 10 lines · [\d.]+ (ms|s) for 4 requests · \d+ KB sent", summary), summary


# PDFs come as a stream of pages: scan.pdf's row and its sheets are recorded at every change of the page
RECORD_SCAN = """
    window.recorded = [];
    const started = performance.now();
    new MutationObserver(() => {
        const row = [...document.querySelectorAll('.document')].find(row => row.textContent.includes('scan.pdf'));
        if (!row) return;
        const sheets = [...document.querySelectorAll('.card:has(.sheet) .name')].filter(n => n.textContent === 'scan.pdf');
        recorded.push({ms: performance.now() - started, sheets: sheets.length, value: row.querySelector('progress').value,
                       state: row.querySelector('.document-state').textContent});
    }).observe(document.querySelector('main'), {childList: true, subtree: true, characterData: true});"""
# The README's moment: quarterly.pdf read and offered searchable, scan.pdf part read (or read: a slow machine)
SHOT_MOMENT = """
    const [quarterly, scan] = document.querySelectorAll('.document');
    return !!scan && !quarterly.querySelector('.download').hidden
           && (scan.querySelector('progress').value >= 2 || !scan.querySelector('.download').hidden)"""


def test_a_scanned_pdf_is_shown_page_by_page_and_downloads_searchable(browser, server, pages, scans, tmp_path):
    quarterly, scan = scans
    open_page(browser, server)
    browser.get_log("browser")
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.execute_script(RECORD_SCAN)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 820, "deviceScaleFactor": 1, "mobile": False}
    )
    try:
        browser.find_element(By.ID, "files").send_keys(f"{quarterly}\n{scan}")
        # the README's screenshot, while scan.pdf is read: quarterly.pdf's second line hovered; a small PNG
        wait(browser, SHOT_MOMENT, timeout=60)
        ActionChains(browser).move_to_element(browser.find_elements(By.CSS_SELECTOR, ".card .line")[1]).perform()
        shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shot.quantize(256, method=Image.Quantize.MEDIANCUT).save(SCREENSHOT, optimize=True)
    assert shot.size == (1280, 820) and SCREENSHOT.stat().st_size <= 200_000
    wait_for_answer(browser)

    # each page's sheet was shown as its page came, the row counting the pages read, before the last was read
    recorded = browser.execute_script("return recorded")
    reading = [moment for moment in recorded if re.fullmatch(r"[1-5] of 6 pages read", moment["state"])]
    assert reading, recorded
    assert all(moment["sheets"] == moment["value"] == int(moment["state"][0]) for moment in reading), reading
    first_sheet = next(moment["ms"] for moment in recorded if moment["sheets"])
    assert first_sheet < next(moment["ms"] for moment in recorded if moment["value"] == 6), recorded
    rows = documents(browser)
    assert [(row["name"], row["progress"], row["download"], row["note"]) for row in rows] == [
        ("quarterly.pdf", [1, 1], "quarterly.searchable.pdf", None),
        ("scan.pdf", [6, 6], "scan.searchable.pdf", None),
    ]
    assert re.fullmatch(r"1 of 1 page read · [\d.]+ (ms|s)", rows[0]["state"])
    assert re.fullmatch(r"6 of 6 pages read · [\d.]+ (ms|s)", rows[1]["state"])
    shown = [page for page in sheets(browser) if page["name"] == "scan.pdf"]
    assert [page["tag"] for page in shown] == [f"page {n} · ocr" for n in range(1, 7)]
    for page, both in zip(shown, SCAN):
        assert [normalized(line) for line in page["lines"]] == [line for name in both for line in expected_lines(pages[name])]

    # the searchable PDF, downloaded as a user does from the keyboard: the scan with its text, page by page
    link = browser.find_elements(By.CSS_SELECTOR, ".download")[1]
    assert link.get_attribute("href").startswith(f"blob:{server.url}/")
    link.send_keys(Keys.ENTER)
    downloaded = tmp_path / "scan.searchable.pdf"
    WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda _: downloaded.exists())
    data = downloaded.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) < 1.2 * scan.stat().st_size
    document = pdfium.PdfDocument(data)
    assert len(document) == 6
    for number, page in enumerate(shown):
        found = normalized(document[number].get_textpage().get_text_range())
        assert all(normalized(line) in found for line in page["lines"]), (number, found)
    document.close()
    assert csp_violations(browser) == []  # neither the stream nor the blob: download strays from the CSP


def test_a_pdf_that_breaks_off_midway_keeps_the_pages_read(browser, server, tmp_path):
    # page 2's dictionary replaced by a string: the PDF can be rewritten (format=pdf takes it), and the stream
    # breaks off when pdfium cannot load that page
    data = build(text(*SENTENCES), text(*SENTENCES))
    second = re.search(rb"/Kids \[ \d+ 0 R (\d+) 0 R \]", data)[1]
    start = data.index(b"\n%s 0 obj\n" % second) + len(b"\n%s 0 obj\n" % second)
    end = data.index(b"endobj", start)
    (tmp_path / "damaged.pdf").write_bytes(data[:start] + b"(not a page)".ljust(end - start) + data[end:])
    open_page(browser, server)
    upload(browser, tmp_path / "damaged.pdf")

    [row] = documents(browser)  # the stream's error event, on the PDF; the page read before it stays
    assert (row["state"], row["download"]) == ("Stopped after 1 of 2 pages read", None)
    assert row["note"] == "page 2: cannot be read; the PDF is damaged"
    assert browser.find_element(By.CSS_SELECTOR, ".document-note").get_attribute("role") == "alert"
    assert [page["lines"] for page in sheets(browser)] == [SENTENCES]
    assert browser.find_element(By.ID, "error").is_displayed() is False
    summary = browser.find_element(By.ID, "summary").text
    assert re.fullmatch(r"1 PDF · 1 page · 3 lines · [\d.]+ (ms|s) request · \d+ KB sent", summary), summary


def test_a_pdf_that_cannot_be_made_searchable_is_still_read(browser, server, pages, scans, tmp_path):
    with pikepdf.open(scans[0]) as source:  # an owner password only: any reader opens it, a rewrite would break it
        source.save(tmp_path / "locked.pdf", encryption=pikepdf.Encryption(owner="owner", user=""))
    open_page(browser, server)
    upload(browser, tmp_path / "locked.pdf")

    [row] = documents(browser)  # format=pdf refused it at once; read again without, its text is shown
    assert (row["progress"], row["download"]) == ([1, 1], None)
    assert row["note"].startswith("No searchable PDF: the PDF is encrypted"), row["note"]
    assert [normalized(line) for line in sheets(browser)[0]["lines"]] == expected_lines(pages["english"])
    assert browser.find_element(By.ID, "error").is_displayed() is False
    assert "for 2 requests" in browser.find_element(By.ID, "summary").text


# ---- Content-Security-Policy, API keys, CORS ---------------------------------------------------

API_KEY = "web-test-key-5b1e9c"
KEY_MESSAGE = "send the key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
# Another site's page calling the API with fetch() (API and IMAGE filled in, the key from ?key=), which
# writes what it got into #out: the envelope with the HTTP status and the exposed X-Request-ID, or the error.
CALLER_PAGE = """<!doctype html>
<meta charset="utf-8"><title>another site</title>
<pre id="out">waiting</pre>
<script>
const key = new URLSearchParams(location.search).get('key');
fetch('API/predict/ocr_rec', {
  method: 'POST',
  headers: {'Content-Type': 'application/json', 'Authorization': `Bearer ${key}`},
  body: JSON.stringify({images: ['IMAGE']}),
})
  .then(async response => ({http: response.status, requestId: response.headers.get('X-Request-ID'), ...await response.json()}))
  .then(answer => { document.querySelector('#out').textContent = JSON.stringify(answer); },
        error => { document.querySelector('#out').textContent = JSON.stringify({error: `${error.name}: ${error.message}`}); });
</script>
"""


class CallerSite(http.server.BaseHTTPRequestHandler):
    page = b""  # set by the test, once the API's address is known

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def callers():
    """Two other origins, loopback ports serving ``CallerSite``: the keyed server allows the first only."""
    sites = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), CallerSite) for _ in range(2)]
    for site in sites:
        threading.Thread(target=site.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{site.server_address[1]}" for site in sites]
    for site in sites:
        site.shutdown()
        site.server_close()


@pytest.fixture(scope="module")
def keyed_server(callers, tmp_path_factory):
    """One production server with API keys and a CORS allowlist (the first caller's origin)."""
    with Server.production(
        tmp_path_factory.mktemp("keyed"),
        OCR_WORKERS="1",
        OCR_API_KEYS=f"another-key,{API_KEY}",
        OCR_CORS_ORIGINS=callers[0],
    ) as instance:
        yield instance


def csp_violations(browser) -> list[str]:
    """What Chromium logged about the page's CSP since the last look (reading the log empties it): "Refused
    to ..." in older versions, "... violates the following Content Security Policy directive" in newer."""
    logged = [entry["message"] for entry in browser.get_log("browser")]
    return [message for message in logged if re.search(r"Refused to|Content Security Policy", message)]


def test_the_page_keeps_to_its_content_security_policy(browser, server, files, report):
    headers = requests.get(server.url + "/", timeout=10).headers
    policy = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    for directive in ("script-src", "style-src"):  # the one inline block of each, by hash: nothing else runs
        assert re.fullmatch(r"'sha256-[A-Za-z0-9+/]{43}='", policy[directive]), policy[directive]
    assert (headers["X-Content-Type-Options"], headers["X-Frame-Options"]) == ("nosniff", "DENY")

    browser.get_log("browser")  # what earlier tests left
    open_page(browser, server)
    upload(browser, files / "english.png", report)  # an image card, and PDF sheets sized through the CSSOM
    assert len(cards(browser)) == 1 and len(sheets(browser)) == 3
    ActionChains(browser).move_to_element(browser.find_elements(By.CSS_SELECTOR, ".line")[1]).perform()
    assert browser.find_elements(By.CSS_SELECTOR, ".box.active")
    upload(browser, files / "notes.png")  # the error box
    assert "not a decodable image" in browser.find_element(By.ID, "error").text
    Select(browser.find_element(By.ID, "module")).select_by_value("ocr_det")
    upload(browser, files / "chinese.png")
    # "Copy" without the Clipboard API (plain http off localhost): the hidden-textarea fallback
    browser.execute_script("""Object.defineProperty(navigator, 'clipboard',
        {value: {writeText: () => Promise.reject(new Error('no clipboard'))}});""")
    browser.find_element(By.CSS_SELECTOR, ".card .copy").click()
    wait(browser, "return document.querySelector('.card .copy').textContent.startsWith('Copied')", timeout=5)
    browser.find_element(By.ID, "api-key").send_keys("a key")  # the examples change with a key
    assert "Authorization: Bearer $OCR_API_KEY" in browser.find_element(By.ID, "api-curl").text
    assert csp_violations(browser) == []

    # the check above would see a violation: an inline style attribute is refused, and logged
    browser.execute_script("document.body.setAttribute('style', 'outline: 1px solid red')")
    assert wait(browser, "return getComputedStyle(document.body).outlineStyle === 'none'", timeout=5)
    assert WebDriverWait(browser, 5, poll_frequency=0.1).until(lambda _: csp_violations(browser))


def test_a_keyed_server_asks_the_page_for_its_key(browser, keyed_server, pages, files, report):
    browser.get_log("browser")
    open_page(browser, keyed_server)  # the page and /health are open: it loads and shows the server ready
    field = browser.find_element(By.ID, "api-key")
    assert (field.get_attribute("type"), field.get_attribute("value")) == ("password", "")

    upload(browser, files / "english.png")
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed() and f"no API key: {KEY_MESSAGE}" in error.text
    assert "HTTP 401 · status 101 · enter the API key above" in error.text
    assert browser.find_elements(By.CSS_SELECTOR, ".card") == []
    assert browser.switch_to.active_element == field  # focused, to type the key in

    field.send_keys("not-the-key", Keys.ENTER)  # Enter runs the same files again with the key
    wait(browser, "return document.querySelector('#error').textContent.includes('a wrong API key')")
    assert "HTTP 401 · status 101 · check the API key above" in error.text
    assert browser.switch_to.active_element == field

    field.clear()
    field.send_keys(API_KEY, Keys.ENTER)
    wait(browser, "return document.querySelectorAll('.card').length === 1")
    wait_for_answer(browser)
    assert error.is_displayed() is False
    shown = cards(browser)["english.png"]
    assert [normalized(line) for line in shown["lines"]] == expected_lines(pages["english"])
    upload(browser, report)  # /ocr takes the key too
    assert [page["lines"] for page in sheets(browser)[:2]] == WRITTEN

    # the key stays in this tab only (a reload keeps it), and is never written into the page
    assert browser.execute_script("return sessionStorage.getItem('ocrhub.apiKey')") == API_KEY
    assert API_KEY not in browser.execute_script("return JSON.stringify({...localStorage})")
    browser.refresh()
    wait(browser, "return document.querySelector('#health').textContent.startsWith('ready')")
    assert browser.find_element(By.ID, "api-key").get_attribute("value") == API_KEY
    assert API_KEY not in browser.page_source
    assert 'Authorization: Bearer $OCR_API_KEY"' in browser.find_element(By.ID, "api-curl").text
    assert 'os.environ["OCR_API_KEY"]' in browser.find_element(By.ID, "api-python").text
    assert csp_violations(browser) == []


def test_other_origins_call_the_api_only_when_allowed(browser, keyed_server, callers, lines):
    line = lines[0]
    image = base64.b64encode(png_bytes(line.image)).decode()
    CallerSite.page = CALLER_PAGE.replace("API", keyed_server.url).replace("IMAGE", image).encode()
    allowed, denied = callers

    def call(origin: str, key: str) -> dict:
        browser.get(f"{origin}/?key={key}")
        wait(browser, "return document.querySelector('#out').textContent !== 'waiting'", timeout=60)
        return json.loads(browser.find_element(By.ID, "out").text)

    answer = call(allowed, API_KEY)
    assert (answer["http"], answer["status"], answer["msg"]) == (200, "000", "")
    assert normalized(answer["results"][0][0]["text"]) == normalized(line.texts[0])
    assert re.fullmatch(r"[0-9a-f]{32}", answer["requestId"])  # an exposed header, readable from the other site

    answer = call(allowed, "not-the-key")  # the 401 carries the CORS headers too: the caller reads why
    assert (answer["http"], answer["status"], answer["msg"]) == (401, "101", f"a wrong API key: {KEY_MESSAGE}")

    posts = keyed_server.log().count('"POST /predict/ocr_rec"')
    assert call(denied, API_KEY) == {"error": "TypeError: Failed to fetch"}  # the preflight is refused
    assert keyed_server.log().count('"POST /predict/ocr_rec"') == posts  # so the request itself was never sent
    browser.get_log("browser")  # Chromium's CORS errors: not for the tests after this one


def png_bytes(image) -> bytes:
    """PNG bytes of a BGR array."""
    buffer = io.BytesIO()
    Image.fromarray(image[:, :, ::-1]).save(buffer, "PNG")
    return buffer.getvalue()

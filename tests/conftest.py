"""Shared fixtures: rendered images with known text, the default config, real servers on real ports."""

import base64
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from harness import testimages
from harness.servers import BIN, MODULES, Server
from ocrhub.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def normalized(text: str) -> str:
    """Ground truth ignores spaces: PP-OCR often drops the space between words, never a character."""
    return "".join(text.split())


def covers(found, ink, slack: int = 6, margin: int = 12) -> bool:
    """A detected box (x0, y0, x1, y1) covers a line's ink: no side cuts more than ``slack`` pixels
    into it (DB boxes may clip a descender) nor lies more than ``margin`` pixels outside it."""
    inward = (found[0] - ink[0], found[1] - ink[1], ink[2] - found[2], ink[3] - found[3])
    return all(-margin <= side <= slack for side in inward)


def rect(region) -> tuple:
    """Axis-aligned bounds of a 4-point text_region."""
    points = np.asarray(region)
    return (*points.min(axis=0).tolist(), *points.max(axis=0).tolist())


def b64(image: np.ndarray, ext: str = ".png") -> str:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return base64.b64encode(data.tobytes()).decode()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One production server for the session in the default layout of a 2-core machine, spelled out so
    that it is the same on any machine (2 shared workers × 1 thread and the solo worker, see
    ``layout.default_layout``), with small limits and short client deadlines so the tests can reach them."""
    instance = Server.production(
        tmp_path_factory.mktemp("server"),
        OCR_WORKERS="2",
        OCR_CPU_THREADS="1",
        OCR_SOLO_WORKER="true",
        OCR_MAX_BODY_BYTES=str(4 * 1024 * 1024),
        OCR_MAX_IMAGES="8",
        OCR_MAX_IMAGE_PIXELS="20000000",
        OCR_MAX_REQUEST_PIXELS="30000000",
        OCR_HEADER_TIMEOUT="3",
        OCR_BODY_TIMEOUT="6",
    )
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def font() -> str:
    return testimages.find_cjk_font()


@pytest.fixture(scope="session")
def pages(font):
    return {sample.name: sample for sample in testimages.pages(font)}


@pytest.fixture(scope="session")
def lines(font):
    return testimages.lines(font)


@pytest.fixture(scope="session")
def config():
    return load_config({}, environ={})


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """OCR_DATA_DIR of in-process predictors (OpenVINO's compiled-model cache)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def hub_home(tmp_path_factory):
    """A private PaddleHub home with the four modules installed by `hub install`, as a user does."""
    home = tmp_path_factory.mktemp("hub_home")
    env = {**os.environ, "HUB_HOME": str(home)}
    subprocess.run(
        [BIN / "hub", "install", *[ROOT / "modules" / m for m in MODULES]],
        env=env,
        check=True,
        capture_output=True,
        cwd="/",
    )
    return home


@pytest.fixture(scope="session")
def hub_server(hub_home, tmp_path_factory):
    """`hub serving start -m ocr_system ocr_det ocr_cls ocr_rec -p <free port>`, started from /."""
    with Server.hub_serving(hub_home, tmp_path_factory.mktemp("logs")) as instance:
        yield instance.url


LETTER = (612, 792)  # points: 1700×2200 pixels at the default 200 dpi
WRITTEN = [
    ["Invoice 2026-0042 for Example GmbH", "Total amount due: 1,234.56 EUR"],
    ["Delivery to Müller & Söhne, Köln", "Thank you for your order"],
]  # the text layer of pages 1-2 of report_pdf


def written(lines: list[str]):
    """A page's drawing (reportlab) of ``lines`` as a text layer: Helvetica 14 pt from the top left."""

    def draw(canvas) -> None:
        canvas.setFont("Helvetica", 14)
        for index, line in enumerate(lines):
            canvas.drawString(72, 700 - 24 * index, line)

    return draw


@pytest.fixture(scope="session")
def report_pdf(pages, tmp_path_factory) -> Path:
    """A letter-size PDF: two pages with a text layer (WRITTEN), then a scan of the english page (none)."""
    from PIL import Image
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen.canvas import Canvas

    path = tmp_path_factory.mktemp("documents") / "report.pdf"
    canvas = Canvas(str(path), pagesize=LETTER)
    for lines in WRITTEN:
        written(lines)(canvas)
        canvas.showPage()
    scan = Image.fromarray(pages["english"].image[:, :, ::-1])
    width, height = (side * 72 / 200 for side in scan.size)  # one image pixel per page pixel at 200 dpi
    canvas.drawImage(ImageReader(scan), 72, LETTER[1] - 72 - height, width, height)
    canvas.showPage()
    canvas.save()
    return path

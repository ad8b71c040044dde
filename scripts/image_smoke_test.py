"""The Docker build's smoke test, on the trimmed venv of either image (Dockerfile):

    python scripts/image_smoke_test.py --also-import paddle     # the full image
    python scripts/image_smoke_test.py --no-paddle              # the lean image

The production app (front + one real worker process, all four modules) answers a real request for a
rendered line through Starlette's test client, and ``POST /ocr?format=pdf`` makes it a searchable PDF
(pikepdf, img2pdf: the lean image has them without lxml); ``ocr_system`` reads it, and the PDF is
written, in this process too (which imports what a worker imports). Then the .py files imported here are listed for compileall:
/tmp/venv-imports.txt (the venv's) and /tmp/base-imports.txt (the standard library's): nothing under
/opt can be written at run time, so without them every worker would compile them at each start.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import sys
import time

import cv2
import numpy as np
import pypdfium2 as pdfium
from starlette.testclient import TestClient

from ocrhub import documents, textlayer
from ocrhub.config import load_config, load_server_config
from ocrhub.service import OcrService
from ocrhub.serving.http import Connections
from ocrhub.serving.launcher import build_app

EXPECTED = ["Hello World"]
PADDLE = {"paddle", "paddleocr", "paddlehub", "paddlenlp"}


def rendered_line() -> str:
    image = np.full((90, 436, 3), 255, np.uint8)
    cv2.putText(image, EXPECTED[0], (16, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2, cv2.LINE_AA)
    return base64.b64encode(cv2.imencode(".png", image)[1]).decode()


def served(encoded: str) -> tuple[list[str], bytes]:
    """What the app reads in the line, and its searchable PDF of it."""
    with TestClient(build_app(load_server_config(), load_config(), Connections())) as client:
        deadline = time.monotonic() + 600
        while client.get("/health").status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        health = client.get("/health")
        assert health.status_code == 200, health.json()
        answer = client.post("/predict/ocr_system", json={"images": [encoded]}).json()
        searchable = client.post("/ocr?format=pdf", content=base64.b64decode(encoded), headers={"Content-Type": "image/png"})
        assert searchable.headers["content-type"] == "application/pdf", searchable.text
    return [line["text"] for line in answer["results"][0]], searchable.content


def pdf_text(data: bytes) -> str:
    return pdfium.PdfDocument(data)[0].get_textpage().get_text_range().strip()


def write_imports() -> None:
    files = sorted({f for f in (getattr(m, "__file__", None) for m in list(sys.modules.values())) if f and f.endswith(".py")})
    with open("/tmp/venv-imports.txt", "w") as out:
        out.writelines(f + "\n" for f in files if f.startswith("/opt/venv/"))
    with open("/tmp/base-imports.txt", "w") as out:
        out.writelines(f + "\n" for f in files if not f.startswith(("/opt/venv/", "/app/")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--also-import", action="append", default=[], help="a module workers may import, to compile it")
    parser.add_argument("--no-paddle", action="store_true", help="fail if a Paddle package was imported")
    args = parser.parse_args()
    encoded = rendered_line()
    found, searchable = served(encoded)
    print("smoke test: ocr_system read", found, "and its searchable PDF has", repr(pdf_text(searchable)))
    assert found == EXPECTED and pdf_text(searchable) == EXPECTED[0], (found, pdf_text(searchable))
    service, png = OcrService("ocr_system", load_config()), base64.b64decode(encoded)
    pages = list(service.read_document(png, documents.Options()))
    local = pdf_text(textlayer.searchable_pdf(png, pages))
    print("smoke test: in-process ocr_system and its PDF read", repr(local))
    assert local == EXPECTED[0], local
    for name in args.also_import:
        importlib.import_module(name)
    if args.no_paddle:
        imported = sorted({name.split(".")[0] for name in sys.modules} & PADDLE)
        print("smoke test: paddle modules imported:", imported or "none")
        assert not imported, imported
    write_imports()
    return 0


if __name__ == "__main__":
    sys.exit(main())

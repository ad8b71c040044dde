"""A task's work (see ``ocrhub.tasks``): build its stages at start-up, answer in PaddleOCR's shapes.

Used by the PaddleHub modules (``hub serving start``) and by the production server's inference
workers alike. Images arrive checked but not decoded (``ocrhub.images``): a page task decodes one
image at a time, so a request holds one decoded page in memory however many it carries.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np

from ocrhub import documents, pipeline
from ocrhub import images as image_input
from ocrhub.config import OcrConfig
from ocrhub.errors import InputError, TimeBudgetError
from ocrhub.tasks import TASKS


def build_stages(config: OcrConfig, module: str) -> SimpleNamespace:
    """The stages ``module`` uses, shared with every other task of the process that uses them."""
    names = TASKS[module].stages
    pipeline.preload(config, pipeline.used_stages(config, names))
    return SimpleNamespace(
        system=pipeline.system(config) if module == "ocr_system" else None,
        detector=pipeline.detector(config) if "det" in names else None,
        classifier=pipeline.classifier(config) if "cls" in names and module == "ocr_cls" else None,
        recognizer=pipeline.recognizer(config) if "rec" in names else None,
    )


class OcrService:
    """One task over the shared pipeline."""

    def __init__(self, module: str, config: OcrConfig):
        self.task, self.config = TASKS[module], config
        self.limits = image_input.Limits(config.max_images, config.max_image_pixels, config.max_request_pixels)
        self._stages = build_stages(config, module)
        pipeline.warm_up(config, self.task.stages)

    def predict(self, images: list[np.ndarray], deadline: float | None = None) -> list:
        """BGR arrays in, PaddleOCR-shaped results out (``hub.Module(...).predict``)."""
        return self._predict(images, lambda image: image, deadline)

    def serve(self, images) -> list:
        """The ``images`` field of a request in, results out; bad input raises ``InputError``."""
        return self.run(image_input.read_request(images, self.limits))

    def run(self, images: list[image_input.EncodedImage]) -> list:
        """Checked images in, results out, within the time budget (``request_timeout``)."""
        budget = self.config.request_timeout
        if not self.task.per_image:
            self._check_lines(images)
        return self._predict(images, image_input.to_bgr, time.monotonic() + budget if budget else None)

    def _predict(self, images: list, to_bgr, deadline: float | None) -> list:
        if not self.task.per_image:  # lines are small: one batch, as PaddleOCR's modules do
            return self.task.run(self._stages, [to_bgr(image) for image in images])
        results = []
        for image in images:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeBudgetError(
                    f"request exceeded its time budget of {self.config.request_timeout:g} s after "
                    f"{len(results)} of {len(images)} images (OCR_REQUEST_TIMEOUT); send fewer or smaller images"
                )
            results.append(self.task.run(self._stages, to_bgr(image)))
        return results

    def _check_lines(self, images: list[image_input.EncodedImage]) -> None:
        """A line is resized to a fixed height, so an extreme width/height ratio costs gigabytes."""
        limit = self.config.max_line_ratio
        for image in images:
            if limit and image.width > limit * image.height:
                raise InputError(
                    f"image {image.index}: not a text line: {image.width}×{image.height} is wider "
                    f"than {limit:g}× its height (OCR_MAX_LINE_RATIO); send pages to ocr_system"
                )

    def read_document(self, data: bytes, options: documents.Options) -> documents.Pages:
        """A PDF or an image file (``ocr_system`` only): its pages with their lines, in order, read one at
        a time as they are iterated. The document's errors, its page selection and limits raise here.

        Pages rendered for OCR count against ``max_request_pixels`` as images do; text-layer pages cost
        no pixels. One page is held decoded at a time."""
        budget = self.config.request_timeout
        deadline = time.monotonic() + budget if budget else None
        kind = documents.sniff(data)
        if kind == "image":
            return documents.Pages(1, self._image_page(image_input.read_file(data, 0, self.config.max_image_pixels)))
        if kind != "pdf":
            raise InputError("not a PDF nor an image file: send a PDF, PNG, JPEG, TIFF, BMP or WebP")
        limits = documents.Limits(self.config.max_pages, self.config.max_image_pixels)
        return documents.pdf_pages(data, options, limits, self._page_ocr(), deadline)

    def _image_page(self, image: image_input.EncodedImage) -> Iterator[documents.Page]:
        pixels = image_input.to_bgr(image)  # its EXIF orientation applied: the size is the decoded one
        height, width = pixels.shape[:2]
        lines = self.task.run(self._stages, pixels)
        yield {"page": 1, "source": "ocr", "dpi": None, "width": width, "height": height, "lines": lines}

    def _page_ocr(self):
        """ocr_system on rendered pages, within the request's pixel budget."""
        spent, limit = 0, self.config.max_request_pixels

        def ocr(page: np.ndarray) -> list:
            nonlocal spent
            spent += page.shape[0] * page.shape[1]
            if limit and spent > limit:
                raise InputError(
                    f"too many pixels to OCR in one request: over {limit} (OCR_MAX_REQUEST_PIXELS) "
                    f"in rendered pages; send fewer pages (pages=...) or a lower dpi"
                )
            return self.task.run(self._stages, page)

        return ocr

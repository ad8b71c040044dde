"""What a PaddleHub module does: build its stage at start-up, answer requests in PaddleOCR's shapes.

Wire shapes, as PaddleOCR's hubserving modules answer them:

- ``ocr_system``: one list per image of ``{"text", "confidence", "text_region"}``;
- ``ocr_det``: one list per image of ``{"text_region"}``;
- ``ocr_rec``: ``[[{"text", "confidence"}, ...]]``, one object per image (each image is one line);
- ``ocr_cls``: ``[[{"angle": "0"|"180", "confidence"}, ...]]``, one object per image.

``text_region`` is four ``[x, y]`` integer points (truncated, as PaddleOCR does), clockwise from
the top-left; boxes are ordered top-to-bottom, left-to-right.
"""

from __future__ import annotations

import time

import numpy as np

from ocrhub import images as image_input
from ocrhub import pipeline
from ocrhub.config import OcrConfig
from ocrhub.errors import InputError, TimeBudgetError


def _region(box: np.ndarray) -> list[list[int]]:
    return np.asarray(box).astype(np.int32).tolist()


def _system(config: OcrConfig):
    system = pipeline.system(config)
    return lambda image: [{"text": text, "confidence": score, "text_region": _region(box)}
                          for box, text, score in system(image)]


def _det(config: OcrConfig):
    detector = pipeline.detector(config)
    return lambda image: [{"text_region": _region(box)} for box in detector(image)]


def _rec(config: OcrConfig):
    recognizer = pipeline.recognizer(config)
    return lambda batch: [[{"text": text, "confidence": score} for text, score in recognizer(batch)]]


def _cls(config: OcrConfig):
    classifier = pipeline.classifier(config)
    return lambda batch: [[{"angle": angle, "confidence": score} for angle, score in classifier(batch)[1]]]


PER_IMAGE = {"system": _system, "det": _det}  # one result list per image
PER_BATCH = {"rec": _rec, "cls": _cls}  # each image is one line; the lines go through as one batch


class OcrService:
    """One task (``system``, ``det``, ``rec`` or ``cls``) over the shared pipeline."""

    def __init__(self, task: str, config: OcrConfig):
        self.task, self.config = task, config
        self._per_image = task in PER_IMAGE
        self._run = (PER_IMAGE if self._per_image else PER_BATCH)[task](config)
        pipeline.warm_up(config, task)

    def predict(self, batch: list[np.ndarray], deadline: float | None = None) -> list:
        """BGR arrays in, PaddleOCR-shaped results out; stops past ``deadline`` (time.monotonic)."""
        if not self._per_image:
            return self._run(batch)
        results = []
        for image in batch:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeBudgetError(
                    f"request exceeded its time budget of {self.config.request_timeout:g} s after "
                    f"{len(results)} of {len(batch)} images; send fewer or smaller images")
            results.append(self._run(image))
        return results

    def serve(self, images) -> list:
        """The ``images`` field of a request in, results out; bad input raises ``InputError``."""
        config = self.config
        deadline = time.monotonic() + config.request_timeout if config.request_timeout else None
        batch = image_input.decode_all(images, config.max_images, config.max_image_pixels)
        if not self._per_image:
            self._check_lines(batch)
        return self.predict(batch, deadline)

    def _check_lines(self, batch: list[np.ndarray]) -> None:
        """A line is resized to a fixed height, so an extreme width/height ratio costs gigabytes."""
        limit = self.config.max_line_ratio
        for index, image in enumerate(batch):
            height, width = image.shape[:2]
            if limit and width > limit * height:
                raise InputError(f"image {index}: not a text line: {width}×{height} is wider than "
                                 f"{limit:g}× its height (OCR_MAX_LINE_RATIO); send pages to ocr_system")

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

import contextlib

import numpy as np

from ocrhub import images as image_input
from ocrhub import pipeline
from ocrhub.config import OcrConfig
from ocrhub.errors import ConfigError


def _region(box: np.ndarray) -> list[list[int]]:
    return np.asarray(box).astype(np.int32).tolist()


def _system(config: OcrConfig):
    system = pipeline.system(config)
    return lambda batch: [
        [{"text": text, "confidence": score, "text_region": _region(box)} for box, text, score in system(image)]
        for image in batch]


def _det(config: OcrConfig):
    detector = pipeline.detector(config)
    return lambda batch: [[{"text_region": _region(box)} for box in detector(image)] for image in batch]


def _rec(config: OcrConfig):
    recognizer = pipeline.recognizer(config)
    return lambda batch: [[{"text": text, "confidence": score} for text, score in recognizer(batch)]]


def _cls(config: OcrConfig):
    classifier = pipeline.classifier(config)
    return lambda batch: [[{"angle": angle, "confidence": score} for angle, score in classifier(batch)[1]]]


TASKS = {"system": _system, "det": _det, "rec": _rec, "cls": _cls}


class OcrService:
    """One task (``system``, ``det``, ``rec`` or ``cls``) over the shared pipeline."""

    def __init__(self, task: str, config: OcrConfig):
        self.task, self.config = task, config
        self._run = TASKS[task](config)
        self.warm_up()

    def predict(self, batch: list[np.ndarray]) -> list:
        """BGR arrays in, PaddleOCR-shaped results out."""
        return self._run(batch)

    def serve(self, images) -> list:
        """The ``images`` field of a request in, results out; bad input raises ``InputError``."""
        config = self.config
        return self.predict(image_input.decode_all(images, config.max_images, config.max_image_pixels))

    def warm_up(self) -> None:
        """One prediction on a blank page, so the first request does not pay for initialisation."""
        page = np.full((64, 256, 3), 255, np.uint8)
        self.predict([page])


@contextlib.contextmanager
def exit_on_config_error(module_name: str):
    """Start-up with a configuration or model problem stops with one clear line, not a traceback."""
    try:
        yield
    except ConfigError as err:
        raise SystemExit(f"{module_name}: {err}") from None

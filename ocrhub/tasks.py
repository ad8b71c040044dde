"""The one table of tasks: each PaddleHub module / URL name, the stages it uses and its answer's shape.

Wire shapes, as PaddleOCR's hubserving modules answer them:

- ``ocr_system``: one list per image of ``{"text", "confidence", "text_region"}``;
- ``ocr_det``: one list per image of ``{"text_region"}``;
- ``ocr_rec``: ``[[{"text", "confidence"}, ...]]``, one object per image (each image is one line);
- ``ocr_cls``: ``[[{"angle": "0"|"180", "confidence"}, ...]]``, one object per image.

``text_region`` is four ``[x, y]`` integer points (truncated, as PaddleOCR does), clockwise from
the top-left; boxes are ordered top-to-bottom, left-to-right.

``run`` shapes what the stages give; it takes an object with the stages as attributes (``system``,
``detector``, ``classifier``, ``recognizer``: see ``ocrhub.service``), so this table imports no engine
and the HTTP front can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _region(box) -> list[list[int]]:
    return np.asarray(box).astype(np.int32).tolist()


def _system(stages, image):
    return [{"text": text, "confidence": score, "text_region": _region(box)} for box, text, score in stages.system(image)]


def _det(stages, image):
    return [{"text_region": _region(box)} for box in stages.detector(image)]


def _rec(stages, lines):
    return [[{"text": text, "confidence": score} for text, score in stages.recognizer(lines)]]


def _cls(stages, lines):
    return [[{"angle": angle, "confidence": score} for angle, score in stages.classifier(lines)[1]]]


@dataclass(frozen=True)
class Task:
    module: str
    stages: tuple[str, ...]  # model folders it needs, in pipeline order
    per_image: bool  # True: an image is a page, one result list each; False: each image is one text line
    run: Callable  # (stages, page image | list of line images) -> results
    summary: str


TASKS = {
    task.module: task
    for task in (
        Task(
            "ocr_system",
            ("det", "cls", "rec"),
            True,
            _system,
            "det → cls → rec: text, confidence and box of every line",
        ),
        Task("ocr_det", ("det",), True, _det, "text detection (DB): the box of every line"),
        Task("ocr_cls", ("cls",), False, _cls, "direction (0 or 180 degrees) of each line image"),
        Task("ocr_rec", ("rec",), False, _rec, "text recognition (CTC) of each line image"),
    )
}

"""Direction classification: is each line upright (0) or upside down (180)? Lines the model is sure of
(score over ``cls_thresh``) are turned upright, as paddleocr's ``TextClassifier`` does; or, with
``cls_mode`` "page", the lines of one image are turned all together or not at all, by their vote.

Why "page": the mobile v2.0 classifier calls some upright lines of clean typeset pages upside down,
some with scores over 0.99, and those lines come out as junk: on rendered PDF pages, per-line turning
cost 4-8 points of character error rate that no threshold wins back without losing upside-down pages
(BENCHMARKS.md, "direction classification"). A page is fed one way round; its lines vote."""

from __future__ import annotations

import cv2
import numpy as np

from ocrhub.config import OcrConfig
from ocrhub.predictor import Predictor
from ocrhub.stages import lines as line_input

LABELS = ("0", "180")


class Classifier:
    def __init__(self, predictor: Predictor, config: OcrConfig):
        self.predictor = predictor
        self.shape = line_input.image_shape(config.cls_image_shape)
        self.batch_size, self.thresh = config.cls_batch_num, config.cls_thresh
        self.by_page = config.cls_mode == "page"

    def __call__(self, lines: list[np.ndarray]) -> tuple[list[np.ndarray], list[tuple[str, float]]]:
        """The lines, upright where the model is sure they were not, and (angle, score) of each."""
        angles = self.angles(lines)
        sure = [angle == "180" and score > self.thresh for angle, score in angles]
        return [cv2.rotate(line, cv2.ROTATE_180) if turn else line for line, turn in zip(lines, sure)], angles

    def angles(self, lines: list[np.ndarray]) -> list[tuple[str, float]]:
        """(angle, score) of each line: the likelier of 0 and 180, and its probability."""
        angles = [("", 0.0)] * len(lines)
        for batch in line_input.batches(lines, self.batch_size):
            inputs = np.stack([line_input.resize_normalize(lines[i], *self.shape) for i in batch])
            for index, row in zip(batch, self.predictor.run(inputs)[0]):
                best = int(row.argmax())
                angles[index] = (LABELS[best], float(row[best]))
        return angles

    def upright(self, lines: list[np.ndarray]) -> list[np.ndarray]:
        """The lines of one image upright: each by its own call, or all by their vote (``cls_mode``)."""
        if not self.by_page:
            return self(lines)[0]
        turned = page_upside_down(lines, self.angles(lines))
        return [cv2.rotate(line, cv2.ROTATE_180) for line in lines] if turned else list(lines)


def page_upside_down(lines: list[np.ndarray], angles: list[tuple[str, float]]) -> bool:
    """Whether the lines' votes say upside down: each line's probability of 180, weighted by its width
    (a long line is more evidence than a bullet), averaged over the image. Not a count of sure calls:
    at 300 dpi the classifier is sure of only half the lines of an upside-down page."""
    widths = np.array([line.shape[1] for line in lines], np.float64)
    turned = np.array([score if angle == "180" else 1.0 - score for angle, score in angles])
    return bool(len(lines)) and float(widths @ turned) > 0.5 * float(widths.sum())

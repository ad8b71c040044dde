"""What the direction classifier and the recognizer share: line images resized to the model's
height, normalized to [-1, 1], padded on the right; batched by width/height ratio."""

from __future__ import annotations

import math
from collections.abc import Iterator

import cv2
import numpy as np


def image_shape(text: str) -> tuple[int, int, int]:
    """``"3, 48, 320"`` (``OcrConfig.rec_image_shape`` / ``cls_image_shape``) → (3, 48, 320)."""
    channels, height, width = (int(value) for value in text.split(","))
    return channels, height, width


def ratio(line: np.ndarray) -> float:
    return line.shape[1] / float(line.shape[0])


def batches(lines: list[np.ndarray], size: int) -> Iterator[list[int]]:
    """Indices of ``lines`` in batches of ``size``, narrowest first: lines of similar ratio pad less.
    numpy's default sort, as paddleocr's, so that batches, and so padding and results, are the same."""
    order = np.argsort(np.array([ratio(line) for line in lines]))
    for start in range(0, len(lines), max(1, size)):
        yield [int(index) for index in order[start : start + max(1, size)]]


def resize_normalize(line: np.ndarray, channels: int, height: int, width: int) -> np.ndarray:
    """One line as the model takes it: ``height`` high, as wide as its ratio gives up to ``width``,
    (x / 255 - 0.5) / 0.5 in float32, zero-padded to ``width``; channels first."""
    resized_w = min(width, int(math.ceil(height * ratio(line))))
    resized = cv2.resize(line, (resized_w, height)).astype("float32")
    resized = resized.transpose((2, 0, 1)) / 255
    resized -= 0.5
    resized /= 0.5
    padded = np.zeros((channels, height, width), dtype=np.float32)
    padded[:, :, :resized_w] = resized
    return padded

"""Text detection (DB): a page in, the four-point boxes of its text lines out, in reading order.

DB ("Differentiable Binarization", Liao et al. 2020) predicts, for each pixel, the probability that it
lies inside a text line shrunk towards its centre. The post-processing takes the pixels over
``det_db_thresh``, finds each region's minimum-area rectangle, keeps those whose mean probability is
at least ``det_db_box_thresh``, grows each back by ``area × det_db_unclip_ratio / perimeter`` (the
shrink DB was trained with) and maps it to page coordinates. Each step follows paddleocr 2.10's
``DBPostProcess`` and ``TextDetector``, float type for float type, so the boxes are the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import pyclipper

from ocrhub.config import OcrConfig
from ocrhub.predictor import Predictor

MEAN, STD, SCALE = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1.0 / 255.0  # ImageNet's, on 0..1
MEAN32, STD32 = np.array(MEAN, np.float32), np.array(STD, np.float32)  # per channel, as paddleocr's float32
MIN_SIDE = 3  # a region's rectangle must be wider than this on its short side (then +2 once unclipped)
MAX_CANDIDATES = 1000  # regions looked at per page
SAME_LINE_PX = 10  # boxes whose tops are closer than this are ordered left to right


@dataclass(frozen=True)
class DetSettings:
    limit_side_len: float
    limit_type: str  # "max": the longer side at most limit_side_len; "min": the shorter at least
    thresh: float
    box_thresh: float
    unclip_ratio: float
    use_dilation: bool
    score_mode: str  # "fast": mean over the rectangle; "slow": over the region's own outline

    @classmethod
    def of(cls, config: OcrConfig) -> DetSettings:
        return cls(
            config.det_limit_side_len,
            config.det_limit_type,
            config.det_db_thresh,
            config.det_db_box_thresh,
            config.det_db_unclip_ratio,
            config.use_dilation,
            config.det_db_score_mode,
        )


class Detector:
    def __init__(self, predictor: Predictor, settings: DetSettings):
        self.predictor, self.settings = predictor, settings

    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        """Text boxes (4×2 float32, clockwise from the top-left) ordered top-to-bottom, left-to-right."""
        height, width = image.shape[:2]
        resized = resize_for_detection(pad_tiny(image), self.settings.limit_side_len, self.settings.limit_type)
        probability = self.predictor.run(normalize(resized)[np.newaxis])[0][0, 0]
        boxes = boxes_from_map(probability, np.float64(width), np.float64(height), self.settings)
        return sorted_boxes(filter_boxes(boxes, height, width))


def pad_tiny(image: np.ndarray) -> np.ndarray:
    """A page whose sides add up to under 64 px, padded with black to at least 32×32."""
    height, width, channels = image.shape
    if height + width >= 64:
        return image
    padded = np.zeros((max(32, height), max(32, width), channels), np.uint8)
    padded[:height, :width, :] = image
    return padded


def resize_for_detection(image: np.ndarray, limit_side_len: float, limit_type: str) -> np.ndarray:
    """Scaled so the longer side is at most (``max``) or the shorter at least (``min``) the limit, then
    each side rounded to a multiple of 32 (the network halves it five times)."""
    height, width = image.shape[:2]
    if limit_type == "max":
        ratio = float(limit_side_len) / max(height, width) if max(height, width) > limit_side_len else 1.0
    else:
        ratio = float(limit_side_len) / min(height, width) if min(height, width) < limit_side_len else 1.0
    resize_h = max(int(round(int(height * ratio) / 32) * 32), 32)
    resize_w = max(int(round(int(width * ratio) / 32) * 32), 32)
    return cv2.resize(image, (resize_w, resize_h))


def _channel_tables() -> list[np.ndarray]:
    """The normalized float32 of each of the 256 values of each channel, computed as paddleocr's
    ``NormalizeImage`` computes each pixel: (x × scale − mean) / std in float32."""
    values = np.arange(256, dtype=np.uint8).astype("float32")
    return [np.ascontiguousarray((values * np.float32(SCALE) - MEAN32[c]) / STD32[c]) for c in range(3)]


TABLES = _channel_tables()


def normalize(image: np.ndarray) -> np.ndarray:
    """An 8-bit BGR page → normalized float32 planes (3×H×W), by table lookup: the same floats as the
    arithmetic, bit for bit, in a fraction of the time. Any other array is computed."""
    if image.dtype != np.uint8:
        return ((image.astype("float32") * np.float32(SCALE) - MEAN32) / STD32).transpose(2, 0, 1)
    planes = np.empty((3, *image.shape[:2]), np.float32)
    for channel, plane in enumerate(cv2.split(image)):
        cv2.LUT(plane, TABLES[channel], dst=planes[channel])
    return planes


def boxes_from_map(probability: np.ndarray, dest_w: np.float64, dest_h: np.float64, settings: DetSettings) -> list[np.ndarray]:
    """DB post-processing of one probability map: boxes (4×2 int32) in page coordinates."""
    mask = probability > settings.thresh
    if settings.use_dilation:
        mask = cv2.dilate(mask.astype(np.uint8), np.array([[1, 1], [1, 1]]))
    height, width = mask.shape
    contours, _ = cv2.findContours((mask * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in contours[:MAX_CANDIDATES]:
        points, short_side = mini_box(contour)
        if short_side < MIN_SIDE:
            continue
        points = np.array(points)
        score = score_fast(probability, points) if settings.score_mode == "fast" else score_slow(probability, contour)
        if settings.box_thresh > score:
            continue
        expanded = unclip(points, settings.unclip_ratio)
        if len(expanded) != 1:  # grown into two pieces, or to nothing
            continue
        box, short_side = mini_box(np.array(expanded).reshape(-1, 1, 2))
        if short_side < MIN_SIDE + 2:
            continue
        box = np.array(box)
        box[:, 0] = np.clip(np.round(box[:, 0] / width * dest_w), 0, dest_w)
        box[:, 1] = np.clip(np.round(box[:, 1] / height * dest_h), 0, dest_h)
        boxes.append(box.astype("int32"))
    return boxes


def mini_box(contour: np.ndarray) -> tuple[list[np.ndarray], float]:
    """The minimum-area rectangle around ``contour``: its corners clockwise from the top-left, and its shorter side."""
    rectangle = cv2.minAreaRect(contour)
    points = sorted(list(cv2.boxPoints(rectangle)), key=lambda point: point[0])
    left_top, left_bottom = (0, 1) if points[1][1] > points[0][1] else (1, 0)
    right_top, right_bottom = (2, 3) if points[3][1] > points[2][1] else (3, 2)
    return [points[left_top], points[right_top], points[right_bottom], points[left_bottom]], min(rectangle[1])


def score_fast(probability: np.ndarray, box: np.ndarray) -> float:
    """Mean probability inside ``box``'s polygon (within its bounding rectangle)."""
    height, width = probability.shape[:2]
    box = box.copy()
    xmin = np.clip(np.floor(box[:, 0].min()).astype("int32"), 0, width - 1)
    xmax = np.clip(np.ceil(box[:, 0].max()).astype("int32"), 0, width - 1)
    ymin = np.clip(np.floor(box[:, 1].min()).astype("int32"), 0, height - 1)
    ymax = np.clip(np.ceil(box[:, 1].max()).astype("int32"), 0, height - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] = box[:, 0] - xmin
    box[:, 1] = box[:, 1] - ymin
    cv2.fillPoly(mask, box.reshape(1, -1, 2).astype("int32"), 1)
    return cv2.mean(probability[ymin : ymax + 1, xmin : xmax + 1], mask)[0]


def score_slow(probability: np.ndarray, contour: np.ndarray) -> float:
    """Mean probability inside the region's own outline."""
    return score_fast(probability, np.reshape(contour, (-1, 2)).copy())


def unclip(box: np.ndarray, unclip_ratio: float) -> list:
    """``box`` grown by area × ratio / perimeter with rounded corners (pyclipper's offset)."""
    area, perimeter = polygon_area_and_length(box)
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return offset.Execute(area * unclip_ratio / perimeter)


def polygon_area_and_length(points: np.ndarray) -> tuple[float, float]:
    """Area and perimeter of a simple polygon, in double precision as GEOS (Shapely) computes them:
    the shoelace sum taken relative to the first point, then the sum of the edges' lengths."""
    ring = [(float(x), float(y)) for x, y in points] + [(float(points[0][0]), float(points[0][1]))]
    x0 = ring[0][0]
    twice_area = sum((ring[i][0] - x0) * (ring[i - 1][1] - ring[i + 1][1]) for i in range(1, len(ring) - 1))
    edges = [(ring[i + 1][0] - ring[i][0], ring[i + 1][1] - ring[i][1]) for i in range(len(ring) - 1)]
    length = sum(math.sqrt(dx * dx + dy * dy) for dx, dy in edges)  # not hypot, which rounds differently
    return abs(twice_area / 2.0), length


def order_clockwise(points: np.ndarray) -> np.ndarray:
    """Four corners as top-left, top-right, bottom-right, bottom-left (by x + y and y − x)."""
    rect = np.zeros((4, 2), dtype="float32")
    sums = points.sum(axis=1)
    rect[0], rect[2] = points[np.argmin(sums)], points[np.argmax(sums)]
    rest = np.delete(points, (np.argmin(sums), np.argmax(sums)), axis=0)
    diff = np.diff(np.array(rest), axis=1)
    rect[1], rect[3] = rest[np.argmin(diff)], rest[np.argmax(diff)]
    return rect


def filter_boxes(boxes: list[np.ndarray], height: int, width: int) -> list[np.ndarray]:
    """Boxes ordered clockwise, clipped to the page, and dropped when 3 px or less on a side."""
    kept = []
    for box in boxes:
        box = order_clockwise(box)
        box[:, 0] = [int(min(max(x, 0), width - 1)) for x in box[:, 0]]
        box[:, 1] = [int(min(max(y, 0), height - 1)) for y in box[:, 1]]
        if int(np.linalg.norm(box[0] - box[1])) > 3 and int(np.linalg.norm(box[0] - box[3])) > 3:
            kept.append(box)
    return kept


def sorted_boxes(boxes: list[np.ndarray]) -> list[np.ndarray]:
    """Top to bottom by the top-left corner, then left to right among boxes on about the same line."""
    ordered = sorted(boxes, key=lambda box: (box[0][1], box[0][0]))
    for i in range(len(ordered) - 1):
        for j in range(i, -1, -1):
            if abs(ordered[j + 1][0][1] - ordered[j][0][1]) < SAME_LINE_PX and ordered[j + 1][0][0] < ordered[j][0][0]:
                ordered[j], ordered[j + 1] = ordered[j + 1], ordered[j]
            else:
                break
    return ordered

"""A detected line cut out of its page and turned straight, as paddleocr's ``get_rotate_crop_image``."""

from __future__ import annotations

import cv2
import numpy as np

TALL = 1.5  # a crop this many times taller than wide is a vertical line: turned a quarter to lie flat


def crop_line(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The quadrilateral ``box`` (4×2 float32, clockwise from the top-left) warped to a rectangle as
    wide as its longer top/bottom edge and as high as its longer left/right edge (cubic interpolation,
    edges replicated)."""
    points = np.array(box, dtype=np.float32)
    width = int(max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3])))
    height = int(max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2])))
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    transform = cv2.getPerspectiveTransform(points, corners)
    line = cv2.warpPerspective(image, transform, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    return np.rot90(line) if line.shape[0] * 1.0 / line.shape[1] >= TALL else line

"""Request images: base64 (or a ``data:`` URL) → a validated 8-bit BGR array.

Every failure is an ``InputError`` naming the image's index and the reason. The pixel count is read
from the file header before anything is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

import cv2
import numpy as np
from PIL import Image

from ocrhub.errors import InputError

_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
# Our own configurable pixel limit (max_image_pixels) replaces PIL's fixed one, so the message can
# name the size; the header is still read before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = None
USAGE = 'send JSON {"images": ["<base64 of an image file>", ...]}'


def decode_all(images, max_images: int, max_pixels: int) -> list[np.ndarray]:
    """Check the ``images`` field of a request and decode each item, in order."""
    if images is None:
        raise InputError(f"missing 'images': {USAGE}")
    if not isinstance(images, list):
        raise InputError(f"'images' must be a list of base64 strings, got {type(images).__name__}: {USAGE}")
    if not images:
        raise InputError(f"'images' is empty: {USAGE}")
    if max_images and len(images) > max_images:
        raise InputError(f"too many images: {len(images)} (limit {max_images} per request)")
    return [decode(item, index, max_pixels) for index, item in enumerate(images)]


def decode(item, index: int, max_pixels: int) -> np.ndarray:
    if not isinstance(item, str):
        raise InputError(f"image {index}: expected a base64 string, got {type(item).__name__}")
    data = _b64decode(item, index)
    width, height, has_alpha = _header(data, index)
    if max_pixels and width * height > max_pixels:
        raise InputError(f"image {index}: image too large: {width}×{height} (limit {max_pixels} pixels)")
    return _to_bgr(data, index, has_alpha)


def _b64decode(text: str, index: int) -> bytes:
    text = _WHITESPACE.sub("", _DATA_URL.sub("", text.strip(), count=1))
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"image {index}: invalid base64") from None
    if not data:
        raise InputError(f"image {index}: invalid base64 (empty)")
    return data


def _header(data: bytes, index: int) -> tuple[int, int, bool]:
    """Width, height and transparency from the header alone (no pixel data is decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
            return image.width, image.height, alpha
    except Exception:
        raise InputError(f"image {index}: not a decodable image") from None


def _to_bgr(data: bytes, index: int, has_alpha: bool) -> np.ndarray:
    buffer = np.frombuffer(data, np.uint8)
    # IMREAD_COLOR is what PaddleOCR's hubserving uses (EXIF rotation, gray and 16-bit to 8-bit BGR);
    # transparent images are read with their alpha and laid on white, so dark text stays visible.
    flags = cv2.IMREAD_UNCHANGED if has_alpha else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(buffer, flags)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise InputError(f"image {index}: not a decodable image")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"image {index}: not a decodable image (unsupported {image.dtype} pixels)")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        return (image[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return image

"""Request images: base64 (or a ``data:`` URL) or raw file bytes → checked headers → 8-bit BGR arrays.

Two steps, so that a request costs memory for one decoded image at a time:

1. ``read_request`` checks the ``images`` field of a request: base64 and each file's header (size,
   transparency) are read, no pixel is decoded, and every limit is checked — images per request,
   pixels per image, pixels per request. A decompression bomb costs nothing.
2. ``to_bgr`` decodes one checked image into the BGR array the pipeline takes, when it is its turn.

Every failure is an ``InputError`` naming the image's index, the reason and the setting that limits it.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ocrhub.errors import InputError

_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
# Our own configurable pixel limits replace PIL's fixed one, so the message can name the size and the
# setting; the header is still read before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = None
USAGE = 'send JSON {"images": ["<base64 of an image file>", ...]}'


@dataclass(frozen=True)
class Limits:
    max_images: int = 0  # 0: no limit, for each field
    max_image_pixels: int = 0
    max_request_pixels: int = 0


@dataclass(frozen=True)
class EncodedImage:
    """An image file whose header was read and checked; its pixels are not decoded yet."""

    data: bytes
    index: int
    width: int
    height: int
    has_alpha: bool

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_request(images, limits: Limits) -> list[EncodedImage]:
    """The ``images`` field of a request, checked against ``limits``, in order."""
    if images is None:
        raise InputError(f"missing 'images': {USAGE}")
    if not isinstance(images, list):
        raise InputError(f"'images' must be a list of base64 strings, got {type(images).__name__}: {USAGE}")
    if not images:
        raise InputError(f"'images' is empty: {USAGE}")
    if limits.max_images and len(images) > limits.max_images:
        raise InputError(f"too many images: {len(images)} (limit {limits.max_images} per request, OCR_MAX_IMAGES)")
    checked = [read_base64(item, index, limits.max_image_pixels) for index, item in enumerate(images)]
    check_request_pixels(checked, limits.max_request_pixels)
    return checked


def check_request_pixels(images: list[EncodedImage], limit: int) -> None:
    total = sum(image.pixels for image in images)
    if limit and total > limit:
        raise InputError(
            f"too many pixels in one request: {total} in {len(images)} images (limit {limit}, "
            f"OCR_MAX_REQUEST_PIXELS); send the images in several requests"
        )


def read_base64(item, index: int, max_pixels: int) -> EncodedImage:
    if not isinstance(item, str):
        raise InputError(f"image {index}: expected a base64 string, got {type(item).__name__}")
    return read_file(_b64decode(item, index), index, max_pixels)


def read_file(data: bytes, index: int, max_pixels: int) -> EncodedImage:
    """An image file's bytes, checked from its header alone."""
    width, height, has_alpha = _header(data, index)
    if max_pixels and width * height > max_pixels:
        raise InputError(f"image {index}: image too large: {width}×{height} (limit {max_pixels} pixels, OCR_MAX_IMAGE_PIXELS)")
    return EncodedImage(data, index, width, height, has_alpha)


def decode(item, index: int = 0, max_pixels: int = 0) -> np.ndarray:
    """One base64 image straight to BGR (for callers that hold one image anyway)."""
    return to_bgr(read_base64(item, index, max_pixels))


def _b64decode(text: str, index: int) -> bytes:
    text = text.strip()
    if text[:5].lower() == "data:":
        text = _DATA_URL.sub("", text, count=1)
    data = _strict_b64decode(text)
    if data is None:  # line breaks (MIME base64)? Removing whitespace costs 9 ms per MB, so only then
        data = _strict_b64decode(_WHITESPACE.sub("", text))
    if data is None:
        raise InputError(f"image {index}: invalid base64")
    if not data:
        raise InputError(f"image {index}: invalid base64 (empty)")
    return data


def _strict_b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _header(data: bytes, index: int) -> tuple[int, int, bool]:
    """Width, height and transparency from the header alone (no pixel data is decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
            return image.width, image.height, alpha
    except Exception:
        raise InputError(f"image {index}: not a decodable image") from None


def to_bgr(image: EncodedImage) -> np.ndarray:
    buffer = np.frombuffer(image.data, np.uint8)
    # IMREAD_COLOR is what PaddleOCR's hubserving uses (EXIF rotation, gray and 16-bit to 8-bit BGR);
    # transparent images are read with their alpha and laid on white, so dark text stays visible.
    flags = cv2.IMREAD_UNCHANGED if image.has_alpha else cv2.IMREAD_COLOR
    try:
        pixels = cv2.imdecode(buffer, flags)
    except cv2.error:
        pixels = None
    if pixels is None or pixels.size == 0:
        raise InputError(f"image {image.index}: not a decodable image")
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        raise InputError(f"image {image.index}: not a decodable image (unsupported {pixels.dtype} pixels)")
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if pixels.shape[2] == 4:
        alpha = pixels[:, :, 3:4].astype(np.float32) / 255.0
        return (pixels[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return pixels

"""Image sets for measurements: photos from a folder, rendered pages, and variants of distinct sizes.

    from harness import photos
    images = photos.load_folder("../shared/images") + photos.rendered_pages()
    images = photos.photos_and_pages("../shared/images")  # the same, or the pages only without photos
    variants = photos.DistinctSizes(images, 1000)   # variants[i]: no other variant has its size

A ``Photo`` keeps its encoded file, which is what a client sends; ``bgr()`` decodes it for in-process use.
"""

from __future__ import annotations

import base64
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from harness import testimages

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Photo:
    name: str
    data: bytes  # the encoded file

    def b64(self) -> str:
        return base64.b64encode(self.data).decode()

    def bgr(self) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(self.data, np.uint8), cv2.IMREAD_COLOR)

    @property
    def is_png(self) -> bool:
        return self.data.startswith(b"\x89PNG")


def encode(name: str, image: np.ndarray, png: bool = True) -> Photo:
    ok, data = cv2.imencode(".png" if png else ".jpg", image, [] if png else [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError(f"cannot encode {name}")
    return Photo(name, data.tobytes())


def load_files(paths) -> list[Photo]:
    return [Photo(Path(path).name, Path(path).read_bytes()) for path in paths]


def load_folder(folder: str | Path) -> list[Photo]:
    """Every image file of ``folder``, by name; FileNotFoundError when there is none."""
    paths = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return load_files(paths)


def rendered_pages(font_path: str | None = None) -> list[Photo]:
    """``harness.testimages.pages`` as PNG files (FileNotFoundError without a CJK font)."""
    return [encode(sample.name, sample.image) for sample in testimages.pages(font_path)]


def photos_and_pages(folder: str | Path | None = None) -> list[Photo]:
    """The photos of ``folder`` (when given), then the rendered pages (when a CJK font is found)."""
    found = load_folder(folder) if folder else []
    try:
        found += rendered_pages()
    except FileNotFoundError as err:
        print(f"note: no rendered pages: {err}", file=sys.stderr)
    if not found:
        raise SystemExit("no images: give a folder of photos or install a CJK font (fonts-wqy-microhei)")
    return found


def save(photos: list[Photo], folder: Path) -> list[Path]:
    """Write each photo to ``folder`` (for other processes); their paths, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, photo in enumerate(photos):
        name = Path(photo.name)
        path = folder / f"{index:03d}-{name.stem}{name.suffix or ('.png' if photo.is_png else '.jpg')}"
        path.write_bytes(photo.data)
        paths.append(path)
    return paths


class DistinctSizes:
    """``count`` variants of ``photos``, no two of the same size: variant i is photo i mod n, resized
    so that its longer side has a length no other variant has (spread over ``shortest``..``longest``
    pixels, beyond when there are more variants than lengths), then cropped across its shorter side
    by up to a quarter so that aspect ratios vary too. Variants are made on demand (thread-safe)."""

    def __init__(self, photos: list[Photo], count: int, shortest: int = 320, longest: int = 1600, seed: int = 0):
        if not photos or count < 1:
            raise ValueError("DistinctSizes needs photos and a positive count")
        rng = random.Random(seed)
        lengths = range(shortest, max(longest + 1, shortest + count))
        self.photos, self.count = photos, count
        self.long_sides = rng.sample(lengths, count)
        self.crops = [rng.uniform(0, 0.25) for _ in range(count)]
        self._decoded = [photo.bgr() for photo in photos]

    def __len__(self) -> int:
        return self.count

    def size(self, index: int) -> tuple[int, int]:
        """(width, height) of variant ``index``."""
        height, width = self._decoded[index % len(self.photos)].shape[:2]
        long_side, crop = self.long_sides[index], self.crops[index]
        short = max(1, round(min(width, height) * long_side / max(width, height) * (1 - crop)))
        return (long_side, short) if width >= height else (short, long_side)

    def __getitem__(self, index: int) -> Photo:
        if not 0 <= index < self.count:
            raise IndexError(index)
        base = self.photos[index % len(self.photos)]
        image = self._decoded[index % len(self.photos)]
        width, height = self.size(index)
        scale = max(width, height) / max(image.shape[:2])
        full = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        resized = cv2.resize(
            image,
            (max(full[0], width), max(full[1], height)),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
        )
        top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
        crop = resized[top : top + height, left : left + width]
        return encode(f"{base.name}@{width}x{height}", np.ascontiguousarray(crop), png=base.is_png)

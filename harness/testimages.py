"""Images with known text, rendered with a CJK font: ground truth for tests, benchmarks and demos.

The font is found with fontconfig (any font covering Chinese; the README names Debian's
``fonts-wqy-microhei``) or given explicitly.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_PACKAGE = "fonts-wqy-microhei"

PAGES = {
    "english": [
        ("Quarterly report 2026", 40),
        ("Revenue grew by 42 percent", 28),
        ("Contact us at ocr@example.com", 22),
    ],
    "chinese": [("光学字符识别服务", 44), ("今天天气很好", 32), ("欢迎使用开源软件", 26)],
    "mixed": [("PaddleOCR 文字识别", 36), ("价格：128元", 30), ("Hello 世界", 24), ("第三行文字", 20)],
}
LINES = {"line_en": ("Recognition works", 32), "line_zh": ("识别一行中文", 32)}


@dataclass
class Sample:
    name: str
    image: np.ndarray  # BGR, as the modules take it
    texts: list[str]
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # x0, y0, x1, y1 per line


def find_cjk_font() -> str:
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True).stdout
    except OSError:
        listed = ""
    fonts = sorted(line.strip().rstrip(":") for line in listed.splitlines() if line.strip())
    if not fonts:
        raise FileNotFoundError(f"no CJK font found; install one: sudo apt-get install {FONT_PACKAGE}")
    return fonts[0]


def render_page(name: str, lines: list[tuple[str, int]], font_path: str, width: int = 720) -> Sample:
    """Black lines on white, left-aligned, generous spacing; each box is the ink of its line."""
    bands = [int(size * 2.2) for _, size in lines]
    page = Image.new("RGB", (width, 60 + sum(bands)), "white")
    draw = ImageDraw.Draw(page)
    y, boxes = 40, []
    for (text, size), band in zip(lines, bands):
        draw.text((40, y), text, font=ImageFont.truetype(font_path, size), fill="black")
        boxes.append(_ink_box(np.asarray(page)[y - size // 2 : y + band - size // 2], y - size // 2))
        y += band
    return Sample(name, np.ascontiguousarray(np.asarray(page)[:, :, ::-1]), [t for t, _ in lines], boxes)


def _ink_box(band: np.ndarray, top: int) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(band.min(axis=2) < 128)
    return int(cols.min()), top + int(rows.min()), int(cols.max()) + 1, top + int(rows.max()) + 1


def rotated(sample: Sample) -> Sample:
    """The page turned 180°, boxes turned with it."""
    height, width = sample.image.shape[:2]
    boxes = [(width - x1, height - y1, width - x0, height - y0) for x0, y0, x1, y1 in sample.boxes]
    return Sample(sample.name + "_180", np.ascontiguousarray(sample.image[::-1, ::-1]), sample.texts, boxes)


def render_line(name: str, text: str, size: int, font_path: str) -> Sample:
    """One tightly cropped text line, as ocr_rec and ocr_cls take them."""
    page = render_page(name, [(text, size)], font_path)
    x0, y0, x1, y1 = page.boxes[0]
    pad = size // 4
    crop = page.image[y0 - pad : y1 + pad, x0 - pad : x1 + pad]
    return Sample(name, np.ascontiguousarray(crop), [text], [(pad, pad, pad + x1 - x0, pad + y1 - y0)])


def pages(font_path: str | None = None) -> list[Sample]:
    font_path = font_path or find_cjk_font()
    rendered = [render_page(name, lines, font_path) for name, lines in PAGES.items()]
    return rendered + [rotated(rendered[-1])]


def lines(font_path: str | None = None) -> list[Sample]:
    font_path = font_path or find_cjk_font()
    return [render_line(name, text, size, font_path) for name, (text, size) in LINES.items()]

"""OCR text against ground truth: normalization, character and word errors, lines matched by geometry.

    from harness import textmetrics
    truth = textmetrics.normalize("ﬁnal  report")          # "final report"
    textmetrics.char_errors("Revenue grew", "Revenuegrew")   # (0, 11): spacing is not a character error
    textmetrics.merged_words("Revenue grew by 42 percent", "Revenuegrewby42percent revenue")  # 1
    read, junk = textmetrics.match_lines(truth_polygons, ocr_results)  # OCR text per truth line; the rest
    score = textmetrics.score_lines(truth_texts, read, junk, with_words=True)

Definitions (the same for truth and OCR text, so that only reading errors count):

- ``normalize``: Unicode NFKC (ligatures ﬁ → fi, full-width ASCII → half-width), pdfium's marks for
  a hyphen that ends a line → "-", runs of whitespace → one space, and no space next to a CJK character
  (Chinese has no word spaces; the gap TeX puts between Chinese and Latin text is glue, not a character).
- character errors: Levenshtein distance between the two texts without whitespace, over the truth's
  non-whitespace characters; whitespace errors are what the word measures are for.
- words: the space-separated tokens of a line, punctuation stripped from their ends; a truth word is
  read when an equal OCR token is on its line (as a multiset), so words glued together are wrong.
- merged words: OCR tokens equal to two or more consecutive truth words of their line joined without space.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, fields

import cv2
import numpy as np
from rapidfuzz.distance import Levenshtein

from ocrhub.documents import PDFIUM_HYPHENS

CJK = "\u2e80-\u2fff\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACE_BY_CJK = re.compile(rf"\s+(?=[{CJK}])|(?<=[{CJK}])\s+")
MIN_COVER = 0.25  # share of an OCR box that must lie on a truth line for its text to count as that line's
MAX_MERGED = 8  # consecutive truth words a merged token is checked against


def normalize(text: str) -> str:
    for mark in PDFIUM_HYPHENS:
        text = text.replace(mark, "-")
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    return _SPACE_BY_CJK.sub("", text)


def char_errors(truth: str, ocr: str) -> tuple[int, int]:
    """(edit distance, truth characters), whitespace left out of both."""
    truth, ocr = "".join(truth.split()), "".join(ocr.split())
    return Levenshtein.distance(truth, ocr), len(truth)


def words(text: str) -> list[str]:
    """Space-separated tokens with punctuation stripped from their ends; tokens of punctuation only dropped."""
    stripped = (_strip_punctuation(token) for token in text.split())
    return [token for token in stripped if token]


def _strip_punctuation(token: str) -> str:
    start, end = 0, len(token)
    while start < end and unicodedata.category(token[start]).startswith("P"):
        start += 1
    while end > start and unicodedata.category(token[end - 1]).startswith("P"):
        end -= 1
    return token[start:end]


def words_read(truth: str, ocr: str) -> int:
    """Truth words of a line found among the OCR tokens of that line, each token used once."""
    return sum((Counter(words(truth)) & Counter(words(ocr))).values())


def merged_words(truth: str, ocr: str) -> int:
    """OCR tokens that are two or more consecutive truth words run together, e.g. "Revenuegrewby42"."""
    raw = truth.split()
    joined = {
        _strip_punctuation("".join(raw[start:end]))
        for start in range(len(raw))
        for end in range(start + 2, min(start + MAX_MERGED, len(raw)) + 1)
    }
    return sum(token in joined for token in words(ocr))


# ------------------------------------------------------------------------------------ lines by geometry


def match_lines(
    truth_polygons: list[np.ndarray], ocr: list[tuple[np.ndarray, str]], ignored: list[np.ndarray] = ()
) -> tuple[list[str], list[str]]:
    """Each OCR box goes to the truth line whose polygon covers most of it (at least ``MIN_COVER`` of its
    area); a truth line's pieces are joined with spaces in reading direction (along the line's top edge,
    so a rotated page reads the same). Returns the OCR text of every truth line ("" for none) and the
    texts that lie on no truth line (insertions). Boxes that go to an ``ignored`` polygon (text nobody
    can read for sure) count neither way."""
    polygons = [*truth_polygons, *ignored]
    pieces: list[list[tuple[float, str]]] = [[] for _ in polygons]
    junk = []
    for box, text in ocr:
        box = np.asarray(box, np.float32).reshape(4, 2)
        line = _best_line(box, polygons)
        if line is None:
            junk.append(text)
            continue
        direction = polygons[line][1] - polygons[line][0]
        pieces[line].append((float(box.mean(axis=0) @ direction), text))
    read = [" ".join(text for _, text in sorted(found, key=lambda p: p[0])) for found in pieces]
    return read[: len(truth_polygons)], junk


def _best_line(box: np.ndarray, truth_polygons: list[np.ndarray]) -> int | None:
    area = cv2.contourArea(box)
    if area <= 0:
        return None
    overlaps = [cv2.intersectConvexConvex(box, np.asarray(polygon, np.float32))[0] for polygon in truth_polygons]
    best = int(np.argmax(overlaps)) if overlaps else None
    return best if best is not None and overlaps[best] >= MIN_COVER * area else None


# -------------------------------------------------------------------------------------------- scores


@dataclass
class Score:
    """Counts that add up over lines, pages and conditions; rates come from the sums."""

    chars: int = 0  # truth characters (no whitespace)
    char_errors: int = 0  # edits on matched lines + characters of text on no truth line
    junk_chars: int = 0  # the latter alone
    lines: int = 0
    lines_exact: int = 0
    words: int = 0  # truth words (only where words are scored)
    words_read: int = 0
    merged: int = 0  # OCR tokens that are 2+ truth words glued together
    images: int = 0
    seconds: float = 0.0  # of the OCR calls

    def __iadd__(self, other: Score) -> Score:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        return self

    def rates(self) -> dict:
        """CER, word accuracy and line recall in percent, merged words per 1000 truth words, images/s."""
        percent = lambda part, whole: 100 * part / whole if whole else None
        return {
            "cer_pct": percent(self.char_errors, self.chars),
            "word_acc_pct": percent(self.words_read, self.words),
            "merged_per_1k_words": 1000 * self.merged / self.words if self.words else None,
            "line_recall_pct": percent(self.lines_exact, self.lines),
            "images_per_s": self.images / self.seconds if self.seconds else None,
        }


def score_lines(truth: list[str], read: list[str], junk: list[str], *, with_words: bool) -> Score:
    """One image's score: ``truth`` and ``read`` normalized line by line, ``junk`` the text on no line;
    ``with_words``: also score words (for languages written with spaces between words)."""
    score = Score(lines=len(truth))
    for expected, found in zip(truth, read):
        edits, length = char_errors(expected, found)
        score.chars += length
        score.char_errors += edits
        score.lines_exact += expected == found
        if with_words:
            score.words += len(words(expected))
            score.words_read += words_read(expected, found)
            score.merged += merged_words(expected, found)
    score.junk_chars = sum(len("".join(text.split())) for text in junk)
    score.char_errors += score.junk_chars
    return score

"""The accuracy benchmark's measures (harness.textmetrics) on texts and boxes with known answers, and its
ground truth (harness.groundtruth): text lines from a PDF's text layer, degradations, text crops.
No models, no network."""

import hashlib
import io
import json
import re

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

import accuracy
from harness import groundtruth, testimages
from harness.textmetrics import Score, char_errors, match_lines, merged_words, normalize, score_lines, words_read

TRUTH = "Revenue grew by 42 percent."


def rect(x0, y0, x1, y1) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def turned(points: np.ndarray, degrees: float, centre=(300, 200)) -> np.ndarray:
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    return (points - centre) @ rotation.T + centre


# ------------------------------------------------------------------------------------- normalization


def test_normalize_applies_nfkc_and_collapses_spaces():
    assert normalize("  ﬁnal   ofﬁce\tＡＢＣ１２３ ") == "final office ABC123"


def test_normalize_drops_spaces_next_to_chinese_and_writes_pdfium_hyphens():
    assert normalize("TEX Live 的 基本安装 ， 好") == "TEX Live的基本安装,好"
    assert normalize("How\x02") == normalize("How\ufffe") == "How-"


# ---------------------------------------------------------------------------------- character errors


@pytest.mark.parametrize(
    ("truth", "ocr", "expected"),
    [
        ("abc", "abc", (0, 3)),
        ("abc", "abd", (1, 3)),
        ("abc", "", (3, 3)),
        ("abc", "abcde", (2, 3)),
        ("Revenue grew", "Revenuegrew", (0, 11)),  # spacing is the word measures' business
        ("光学字符识别", "光字符识别", (1, 6)),
    ],
)
def test_char_errors(truth, ocr, expected):
    assert char_errors(truth, ocr) == expected


# --------------------------------------------------------------------------------------------- words


def test_words_read_counts_truth_words_found_as_tokens():
    assert words_read(TRUTH, TRUTH) == 5
    assert words_read(TRUTH, "Revenue grewby 42 percent") == 3  # the glued pair is wrong; the period does not count
    assert words_read(TRUTH, "Revenuegrewby42percent.") == 0
    assert words_read("the cat and the dog", "the cat and dog") == 4  # a token is used once


def test_merged_words_are_consecutive_truth_words_without_the_space():
    assert merged_words(TRUTH, TRUTH) == 0
    assert merged_words(TRUTH, "Revenuegrewby42percent.") == 1
    assert merged_words(TRUTH, "Revenue grewby 42percent.") == 2
    assert merged_words("Linux, Windows and macOS", "Linux,Windows andmacOS") == 2
    assert merged_words(TRUTH, "Revenuegrew bypercent") == 1  # not consecutive: a misreading, not a merge


# ------------------------------------------------------------------------------------- line matching

LINES = [rect(100, 100, 500, 120), rect(100, 130, 500, 150)]


def test_pieces_of_a_line_are_joined_left_to_right_and_stray_text_is_junk():
    ocr = [
        (rect(310, 98, 500, 122), "42 percent."),
        (rect(98, 98, 300, 122), "Revenue grew by"),
        (rect(100, 128, 500, 152), "second line"),
        (rect(100, 300, 200, 320), "junk"),
    ]
    assert match_lines(LINES, ocr) == (["Revenue grew by 42 percent.", "second line"], ["junk"])


def test_a_box_spanning_two_lines_counts_for_the_one_covering_most_of_it():
    read, junk = match_lines(LINES, [(rect(100, 110, 500, 145), "merged")])
    assert read == ["", "merged"] and junk == []


def test_text_on_an_unreadable_spot_counts_neither_way():
    ocr = [(rect(100, 100, 500, 120), "read"), (rect(100, 300, 200, 320), "guess"), (rect(600, 0, 700, 20), "junk")]
    assert match_lines(LINES, ocr, ignored=[rect(90, 290, 210, 330)]) == (["read", ""], ["junk"])


def test_a_box_barely_touching_a_line_is_junk():
    assert match_lines(LINES, [(rect(100, 118, 500, 218), "below")]) == (["", ""], ["below"])


@pytest.mark.parametrize("degrees", [1.5, -1.5, 20, 170])
def test_matching_a_rotated_page_follows_the_lines(degrees):
    """Turned as a whole, even upside down, pieces still join in reading order along their line."""
    truth = [turned(polygon, degrees) for polygon in LINES]
    ocr = [
        (turned(rect(310, 100, 500, 120), degrees), "percent."),
        (turned(rect(100, 100, 300, 120), degrees), "Revenue"),
        (turned(rect(100, 130, 500, 150), degrees), "second"),
    ]
    assert match_lines(truth, ocr) == (["Revenue percent.", "second"], [])


# -------------------------------------------------------------------------------------------- scores


def test_score_lines_counts_and_rates():
    truth = [TRUTH, "Sales fell."]
    score = score_lines(truth, ["Revenuegrew by 42 percent.", ""], ["xx"], with_words=True)
    assert (score.chars, score.char_errors, score.junk_chars) == (23 + 10, 10 + 2, 2)
    assert (score.lines, score.lines_exact, score.words, score.words_read, score.merged) == (2, 0, 7, 3, 1)
    score.images, score.seconds = 2, 4.0
    rates = score.rates()
    assert rates["cer_pct"] == pytest.approx(100 * 12 / 33)
    assert rates["word_acc_pct"] == pytest.approx(100 * 3 / 7)
    assert rates["merged_per_1k_words"] == pytest.approx(1000 / 7)
    assert (rates["line_recall_pct"], rates["images_per_s"]) == (0, 0.5)


def test_scores_add_up_and_chinese_scores_no_words():
    total = Score()
    total += score_lines(["光学字符"], ["光学字符"], [], with_words=False)
    total += score_lines(["识别"], ["识"], [], with_words=False)
    assert (total.chars, total.char_errors, total.lines, total.lines_exact, total.words) == (6, 1, 2, 1, 0)
    assert total.rates()["word_acc_pct"] is None and total.rates()["images_per_s"] is None


# --------------------------------------------------------------------------------- truth from a PDF


@pytest.fixture(scope="module")
def pdf_page():
    """A 400 × 300 pt page: English lines (a hyphenated word, a page number on the first line's baseline,
    drawn separately) and Chinese lines in reportlab's built-in CID font."""
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=(400, 300))
    page.setFont("Helvetica", 12)
    page.drawString(40, 250, TRUTH)
    page.drawString(40, 232, "The installer is config-")
    page.drawString(40, 214, "ured by hand.")
    page.drawString(300, 250, "3")
    page.setFont("STSong-Light", 14)
    page.drawString(40, 150, "光学字符识别服务")
    page.drawString(40, 130, "今天天气很好 OCR 文字")
    page.save()
    document = pdfium.PdfDocument(buffer.getvalue())
    yield document[0]
    document.close()


def test_truth_lines_from_the_text_layer(pdf_page):
    lines = groundtruth.truth_lines(pdf_page)
    assert [line.text for line in lines] == [
        TRUTH,
        "The installer is config-",  # as printed: pdfium marks the hyphen, it is written "-"
        "ured by hand.",
        "3",
        "光学字符识别服务",
        "今天天气很好OCR文字",
    ]
    left, bottom, right, top = lines[0].box
    assert left == pytest.approx(40, abs=1) and bottom < 250 < top and top - bottom < 20 and 180 < right < 220
    assert lines[3].box[0] == pytest.approx(300, abs=1)
    assert all(a.box[1] > b.box[3] - 5 for a, b in zip(lines[:3], lines[1:3]))  # top to bottom


def test_rendered_truth_boxes_cover_their_ink(pdf_page):
    lines = groundtruth.truth_lines(pdf_page)
    page = groundtruth.render(pdf_page, lines, dpi=144)  # 2 px per point
    assert page.image.shape == (600, 800, 3) and page.texts[0] == TRUTH
    x0, y0 = page.polygons[0][0]
    x1, y1 = page.polygons[0][2]
    assert (x0, y0) == pytest.approx((80, 2 * (300 - lines[0].box[3])), abs=1)
    ink = page.image[int(y0) : int(y1), int(x0) : int(x1)].min(axis=2) < 128
    assert ink.mean() > 0.05
    outside = page.image.copy()
    for polygon in page.polygons:
        (a, b), (c, d) = polygon[0].astype(int), polygon[2].astype(int)
        outside[b : d + 1, a : c + 1] = 255
    assert outside.min() > 128  # every dark pixel lies in some line's box


def test_rotation_carries_the_truth_boxes_along():
    image = np.full((400, 600, 3), 255, np.uint8)
    image[100:120, 100:500] = 0
    page = groundtruth.PageImage(image, ["line"], [rect(100, 100, 500, 120)], dpi=150)
    rotated = groundtruth.degrade(page, "rotate")
    assert rotated.image.shape[0] > 400 and rotated.image.shape[1] > 600
    mask = np.zeros(rotated.image.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, rotated.polygons[0].round().astype(np.int32), 1)
    dark = rotated.image.min(axis=2) < 128
    assert dark[mask == 1].mean() > 0.9 and dark[mask == 0].sum() < 0.05 * dark.sum()
    with_ignored = groundtruth.degrade(groundtruth.PageImage(image, [], [], ignored=[rect(100, 100, 500, 120)]), "rotate")
    assert np.allclose(with_ignored.ignored[0], rotated.polygons[0])  # unreadable spots turn along
    top_edge = rotated.polygons[0][1] - rotated.polygons[0][0]
    assert np.degrees(np.arctan2(-top_edge[1], top_edge[0])) == pytest.approx(groundtruth.ROTATION_DEGREES, abs=0.01)


@pytest.mark.parametrize("condition", groundtruth.CONDITIONS)
def test_every_condition_keeps_size_and_text(condition):
    page = groundtruth.PageImage(np.full((50, 80, 3), 255, np.uint8), ["a"], [rect(10, 10, 70, 40)], dpi=100)
    degraded = groundtruth.degrade(page, condition, seed=1)
    assert degraded.texts == ["a"] and degraded.image.dtype == np.uint8
    assert degraded.image.shape == page.image.shape or condition == "rotate"


# -------------------------------------------------------------------------------------------- crops


def test_crop_texts_are_real_words_and_lines_of_the_truth():
    english = [TRUTH, "Linux, Windows and macOS are supported.", "Too short."]
    words = "Revenue grew by percent Linux Windows and macOS are supported Too short".split()  # 42: no letter
    assert sorted(groundtruth.crop_texts(english, "en", 100, "word")) == sorted(words)
    assert sorted(groundtruth.crop_texts(english, "en", 100, "line")) == sorted(english[:2])
    assert len(groundtruth.crop_texts(english, "en", 3, "word", seed=1)) == 3
    chinese = ["光学字符识别服务今天天气很好,你好", "短句。"]
    phrases = ["光学字符", "识别服务", "今天天气", "很好", "你好", "短句"]  # runs of ideographs, 4 at most
    assert sorted(groundtruth.crop_texts(chinese, "zh", 100, "word")) == sorted(phrases)
    assert groundtruth.crop_texts(chinese, "zh", 100, "line") == [chinese[0]]


def test_render_crop_pads_the_ink_and_refuses_missing_glyphs():
    font = testimages.find_cjk_font()
    crop = groundtruth.render_crop("光学 OCR", font, size=32)
    dark_rows = np.nonzero((crop.min(axis=2) < 128).any(axis=1))[0]
    assert crop.shape[0] >= 32 and dark_rows.min() >= 6 and dark_rows.max() <= crop.shape[0] - 7
    assert groundtruth.render_crop("\U00013000", font) is None  # an Egyptian hieroglyph: no CJK font has it


# ------------------------------------------------------------------------------------------- photos


def test_the_photo_transcriptions_are_well_formed():
    entries = json.loads(groundtruth.PHOTO_TRUTH.read_text(encoding="utf-8"))["images"]
    assert len(entries) == 6 and len({entry["file"] for entry in entries}) == 6
    for entry in entries:
        assert re.fullmatch("[0-9a-f]{64}", entry["sha256"]) and entry["language"] in ("en", "zh")
        for line in entry["lines"]:
            assert line["text"] is None or normalize(line["text"]) == normalize(normalize(line["text"])) != ""
            assert np.asarray(line["box"], np.float32).shape == (4, 2)


def test_load_photos_keeps_those_unchanged_since_their_transcription(tmp_path):
    image = np.full((40, 120, 3), 255, np.uint8)
    data = cv2.imencode(".png", image)[1].tobytes()
    (tmp_path / "same.png").write_bytes(data)
    (tmp_path / "changed.png").write_bytes(data + b"\0")
    lines = [
        {"text": "Ｈｅｌｌｏ  世界", "box": [[1, 1], [60, 1], [60, 20], [1, 20]]},
        {"text": None, "box": [[70, 1], [90, 1], [90, 20], [70, 20]]},
    ]
    entry = {"sha256": hashlib.sha256(data).hexdigest(), "language": "zh", "lines": lines}
    truth = tmp_path / "truth.json"
    names = ("same.png", "changed.png", "missing.png")
    truth.write_text(json.dumps({"images": [{**entry, "file": name} for name in names]}))
    photos, notes = groundtruth.load_photos(tmp_path, truth)
    assert [photo.name for photo in photos] == ["same.png"] and photos[0].language == "zh"
    assert notes == ["changed.png: changed since it was transcribed", "missing.png: missing"]
    page = photos[0].page
    assert page.texts == ["Hello世界"] and page.image.shape == (40, 120, 3)
    assert [polygon.tolist() for polygon in page.ignored] == [lines[1]["box"]] and len(page.polygons) == 1


# ------------------------------------------------------------------------------------------- script


def test_a_config_is_a_model_set_then_overrides():
    assert accuracy.parse_config("v5-mobile, det_limit_side_len=736,det_limit_type=min") == {
        "model_set": "v5-mobile",
        "det_limit_side_len": "736",
        "det_limit_type": "min",
    }
    with pytest.raises(ValueError, match="key=value"):
        accuracy.parse_config("mobile,drop_score")

"""Measure OCR accuracy against ground truth, per configuration: a markdown report and raw JSON.

    .venv/bin/python scripts/accuracy.py --configs mobile --quick      # 20 s on 2 cores: 2 pages, 3 conditions
    .venv/bin/python scripts/accuracy.py --configs mobile v5-mobile "v5-mobile,det_limit_side_len=736,det_limit_type=min" \\
        --out bench-results/accuracy.md --json bench-results/accuracy.json   # 10 min or so per config

A configuration is a model set, then OcrConfig overrides as key=value, comma-separated; each runs
in-process (``ocrhub.pipeline``) on --engine with --threads. Needs rapidfuzz
(``pip install --no-deps -r requirements-bench.txt``), ``apt-get`` and ``dpkg-deb`` (the PDFs come
from pinned Debian packages, downloaded once into --cache), and for the crops the fonts of
``apt-get install fonts-dejavu-core fonts-liberation fonts-wqy-microhei``.

Corpora (``harness.groundtruth`` says where each comes from and how its truth is built):

- pages: English and Chinese pages of real typeset PDFs, whose text layer is the truth, rendered at
  each --dpis and under each --conditions (clean, JPEG quality 50, Gaussian blur, turned 1.5°,
  Gaussian noise), read by ``pipeline.system``. Each OCR box counts for the truth line that covers
  most of it; a line's pieces are joined in reading order; text on no truth line counts as inserted.
- crops: words and lines of that truth text rendered in serif, sans and mono fonts (a CJK font for
  Chinese) with a little padding, read by ``pipeline.recognizer`` (recognition alone).
- photos: the real photos of --photos (default ../shared/images, when present), as they are, against
  the lines transcribed by hand in ``harness/data/shared_photos.json``; matched as pages are.

Measures (``harness.textmetrics``; truth and OCR text both NFKC-normalized): CER (edit distance over
truth characters, whitespace left out), word accuracy (English: truth words found as tokens of their
line's OCR text, so glued words are wrong), merged words per 1000 truth words (OCR tokens that are
2+ consecutive truth words without the space), line recall (truth lines read exactly, spaces
included), images/s (wall time of the OCR calls alone; each configuration warmed up first, and the
configurations take turns on every image so that they share the machine's drift).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import pypdfium2 as pdfium

from harness import groundtruth, report, textmetrics
from harness.textmetrics import Score, normalize
from ocrhub import pipeline
from ocrhub.config import ENGINES, OcrConfig, load_config
from ocrhub.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SHARED_PHOTOS = ROOT.parent / "shared" / "images"
DEFAULT_CACHE = Path.home() / ".cache" / "ocrhub-accuracy"
DPIS = (100, 150, 200, 300)
QUICK = {"dpis": (150,), "conditions": ("clean", "jpeg", "rotate"), "crops": 10}  # and one page per language
CROPS = 40  # words and as many lines per language and font
WORD_LANGUAGES = {"en"}  # written with spaces between words: word accuracy and merged words apply
STAGES = ("det", "cls", "rec")


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------- configurations


def parse_config(spec: str) -> dict:
    """ "v5-mobile,det_limit_side_len=736" → {"model_set": "v5-mobile", "det_limit_side_len": "736"}."""
    model_set, *overrides = [item.strip() for item in spec.split(",") if item.strip()]
    init_args = {"model_set": model_set}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{spec!r}: expected key=value after the model set, got {item!r}")
        init_args[key.strip()] = value.strip()
    return init_args


def load_configs(specs: list[str], engine: str, threads: int, data_dir: Path) -> dict[str, OcrConfig | str]:
    """Each --configs spec → its loaded and warmed-up config, or why it is skipped."""
    configs = {}
    for spec in specs:
        init_args = {**parse_config(spec), "engine": engine, "cpu_threads": threads, "data_dir": str(data_dir)}
        try:
            config = load_config(init_args, environ={})
            pipeline.preload(config, pipeline.used_stages(config, STAGES))
            pipeline.warm_up(config, STAGES)
            configs[spec] = config
        except (ConfigError, ValueError) as err:
            configs[spec] = str(err)
            note(f"{spec}: skipped ({err})")
    return configs


def resolved(config: OcrConfig) -> dict:
    """What tells configurations apart: the model set, engine and threads, and every setting off its default."""
    defaults, keep, where = OcrConfig(), ("model_set", "engine", "cpu_threads"), ("data_dir", "inference_dir")
    return {
        key: value
        for key, value in asdict(config).items()
        if key in keep or (key not in where and value != getattr(defaults, key))
    }


# -------------------------------------------------------------------------------------------- pages


@dataclass
class TruthPage:
    source: groundtruth.PdfSource
    number: int  # 1-based
    page: pdfium.PdfPage
    lines: list[groundtruth.TruthLine]

    @property
    def name(self) -> str:
        return f"{self.source.key} p{self.number}"


def load_pages(pdfs: dict[str, Path], quick: bool) -> list[TruthPage]:
    """Every chosen page with its truth lines (with --quick, the first page of each language)."""
    pages = []
    for source in groundtruth.SOURCES:
        document = pdfium.PdfDocument(pdfs[source.key])
        for number in source.pages:
            if not (quick and any(page.source.language == source.language for page in pages)):
                page = document[number - 1]
                pages.append(TruthPage(source, number, page, groundtruth.truth_lines(page)))
    return pages


def run_pages(pages: list[TruthPage], configs: dict[str, OcrConfig], dpis, conditions) -> list[dict]:
    """Every page at every dpi under every condition, read by every config in turn: one record each."""
    records = []
    for page in pages:
        for dpi in dpis:
            rendered = groundtruth.render(page.page, page.lines, dpi)
            for condition in conditions:
                image = groundtruth.degrade(rendered, condition, seed=groundtruth.seed_of(page.name, dpi, condition))
                where = {"source": page.source.key, "page": page.number, "language": page.source.language}
                for spec, config in configs.items():
                    read = read_page(image, config, with_words=page.source.language in WORD_LANGUAGES)
                    records.append({"config": spec, **where, "dpi": dpi, "condition": condition, **read})
            done = records[-len(conditions) * len(configs) :]
            note(f"  {page.name} {dpi} dpi, CER %: " + " ".join(f"{r['score'].rates()['cer_pct']:.1f}" for r in done))
    return records


def read_page(page: groundtruth.PageImage, config: OcrConfig, with_words: bool) -> dict:
    """The page read by ``config``: its score, the truth lines not read exactly (with what was read) and
    the texts that lie on no truth line."""
    started = time.perf_counter()
    results = pipeline.system(config)(page.image)
    seconds = time.perf_counter() - started
    read, junk = textmetrics.match_lines(page.polygons, [(box, text) for box, text, _ in results], page.ignored)
    read, junk = [normalize(text) for text in read], [normalize(text) for text in junk]
    score = textmetrics.score_lines(page.texts, read, junk, with_words=with_words)
    score.images, score.seconds = 1, seconds
    misread = [[truth, found] for truth, found in zip(page.texts, read) if truth != found]
    return {"score": score, "misread": misread, "junk": junk}


def run_photos(photos: list[groundtruth.Photo], configs: dict[str, OcrConfig], rounds: int) -> list[dict]:
    """Every transcribed photo, as it is, read by every config in turn, ``rounds`` times: one record each
    (the same texts each round, so the rates stay; the seconds pool, for images/s on real photos)."""
    records = []
    for photo in [photo for _ in range(rounds) for photo in photos]:
        for spec, config in configs.items():
            read = read_page(photo.page, config, with_words=photo.language in WORD_LANGUAGES)
            records.append({"config": spec, "photo": photo.name, "language": photo.language, **read})
    return records


def load_photos(folder: Path | None) -> tuple[list[groundtruth.Photo], list[str]]:
    if folder is None or not folder.is_dir():
        return [], ["no such folder (give --photos DIR)"]
    photos, notes = groundtruth.load_photos(folder)
    for line in notes:
        note(f"photo left out: {line}")
    return photos, notes


# -------------------------------------------------------------------------------------------- crops


def crop_sets(pages: list[TruthPage], count: int) -> list[dict]:
    """Per language, font and kind (word, line): the texts and their rendered crops."""
    sets = []
    for language in dict.fromkeys(page.source.language for page in pages):
        lines = [line.text for page in pages if page.source.language == language for line in page.lines]
        fonts = groundtruth.crop_fonts(language)
        if not fonts:
            note(f"no fonts for {language} crops: apt-get install {groundtruth.FONT_PACKAGES}")
        for font, path in fonts.items():
            for kind in ("word", "line"):
                texts = groundtruth.crop_texts(lines, language, count, kind, seed=groundtruth.seed_of(language, kind))
                crops = [(text, groundtruth.render_crop(text, path)) for text in texts]
                kept = [(text, crop) for text, crop in crops if crop is not None]  # the font has every glyph
                if kept:
                    sets.append({"language": language, "font": font, "font_file": path, "kind": kind, "crops": kept})
    return sets


def run_crops(sets: list[dict], configs: dict[str, OcrConfig]) -> list[dict]:
    """Every crop set read by every config, one recognizer call per set: a record each, scored as lines
    (exact crops are its ``lines_exact``)."""
    records = []
    for crop_set in sets:
        texts = [text for text, _ in crop_set["crops"]]
        images = [image for _, image in crop_set["crops"]]
        for spec, config in configs.items():
            started = time.perf_counter()
            results = pipeline.recognizer(config)(images) if images else []
            seconds = time.perf_counter() - started
            found = [normalize(text) for text, _ in results]
            score = textmetrics.score_lines(texts, found, [], with_words=False)
            score.images, score.seconds = len(images), seconds
            described = {key: crop_set[key] for key in ("language", "font", "font_file", "kind")}
            misread = [[truth, read] for truth, read in zip(texts, found) if truth != read]
            records.append({"config": spec, **described, "score": score, "misread": misread})
    return records


# ------------------------------------------------------------------------------------------- report

PAGE_HEADERS = ["images", "CER %", "word acc %", "merged /1k words", "line recall %", "images/s"]
CROP_HEADERS = ["crops", "CER %", "exact %", "crops/s"]
NOTES = (
    "CER: edits over truth characters, whitespace left out, text on no truth line counted as inserted; "
    "word acc and merged words (per 1000 truth words): English only; line recall: truth lines read exactly. "
    "Chinese crop 'words' are runs of 2-4 ideographs. Definitions: `harness/textmetrics.py`; corpora: `harness/groundtruth.py`."
)


def pooled(records: list[dict], *keys: str) -> dict[tuple, Score]:
    """Scores summed over every record that shares ``keys``, in first-seen order."""
    totals: dict[tuple, Score] = defaultdict(Score)
    for record in records:
        totals[tuple(record[key] for key in keys)] += record["score"]
    return totals


PAGE_RATES = ("cer_pct", "word_acc_pct", "merged_per_1k_words", "line_recall_pct", "images_per_s")
CROP_RATES = ("cer_pct", "line_recall_pct", "images_per_s")  # a crop is one line: read exactly, or not


def rows(totals: dict[tuple, Score], rates: tuple[str, ...]) -> list[list]:
    """One row per pooled score: its key, its image count, then ``rates``."""
    return [[*key, score.images, *(score.rates()[name] for name in rates)] for key, score in totals.items()]


def source_rows() -> list[list]:
    return [
        [s.key, f"{s.package}={s.version}", Path(s.member).name, ", ".join(map(str, s.pages)), s.language, s.note]
        for s in groundtruth.SOURCES
    ]


def photo_section(res: dict) -> list[str]:
    if not res["photos"]:
        return ["## Photos", "", f"none read: {res['settings']['photos']}"]
    by_photo = pooled(res["photos"], "config", "photo", "language")
    table = report.table(["config", "photo", "language", *PAGE_HEADERS], rows(by_photo, PAGE_RATES))
    return ["## Photos (lines transcribed by hand: `harness/data/shared_photos.json`)", "", table]


def render_report(res: dict) -> str:
    settings, pages = res["settings"], res["pages"]
    clean = [record for record in pages if record["condition"] == "clean"]
    by_condition = pooled(pages, "config", "language", "condition")
    by_dpi = pooled(clean, "config", "language", "dpi")
    by_font = pooled(res["crops"], "config", "language", "font", "kind")
    sources = ["document", "package", "file", "pages", "language", "note"]
    sections = [
        [
            "# OCR accuracy against ground truth",
            "",
            f"- command: `{res['command']}` ({res['started']}, {res['wall_s']:.0f} s)",
            f"- git: {res['git']}",
            f"- machine: {report.describe_machine(res['machine'])}",
            f"- pages: {', '.join(settings['pages'])}; dpi: {', '.join(map(str, settings['dpis']))}; "
            f"conditions: {', '.join(settings['conditions'])}; crops: {settings['crops']} per language, font and kind",
            f"- photos: {settings['photos']}",
            *(f"- `{spec}`: skipped ({why})" for spec, why in res["skipped"].items()),
        ],
        [
            "## Pages by condition (all dpis)",
            "",
            report.table(["config", "corpus", "condition", *PAGE_HEADERS], rows(by_condition, PAGE_RATES)),
        ],
        ["## Clean pages by resolution", "", report.table(["config", "corpus", "dpi", *PAGE_HEADERS], rows(by_dpi, PAGE_RATES))],
        [
            "## Word and line crops (recognition only)",
            "",
            report.table(["config", "language", "font", "kind", *CROP_HEADERS], rows(by_font, CROP_RATES))
            if by_font
            else "none (--crops 0, or no fonts installed)",
        ],
        photo_section(res),
        ["## Corpora", "", report.table(sources, source_rows())],
        [NOTES],
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


PARTS = ("pages", "crops", "photos")  # the results' lists of records


def as_json(res: dict) -> dict:
    """The results with their scores as counts and rates."""
    scored = {part: [{**r, "score": {**asdict(r["score"]), **r["score"].rates()}} for r in res[part]] for part in PARTS}
    return {**res, **scored, "sources": [asdict(source) for source in groundtruth.SOURCES]}


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", default=["mobile"], help="model set[,key=value...] each")
    parser.add_argument("--engine", default="openvino", choices=ENGINES)
    parser.add_argument("--threads", type=int, default=2, help="cpu_threads of every config")
    parser.add_argument("--quick", action="store_true", help="one page per language, 150 dpi, clean, JPEG and rotated, 10 crops")
    parser.add_argument("--dpis", type=int, nargs="+", help=f"render resolutions (default {' '.join(map(str, DPIS))})")
    parser.add_argument("--conditions", nargs="+", choices=groundtruth.CONDITIONS, help="default: all")
    parser.add_argument("--crops", type=int, help=f"words and lines per language and font (default {CROPS})")
    parser.add_argument(
        "--photos",
        type=Path,
        default=SHARED_PHOTOS if SHARED_PHOTOS.is_dir() else None,
        help="the folder of the transcribed photos (default: ../shared/images when present)",
    )
    parser.add_argument("--photo-rounds", type=int, default=1, help="passes over the photos (their images/s)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the PDFs are kept (default %(default)s)")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args(argv)
    args.dpis = args.dpis or (QUICK["dpis"] if args.quick else DPIS)
    args.conditions = args.conditions or (QUICK["conditions"] if args.quick else groundtruth.CONDITIONS)
    args.crops = args.crops if args.crops is not None else (QUICK["crops"] if args.quick else CROPS)
    return args


def measure(args, pages: list[TruthPage]) -> dict:
    """Every part run by every configuration that loads: the results' configs and records."""
    with tempfile.TemporaryDirectory(prefix="ocrhub-accuracy-") as tmp:
        configs = load_configs(args.configs, args.engine, args.threads, Path(tmp))
        ready = {spec: config for spec, config in configs.items() if isinstance(config, OcrConfig)}
        if not ready:
            raise SystemExit("no configuration could be loaded")
        note(f"{len(pages)} pages × {len(args.dpis)} dpi × {len(args.conditions)} conditions, configs: {', '.join(ready)}")
        records = run_pages(pages, ready, args.dpis, args.conditions)
        crops = run_crops(crop_sets(pages, args.crops), ready)
        photos, photo_notes = load_photos(args.photos)
        photo_records = run_photos(photos, ready, args.photo_rounds)
    return {
        "configs": {spec: resolved(config) for spec, config in ready.items()},
        "skipped": {spec: why for spec, why in configs.items() if isinstance(why, str)},
        "photos_read": f"{args.photos}: " + ("; ".join(photo_notes) or f"{len(photos)} transcribed photos"),
        "pages": records,
        "crops": crops,
        "photos": photo_records,
    }


def write(path: Path | None, text: str) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, started_at = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M")
    try:
        pdfs = groundtruth.fetch_pdfs(groundtruth.SOURCES, args.cache)
    except RuntimeError as err:
        raise SystemExit(f"cannot get the PDFs: {err}") from None
    pages = load_pages(pdfs, args.quick)
    measured = measure(args, pages)
    res = {
        "command": shlex.join(["scripts/accuracy.py", *(sys.argv[1:] if argv is None else argv)]),
        "git": report.git_revision(ROOT),
        "machine": report.machine(),
        "started": started_at,
        "wall_s": time.perf_counter() - started,
        "settings": {
            "pages": [page.name for page in pages],
            "dpis": list(args.dpis),
            "conditions": list(args.conditions),
            "crops": args.crops,
            "photos": measured.pop("photos_read"),
        },
        **measured,
    }
    text = render_report(res)
    print(text)
    write(args.out, text)
    if args.json:
        write(args.json, json.dumps(as_json(res), indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

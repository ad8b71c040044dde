"""Benchmark ocrhub in one run on real photos and rendered pages: a markdown report and raw JSON.

    .venv/bin/python scripts/bench.py --out bench.md --json bench.json                  # everything
    .venv/bin/python scripts/bench.py --rapidocr-python /tmp/rapidocr-venv/bin/python --chart bench.png
    .venv/bin/python scripts/bench.py --limit 2 --rounds 1 --requests-per-level 4       # a smoke run

Images: the photos of --images DIR (default ../shared/images next to the repo, when present), then
the pages rendered by harness.testimages; --limit N keeps the first N. Parts (--only, default all):

- inproc: ``OcrService("ocr_system")`` per engine (OCR_ENGINE) × threads, each in a fresh process:
  seconds per pass over the images, median and range of --rounds passes after a warm-up pass; the
  machine limit: one 1-thread process per core at once (images/s, the sum of their rates); texts
  compared line by line with the onednn engine's (PaddleOCR's own path).
- http: ``POST /predict/ocr_system``, one image per request, --requests-per-level requests at each
  concurrency, against ``ocrhub-serve`` with its defaults, then stock ``hub serving start`` with
  OCR_ENGINE=onednn; cold start (launch to every worker ready) and peak RSS of each server.
- rapidocr: RapidOCR at its defaults, when --rapidocr-python has ``rapidocr_onnxruntime``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from harness import inproc, photos, rapidocr, report
from harness.hub import install_modules
from harness.load import image_body, run_load
from harness.servers import Server
from harness.stats import RssSampler
from ocrhub.config import ENGINES, OcrConfig

ROOT = Path(__file__).resolve().parent.parent
SHARED_PHOTOS = ROOT.parent / "shared" / "images"
PARTS = ("inproc", "http", "rapidocr")
REFERENCE = "onednn"  # PaddleOCR's own engine: the texts every other run is compared with
SERVERS = {
    "ours": "ocrhub-serve (defaults)",
    "ours-bf16": "ocrhub-serve (OCR_ENGINE=openvino-bf16)",
    "stock": "stock hub serving (onednn)",
}


def note(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def progress(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, leave=False, disable=not sys.stderr.isatty())


def numbers(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


# --------------------------------------------------------------------------------------- measurements


def bench_inproc(args, paths: list[Path], workdir: Path) -> dict:
    """Every engine × threads in its own process, then each engine's machine limit."""
    cores, runs, limits = len(os.sched_getaffinity(0)), [], {}
    with progress(len(args.engines) * (len(args.threads) + 1), "in-process") as bar:
        for engine in args.engines:
            for threads in args.threads:
                bar.set_postfix_str(f"{engine}, {threads} thread(s)")
                run = inproc.measure(paths, engine=engine, threads=threads, rounds=args.rounds, data_dir=workdir)
                runs.append({**run, "engine": engine, "threads": threads})
                bar.update()
                if "skipped" in run:  # the config rejects the engine, whatever the threads
                    note(f"in-process {engine}: skipped ({run['skipped']})")
                    break
            else:
                bar.set_postfix_str(f"{engine}, {cores} × 1 thread at once")
                limit = machine_limit(args, paths, workdir, engine, cores)
                limits |= {engine: limit} if limit else {}
            bar.update()
    return {"runs": runs, "limits": limits}


def machine_limit(args, paths: list[Path], workdir: Path, engine: str, processes: int) -> dict | None:
    """One 1-thread process per core, timed over the same span: the sum of their images/s."""
    runs = inproc.measure_parallel(processes, paths, engine=engine, threads=1, rounds=args.rounds, data_dir=workdir / "parallel")
    if not all("passes" in run for run in runs):
        note(f"machine limit of {engine}: skipped ({[run.get('skipped') for run in runs]})")
        return None
    return {"processes": processes, "images_per_s": sum(map(inproc.images_per_s, runs)), "runs": runs}


def bench_http(args, images: list[photos.Photo], workdir: Path) -> dict:
    """Each server in turn: started cold, warmed on every image, then loaded at each concurrency."""
    (workdir / "ours").mkdir()
    (workdir / "ours-bf16").mkdir()
    starts = {
        "ours": (lambda: Server.production(workdir / "ours"), workdir / "ours" / "server.log"),
        "ours-bf16": (
            lambda: Server.production(workdir / "ours-bf16", OCR_ENGINE="openvino-bf16"),
            workdir / "ours-bf16" / "server.log",
        ),
        "stock": (
            lambda: Server.hub_serving(install_modules(workdir / "hub_home"), workdir, OCR_ENGINE=REFERENCE),
            workdir / "hub_serving.log",
        ),
    }
    results = {}
    for key, (start, log) in starts.items():
        note(f"starting {SERVERS[key]}...")
        try:
            with start() as server:
                results[key] = bench_server(server, SERVERS[key], images, args)
        except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as err:
            tail = " | ".join(log.read_text(errors="replace").splitlines()[-5:]) if log.exists() else ""
            results[key] = {"skipped": f"{err} {tail}".strip()}
            note(f"{SERVERS[key]}: skipped ({results[key]['skipped']})")
    return results


def bench_server(server: Server, label: str, images: list[photos.Photo], args) -> dict:
    bodies = [image_body(photo) for photo in images]
    workers = max(1, len(server.workers()))  # hub serving: one process

    def body(index: int) -> bytes:
        return bodies[index % len(bodies)]

    # warm-up, untimed: each image about once per worker, which builds its per-shape engine state
    run_load(server.url, "ocr_system", body, concurrency=workers, max_requests=len(bodies) * workers)
    levels, texts = [], [None] * len(images)
    with RssSampler(server.process.pid, interval=0.5) as rss:
        for concurrency in args.concurrency:
            with progress(args.requests_per_level, f"{label}, c={concurrency}") as bar:
                load = run_load(
                    server.url,
                    "ocr_system",
                    body,
                    concurrency=concurrency,
                    max_requests=args.requests_per_level,
                    on_answer=lambda _: bar.update(),
                )
            levels.append({**load.summary(), "latencies": load.latencies})
            for index, lines in load.texts().items():
                texts[index % len(images)] = texts[index % len(images)] or lines
    return {
        "ready_s": server.ready_seconds,
        "workers": workers,
        "levels": levels,
        "texts": texts,
        "peak_rss_mb": rss.peak_mb,
    }


# ------------------------------------------------------------------------------------------- analysis


def run_label(run: dict) -> str:
    return f"{run['engine']}, {run['threads']} thread(s)"


def measured_runs(res: dict) -> list[dict]:
    return [run for run in res.get("inproc", {}).get("runs", []) if "passes" in run]


def rate(res: dict, server: str, concurrency: int) -> float | None:
    levels = res.get("http", {}).get(server, {}).get("levels", [])
    return next((lv["images_per_s"] for lv in levels if lv["concurrency"] == concurrency), None)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def ratios(res: dict) -> list[tuple[str, float | None]]:
    ours_c1_s = ratio(1, rate(res, "ours", 1))
    rows = [(f"ocrhub-serve ÷ stock, images/s at c={c}", ratio(rate(res, "ours", c), rate(res, "stock", c))) for c in (1, 4)]
    rows.append(("ocrhub-serve bf16 ÷ stock, images/s at c=4", ratio(rate(res, "ours-bf16", 4), rate(res, "stock", 4))))
    engine = OcrConfig.engine  # the server's default
    best = max((run for run in measured_runs(res) if run["engine"] == engine), key=inproc.images_per_s, default=None)
    best_s = ratio(1, inproc.images_per_s(best)) if best else None
    if best:
        label = f"ocrhub-serve c=1 s/image ÷ best in-process s/image ({run_label(best)})"
        rows.append((label, ratio(ours_c1_s, best_s)))
    limit = res.get("inproc", {}).get("limits", {}).get(engine)
    if limit:
        rows.append(
            (
                f"ocrhub-serve c=4 images/s ÷ machine limit ({engine}, {limit['processes']} × 1 thread)",
                ratio(rate(res, "ours", 4), limit["images_per_s"]),
            )
        )
    if "passes" in res.get("rapidocr", {}):
        rapid_s = ratio(1, inproc.images_per_s(res["rapidocr"]))
        rows += [
            ("RapidOCR s/image ÷ ocrhub-serve c=1 s/image", ratio(rapid_s, ours_c1_s)),
            ("RapidOCR s/image ÷ best in-process s/image", ratio(rapid_s, best_s)),
        ]
    return rows


def text_sources(res: dict) -> dict[str, list]:
    """Texts per image of every run, by label, the reference first (in-process onednn, else stock)."""
    sources = {f"in-process {run_label(run)}": run["texts"] for run in measured_runs(res)}
    sources |= {SERVERS[key]: got["texts"] for key, got in res.get("http", {}).items() if "texts" in got}
    if "texts" in res.get("rapidocr", {}):
        sources[res["rapidocr"]["engine"]] = res["rapidocr"]["texts"]
    reference = next((label for label in sources if REFERENCE in label), None)
    return {reference: sources.pop(reference), **sources} if reference else {}


# --------------------------------------------------------------------------------------------- report

TIMING = ["s/pass: median (min–max)", "s/image", "load s", "peak RSS MB"]


def render(res: dict) -> str:
    after = " ".join(map(str, res["load_after"]))
    header = [
        "# ocrhub benchmark",
        "",
        f"- command: `{res['command']}` ({res['started']})",
        f"- git: {res['git']}",
        f"- machine: {report.describe_machine(res['machine'])}; after: {after}",
        f"- images: {len(res['images'])} ({', '.join(res['images'])})",
        f"- in-process: {res['rounds']} timed pass(es) after a warm-up pass",
    ]
    sections = [inproc_section(res), texts_section(res), http_section(res)]
    rows = [[label, value] for label, value in ratios(res) if value is not None]
    sections.append(["## Ratios", "", report.table(["ratio", "value"], rows)] if rows else [])
    return "\n\n".join("\n".join(lines) for lines in [header, *sections] if lines) + "\n"


def timing_row(label: str, run: dict) -> list:
    if "passes" not in run:
        return [label, f"skipped: {run['skipped']}", None, None, None]
    per_pass = inproc.seconds_per_pass(run)
    return [
        label,
        f"{per_pass['median']:.2f} ({per_pass['min']:.2f}–{per_pass['max']:.2f})",
        per_pass["median"] / len(run["passes"][0]),
        run["load_s"],
        run["peak_rss_mb"],
    ]


def inproc_section(res: dict) -> list[str]:
    rows = [timing_row(run_label(run), run) for run in res.get("inproc", {}).get("runs", [])]
    if "rapidocr" in res:
        rows.append(timing_row(res["rapidocr"].get("engine", "RapidOCR") + ", its defaults", res["rapidocr"]))
    limits = [
        [engine, limit["processes"], limit["images_per_s"]] for engine, limit in res.get("inproc", {}).get("limits", {}).items()
    ]
    return (
        []
        if not rows
        else [
            "## In-process `ocr_system`, one process per row",
            "",
            report.table(["engine", *TIMING], rows),
            "",
            "Machine limit: one 1-thread process per core at once (the sum of their images/s).",
            "",
            report.table(["engine", "processes", "images/s"], limits),
        ]
    )


def texts_section(res: dict) -> list[str]:
    sources = text_sources(res)
    if len(sources) < 2:
        return []
    reference, *others = sources
    rows = []
    for label in others:
        identical, total, same_images = report.line_agreement(sources[label], sources[reference])
        rows.append([label, f"{identical}/{total}", f"{same_images}/{len(res['images'])}"])
    return [
        f"## Texts, line by line, against {reference}",
        "",
        report.table(["run", "lines identical", "images identical"], rows),
    ]


def http_section(res: dict) -> list[str]:
    http = res.get("http", {})
    rows = [
        [SERVERS[key], lv["concurrency"], lv["images_per_s"], ms(lv["p50_s"]), ms(lv["p95_s"]), lv["errors"]]
        for key, server in http.items()
        for lv in server.get("levels", [])
    ]
    starts = [
        [SERVERS[key], s.get("ready_s"), s.get("workers"), s.get("peak_rss_mb"), s.get("skipped", "")] for key, s in http.items()
    ]
    return (
        []
        if not http
        else [
            "## HTTP `/predict/ocr_system`, one image per request",
            "",
            report.table(["server", "clients", "images/s", "p50 ms", "p95 ms", "errors"], rows),
            "",
            report.table(["server", "cold start: launch → workers ready, s", "workers", "peak RSS MB", "skipped"], starts),
        ]
    )


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def chart(res: dict, path: Path) -> None:
    series = {
        SERVERS[key]: [(lv["concurrency"], lv["images_per_s"]) for lv in server.get("levels", [])]
        for key, server in res.get("http", {}).items()
    }
    limit = res.get("inproc", {}).get("limits", {}).get(OcrConfig.engine)
    lines = {f"machine limit ({OcrConfig.engine})": limit["images_per_s"]} if limit else {}
    if not report.throughput_chart(series, lines, "/predict/ocr_system", path):
        note("chart skipped: matplotlib is missing (pip install --no-deps -r requirements-bench.txt)")


# ----------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--images",
        type=Path,
        default=SHARED_PHOTOS if SHARED_PHOTOS.is_dir() else None,
        help="a folder of photos (default: ../shared/images when present)",
    )
    parser.add_argument("--limit", type=int, help="only the first N images")
    parser.add_argument("--only", default=",".join(PARTS), help="parts to run, of: " + ",".join(PARTS))
    parser.add_argument("--engines", default=",".join(ENGINES), help="OCR_ENGINE values (inproc)")
    parser.add_argument("--threads", default="1,2", help="OCR_CPU_THREADS values (inproc)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes after the warm-up pass")
    parser.add_argument("--concurrency", default="1,2,4,8", help="HTTP client counts")
    parser.add_argument("--requests-per-level", type=int, default=40, help="HTTP requests per concurrency")
    parser.add_argument("--rapidocr-python", help="a Python with rapidocr_onnxruntime (its own venv)")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--chart", "--png", type=Path, help="images/s by concurrency, PNG (needs matplotlib)")
    args = parser.parse_args(argv)
    args.only = set(args.only.split(","))
    if not args.only <= set(PARTS) or args.rounds < 1 or args.requests_per_level < 1:
        parser.error(f"--only takes {','.join(PARTS)}; --rounds and --requests-per-level must be positive")
    args.engines = args.engines.split(",")
    args.threads, args.concurrency = numbers(args.threads), numbers(args.concurrency)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    images = photos.photos_and_pages(args.images)
    images = images[: args.limit] if args.limit else images
    res = {
        "command": shlex.join(["scripts/bench.py", *(sys.argv[1:] if argv is None else argv)]),
        "git": report.git_revision(ROOT),
        "machine": report.machine(),
        "images": [p.name for p in images],
        "rounds": args.rounds,
        "started": time.strftime("%Y-%m-%d %H:%M"),
    }
    with tempfile.TemporaryDirectory(prefix="ocrhub-bench-") as tmp:
        workdir = Path(tmp)
        paths = photos.save(images, workdir / "images")  # the files every measuring process reads
        if "inproc" in args.only:
            res["inproc"] = bench_inproc(args, paths, workdir / "inproc")
        if "rapidocr" in args.only and args.rapidocr_python:
            res["rapidocr"] = (
                rapidocr.measure(args.rapidocr_python, paths, args.rounds)
                if rapidocr.available(args.rapidocr_python)
                else {"skipped": f"no rapidocr_onnxruntime in {args.rapidocr_python}"}
            )
        if "http" in args.only:
            res["http"] = bench_http(args, images, workdir)
    res["load_after"] = [round(value, 2) for value in os.getloadavg()]
    text = render(res)
    print(text)
    for path in (args.out, args.json, args.chart):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({**res, "ratios": dict(ratios(res))}, indent=1, ensure_ascii=False))
    if args.chart:
        chart(res, args.chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())

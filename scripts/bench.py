"""Benchmark ocrhub in one run on real photos and rendered pages: a markdown report and raw JSON.

    .venv/bin/python scripts/bench.py --out bench.md --json bench.json                  # everything
    .venv/bin/python scripts/bench.py --rapidocr-python /tmp/rapidocr-venv/bin/python --chart bench.png
    .venv/bin/python scripts/bench.py --limit 2 --rounds 1 --requests-per-level 4 --http-rounds 1  # a smoke run

Images: the photos of --images DIR (default ../shared/images next to the repo, when present), then
the pages rendered by harness.testimages; --limit N keeps the first N. Parts (--only, default all):

- inproc: ``OcrService("ocr_system")`` per engine (OCR_ENGINE) × threads, each in a fresh process:
  seconds per pass over the images, median and range of --rounds passes after a warm-up pass; texts
  compared line by line with the onednn engine's (PaddleOCR's own path). An engine written
  ENGINE@DIR runs from another checkout (``git worktree add DIR REV``), to time a revision beside this.
- http: ``POST /predict/ocr_system``, one image per request, against ``ocrhub-serve`` with its
  defaults (shared 1-thread workers and the solo worker), with 1 worker × every core, with 2 workers ×
  1 thread, with bf16, and stock ``hub serving start`` with
  OCR_ENGINE=onednn, all started (cold start and peak RSS of each) and then measured in
  --http-rounds rounds: in each, the in-process references (the default engine with every core,
  and the machine limit: one pinned 1-thread process per core at once), then each server in turn at
  each concurrency, --requests-per-level requests. Ratios pair numbers of the same round.
- rapidocr: RapidOCR at its defaults, when --rapidocr-python has ``rapidocr_onnxruntime``.
- documents: ``POST /ocr`` on a scan made of the images, answered as JSON, as a searchable PDF, whole
  and streamed page by page, --rounds rounds (``harness.docbench``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from harness import benchreport, docbench, inproc, photos, rapidocr, report
from harness.benchreport import REFERENCE, SERVERS
from harness.hub import install_modules
from harness.load import image_body, run_load
from harness.servers import Server
from harness.stats import RssSampler, percentile, summary
from ocrhub.config import ENGINES, OcrConfig

ROOT = Path(__file__).resolve().parent.parent
SHARED_PHOTOS = ROOT.parent / "shared" / "images"
PARTS = ("inproc", "http", "rapidocr", "documents")


def note(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def progress(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, leave=False, disable=not sys.stderr.isatty())


def numbers(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


# --------------------------------------------------------------------------------------- measurements


def bench_inproc(args, paths: list[Path], workdir: Path) -> dict:
    """Every engine × threads, each in its own process."""
    runs = []
    with progress(len(args.engines) * len(args.threads), "in-process") as bar:
        for engine in args.engines:
            for threads in args.threads:
                bar.set_postfix_str(f"{engine}, {threads} thread(s)")
                name, _, checkout = engine.partition("@")
                run = inproc.measure(
                    paths, engine=name, threads=threads, rounds=args.rounds, data_dir=workdir, checkout=checkout or None
                )
                runs.append({**run, "engine": engine, "threads": threads})
                bar.update()
                if "skipped" in run:  # the config rejects the engine, whatever the threads
                    note(f"in-process {engine}: skipped ({run['skipped']})")
                    break
    return {"runs": runs}


def bench_http(args, images: list[photos.Photo], paths: list[Path], workdir: Path) -> dict:
    """Every server started one at a time (each cold start timed alone) and warmed; then rounds in which
    each server in turn takes each concurrency, beside the in-process references, so that each ratio
    pairs numbers measured a few minutes apart at most, on a machine whose speed drifts."""
    bodies = [image_body(photo) for photo in images]
    body = lambda i: bodies[i % len(bodies)]
    results, running, samplers = {}, {}, {}
    with contextlib.ExitStack() as stack:
        for key, (start, log) in server_starts(workdir).items():
            note(f"starting {SERVERS[key]}...")
            try:
                server = stack.enter_context(start())
            except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as err:
                tail = " | ".join(log.read_text(errors="replace").splitlines()[-5:]) if log.exists() else ""
                results[key] = {"skipped": f"{err} {tail}".strip()}
                note(f"{SERVERS[key]}: skipped ({results[key]['skipped']})")
                continue
            workers = max(1, len(server.workers()))  # hub serving: one process
            # warm-up, untimed: each image about once per worker, which builds its per-shape engine state:
            # one client (a solo worker's requests), then as many as workers (the shared workers')
            for clients in sorted({1, workers}):
                run_load(server.url, "ocr_system", body, concurrency=clients, max_requests=len(bodies) * clients)
            running[key], samplers[key] = server, stack.enter_context(RssSampler(server.process.pid, interval=1.0))
            results[key] = {
                "serving_s": server.serving_seconds,
                "ready_s": server.ready_seconds,
                "workers": workers,
                "runs": {c: [] for c in args.concurrency},
            }
        references = stack.enter_context(References(paths, workdir / "references"))
        texts = {key: [None] * len(images) for key in running}
        with progress(args.http_rounds * len(args.concurrency) * len(running), "HTTP, in rounds") as bar:
            for round_index in range(args.http_rounds):
                references.measure(passes=max(1, args.requests_per_level // len(images)))
                keys = list(running)[round_index % len(running) :] + list(running)[: round_index % len(running)]
                for concurrency in args.concurrency:
                    for key in keys:
                        bar.set_postfix_str(f"round {round_index + 1}, {key}, c={concurrency}")
                        load = run_load(
                            running[key].url,
                            "ocr_system",
                            body,
                            concurrency=concurrency,
                            max_requests=args.requests_per_level,
                        )
                        results[key]["runs"][concurrency].append({**load.summary(), "latencies": load.latencies})
                        for index, lines in load.texts().items():
                            texts[key][index % len(images)] = texts[key][index % len(images)] or lines
                        bar.update()
    for key in running:
        runs = results[key].pop("runs")
        results[key] |= {"levels": [level(c, runs[c]) for c in args.concurrency], "texts": texts[key]}
        results[key]["peak_rss_mb"] = samplers[key].peak_mb
    return {"servers": results, "references": references.results()}


def server_starts(workdir: Path) -> dict:
    """Each server's start and its log, in the order they are started and measured."""

    def ours(key: str, **env: str):
        (workdir / key).mkdir()
        return (lambda: Server.production(workdir / key, **env)), workdir / key / "server.log"

    return {
        "ours": ours("ours"),
        "ours-1x2": ours("ours-1x2", OCR_WORKERS="1"),
        "ours-2x1": ours("ours-2x1", OCR_WORKERS="2", OCR_CPU_THREADS="1"),
        "ours-bf16": ours("ours-bf16", OCR_ENGINE="openvino-bf16"),
        "stock": (
            lambda: Server.hub_serving(install_modules(workdir / "hub_home"), workdir, OCR_ENGINE=REFERENCE),
            workdir / "hub_serving.log",
        ),
    }


def level(concurrency: int, runs: list[dict]) -> dict:
    """One concurrency over the rounds: images/s per round (median and range), latencies pooled."""
    latencies = [seconds for run in runs for seconds in run["latencies"]]
    return {
        "concurrency": concurrency,
        "rates": [run["images_per_s"] for run in runs],
        "images_per_s": summary([run["images_per_s"] for run in runs])["median"],
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "errors": sum(run["errors"] for run in runs),
        "error_kinds": [run["error_kinds"] for run in runs if run["error_kinds"]],
    }


class References:
    """The in-process pipeline on the default engine with every core (its fastest configuration here),
    and the machine limit: one 1-thread process per core at once, each pinned to its core. Kept loaded
    and timed once per round, between the servers' turns."""

    def __init__(self, paths: list[Path], workdir: Path):
        cores, engine = sorted(os.sched_getaffinity(0)), OcrConfig.engine
        self.engine, self.cores = engine, len(cores)
        self.best = inproc.Session(paths, engine=engine, threads=len(cores), data_dir=workdir / "best")
        self.limit = [
            inproc.Session(paths, engine=engine, threads=1, data_dir=workdir / f"limit-{core}", cores=[core]) for core in cores
        ]
        self.best_rates, self.limit_rates = [], []

    def measure(self, passes: int) -> None:
        if self.best.ready:
            self.best_rates.append(inproc.pooled_images_per_s([self.best.one_pass() for _ in range(passes)]))
        if all(session.ready for session in self.limit):
            timed = {session: [] for session in self.limit}
            for _ in range(passes):
                for session in self.limit:
                    session.start_pass()
                for session, seconds in timed.items():
                    seconds.append(session.end_pass())
            self.limit_rates.append(sum(map(inproc.pooled_images_per_s, timed.values())))

    def results(self) -> dict:
        return {
            "engine": self.engine,
            "best": {
                "threads": self.cores,
                "rates": self.best_rates,
                "skipped": self.best.result and self.best.result.get("skipped"),
            },
            "limit": {"processes": self.cores, "rates": self.limit_rates},
        }

    def __enter__(self) -> References:
        return self

    def __exit__(self, *exc) -> None:
        for session in [self.best, *self.limit]:
            session.__exit__(*exc)


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
    parser.add_argument("--requests-per-level", type=int, default=40, help="HTTP requests per concurrency and round")
    parser.add_argument("--http-rounds", type=int, default=3, help="rounds over every server and concurrency")
    parser.add_argument("--rapidocr-python", help="a Python with rapidocr_onnxruntime (its own venv)")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--chart", "--png", type=Path, help="images/s by concurrency, PNG (needs matplotlib)")
    args = parser.parse_args(argv)
    args.only = set(args.only.split(","))
    if not args.only <= set(PARTS) or min(args.rounds, args.requests_per_level, args.http_rounds) < 1:
        parser.error(f"--only takes {','.join(PARTS)}; --rounds, --requests-per-level and --http-rounds must be positive")
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
        "http_rounds": args.http_rounds,
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
            res["http"] = bench_http(args, images, paths, workdir)
        if "documents" in args.only:
            res["documents"] = docbench.measure(images, args.rounds, workdir / "documents")
    res["load_after"] = [round(value, 2) for value in os.getloadavg()]
    text = benchreport.render(res)
    print(text)
    for path in (args.out, args.json, args.chart):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({**res, "ratios": dict(benchreport.ratios(res))}, indent=1, ensure_ascii=False))
    if args.chart and not benchreport.chart(res, args.chart):
        note("chart skipped: matplotlib is missing (pip install --no-deps -r requirements-bench.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

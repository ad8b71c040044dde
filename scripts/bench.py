"""Benchmark ocrhub in one run on real photos and rendered pages: a markdown report and raw JSON.

    .venv/bin/python scripts/bench.py --out bench.md --json bench.json                  # everything
    .venv/bin/python scripts/bench.py --rapidocr-python /tmp/rapidocr-venv/bin/python --chart bench.png
    .venv/bin/python scripts/bench.py --limit 2 --rounds 1 --requests-per-level 4 --http-rounds 1  # a smoke run

Images: the photos of --images DIR (default ../shared/images next to the repo, when present), then
the pages rendered by harness.testimages; --limit N keeps the first N. Parts (--only, default all):

- inproc: ``OcrService("ocr_system")`` per engine (OCR_ENGINE) × threads, each in a fresh process:
  seconds per pass over the images, median and range of --rounds passes after a warm-up pass; texts
  compared line by line with the onednn engine's (PaddleOCR's own path).
- http: ``POST /predict/ocr_system``, one image per request, against ``ocrhub-serve`` with its
  defaults (shared 1-thread workers and the solo worker), with 1 worker × every core, with 2 workers ×
  1 thread, with bf16, and stock ``hub serving start`` with
  OCR_ENGINE=onednn, all started (cold start and peak RSS of each) and then measured in
  --http-rounds rounds: in each, the in-process references (the default engine with every core,
  and the machine limit: one pinned 1-thread process per core at once), then each server in turn at
  each concurrency, --requests-per-level requests. Ratios pair numbers of the same round.
- rapidocr: RapidOCR at its defaults, when --rapidocr-python has ``rapidocr_onnxruntime``.
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

from harness import inproc, photos, rapidocr, report
from harness.hub import install_modules
from harness.load import image_body, run_load
from harness.servers import Server
from harness.stats import RssSampler, percentile, summary
from ocrhub.config import ENGINES, OcrConfig

ROOT = Path(__file__).resolve().parent.parent
SHARED_PHOTOS = ROOT.parent / "shared" / "images"
PARTS = ("inproc", "http", "rapidocr")
REFERENCE = "onednn"  # PaddleOCR's own engine: the texts every other run is compared with
SERVERS = {
    "ours": "ocrhub-serve (defaults)",
    "ours-1x2": "ocrhub-serve (OCR_WORKERS=1)",
    "ours-2x1": "ocrhub-serve (OCR_WORKERS=2 OCR_CPU_THREADS=1)",
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
    """Every engine × threads, each in its own process."""
    runs = []
    with progress(len(args.engines) * len(args.threads), "in-process") as bar:
        for engine in args.engines:
            for threads in args.threads:
                bar.set_postfix_str(f"{engine}, {threads} thread(s)")
                run = inproc.measure(paths, engine=engine, threads=threads, rounds=args.rounds, data_dir=workdir)
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


# ------------------------------------------------------------------------------------------- analysis


def run_label(run: dict) -> str:
    return f"{run['engine']}, {run['threads']} thread(s)"


def measured_runs(res: dict) -> list[dict]:
    return [run for run in res.get("inproc", {}).get("runs", []) if "passes" in run]


def levels(res: dict, server: str) -> list[dict]:
    return res.get("http", {}).get("servers", {}).get(server, {}).get("levels", [])


def rates(res: dict, server: str, concurrency: int) -> list[float]:
    """The server's images/s at ``concurrency``, one per round."""
    return next((lv["rates"] for lv in levels(res, server) if lv["concurrency"] == concurrency), [])


def paired(numerators: list[float], denominators: list[float]) -> dict:
    """Ratios of numbers measured in the same round: median and range."""
    return summary([n / d for n, d in zip(numerators, denominators) if n and d])


def ratios(res: dict) -> list[tuple[str, dict]]:
    refs = res.get("http", {}).get("references", {})
    best, limit = refs.get("best", {}).get("rates", []), refs.get("limit", {}).get("rates", [])
    rows = [(f"ocrhub-serve ÷ stock, images/s at c={c}", paired(rates(res, "ours", c), rates(res, "stock", c))) for c in (1, 4)]
    others = {"ours-bf16": "bf16", "ours-1x2": "1 worker × 2 threads", "ours-2x1": "2 × 1 thread"}
    rows += [
        (f"ocrhub-serve {name} ÷ stock, images/s at c=4", paired(rates(res, key, 4), rates(res, "stock", 4)))
        for key, name in others.items()
    ]
    if best:
        label = f"ocrhub-serve c=1 s/image ÷ in-process s/image ({refs['engine']}, {refs['best']['threads']} threads)"
        rows.append((label, paired(best, rates(res, "ours", 1))))
    if limit:
        machine = f"machine limit ({refs['engine']}, {refs['limit']['processes']} × 1 thread)"
        rows += [
            (f"ocrhub-serve c=4 images/s ÷ {machine}", paired(rates(res, "ours", 4), limit)),
            (f"ocrhub-serve 2 × 1 thread c=4 images/s ÷ {machine}", paired(rates(res, "ours-2x1", 4), limit)),
        ]
    if "passes" in res.get("rapidocr", {}):
        rapid = [inproc.images_per_s(res["rapidocr"])]
        rows.append(
            ("RapidOCR s/image ÷ ocrhub-serve c=1 s/image", paired(rates(res, "ours", 1), rapid * len(rates(res, "ours", 1))))
        )
        if best:
            rows.append(("RapidOCR s/image ÷ in-process s/image (the same)", paired(best, rapid * len(best))))
    return [(label, value) for label, value in rows if value]


def text_sources(res: dict) -> dict[str, list]:
    """Texts per image of every run, by label, the reference first (in-process onednn, else stock)."""
    sources = {f"in-process {run_label(run)}": run["texts"] for run in measured_runs(res)}
    sources |= {SERVERS[key]: got["texts"] for key, got in res.get("http", {}).get("servers", {}).items() if "texts" in got}
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
    rows = [[label, f"{value['median']:.2f} ({value['min']:.2f}–{value['max']:.2f})", value["n"]] for label, value in ratios(res)]
    sections.append(["## Ratios", "", report.table(["ratio", "median (min–max)", "rounds"], rows)] if rows else [])
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
    return [] if not rows else ["## In-process `ocr_system`, one process per row", "", report.table(["engine", *TIMING], rows)]


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
    if "http" not in res:
        return []
    http, refs = res["http"]["servers"], res["http"]["references"]
    rows = [
        [SERVERS[key], lv["concurrency"], spread(lv["rates"]), ms(lv["p50_s"]), ms(lv["p95_s"]), lv["errors"]]
        for key, server in http.items()
        for lv in server.get("levels", [])
    ]
    references = [
        [f"in-process, {refs['engine']}, {refs['best']['threads']} threads", spread(refs["best"]["rates"])],
        [f"machine limit, {refs['engine']}, {refs['limit']['processes']} × 1 thread", spread(refs["limit"]["rates"])],
    ]
    starts = [
        [SERVERS[key], s.get("serving_s"), s.get("ready_s"), s.get("workers"), s.get("peak_rss_mb"), s.get("skipped", "")]
        for key, s in http.items()
    ]
    return [
        f"## HTTP `/predict/ocr_system`, one image per request, {res['http_rounds']} rounds",
        "",
        "Each round: the in-process references, then every server in turn at each concurrency (the order",
        "rotating by round); images/s is the median over rounds (min–max), latencies pooled.",
        "",
        report.table(["server", "clients", "images/s", "p50 ms", "p95 ms", "errors"], rows),
        "",
        report.table(["in-process reference", "images/s"], references),
        "",
        report.table(
            [
                "server",
                "cold start: launch → serving (first 200), s",
                "→ every worker ready, s",
                "workers",
                "peak RSS MB",
                "skipped",
            ],
            starts,
        ),
    ]


def spread(values: list[float]) -> str:
    if not values:
        return "–"
    stats = summary(values)
    return f"{stats['median']:.2f} ({stats['min']:.2f}–{stats['max']:.2f})"


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def chart(res: dict, path: Path) -> None:
    series = {
        SERVERS[key]: [(lv["concurrency"], lv["images_per_s"]) for lv in server.get("levels", [])]
        for key, server in res.get("http", {}).get("servers", {}).items()
    }
    limit = res.get("http", {}).get("references", {}).get("limit", {}).get("rates")
    lines = {f"machine limit ({OcrConfig.engine})": summary(limit)["median"]} if limit else {}
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

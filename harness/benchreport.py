"""The benchmark's analysis and report, from the results ``scripts/bench.py`` gathers: ratios of
numbers measured in the same round, texts compared line by line with the reference engine's,
markdown tables and a chart.

    from harness import benchreport
    benchreport.render(results)            # the markdown report
    benchreport.ratios(results)            # [(label, {"median", "min", "max", "n"}), ...]
"""

from __future__ import annotations

from pathlib import Path

from harness import docbench, inproc, report
from harness.stats import span, summary
from ocrhub.config import OcrConfig

REFERENCE = "onednn"  # PaddleOCR's own engine: the texts every other run is compared with
SERVERS = {
    "ours": "ocrhub-serve (defaults)",
    "ours-1x2": "ocrhub-serve (OCR_WORKERS=1)",
    "ours-2x1": "ocrhub-serve (OCR_WORKERS=2 OCR_CPU_THREADS=1)",
    "ours-bf16": "ocrhub-serve (OCR_ENGINE=openvino-bf16)",
    "stock": "stock hub serving (onednn)",
}


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
    sections = [inproc_section(res), texts_section(res), http_section(res), docbench.section(res.get("documents"))]
    rows = [[label, span(value), value["n"]] for label, value in ratios(res)]
    sections.append(["## Ratios", "", report.table(["ratio", "median (min–max)", "rounds"], rows)] if rows else [])
    return "\n\n".join("\n".join(lines) for lines in [header, *sections] if lines) + "\n"


def timing_row(label: str, run: dict) -> list:
    if "passes" not in run:
        return [label, f"skipped: {run['skipped']}", None, None, None]
    per_pass = inproc.seconds_per_pass(run)
    return [
        label,
        span(per_pass),
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
    return span(summary(values))


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def chart(res: dict, path: Path) -> bool:
    series = {
        SERVERS[key]: [(lv["concurrency"], lv["images_per_s"]) for lv in server.get("levels", [])]
        for key, server in res.get("http", {}).get("servers", {}).items()
    }
    limit = res.get("http", {}).get("references", {}).get("limit", {}).get("rates")
    lines = {f"machine limit ({OcrConfig.engine})": summary(limit)["median"]} if limit else {}
    return report.throughput_chart(series, lines, "/predict/ocr_system", path)

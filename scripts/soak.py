"""Soak an ocrhub server on loopback: N clients, one image per request, for T seconds or --requests;
throughput, latency percentiles, errors by kind, and the RSS of the server's process tree over time.

    .venv/bin/python scripts/soak.py --url http://127.0.0.1:9000 --clients 8 --seconds 300
    .venv/bin/python scripts/soak.py --start --env OCR_ENGINE=openvino --distinct-sizes 1000 \\
        --requests 1000 --seconds 3600 --csv rss.csv --json soak.json

Images: the photos of --images DIR (default ../shared/images next to the repo, when present), then
the pages rendered by harness.testimages, in turn. --distinct-sizes N sends N variants of them
instead, resized and cropped so that no two share a size (request i sends variant i mod N): with
--requests N every request brings a new input shape, so the RSS shows whether memory plateaus.
--start runs ``ocrhub-serve`` on a free port with a fresh data dir and the --env settings; with
--url the server's RSS is sampled when its process is found (listening on the port) or given (--pid).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import requests
from tqdm import tqdm

from harness import photos, report, rss
from harness.load import image_body, run_load
from harness.servers import Server, metric, worker_pids
from harness.stats import RssSampler, tree_rss_mb

SHARED_PHOTOS = Path(__file__).resolve().parent.parent.parent / "shared" / "images"


def check_loopback(url: str) -> str:
    """The URL without a trailing slash, or ValueError when its host is not this machine's loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"--url must be http(s)://host:port, got {url!r}")
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing {url!r}: the soak only runs against loopback (127.0.0.1, localhost, ::1)")
    return url.rstrip("/")


def listening_pid(url: str) -> int | None:
    """The process listening on the URL's port (the server's front), when this user may see it."""
    port = urlsplit(url).port or 80
    try:
        pids = {
            c.pid
            for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
        }
    except psutil.AccessDenied:
        return None
    return min(pids, default=None)  # a parent before its children


REASONS = ("died", "recycled")  # ocr_worker_restarts_total's labels


def run_soak(
    url: str,
    body,
    *,
    clients: int,
    seconds: float | None = None,
    max_requests: int | None = None,
    pid: int | None = None,
    sample_every: float = 5.0,
    warmup: float = 0.2,
    on_answer=None,
) -> dict:
    """``clients`` threads post ``body(i)`` to /predict/ocr_system; the measurements, JSON-able."""
    url = check_loopback(url)
    workers_before, first = (worker_pids(pid), tree_rss_mb(pid)) if pid else ([], {})
    restarts_before = {reason: metric(url, f'ocr_worker_restarts_total{{reason="{reason}"}}') for reason in REASONS}
    with RssSampler(pid, sample_every) if pid else contextlib.nullcontext() as sampler:
        load = run_load(
            url,
            "ocr_system",
            body,
            concurrency=clients,
            max_requests=max_requests,
            seconds=seconds,
            on_answer=on_answer,
        )
    samples = rss.records(sampler.samples, first) if pid else []
    return {
        "url": url,
        "clients": clients,
        **load.summary(),
        "requests_per_s": len(load.answers) / load.wall_s,
        "pid": pid,
        "workers_before": workers_before,
        "workers_after": worker_pids(pid) if pid else [],
        "worker_restarts": {
            reason: metric(url, f'ocr_worker_restarts_total{{reason="{reason}"}}') - before
            for reason, before in restarts_before.items()
        },
        "rss_samples": samples,
        "rss": rss.growth(samples, warmup * load.wall_s) if samples else None,
    }


def format_report(result: dict) -> str:
    latency = [f"{q} {result[f'{q}_s']:.2f} s" for q in ("p50", "p95", "p99", "max") if result[f"{q}_s"]]
    lines = [
        f"soak: {result['clients']} clients, {result['wall_s']:.0f} s, POST {result['url']}/predict/...",
        f"requests    {result['requests']} ({result.get('images', 'one image each')})",
        f"throughput  {result['images_per_s']:.2f} images/s, {result['requests_per_s']:.2f} requests/s",
        f"latency     {', '.join(latency)}",
        f"errors      {result['errors']}",
    ]
    lines += [f"  {count} × {kind}" for kind, count in result["error_kinds"].items()]
    if result["pid"]:
        restarts = ", ".join(f"{count:.0f} {reason}" for reason, count in result["worker_restarts"].items())
        lines.append(f"workers     {result['workers_before']} -> {result['workers_after']} (replaced: {restarts})")
    if not result["rss"]:
        return "\n".join([*lines, "RSS: not sampled (server process not found; give --pid)"])
    growth = result["rss"]
    summary = (
        f"RSS growth after warm-up (t ≥ {growth['warmup_t']:.0f} s): "
        f"{growth['growth_after_warmup_mb']:+.1f} MB ({growth['after_warmup_mb']:.1f} -> "
        f"{growth['last_mb']:.1f} MB; max {growth['max_mb']:.1f} MB)"
    )
    return "\n".join([*lines, "", *rss.table(result["rss_samples"]), summary])


def start_server(data_dir: Path, env: dict[str, str]) -> Server:
    """``ocrhub-serve`` on a free port, every worker ready; SystemExit with its log when it fails."""
    try:
        server = Server.production(data_dir, **env)
    except (RuntimeError, TimeoutError) as err:
        raise SystemExit(f"ocrhub-serve: {err}\n{(data_dir / 'server.log').read_text()[-3000:]}") from None
    print(f"started {server.url} in {server.ready_seconds:.1f} s (pid {server.process.pid})", file=sys.stderr)
    return server


def check_ready(url: str) -> None:
    with contextlib.suppress(requests.RequestException):
        if requests.get(url + "/health", timeout=10).status_code == 200:
            return
    raise SystemExit(f"{url}/health does not answer 200: is the server up and ready?")


def image_source(args) -> tuple:
    """``body(i)`` for request i, and what it sends."""
    images = photos.photos_and_pages(args.images)
    if args.distinct_sizes:
        variants = photos.DistinctSizes(images, args.distinct_sizes)
        return (
            lambda i: image_body(variants[i % len(variants)]),
            f"{len(variants)} distinct sizes of {len(images)} images, in turn",
        )
    bodies = [image_body(image) for image in images]
    return (lambda i: bodies[i % len(bodies)]), f"{len(images)} images in turn"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", default="http://127.0.0.1:9000", help="a running server, loopback only")
    where.add_argument("--start", action="store_true", help="start ocrhub-serve on a free port for the soak")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="for --start")
    parser.add_argument("--pid", type=int, help="the server's process (default: the one listening on --url)")
    parser.add_argument("--clients", "--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60, help="stop after this long ...")
    parser.add_argument("--requests", type=int, help="... or after this many requests, whichever comes first")
    parser.add_argument("--images", type=Path, default=SHARED_PHOTOS if SHARED_PHOTOS.is_dir() else None)
    parser.add_argument("--distinct-sizes", type=int, metavar="N", help="send N variants of distinct sizes")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run counted as warm-up")
    parser.add_argument("--csv", type=Path, help="write the RSS samples here")
    parser.add_argument("--json", type=Path, help="write every result here")
    args = parser.parse_args(argv)
    if not all(item.partition("=")[0] and item.partition("=")[1] for item in args.env):
        parser.error("--env takes KEY=VALUE")
    try:
        args.url = check_loopback(args.url)
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    body, sent, machine = *image_source(args), report.machine()

    def soak(url: str, pid: int | None) -> dict:
        with tqdm(total=args.requests, desc="soak", disable=not sys.stderr.isatty()) as bar:
            return run_soak(
                url,
                body,
                clients=args.clients,
                seconds=args.seconds,
                max_requests=args.requests,
                pid=pid,
                sample_every=args.sample_every,
                warmup=args.warmup,
                on_answer=lambda _: bar.update(),
            )

    if args.start:
        env = dict(item.split("=", 1) for item in args.env)
        with (
            tempfile.TemporaryDirectory(prefix="ocrhub-soak-") as data_dir,
            start_server(Path(data_dir), env) as server,
        ):
            result = soak(server.url, server.process.pid)
    else:
        check_ready(args.url)
        result = soak(args.url, args.pid or listening_pid(args.url))
    result |= {"images": sent, "command": " ".join(["scripts/soak.py", *(argv or sys.argv[1:])]), "machine": machine}
    print(format_report(result) + f"\nmachine: {report.describe_machine(result['machine'])}")
    if args.csv:
        rss.write_csv(result["rss_samples"], args.csv)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    # A worker recycled for its memory (OCR_WORKER_MAX_MEMORY_MB) is the bound at work; one that died is a failure.
    return 1 if result["errors"] or result["worker_restarts"]["died"] else 0


if __name__ == "__main__":
    sys.exit(main())

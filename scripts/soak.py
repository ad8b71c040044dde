#!/usr/bin/env python3
"""Load/soak test of a running ocrhub server (loopback only): throughput, latency, errors, memory.

    python scripts/soak.py --url http://127.0.0.1:9001 [--concurrency 8] [--seconds 30]
    python scripts/soak.py --start --concurrency 8 --seconds 300 --images ../shared/images --json soak.json

N client threads (one ``requests.Session`` each) post one image per request to
``/predict/ocr_system`` for T seconds (or until ``--max-requests``), with rendered pages
(``ocrhub.testimages``) resized to widths from 320 to 1600 pixels, so the detector and MKLDNN see many
input shapes, plus the images of ``--images DIR``. It reports throughput (images/s, requests/s),
p50/p95/p99 latency, errors (HTTP code other than 200, envelope status other than "000", or an
exception), and the server's memory: the RSS summed over the server's process tree (the gunicorn
master given by ``--pid``, or the process listening on the URL's port), sampled every few seconds,
with the growth after the warm-up (the first ``--warmup`` fraction of the run).

``--start`` runs ``scripts/serve.py`` on a free port with a fresh ``OCR_DATA_DIR`` (the current
environment, plus ``--env KEY=VALUE``), waits until every worker answers ``/health`` 200, runs the
soak and stops the server: one command for a full soak.

The core is in functions (``render_images``, ``load_images``, ``wait_ready``, ``run_soak``,
``format_report``, ``started_server``) so a test can call them.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ipaddress
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = (320, 480, 640, 800, 960, 1280, 1600)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


# ---------------------------------------------------------------------------------------------- input

@dataclass
class SoakImage:
    name: str
    b64: str
    width: int
    height: int


def check_loopback(url: str) -> str:
    """The URL without a trailing slash, or ValueError when its host is not this machine's loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"--url must be http(s)://host:port, got {url!r}")
    host = parts.hostname or ""
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        raise ValueError(f"refusing {url!r}: the soak only runs against loopback (127.0.0.1, localhost, ::1)")
    return url.rstrip("/")


def _encode(image, ext: str) -> str:
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == ".jpg" else []
    ok, data = cv2.imencode(ext, image, params)
    if not ok:
        raise RuntimeError(f"could not encode an image as {ext}")
    return base64.b64encode(data.tobytes()).decode()


def render_images(widths=WIDTHS, font_path: str | None = None) -> list[SoakImage]:
    """``ocrhub.testimages`` pages resized to each width (PNG and JPEG alternately)."""
    import cv2

    from ocrhub import testimages

    images = []
    for page in testimages.pages(font_path):
        height, width = page.image.shape[:2]
        for index, target in enumerate(widths):
            size = (int(target), max(1, round(height * target / width)))
            interpolation = cv2.INTER_AREA if target < width else cv2.INTER_CUBIC
            resized = cv2.resize(page.image, size, interpolation=interpolation)
            ext = ".png" if index % 2 == 0 else ".jpg"
            images.append(SoakImage(f"{page.name}@{target}{ext}", _encode(resized, ext), size[0], size[1]))
    return images


def load_images(directory: str | Path) -> list[SoakImage]:
    """Every image file of a folder, sent as it is."""
    from PIL import Image

    images = []
    for path in sorted(Path(directory).iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        with Image.open(path) as image:
            width, height = image.size
        images.append(SoakImage(path.name, base64.b64encode(path.read_bytes()).decode(), width, height))
    if not images:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {directory}")
    return images


# --------------------------------------------------------------------------------------------- server

def find_server_pid(url: str) -> int | None:
    """The root of the process tree listening on the URL's port (the gunicorn master), if any."""
    port = urlsplit(url).port or (443 if url.startswith("https") else 80)

    def listens(process: psutil.Process) -> bool:
        with contextlib.suppress(psutil.Error):
            return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                       for c in process.net_connections(kind="tcp"))
        return False

    try:
        # a socket shared by the master and its workers is reported with one of them only
        listening = sorted({c.pid for c in psutil.net_connections(kind="tcp")
                            if c.pid and c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port})
    except psutil.AccessDenied:
        return None
    for pid in listening:
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            while (parent := process.parent()) is not None and listens(parent):
                process = parent
            return process.pid
    return None


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_rss(pid: int) -> dict:
    """RSS (bytes) of the process and its descendants: total and per process."""
    per_pid = {}
    for process in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            per_pid[process.pid] = process.memory_info().rss
    return {"total": sum(per_pid.values()), "per_pid": per_pid}


def worker_pids(pid: int) -> list[int]:
    return sorted(child.pid for child in psutil.Process(pid).children())


def wait_ready(url: str, pid: int | None = None, timeout: float = 300, process: subprocess.Popen | None = None) -> None:
    """Until ``/health`` answers 200 from every worker (each answer names its pid), or one worker
    when the workers are unknown; RuntimeError when the server exits, TimeoutError at ``timeout``."""
    deadline, ready = time.monotonic() + timeout, set()
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it was ready")
        wanted = set(worker_pids(pid)) if pid else set()
        try:
            response = requests.get(url + "/health", timeout=5)
            if response.status_code == 200:
                ready.add(response.json().get("pid"))
                if not wanted or wanted <= ready:
                    return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url}/health did not answer 200 from every worker within {timeout:g} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def started_server(env: dict[str, str] | None = None, timeout: float = 300, log=sys.stderr):
    """``scripts/serve.py`` on a free loopback port with a fresh OCR_DATA_DIR (unless ``env`` names
    one); yields ``(url, process)`` once every worker is ready, stops the server afterwards."""
    data_dir = tempfile.mkdtemp(prefix="ocrhub-soak-")
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS")}
    env = {**inherited, "OCR_DATA_DIR": data_dir, "PORT": str(port), "HOST": "127.0.0.1", **(env or {})}
    env.setdefault("HUB_HOME", str(Path(env["OCR_DATA_DIR"]) / "paddlehub"))
    log_path = Path(tempfile.gettempdir()) / f"ocrhub-soak-{port}.log"  # kept: the data dir is removed
    url = f"http://127.0.0.1:{port}"
    print(f"starting scripts/serve.py on {url} (log {log_path})", file=log, flush=True)
    with log_path.open("w") as out:
        process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve.py"), "--host", "127.0.0.1",
                                    "--port", str(port)], env=env, cwd="/", stdout=out, stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        try:
            wait_ready(url, process.pid, timeout, process)
        except (RuntimeError, TimeoutError):
            print(log_path.read_text()[-3000:], file=log)
            raise
        print(f"server ready in {time.monotonic() - started:.1f} s: master pid {process.pid}, "
              f"workers {worker_pids(process.pid)}", file=log, flush=True)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)  # ours: the fresh data dir (or an unused one)


# ----------------------------------------------------------------------------------------------- soak

class RssSampler(threading.Thread):
    """Samples the server tree's RSS every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float, started: float):
        super().__init__(daemon=True, name="rss-sampler")
        self.pid, self.interval, self.started = pid, interval, started
        self.samples: list[dict] = []
        self.stopped = threading.Event()

    def sample(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            rss = tree_rss(self.pid)
            self.samples.append({"t": round(time.monotonic() - self.started, 2), "rss_bytes": rss["total"],
                                 "processes": len(rss["per_pid"]),
                                 "per_pid": {str(k): v for k, v in sorted(rss["per_pid"].items())}})

    def run(self) -> None:
        while True:
            self.sample()
            if self.stopped.wait(self.interval):
                self.sample()
                return


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def run_soak(url: str, images: list[SoakImage], concurrency: int = 8, seconds: float = 30,
             max_requests: int = 10_000, pid: int | None = None, module: str = "ocr_system",
             batch: int = 1, sample_every: float = 5.0, warmup: float = 0.2, timeout: float = 180,
             seed: int = 0, progress=None) -> dict:
    """Drive ``concurrency`` clients for ``seconds`` (at most ``max_requests`` requests in all) and
    return the measurements as a JSON-able dict (see ``format_report``)."""
    url = check_loopback(url)
    if not images:
        raise ValueError("no images to send")
    if concurrency < 1 or seconds <= 0 or max_requests < 1 or batch < 1:
        raise ValueError("concurrency, seconds, max_requests and batch must be positive")
    lock = threading.Lock()
    issued = 0
    records: list[tuple[float, float, int, bool, str]] = []  # (end time, latency, images, ok, error)
    workers_before = worker_pids(pid) if pid else []
    started = time.monotonic()
    deadline = started + seconds
    sampler = RssSampler(pid, sample_every, started) if pid else None
    if sampler:
        sampler.start()

    def client(number: int) -> None:
        nonlocal issued
        rng = random.Random(seed * 1000 + number)
        with requests.Session() as session:
            while time.monotonic() < deadline:
                with lock:
                    if issued >= max_requests:
                        return
                    issued += 1
                chosen = [rng.choice(images) for _ in range(batch)]
                begin = time.monotonic()
                error = ""
                try:
                    response = session.post(f"{url}/predict/{module}", json={"images": [i.b64 for i in chosen]},
                                            timeout=timeout)
                    try:
                        body = response.json()
                    except ValueError:
                        body = {}
                    status = body.get("status") if isinstance(body, dict) else None
                    if response.status_code != 200 or status != "000":
                        msg = str(body.get("msg", "")) if isinstance(body, dict) else ""
                        error = f"HTTP {response.status_code} status {status}: {msg[:100] or response.text[:100]}"
                except requests.RequestException as err:
                    error = f"{type(err).__name__}: {str(err)[:100]}"
                end = time.monotonic()
                with lock:
                    records.append((end - started, end - begin, batch, not error, error))

    threads = [threading.Thread(target=client, args=(n,), name=f"soak-client-{n}", daemon=True)
               for n in range(concurrency)]
    for thread in threads:
        thread.start()
    next_progress = started + 10
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.2)
        if progress and time.monotonic() >= next_progress:
            next_progress += 10
            with lock:
                done, failed = len(records), sum(1 for r in records if not r[3])
            progress(f"  {time.monotonic() - started:6.0f} s  {done} requests  {failed} errors")
    elapsed = time.monotonic() - started
    if sampler:
        sampler.stopped.set()
        sampler.join()

    latencies = [r[1] for r in records]
    ok = [r for r in records if r[3]]
    errors: dict[str, int] = {}
    for record in records:
        if not record[3]:
            errors[record[4]] = errors.get(record[4], 0) + 1
    result = {
        "url": url, "module": module, "concurrency": concurrency, "seconds": seconds,
        "max_requests": max_requests, "batch": batch, "elapsed_s": round(elapsed, 2),
        "images": {"count": len(images), "widths": sorted({i.width for i in images}),
                   "sizes": sorted({f"{i.width}x{i.height}" for i in images})},
        "requests": len(records), "ok_requests": len(ok), "errors": len(records) - len(ok),
        "error_kinds": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        "requests_per_s": round(len(records) / elapsed, 3),
        "images_per_s": round(sum(r[2] for r in ok) / elapsed, 3),
        "latency_s": {name: (round(value, 3) if value is not None else None)
                      for name, value in (("p50", percentile(latencies, 50)), ("p95", percentile(latencies, 95)),
                                          ("p99", percentile(latencies, 99)),
                                          ("max", max(latencies) if latencies else None),
                                          ("mean", sum(latencies) / len(latencies) if latencies else None))},
        "pid": pid, "workers_before": workers_before,
        "workers_after": worker_pids(pid) if pid and psutil.pid_exists(pid) else [],
    }
    if sampler:
        samples = sampler.samples
        result["rss_samples"] = samples
        if samples:
            warm = next((s for s in samples if s["t"] >= warmup * elapsed), samples[-1])
            result["rss"] = {"warmup_fraction": warmup, "first_mb": _mb(samples[0]["rss_bytes"]),
                             "after_warmup_t": warm["t"], "after_warmup_mb": _mb(warm["rss_bytes"]),
                             "last_mb": _mb(samples[-1]["rss_bytes"]),
                             "max_mb": _mb(max(s["rss_bytes"] for s in samples)),
                             "growth_after_warmup_mb": _mb(samples[-1]["rss_bytes"] - warm["rss_bytes"])}
    return result


def _mb(value: float) -> float:
    return round(value / 2**20, 1)


def format_report(result: dict, max_rows: int = 24) -> str:
    lines = [
        f"soak: {result['concurrency']} clients, {result['elapsed_s']:.0f} s, POST {result['url']}/predict/"
        f"{result['module']} ({result['batch']} image(s) per request; {result['images']['count']} images, "
        f"widths {result['images']['widths'][0]}..{result['images']['widths'][-1]} px)",
        f"requests      {result['requests']} ({result['ok_requests']} ok, {result['errors']} errors)",
        f"throughput    {result['images_per_s']:.2f} images/s, {result['requests_per_s']:.2f} requests/s",
    ]
    lat = result["latency_s"]
    if lat["p50"] is not None:
        lines.append(f"latency       p50 {lat['p50']:.2f} s, p95 {lat['p95']:.2f} s, p99 {lat['p99']:.2f} s, "
                     f"max {lat['max']:.2f} s")
    for kind, count in list(result["error_kinds"].items())[:10]:
        lines.append(f"  error x{count}: {kind}")
    if result.get("workers_before"):
        same = result["workers_before"] == result["workers_after"]
        lines.append(f"workers       {result['workers_before']} -> {result['workers_after']}"
                     f"{'' if same else '  (CHANGED: a worker died or was recycled)'}")
    samples = result.get("rss_samples") or []
    if samples:
        lines += ["", "  t (s) | server RSS (MB) | processes", "  ------|-----------------|----------"]
        step = max(1, math.ceil(len(samples) / max_rows))
        shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
        for sample in shown:
            lines.append(f"  {sample['t']:5.0f} | {_mb(sample['rss_bytes']):15.1f} | {sample['processes']:9d}")
        rss = result["rss"]
        last = samples[-1]["per_pid"]
        lines.append("per process at the end: " + ", ".join(
            f"{'master' if int(pid) == result['pid'] else 'pid'} {pid} {_mb(value):.0f} MB" for pid, value in last.items()))
        lines.append(f"RSS growth after warm-up (first {rss['warmup_fraction']:.0%}, t={rss['after_warmup_t']:.0f} s):"
                     f" {rss['growth_after_warmup_mb']:+.1f} MB ({rss['after_warmup_mb']:.1f} -> {rss['last_mb']:.1f}"
                     f" MB; first sample {rss['first_mb']:.1f} MB, max {rss['max_mb']:.1f} MB)")
    elif result.get("pid") is None:
        lines.append("RSS: not sampled (server process not found; give --pid)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running server, loopback only (default: --start's, or http://127.0.0.1:9000)")
    parser.add_argument("--start", action="store_true", help="start scripts/serve.py on a free port for the soak")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for --start (repeatable), e.g. --env OCR_WORKERS=2")
    parser.add_argument("--pid", type=int, help="the server's master pid (default: the process listening on the port)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--max-requests", type=int, default=10_000, help="hard bound on requests in all")
    parser.add_argument("--images", metavar="DIR", help="also send every image file of DIR, as it is")
    parser.add_argument("--no-rendered", action="store_true", help="send only the images of --images")
    parser.add_argument("--widths", default=",".join(map(str, WIDTHS)), help="widths of the rendered pages")
    parser.add_argument("--module", default="ocr_system")
    parser.add_argument("--batch", type=int, default=1, help="images per request")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run counted as warm-up")
    parser.add_argument("--timeout", type=float, default=180, help="client timeout per request, seconds")
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.start and args.url:
        parser.error("--start and --url exclude each other")
    if args.start and args.pid:
        parser.error("--start and --pid exclude each other")
    if not args.start:
        try:
            args.url = check_loopback(args.url or "http://127.0.0.1:9000")
        except ValueError as err:
            parser.error(str(err))
    if args.concurrency < 1 or args.seconds <= 0 or args.max_requests < 1 or args.batch < 1:
        parser.error("--concurrency, --seconds, --max-requests and --batch must be positive")
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--env takes KEY=VALUE, got {item!r}")
        env[key] = value

    images = [] if args.no_rendered else render_images([int(w) for w in args.widths.split(",") if w.strip()])
    if args.images:
        images += load_images(args.images)
    if not images:
        parser.error("no images: drop --no-rendered or give --images DIR")
    print(f"{len(images)} images, {len({(i.width, i.height) for i in images})} sizes", file=sys.stderr)

    load_at_start = [round(x, 2) for x in os.getloadavg()]

    def soak(url: str, pid: int | None) -> dict:
        print(f"soaking {url} with {args.concurrency} clients for {args.seconds:g} s "
              f"(server pid {pid or 'unknown'})", file=sys.stderr, flush=True)
        return run_soak(url, images, args.concurrency, args.seconds, args.max_requests, pid, args.module,
                        args.batch, args.sample_every, args.warmup, args.timeout,
                        progress=lambda line: print(line, file=sys.stderr, flush=True))

    if args.start:
        with started_server(env) as (url, process):
            result = soak(url, process.pid)
        result["started_env"] = {k: v for k, v in env.items()}
    else:
        pid = args.pid or find_server_pid(args.url)
        if pid and not psutil.pid_exists(pid):
            parser.error(f"--pid {pid}: no such process")
        wait_ready(args.url, pid, timeout=60)
        result = soak(args.url, pid)
    result["command"] = " ".join(["scripts/soak.py", *(argv if argv is not None else sys.argv[1:])])
    result["cpu_count"] = os.cpu_count()
    result["load_average"] = {"start": load_at_start, "end": [round(x, 2) for x in os.getloadavg()]}
    print(format_report(result))
    print(f"machine: {os.cpu_count()} CPUs, load average (1/5/15 min) {load_at_start} at the start, "
          f"{result['load_average']['end']} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

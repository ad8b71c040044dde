"""Servers under test or measurement: started on a free loopback port from /, waited for, stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

BIN = Path(sys.executable).parent
MODULES = ["ocr_system", "ocr_det", "ocr_cls", "ocr_rec"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any OCR_*, HUB_HOME or PORT setting, plus ``extra``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("OCR_", "HUB_HOME", "PORT"))}
    return {**inherited, **extra}


def metric(url: str, name: str, **headers: str) -> float:
    """Sum of a server's Prometheus samples whose line starts with ``name`` (labels included in it)."""
    lines = requests.get(url + "/metrics", headers=headers, timeout=10).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name))


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 180, ok=lambda r: True) -> list[int]:
    """Poll ``url`` until ``ok(response)``; returns the HTTP codes seen on the way."""
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            response = requests.get(url, timeout=2)
            seen.append(response.status_code)
            if ok(response):
                return seen
        except (requests.ConnectionError, requests.Timeout):  # not listening yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def worker_pids(pid: int) -> list[int]:
    """PIDs of the live inference workers of the server ``pid``: its children but multiprocessing's
    resource tracker, and but a worker that has died and is not yet reaped."""
    workers = []
    for child in psutil.Process(pid).children() if psutil.pid_exists(pid) else []:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(child.cmdline()):
                workers.append(child.pid)
        except psutil.Error:  # gone (or turned zombie) since it was listed
            continue
    return sorted(workers)


class Server:
    """A server process on a free port, its output in ``log_path``; a context manager that stops it."""

    def __init__(self, command, env: dict[str, str], log_path: Path, ready_path: str, ok=lambda r: True):
        """``command(port)`` is the command line; ready when ``ok(GET ready_path)``. ``serving_seconds``:
        launch to the first 200 from ``ready_path`` (it can answer); ``ready_seconds``: to ``ok``."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("w") as log:
            self.process = subprocess.Popen(command(self.port), env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        self.serving_seconds: float | None = None

        def ready(response) -> bool:
            if response.status_code == 200 and self.serving_seconds is None:
                self.serving_seconds = time.monotonic() - started
            return ok(response)

        try:
            self.health_codes = wait_for_http(self.url + ready_path, self.process, ok=ready)
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - started

    @classmethod
    def production(cls, data_dir: Path, *, every_worker: bool = True, **env: str) -> Server:
        """``ocrhub-serve`` with its data in ``data_dir``, waited for until every worker is loaded (or,
        without ``every_worker``, until it answers: the first worker is loaded)."""

        def all_ready(response) -> bool:
            workers = response.json()["workers"] if response.status_code == 200 else {}
            return bool(workers) and (workers["ready"] == workers["total"] or not every_worker)

        return cls(
            lambda port: [BIN / "ocrhub-serve", "--host", "127.0.0.1", "--port", str(port)],
            clean_env(OCR_DATA_DIR=str(data_dir), **env),
            data_dir / "server.log",
            "/health",
            all_ready,
        )

    @classmethod
    def hub_serving(cls, hub_home: Path, log_dir: Path, **env: str) -> Server:
        """PaddleHub's own ``hub serving start -m <the four modules>``, modules from ``hub_home``."""
        return cls(
            lambda port: [BIN / "hub", "serving", "start", "-m", *MODULES, "-p", str(port)],
            clean_env(HUB_HOME=str(hub_home), **env),
            log_dir / "hub_serving.log",
            "/",
        )

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text()

    def workers(self) -> list[int]:
        return worker_pids(self.process.pid)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=30)

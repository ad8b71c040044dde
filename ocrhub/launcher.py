"""The production launcher: gunicorn worker processes over ``ocrhub.serving``'s app.

Before any worker starts, the launcher checks the configuration and model folders (one clear line
and exit 1 on a problem, instead of workers rebooting in a loop), points every writable path at
``OCR_DATA_DIR``, and refuses outbound network connections in all its processes. Each worker then
loads its own predictors after the fork (``preload_app`` is off), with ``OCR_CPU_THREADS`` threads
each: by default one worker per core and cores / workers threads per worker (the most images/s;
see BENCHMARKS.md). A worker busy with a request lets idle workers take new connections first, and
when workers × threads exceed the cores, idle OpenMP threads sleep at once (``KMP_BLOCKTIME=0``).

SIGTERM (or SIGINT) stops accepting, lets in-flight requests finish for up to
``OCR_GRACEFUL_TIMEOUT`` seconds and exits; a worker that dies (even by SIGKILL) is replaced.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import time
from pathlib import Path

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from ocrhub import models
from ocrhub.config import ServerConfig, load_config, load_server_config
from ocrhub.errors import ConfigError, exit_on_config_error

STAGES = {"ocr_system": ("det", "cls", "rec"), "ocr_det": ("det",), "ocr_cls": ("cls",), "ocr_rec": ("rec",)}


def check_setup(server: ServerConfig) -> None:
    """Every module known and every model folder present, or a ConfigError naming the fix."""
    config = load_config()
    for name in server.module_names:
        if name not in STAGES:
            raise ConfigError(f"unknown module {name!r} in OCR_MODULES; choose from {', '.join(STAGES)}")
        for stage in STAGES[name]:
            models.check_model_dir(config.model_path(stage), config.model_set)
    if any("rec" in STAGES[name] for name in server.module_names):
        models.check_file(config.model_path("dict"), config.model_set)


def prepare_environment(server: ServerConfig) -> None:
    """Writable paths under OCR_DATA_DIR; threads per worker; inherited by every worker."""
    data = Path(server.data_dir)
    metrics = data / "metrics"
    shutil.rmtree(metrics, ignore_errors=True)  # multiprocess files of an earlier run would add up
    for path in (data / "tmp", data / "home", metrics):
        path.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HUB_HOME", str(data / "paddlehub"))  # PaddleHub's logs and config
    os.environ["HOME"] = str(data / "home")  # what libraries keep under ~ (paddle's ~/.cache)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    os.environ["TMPDIR"] = str(data / "tmp")
    cores = len(os.sched_getaffinity(0))
    os.environ.setdefault("OCR_CPU_THREADS", str(max(1, cores // server.worker_count)))
    if server.worker_count * load_config().threads > cores:
        # More inference threads than cores: Paddle's OpenMP threads spin 200 ms after each operator by
        # default (Intel OpenMP), taking the cores that other workers need; let idle ones sleep at once.
        os.environ.setdefault("KMP_BLOCKTIME", "0")


def _ip(host):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _refuse_outbound(event: str, args) -> None:
    """Audit hook: a connection must stay on this host; a name lookup (DNS) must not be needed."""
    if event == "socket.connect" and isinstance(args[1], tuple):
        address = _ip(args[1][0])
        if address is None or not (address.is_loopback or address.is_unspecified):
            raise PermissionError(f"ocrhub is offline (OCR_OFFLINE): refused a connection to {args[1]}")
    elif event == "socket.getaddrinfo" and args[0] not in (None, "", "localhost") and _ip(args[0]) is None:
        raise PermissionError(f"ocrhub is offline (OCR_OFFLINE): refused to resolve {args[0]}")


def refuse_outbound_connections() -> None:
    """No process of the service can open a connection off this host (PaddleHub reports usage)."""
    sys.addaudithook(_refuse_outbound)


class Launcher(BaseApplication):
    def __init__(self, server: ServerConfig, options: dict):
        self.server, self.options = server, options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from ocrhub.serving import create_app

        return create_app(self.server)


class Worker(ThreadWorker):
    """gunicorn's gthread worker, except that a worker already holding a connection lets idle workers
    take a new one first: every worker wakes up on it and the first to accept gets it, so without
    the head start a busy worker often queues a request behind its running one while another idles."""

    busy_accept_delay = 0.01  # seconds; a connection no idle worker took is then accepted here

    def accept(self, listener):
        if self.nr_conns:
            time.sleep(self.busy_accept_delay)
        super().accept(listener)


def _child_exit(_server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _pre_fork(server, _worker):
    """Count every worker forked after the first generation: a crash, a kill or a recycle."""
    from ocrhub.serving import WORKER_RESTARTS

    server.ocrhub_forks = getattr(server, "ocrhub_forks", 0) + 1
    if server.ocrhub_forks > server.cfg.workers:
        WORKER_RESTARTS.inc()


def _post_worker_init(worker):
    """``import paddle`` installs its own C-level SIGTERM handler (glog's, which aborts): put
    gunicorn's back, so SIGTERM is a graceful stop that lets in-flight requests finish."""
    worker.init_signals()


def gunicorn_options(server: ServerConfig, host: str, port: int) -> dict:
    request_timeout = load_config().request_timeout
    return {
        "bind": f"{host}:{port}",
        "workers": server.worker_count,
        "worker_class": Worker,  # gthread, with idle workers first
        "threads": server.http_threads,
        "worker_connections": server.http_threads,  # a busy worker leaves new connections to idle ones
        "timeout": int(request_timeout + 60) if request_timeout else 0,  # heartbeat, not request, timeout
        "graceful_timeout": int(server.graceful_timeout),
        "keepalive": 0,  # a kept-alive idle connection would hold one of the few slots
        "max_requests": server.max_requests,
        "max_requests_jitter": server.max_requests // 10,
        "worker_tmp_dir": os.environ["TMPDIR"],
        "control_socket_disable": True,
        "accesslog": "-",
        "access_log_format": '%(h)s "%(r)s" %(s)s %(B)s %(M)sms',  # never bodies, so never images
        "errorlog": "-",
        "child_exit": _child_exit,
        "pre_fork": _pre_fork,
        "post_worker_init": _post_worker_init,
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Serve the OCR modules with gunicorn workers.")
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "9000")))
    args = parser.parse_args(argv)
    with exit_on_config_error("serve"):
        server = load_server_config()
        prepare_environment(server)
        check_setup(server)
    if server.offline:
        refuse_outbound_connections()
    Launcher(server, gunicorn_options(server, args.host, args.port)).run()
    return 0

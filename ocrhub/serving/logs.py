"""Logs: one line per event, each carrying the ID of the request it belongs to (``-`` outside one).

Text by default (time, level, logger, ``[request ID]``, message) or, with ``OCR_LOG_FORMAT=json``,
one JSON object per line for log collectors. The front and every worker log through ``log_config``;
a worker sets ``REQUEST_ID`` from the job it runs, so an error it logs names the request.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os

REQUEST_ID = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Gives every log record the request ID of the request being answered (``-`` outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (``OCR_LOG_FORMAT=json``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
            "pid": os.getpid(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def log_config(log_format: str) -> dict:
    """``logging.config.dictConfig`` for uvicorn's and ocrhub's loggers: text or JSON, with request IDs.
    uvicorn's own access log is off: ``security.RequestContext`` writes one that carries the ID."""
    text = {"format": "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s", "datefmt": "%H:%M:%S"}
    handler = {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["request_id"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "ocrhub.serving.logs.RequestIdFilter"}},
        "formatters": {"text": text, "json": {"()": "ocrhub.serving.logs.JsonFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            name: {"handlers": ["default"], "level": "INFO", "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "ocrhub")
        },
    }

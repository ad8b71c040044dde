"""Prometheus metrics of the production server, all kept by the front process (workers report to it)."""

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # *_created samples double the page and no dashboard reads them

REQUESTS = Counter("ocr_requests_total", "Requests by module and envelope status", ["module", "status"])
LATENCY = Histogram(
    "ocr_request_duration_seconds",
    "Time to answer a request, queue wait included",
    ["module"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
)
QUEUE_WAIT = Histogram(
    "ocr_queue_wait_seconds",
    "Time a request waited for an idle worker",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)
IMAGES = Counter("ocr_images_total", "Images processed", ["module"])
PAGES = Counter("ocr_pages_total", "Document pages read by the workers, by where their text came from", ["source"])
DOCUMENTS = Counter(
    "ocr_documents_total",
    "POST /ocr answers, by format (json, text, hocr, pdf) and delivery (whole, stream)",
    ["format", "delivery"],
)
ABANDONED = Counter(
    "ocr_abandoned_requests_total", "Requests whose client went away before the answer; their work stopped", ["module"]
)
REQUEST_BYTES = Counter("ocr_request_bytes_total", "Bytes of request bodies", ["module"])
IN_FLIGHT = Gauge("ocr_in_flight_requests", "Requests being answered (reading, queued or running)")
QUEUE_LENGTH = Gauge("ocr_queue_length", "Requests waiting for an idle worker")
REJECTED = Counter("ocr_rejected_requests_total", "Requests refused before any work, by reason", ["reason"])
DROPPED = Counter("ocr_dropped_connections_total", "Connections closed for being too slow, by phase", ["phase"])
OPEN_CONNECTIONS = Gauge("ocr_open_connections", "Open HTTP connections")
WORKERS_READY = Gauge("ocr_workers_ready", "Inference workers loaded and alive")
JOBS = Counter("ocr_worker_jobs_total", "Jobs taken by workers: the solo worker or the shared ones", ["worker"])
WORKER_RESTARTS = Counter("ocr_worker_restarts_total", "Workers replaced, by reason (died, recycled)", ["reason"])

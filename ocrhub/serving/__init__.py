"""The production server (``ocrhub-serve``): one process faces the network, workers do inference.

- ``launcher``: settings, checks, environment, then uvicorn with ``http``'s guarded protocol;
- ``layout``: how many workers, with how many threads and how much memory each;
- ``app``: the Starlette app — its routes and middleware (``security``: API keys, headers, request IDs);
- ``front``: reads whole requests within their bounds, answers every error in PaddleHub's envelope,
  queues work and stops it when its client goes away; ``/predict``, ``/health`` and the rest;
- ``ocr``: ``POST /ocr`` — documents answered as JSON, text, hOCR or a searchable PDF, or streamed
  page by page as NDJSON;
- ``workers``: the bounded queue and the worker processes pulling from it, supervised;
- ``worker``: the inference process itself (the only part that imports the engine);
- ``metrics``, ``offline``: Prometheus metrics; the guard against outbound connections.
"""

"""The production server (``ocrhub-serve``): one process faces the network, workers do inference.

- ``launcher``: settings, checks, environment, then uvicorn with ``http``'s guarded protocol;
- ``layout``: how many workers, with how many threads and how much memory each;
- ``front``: the Starlette app — reads whole requests within their bounds, answers every error in
  PaddleHub's envelope, queues work;
- ``workers``: the bounded queue and the worker processes pulling from it, supervised;
- ``worker``: the inference process itself (the only part that imports the engine);
- ``metrics``, ``offline``: Prometheus metrics; the guard against outbound connections.
"""

"""ocrhub: PaddleOCR's PP-OCR models as PaddleHub modules and a production HTTP service.

Layers, each importing only those below it (data flows request → front → queue → worker → service
→ pipeline → stages → predictor, and back):

- ``serving``: the production server — async HTTP front, bounded queue, inference worker processes;
- ``modules/`` (outside the package): the PaddleHub modules, each a thin class over one task;
- ``service``: a task's work; ``tasks``: the one table of tasks (module → stages → answer shape);
- ``pipeline``: the stages built once per process and ``System`` (det → crop → cls → rec) over
  ``stages`` (each stage's own pre- and post-processing, numpy and OpenCV only) over ``predictor``
  (model folder + engine → OpenVINO's runtime, or Paddle Inference for oneDNN, plain and GPU);
- ``images`` and ``documents``: request bytes → checked, decoded inputs; ``hocr`` and ``textlayer``:
  documents' pages as hOCR, and as a searchable PDF (the worker writes it, in ``glyphless``'s font);
  ``config``, ``models``,
  ``errors``: parameters, model sets as data, errors that carry their answer; ``fetch``: getting a
  model set onto disk (``scripts/fetch_models.py``; no serving code imports it). Nothing imports ``scripts/``.
"""

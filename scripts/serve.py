#!/usr/bin/env python3
"""Production launcher: the four OCR modules on gunicorn workers (see ocrhub/launcher.py).

    python scripts/serve.py [--port 9000] [--host 0.0.0.0]

Configured by environment (README, Configuration): OCR_WORKERS, OCR_CPU_THREADS, OCR_DATA_DIR,
OCR_MAX_BODY_BYTES, OCR_REQUEST_TIMEOUT, OCR_MODEL_SET, ...
"""

import sys

from ocrhub.launcher import main

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Fetch a model set into inference/ (or OCR_INFERENCE_DIR / --dir), verifying checksums.

python scripts/fetch_models.py                 # the default PP-OCRv4 mobile set, offline
python scripts/fetch_models.py --set server    # PP-OCRv4 server det/rec: needs internet
"""

import argparse
import os
import sys
from pathlib import Path

from ocrhub import models
from ocrhub.errors import ConfigError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default=os.environ.get("OCR_MODEL_SET", "mobile"), choices=sorted(models.MODEL_SETS))
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("OCR_INFERENCE_DIR") or models.DEFAULT_INFERENCE_DIR))
    args = parser.parse_args()
    try:
        models.fetch(args.set, args.dir.resolve())
    except (ConfigError, OSError) as err:
        print(f"fetch_models: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

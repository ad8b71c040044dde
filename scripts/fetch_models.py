#!/usr/bin/env python3
"""Fetch a model set into inference/ (or OCR_INFERENCE_DIR / --dir), verifying checksums.

python scripts/fetch_models.py                    # the default set (OCR_MODEL_SET, else mobile)
python scripts/fetch_models.py --set v5-mobile    # PP-OCRv5 mobile, offline, converted for OpenVINO
python scripts/fetch_models.py --set server       # PP-OCRv4 server det/rec: needs internet
python scripts/fetch_models.py --set v5-server --mirror http://mirror.internal/paddleocr/
"""

import argparse
import os
import sys
from pathlib import Path

from ocrhub import models
from ocrhub.errors import ConfigError
from ocrhub.fetch import fetch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default=os.environ.get("OCR_MODEL_SET") or "mobile", choices=list(models.MODEL_SETS))
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("OCR_INFERENCE_DIR") or models.DEFAULT_INFERENCE_DIR))
    parser.add_argument(
        "--mirror",
        default=os.environ.get("OCR_MODEL_MIRROR", ""),
        help="a folder URL holding the official archives by name, instead of PaddleOCR's addresses (OCR_MODEL_MIRROR)",
    )
    args = parser.parse_args()
    try:
        fetch(args.set, args.dir.resolve(), mirror=args.mirror)
    except (ConfigError, OSError) as err:
        print(f"fetch_models: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

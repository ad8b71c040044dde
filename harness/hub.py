"""Stock PaddleHub: the project's four modules installed with ``hub install``, as a user does.

    from harness.hub import install_modules
    with Server.hub_serving(install_modules(tmp / "hub_home"), tmp) as server: ...

The modules come from this checkout's ``modules/`` folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.servers import BIN, MODULES, clean_env

MODULES_DIR = Path(__file__).resolve().parent.parent / "modules"


def install_modules(hub_home: Path, modules_dir: Path = MODULES_DIR) -> Path:
    """``hub install`` of ocr_system, ocr_det, ocr_cls and ocr_rec into ``hub_home``; returns it."""
    subprocess.run(
        [BIN / "hub", "install", *[modules_dir / name for name in MODULES]],
        cwd="/",
        check=True,
        env=clean_env(HUB_HOME=str(hub_home)),
        capture_output=True,
    )
    return hub_home

import subprocess
import sys

import pytest

from ocrhub import models
from ocrhub.config import load_config
from ocrhub.errors import ConfigError


def test_default_models_are_fetched_and_verified(config):
    for item in models.MODEL_SETS["mobile"].values():
        assert models.verified(config.model_path("det").parent, item), item


def test_fetch_is_idempotent_and_fast(config):
    result = subprocess.run(
        [sys.executable, "scripts/fetch_models.py"],
        capture_output=True,
        text=True,
        cwd=models.DEFAULT_INFERENCE_DIR.parent,
        timeout=60,
    )
    assert result.returncode == 0 and "all files present" in result.stdout


def test_missing_model_folder_is_one_clear_line(tmp_path):
    config = load_config({"det_model_dir": str(tmp_path / "nowhere")}, environ={})
    with pytest.raises(ConfigError) as caught:
        models.check_model_dir(config.model_path("det"), config.model_set)
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "nowhere" / "inference.pdmodel") in message
    assert "scripts/fetch_models.py --set mobile" in message

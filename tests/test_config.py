import pytest

from ocrhub import models, pipeline
from ocrhub.config import FIELDS, OcrConfig, env_table, load_config
from ocrhub.errors import ConfigError

# Our defaults differ from paddleocr's argument defaults only here, on purpose (see ocrhub.config).
DELIBERATE = {"use_gpu": False, "enable_mkldnn": True, "use_angle_cls": True, "cpu_threads": 0}
OURS_ONLY = {
    "model_set",
    "inference_dir",
    "max_images",
    "max_image_pixels",
    "max_request_pixels",
    "request_timeout",
    "max_line_ratio",
    "data_dir",
    "max_pages",
    "engine",
    "det_model_dir",
    "rec_model_dir",
    "cls_model_dir",
    "rec_char_dict_path",
}


def test_defaults_are_paddleocr_defaults():
    theirs = vars(pipeline.ppocr.utility.init_args().parse_args([]))
    for name in FIELDS.keys() - OURS_ONLY:
        ours = getattr(OcrConfig, name)
        assert ours == DELIBERATE.get(name, theirs[name]), name
    assert (
        OcrConfig.det_db_box_thresh,
        OcrConfig.det_db_unclip_ratio,
        OcrConfig.rec_batch_num,
        OcrConfig.drop_score,
        OcrConfig.det_limit_side_len,
        OcrConfig.det_limit_type,
    ) == (0.6, 1.5, 6, 0.5, 960, "max")


def test_model_set_fills_model_folders(tmp_path):
    config = load_config({"model_set": "server", "inference_dir": str(tmp_path)}, environ={})
    assert config.model_path("det") == tmp_path / "ch_PP-OCRv4_det_server_infer"
    assert config.model_path("cls") == tmp_path / "ch_ppocr_mobile_v2.0_cls_infer"


def test_init_args_then_environment_win():
    config = load_config(
        {"det_db_box_thresh": 0.5, "rec_batch_num": 8, "version": "1.0.0"},
        environ={"OCR_REC_BATCH_NUM": "12", "OCR_ENABLE_MKLDNN": "false", "OCR_DET_MODEL_DIR": "/models/det"},
    )
    assert config.det_db_box_thresh == 0.5
    assert config.rec_batch_num == 12
    assert config.enable_mkldnn is False
    assert str(config.model_path("det")) == "/models/det"
    assert config.rec_model_dir == "ch_PP-OCRv4_rec_infer"


@pytest.mark.parametrize(
    "init_args, environ, message",
    [
        ({"model_set": "huge"}, {}, "unknown model set 'huge'"),
        ({"det_db_thres": 0.3}, {}, "unknown init_arg 'det_db_thres'"),
        ({}, {"OCR_CPU_THREADS": "two"}, "OCR_CPU_THREADS: expected int, got 'two'"),
        ({}, {"OCR_USE_GPU": "maybe"}, "OCR_USE_GPU: expected true/false"),
        ({"rec_batch_num": [6]}, {}, r"init_arg rec_batch_num: expected int, got \[6\]"),
        ({"det_limit_type": "both"}, {}, "det_limit_type must be 'max' or 'min'"),
    ],
)
def test_bad_values_are_named(init_args, environ, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(init_args, environ=environ)


def test_every_field_has_an_environment_variable():
    names = [name for name, _ in env_table()]
    assert "OCR_MODEL_SET" in names and "OCR_DET_DB_BOX_THRESH" in names
    assert len(names) == len(set(names)) > len(FIELDS)


def test_every_environment_variable_is_documented():
    readme = (models.DEFAULT_INFERENCE_DIR.parent / "README.md").read_text()
    missing = [name for name, _ in env_table() if name not in readme]
    assert not missing, f"README lacks {missing}"

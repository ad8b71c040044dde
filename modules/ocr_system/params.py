"""ocr_system's parameters: read from the one source, ocrhub.config (defaults, model set, init_args, OCR_* env)."""

from ocrhub.config import OcrConfig, load_config


def read_params(init_args: dict) -> OcrConfig:
    return load_config(init_args)

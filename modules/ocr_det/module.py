"""PaddleHub module ocr_det: text detection (DB): the box of every line."""

from paddlehub.module.module import moduleinfo, serving

from ocrhub.errors import exit_on_config_error
from ocrhub.service import OcrService

from .params import read_params


@moduleinfo(
    name="ocr_det",
    version="1.0.0",
    type="cv/text_recognition",
    author="ocrhub",
    summary="PP-OCR text detection (DB): the box of every line; wire-compatible with PaddleOCR's hubserving.",
)
class OcrDet:
    def __init__(self, **init_args):
        with exit_on_config_error("ocr_det"):
            self.service = OcrService("ocr_det", read_params(init_args))

    def predict(self, images):
        """BGR numpy arrays in, PaddleOCR-shaped results out."""
        return self.service.predict(images)

    @serving
    def serving_method(self, images=None, **ignored):
        """POST /predict/ocr_det {"images": [base64, ...]}; other keys (such as paths) are ignored."""
        return self.service.serve(images)

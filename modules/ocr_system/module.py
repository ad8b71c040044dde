"""PaddleHub module ocr_system: det → cls → rec: text, confidence and box of every line."""

from paddlehub.module.module import moduleinfo, serving

from ocrhub.errors import exit_on_config_error
from ocrhub.service import OcrService

from .params import read_params


@moduleinfo(
    name="ocr_system",
    version="1.0.0",
    type="cv/text_recognition",
    author="ocrhub",
    summary="PP-OCR det → cls → rec: text, confidence and box of every line; wire-compatible with PaddleOCR's hubserving.",
)
class OcrSystem:
    def __init__(self, **init_args):
        with exit_on_config_error("ocr_system"):
            self.service = OcrService("ocr_system", read_params(init_args))

    def predict(self, images):
        """BGR numpy arrays in, PaddleOCR-shaped results out."""
        return self.service.predict(images)

    @serving
    def serving_method(self, images=None, **ignored):
        """POST /predict/ocr_system {"images": [base64, ...]}; other keys (such as paths) are ignored."""
        return self.service.serve(images)

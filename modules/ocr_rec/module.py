"""PaddleHub module ocr_rec: text recognition (CTC) of each line image."""

from paddlehub.module.module import moduleinfo, serving

from ocrhub.errors import exit_on_config_error
from ocrhub.service import OcrService

from .params import read_params


@moduleinfo(
    name="ocr_rec",
    version="1.0.0",
    type="cv/text_recognition",
    author="ocrhub",
    summary="PP-OCR text recognition (CTC) of each line image; wire-compatible with PaddleOCR's hubserving.",
)
class OcrRec:
    def __init__(self, **init_args):
        with exit_on_config_error("ocr_rec"):
            self.service = OcrService("ocr_rec", read_params(init_args))

    def predict(self, images):
        """BGR numpy arrays in, PaddleOCR-shaped results out."""
        return self.service.predict(images)

    @serving
    def serving_method(self, images=None, **ignored):
        """POST /predict/ocr_rec {"images": [base64, ...]}; other keys (such as paths) are ignored."""
        return self.service.serve(images)

import base64
import io

import numpy as np
import pytest
from PIL import Image

from ocrhub.errors import InputError
from ocrhub.images import Limits, decode, read_request, to_bgr


def encoded(image: Image.Image, fmt: str = "PNG", **save) -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return base64.b64encode(buffer.getvalue()).decode()


def test_data_url_and_line_breaks_are_accepted():
    text = encoded(Image.new("RGB", (8, 4), (10, 20, 30)))
    image = decode("data:image/png;base64," + text[:10] + "\n" + text[10:], 0, 0)
    assert image.shape == (4, 8, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [30, 20, 10]  # BGR


@pytest.mark.parametrize(
    "image, save",
    [
        (Image.new("L", (6, 5), 200), {}),
        (Image.new("RGBA", (6, 5), (0, 0, 0, 0)), {}),
        (Image.new("I;16", (6, 5), 40000), {}),
        (Image.new("P", (6, 5), 3), {}),
        (Image.new("P", (6, 5), 3), {"transparency": 3}),
        (Image.new("LA", (6, 5), (0, 0)), {}),
    ],
)
def test_other_pixel_formats_are_converted_to_bgr(image, save):
    result = decode(encoded(image, **save), 0, 0)
    assert result.shape == (5, 6, 3) and result.dtype == np.uint8


def test_transparent_pixels_become_white():
    result = decode(encoded(Image.new("RGBA", (4, 4), (0, 0, 0, 0))), 0, 0)
    assert (result == 255).all()


@pytest.mark.parametrize(
    "images, message",
    [
        (None, "missing 'images'"),
        ("abc", "'images' must be a list of base64 strings, got str"),
        ({"a": 1}, "'images' must be a list of base64 strings, got dict"),
        ([], "'images' is empty"),
        ([3], "image 0: expected a base64 string, got int"),
        (["@@@"], "image 0: invalid base64"),
        ([""], "image 0: invalid base64"),
        ([base64.b64encode(b"not an image at all").decode()], "image 0: not a decodable image"),
    ],
)
def test_bad_input_names_the_image_and_reason(images, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        read_request(images, Limits(max_images=10, max_image_pixels=10_000))


def test_bad_item_is_named_by_its_index():
    good = encoded(Image.new("RGB", (4, 4)))
    with pytest.raises(InputError, match="^image 2: invalid base64$"):
        read_request([good, good, "%%%", good], Limits(10, 10_000))


def test_limits():
    good = encoded(Image.new("RGB", (4, 4)))
    with pytest.raises(InputError, match=r"too many images: 3 \(limit 2 per request, OCR_MAX_IMAGES\)"):
        read_request([good] * 3, Limits(max_images=2, max_image_pixels=10_000))
    with pytest.raises(InputError, match=r"too many pixels in one request: 48 in 3 images \(limit 40, OCR_MAX_REQUEST"):
        read_request([good] * 3, Limits(max_request_pixels=40))
    # A 1-bit 30000×30000 PNG is a few kB on the wire and 900 MP decoded: refused from its header.
    bomb = encoded(Image.new("1", (30000, 30000)), optimize=True)
    assert len(bomb) < 200_000
    with pytest.raises(InputError, match="image 0: image too large: 30000×30000"):
        decode(bomb, 0, max_pixels=40_000_000)


def test_a_request_is_checked_from_headers_and_decoded_one_image_at_a_time():
    """Nothing is decoded while a request is checked: memory for one image at a time."""
    big = encoded(Image.new("RGB", (3000, 2000), (255, 255, 255)))
    checked = read_request([big, big], Limits(max_images=2, max_image_pixels=6_000_000))
    assert [(image.width, image.height, image.index) for image in checked] == [(3000, 2000, 0), (3000, 2000, 1)]
    assert all(len(image.data) < 100_000 for image in checked)  # still the compressed file
    assert to_bgr(checked[1]).shape == (2000, 3000, 3)

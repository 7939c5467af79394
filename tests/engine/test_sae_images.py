import io

import numpy as np
import pytest
from PIL import Image

from engine.core.errors import DataError
from engine.sae.images import OLSHAUSEN_FILES, decode_image, load_builtin, load_olshausen, load_uploads


def png(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_colour_image_becomes_grayscale():
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 1] = 200
    rgb[:, :15, 1] = 180  # two shades: a flat picture is refused, having nothing to learn from
    image = decode_image(png(rgb), "green.png")
    assert image.shape == (20, 30) and image.dtype == np.float64 and 100 < image.mean() < 150


def test_sixteen_bit_images_keep_their_range():
    deep = (np.arange(400, dtype=np.uint16).reshape(20, 20) * 100)
    assert decode_image(png(deep), "deep.png").max() == pytest.approx(39900)


def test_a_file_that_is_not_an_image_is_named():
    with pytest.raises(DataError, match="notes.png is not an image"):
        decode_image(b"these are my notes, not a picture", "notes.png")


def test_a_truncated_image_is_refused():
    data = png(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    with pytest.raises(DataError, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2], "cut.png")


def test_a_decompression_bomb_is_never_decoded():
    buffer = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buffer, format="PNG")  # compresses to a few kB, 36 megapixels
    data = buffer.getvalue()
    assert len(data) < 200_000
    with pytest.raises(DataError, match="6000x6000 pixels"):
        decode_image(data, "bomb.png")


def test_empty_and_oversized_uploads_are_refused():
    with pytest.raises(DataError, match="empty"):
        decode_image(b"", "nothing.png")
    with pytest.raises(DataError, match="the limit is 20 MB"):
        decode_image(b"0" * (21 * 2**20), "huge.png")
    with pytest.raises(DataError, match="No images uploaded"):
        load_uploads([])


def test_builtin_images_need_no_network():
    images = load_builtin()
    assert len(images) == 10 and all(image.ndim == 2 and min(image.shape) >= 128 for image in images)


@pytest.mark.data
def test_olshausen_images_resolve_from_the_data_folder_with_checksums():
    images = load_olshausen()
    assert len(images) == len(OLSHAUSEN_FILES) == 10
    assert all(image.shape == (512, 512) for image in images)


def test_a_flat_or_non_finite_image_is_refused_by_name():
    with pytest.raises(DataError, match=r"grey.png is one flat shade \(every pixel is 128\)"):
        decode_image(png(np.full((20, 20), 128, np.uint8)), "grey.png")

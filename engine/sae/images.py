"""Where the autoencoder's images come from: Olshausen's ten natural scenes, a built-in set, uploads.

Every source gives raw grayscale images as float64 arrays (H, W); `patches.whiten` is applied by
the caller, so any photograph goes through the same 1/f whitening as Olshausen's.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from engine.core.errors import DataError
from engine.core.fetch import Progress, RemoteFile, find_local, resolve

SOURCES = {
    "olshausen": "Olshausen's ten natural images (UFLDL's data)",
    "builtin": "Ten photographs shipped with scikit-image (works offline)",
    "upload": "Your own images",
}

# Olshausen's sparsenet sources, 512x512 8-bit TIFFs; origin and checksums in ../shared/data/README.md
_OLSHAUSEN_URL = "https://raw.githubusercontent.com/shaoguangcheng/CDBN/master/matlab/data/{:02d}.tif"
_OLSHAUSEN_SHA256 = [
    ("ea5d8b5dab975faa7fa3b2c7bb0bfd6352ae65643c0e7a4e3fca8ccb07ef0a03", 264756),
    ("5012417d7cbed3e27ab29ae7a3bd612e6301bb06342b19079152248b9c5cf311", 264594),
    ("7607d4f660708b4bd1ec330a80794de0a83b4a9872f1fd14892a46e7ba85e78e", 264150),
    ("8d5b22c1e25450405ff07c20a9989cab00108816e2b3b55c4c9ec206c9fe5494", 258836),
    ("a1c5b30e50909389e4eec781db4d246dc5d6bf79c57444e0f7319f47f73d0fde", 264658),
    ("6b261e37de86330fdc5658a3fb11d80e9bcd06026f28dcc3cc6908b65c00a252", 264572),
    ("fdce9bdfcd74bfbece11915f93b34b6698d572abdae7954faf495b8c844f8def", 263450),
    ("b5fd99f30238d9b52139fb3ba57474fda23395ef80665ea8d0dce44b8483b158", 264552),
    ("3e931e925d32260c7cf8b59f4a57cdaf3fee08c3db6fa3bf154078f4cdbebd36", 264734),
    ("05670b55de8d3ea3440704c980043b1bb6404556b4acfc325241ac407f124d01", 264212),
]
OLSHAUSEN_FILES = [
    RemoteFile(f"natural_images/olshausen_raw_tif/{i:02d}.tif", _OLSHAUSEN_URL.format(i), sha, size)
    for i, (sha, size) in enumerate(_OLSHAUSEN_SHA256, start=1)
]

BUILTIN_NAMES = ["camera", "astronaut", "coffee", "chelsea", "rocket", "coins", "grass", "gravel", "brick", "moon"]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096


def olshausen_available() -> bool:
    """True when all ten images are on disk, so showing them downloads nothing."""
    return all(find_local(file) for file in OLSHAUSEN_FILES)


def load_olshausen(progress: Progress | None = None, folder: str | Path | None = None) -> list[np.ndarray]:
    from PIL import Image

    images = []
    for index, file in enumerate(OLSHAUSEN_FILES):
        path = resolve(file, folder, progress=(lambda done, total, i=index: progress(i * total + done, 10 * total)) if progress else None)
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("L"), dtype=np.float64))
    return images


def load_builtin() -> list[np.ndarray]:
    import skimage.data
    from skimage.color import rgb2gray

    images = []
    for name in BUILTIN_NAMES:
        image = getattr(skimage.data, name)()
        images.append(rgb2gray(image) * 255.0 if image.ndim == 3 else image.astype(np.float64))
    return images


def decode_image(data: bytes, name: str = "upload") -> np.ndarray:
    """A person's image file -> grayscale float64 (H, W), or a DataError saying what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    if len(data) == 0:
        raise DataError(f"{name} is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise DataError(f"{name} is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            # check the header's size before decoding, so a decompression bomb is never expanded
            if width * height > MAX_UPLOAD_PIXELS:
                raise DataError(
                    f"{name} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); the limit is "
                    f"{MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels. Scale it down first."
                )
            image.load()
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(f"{name} is not an image that can be read (PNG, JPEG, TIFF, BMP or GIF).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{name} declares an enormous size (a decompression bomb); it was not opened.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise DataError(f"{name} is corrupt or truncated and cannot be decoded ({error}).") from None
    return usable_gray(image, name)


def usable_gray(image, name: str) -> np.ndarray:
    """A decoded PIL image -> grayscale float64 (H, W); DataError for a colour mode, pixels or a picture that cannot be used."""
    try:
        # 16- and 32-bit and float images keep their range; everything else becomes 8-bit gray
        gray = image.convert("F") if image.mode.startswith("I") or image.mode == "F" else image.convert("L")
        pixels = np.asarray(gray, dtype=np.float64)
    except (OSError, ValueError) as error:
        raise DataError(f"{name} is in a colour mode ({image.mode}) that cannot be turned into gray ({error}).") from None
    if not np.isfinite(pixels).all():
        raise DataError(f"{name} has pixels that are not numbers (NaN or infinity); it cannot be whitened.")
    if pixels.size == 0 or pixels.max() == pixels.min():
        shade = f" (every pixel is {pixels.flat[0]:g})" if pixels.size else ""
        raise DataError(f"{name} is one flat shade{shade}: it has no edges or texture to learn from.")
    return pixels


def load_uploads(files: list[tuple[str, bytes]]) -> list[np.ndarray]:
    if not files:
        raise DataError("No images uploaded: add at least one image, or pick another data source.")
    return [decode_image(data, name) for name, data in files]


def load_source(
    source: str, uploads: list[tuple[str, bytes]] | None = None, progress: Progress | None = None, folder: str | Path | None = None
) -> list[np.ndarray]:
    """Raw grayscale images of a source named in SOURCES; `folder` is looked in first for downloadable ones."""
    if source == "olshausen":
        return load_olshausen(progress, folder)
    if source == "builtin":
        return load_builtin()
    if source == "upload":
        return load_uploads(uploads or [])
    raise DataError(f"Unknown image source {source!r}: choose one of {', '.join(SOURCES)}.")

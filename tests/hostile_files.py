"""A catalogue of files a careless or hostile person might hand the lab, made fresh for each test module.

Images that are corrupt, truncated, a decompression bomb, or in odd modes; special files that `stat`
calls empty (/dev/zero, /dev/urandom, a FIFO); a folder and a missing path; text that is binary,
latin-1, empty or huge (sparse, so it costs nothing); and a pickle whose loading would create a marker
file, so a test can prove nothing was unpickled. `make_catalogue(folder)` makes it; the fixture
`hostile_files` in tests/cli/conftest.py makes one for each test module.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


class Payload:
    """Unpickling this creates `marker`: the proof that something was unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid PNG header declaring width x height 8-bit gray pixels, with a few bytes of compressed data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + png_chunk(b"IEND", b"")


def image_bytes(image: Image.Image, kind: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind)
    return buffer.getvalue()


def images(rng: np.random.Generator) -> dict[str, bytes]:
    texture = (rng.random((40, 40)) * 255).astype(np.uint8)
    good = image_bytes(Image.fromarray(texture), "PNG")
    nan = np.where(rng.random((40, 40)) < 0.5, np.nan, 1.0).astype(np.float32)
    return {
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + rng.bytes(500),
        "truncated.png": good[: len(good) // 2],
        "bomb.png": bomb_png(),
        "cmyk.jpg": image_bytes(Image.fromarray(texture).convert("CMYK"), "JPEG"),
        "sixteen_bit.png": image_bytes(Image.fromarray((texture.astype(np.uint16) * 257)), "PNG"),
        "palette.png": image_bytes(Image.fromarray(texture).convert("P"), "PNG"),
        "one_bit.png": image_bytes(Image.fromarray(texture > 128), "PNG"),
        "flat.png": image_bytes(Image.fromarray(np.full((40, 40), 7, np.uint8)), "PNG"),
        "nan.tif": image_bytes(Image.fromarray(nan, mode="F"), "TIFF"),
    }


def texts(rng: np.random.Generator) -> dict[str, bytes]:
    return {
        "binary.txt": rng.bytes(4000),
        "latin1.txt": ("Ça, c'est très élégant à Noël. " * 40).encode("latin-1"),
        "empty.txt": b"",
        "spaces.txt": b" \n\t " * 100,
    }


def make_catalogue(folder: Path) -> tuple[dict[str, Path], Path]:
    """Every hostile file under `folder`, by name; and the marker a pickle payload would create."""
    rng = np.random.default_rng(0)
    marker = folder / "UNPICKLED"
    catalogue = {}
    for name, data in {**images(rng), **texts(rng)}.items():
        (folder / name).write_bytes(data)
        catalogue[name] = folder / name
    huge = folder / "huge.txt"
    with open(huge, "wb") as file:
        file.truncate(21 * 2**20)  # sparse: 21 MB on paper, nothing on disk
    catalogue["huge.txt"] = huge
    catalogue["pickle.pkl"] = folder / "pickle.pkl"
    catalogue["pickle.pkl"].write_bytes(pickle.dumps(Payload(marker)))
    catalogue["pickle.npy"] = folder / "pickle.npy"
    np.save(catalogue["pickle.npy"], np.array([Payload(marker)], dtype=object), allow_pickle=True)
    catalogue["pickle.json"] = folder / "pickle.json"  # a checkpoint card that is a pickle
    catalogue["pickle.json"].write_bytes(pickle.dumps(Payload(marker)))
    catalogue["nan.npy"] = folder / "nan.npy"
    np.save(catalogue["nan.npy"], np.full((3, 28, 28), np.nan, np.float32))
    catalogue["strings.npy"] = folder / "strings.npy"
    np.save(catalogue["strings.npy"], np.array(["a", "b"]))
    catalogue["lying.npy"] = folder / "lying.npy"  # declares a billion rows, holds none
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 28, 28)})
    catalogue["lying.npy"].write_bytes(header.getvalue() + b"\0" * 64)
    fifo = folder / "pipe.json"  # a FIFO where a checkpoint card is expected, and where anything is read
    os.mkfifo(fifo)
    catalogue["fifo"] = fifo
    zero = folder / "zero.json"  # /dev/zero where a checkpoint card is expected
    zero.symlink_to("/dev/zero")
    catalogue["zero link"] = zero
    (folder / "a_folder").mkdir()
    catalogue["folder"] = folder / "a_folder"
    catalogue["missing"] = folder / "nowhere" / "missing.png"
    catalogue["/dev/zero"] = Path("/dev/zero")
    catalogue["/dev/urandom"] = Path("/dev/urandom")
    catalogue["unicode ✓ name"] = folder / "naïve ✓ \u202e.txt"
    catalogue["unicode ✓ name"].write_bytes(b"\xff\xfe\x00")
    return catalogue, marker


"""Tiling a stack of small images (filters, patches, digits) into one picture, and PNG bytes."""

from __future__ import annotations

import io
import math

import numpy as np


def tile_images(stack: np.ndarray, columns: int | None = None, padding: int = 1, scale: str = "each") -> np.ndarray:
    """(N, h, w) -> one uint8 (H, W) grid with a dark border between tiles.

    scale="each" stretches every tile by its own largest magnitude around mid-gray, as UFLDL's
    `display_network` does for filters, so weak and strong filters are equally visible;
    scale="all" maps the whole stack's range to 0-255 together; scale="unit" expects values in [0, 1].
    """
    stack = np.asarray(stack, dtype=np.float64)
    count, height, width = stack.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    if scale == "each":
        peak = np.abs(stack - stack.mean(axis=(1, 2), keepdims=True)).max(axis=(1, 2), keepdims=True)
        tiles = 0.5 + 0.5 * (stack - stack.mean(axis=(1, 2), keepdims=True)) / np.where(peak == 0, 1, peak)
    elif scale == "all":
        low, high = stack.min(), stack.max()
        tiles = (stack - low) / (high - low if high > low else 1)
    else:
        tiles = np.clip(stack, 0, 1)
    grid = np.zeros((rows * (height + padding) + padding, columns * (width + padding) + padding))
    for index in range(count):
        row, col = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + col * (width + padding)
        grid[top : top + height, left : left + width] = tiles[index]
    return (grid * 255).round().astype(np.uint8)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so 8x8 filters stay crisp squares instead of blurring."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()

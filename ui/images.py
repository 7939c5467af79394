"""Image grids: filters, patches, digits, drawn crisp (nearest-neighbour) at a readable size."""

import numpy as np
import streamlit as st

from engine.core.grids import tile_images, upscale


def grid_image(stack: np.ndarray, columns: int | None = None, scale: str = "each", width_px: int = 360) -> np.ndarray:
    """(N, h, w) -> one uint8 picture about `width_px` wide, each pixel an exact square."""
    grid = tile_images(stack, columns=columns, scale=scale)
    return upscale(grid, max(1, width_px // grid.shape[1]))


def show_grid(stack: np.ndarray, caption: str, columns: int | None = None, scale: str = "each", width_px: int = 360) -> None:
    st.image(grid_image(stack, columns, scale, width_px), caption=caption)

"""From grayscale images to the training patches of UFLDL's sparse autoencoder exercise.

1. `whiten`: Olshausen & Field's 1/f whitening, the filter R(f) = f * exp(-(f/f0)^4) with
   f0 = 0.4 * N applied in the Fourier domain; it flattens the natural images' 1/f amplitude
   spectrum and rolls off the highest frequencies, where noise and aliasing live.
2. `sample_patches`: random square patches from random images (UFLDL's `sampleIMAGES`).
3. `normalize_patches`: UFLDL's `normalizeData`: subtract each patch's mean, clip to +-3 standard
   deviations of all the data, rescale to [0.1, 0.9] so that a sigmoid output can reach it.

Patches follow UFLDL's convention: one example per column, shape (patch_size**2, num_patches).
"""

from __future__ import annotations

import numpy as np

from engine.core.errors import ConfigError, DataError

WHITENED_VARIANCE = 0.1  # sparsenet scales its whitened images to this mean variance


def whiten(image: np.ndarray) -> np.ndarray:
    """Whiten one grayscale image (H, W) with the 1/f filter; returns float64 with variance 0.1."""
    image = np.asarray(image, dtype=np.float64)
    image = image - image.mean()
    height, width = image.shape
    size = max(height, width)
    fy = np.fft.fftfreq(height) * size  # frequencies in cycles per image, on the longer side's scale
    fx = np.fft.fftfreq(width) * size
    f = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    f0 = 0.4 * size
    response = f * np.exp(-((f / f0) ** 4))
    whitened = np.real(np.fft.ifft2(np.fft.fft2(image) * response))
    std = whitened.std()
    if std == 0:  # a flat image has nothing to whiten; keep it flat rather than divide by zero
        return whitened
    return whitened * np.sqrt(WHITENED_VARIANCE) / std


def sample_patches(images: list[np.ndarray], patch_size: int, num_patches: int, rng: np.random.Generator) -> np.ndarray:
    """`num_patches` random patch_size x patch_size patches, one per column: (patch_size**2, num_patches)."""
    for index, image in enumerate(images):
        if min(image.shape) < patch_size:
            raise ConfigError(
                f"Image {index + 1} is {image.shape[1]}x{image.shape[0]} pixels, smaller than the "
                f"{patch_size}x{patch_size} patch: use a smaller patch size or a larger image."
            )
    which = rng.integers(len(images), size=num_patches)
    patches = np.empty((patch_size * patch_size, num_patches))
    for index, image_index in enumerate(which):
        image = images[image_index]
        row = rng.integers(image.shape[0] - patch_size + 1)
        col = rng.integers(image.shape[1] - patch_size + 1)
        # column-major flattening, as MATLAB's reshape does, so filters read like UFLDL's display_network
        patches[:, index] = image[row : row + patch_size, col : col + patch_size].ravel(order="F")
    return patches


def normalize_patches(patches: np.ndarray) -> np.ndarray:
    """Remove each patch's DC, clip to +-3 std of the whole set, squash into [0.1, 0.9]."""
    patches = patches - patches.mean(axis=0, keepdims=True)
    limit = 3 * patches.std()
    if limit == 0:
        return np.full_like(patches, 0.5)
    patches = np.clip(patches, -limit, limit) / limit
    return (patches + 1) * 0.4 + 0.1


def training_patches(images: list[np.ndarray], patch_size: int, num_patches: int, rng: np.random.Generator) -> np.ndarray:
    """Whitened images -> sampled -> normalised: what the autoencoder trains on; DataError if there is nothing to learn."""
    patches = sample_patches(images, patch_size, num_patches, rng)
    if not np.isfinite(patches).all():
        raise DataError("The images hold pixels that are not numbers (NaN or infinity), so their patches cannot be used.")
    if np.ptp(patches - patches.mean(axis=0, keepdims=True)) == 0:
        # normalising would make every patch the same 0.5 gray, and the filters would learn nothing
        raise DataError(f"Every sampled {patch_size}x{patch_size} patch is one flat shade: the images have no edges or texture to learn from.")
    return normalize_patches(patches)


def as_images(patches: np.ndarray, patch_size: int) -> np.ndarray:
    """Columns back to square images: (patch_size**2, k) -> (k, patch_size, patch_size)."""
    return patches.T.reshape(-1, patch_size, patch_size).transpose(0, 2, 1)  # undo the column-major ravel

import numpy as np
import pytest

from engine.core.errors import ConfigError
from engine.sae.patches import as_images, normalize_patches, sample_patches, whiten


def pink_noise(size=128, seed=0):
    """An image with the 1/f amplitude spectrum of natural scenes."""
    rng = np.random.default_rng(seed)
    f = np.sqrt(np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None, :] ** 2)
    f[0, 0] = 1
    return np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) / f))


def radial_power(image, low, high):
    power = np.abs(np.fft.fft2(image)) ** 2
    f = np.sqrt(np.fft.fftfreq(image.shape[0])[:, None] ** 2 + np.fft.fftfreq(image.shape[1])[None, :] ** 2)
    return power[(f >= low) & (f < high)].mean()


def test_whitening_flattens_a_one_over_f_spectrum():
    image = pink_noise()
    whitened = whiten(image)
    assert whitened.var() == pytest.approx(0.1)
    # raw: mid frequencies carry far less power than low ones; whitened: within a factor of a few
    raw_ratio = radial_power(image, 0.02, 0.05) / radial_power(image, 0.10, 0.20)
    white_ratio = radial_power(whitened, 0.02, 0.05) / radial_power(whitened, 0.10, 0.20)
    assert raw_ratio > 10 and 0.1 < white_ratio < 1.5


def test_whitening_a_flat_image_does_not_divide_by_zero():
    assert not whiten(np.full((16, 16), 7.0)).any()


def test_patches_are_seeded_and_laid_out_one_per_column():
    images = [np.arange(100.0).reshape(10, 10), np.ones((12, 9))]
    first = sample_patches(images, 3, 50, np.random.default_rng(5))
    again = sample_patches(images, 3, 50, np.random.default_rng(5))
    assert first.shape == (9, 50)
    np.testing.assert_array_equal(first, again)
    # a patch of the ramp image, turned back into a square, is a contiguous 3x3 block of it
    squares = as_images(first, 3)
    ramp = squares[np.argmax(first.std(axis=0))]
    assert ramp[0, 1] - ramp[0, 0] == 1 and ramp[1, 0] - ramp[0, 0] == 10


def test_normalised_patches_lie_in_point_one_to_point_nine():
    patches = normalize_patches(np.random.default_rng(6).normal(size=(64, 500)) * 5)
    assert patches.min() >= 0.1 - 1e-12 and patches.max() <= 0.9 + 1e-12
    # each patch's mean was removed before squashing, so the average patch sits at the middle
    assert abs(patches.mean() - 0.5) < 0.01


def test_an_image_smaller_than_the_patch_is_refused():
    with pytest.raises(ConfigError, match="Image 2 is 5x6 pixels, smaller than the 8x8 patch"):
        sample_patches([np.zeros((20, 20)), np.zeros((6, 5))], 8, 10, np.random.default_rng(0))

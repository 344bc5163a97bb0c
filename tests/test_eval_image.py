"""Per-frame fidelity metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffusion.evaluation import image_metrics as im


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 200, (24, 30, 3)) / 255.0


def test_identical_images_psnr_inf_ssim_one(image):
    assert im.psnr(image, image) == math.inf
    assert im.ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    assert im.l1(image, image) == 0.0


@pytest.mark.parametrize("d", [1, 5, 40])
def test_psnr_of_constant_offset_on_8bit(image, d):
    assert im.psnr(image + d / 255.0, image) == pytest.approx(20 * math.log10(255 / d), abs=1e-9)
    assert im.l1(image + d / 255.0, image) == pytest.approx(d / 255.0)


def test_ssim_of_constant_images_closed_form():
    a, b = 0.3, 0.7
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)     # variances and covariance are zero
    got = im.ssim(np.full((16, 16), a), np.full((16, 16), b))
    assert got == pytest.approx(expected, abs=1e-12)


def test_ssim_matches_brute_force_windows():
    rng = np.random.default_rng(2)
    x, y = rng.random((14, 17, 3)), rng.random((14, 17, 3))
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w2 = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(14 - 10):
        for j in range(17 - 10):
            for c in range(3):
                px, py = x[i:i + 11, j:j + 11, c], y[i:i + 11, j:j + 11, c]
                mx, my = (w2 * px).sum(), (w2 * py).sum()
                vx, vy = (w2 * (px - mx) ** 2).sum(), (w2 * (py - my) ** 2).sum()
                cov = (w2 * (px - mx) * (py - my)).sum()
                values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    assert im.ssim(x, y) == pytest.approx(np.mean(values), abs=1e-10)
    assert im.ssim(x, y) == pytest.approx(im.ssim(y, x), abs=1e-12)


def test_masked_metrics_equal_crop(image):
    rng = np.random.default_rng(3)
    other = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1)
    r0, r1, c0, c1 = 3, 20, 6, 27
    rect = np.zeros(image.shape[:2], bool)
    rect[r0:r1, c0:c1] = True
    crop_a, crop_b = other[r0:r1, c0:c1], image[r0:r1, c0:c1]
    assert im.psnr(other, image, rect) == pytest.approx(im.psnr(crop_a, crop_b), abs=1e-9)
    assert im.l1(other, image, rect) == pytest.approx(im.l1(crop_a, crop_b), abs=1e-12)
    centres = np.zeros_like(rect)                      # windows that lie entirely inside the crop
    centres[r0 + 5:r1 - 5, c0 + 5:c1 - 5] = True
    assert im.ssim(other, image, centres) == pytest.approx(im.ssim(crop_a, crop_b), abs=1e-12)
    assert im.ssim(other, image) < 1.0
    assert math.isnan(im.psnr(other, image, np.zeros_like(rect)))


def test_too_small_for_ssim_window():
    with pytest.raises(ValueError, match="11x11"):
        im.ssim(np.zeros((8, 20)), np.zeros((8, 20)))

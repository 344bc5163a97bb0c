"""Per-frame fidelity against ground truth: L1, PSNR and SSIM, whole frame or inside a mask.

Images are float arrays in [0, 1], shape (H, W) or (H, W, C). Colour metrics average over channels.

SSIM is Wang, Bovik, Sheikh & Simoncelli (2004): an 11x11 Gaussian window with sigma 1.5,
K1 = 0.01, K2 = 0.03, dynamic range L = 1, computed per channel and averaged over channels (the
multichannel convention of scikit-image / pytorch-msssim). As in the authors' reference code, the
SSIM map is computed only where the whole window fits ('valid' filtering), so the map is 10 pixels
smaller than the image in each direction; map entry (i, j) belongs to the window centred on
image pixel (i + 5, j + 5). A masked SSIM averages the map over the windows whose centre pixel is
in the mask, so the SSIM of a crop equals the masked SSIM over the crop shrunk by 5 pixels.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_HALF = SSIM_WINDOW // 2


def _channels_last(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    return image[..., None] if image.ndim == 2 else image


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _channels_last(pred), _channels_last(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"image shapes differ: {pred.shape} vs {gt.shape}")
    return pred, gt


def _pixel_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape[:2], dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {shape[:2]}")
    return mask


def l1(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference over the (masked) pixels and channels; nan for an empty mask."""
    pred, gt = _check_pair(pred, gt)
    m = _pixel_mask(mask, pred.shape)
    return float(np.abs(pred - gt)[m].mean()) if m.any() else math.nan


def mse(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared difference over the (masked) pixels and channels; nan for an empty mask."""
    pred, gt = _check_pair(pred, gt)
    m = _pixel_mask(mask, pred.shape)
    return float(np.square(pred - gt)[m].mean()) if m.any() else math.nan


def psnr(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """10 log10(data_range^2 / MSE) in dB; inf for identical images, nan for an empty mask."""
    err = mse(pred, gt, mask)
    if math.isnan(err):
        return math.nan
    return math.inf if err == 0.0 else 10.0 * math.log10(data_range**2 / err)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1D Gaussian (the separable factor of MATLAB's fspecial('gaussian', size, sigma))."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    w = np.exp(-(x**2) / (2.0 * sigma**2))
    return w / w.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable weighted mean over every full window (H-10, W-10, C)."""
    out = correlate1d(image, window, axis=0, mode="constant")
    out = correlate1d(out, window, axis=1, mode="constant")
    return out[_HALF:-_HALF, _HALF:-_HALF]


def ssim_map(pred: np.ndarray, gt: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """SSIM per window centre, averaged over channels: shape (H - 10, W - 10)."""
    pred, gt = _check_pair(pred, gt)
    if min(pred.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {pred.shape[:2]}")
    w = gaussian_window()
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(pred, w), _filter_valid(gt, w)
    var_x = _filter_valid(pred * pred, w) - mu_x**2
    var_y = _filter_valid(gt * gt, w) - mu_y**2
    cov = _filter_valid(pred * gt, w) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).mean(axis=-1)


def mean_ssim(smap: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean of an :func:`ssim_map` over the windows whose centre pixel is in ``mask`` (image-sized)."""
    if mask is None:
        return float(smap.mean())
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (smap.shape[0] + 2 * _HALF, smap.shape[1] + 2 * _HALF):
        raise ValueError(f"mask shape {mask.shape} does not match the image of this SSIM map")
    centres = mask[_HALF:-_HALF, _HALF:-_HALF]
    return float(smap[centres].mean()) if centres.any() else math.nan


def ssim(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """Mean SSIM over the windows whose centre pixel is in ``mask`` (all windows without a mask)."""
    return mean_ssim(ssim_map(pred, gt, data_range), mask)

"""Temporal consistency with the ground-truth motion: warping error, temporal L1, adjacent-frame
differences. No flow network: the renderer's ``flow`` and ``depth`` passes are exact.

Conventions
- ``flow`` (H, W, 2) is the forward flow of frame t: the surface point seen at pixel centre
  (x, y) of frame t is at (x + u, y + v) in frame t+1, in pixels, x right, y down (render/meta.py).
- Backward warping: ``warp(F_{t+1})(x) = F_{t+1}(x + flow_t(x))``, bilinear between pixel centres.
- Valid (non-occluded) pixels of frame t: the target x + flow lies inside the frame (between the
  outermost pixel centres), and the depth pass agrees there, i.e. the point is not hidden in
  frame t+1: with d0 = depth_t(x) and d1 = depth_{t+1} at the nearest pixel to the target,
  |d1 - d0| <= rel_tol * d0; both empty (depth >= 1e9 or inf, render/meta.py) also agrees. The relative
  tolerance absorbs the point's own motion along the view axis between two frames (default 5%:
  15 cm at 3 m, above a limb's per-frame travel at 30 fps, below most occluder gaps).
- Warping error (Lai et al. 2018, "Learning Blind Video Temporal Consistency"; the "WE" of
  PoseAnimate's table): over valid pixels of every pair (t, t+1),
  E = sum_valid |F_t - warp(F_{t+1})|^2 / (n_valid * C), images in [0, 1]: the per-channel mean.
  Implementations that sum over the three colour channels report 3x this value.
- Temporal L1 (ours): mean over valid pixels and channels of
  |(P_t - warp P_{t+1}) - (G_t - warp G_{t+1})|: the change along the true motion that the
  prediction P has and the ground truth G does not (flicker), 0 when P = G + constant.
- Adjacent-frame L1 / MSE (Dancing Avatar's "Frame L1 / Frame MSE"): mean |F_{t+1} - F_t| and
  mean (F_{t+1} - F_t)^2 over all pixels and channels on the 0-255 scale. The paper gives no
  formula or scale; its L1 270.31 with MSE 26.66 cannot both be per-pixel means on one scale
  (a per-pixel mean L1 never exceeds sqrt(MSE)), so only our own numbers compare with each other.
"""

from __future__ import annotations

import math

import numpy as np

DEPTH_REL_TOL = 0.05
EMPTY_DEPTH = 1e9     # render/meta.py depth_float: background >= 1e9


def _sample_positions(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Array coordinates (row, col) of each pixel's target in the next frame."""
    h, w = flow.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    return rows + flow[..., 1], cols + flow[..., 0]


class BackwardWarp:
    """``warp(F)(x) = F(x + flow(x))``, bilinear between pixel centres, positions clamped to the
    frame; the sampling pattern is computed once per flow and applied to any number of images."""

    def __init__(self, flow: np.ndarray):
        flow = np.nan_to_num(np.asarray(flow, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        self.shape = flow.shape[:2]
        h, w = self.shape
        r, c = _sample_positions(flow)
        r, c = np.clip(r, 0, h - 1), np.clip(c, 0, w - 1)
        r0 = np.minimum(np.floor(r).astype(np.intp), max(h - 2, 0))
        c0 = np.minimum(np.floor(c).astype(np.intp), max(w - 2, 0))
        r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
        fr, fc = (r - r0)[..., None], (c - c0)[..., None]
        self.index = [(a * w + b).ravel() for a, b in ((r0, c0), (r0, c1), (r1, c0), (r1, c1))]
        self.weight = [(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.float64)
        if image.shape[:2] != self.shape:
            raise ValueError(f"image {image.shape[:2]} does not match the flow {self.shape}")
        flat = image.reshape(self.shape[0] * self.shape[1], -1)
        out = sum(wt * flat[idx].reshape(*self.shape, -1) for idx, wt in zip(self.index, self.weight))
        return out.reshape(image.shape)


def valid_mask(flow: np.ndarray, depth_t: np.ndarray, depth_next: np.ndarray,
               rel_tol: float = DEPTH_REL_TOL) -> np.ndarray:
    """Pixels of frame t whose point stays in frame and unoccluded in frame t+1 (see module doc)."""
    h, w = flow.shape[:2]
    r, c = _sample_positions(np.asarray(flow, dtype=np.float64))
    inside = (r >= 0) & (r <= h - 1) & (c >= 0) & (c <= w - 1)   # False for non-finite flow
    ri = np.rint(np.clip(np.where(inside, r, 0), 0, h - 1)).astype(np.intp)
    ci = np.rint(np.clip(np.where(inside, c, 0), 0, w - 1)).astype(np.intp)
    d0 = np.asarray(depth_t, dtype=np.float64)
    d1 = np.asarray(depth_next, dtype=np.float64)[ri, ci]
    empty0, empty1 = ~(d0 < EMPTY_DEPTH), ~(d1 < EMPTY_DEPTH)    # NaN counts as empty too
    with np.errstate(invalid="ignore"):
        agree = ~empty0 & ~empty1 & (np.abs(d1 - d0) <= rel_tol * d0)
    agree |= empty0 & empty1
    return inside & agree


def _masked_mean(values: np.ndarray, valid: np.ndarray) -> float:
    return float(values[valid].mean()) if valid.any() else math.nan


def warping_error(frame_t: np.ndarray, frame_next: np.ndarray, warp: BackwardWarp, valid: np.ndarray) -> float:
    """Per-channel MSE between frame t and frame t+1 warped back, over valid pixels ([0, 1] images)."""
    diff = np.asarray(frame_t, dtype=np.float64) - warp(frame_next)
    return _masked_mean(np.square(diff), valid)


def temporal_l1(pred_t: np.ndarray, pred_next: np.ndarray, gt_t: np.ndarray, gt_next: np.ndarray,
                warp: BackwardWarp, valid: np.ndarray) -> float:
    """Mean |(P_t - warp P_{t+1}) - (G_t - warp G_{t+1})| over valid pixels and channels."""
    dp = np.asarray(pred_t, dtype=np.float64) - warp(pred_next)
    dg = np.asarray(gt_t, dtype=np.float64) - warp(gt_next)
    return _masked_mean(np.abs(dp - dg), valid)


def adjacent_differences(frame_t: np.ndarray, frame_next: np.ndarray) -> tuple[float, float]:
    """(L1, MSE) between consecutive frames on the 0-255 scale (inputs in [0, 1])."""
    diff = 255.0 * (np.asarray(frame_next, dtype=np.float64) - np.asarray(frame_t, dtype=np.float64))
    return float(np.abs(diff).mean()), float(np.square(diff).mean())

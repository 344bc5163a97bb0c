"""PATA, the pose alignment transition algorithm (the paper gives no formula; this is our design).

Keypoints are OpenPose-18 rows ``[x, y, visible]`` in output pixels.

- Alignment: ONE similarity transform (uniform scale + translation, no rotation) for the whole target
  sequence, fitted between the first target pose and the source pose on the points visible in both:
  the translation maps the target centroid onto the source centroid, the scale matches their RMS
  spread. One transform keeps the motion's own translation and size changes (a per-frame fit would pin
  a walking character in place); a similarity keeps every target pose's shape.
- Transition: the first ``t`` target frames ease in from the source pose, frame k (1..t) being
  ``source + k/(t+1) (aligned_k - source)`` on points visible in both (else the aligned point), so the
  output keeps one frame per target pose. The sequence's frame 0 is the source pose itself: the anchor
  frame that reconstructs the source image.
"""

from __future__ import annotations

import numpy as np


def visible(points: np.ndarray) -> np.ndarray:
    return (points[:, 2] > 0) & np.isfinite(points[:, :2]).all(axis=1)


def fit_similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """(scale, offset) with ``scale * target_xy + offset ~ source_xy`` (identity without 2 shared points)."""
    both = visible(source) & visible(target)
    if both.sum() < 2:
        return 1.0, np.zeros(2)
    s, t = source[both, :2], target[both, :2]
    sc, tc = s.mean(axis=0), t.mean(axis=0)
    spread_t = np.sqrt(((t - tc) ** 2).sum(axis=1).mean())
    scale = float(np.sqrt(((s - sc) ** 2).sum(axis=1).mean()) / spread_t) if spread_t > 0 else 1.0
    return scale, sc - scale * tc


def apply_similarity(points: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    out = np.array(points, dtype=np.float64, copy=True)
    out[:, :2] = out[:, :2] * scale + offset
    return out


def pata(source: np.ndarray, targets: np.ndarray, transition: int = 0, align: bool = True
         ) -> tuple[np.ndarray, float, np.ndarray]:
    """(M + 1, 18, 3) pose sequence (frame 0: the source; then the aligned, eased-in targets), and the
    alignment's (scale, offset)."""
    scale, offset = fit_similarity(source, targets[0]) if align else (1.0, np.zeros(2))
    out = [np.asarray(source, dtype=np.float64)]
    for k, target in enumerate(targets, start=1):
        aligned = apply_similarity(target, scale, offset)
        if k <= transition:
            both = visible(source) & visible(aligned)
            aligned[both, :2] = source[both, :2] + k / (transition + 1) * (aligned[both, :2] - source[both, :2])
        out.append(aligned)
    return np.stack(out), scale, offset


def warp_masks(masks: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 masks moved by the alignment (so MGDM's masks follow the aligned poses)."""
    import cv2

    if scale == 1.0 and not offset.any():
        return masks
    shift = offset + 0.5 * (scale - 1.0)  # keypoints are pixel-corner coordinates, cv2 maps pixel centres
    matrix = np.array([[scale, 0, shift[0]], [0, scale, shift[1]]], np.float64)
    h, w = masks.shape[1:]
    return np.stack([cv2.warpAffine(m, matrix, (w, h), flags=cv2.INTER_LINEAR) for m in masks])

"""Optical flow -> colour with the Middlebury colour wheel (Baker et al., "A Database and Evaluation
Methodology for Optical Flow", ICCV 2007; their ``flowToColor``/``computeColor`` code), numpy only.

Flow is (dx, dy) in pixels with x right and y down (image axes). Hue encodes direction, saturation
the magnitude relative to ``max_radius``: zero flow is white; rightward flow is red, downward
yellow, leftward cyan-blue, upward violet; flow beyond ``max_radius`` is darkened to 75%.
The wheel has 55 hues: red->yellow 15, yellow->green 6, green->cyan 4, cyan->blue 11,
blue->magenta 13, magenta->red 6, integer channel ramps ``floor(255 * i / n)`` as in the original.
"""

from __future__ import annotations

import numpy as np

_SEGMENTS = (15, 6, 4, 11, 13, 6)        # RY, YG, GC, CB, BM, MR
UNKNOWN_FLOW = 1e9                      # |component| above this is "no flow" (the Middlebury rule)


def colour_wheel() -> np.ndarray:
    """(55, 3) float RGB in [0, 255]."""
    rows = []
    for seg, n in enumerate(_SEGMENTS):
        up = np.floor(255 * np.arange(n) / n)
        full, zero = np.full(n, 255.0), np.zeros(n)
        rows.append(np.stack([
            (full, up, zero), (255 - up, full, zero), (zero, full, up),
            (zero, 255 - up, full), (up, zero, full), (full, zero, 255 - up)][seg], 1))
    return np.concatenate(rows)


_WHEEL = colour_wheel()


def flow_magnitude_max(flow: np.ndarray) -> float:
    """Largest valid flow length (pixels); use it over a whole clip for a steady preview scale."""
    f = np.asarray(flow, dtype=np.float64)
    valid = np.all(np.isfinite(f[..., :2]), -1) & np.all(np.abs(f[..., :2]) < UNKNOWN_FLOW, -1)
    return float(np.hypot(f[..., 0], f[..., 1])[valid].max(initial=0.0))


def flow_to_colour(flow: np.ndarray, max_radius: float | None = None) -> np.ndarray:
    """(H, W, >=2) flow in pixels -> (H, W, 3) uint8 RGB; ``max_radius`` defaults to this flow's
    largest length. Invalid flow (NaN or beyond UNKNOWN_FLOW) is black."""
    f = np.asarray(flow, dtype=np.float64)
    u, v = f[..., 0].copy(), f[..., 1].copy()
    invalid = ~(np.isfinite(u) & np.isfinite(v)) | (np.abs(u) >= UNKNOWN_FLOW) | (np.abs(v) >= UNKNOWN_FLOW)
    u[invalid] = v[invalid] = 0.0
    if max_radius is None:
        max_radius = flow_magnitude_max(f)
    scale = 1.0 / (max_radius + np.finfo(np.float64).eps)
    u, v = u * scale, v * scale
    n = len(_WHEEL)
    rad = np.hypot(u, v)
    a = np.arctan2(-v, -u) / np.pi
    fk = (a + 1) / 2 * (n - 1)
    k0 = np.floor(fk).astype(np.int64)
    k1 = (k0 + 1) % n
    w = (fk - k0)[..., None]
    col = ((1 - w) * _WHEEL[k0] + w * _WHEEL[k1]) / 255
    inside = (rad <= 1)[..., None]
    col = np.where(inside, 1 - rad[..., None] * (1 - col), col * 0.75)
    col[invalid] = 0.0
    return np.floor(255 * col).astype(np.uint8)

"""Overlapping frame windows and per-frame blending weights (Make-Your-Anchor Algorithm 1)."""

from __future__ import annotations

import numpy as np
import torch

WEIGHTINGS = ("uniform", "triangular")


def window_spans(frames: int, window: int | None, overlap: int = 0) -> list[tuple[int, int]]:
    """Half-open ``(start, stop)`` windows of ``window`` frames advancing by ``window - overlap``.

    As in Algorithm 1, window i starts at ``i * (ws - os)``; the last window is clamped to end at
    the last frame (shifted back to keep ``ws`` frames) and the iteration stops once a window
    reaches the end. ``window`` None or >= ``frames`` gives one window over everything.
    """
    if frames < 1:
        raise ValueError("need at least one frame")
    if window is None or window >= frames:
        return [(0, frames)]
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window (got window={window}, overlap={overlap})")
    spans, start = [], 0
    while True:
        stop = min(start + window, frames)
        spans.append((stop - window, stop))
        if stop == frames:
            return spans
        start += window - overlap


def frame_weights(length: int, weighting: str = "uniform") -> torch.Tensor:
    """Weights of the frames inside one window: uniform (Algorithm 1: plain average) or triangular
    (``min(j + 1, length - j)``: frames near a window's edge count less where windows overlap)."""
    if weighting == "uniform":
        return torch.ones(length)
    if weighting == "triangular":
        j = torch.arange(length, dtype=torch.float32)
        return torch.minimum(j + 1, length - j)
    raise ValueError(f"weighting {weighting!r} is not one of {WEIGHTINGS}")


def frame_weight_totals(frames: int, spans: list[tuple[int, int]], weighting: str = "uniform") -> np.ndarray:
    """Per-frame sum of window weights (for uniform weights: how many windows cover each frame)."""
    total = np.zeros(frames, dtype=np.float64)
    for start, stop in spans:
        total[start:stop] += frame_weights(stop - start, weighting).double().numpy()
    return total


class OverlapAccumulator:
    """Weighted per-frame sum of window predictions, normalised by the per-frame weight total."""

    def __init__(self, like: torch.Tensor, weighting: str = "uniform"):
        # float32 sums keep fp16/bf16 runs accurate; for fp32 a single window is bit-exact (x * 1 / 1).
        self.dtype = like.dtype
        self.sum = torch.zeros(like.shape, dtype=torch.float32, device=like.device)
        self.weight = torch.zeros(like.shape[0], dtype=torch.float32, device=like.device)
        self.weighting = weighting

    def add(self, start: int, stop: int, prediction: torch.Tensor) -> None:
        w = frame_weights(stop - start, self.weighting).to(self.sum.device)
        self.sum[start:stop] += prediction.float() * w.view(-1, *([1] * (prediction.ndim - 1)))
        self.weight[start:stop] += w

    def mean(self) -> torch.Tensor:
        if bool((self.weight == 0).any()):
            raise ValueError("some frames are covered by no window")
        return (self.sum / self.weight.view(-1, *([1] * (self.sum.ndim - 1)))).to(self.dtype)

"""Overlapping frame windows and how their predictions combine per frame.

Make-Your-Anchor Algorithm 1 averages the windows covering a frame (``uniform``); ``triangular``
weights a window's frames by ``min(j + 1, length - j)`` so frames near a window's edge count less
(MimicMotion-style); ``previous`` keeps, for frames two windows share, the prediction of the earlier
window (our reading of Follow Your Pose's rule "the overlap's latents are taken from the previous
window at every step": with one scheduler step per timestep for the whole clip, taking the earlier
window's noise prediction gives exactly the earlier window's latents on the overlap).
"""

from __future__ import annotations

import numpy as np
import torch

from diffusion.sampling.settings import WEIGHTINGS


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
    """Weights of the frames inside one window (``previous``: 1, the accumulator drops shared frames)."""
    if weighting in ("uniform", "previous"):
        return torch.ones(length)
    if weighting == "triangular":
        j = torch.arange(length, dtype=torch.float32)
        return torch.minimum(j + 1, length - j)
    raise ValueError(f"weighting {weighting!r} is not one of {WEIGHTINGS}")


def frame_weight_totals(frames: int, spans: list[tuple[int, int]], weighting: str = "uniform") -> np.ndarray:
    """Per-frame sum of window weights (uniform: how many windows cover each frame; previous: 1)."""
    total = np.zeros(frames, dtype=np.float64)
    for start, stop in spans:
        weights = frame_weights(stop - start, weighting).double().numpy()
        if weighting == "previous":
            weights = weights * (total[start:stop] == 0)
        total[start:stop] += weights
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
        if self.weighting == "previous":
            w = w * (self.weight[start:stop] == 0)
        self.sum[start:stop] += prediction.float() * w.view(-1, *([1] * (prediction.ndim - 1)))
        self.weight[start:stop] += w

    def mean(self) -> torch.Tensor:
        if bool((self.weight == 0).any()):
            raise ValueError("some frames are covered by no window")
        return (self.sum / self.weight.view(-1, *([1] * (self.sum.ndim - 1)))).to(self.dtype)

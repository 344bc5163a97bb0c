"""The batch-overlapped denoising loop (Make-Your-Anchor Algorithm 1), generic over the model.

Per step: every window's noise prediction is added into a per-frame weighted sum, the sum is
divided by the per-frame weight total, and ONE scheduler step advances the whole sequence.
Model activations are bounded by the window; the latents of all frames (4 x H/8 x W/8 each) stay
in memory. diffusers has no such loop; this one calls the same components its pipelines call.
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch

from diffusion.temporal.windows import OverlapAccumulator
from motion.progress import progress

# predict(latents[start:stop], t, step_index, start, stop) -> guided noise prediction for those frames
Predict = Callable[[torch.Tensor, torch.Tensor, int, int, int], torch.Tensor]
# after_step(step_index, latents) -> latents (e.g. re-imposing a fixed background)
AfterStep = Callable[[int, torch.Tensor], torch.Tensor]


def step_kwargs(scheduler, generator: torch.Generator | None, eta: float = 0.0) -> dict:
    """The extra ``scheduler.step`` arguments it accepts (eta for DDIM, generator for stochastic ones)."""
    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "eta" in accepted:
        kwargs["eta"] = eta
    if "generator" in accepted:
        kwargs["generator"] = generator
    return kwargs


def overlapped_denoise(latents: torch.Tensor, scheduler, timesteps: torch.Tensor, predict: Predict,
                       spans: list[tuple[int, int]], *, weighting: str = "uniform", extra_step: dict | None = None,
                       after_step: AfterStep | None = None) -> torch.Tensor:
    """Denoise ``latents`` (frames first) over ``timesteps`` with windows ``spans``."""
    extra_step = extra_step or {}
    for i, t in enumerate(progress(timesteps, desc="denoising", total=len(timesteps), unit="step")):
        acc = OverlapAccumulator(latents, weighting)
        for start, stop in spans:
            acc.add(start, stop, predict(latents[start:stop], t, i, start, stop))
        latents = scheduler.step(acc.mean(), t, latents, **extra_step, return_dict=False)[0]
        if after_step is not None:
            latents = after_step(i, latents)
    return latents

"""The denoising loops, generic over the model: joint (Make-Your-Anchor Algorithm 1) and window by window.

``overlapped_denoise``: per step, every window's noise prediction goes into a per-frame weighted sum
(``diffusion.sampling.windows``), and ONE scheduler step advances the whole sequence. Model
activations are bounded by the window; the latents of all frames (4 x H/8 x W/8 each) stay in memory.

``sequential_denoise``: each window is denoised to the end before the next starts, so a window can
be conditioned on what the previous ones produced (autoregressive methods: Dancing Avatar).

diffusers has no such loops; these call the same components its pipelines call.
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch

from diffusion.sampling.windows import OverlapAccumulator
from motion.progress import progress

# predict(latents[start:stop], t, step_index, start, stop) -> guided noise prediction for those frames
Predict = Callable[[torch.Tensor, torch.Tensor, int, int, int], torch.Tensor]
# after_step(step_index, latents[start:stop], start, stop) -> latents of those frames (e.g. re-imposing a
# fixed background); the joint loop passes the whole clip
AfterStep = Callable[[int, torch.Tensor, int, int], torch.Tensor]
# after_window(start, stop, latents of the window) -> None (sequential loop: the window is finished)
AfterWindow = Callable[[int, int, torch.Tensor], None]


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
            latents = after_step(i, latents, 0, latents.shape[0])
    return latents


def sequential_denoise(latents: torch.Tensor, scheduler, timesteps: torch.Tensor, predict: Predict,
                       spans: list[tuple[int, int]], *, extra_step: dict | None = None,
                       after_step: AfterStep | None = None, after_window: AfterWindow | None = None) -> torch.Tensor:
    """Denoise disjoint windows ``spans`` one after the other, each over all ``timesteps``. The
    scheduler is reset per window (state such as DPM-Solver's history belongs to one trajectory);
    ``after_step`` sees the frames of the current window only."""
    extra_step = extra_step or {}
    latents = latents.clone()
    steps = len(timesteps)
    for start, stop in progress(spans, desc="denoising", total=len(spans), unit="window"):
        scheduler.set_timesteps(steps, device=latents.device)
        for i, t in enumerate(scheduler.timesteps):
            eps = predict(latents[start:stop], t, i, start, stop)
            window = scheduler.step(eps, t, latents[start:stop], **extra_step, return_dict=False)[0]
            latents[start:stop] = window if after_step is None else after_step(i, window, start, stop)
        if after_window is not None:
            after_window(start, stop, latents[start:stop])
    return latents

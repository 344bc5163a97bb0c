"""Classifier-free guidance, batched as diffusers does it: unconditional first, then conditional."""

from __future__ import annotations

import torch


def doubled(x: torch.Tensor, guided: bool) -> torch.Tensor:
    """The model input for both branches (``[x, x]``) when guided, else ``x``."""
    return torch.cat([x] * 2) if guided else x


def combine(eps: torch.Tensor, scale: float) -> torch.Tensor:
    """``uncond + scale * (cond - uncond)`` of a doubled prediction (diffusers' operation order)."""
    uncond, cond = eps.chunk(2)
    return uncond + scale * (cond - uncond)


def is_guided(scale: float) -> bool:
    """Guidance runs two branches only above 1 (at 1 it equals the conditional branch)."""
    return scale > 1.0

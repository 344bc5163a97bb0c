"""Initial latent noise for a frame sequence: independent, shared across frames, or a mix."""

from __future__ import annotations

import math

import torch
from diffusers.utils.torch_utils import randn_tensor


def initial_noise(frames: int, shape: tuple[int, int, int], generator: torch.Generator, *, shared: float = 0.0,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unit-variance noise of shape ``(frames, *shape)``.

    ``shared`` in [0, 1] is the fraction of variance common to all frames:
    ``sqrt(1 - s) * eps_frame + sqrt(s) * eps_common``. 0 draws exactly what diffusers' pipelines
    draw for a batch of ``frames`` images from the same generator (``randn_tensor``); 1 gives every
    frame the same noise (Make-Your-Anchor: "same initial noise for every frame").
    """
    if not 0.0 <= shared <= 1.0:
        raise ValueError(f"shared noise fraction must be in [0, 1], got {shared}")
    own = randn_tensor((frames, *shape), generator=generator, device=torch.device(device), dtype=dtype)
    if shared == 0.0:
        return own
    common = randn_tensor((1, *shape), generator=generator, device=torch.device(device), dtype=dtype)
    if shared == 1.0:
        return common.expand(frames, *shape).clone()
    return math.sqrt(1.0 - shared) * own + math.sqrt(shared) * common

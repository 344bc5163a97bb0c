"""Latents <-> images with a method's VAE, the way diffusers' pipelines do it (scaling, post-processing)."""

from __future__ import annotations

import numpy as np
import torch

from diffusion.loaders.common import Components


@torch.no_grad()
def decode_frames(c: Components, latents: torch.Tensor, chunk: int) -> np.ndarray:
    """(N, 4, h, w) latents -> (N, H, W, 3) uint8, decoding ``chunk`` frames at a time (bounded memory)."""
    out = []
    for start in range(0, latents.shape[0], chunk):
        z = latents[start:start + chunk].to(device=c.device, dtype=c.vae.dtype)
        image = c.vae.decode(z / c.vae.config.scaling_factor, return_dict=False)[0]
        image = (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
        out.append((image * 255).round().astype(np.uint8))
    return np.concatenate(out)


@torch.no_grad()
def encode_image(c: Components, image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 4, H/8, W/8) clean latent (posterior mean, scaled)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device=c.device, dtype=c.vae.dtype)
    return c.vae.encode(x / 127.5 - 1.0).latent_dist.mean * c.vae.config.scaling_factor


def encode_images(c: Components, images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 4, H/8, W/8), one frame at a time (memory bounded by one frame)."""
    return torch.cat([encode_image(c, image) for image in images])

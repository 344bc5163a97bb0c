"""Text -> embeddings and latents <-> images with a method's components, the way diffusers'
Stable Diffusion pipelines do it (same tokenizer padding, VAE scaling, post-processing)."""

from __future__ import annotations

import numpy as np
import torch

from diffusion.models import Components


@torch.no_grad()
def encode_text(c: Components, prompt: str) -> torch.Tensor:
    """(1, tokens, dim) CLIP text embeddings, padded to the tokenizer's max length (no clip skip)."""
    ids = c.tokenizer([prompt], padding="max_length", max_length=c.tokenizer.model_max_length,
                      truncation=True, return_tensors="pt").input_ids
    mask = None
    if getattr(c.text_encoder.config, "use_attention_mask", False):
        mask = (ids != c.tokenizer.pad_token_id).to(c.device)
    return c.text_encoder(ids.to(c.device), attention_mask=mask)[0].to(device=c.device, dtype=c.text_encoder.dtype)


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
    x = torch.from_numpy(image).permute(2, 0, 1)[None].to(device=c.device, dtype=c.vae.dtype) / 127.5 - 1.0
    return c.vae.encode(x).latent_dist.mean * c.vae.config.scaling_factor

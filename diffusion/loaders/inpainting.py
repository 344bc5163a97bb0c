"""9-channel inpainting UNets (SD-inpainting layout): input = [noisy latent 4, mask 1, masked-image
latent 4], mask 1 = repaint (the diffusers convention; Make-Your-Anchor's public code inverts it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffusion.loaders.common import load_pretrained, prepare_modules

INPAINTING_SD15 = "stable-diffusion-v1-5/stable-diffusion-inpainting"
IN_CHANNELS = 9


def load_inpainting_unet(source: str, device: torch.device, dtype: torch.dtype, subfolder: str = "unet"):
    """A 9-channel ``UNet2DConditionModel``; another input width is a one-line error."""
    from diffusers import UNet2DConditionModel

    from motion.errors import UserError

    unet = load_pretrained(UNet2DConditionModel, source, subfolder=subfolder, torch_dtype=dtype)
    if unet.config.in_channels != IN_CHANNELS:
        raise UserError(source, f"is not an inpainting UNet: {unet.config.in_channels} input channels, need 9")
    prepare_modules(device, unet)
    return unet


def inpainting_input(noisy: torch.Tensor, mask: torch.Tensor, masked_latents: torch.Tensor) -> torch.Tensor:
    """The UNet input: ``mask`` (N, 1, H, W) in pixels or latent cells (resized to the latent grid)."""
    if mask.shape[-2:] != noisy.shape[-2:]:
        mask = F.interpolate(mask, size=noisy.shape[-2:])
    return torch.cat([noisy, mask.to(noisy.dtype), masked_latents.to(noisy.dtype)], dim=1)


def tiny_inpainting_unet() -> torch.nn.Module:
    from diffusion.loaders.sd15 import tiny_unet

    return tiny_unet(in_channels=IN_CHANNELS)

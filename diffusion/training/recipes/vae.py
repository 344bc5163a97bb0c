"""``avatarcine train vae``: a small ``AutoencoderKL`` (diffusers) learned from scratch on the rgb frames
of passes folders, for latent methods whose base has no pretrained VAE (the embedded model,
``diffusion/embedded``).

- Loss: L1 + MSE of the reconstruction decoded from the posterior mean (deterministic: what the
  latent methods encode and decode), pixels inside the ``mask`` pass weighted ``1 + mask_weight`` (the
  person is what the methods are scored on), plus ``kl_weight`` x the mean KL of the posterior
  against N(0, 1) (keeps the latents bounded and smooth for diffusion).
- ``scaling_factor`` of the saved config: 1 / the standard deviation of the posterior means over up to
  256 training frames, so the latents a diffusion model sees have unit variance (SD's 0.18215 is the
  same quantity for its VAE).
- Output: ``OUTPUT/vae/`` (``AutoencoderKL.from_pretrained`` reads it).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from diffusion.training.config import LR_SCHEDULERS, ImageTrainConfig
from diffusion.training.datasets import FrameDataset, open_folders
from diffusion.training.trainer import Recipe, Setup

SCALE_FRAMES = 256


class VaeTrainConfig(ImageTrainConfig):
    """``avatarcine train vae`` (see the module doc)."""

    PATHS: ClassVar[dict[str, str | None]] = {"data": None, "output": None}
    RESUME_FIXED: ClassVar[tuple[str, ...]] = ImageTrainConfig.RESUME_FIXED + (
        "block_out_channels", "latent_channels", "layers_per_block")

    model: str = Field("none", description="unused (the VAE starts from random weights)")
    resolution: int | tuple[int, int] = 128
    learning_rate: float = 5e-4
    lr_scheduler: Literal[LR_SCHEDULERS] = "constant"  # type: ignore[valid-type]
    block_out_channels: list[int] = Field([32, 64, 64], min_length=2,
                                          description="channels per level; the VAE downsamples 2^(levels-1)")
    latent_channels: int = Field(4, ge=1)
    layers_per_block: int = Field(1, ge=1)
    norm_num_groups: int = Field(16, ge=1)
    kl_weight: float = Field(1e-6, ge=0)
    mask_pass: str | None = Field("mask", description="pass weighting the loss inside the actor (None: uniform)")
    mask_weight: float = Field(4.0, ge=0)
    validation_frames: int = Field(4, ge=1)


def new_vae(config: VaeTrainConfig) -> torch.nn.Module:
    """A seeded, randomly initialised ``AutoencoderKL`` of the config's shape."""
    from diffusers import AutoencoderKL

    levels = len(config.block_out_channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=config.latent_channels,
                             block_out_channels=tuple(config.block_out_channels),
                             down_block_types=("DownEncoderBlock2D",) * levels,
                             up_block_types=("UpDecoderBlock2D",) * levels, layers_per_block=config.layers_per_block,
                             norm_num_groups=config.norm_num_groups, sample_size=config.size[1])


class VaeRecipe(Recipe):
    name = "vae"
    Config = VaeTrainConfig
    final = "vae"

    def setup(self, config: VaeTrainConfig, device: torch.device, weight_dtype: torch.dtype) -> Setup:
        passes = [config.mask_pass] if config.mask_pass else []
        folders = open_folders(config.data, passes, "rgb")
        vae = new_vae(config).to(device).train()
        factor = 2 ** (len(config.block_out_channels) - 1)
        dataset = FrameDataset(folders, passes, config.size, 1 if passes else 0, multiple=factor)
        record = {"parameters": sum(p.numel() for p in vae.parameters()), "downsampling": factor,
                  "frames": len(dataset)}
        return Setup({"vae": vae}, dataset, record=record, extra={
            "device": device, "mask_weight": config.mask_weight, "kl_weight": config.kl_weight})

    def loss(self, setup: Setup, batch: dict, generator: torch.Generator) -> torch.Tensor:
        vae, device = setup.trainable["vae"], setup.extra["device"]
        x = batch["pixel_values"].to(device)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.mean).sample
        weight = torch.ones_like(x[:, :1])
        if "conditioning_pixel_values" in batch:
            weight = weight + setup.extra["mask_weight"] * batch["conditioning_pixel_values"][:, :1].to(device)
        error = (recon - x).abs() + (recon - x) ** 2
        kl = 0.5 * (posterior.mean ** 2 + posterior.var - 1.0 - posterior.logvar).mean()
        return (error * weight).mean() / weight.mean() + setup.extra["kl_weight"] * kl

    def finish(self, config: VaeTrainConfig, setup: Setup, folder) -> None:
        vae = setup.trainable["vae"]
        vae.register_to_config(scaling_factor=latent_scale(vae, setup.dataset, setup.extra["device"]))
        vae.save_pretrained(folder)

    def validate(self, config: VaeTrainConfig, setup: Setup) -> np.ndarray:
        """Reconstructions (top) above their frames (bottom), the first frames of the first clip."""
        vae, data = setup.trainable["vae"], setup.dataset
        count = min(config.validation_frames, len(data))
        x = torch.stack([data[i]["pixel_values"] for i in range(count)]).to(setup.extra["device"])
        with torch.no_grad():
            recon = vae.decode(vae.encode(x).latent_dist.mean).sample
        return np.concatenate([_uint8(recon), _uint8(x)], axis=1)

    def usage(self, config, final) -> str:
        return f"python -m diffusion.embedded base --vae {final} -o BASE  (then avatarcine train make-your-anchor)"


def _uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def latent_scale(vae: torch.nn.Module, dataset, device: torch.device) -> float:
    """1 / std of the posterior means over up to SCALE_FRAMES frames spread evenly over ``dataset``."""
    picks = np.linspace(0, len(dataset) - 1, min(SCALE_FRAMES, len(dataset))).round().astype(int)
    means = [vae.encode(torch.stack([dataset[int(i)]["pixel_values"] for i in chunk]).to(device)).latent_dist.mean
             for chunk in np.array_split(picks, max(1, len(picks) // 16))]
    return float(1.0 / torch.cat(means).float().std())


RECIPE = VaeRecipe()

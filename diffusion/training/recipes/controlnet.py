"""``avatarcine train controlnet``: a ControlNet over condition passes learns to produce the ``rgb``
pass, the recipe of diffusers' ``examples/controlnet/train_controlnet.py``.

Frozen VAE, UNet and text encoder (in the mixed-precision dtype); a trainable fp32 ControlNet
initialised from the UNet (``ControlNetModel.from_unet``, seeded) or from a given ControlNet; DDPM
forward noising with timesteps uniform over the training schedule; MSE to the noise (``epsilon``) or
to the velocity (``v_prediction``) as the base's scheduler config says. The finished ControlNet is a
``save_pretrained`` folder (``OUTPUT/controlnet/``, with ``avatarcine_training.json`` naming its
passes), loadable wherever a ControlNet folder is accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from diffusion.loaders.controlnet import controlnet_from_unet, load_controlnets
from diffusion.loaders.schedulers import training_scheduler
from diffusion.loaders.sd15 import load_sd15
from diffusion.sampling.prompts import encode_text
from diffusion.training.config import ImageTrainConfig
from diffusion.training.datasets import FrameDataset, common_channels, open_folders
from diffusion.training.trainer import Recipe, Setup
from motion.errors import UserError
from motion.fileio import save_json

TRAINING_INFO = "avatarcine_training.json"  # beside the final ControlNet's config: passes it reads, base, steps
TEXT_CACHE = 1024  # distinct captions whose embeddings are kept


class ControlNetTrainConfig(ImageTrainConfig):
    """``avatarcine train controlnet`` (see the README for an example)."""

    PATHS: ClassVar[dict[str, str | None]] = {**ImageTrainConfig.PATHS, "controlnet": "unet"}
    RESUME_FIXED: ClassVar[tuple[str, ...]] = ImageTrainConfig.RESUME_FIXED + ("passes", "target", "controlnet")

    passes: list[str] = Field(min_length=1, description="condition passes stacked on channels (names or kinds)")
    target: str = Field("rgb", description="pass the ControlNet learns to produce")
    controlnet: str = Field("unet", description="init: `unet` (from_unet) or a ControlNet id/folder/kind")
    validation_frames: int = Field(2, ge=1, description="frames of the first folder generated for validation")
    validation_steps: int = Field(10, ge=1, description="denoising steps of the validation images")


def text_embeddings(components, cache: dict, captions: list[str]) -> torch.Tensor:
    """(B, tokens, dim) frozen text-encoder states, cached per distinct caption (bounded cache)."""
    if len(cache) > TEXT_CACHE:
        cache.clear()
    for text in set(captions) - set(cache):
        cache[text] = encode_text(components, text)
    return torch.cat([cache[text] for text in captions])


def noisy_latents(c, noise_scheduler, pixels: torch.Tensor, generator: torch.Generator, dtype: torch.dtype):
    """(latents, noise, timesteps, noisy latents) of a batch of images in [-1, 1], every draw from ``generator``."""
    latents = c.vae.encode(pixels.to(c.device, dtype)).latent_dist.sample(generator=generator)
    latents = latents * c.vae.config.scaling_factor
    noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(c.device)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],),
                              generator=generator).to(c.device)
    return latents, noise, timesteps, noise_scheduler.add_noise(latents, noise, timesteps)


def diffusion_target(noise_scheduler, latents, noise, timesteps) -> torch.Tensor:
    """What the network predicts: the noise (``epsilon``) or the velocity (``v_prediction``)."""
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return noise_scheduler.get_velocity(latents, noise, timesteps)
    raise UserError("model", f"scheduler prediction_type {kind!r} is not supported (epsilon, v_prediction)")


def freeze(dtype: torch.dtype, *modules: torch.nn.Module) -> None:
    """Frozen parts in the mixed-precision dtype (fp32 stays as loaded)."""
    for module in modules:
        module.requires_grad_(False)
        if dtype != torch.float32:
            module.to(dtype=dtype)


class ControlNetRecipe(Recipe):
    name = "controlnet"
    Config = ControlNetTrainConfig
    final = "controlnet"

    def setup(self, config: ControlNetTrainConfig, device: torch.device, weight_dtype: torch.dtype) -> Setup:
        folders = open_folders(config.data, config.passes, config.target)
        channels = common_channels(folders, config.passes)
        c = load_sd15(config.model, device=str(device), dtype="fp32")
        record = {"models": dict(c.sources)}
        if config.controlnet == "unet":
            controlnet = controlnet_from_unet(c.unet, channels, seed=config.seed)
            record["controlnet_init"] = "from_unet"
        else:
            nets, sources = load_controlnets([config.controlnet], config.model, device, torch.float32)
            controlnet = nets[0]
            record["controlnet_init"] = sources[f"controlnet:{config.controlnet}"]
        controlnet.to(device).train().requires_grad_(True)
        freeze(weight_dtype, c.unet, c.vae, c.text_encoder)
        c.dtype = weight_dtype
        dataset = FrameDataset(folders, config.passes, config.size, controlnet.config.conditioning_channels,
                               target=config.target, prompt=config.prompt, multiple=c.vae_scale_factor)
        noise_scheduler = training_scheduler(c.scheduler.config)
        record.update({"conditioning_channels": dataset.channels, "folders": [str(f.root) for f in folders],
                       "prediction_type": noise_scheduler.config.prediction_type})
        return Setup({"controlnet": controlnet}, dataset,
                     extra={"components": c, "noise_scheduler": noise_scheduler, "text": {}}, record=record)

    def loss(self, setup: Setup, batch: dict, generator: torch.Generator) -> torch.Tensor:
        c, scheduler = setup.extra["components"], setup.extra["noise_scheduler"]
        dtype = c.dtype
        with torch.no_grad():
            latents, noise, timesteps, noisy = noisy_latents(c, scheduler, batch["pixel_values"], generator, dtype)
            text = text_embeddings(c, setup.extra["text"], list(batch["caption"]))
        cond = batch["conditioning_pixel_values"].to(c.device, dtype)
        down, mid = setup.trainable["controlnet"](noisy, timesteps, encoder_hidden_states=text, controlnet_cond=cond,
                                                  return_dict=False)
        pred = c.unet(noisy, timesteps, encoder_hidden_states=text,
                      down_block_additional_residuals=[r.to(dtype) for r in down],
                      mid_block_additional_residual=mid.to(dtype), return_dict=False)[0]
        return F.mse_loss(pred.float(), diffusion_target(scheduler, latents, noise, timesteps).float())

    def finish(self, config: ControlNetTrainConfig, setup: Setup, folder: Path) -> None:
        setup.trainable["controlnet"].save_pretrained(folder)
        save_json(folder / TRAINING_INFO, {"passes": config.passes, "target": config.target, "model": config.model,
                                           "steps": config.steps, "resolution": list(config.size),
                                           "conditioning_channels": setup.dataset.channels})

    def validate(self, config: ControlNetTrainConfig, setup: Setup) -> np.ndarray:
        """The first ``validation_frames`` frames of the first folder, generated per frame with the current
        ControlNet (top) above their target (bottom)."""
        from diffusion.methods.controlnet import METHOD

        c = setup.extra["components"]
        clip = setup.dataset.clips[0]
        settings = METHOD.settings(prompt=config.prompt or "a person", model=config.model,
                                   controlnet=[f"{config.controlnet}={'+'.join(config.passes)}"],
                                   steps=config.validation_steps, seed=config.seed, attention="none", window=None,
                                   overlap=0, max_frames=config.validation_frames,
                                   width=config.size[0], height=config.size[1])
        saved = c.controlnets
        c.controlnets = [setup.trainable["controlnet"]]
        try:
            generated = METHOD.run(clip.folder, settings, c).frames
        finally:
            c.controlnets = saved
        targets = [np.round(setup.dataset.target_image(clip, k) * 255).astype(np.uint8) for k in range(len(generated))]
        return np.stack([np.concatenate([g, t], axis=0) for g, t in zip(generated, targets)])

    def usage(self, config: ControlNetTrainConfig, final: Path) -> str:
        return f"avatarcine generate PASSES --model {config.model} --controlnet {final}={'+'.join(config.passes)}"


RECIPE = ControlNetRecipe()

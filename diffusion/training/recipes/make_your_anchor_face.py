"""``avatarcine train make-your-anchor-face``: the face model of ``--face-enhance``.

Every frame whose face is visible and large enough is cropped with the keypoint alignment that
generation uses (``diffusion.methods.make_your_anchor.face``), target and condition alike, to
``face_size`` pixels. A 9-channel inpainting UNet (input: noisy latent, repaint mask, latent of the
crop with the mask's inside blanked; mask 1 = repaint, the diffusers convention) and a ControlNet over
the condition crop (made from a 4-channel SD 1.5 UNet, as the authors do, or the model's
``controlnet/``) learn to restore the crop, conditioned on the CLIP tokens of the face of a random
frame of the same clip. Full or LoRA training, data and reference dropout as the body recipe. The
output ``OUTPUT/face/`` is a face model folder: ``--face-model OUTPUT/face``, or copy it into the body
model folder as ``face/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from diffusion.loaders.common import load_pretrained, resolve_model
from diffusion.loaders.inpainting import IN_CHANNELS, inpainting_input
from diffusion.methods.make_your_anchor.face import align, head_points, repaint_mask
from diffusion.methods.make_your_anchor.model import FACE, tiny_mya_dir
from diffusion.sampling.settings import SD15
from diffusion.training.recipes.controlnet import diffusion_target, noisy_latents
from diffusion.training.recipes.make_your_anchor import (AnchorDataset, AnchorTrainConfig, MakeYourAnchorRecipe,
                                                         load_models, open_data)
from diffusion.training.datasets import common_channels
from diffusion.training.trainer import Setup
from motion.errors import UserError


class FaceTrainConfig(AnchorTrainConfig):
    """``avatarcine train make-your-anchor-face``."""

    PATHS: ClassVar[dict[str, str | None]] = {**AnchorTrainConfig.PATHS, "controlnet_base": "tiny"}
    RESUME_FIXED: ClassVar[tuple[str, ...]] = AnchorTrainConfig.RESUME_FIXED + (
        "face_size", "face_min_size", "controlnet_base")

    model: str = Field("stable-diffusion-v1-5/stable-diffusion-inpainting",
                       description="9-channel SD 1.5 inpainting base, or a face model folder (tiny: the tiny one)")
    controlnet_base: str = Field(SD15, description="4-channel SD 1.5 whose UNet a new face ControlNet copies")
    face_size: int = Field(256, ge=16, description="crop size (multiple of 8)")
    face_min_size: float = Field(48.0, gt=0, description="skip faces spanning fewer framed pixels")

    @field_validator("face_size")
    @classmethod
    def _multiple_of_8(cls, value):
        if value % 8:
            raise ValueError("must be a multiple of 8")
        return value


class FaceDataset(AnchorDataset):
    """Aligned face crops: ``pixel_values`` (3, S, S) in [-1, 1], ``conditioning_pixel_values`` (C, S, S),
    ``mask`` (1, S, S) (1 = repaint), ``clip``; frames without a usable face give no items."""

    def __init__(self, folders, videos, size: int, min_size: float, *args, **kwargs):
        super().__init__(folders, videos, False, "mask", *args, **kwargs)
        self.size = size
        self.alignments = [[align(p, size, min_size) for p in head_points(c.folder, c.folder.indices, c.framing)]
                           for c in self.clips]
        self.faces = [[k for k, a in enumerate(found) if a is not None] for found in self.alignments]
        self.items = [(c, k) for c, k in self.items if self.alignments[c][k] is not None]
        if not self.items:
            raise UserError("data", f"no frame shows a face spanning {min_size:g} px or more (face_min_size)")
        self.repaint = torch.from_numpy(repaint_mask(size))[None]

    @property
    def channels(self) -> int:
        return self.clips[0].condition.channels

    def crop(self, c: int, k: int) -> np.ndarray:
        """(S, S, 3) uint8 aligned face of frame ``k`` of clip ``c``."""
        return self.alignments[c][k].crop(super().reference(c, k))

    def reference(self, c: int, k: int) -> np.ndarray:
        """The face of the ``k``-th (cyclically) frame of clip ``c`` that has one; a clip without a usable
        face (a back view, a far camera) lends the first clip that has one (the same person)."""
        if not self.faces[c]:
            c = next(i for i, faces in enumerate(self.faces) if faces)   # one exists: checked at construction
        faces = self.faces[c]
        return self.crop(c, faces[k % len(faces)])

    def __getitem__(self, index: int) -> dict:
        c, k = self.items[index]
        align_k = self.alignments[c][k]
        target = torch.from_numpy(self.crop(c, k)).permute(2, 0, 1).float() / 127.5 - 1.0
        cond = align_k.crop(self.clips[c].condition.frames[k])
        cond = torch.from_numpy(cond.reshape(self.size, self.size, -1)).permute(2, 0, 1).float() / 255.0
        return {"pixel_values": target, "conditioning_pixel_values": cond, "mask": self.repaint, "clip": c}


class FaceRecipe(MakeYourAnchorRecipe):
    name = "make-your-anchor-face"
    Config = FaceTrainConfig
    final = FACE

    def setup(self, config: FaceTrainConfig, device: torch.device, weight_dtype: torch.dtype) -> Setup:
        from diffusers import UNet2DConditionModel

        folders, videos = open_data(config)
        channels = common_channels(folders, config.passes)
        folder = str(tiny_mya_dir() / FACE) if config.model == "tiny" else config.model
        base_unet = None
        if not ((Path(folder) / "controlnet").is_dir() and config.controlnet == "auto"):
            base_unet = load_pretrained(UNet2DConditionModel, resolve_model(config.controlnet_base), subfolder="unet")
        c = load_models(config, folder, device, channels, controlnet_unet=base_unet)
        if c.unet.config.in_channels != IN_CHANNELS:
            raise UserError(config.model, f"is not an inpainting model: its UNet takes {c.unet.config.in_channels} "
                                          "channels, need 9")
        dataset = FaceDataset(folders, videos, config.face_size, config.face_min_size, config.passes, config.size,
                              channels, prompt="", multiple=c.vae_scale_factor)
        return self.assemble(config, c, dataset, weight_dtype)

    def loss(self, setup: Setup, batch: dict, generator: torch.Generator) -> torch.Tensor:
        c, scheduler = setup.extra["components"], setup.extra["noise_scheduler"]
        dtype = c.dtype
        with torch.no_grad():
            pixels = batch["pixel_values"].to(c.device, dtype)
            mask = batch["mask"].to(c.device, dtype)
            latents, noise, timesteps, noisy = noisy_latents(c, scheduler, pixels, generator, dtype)
            blanked = pixels * (mask < 0.5)   # diffusers' masked image: the repaint region set to 0
            masked = c.vae.encode(blanked).latent_dist.sample(generator=generator) * c.vae.config.scaling_factor
            tokens = self.tokens(setup, batch, generator)
        pred = self.predict(setup, inpainting_input(noisy, mask, masked), noisy, timesteps, tokens,
                            batch["conditioning_pixel_values"])
        return F.mse_loss(pred.float(), diffusion_target(scheduler, latents, noise, timesteps).float())

    def validate(self, config, setup):
        return None

    def usage(self, config, final: Path) -> str:
        return f"avatarcine generate PASSES --method make-your-anchor --model BODY --face-enhance --face-model {final}"

    def info(self, config: FaceTrainConfig) -> dict:
        return {"passes": config.passes, "uncond": config.uncond, "mode": config.mode, "face_size": config.face_size,
                "reference_dropout": config.reference_dropout, "steps": config.steps, "base": config.model}


RECIPE = FaceRecipe()

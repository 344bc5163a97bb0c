"""``avatarcine train dancing-avatar-frames``: Dancing Avatar's inter-frame module, a ControlNet whose
condition is the previous frame, learns to produce frame k+1 from frame k and frame k+1's caption.

As in the paper the T2I model (VAE, UNet, text encoder) is frozen and only the module trains (AdamW,
lr 5e-5 by default); the module starts as a copy of the UNet's encoder with zero output convolutions
(``ControlNetModel.from_unet``, so at step 0 it changes nothing) or from a given ControlNet. Data:
passes folders (their ``rgb`` frames), folders of frames, or video files. Optionally (not in the
paper) a frozen pose ControlNet over frame k+1's passes acts during training, as it will at
generation, so the module learns what the pose does not already give. The noising, target and
frozen parts are the ControlNet recipe's. The finished module is a ``save_pretrained`` folder
(``OUTPUT/interframe/``) for ``avatarcine generate --method dancing-avatar --interframe``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from diffusion.loaders.controlnet import controlnet_from_unet, load_controlnets
from diffusion.loaders.schedulers import training_scheduler
from diffusion.loaders.sd15 import load_sd15
from diffusion.training.config import ImageTrainConfig
from diffusion.training.datasets import common_channels, open_folders
from diffusion.training.recipes.controlnet import (TRAINING_INFO, diffusion_target, freeze, noisy_latents,
                                                   text_embeddings)
from diffusion.training.recipes.dancing_avatar_data import split_data, pair_dataset
from diffusion.training.trainer import Recipe, Setup
from motion.fileio import save_json


class InterFrameTrainConfig(ImageTrainConfig):
    """``avatarcine train dancing-avatar-frames`` (see the README for an example)."""

    PATHS: ClassVar[dict[str, str | None]] = {**ImageTrainConfig.PATHS, "interframe": "unet"}
    RESUME_FIXED: ClassVar[tuple[str, ...]] = ImageTrainConfig.RESUME_FIXED + ("target", "interframe",
                                                                               "pose_controlnet", "pose_passes")

    target: str = Field("rgb", description="pass of passes folders holding the frames")
    interframe: str = Field("unet", description="init: `unet` (from_unet) or a ControlNet id/folder to continue")
    pose_controlnet: str | None = Field(None, description="frozen pose ControlNet active in training (e.g. openpose)")
    pose_passes: list[str] = Field(["skeleton"], min_length=1, description="passes the pose ControlNet reads")
    learning_rate: float = Field(5e-5, gt=0)


class PreviousAsCondition(torch.utils.data.Dataset):
    """A pair dataset whose previous frame becomes ``interframe_pixel_values`` in [0, 1] (a ControlNet input)."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.pairs[index])
        item["interframe_pixel_values"] = (item.pop("previous_pixel_values") + 1.0) / 2.0
        return item


class InterFrameRecipe(Recipe):
    name = "dancing-avatar-frames"
    Config = InterFrameTrainConfig
    final = "interframe"

    def setup(self, config: InterFrameTrainConfig, device: torch.device, weight_dtype: torch.dtype) -> Setup:
        passes, folders, channels = config.pose_passes if config.pose_controlnet else [], split_data(config.data)[0], 0
        if passes and folders:
            channels = common_channels(open_folders(folders, passes, config.target), passes)
        pairs = pair_dataset(config, passes, channels)  # bad data fails before any model loads
        c = load_sd15(config.model, device=str(device), dtype="fp32")
        record = {"models": dict(c.sources)}
        if config.interframe == "unet":
            module = controlnet_from_unet(c.unet, 3, seed=config.seed)
            record["interframe_init"] = "from_unet"
        else:
            module = load_controlnets([config.interframe], config.model, device, torch.float32)[0][0]
            record["interframe_init"] = config.interframe
        module.to(device).train().requires_grad_(True)
        pose = None
        if config.pose_controlnet:
            nets, sources = load_controlnets([config.pose_controlnet], config.model, device, weight_dtype)
            pose, record["pose_controlnet"] = nets[0], sources[f"controlnet:{config.pose_controlnet}"]
        freeze(weight_dtype, c.unet, c.vae, c.text_encoder)
        c.dtype = weight_dtype
        dataset = PreviousAsCondition(pairs)
        noise_scheduler = training_scheduler(c.scheduler.config)
        record.update({"prediction_type": noise_scheduler.config.prediction_type})
        return Setup({"interframe": module}, dataset,
                     extra={"components": c, "noise_scheduler": noise_scheduler, "text": {}, "pose": pose},
                     record=record)

    def loss(self, setup: Setup, batch: dict, generator: torch.Generator) -> torch.Tensor:
        c, scheduler, pose = setup.extra["components"], setup.extra["noise_scheduler"], setup.extra["pose"]
        dtype = c.dtype
        with torch.no_grad():
            latents, noise, timesteps, noisy = noisy_latents(c, scheduler, batch["pixel_values"], generator, dtype)
            text = text_embeddings(c, setup.extra["text"], list(batch["caption"]))
            if pose is not None:
                pose_down, pose_mid = pose(noisy, timesteps, encoder_hidden_states=text, return_dict=False,
                                           controlnet_cond=batch["conditioning_pixel_values"].to(c.device, dtype))
        down, mid = setup.trainable["interframe"](noisy, timesteps, encoder_hidden_states=text, return_dict=False,
                                                  controlnet_cond=batch["interframe_pixel_values"].to(c.device, dtype))
        down, mid = [r.to(dtype) for r in down], mid.to(dtype)
        if pose is not None:  # MultiControlNetModel's sum: pose first, then the module
            down, mid = [p + r for p, r in zip(pose_down, down)], pose_mid + mid
        pred = c.unet(noisy, timesteps, encoder_hidden_states=text, down_block_additional_residuals=down,
                      mid_block_additional_residual=mid, return_dict=False)[0]
        return F.mse_loss(pred.float(), diffusion_target(scheduler, latents, noise, timesteps).float())

    def finish(self, config: InterFrameTrainConfig, setup: Setup, folder: Path) -> None:
        setup.trainable["interframe"].save_pretrained(folder)
        save_json(folder / TRAINING_INFO, {"recipe": self.name, "condition": "previous frame", "model": config.model,
                                           "pose_controlnet": config.pose_controlnet, "steps": config.steps,
                                           "resolution": list(config.size)})

    def usage(self, config: InterFrameTrainConfig, final: Path) -> str:
        return f"avatarcine generate PASSES --method dancing-avatar --model {config.model} --interframe {final}"


RECIPE = InterFrameRecipe()

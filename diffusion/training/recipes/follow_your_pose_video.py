"""``avatarcine train follow-your-pose-video``: Follow Your Pose stage 2, temporal coherence from
pose-free clips.

Items are clips of ``frames`` frames every ``stride`` frames of the ``rgb`` pass (``ClipDataset``, no
condition pass: the pose features are off in this stage, as the authors). The UNet is inflated
(``diffusion.methods.follow_your_pose.inflate``: zero-initialised temporal attention after every
transformer block, cross-frame self-attention over frame 0 and frame i-1); only the temporal
attention and the queries of both attention layers (``attn1.to_q``, ``attn2.to_q``) train. One
timestep per clip, noise per frame, MSE to the noise (or velocity); VAE and text encoder frozen.

Output: ``OUTPUT/follow-your-pose/temporal.safetensors`` (exactly the trained tensors + metadata)
and, when the config names the stage-1 encoder, a copy of it in ``pose_encoder/``: the folder is what
``generate --method follow-your-pose --temporal`` loads onto the base model. Checkpoints hold the
same file.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from diffusion.attention.frames import frame_attention_rules
from diffusion.attention.install import FrameInfo, processors
from diffusion.loaders.schedulers import training_scheduler
from diffusion.loaders.sd15 import load_sd15
from diffusion.methods.follow_your_pose import WEIGHTS
from diffusion.methods.follow_your_pose.inflate import inflate, load_temporal, save_temporal, set_trainable
from diffusion.methods.follow_your_pose.parts import POSE_ENCODER
from diffusion.training.config import LR_SCHEDULERS, ImageTrainConfig
from diffusion.training.datasets import ClipDataset, open_folders
from diffusion.training.recipes.controlnet import diffusion_target, freeze, text_embeddings
from diffusion.training.recipes.follow_your_pose_pose import validation_strip
from diffusion.training.trainer import Recipe, Setup
from motion.errors import UserError


class TemporalTrainConfig(ImageTrainConfig):
    """``avatarcine train follow-your-pose-video`` (see the README)."""

    PATHS: ClassVar[dict[str, str | None]] = {**ImageTrainConfig.PATHS, "pose_encoder": "none"}
    RESUME_FIXED: ClassVar[tuple[str, ...]] = ImageTrainConfig.RESUME_FIXED + ("target", "frames", "stride")

    target: str = Field("rgb", description="pass the clips are made of")
    frames: int = Field(8, ge=2, description="frames per clip (the paper: 8)")
    stride: int = Field(2, ge=1, description="take every stride-th frame (the authors' dataset default: 2)")
    pose_encoder: str = Field("none", description="stage-1 encoder folder copied into the output (not used in "
                                                  "training), or none")
    validation_frames: int = Field(8, ge=1, description="frames of the first folder generated for validation")
    validation_steps: int = Field(10, ge=1, description="denoising steps of the validation clip")
    learning_rate: float = Field(3e-5, gt=0)
    lr_scheduler: Literal[LR_SCHEDULERS] = "constant"  # type: ignore[valid-type]  (the authors: no warmup)


def _encode_clips(c, pixels: torch.Tensor, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """(B, F, 3, H, W) in [-1, 1] -> (B * F, 4, H/8, W/8) scaled latents (posterior samples)."""
    flat = pixels.flatten(0, 1).to(c.device, dtype)
    return c.vae.encode(flat).latent_dist.sample(generator=generator) * c.vae.config.scaling_factor


class TemporalRecipe(Recipe):
    name = "follow-your-pose-video"
    Config = TemporalTrainConfig
    final = "follow-your-pose"

    def setup(self, config: TemporalTrainConfig, device: torch.device, weight_dtype: torch.dtype) -> Setup:
        if config.pose_encoder != "none" and not Path(config.pose_encoder).is_dir():
            raise UserError("pose_encoder", f"{config.pose_encoder}: no such folder (the stage-1 output)")
        folders = open_folders(config.data, [], config.target)
        c = load_sd15(config.model, device=str(device), dtype="fp32")
        unet = inflate(c.unet, seed=config.seed)
        trainable = set_trainable(unet)
        unet.train()
        freeze(weight_dtype, c.vae, c.text_encoder)
        c.dtype = weight_dtype
        frames = contextlib.ExitStack()  # cross-frame processors for the life of the run
        frames.enter_context(processors(unet, frame_attention_rules("cross-frame")))
        dataset = ClipDataset(folders, [], config.size, 0, target=config.target, prompt=config.prompt,
                              multiple=c.vae_scale_factor, frames=config.frames, stride=config.stride)
        noise_scheduler = training_scheduler(c.scheduler.config)
        record = {"models": dict(c.sources), "folders": [str(f.root) for f in folders],
                  "trainable_tensors": len(trainable), "prediction_type": noise_scheduler.config.prediction_type}
        return Setup({"unet": unet}, dataset, record=record,
                     extra={"components": c, "noise_scheduler": noise_scheduler, "text": {}, "frames": frames})

    def loss(self, setup: Setup, batch: dict, generator: torch.Generator) -> torch.Tensor:
        c, scheduler = setup.extra["components"], setup.extra["noise_scheduler"]
        pixels = batch["pixel_values"]
        clips, frames = pixels.shape[:2]
        with torch.no_grad():
            latents = _encode_clips(c, pixels, generator, c.dtype)
            noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(c.device)
            per_clip = torch.randint(0, scheduler.config.num_train_timesteps, (clips,), generator=generator)
            timesteps = per_clip.repeat_interleave(frames).to(c.device)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            text = text_embeddings(c, setup.extra["text"], list(batch["caption"])).repeat_interleave(frames, dim=0)
        pred = setup.trainable["unet"](noisy, timesteps, encoder_hidden_states=text,
                                       cross_attention_kwargs=FrameInfo(frames).kwargs(), return_dict=False)[0]
        return F.mse_loss(pred.float(), diffusion_target(scheduler, latents, noise, timesteps).float())

    def metadata(self, config: TemporalTrainConfig) -> dict:
        return {"model": config.model, "frames": config.frames, "stride": config.stride, "steps": config.steps,
                "resolution": list(config.size)}

    def save_module(self, name: str, module: torch.nn.Module, folder: Path) -> None:
        save_temporal(module, folder / WEIGHTS, {"recipe": self.name})

    def load_module(self, name: str, module: torch.nn.Module, folder: Path) -> None:
        load_temporal(module, folder / WEIGHTS)

    def finish(self, config: TemporalTrainConfig, setup: Setup, folder: Path) -> None:
        save_temporal(setup.trainable["unet"], folder / WEIGHTS, {"recipe": self.name, **self.metadata(config)})
        if config.pose_encoder != "none":
            shutil.copytree(config.pose_encoder, folder / POSE_ENCODER)

    def validate(self, config: TemporalTrainConfig, setup: Setup) -> np.ndarray | None:
        """With the stage-1 encoder named and a skeleton pass in the first folder: its first
        ``validation_frames`` frames generated as one clip with the current temporal weights (top)
        above their target (bottom); else None (stage 2 itself needs no poses)."""
        from diffusion.loaders.adapter import load_adapter

        if config.pose_encoder == "none" or "skeleton" not in setup.dataset.clips[0].folder.meta["passes"]:
            return None
        c = setup.extra["components"]
        if "pose_encoder" not in c.extra:
            c.extra["pose_encoder"] = load_adapter(config.pose_encoder, c.device, c.dtype)
        # the UNet is already inflated with the weights being trained; "init" only turns frame attention on
        return validation_strip(config, setup, c, temporal="init")

    def usage(self, config: TemporalTrainConfig, final: Path) -> str:
        encoder = "" if config.pose_encoder != "none" else " --pose-encoder STAGE1"
        return (f"avatarcine generate PASSES --method follow-your-pose --model {config.model} --temporal {final}"
                f"{encoder} --prompt ...")


RECIPE = TemporalRecipe()

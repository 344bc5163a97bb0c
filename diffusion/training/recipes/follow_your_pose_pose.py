"""``avatarcine train follow-your-pose-pose``: Follow Your Pose stage 1, the pose encoder.

(frame, skeleton, caption) items of our renders (``FrameDataset``); a T2I-Adapter-shaped encoder
(diffusers ``T2IAdapter``, full adapter, the UNet's block widths, 2 residual blocks per level,
downscale 8) over the skeleton pass, its features added after the last layer of each UNet down block
(``down_intrablock_additional_residuals``). The encoder is zero-initialised (its features are exactly
0, so training starts from the base model, as the paper says) and is the only part that trains;
VAE, UNet and text encoder stay frozen. DDPM noising, MSE to the noise (or velocity), as the
ControlNet recipe (whose helpers this reuses). The finished encoder is a ``save_pretrained``
``T2IAdapter`` folder (``OUTPUT/pose_encoder/``) for ``generate --method follow-your-pose
--pose-encoder``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from diffusion.loaders.adapter import load_adapter, new_adapter, zero_adapter_outputs
from diffusion.loaders.schedulers import training_scheduler
from diffusion.loaders.sd15 import load_sd15
from diffusion.training.config import ImageTrainConfig
from diffusion.training.datasets import FrameDataset, common_channels, open_folders
from diffusion.training.recipes.controlnet import diffusion_target, freeze, noisy_latents, text_embeddings
from diffusion.training.trainer import Recipe, Setup
from motion.fileio import save_json

TRAINING_INFO = "avatarcine_training.json"
NEW = "new"


class PoseEncoderTrainConfig(ImageTrainConfig):
    """``avatarcine train follow-your-pose-pose`` (see the README)."""

    PATHS: ClassVar[dict[str, str | None]] = {**ImageTrainConfig.PATHS, "pose_encoder": NEW}
    RESUME_FIXED: ClassVar[tuple[str, ...]] = ImageTrainConfig.RESUME_FIXED + ("pose_pass", "target", "pose_encoder",
                                                                               "num_res_blocks")

    pose_pass: str = Field("skeleton", description="pass the pose encoder reads")
    target: str = Field("rgb", description="pass the model learns to produce")
    pose_encoder: str = Field(NEW, description="`new` (zero-initialised) or a T2I-Adapter id/folder to fine-tune")
    num_res_blocks: int = Field(2, ge=1, description="residual blocks per level of a new encoder")
    validation_frames: int = Field(2, ge=1, description="frames of the first folder generated for validation")
    validation_steps: int = Field(10, ge=1, description="denoising steps of the validation images")


class PoseEncoderRecipe(Recipe):
    name = "follow-your-pose-pose"
    Config = PoseEncoderTrainConfig
    final = "pose_encoder"

    def setup(self, config: PoseEncoderTrainConfig, device: torch.device, weight_dtype: torch.dtype) -> Setup:
        folders = open_folders(config.data, [config.pose_pass], config.target)
        channels = common_channels(folders, [config.pose_pass])
        c = load_sd15(config.model, device=str(device), dtype="fp32")
        record = {"models": dict(c.sources)}
        if config.pose_encoder == NEW:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                encoder = new_adapter(c.unet, in_channels=channels, num_res_blocks=config.num_res_blocks)
            zero_adapter_outputs(encoder)
            record["pose_encoder_init"] = "new, zero-initialised"
        else:
            encoder = load_adapter(config.pose_encoder, device, torch.float32)
            record["pose_encoder_init"] = config.pose_encoder
        encoder.to(device).train().requires_grad_(True)
        freeze(weight_dtype, c.unet, c.vae, c.text_encoder)
        c.dtype = weight_dtype
        dataset = FrameDataset(folders, [config.pose_pass], config.size, encoder.config.in_channels,
                               target=config.target, prompt=config.prompt, multiple=c.vae_scale_factor)
        noise_scheduler = training_scheduler(c.scheduler.config)
        record.update({"folders": [str(f.root) for f in folders],
                       "prediction_type": noise_scheduler.config.prediction_type})
        return Setup({"pose_encoder": encoder}, dataset,
                     extra={"components": c, "noise_scheduler": noise_scheduler, "text": {}}, record=record)

    def loss(self, setup: Setup, batch: dict, generator: torch.Generator) -> torch.Tensor:
        c, scheduler = setup.extra["components"], setup.extra["noise_scheduler"]
        with torch.no_grad():
            latents, noise, timesteps, noisy = noisy_latents(c, scheduler, batch["pixel_values"], generator, c.dtype)
            text = text_embeddings(c, setup.extra["text"], list(batch["caption"]))
        features = setup.trainable["pose_encoder"](batch["conditioning_pixel_values"].to(c.device))
        pred = c.unet(noisy, timesteps, encoder_hidden_states=text,
                      down_intrablock_additional_residuals=[f.to(c.dtype) for f in features], return_dict=False)[0]
        return F.mse_loss(pred.float(), diffusion_target(scheduler, latents, noise, timesteps).float())

    def finish(self, config: PoseEncoderTrainConfig, setup: Setup, folder: Path) -> None:
        setup.trainable["pose_encoder"].save_pretrained(folder)
        save_json(folder / TRAINING_INFO, {"pose_pass": config.pose_pass, "target": config.target,
                                           "model": config.model, "steps": config.steps,
                                           "resolution": list(config.size)})

    def validate(self, config: PoseEncoderTrainConfig, setup: Setup) -> np.ndarray:
        """The first ``validation_frames`` frames of the first folder generated per frame with the
        current encoder (top) above their target (bottom)."""
        from diffusion.methods.follow_your_pose import METHOD

        c = setup.extra["components"]
        clip = setup.dataset.clips[0]
        settings = METHOD.settings(prompt=config.prompt or "a person", model=config.model, pose_pass=config.pose_pass,
                                   steps=config.validation_steps, seed=config.seed, window=None,
                                   max_frames=min(config.validation_frames, len(clip)),
                                   width=config.size[0], height=config.size[1])
        c.extra["pose_encoder"] = setup.trainable["pose_encoder"]
        generated = METHOD.run(clip.folder, settings, c).frames
        targets = [np.round(setup.dataset.target_image(clip, k) * 255).astype(np.uint8) for k in range(len(generated))]
        return np.stack([np.concatenate([g, t], axis=0) for g, t in zip(generated, targets)])

    def usage(self, config: PoseEncoderTrainConfig, final: Path) -> str:
        return (f"avatarcine generate PASSES --method follow-your-pose --model {config.model} --pose-encoder {final} "
                f"--pose-pass {config.pose_pass} --prompt ...")


RECIPE = PoseEncoderRecipe()

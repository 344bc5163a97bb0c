"""``avatarcine train dancing-avatar-lora``: Dancing Avatar's intra-frame alignment, a LoRA on the UNet's
cross-attention (``attn2`` query, key, value, output) trained on images of one character, so that with
the same prompt clothes and face stay the same across poses.

The base model is frozen; only the LoRA matrices train (B starts at zero: at step 0 the model is
unchanged). Data: passes folders of one identity (their ``rgb`` frames and captions) or folders of
user images with same-stem ``.txt`` captions. The finished LoRA is ``OUTPUT/lora/pytorch_lora_weights.safetensors``
in diffusers' key convention (``StableDiffusionPipeline.load_lora_weights(OUTPUT/lora)`` loads it)
with its rank, alpha and targets in the file's metadata, for ``avatarcine generate --method
dancing-avatar --lora``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from diffusion.loaders.lora import add_lora, lora_parameters, read_lora, save_lora
from diffusion.loaders.schedulers import training_scheduler
from diffusion.loaders.sd15 import load_sd15
from diffusion.training.config import ImageTrainConfig
from diffusion.training.recipes.controlnet import diffusion_target, freeze, noisy_latents, text_embeddings
from diffusion.training.recipes.dancing_avatar_data import frame_dataset
from diffusion.training.trainer import Recipe, Setup

WEIGHTS = "pytorch_lora_weights.safetensors"  # diffusers' default LoRA file name
ATTN2 = ("attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")


class LoraTrainConfig(ImageTrainConfig):
    """``avatarcine train dancing-avatar-lora`` (see the README for an example)."""

    RESUME_FIXED: ClassVar[tuple[str, ...]] = ImageTrainConfig.RESUME_FIXED + ("target", "rank", "alpha", "targets")

    target: str = Field("rgb", description="pass of passes folders holding the character's images")
    rank: int = Field(4, ge=1, le=256, description="LoRA rank")
    alpha: float | None = Field(None, gt=0, description="LoRA alpha (default: the rank, scale 1)")
    targets: list[str] = Field(list(ATTN2), min_length=1, description="module name endings that get a LoRA")
    learning_rate: float = Field(1e-4, gt=0)


class LoraRecipe(Recipe):
    name = "dancing-avatar-lora"
    Config = LoraTrainConfig
    final = "lora"

    @staticmethod
    def metadata(unet: torch.nn.Module, model: str | None = None) -> dict:
        """What the LoRA file records: rank, alpha and targets (from the injected peft config), the base."""
        lora = unet.peft_config["default"]
        out = {"rank": lora.r, "alpha": lora.lora_alpha, "targets": sorted(lora.target_modules),
               "recipe": "dancing-avatar-lora"}
        return {**out, "model": model} if model else out

    def setup(self, config: LoraTrainConfig, device: torch.device, weight_dtype: torch.dtype) -> Setup:
        dataset = frame_dataset(config)  # bad data fails before any model loads
        c = load_sd15(config.model, device=str(device), dtype="fp32")
        freeze(weight_dtype, c.unet, c.vae, c.text_encoder)
        with torch.random.fork_rng(devices=[]):  # LoRA A from the config's seed, B zero
            torch.manual_seed(config.seed)
            add_lora(c.unet, list(config.targets), config.rank, config.alpha)
        for p in lora_parameters(c.unet):
            p.data = p.data.float()
            p.requires_grad_(True)
        c.unet.train()
        c.dtype = weight_dtype
        noise_scheduler = training_scheduler(c.scheduler.config)
        return Setup({"unet": c.unet}, dataset,
                     extra={"components": c, "noise_scheduler": noise_scheduler, "text": {}},
                     record={"models": dict(c.sources), "lora": self.metadata(c.unet, config.model),
                             "prediction_type": noise_scheduler.config.prediction_type})

    def loss(self, setup: Setup, batch: dict, generator: torch.Generator) -> torch.Tensor:
        c, scheduler = setup.extra["components"], setup.extra["noise_scheduler"]
        with torch.no_grad():
            latents, noise, timesteps, noisy = noisy_latents(c, scheduler, batch["pixel_values"], generator, c.dtype)
            text = text_embeddings(c, setup.extra["text"], list(batch["caption"]))
        pred = setup.trainable["unet"](noisy, timesteps, encoder_hidden_states=text, return_dict=False)[0]
        return F.mse_loss(pred.float(), diffusion_target(scheduler, latents, noise, timesteps).float())

    def save_module(self, name: str, module: torch.nn.Module, folder: Path) -> None:
        """Checkpoints: ``<name>/pytorch_lora_weights.safetensors`` (the LoRA only, usable as is)."""
        (folder / name).mkdir(parents=True, exist_ok=True)
        save_lora(module, folder / name / WEIGHTS, self.metadata(module))

    def load_module(self, name: str, module: torch.nn.Module, folder: Path) -> None:
        from peft import set_peft_model_state_dict

        tensors, _ = read_lora(folder / name / WEIGHTS)
        set_peft_model_state_dict(module, {k[len("unet."):]: v for k, v in tensors.items()})

    def finish(self, config: LoraTrainConfig, setup: Setup, folder: Path) -> None:
        unet = setup.trainable["unet"]
        save_lora(unet, folder / WEIGHTS, self.metadata(unet, config.model))

    def usage(self, config: LoraTrainConfig, final: Path) -> str:
        return f"avatarcine generate PASSES --method dancing-avatar --model {config.model} --lora {final / WEIGHTS}"


RECIPE = LoraRecipe()

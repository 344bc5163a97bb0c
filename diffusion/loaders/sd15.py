"""Stable Diffusion 1.5-family parts: UNet, VAE, CLIP text encoder + tokenizer, scheduler config.

From a hub id or folder in the diffusers layout (``unet/``, ``vae/``, ``text_encoder/``,
``tokenizer/``, ``scheduler/``), or a single ``.safetensors``/``.ckpt`` file (``model_config`` names
its diffusers config). ``tiny_*`` build the small random parts of the tiny model (``loaders.tiny``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from diffusion.loaders.common import (SINGLE_FILE_SUFFIXES, TINY, Components, load_pretrained, pick_device,
                                      pick_dtype, prepare_modules, resolve_model)
from diffusion.loaders.schedulers import make_scheduler

TOKENS = 16          # tiny tokenizer model_max_length / text positions (SD uses 77)
TINY_CONTEXT = 32    # tiny cross-attention width (SD 1.5: 768)


def load_sd15(model: str, *, scheduler: str = "ddim", device: str | None = None, dtype: str | None = None,
              model_config: str | None = None, unet_subfolder: str | None = "unet") -> Components:
    """An SD 1.5-family base on one device/dtype, frozen for inference (``unet_subfolder``: e.g. an
    inpainting UNet kept beside the plain one; None: no UNet, the caller loads another kind)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    dev = pick_device(device)
    dt = pick_dtype(dev, dtype)
    base = resolve_model(model)
    sources = {"model": model if model != TINY else f"tiny ({base})"}
    if base.endswith(SINGLE_FILE_SUFFIXES):
        kwargs = {"config": model_config} if model_config else {}
        pipe = load_pretrained(StableDiffusionPipeline, base, safety_checker=None, torch_dtype=dt, **kwargs)
        unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
        scheduler_config = pipe.scheduler.config
    else:
        unet = (load_pretrained(UNet2DConditionModel, base, subfolder=unet_subfolder, torch_dtype=dt)
                if unet_subfolder else None)
        vae = load_pretrained(AutoencoderKL, base, subfolder="vae", torch_dtype=dt)
        text_encoder = load_pretrained(CLIPTextModel, base, subfolder="text_encoder", dtype=dt)
        tokenizer = load_pretrained(CLIPTokenizer, base, subfolder="tokenizer")
        scheduler_config = load_pretrained(DDIMScheduler, base, subfolder="scheduler").config
    prepare_modules(dev, *(m for m in (unet, vae, text_encoder) if m is not None))
    return Components(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                      scheduler=make_scheduler(scheduler, scheduler_config), device=dev, dtype=dt, sources=sources)


# ------------------------------------------------------------------------------------------------
# tiny parts (random weights; the caller seeds torch)

def tiny_unet(in_channels: int = 4) -> torch.nn.Module:
    """A two-level SD-shaped UNet (cross-attention width 32, latents downsampled 2x inside)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TINY_CONTEXT, attention_head_dim=4, norm_num_groups=32,
    )


def tiny_vae() -> torch.nn.Module:
    """An ``AutoencoderKL`` that downsamples by 8 like SD's (4 levels), 4 latent channels."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8,
        block_out_channels=(8, 8, 16, 16), sample_size=64,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )


def tiny_text_encoder() -> torch.nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=514, hidden_size=TINY_CONTEXT, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=TOKENS, bos_token_id=512, eos_token_id=513, pad_token_id=513, projection_dim=32,
    ))


def tiny_scheduler():
    """SD 1.5's DDIM schedule (scaled linear betas 0.00085..0.012, steps offset 1)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def _byte_chars() -> list[str]:
    """The printable-unicode stand-in of each byte used by byte-level BPE (GPT-2 / CLIP vocabularies)."""
    keep = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def write_tiny_tokenizer(folder: Path):
    """A CLIPTokenizer over single bytes (no merges) saved to ``folder``: any text tokenises, 514 ids."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": 256 + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": 512, "<|endoftext|>": 513})
    src = folder / "_src"
    src.mkdir(exist_ok=True)
    (src / "vocab.json").write_text(json.dumps(vocab))
    (src / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(vocab=str(src / "vocab.json"), merges=str(src / "merges.txt"), model_max_length=TOKENS)
    tokenizer.save_pretrained(folder)
    for f in src.iterdir():
        f.unlink()
    src.rmdir()
    return tokenizer

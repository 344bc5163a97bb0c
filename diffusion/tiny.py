"""Tiny Stable-Diffusion-1.5-shaped models built from configs, for tests, benchmarks and the demo.

``write_tiny_models(root)`` writes a folder laid out exactly like a hub SD 1.5 repository
(``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``,
``image_encoder/``, ``feature_extractor/``) plus one ControlNet folder per condition kind
(``controlnet-openpose/`` ...), all via ``save_pretrained``; ``diffusion.models`` loads them back
through the same ``from_pretrained`` code path real weights take.

The geometry matches SD 1.5 where it matters for alignment: the VAE downsamples by 8 and the
ControlNet condition embedding downsamples by 8, so a 64x64 image is an 8x8 latent. Weights are
random with a fixed seed (deterministic folder). ControlNet zero-convolutions are given small
random weights so the ControlNets visibly act (a zero-init ControlNet would be a no-op and tests
of conditioning scales could not fail).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

# Condition kind -> input channels of its tiny ControlNet ("stack" = depth(1) + normal(3) + mask(1)).
TINY_CONTROLNETS = {"openpose": 3, "depth": 3, "normal": 3, "mesh": 3, "stack": 5}
TOKENS = 16  # tokenizer model_max_length / text positions (SD uses 77)
SEED = 1234


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


def write_tiny_tokenizer(folder: Path) -> "CLIPTokenizer":  # noqa: F821
    """A CLIPTokenizer over single bytes (no merges): any text tokenises, 514 ids."""
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


def _randomise_zero_convs(controlnet: torch.nn.Module, generator: torch.Generator) -> None:
    """Give the zero-initialised output convolutions small random weights."""
    blocks = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
              controlnet.controlnet_cond_embedding.conv_out]
    with torch.no_grad():
        for block in blocks:
            for p in block.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.05)


def write_tiny_models(root: str | os.PathLike) -> Path:
    """Build every tiny component from configs (seeded) and ``save_pretrained`` them under ``root``."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import (CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig,
                              CLIPVisionModelWithProjection)

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8,
        block_out_channels=(8, 8, 16, 16), sample_size=64,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=514, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=TOKENS, bos_token_id=512, eos_token_id=513, pad_token_id=513, projection_dim=32,
    ))
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
        patch_size=8, projection_dim=32,
    ))
    feature_extractor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    tokenizer = write_tiny_tokenizer(root / "tokenizer")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=feature_extractor,
                                   image_encoder=image_encoder, requires_safety_checker=False)
    pipe.save_pretrained(root)
    generator = torch.Generator().manual_seed(SEED)
    for kind, channels in TINY_CONTROLNETS.items():
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 16, 16),
                                               conditioning_channels=channels)
        _randomise_zero_convs(controlnet, generator)
        controlnet.save_pretrained(root / f"controlnet-{kind}")
    (root / "TINY_MODELS.txt").write_text(
        "Random-weight tiny SD-1.5-shaped models written by avatarcine (diffusion/tiny.py). Not trained.\n")
    return root


def tiny_models_dir() -> Path:
    """The per-user tiny-model folder, written on first use (``$AVATARCINE_CACHE`` or ~/.cache/avatarcine)."""
    base = Path(os.environ.get("AVATARCINE_CACHE", Path.home() / ".cache" / "avatarcine"))
    root = base / "tiny-sd15-v1"
    if not (root / "TINY_MODELS.txt").is_file():
        tmp = base / f".tiny-sd15-v1.{os.getpid()}"
        write_tiny_models(tmp)
        try:
            os.replace(tmp, root)
        except OSError:  # another process won the race; its folder is identical
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return root

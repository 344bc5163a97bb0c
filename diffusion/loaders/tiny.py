"""The tiny model: small random-weight parts of every kind, for tests, benchmarks and CPU checks.

``write_tiny_models(root)`` writes a folder laid out like a hub SD 1.5 repository
(``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``,
``image_encoder/``, ``feature_extractor/``), one ControlNet folder per condition kind
(``controlnet-openpose/`` ...), and the other kinds beside them: ``unet-inpainting/`` (9 channels),
``t2i-adapter/``, ``unet-3d/`` (ModelScope layout) and ``motion-adapter/`` (AnimateDiff), all via
``save_pretrained``; the loaders read them back through the ``from_pretrained`` path real weights take.

The geometry matches SD 1.5 where it matters for alignment: the VAE downsamples by 8 and the
ControlNet condition embedding and the T2I-Adapter downsample by 8, so a 64x64 image is an 8x8
latent. Weights are random with fixed seeds (the folder is deterministic). ControlNet
zero-convolutions are given small random weights so the ControlNets visibly act.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from diffusion.loaders.controlnet import CONDITION_EMBEDDING, TINY_CONTROLNETS, randomise_zero_convs

SEED = 1234
MARKER = "TINY_MODELS.txt"
VERSION = "tiny-sd15-v2"
INPAINTING, ADAPTER, UNET3D, MOTION_ADAPTER = "unet-inpainting", "t2i-adapter", "unet-3d", "motion-adapter"


def _seeded(seed: int, build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def write_tiny_models(root: str | os.PathLike) -> Path:
    """Build every tiny part from configs (seeded) and ``save_pretrained`` them under ``root``."""
    from diffusers import ControlNetModel, StableDiffusionPipeline

    from diffusion.loaders.adapter import new_adapter
    from diffusion.loaders.image_encoder import tiny_image_encoder, tiny_image_processor
    from diffusion.loaders.inpainting import tiny_inpainting_unet
    from diffusion.loaders.sd15 import tiny_scheduler, tiny_text_encoder, tiny_unet, tiny_vae, write_tiny_tokenizer
    from diffusion.loaders.video_unet import tiny_motion_adapter, tiny_unet3d

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)  # one stream for the SD parts and ControlNets, in this order
    unet, vae, text_encoder, image_encoder = tiny_unet(), tiny_vae(), tiny_text_encoder(), tiny_image_encoder()
    tokenizer = write_tiny_tokenizer(root / "tokenizer")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=tiny_scheduler(), safety_checker=None,
                                   feature_extractor=tiny_image_processor(), image_encoder=image_encoder,
                                   requires_safety_checker=False)
    pipe.save_pretrained(root)
    generator = torch.Generator().manual_seed(SEED)
    for kind, channels in TINY_CONTROLNETS.items():
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONDITION_EMBEDDING,
                                               conditioning_channels=channels)
        randomise_zero_convs(controlnet, generator)
        controlnet.save_pretrained(root / f"controlnet-{kind}")
    _seeded(SEED + 1, tiny_inpainting_unet).save_pretrained(root / INPAINTING)
    _seeded(SEED + 2, lambda: new_adapter(unet, num_res_blocks=1)).save_pretrained(root / ADAPTER)
    _seeded(SEED + 3, tiny_unet3d).save_pretrained(root / UNET3D / "unet")
    _seeded(SEED + 4, tiny_motion_adapter).save_pretrained(root / MOTION_ADAPTER)
    (root / MARKER).write_text(
        "Random-weight tiny models written by avatarcine (diffusion/loaders/tiny.py). Not trained.\n")
    return root


def tiny_models_dir() -> Path:
    """The per-user tiny-model folder, written on first use (``$AVATARCINE_CACHE`` or ~/.cache/avatarcine)."""
    base = Path(os.environ.get("AVATARCINE_CACHE", Path.home() / ".cache" / "avatarcine"))
    root = base / VERSION
    if not (root / MARKER).is_file():
        tmp = base / f".{VERSION}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        write_tiny_models(tmp)
        try:
            os.replace(tmp, root)
        except OSError:  # another process won the race; its folder is identical
            shutil.rmtree(tmp, ignore_errors=True)
    return root

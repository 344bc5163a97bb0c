"""A Make-Your-Anchor model folder, in the diffusers layout of ``StableDiffusionControlNetPipeline``:
``unet/``, ``controlnet/``, ``vae/``, ``image_encoder/`` (CLIP vision tower) + ``feature_extractor/``,
``scheduler/``, ``text_encoder/`` + ``tokenizer/`` (only for the empty-text unconditional branch),
``model_index.json``; beside them ``avatarcine_mya.json`` (the passes the ControlNet reads, the
unconditional branch it was trained with), ``reference.png`` (the default appearance) and optionally
``face/`` (the face model, the same layout with a 9-channel ``unet/``). Everything is read back with
``from_pretrained``; training writes exactly this (``save_model``).

``tiny``: a tiny folder of this layout built from the tiny model's parts (``diffusion.loaders.tiny``)
plus a CLIP vision tower giving 10 tokens (the tiny text encoder has 16 positions, so the empty-text
branch can be padded to the image tokens' length, as diffusers pads it) and a seeded reference.png.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from diffusion.loaders.common import TINY, load_pretrained, prepare_modules
from motion.errors import UserError

INFO = "avatarcine_mya.json"
REFERENCE = "reference.png"
FACE = "face"
TINY_VERSION = "tiny-mya-v2"
TINY_SEED = 4321


def tiny_mya_dir(parts: Path | None = None) -> Path:
    """The tiny Make-Your-Anchor folder beside the tiny parts folder ``parts`` (default: the per-user
    one), written on first use."""
    from diffusion.loaders.tiny import MARKER, tiny_models_dir

    parts = Path(parts) if parts is not None else tiny_models_dir()
    root = parts.parent / TINY_VERSION
    if not (root / MARKER).is_file():
        tmp = parts.parent / f".{TINY_VERSION}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        write_tiny_mya(parts, tmp)
        try:
            os.replace(tmp, root)
        except OSError:  # another process won the race; its folder is identical
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def resolve_mya(model: str) -> str:
    """``tiny``, or a tiny parts folder (``--model tiny`` resolved by a shared command), -> the tiny
    Make-Your-Anchor folder; ``embedded`` -> the shipped model's folder; anything else unchanged."""
    from diffusion.loaders.common import is_tiny, resolve_model

    if model == TINY:
        return str(tiny_mya_dir())
    if Path(model).is_dir() and is_tiny(model) and not (Path(model) / "controlnet").is_dir():
        return str(tiny_mya_dir(Path(model)))
    return resolve_model(model)


def tiny_vision_encoder():
    from transformers import CLIPVisionConfig, CLIPVisionModel

    return CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=4, image_size=24, patch_size=8))


def write_tiny_mya(parts: Path, root: Path) -> Path:
    """Tiny body + face models from the tiny parts in ``parts`` (seeded; deterministic)."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTokenizer

    from diffusion.loaders.controlnet import CONDITION_EMBEDDING, controlnet_from_unet, randomise_zero_convs
    from diffusion.loaders.tiny import INPAINTING, MARKER

    unet = UNet2DConditionModel.from_pretrained(parts, subfolder="unet")
    common = dict(vae=AutoencoderKL.from_pretrained(parts, subfolder="vae"),
                  text_encoder=CLIPTextModel.from_pretrained(parts, subfolder="text_encoder"),
                  tokenizer=CLIPTokenizer.from_pretrained(parts, subfolder="tokenizer"),
                  scheduler=DDIMScheduler.from_pretrained(parts, subfolder="scheduler"),
                  feature_extractor=CLIPImageProcessor(size={"shortest_edge": 24},
                                                       crop_size={"height": 24, "width": 24}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        encoder = tiny_vision_encoder()
    controlnet = ControlNetModel.from_pretrained(parts / "controlnet-mesh")
    reference = np.zeros((64, 64, 3), np.uint8)  # a seeded "person": noise in a centred box on grey
    reference[:] = 90
    reference[8:56, 20:44] = np.random.default_rng(TINY_SEED).integers(0, 256, (48, 24, 3), dtype=np.uint8)
    save_model(root, unet=unet, controlnet=controlnet, image_encoder=encoder, info={"passes": ["mesh"]},
               reference=reference, **common)
    face_unet = UNet2DConditionModel.from_pretrained(parts / INPAINTING)
    face_net = controlnet_from_unet(unet, 3, seed=TINY_SEED + 1, embedding=CONDITION_EMBEDDING)
    randomise_zero_convs(face_net, torch.Generator().manual_seed(TINY_SEED + 2))
    save_model(root / FACE, unet=face_unet, controlnet=face_net, image_encoder=encoder, info={"passes": ["mesh"]},
               **common)
    (root / MARKER).write_text("Random-weight tiny Make-Your-Anchor models written by avatarcine. Not trained.\n")
    return root


def save_model(folder: Path, *, unet, controlnet, vae, image_encoder, feature_extractor, scheduler, text_encoder,
               tokenizer, info: dict, reference: np.ndarray | None = None) -> Path:
    """Write a model folder (see the module doc) with ``save_pretrained``."""
    from diffusers import StableDiffusionControlNetPipeline

    pipe = StableDiffusionControlNetPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                             controlnet=controlnet, scheduler=scheduler, safety_checker=None,
                                             feature_extractor=feature_extractor, image_encoder=image_encoder,
                                             requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    (Path(folder) / INFO).write_text(json.dumps(info, indent=1))
    if reference is not None:
        import imageio.v2 as imageio

        imageio.imwrite(Path(folder) / REFERENCE, reference)
    return Path(folder)


def model_info(folder: str) -> dict:
    """``avatarcine_mya.json`` of a model folder ({} when absent: a plain base + given ControlNet)."""
    path = Path(folder) / INFO
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(path, f"unreadable JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(info, dict):
        raise UserError(path, "expected a JSON object")
    return info


def load_parts(model: str, *, controlnet: str | None, image_encoder: str | None, scheduler: str, device, dtype):
    """Components of a model folder: its SD parts (``load_sd15``), ``controlnets=[ControlNet]`` (its
    ``controlnet/`` or ``controlnet``) and the CLIP vision tower + processor in ``extra``
    (``image_encoder``, ``processor``; its ``image_encoder/`` or ``image_encoder``, default ViT-B/32)."""
    from diffusers import ControlNetModel

    from diffusion.loaders.image_encoder import CLIP_B32, load_image_encoder
    from diffusion.loaders.sd15 import load_sd15

    folder = resolve_mya(model)
    c = load_sd15(folder, scheduler=scheduler, device=device, dtype=dtype)
    local = Path(folder)
    if controlnet is None:
        if not (local / "controlnet").is_dir():
            raise UserError(model, "is not a Make-Your-Anchor model folder (no controlnet/): train one with "
                                   "`avatarcine train make-your-anchor`, or name a ControlNet with --controlnet")
        net = load_pretrained(ControlNetModel, folder, subfolder="controlnet", torch_dtype=c.dtype)
        c.sources["controlnet"] = str(local / "controlnet")
    else:
        from diffusion.loaders.controlnet import resolve_controlnet

        source = resolve_controlnet(controlnet, folder)
        net = load_pretrained(ControlNetModel, source, torch_dtype=c.dtype)
        c.sources["controlnet"] = source
    prepare_modules(c.device, net)
    c.controlnets = [net]
    encoder_source = image_encoder or (folder if (local / "image_encoder").is_dir() else CLIP_B32)
    encoder, processor = load_image_encoder(encoder_source, c.device, c.dtype)
    width = int(encoder.config.hidden_size)
    if width != c.unet.config.cross_attention_dim:
        raise UserError(encoder_source, f"gives {width}-wide tokens but the UNet's cross-attention takes "
                                        f"{c.unet.config.cross_attention_dim}")
    c.extra.update(image_encoder=encoder, processor=processor)
    c.sources["image_encoder"] = encoder_source
    return c


def unconditional(c, tokens: torch.Tensor, kind: str) -> torch.Tensor:
    """The classifier-free guidance unconditional context for ``tokens`` (1, T, D): the empty text
    padded to T tokens (the authors', diffusers' default for given ``prompt_embeds``) or zeros."""
    if kind == "zeros":
        return torch.zeros_like(tokens)
    from diffusion.sampling.prompts import encode_text

    if c.text_encoder is None:
        raise UserError("--uncond", "empty-text needs the model's text_encoder/; use --uncond zeros")
    limit = int(c.text_encoder.config.max_position_embeddings)
    if tokens.shape[1] > limit:
        raise UserError("--uncond", f"the text encoder has {limit} positions, fewer than the {tokens.shape[1]} "
                                    "image tokens; use --uncond zeros")
    return encode_text(c, "", length=tokens.shape[1]).to(tokens.dtype)

"""AMG's network and its adapter file.

The network is a video UNet (ModelScope T2V ``UNet3DConditionModel``, or AnimateDiff's
``UNetMotionModel`` = SD 1.5 + ``MotionAdapter``) whose first convolution takes 8 channels per frame:
the noisy latent, then the VAE latent of the avatar video (InstructPix2Pix-style; old weight and bias
copied, new weights zero, so at initialisation the avatar changes nothing), with peft LoRA (rank 4,
A gaussian, B zero) on q, k, v and out of every spatial and temporal attention.

The adapter file is one safetensors file: the LoRA in diffusers' key convention (``unet.<module>.lora_A``)
plus ``unet.conv_in.weight``/``bias``, and JSON metadata naming the base kind, base model and the pass it
was trained on; a file made for another base or pass is refused in one line naming both.
"""

from __future__ import annotations

from pathlib import Path

import torch

from diffusion.loaders.common import Components, is_tiny, resolve_model
from diffusion.loaders.lora import add_lora, lora_layers, lora_parameters, read_lora, save_lora
from diffusion.loaders.schedulers import make_scheduler
from diffusion.loaders.video_unet import ANIMATEDIFF_ADAPTER, MODELSCOPE_T2V
from diffusion.sampling.settings import SD15
from motion.errors import UserError

TARGETS = ("to_q", "to_k", "to_v", "to_out.0")   # every attention projection, spatial and temporal
DEFAULT_MODELS = {"modelscope": MODELSCOPE_T2V, "animatediff": SD15}
CONV_KEYS = ("unet.conv_in.weight", "unet.conv_in.bias")
ADAPTER_FILE = "adapter.safetensors"
AVATAR_CHANNELS = 4


def base_model(base: str, model: str | None) -> str:
    """The model id a run uses: the given one, else the base kind's default."""
    return model or DEFAULT_MODELS[base]


def expand_conv_in(unet: torch.nn.Module, extra: int = AVATAR_CHANNELS) -> torch.nn.Module:
    """``conv_in`` widened by ``extra`` input channels (appended after the latent's): old weight and bias
    copied, new weights zero; the new conv requires grad only if the old one did."""
    old = unet.conv_in
    new = torch.nn.Conv2d(old.in_channels + extra, old.out_channels, old.kernel_size, old.stride, old.padding,
                          bias=True, device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    new.requires_grad_(old.weight.requires_grad)
    unet.conv_in = new
    unet.register_to_config(in_channels=new.in_channels)
    return unet


def make_trainable(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Only LoRA and ``conv_in`` train; returns those parameters."""
    unet.requires_grad_(False)
    params = lora_parameters(unet) + list(unet.conv_in.parameters())
    for p in params:
        p.requires_grad_(True)
    return params


def amg_unet(unet: torch.nn.Module, rank: int = 4, alpha: float | None = None) -> torch.nn.Module:
    """The base UNet turned into AMG's: conv_in 4 -> 8, LoRA of ``rank`` (scale alpha / rank, default 1,
    as the authors') on ``TARGETS``."""
    expand_conv_in(unet)
    return add_lora(unet, list(TARGETS), rank=rank, alpha=alpha)


def load_base(base: str, model: str | None, motion_adapter: str = ANIMATEDIFF_ADAPTER, *, scheduler: str = "ddim",
              device: str | None = None, dtype: str | None = None) -> Components:
    """VAE, text encoder, tokenizer, scheduler and the video UNet of ``base`` (frozen, 4-channel).

    ``modelscope``: a ModelScope T2V pipeline folder / hub id (``unet/`` is a ``UNet3DConditionModel``);
    ``animatediff``: an SD 1.5 model + a ``MotionAdapter``. A tiny-model folder (``--model tiny``) uses
    its ``unet-3d/`` and ``motion-adapter/`` parts. The sampler's timesteps are "leading" with offset 1
    whatever the config says: the authors' DDIM timesteps (951, 901, ..., 1 at 20 steps)."""
    from diffusion.loaders import tiny
    from diffusion.loaders.sd15 import load_sd15
    from diffusion.loaders.video_unet import load_motion_unet, load_unet3d

    name = base_model(base, model)
    root = resolve_model(name)
    small = is_tiny(root)
    if base == "animatediff":
        c = load_sd15(name, scheduler=scheduler, device=device, dtype=dtype)
        if small and motion_adapter == ANIMATEDIFF_ADAPTER:
            motion_adapter = str(Path(root) / tiny.MOTION_ADAPTER)
        c.unet = load_motion_unet(c.unet, motion_adapter, c.device, c.dtype)
        c.sources["motion_adapter"] = motion_adapter
    else:
        c = load_sd15(name, scheduler=scheduler, device=device, dtype=dtype, unet_subfolder=None)
        c.unet = load_unet3d(str(Path(root) / tiny.UNET3D) if small else root, c.device, c.dtype)
    c.scheduler = make_scheduler(scheduler, {**c.scheduler.config, "timestep_spacing": "leading", "steps_offset": 1})
    c.sources["base"] = base
    return c


# ------------------------------------------------------------------------------------------------
# the adapter file

def save_adapter(unet: torch.nn.Module, path: str | Path, info: dict) -> Path:
    """LoRA + conv_in of ``unet`` into one safetensors file; ``info`` must name base, model and pass."""
    missing = {"base", "model", "pass"} - set(info)
    if missing:
        raise ValueError(f"adapter metadata needs {sorted(missing)}")
    layer = lora_layers(unet)[0]
    metadata = {"method": "amg", "rank": layer.r["default"], "alpha": layer.lora_alpha["default"],
                "targets": list(TARGETS), "in_channels": unet.conv_in.in_channels, **info}
    conv = dict(zip(CONV_KEYS, (unet.conv_in.weight, unet.conv_in.bias)))
    return save_lora(unet, path, metadata, extra=conv)


def read_adapter(path: str | Path) -> tuple[dict, dict]:
    """(tensors, metadata) of an AMG adapter file; one-line errors for anything else."""
    tensors, metadata = read_lora(path)
    if metadata.get("method") != "amg" or any(k not in tensors for k in CONV_KEYS):
        raise UserError(path, "is not an AMG adapter file (no amg metadata or no conv_in weights)")
    return tensors, metadata


def check_adapter(path: str | Path, base: str, model: str | None, condition: str) -> dict:
    """The adapter's metadata, or a UserError naming what it was made for and what this run uses."""
    _, meta = read_adapter(path)
    made = (meta.get("base"), meta.get("model"), meta.get("pass"))
    used = (base, base_model(base, model), condition)
    if made != used:
        raise UserError(path, f"was trained for base {made[0]} ({made[1]}) on the {made[2]!r} pass; this run uses "
                              f"base {used[0]} ({used[1]}) on the {used[2]!r} pass (--base, --model, --condition)")
    return meta


def load_adapter_weights(unet: torch.nn.Module, tensors: dict, path: str | Path) -> None:
    """Copy an adapter's LoRA and conv_in tensors into ``unet`` (already AMG-shaped, LoRA injected)."""
    from peft import set_peft_model_state_dict

    lora = {k[len("unet."):]: v for k, v in tensors.items() if ".lora_" in k}
    try:
        result = set_peft_model_state_dict(unet, lora)
        with torch.no_grad():
            unet.conv_in.weight.copy_(tensors[CONV_KEYS[0]])
            unet.conv_in.bias.copy_(tensors[CONV_KEYS[1]])
    except RuntimeError as exc:
        raise UserError(path, f"does not fit the base model ({' '.join(str(exc).split())[:200]})") from None
    if getattr(result, "unexpected_keys", []):
        raise UserError(path, f"does not fit the base model (e.g. {result.unexpected_keys[0]})")


def apply_adapter(unet: torch.nn.Module, path: str | Path) -> dict:
    """Make the 4-channel base ``unet`` the AMG network of the adapter file at ``path``; returns its metadata."""
    tensors, meta = read_adapter(path)
    amg_unet(unet, rank=int(meta["rank"]), alpha=float(meta["alpha"]))
    load_adapter_weights(unet, tensors, path)
    return meta

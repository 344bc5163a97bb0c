"""ControlNets: the stock SD 1.5 ControlNets by condition kind, any hub id / folder / file, and new
ones initialised from a UNet (``ControlNetModel.from_unet``)."""

from __future__ import annotations

from pathlib import Path

import torch

from diffusion.loaders.common import is_tiny, load_pretrained, prepare_modules, resolve_model
from diffusion.sampling.control_spec import STACKS
from motion.errors import UserError
from render.pass_table import condition_aliases

# Condition kind -> the lllyasviel v1.1 ControlNet for SD 1.5 that reads it.
CONTROLNETS = {
    "openpose": "lllyasviel/control_v11p_sd15_openpose",
    "depth": "lllyasviel/control_v11f1p_sd15_depth",
    "normal": "lllyasviel/control_v11p_sd15_normalbae",
}
# Condition kinds whose tiny ControlNet exists, with its input channels ("stack": depth 1 + normal 3 + mask 1).
TINY_CONTROLNETS = {"openpose": 3, "depth": 3, "normal": 3, "mesh": 3, "stack": 5}
CONDITION_EMBEDDING = (8, 8, 16, 16)   # tiny ControlNets' condition encoder (downsamples by 8 like SD's)


def resolve_controlnet(spec: str, model: str) -> str:
    """A ControlNet spec: hub id / folder / file, or a condition kind (``openpose``/``depth``/...)
    that names the default ControlNet of that kind for base ``model`` (tiny base -> tiny ControlNets)."""
    base = resolve_model(model)
    if is_tiny(base) and (Path(base) / f"controlnet-{spec}").is_dir():
        return str(Path(base) / f"controlnet-{spec}")
    if spec in CONTROLNETS:
        return CONTROLNETS[spec]
    if spec in condition_aliases() or spec in STACKS:
        raise UserError("--controlnet", f"no stock ControlNet reads {spec!r} passes; give MODEL={spec} with your own")
    return spec


def load_controlnets(specs: list[str], model: str, device: torch.device, dtype: torch.dtype) -> tuple[list, dict]:
    """The ControlNets named by ``specs`` for base ``model``, frozen on ``device``; and their sources."""
    from diffusers import ControlNetModel

    nets, sources = [], {}
    for spec in specs:
        source = resolve_controlnet(spec, model)
        nets.append(load_pretrained(ControlNetModel, source, torch_dtype=dtype))
        sources[f"controlnet:{spec}"] = source
    prepare_modules(device, *nets)
    return nets, sources


def controlnet_from_unet(unet: torch.nn.Module, channels: int, seed: int | None = None,
                         embedding: tuple[int, ...] | None = None) -> torch.nn.Module:
    """A new ControlNet copying ``unet``'s encoder, reading ``channels`` condition channels; its new
    condition encoder is initialised from ``seed`` (without touching the global RNG) when given."""
    from diffusers import ControlNetModel

    kwargs = {"conditioning_channels": channels}
    if embedding:
        kwargs["conditioning_embedding_out_channels"] = embedding
    if seed is None:
        return ControlNetModel.from_unet(unet, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ControlNetModel.from_unet(unet, **kwargs)


def randomise_zero_convs(controlnet: torch.nn.Module, generator: torch.Generator, std: float = 0.05) -> None:
    """Give the zero-initialised output convolutions small random weights (tiny models: a zero-init
    ControlNet would be a no-op and tests of conditioning scales could not fail)."""
    blocks = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
              controlnet.controlnet_cond_embedding.conv_out]
    with torch.no_grad():
        for block in blocks:
            for p in block.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * std)

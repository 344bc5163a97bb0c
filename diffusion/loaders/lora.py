"""peft LoRA on any diffusers/transformers model: inject, save as one safetensors file with metadata,
load back, fuse into the base weights and unfuse.

Injection goes through ``peft.inject_adapter_in_model`` for every model kind, because
``UNet3DConditionModel`` has no ``PeftAdapterMixin``; the saved keys follow diffusers' LoRA file
convention (``unet.<module>.lora_A.weight`` / ``lora_B``), so a 2D UNet's file also loads with
``StableDiffusionPipeline.load_lora_weights``. Extra tensors (e.g. an expanded ``conv_in``) can be
stored beside the LoRA under their own prefix.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from motion.errors import UserError

PREFIX = "unet."
META_KEY = "avatarcine"


def add_lora(model: torch.nn.Module, targets: list[str], rank: int = 4, alpha: float | None = None,
             adapter_name: str = "default") -> torch.nn.Module:
    """Inject LoRA (A gaussian std 1/rank, B zero: the model is unchanged at initialisation) on the
    modules whose names end with one of ``targets`` (peft ``target_modules`` rules)."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, init_lora_weights="gaussian",
                        target_modules=list(targets))
    return inject_adapter_in_model(config, model, adapter_name=adapter_name)


def lora_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for name, p in model.named_parameters() if "lora_" in name]


def lora_layers(model: torch.nn.Module) -> list:
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def save_lora(model: torch.nn.Module, path: str | Path, metadata: dict, extra: dict[str, torch.Tensor] | None = None,
              prefix: str = PREFIX) -> Path:
    """One safetensors file: the LoRA weights under ``prefix``, ``extra`` tensors under their own keys,
    and ``metadata`` (JSON; must hold ``rank``, ``alpha``, ``targets``) under the ``avatarcine`` key."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    missing = {"rank", "alpha", "targets"} - set(metadata)
    if missing:
        raise ValueError(f"LoRA metadata needs {sorted(missing)}")
    state = {prefix + k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(model).items()}
    state.update({k: v.detach().contiguous().cpu() for k, v in (extra or {}).items()})
    path = Path(path)
    save_file(state, str(path), metadata={META_KEY: json.dumps(metadata), "format": "pt"})
    return path


def read_lora(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a file written by :func:`save_lora`; one-line errors for anything else."""
    from diffusion.loaders.common import read_safetensors

    path = Path(path)
    if not path.is_file():
        raise UserError(path, "no such LoRA file")
    tensors, metadata = read_safetensors(path, META_KEY)
    if not isinstance(metadata, dict):
        raise UserError(path, "has no avatarcine LoRA metadata (rank, alpha, targets)")
    return tensors, metadata


def load_lora(model: torch.nn.Module, path: str | Path, prefix: str = PREFIX,
              adapter_name: str = "default") -> tuple[dict, dict]:
    """Inject the LoRA described by the file's metadata into ``model`` and load its weights; returns
    (metadata, the file's tensors that are not LoRA weights)."""
    from peft import set_peft_model_state_dict

    tensors, metadata = read_lora(path)
    lora = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix) and ".lora_" in k}
    if not lora:
        raise UserError(path, f"holds no LoRA weights under {prefix!r}")
    add_lora(model, metadata["targets"], metadata["rank"], metadata["alpha"], adapter_name)
    result = set_peft_model_state_dict(model, lora, adapter_name=adapter_name)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise UserError(path, f"LoRA weights do not fit the model (e.g. {unexpected[0]})")
    return metadata, {k: v for k, v in tensors.items() if k not in {prefix + n for n in lora}}


def fuse_lora(model: torch.nn.Module) -> None:
    """Merge every LoRA into its base weight (faster inference; :func:`unfuse_lora` undoes it)."""
    for layer in lora_layers(model):
        layer.merge()


def unfuse_lora(model: torch.nn.Module) -> None:
    for layer in lora_layers(model):
        layer.unmerge()

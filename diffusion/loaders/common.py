"""What every loader shares: device and dtype choice, ``from_pretrained`` with one-line errors, the
``tiny`` model name, and the ``Components`` a method runs with.

A model that is neither local nor reachable gives a one-line UserError naming it and how to get it;
a local folder whose ``model_index.json`` is unreadable is a one-line UserError too (diffusers would
otherwise load the parts it finds and ignore the index).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from motion.errors import UserError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")
TINY = "tiny"


def pick_device(name: str | None = None) -> torch.device:
    """``name`` if given, else cuda > mps > cpu."""
    if name:
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device", f"{name} requested but CUDA is not available")
        if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError("--device", "mps requested but not available")
        try:
            return torch.device(name)
        except RuntimeError:
            raise UserError("--device", f"{name!r} is not a device (cuda, cuda:N, mps, cpu)") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, name: str | None = None) -> torch.dtype:
    """``name`` (fp32/fp16/bf16) if given; else fp16 on cuda and mps (SD 1.5 weights are fp16-safe), fp32 on cpu."""
    if name:
        if name not in DTYPES:
            raise UserError("--dtype", f"{name!r} is not one of {', '.join(DTYPES)}")
        return DTYPES[name]
    return torch.float16 if device.type in ("cuda", "mps") else torch.float32


def _missing(model: str, exc: Exception) -> UserError:
    hint = (f"not found locally and not downloadable: hub offline/unreachable or no such repository "
            f"({type(exc).__name__}); "
            f"download it once with `hf download {model}` (or `huggingface-cli download {model}`) "
            "while online, or pass a local folder / .safetensors file")
    return UserError(model, hint)


def check_model_index(folder: Path) -> None:
    """A local pipeline folder's ``model_index.json``, when present, must be a JSON object."""
    index = folder / "model_index.json"
    if not index.is_file():
        return
    try:
        entries = json.loads(index.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(index, f"unreadable JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(entries, dict):
        raise UserError(index, f"expected a JSON object, got {type(entries).__name__}")


def load_pretrained(cls, model: str, **kwargs):
    """``cls.from_pretrained(model, **kwargs)`` with the missing-model error translated to a UserError."""
    if model.endswith(SINGLE_FILE_SUFFIXES) and hasattr(cls, "from_single_file"):
        if not Path(model).is_file():
            raise UserError(model, "no such checkpoint file")
        kwargs.pop("subfolder", None)
        loader = cls.from_single_file
    else:
        loader = cls.from_pretrained
        local = Path(model).expanduser()
        if local.exists() and not local.is_dir():
            raise UserError(model, "is a file but not a checkpoint (.safetensors/.ckpt); pass a model folder")
        if local.is_dir():
            model = str(local)
            sub = kwargs.get("subfolder")
            check_model_index(local)
            if sub and not (local / sub).is_dir():
                raise UserError(local / sub, "missing: the model folder lacks this component")
    try:
        return loader(model, **kwargs)
    except OSError as exc:  # huggingface_hub / diffusers / transformers report missing files as OSError
        if Path(model).exists():
            raise UserError(model, f"cannot load {cls.__name__} from it ({exc})".splitlines()[0]) from None
        raise _missing(model, exc) from None
    except (ValueError, KeyError, RuntimeError) as exc:  # a config that does not fit the class, bad tensors
        if Path(model).exists():
            raise UserError(model, f"cannot load {cls.__name__} from it: {' '.join(str(exc).split())[:300]}") from None
        raise


def resolve_model(model: str) -> str:
    """``tiny`` -> the tiny-model folder (written on first use); ``embedded`` -> the model shipped in
    the package (``diffusion.embedded``, its files checked); anything else unchanged."""
    if model == TINY:
        from diffusion.loaders.tiny import tiny_models_dir
        return str(tiny_models_dir())
    from diffusion.embedded import NAME, embedded_dir
    if model == NAME:
        return embedded_dir()
    return model


def is_tiny(folder: str) -> bool:
    """Whether ``folder`` is a tiny-model folder written by ``diffusion.loaders.tiny``."""
    from diffusion.loaders.tiny import MARKER
    return (Path(folder) / MARKER).is_file()


def prepare_modules(device: torch.device, *modules: torch.nn.Module) -> None:
    """Frozen inference modules on ``device``."""
    for module in modules:
        module.to(device).eval().requires_grad_(False)


@dataclass
class Components:
    """What a method runs with, loaded and placed on one device/dtype. ``unet`` may be any denoiser
    network (2D, 3D, motion UNet); ``extra`` holds method-specific parts (adapters, image encoders)."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    scheduler: object
    text_encoder: torch.nn.Module | None = None
    tokenizer: object = None
    controlnets: list = field(default_factory=list)
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    sources: dict = field(default_factory=dict)  # component -> model id / folder / file it came from
    extra: dict = field(default_factory=dict)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)


def read_safetensors(path: Path, meta_key: str) -> tuple[dict[str, torch.Tensor], object]:
    """(tensors, the JSON under ``meta_key`` in the file's metadata or None) of a safetensors file;
    an unreadable file is a one-line error naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(meta_key)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise UserError(path, f"not a readable safetensors file ({' '.join(str(exc).split())[:200]})") from None
    try:
        return tensors, None if raw is None else json.loads(raw)
    except ValueError:
        raise UserError(path, f"its {meta_key!r} metadata is not JSON") from None

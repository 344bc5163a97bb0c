"""Loading diffusion components: hub ids, local folders, single-file checkpoints; device and dtype.

Every model, tiny or real, goes through ``from_pretrained`` (or ``from_single_file``), so tests
exercise the code path real weights take. A model that is neither local nor reachable gives a
one-line UserError naming it and how to get it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from motion.errors import UserError

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
# Condition kind -> default hub ControlNet for SD 1.5.
CONTROLNETS = {
    "openpose": "lllyasviel/control_v11p_sd15_openpose",
    "depth": "lllyasviel/control_v11f1p_sd15_depth",
    "normal": "lllyasviel/control_v11p_sd15_normalbae",
}
SCHEDULERS = ("ddim", "dpm", "euler")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")


def pick_device(name: str | None = None) -> torch.device:
    """``name`` if given, else cuda > mps > cpu."""
    if name:
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device", f"{name} requested but CUDA is not available")
        return torch.device(name)
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
            if sub and not (local / sub).is_dir():
                raise UserError(local / sub, "missing: the model folder lacks this component")
    try:
        return loader(model, **kwargs)
    except OSError as exc:  # huggingface_hub / diffusers / transformers report missing files as OSError
        if Path(model).exists():
            raise UserError(model, f"cannot load {cls.__name__} from it ({exc})".splitlines()[0]) from None
        raise _missing(model, exc) from None


@dataclass
class Components:
    """What a Stable-Diffusion-1.5-family method needs, loaded and placed on one device/dtype."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: object
    controlnets: list = field(default_factory=list)
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    sources: dict = field(default_factory=dict)  # component -> model id / folder / file it came from

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


def resolve_model(model: str) -> str:
    """``tiny`` -> the tiny-model folder (written on first use); anything else unchanged."""
    if model == "tiny":
        from diffusion.tiny import tiny_models_dir
        return str(tiny_models_dir())
    return model


def resolve_controlnet(spec: str, base: str) -> str:
    """A ControlNet spec: hub id / folder / file, or a condition kind (``openpose``/``depth``/...)
    that names the default ControlNet of that kind for ``base`` (tiny base -> tiny ControlNets)."""
    tiny = Path(base) / "TINY_MODELS.txt"
    if tiny.is_file() and (Path(base) / f"controlnet-{spec}").is_dir():
        return str(Path(base) / f"controlnet-{spec}")
    if spec in CONTROLNETS:
        return CONTROLNETS[spec]
    if spec in ("mesh", "stack", "mask"):
        raise UserError("--controlnet", f"no stock ControlNet reads {spec!r} passes; give MODEL={spec} with your own")
    return spec


def make_scheduler(name: str, config: dict):
    """DDIM / DPM-Solver++ (multistep) / Euler scheduler from a base model's scheduler config."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    classes = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler, "euler": EulerDiscreteScheduler}
    if name not in classes:
        raise UserError("--scheduler", f"{name!r} is not one of {', '.join(SCHEDULERS)}")
    return classes[name].from_config(config)


def load_components(model: str, controlnets: list[str], *, scheduler: str = "ddim", device: str | None = None,
                    dtype: str | None = None, model_config: str | None = None) -> Components:
    """Load an SD 1.5-family base (folder, hub id or single file) and its ControlNets."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    dev = pick_device(device)
    dt = pick_dtype(dev, dtype)
    base = resolve_model(model)
    sources = {"model": model if model != "tiny" else f"tiny ({base})"}
    if base.endswith(SINGLE_FILE_SUFFIXES):
        kwargs = {"config": model_config} if model_config else {}
        pipe = load_pretrained(StableDiffusionPipeline, base, safety_checker=None, torch_dtype=dt, **kwargs)
        unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
        scheduler_config = pipe.scheduler.config
    else:
        unet = load_pretrained(UNet2DConditionModel, base, subfolder="unet", torch_dtype=dt)
        vae = load_pretrained(AutoencoderKL, base, subfolder="vae", torch_dtype=dt)
        text_encoder = load_pretrained(CLIPTextModel, base, subfolder="text_encoder", dtype=dt)
        tokenizer = load_pretrained(CLIPTokenizer, base, subfolder="tokenizer")
        scheduler_config = load_pretrained(DDIMScheduler, base, subfolder="scheduler").config
    nets = []
    for spec in controlnets:
        source = resolve_controlnet(spec, base)
        nets.append(load_pretrained(ControlNetModel, source, torch_dtype=dt))
        sources[f"controlnet:{spec}"] = source
    for module in (unet, vae, text_encoder, *nets):
        module.to(dev).eval().requires_grad_(False)
    return Components(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                      scheduler=make_scheduler(scheduler, scheduler_config), controlnets=nets,
                      device=dev, dtype=dt, sources=sources)

"""Training configs (YAML), checked with pydantic: unknown keys and bad values are one-line UserErrors
naming the file and the field. Relative paths are relative to the config file.

``TrainConfig`` holds what the shared trainer needs (optimiser, schedule, precision, checkpoints,
seed, validation); each recipe's config extends it with its data and models.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from diffusion.sampling.settings import SD15
from motion.errors import UserError

# diffusers.optimization.get_scheduler names (piecewise_constant needs step rules: not offered).
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")


class TrainConfig(BaseModel):
    """The shared trainer's settings; defaults follow diffusers' training examples."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)
    # field -> keyword that stays as written (None: always a path); made absolute by ``load_config``
    PATHS: ClassVar[dict[str, str | None]] = {"data": None, "output": None}
    # fields a resumed run must share with the run that wrote the checkpoint (they shape weights or data order)
    RESUME_FIXED: ClassVar[tuple[str, ...]] = ("data", "batch_size", "gradient_accumulation", "seed")

    data: list[str] = Field(min_length=1, description="passes folders rendered with the target pass")
    output: str = Field(description="output folder: checkpoints, log, final weights")
    steps: int = Field(1000, ge=1, description="optimizer steps in all")
    batch_size: int = Field(4, ge=1, description="items per batch and process")
    learning_rate: float = Field(1e-5, gt=0)
    lr_scheduler: Literal[LR_SCHEDULERS] = "constant_with_warmup"  # type: ignore[valid-type]
    warmup_steps: int = Field(0, ge=0)
    gradient_accumulation: int = Field(1, ge=1, description="batches per optimizer step")
    max_grad_norm: float = Field(1.0, gt=0)
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    weight_decay: float = Field(1e-2, ge=0)
    adam_epsilon: float = Field(1e-8, gt=0)
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False
    seed: int = Field(0, ge=0)
    checkpoint_every: int = Field(500, ge=1, description="save a resumable checkpoint every N steps")
    checkpoints_total_limit: int | None = Field(None, ge=1, description="keep only the newest N checkpoints")
    validate_every: int | None = Field(None, ge=1, description="write validation images every N steps")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    resume: bool | str = Field(False, description="true: newest checkpoint in output; or a checkpoint folder")


class ImageTrainConfig(TrainConfig):
    """Recipes that train on SD 1.5-family images of a given size."""

    PATHS: ClassVar[dict[str, str | None]] = {**TrainConfig.PATHS, "model": "tiny"}
    RESUME_FIXED: ClassVar[tuple[str, ...]] = TrainConfig.RESUME_FIXED + ("resolution", "model")

    prompt: str = Field("", description="caption for frames whose meta.json has none")
    resolution: int | tuple[int, int] = Field(512, description="training size: N or [W, H], multiples of 8")
    model: str = Field(SD15, description="SD 1.5-family base: hub id, folder, .safetensors, or tiny")

    @field_validator("resolution")
    @classmethod
    def _multiple_of_8(cls, value):
        sizes = (value, value) if isinstance(value, int) else value
        if any(s < 8 or s % 8 for s in sizes):
            raise ValueError("sizes must be positive multiples of 8 (the VAE downsamples by 8)")
        return value

    @property
    def size(self) -> tuple[int, int]:
        """(W, H) of training images."""
        return (self.resolution, self.resolution) if isinstance(self.resolution, int) else tuple(self.resolution)


def _absolute(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def load_config(path: str | Path, cls: type[TrainConfig]) -> TrainConfig:
    """Read and check a YAML config; path fields made absolute relative to the config's folder."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(path, "no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(path, f"unreadable YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise UserError(path, "expected a mapping of settings at the top level")
    try:
        config = cls(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise UserError(path, problems) from None
    base = path.resolve().parent
    updates = {}
    for key, keyword in cls.PATHS.items():
        value = getattr(config, key)
        if isinstance(value, list):
            updates[key] = [_absolute(v, base) for v in value]
        elif keyword is None:
            updates[key] = _absolute(value, base)
        elif value.startswith((".", "/", "~")) or (value != keyword and (base / value).exists()):
            updates[key] = _absolute(value, base)  # hub ids and keywords stay as written
    if isinstance(config.resume, str):
        updates["resume"] = _absolute(config.resume, base)
    return config.model_copy(update=updates)

"""Settings groups, defined once and composed by every method's settings.

A setting is a dataclass field made with :func:`setting`: its metadata (help, group, choices,
bounds, how the command line spells it) is what the command line, ``avatarcine methods --json`` and
the Blender add-on build their controls from, and what :meth:`Settings.validate` checks, so no method
writes argparse code or range checks of its own. Values are checked on construction: a bad value is a
one-line ``UserError`` naming the flag (``--cfg: must be a finite number, got nan``).

A method's settings class inherits the groups it uses. Dataclass fields are ordered from the last
base to the first, so bases are listed in reverse reading order::

    @dataclass
    class MySettings(DeviceSettings, SamplingSettings, TextSettings): ...   # prompt first, device last

``override(Group, "steps", 50)`` changes a group's default for one method and keeps its metadata.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from motion.errors import UserError, check_number

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SCHEDULERS = ("ddim", "dpm", "euler")
DTYPES = ("fp32", "fp16", "bf16")
ATTENTION = ("none", "cross-frame", "window")
WEIGHTINGS = ("uniform", "triangular", "previous")


def setting(default: Any, help: str, *, group: str | None = None, choices: tuple | None = None,
            low: float | None = None, high: float | None = None, above: float | None = None,
            zero_is_none: bool = False) -> Any:
    """A settings field. ``low``/``high``: inclusive bounds; ``above``: exclusive lower bound;
    ``zero_is_none``: on the command line 0 means None (e.g. ``--window 0`` = one window).
    Lists are given as tuples (immutable defaults); JSON lists are turned back into tuples."""
    meta = {"help": help, "group": group, "choices": choices, "low": low, "high": high, "above": above,
            "zero_is_none": zero_is_none}
    return field(default=default, metadata=meta)


def override(group: type, name: str, default: Any) -> Any:
    """Field ``name`` of ``group`` with another default (same metadata): a method's own default."""
    original = group.__dataclass_fields__[name]
    return field(default=default, metadata=original.metadata)


def flag(name: str) -> str:
    """The command-line spelling of a setting."""
    return "--" + name.replace("_", "-")


def _kind(hint: Any) -> tuple[type, bool, bool]:
    """(element type, is a list, may be None) of a field's type hint (str, int, float, bool, X | None,
    tuple[X, ...])."""
    optional, is_list = False, False
    args = typing.get_args(hint)
    if type(None) in args:
        optional = True
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if typing.get_origin(hint) in (tuple, list):
        is_list = True
        hint = args[0]
    return hint, is_list, optional


def _check_value(where: str, value: Any, base: type, meta: dict) -> Any:
    """One scalar value: its type, finiteness, bounds (``motion.errors.check_number``) and choices."""
    if base is bool:
        if not isinstance(value, bool):
            raise UserError(where, f"must be true or false, got {value!r}")
        return value
    if base in (int, float):
        value = check_number(value, where, minimum=meta["low"], maximum=meta["high"], above=meta["above"],
                             integer=base is int)
    elif base is str and not isinstance(value, str):
        raise UserError(where, f"must be text, got {value!r}")
    if meta["choices"] and value not in meta["choices"]:
        raise UserError(where, f"{value!r} is not one of {', '.join(map(str, meta['choices']))}")
    return value


@dataclass
class Settings:
    """Base of every settings class: validation from field metadata, then each group's ``check``."""

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            base, is_list, optional = _kind(hints[f.name])
            value = getattr(self, f.name)
            where = flag(f.name)
            if value is None:
                if not optional:
                    raise UserError(where, "needs a value")
                continue
            if is_list:
                if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                    raise UserError(where, f"must be a list, got {value!r}")
                value = tuple(_check_value(where, v, base, f.metadata) for v in value)
            else:
                value = _check_value(where, value, base, f.metadata)
            object.__setattr__(self, f.name, value)
        for cls in reversed(type(self).__mro__):
            check = cls.__dict__.get("check")
            if check is not None:
                check(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Settings":
        """Settings from a run record's ``settings`` (``to_dict`` of an earlier run)."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UserError("settings", f"unknown keys {unknown}")
        return cls(**data)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def describe(cls) -> list[dict]:
        """Each setting with what a UI needs: name, flag, type, default, help, group, choices, bounds."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            base, is_list, optional = _kind(hints[f.name])
            meta = f.metadata
            type_name = (f"list[{base.__name__}]" if is_list else base.__name__) + (" | None" if optional else "")
            entry = {"name": f.name, "flag": flag(f.name), "type": type_name,
                     "default": list(f.default) if isinstance(f.default, tuple) else f.default,
                     "help": meta.get("help", ""), "group": meta.get("group")}
            entry.update({k: meta[k] for k in ("choices", "low", "high", "above") if meta.get(k) is not None})
            if meta.get("zero_is_none"):
                entry["zero_is_none"] = True
            out.append(entry)
        return out


# ------------------------------------------------------------------------------------------------
# The groups. Each field's group name is what UIs use to lay settings out in sections.

@dataclass
class TextSettings(Settings):
    prompt: str = setting("", "text prompt", group="text")
    negative_prompt: str = setting("", "negative prompt (the classifier-free guidance unconditional branch)",
                                   group="text")


@dataclass
class ModelSettings(Settings):
    model: str = setting(SD15, "base model: hub id, local folder, .safetensors/.ckpt file, or tiny", group="model")
    model_config: str | None = setting(None, "config repo/folder for a single-file --model", group="model")


@dataclass
class SamplingSettings(Settings):
    scheduler: str = setting("ddim", "sampler", group="sampling", choices=SCHEDULERS)
    steps: int = setting(20, "denoising steps", group="sampling", low=1, high=1000)
    cfg: float = setting(7.5, "classifier-free guidance scale (<= 1: off)", group="sampling", low=0, high=100)
    eta: float = setting(0.0, "DDIM eta (0: deterministic)", group="sampling", low=0, high=1)
    seed: int = setting(0, "random seed (CPU generator: the same noise on every device)", group="sampling",
                        low=0, high=2**63 - 1)


@dataclass
class FramingSettings(Settings):
    width: int | None = setting(None, "output width, a multiple of 8 (default: the passes' width)",
                                group="framing", low=8, high=8192)
    height: int | None = setting(None, "output height, a multiple of 8 (default: the passes' height)",
                                 group="framing", low=8, high=8192)
    max_frames: int | None = setting(None, "use only the first N frames", group="framing", low=1)

    def check(self):
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value % 8:
                raise UserError(flag(name), f"must be a multiple of 8, got {value}")


@dataclass
class TemporalSettings(Settings):
    attention: str = setting("window", "self-attention across frames: none, cross-frame (first + previous "
                                       "frame) or window (all frames of the window)",
                             group="temporal", choices=ATTENTION)
    window: int | None = setting(16, "frames per window (0 on the command line: one window over the clip)",
                                 group="temporal", low=1, zero_is_none=True)
    overlap: int = setting(4, "frames shared by consecutive windows", group="temporal", low=0)
    weighting: str = setting("uniform", "how overlapping windows' predictions combine: uniform average, "
                                        "triangular weights, or previous (overlap frames keep the earlier "
                                        "window's prediction)", group="temporal", choices=WEIGHTINGS)
    shared_noise: float = setting(1.0, "fraction of the initial noise variance shared by all frames",
                                  group="temporal", low=0, high=1)

    def check(self):
        if self.window is not None and self.overlap >= self.window:
            raise UserError("--overlap", f"must be smaller than the window ({self.window}), got {self.overlap}")


PLATE = "plate"   # --background plate: the passes' plate pass (render.pass_table)


@dataclass
class BackgroundSettings(Settings):
    background: str | None = setting(None, "keep the background fixed: an image file, 'first' (the first "
                                           "generated frame) or 'plate' (the passes' plate pass, frame by frame)",
                                     group="background")
    mask_pass: str = setting("mask", "pass holding the actor mask (for --background)", group="background")


@dataclass
class DeviceSettings(Settings):
    device: str | None = setting(None, "cuda, mps or cpu (default: the best available)", group="device")
    dtype: str | None = setting(None, "fp32, fp16 or bf16 (default: fp16 on a GPU, fp32 on CPU)", group="device",
                                choices=DTYPES)


@dataclass
class OutputSettings(Settings):
    fps: float | None = setting(None, "frame rate of the videos (default: the clip's)", group="output",
                                above=0, high=1000)
    side_by_side: bool = setting(True, "also write side_by_side.mp4 (condition | result)", group="output")

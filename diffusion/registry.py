"""The method registry: the CLI and the Blender add-on list methods and their settings from here.

A method is one function ``run(passes, settings, components) -> Generation`` plus a settings
dataclass (field metadata ``help`` describes each setting) and a loader for its components.
Method modules register themselves on import; ``METHOD_MODULES`` lists them.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from motion.errors import UserError

METHOD_MODULES = ("diffusion.methods.controlnet",)


@dataclass
class Generation:
    """What a method returns: frames (N, H, W, 3) uint8, a picture of the condition per frame,
    the clip's fps, the source frame indices and a record of every setting/model/seed used."""

    frames: np.ndarray
    condition_preview: np.ndarray
    fps: float
    indices: list[int]
    record: dict = field(default_factory=dict)
    latents: object = None  # final (N, 4, h, w) latents on CPU, for chaining and checks


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    settings: type
    load: Callable[[Any], Any]
    run: Callable[[Any, Any, Any], Generation]

    def describe(self) -> list[dict]:
        """Each setting: name, type, default, help (for UIs)."""
        out = []
        for f in dataclasses.fields(self.settings):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            if isinstance(default, list):
                default = [dataclasses.asdict(d) if dataclasses.is_dataclass(d) else d for d in default]
            out.append({"name": f.name, "type": str(f.type), "default": default, "help": f.metadata.get("help", "")})
        return out


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    _METHODS[method.name] = method
    return method


def _load_all() -> None:
    for name in METHOD_MODULES:
        importlib.import_module(name)


def methods() -> dict[str, Method]:
    _load_all()
    return dict(_METHODS)


def get_method(name: str) -> Method:
    _load_all()
    if name not in _METHODS:
        raise UserError("--method", f"unknown method {name!r} (available: {', '.join(sorted(_METHODS))})")
    return _METHODS[name]

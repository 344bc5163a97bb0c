"""The one registry: every method, its training recipes and (through the method) its benchmark rows.

``avatarcine generate --method M``, ``avatarcine train RECIPE CONFIG``, ``avatarcine methods``,
``avatarcine bench methods`` and the Blender add-on all read this table. It names modules only, so
reading it imports neither torch nor the methods; a method module defines ``METHOD`` (a
``diffusion.sampling.method.Method``), a recipe module defines ``RECIPE`` (a
``diffusion.training.trainer.Recipe``).

Adding a method: one module in ``diffusion/methods/``, its recipes in ``diffusion/training/recipes/``,
one line below (or ``register`` from outside the package).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from motion.errors import UserError


@dataclass(frozen=True)
class Entry:
    name: str
    module: str                                       # defines METHOD
    recipes: dict[str, str] = field(default_factory=dict)  # recipe name -> module defining RECIPE


REGISTRY = [
    Entry("controlnet", "diffusion.methods.controlnet", {"controlnet": "diffusion.training.recipes.controlnet"}),
    Entry("dancing-avatar", "diffusion.methods.dancing_avatar",
          {"dancing-avatar-frames": "diffusion.training.recipes.dancing_avatar_frames",
           "dancing-avatar-lora": "diffusion.training.recipes.dancing_avatar_lora"}),
    Entry("make-your-anchor", "diffusion.methods.make_your_anchor",
          {"make-your-anchor": "diffusion.training.recipes.make_your_anchor",
           "make-your-anchor-face": "diffusion.training.recipes.make_your_anchor_face",
           "vae": "diffusion.training.recipes.vae"}),
    Entry("follow-your-pose", "diffusion.methods.follow_your_pose",
          {"follow-your-pose-pose": "diffusion.training.recipes.follow_your_pose_pose",
           "follow-your-pose-video": "diffusion.training.recipes.follow_your_pose_video"}),
    Entry("poseanimate", "diffusion.methods.poseanimate"),
    Entry("amg", "diffusion.methods.amg", {"amg": "diffusion.training.recipes.amg"}),
]


def register(entry: Entry) -> None:
    """Add a method defined outside this package (a plugin, a test) for this process."""
    if entry.name in entries() or set(entry.recipes) & set(recipes()):
        raise ValueError(f"method {entry.name!r} or one of its recipes {sorted(entry.recipes)} is already registered")
    REGISTRY.append(entry)


def unregister(name: str) -> None:
    REGISTRY[:] = [e for e in REGISTRY if e.name != name]


def entries() -> dict[str, Entry]:
    return {e.name: e for e in REGISTRY}


def get_method(name: str):
    """The registered method ``name`` (its module is imported now)."""
    table = entries()
    if name not in table:
        raise UserError("--method", f"unknown method {name!r} (available: {', '.join(sorted(table))})")
    return importlib.import_module(table[name].module).METHOD


def methods() -> dict:
    return {name: get_method(name) for name in entries()}


def recipes() -> dict[str, str]:
    """Recipe name -> the method it trains."""
    return {recipe: e.name for e in REGISTRY for recipe in e.recipes}


def get_recipe(name: str):
    """The training recipe ``name`` (its module is imported now)."""
    for e in REGISTRY:
        if name in e.recipes:
            return importlib.import_module(e.recipes[name]).RECIPE
    raise UserError("train", f"unknown recipe {name!r} (available: {', '.join(sorted(recipes()))})")

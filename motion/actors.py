"""Several people in one scene: each actor is a motion clip, a body, and a start on the floor.

A render scene lists its cast under ``actors:`` as entries like::

    - name: alice
      body: anny                   # anny | smpl | smplh | smplx, or {type: smplx, model: DIR, shape: {...}, gender: ..}
      motion: clips/walk.npz       # a motion file (any format motion.io reads) ...
      # motion: {generate: "walk forward, then wave", seconds: 6, seed: 3, fps: 30}   # ... or text
      position: [1.0, 0.0]         # start of the root on the floor (m, world x y [z]); omitted: as recorded
      heading_deg: 90              # start facing; 0 = facing -Y, counter-clockwise positive; omitted: as recorded
    - name: bob
      avatar: avatars/bob.npz      # instead of body: an already baked avatar (``avatarcine avatar bake``)
      motion: clips/bob.npz

Relative paths are relative to the scene file's folder (``base_dir``).

- ``load_cast(spec, base_dir)``: that list -> Actors (errors name ``actors[i].field``), checked
  with ``check_cast``;
- ``check_cast(actors)``: unique names, known bodies, starts at least MIN_START_DISTANCE apart
  (error); roots that later come closer than MIN_PATH_DISTANCE (warning);
- ``place_actor(actor)``: the motion moved rigidly (``motion.ops.place``) to start at the
  actor's position and heading, its own path and turns kept;
- ``perform(actor)``: what a renderer needs, the placed motion on the actor's avatar skeleton
  (``motion.retarget`` when the skeletons differ; placed after retargeting so the start is exact).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from pathlib import Path

import numpy as np

from motion.asset import AvatarAsset
from motion.errors import UserError, check_number
from motion.motion import Motion

BODIES = ("anny", "smpl", "smplh", "smplx")
MIN_START_DISTANCE = 0.5  # m between two actors' start positions (two bodies cannot stand closer)
MIN_PATH_DISTANCE = 0.35  # m between two actors' roots at the same instant before we warn
ENTRY_KEYS = {"name", "body", "avatar", "motion", "position", "heading_deg"}
BODY_KEYS = {"type", "model", "shape", "gender"}
GENERATE_KEYS = {"generate", "seconds", "seed", "fps"}


@dataclasses.dataclass
class Actor:
    """One person: a motion, the body that performs it, and where the clip starts.

    ``avatar``: a baked avatar (file path or AvatarAsset) to use instead of baking ``body`` with
    ``body_options`` (``model_path``, ``gender``, ``shape`` for ``motion.bodies.bake_avatar``).
    ``position`` (x, y[, z], m) and ``heading_deg``: the clip's start; None keeps the recorded one.
    """

    name: str
    motion: Motion
    body: str = "anny"
    avatar: str | os.PathLike | AvatarAsset | None = None
    position: tuple[float, ...] | None = (0.0, 0.0)
    heading_deg: float | None = 0.0
    body_options: dict = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def asset(self) -> AvatarAsset:
        """The avatar: loaded from ``avatar`` when given, else baked from ``body`` (once)."""
        if isinstance(self.avatar, AvatarAsset):
            return self.avatar
        if self.avatar is not None:
            return AvatarAsset.load(self.avatar)
        from motion.bodies import bake_avatar

        return bake_avatar(self.body, **self.body_options)


def place_actor(actor: Actor) -> Motion:
    """The actor's motion moved rigidly so it starts at ``position`` facing ``heading_deg``."""
    from motion.ops import place

    return place(actor.motion, position=actor.position, heading_deg=actor.heading_deg)


def perform(actor: Actor) -> Motion:
    """The actor's motion on its avatar's skeleton, placed in the world."""
    asset = actor.asset
    motion = actor.motion
    if list(motion.joint_names) != list(asset.joint_names):
        from motion.retarget import retarget

        motion = retarget(motion, asset)
    return place_actor(dataclasses.replace(actor, motion=motion))


def check_cast(actors: list[Actor]) -> list[str]:
    """Validate a cast; raise UserError for unusable ones (no actors, empty or repeated names,
    unknown bodies, two starts closer than MIN_START_DISTANCE). Returns (and emits as warnings)
    notes on actors whose placed root paths later come closer than MIN_PATH_DISTANCE."""
    if not actors:
        raise UserError("actors", "the cast is empty")
    seen: dict[str, int] = {}
    for i, a in enumerate(actors):
        if not isinstance(a.name, str) or not a.name.strip():
            raise UserError(f"actors[{i}].name", "must be a non-empty name")
        if a.name in seen:
            raise UserError(f"actors[{i}].name", f"{a.name!r} is already the name of actors[{seen[a.name]}]")
        seen[a.name] = i
        if a.avatar is None and a.body not in BODIES:
            raise UserError(f"actors[{i}].body", f"unknown body {a.body!r}; known: {', '.join(BODIES)}")
    placed = [place_actor(a) for a in actors]
    notes = []
    for i in range(len(actors)):
        for j in range(i + 1, len(actors)):
            start = np.linalg.norm(placed[i].root_translation[0, :2] - placed[j].root_translation[0, :2])
            if start < MIN_START_DISTANCE:
                raise UserError(f"actors[{j}].position",
                                f"{actors[j].name!r} starts {start:.2f} m from {actors[i].name!r}; "
                                f"actors need at least {MIN_START_DISTANCE} m between them")
            gap, when = _closest_approach(placed[i], placed[j])
            if gap < MIN_PATH_DISTANCE:
                notes.append(f"actors {actors[i].name!r} and {actors[j].name!r} come {gap:.2f} m close "
                             f"at {when:.2f} s; their bodies may intersect")
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return notes


def _closest_approach(a: Motion, b: Motion) -> tuple[float, float]:
    """Smallest ground-plane distance between two roots at the same time, and when (s), over the
    time both clips play (sampled at the lower of their frame rates)."""
    fps = min(a.fps, b.fps)
    t = np.arange(max(1, int(np.floor(min(a.duration, b.duration) * fps)))) / fps
    pa = np.stack([np.interp(t, a.times, a.root_translation[:, d]) for d in range(2)], -1)
    pb = np.stack([np.interp(t, b.times, b.root_translation[:, d]) for d in range(2)], -1)
    dist = np.linalg.norm(pa - pb, axis=-1)
    k = int(np.argmin(dist))
    return float(dist[k]), float(t[k])


def load_cast(spec: list[dict], base_dir: str | os.PathLike) -> list[Actor]:
    """Actors from a scene's ``actors:`` list (see the module docstring); paths are relative to
    ``base_dir``. The cast is checked with ``check_cast``."""
    if not isinstance(spec, list):
        raise UserError("actors", f"must be a list of actor entries, got {type(spec).__name__}")
    base = Path(base_dir)
    actors = [_actor(entry, i, base) for i, entry in enumerate(spec)]
    check_cast(actors)
    return actors


def _actor(entry, i: int, base: Path) -> Actor:
    where = f"actors[{i}]"
    if not isinstance(entry, dict):
        raise UserError(where, f"must be a mapping with name, body, motion, position, heading_deg; got {entry!r}")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise UserError(f"{where}.{unknown[0]}", f"unknown field; known: {', '.join(sorted(ENTRY_KEYS))}")
    for key in ("name", "motion"):
        if key not in entry:
            raise UserError(f"{where}.{key}", "missing")
    name = entry["name"]
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"{where}.name", f"must be a non-empty string, got {name!r}")
    if "avatar" in entry and "body" in entry:
        raise UserError(where, "give either body (baked for you) or avatar (a baked .npz), not both")
    avatar = _existing_file(entry["avatar"], base, f"{where}.avatar") if "avatar" in entry else None
    body, options = _body(entry.get("body", "anny"), base, f"{where}.body")
    position = entry.get("position")  # omitted: as recorded
    heading = entry.get("heading_deg")
    return Actor(name=name, motion=_motion(entry["motion"], base, f"{where}.motion"), body=body, avatar=avatar,
                 position=None if position is None else _position(position, f"{where}.position"),
                 heading_deg=None if heading is None else check_number(heading, f"{where}.heading_deg"),
                 body_options=options)


def _body(value, base: Path, where: str) -> tuple[str, dict]:
    """``anny`` or ``{type, model, shape, gender}`` -> body name and bake_avatar options."""
    spec = {"type": value} if isinstance(value, str) else value
    if not isinstance(spec, dict):
        raise UserError(where, f"must be a body name or {{type, model, shape, gender}}, got {value!r}")
    unknown = sorted(set(spec) - BODY_KEYS)
    if unknown:
        raise UserError(f"{where}.{unknown[0]}", f"unknown field; known: {', '.join(sorted(BODY_KEYS))}")
    if spec.get("type") not in BODIES:
        raise UserError(where, f"unknown body {spec.get('type')!r}; known: {', '.join(BODIES)}")
    options = {}
    if spec.get("model") is not None:
        model = Path(spec["model"]).expanduser()
        options["model_path"] = model if model.is_absolute() else base / model
    if spec.get("gender") is not None:
        options["gender"] = spec["gender"]
    if spec.get("shape") is not None:
        if not isinstance(spec["shape"], dict):
            raise UserError(f"{where}.shape", f"must be a mapping of shape parameters, got {spec['shape']!r}")
        options["shape"] = spec["shape"]
    return spec["type"], options


def _existing_file(value, base: Path, where: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise UserError(where, f"must be a file path, got {value!r}")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise UserError(where, f"no such file: {path}")
    return path


def _motion(value, base: Path, where: str) -> Motion:
    if isinstance(value, dict):
        unknown = sorted(set(value) - GENERATE_KEYS)
        if unknown or "generate" not in value:
            raise UserError(where, f"expected a file path or {{generate: TEXT, seconds: S, seed: N, fps: F}}, "
                                   f"got keys {sorted(value)}")
        text = value["generate"]
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{where}.generate", f"must be a text describing the motion, got {text!r}")
        seconds = value.get("seconds")
        seconds = None if seconds is None else check_number(seconds, f"{where}.seconds", above=0)
        seed = check_number(value.get("seed", 0), f"{where}.seed", minimum=0, integer=True)
        fps = check_number(value.get("fps", 30.0), f"{where}.fps", above=0)
        from motion.generate import generate_motion

        try:
            return generate_motion(text, seconds=seconds, fps=fps, seed=seed)
        except UserError as e:
            raise UserError(f"{where}.{'generate' if e.where == 'text' else e.where}", e.problem) from None
    from motion.io import read_motion

    return read_motion(_existing_file(value, base, where))


def _position(value, where: str) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) not in (2, 3):
        raise UserError(where, f"must be [x, y] or [x, y, z] in metres, got {value!r}")
    return tuple(check_number(v, where) for v in value)

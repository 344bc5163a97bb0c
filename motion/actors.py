"""Several people in one scene: each actor is a motion clip, a body, and a start on the floor.

A render scene lists its cast under ``actors:`` as entries like::

    - name: alice
      body: anny                   # anny | smpl | smplh | smplx
      avatar: avatars/alice.npz    # optional baked avatar (motion.asset), relative to the scene file
      motion: clips/walk.npz       # a motion file (any format motion.io reads) ...
      # motion: {generate: "walk forward, then wave", seconds: 6, seed: 3, fps: 30}   # ... or text
      position: [1.0, 0.0]         # start of the root on the floor (m, world x y)
      heading_deg: 90              # start facing; 0 = facing -Y, counter-clockwise positive

``load_cast`` turns that list into Actors (errors name ``actors[i].field``), ``check_cast``
validates a cast, and ``place_actor`` gives the actor's motion its start position and heading
(``motion.ops.place``: the whole clip moves rigidly, so its own path and turns are kept).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np

from motion.errors import UserError
from motion.motion import Motion

BODIES = ("anny", "smpl", "smplh", "smplx")
MIN_START_DISTANCE = 0.5  # m between two actors' start positions (two bodies cannot stand closer)
MIN_PATH_DISTANCE = 0.35  # m between two actors' roots at the same instant before we warn
ENTRY_KEYS = {"name", "body", "avatar", "motion", "position", "heading_deg"}
GENERATE_KEYS = {"generate", "seconds", "seed", "fps"}


@dataclasses.dataclass
class Actor:
    """One person: a motion, the body that performs it (and optionally its baked avatar file),
    and where the clip starts: ``position`` (x, y) in metres and ``heading_deg``."""

    name: str
    motion: Motion
    body: str = "anny"
    avatar: str | os.PathLike | None = None
    position: tuple[float, float] = (0.0, 0.0)
    heading_deg: float = 0.0


def place_actor(actor: Actor) -> Motion:
    """The actor's motion moved rigidly so it starts at ``position`` facing ``heading_deg``."""
    from motion.ops import place

    return place(actor.motion, position=actor.position, heading_deg=actor.heading_deg)


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
        if a.body not in BODIES:
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
    """Smallest ground-plane distance between two roots at the same time (s), and when, over the
    time both clips play (each sampled at its own frame rate, compared on the coarser one)."""
    fps = min(a.fps, b.fps)
    t = np.arange(int(np.floor(min(a.duration, b.duration) * fps))) / fps
    if len(t) == 0:
        t = np.zeros(1)
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
    body = entry.get("body", "anny")
    if body not in BODIES:
        raise UserError(f"{where}.body", f"unknown body {body!r}; known: {', '.join(BODIES)}")
    avatar = entry.get("avatar")
    if avatar is not None:
        avatar = _existing_file(avatar, base, f"{where}.avatar")
    return Actor(name=name, motion=_motion(entry["motion"], base, f"{where}.motion"), body=body, avatar=avatar,
                 position=_position(entry.get("position", [0.0, 0.0]), f"{where}.position"),
                 heading_deg=_number(entry.get("heading_deg", 0.0), f"{where}.heading_deg"))


def _existing_file(value, base: Path, where: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise UserError(where, f"must be a file path, got {value!r}")
    path = Path(value) if Path(value).is_absolute() else base / value
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
        seconds = None if seconds is None else _number(seconds, f"{where}.seconds")
        seed = value.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(f"{where}.seed", f"must be an integer, got {seed!r}")
        fps = _number(value.get("fps", 30.0), f"{where}.fps")
        from motion.generate import generate_motion

        try:
            return generate_motion(text, seconds=seconds, fps=fps, seed=seed)
        except UserError as e:
            raise UserError(f"{where}.{'generate' if e.where == 'text' else e.where}", e.problem) from None
    from motion.io import read_motion

    return read_motion(_existing_file(value, base, where))


def _position(value, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise UserError(where, f"must be [x, y] in metres, got {value!r}")
    x, y = (_number(v, where) for v in value)
    return (x, y)


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise UserError(where, f"must be a finite number, got {value!r}")
    return float(value)

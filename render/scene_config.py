"""The scene file (YAML or JSON): validation in plain Python, so a stock Blender (no pydantic, no
pyyaml) runs the same checks. Unknown keys are an error that names them.

Example (every key but ``actors`` has a default)::

    fps: 30
    resolution: [512, 512]
    frames: {start: 0, end: 59}          # inclusive; or {seconds: 2}; default: the whole motion
    actors:
      - name: alice
        body: anny                       # or {type: smplx, model: /path/models, shape: {betas: [...]}}
        motion: walk.npz                 # or {generate: "a person waves", seconds: 3, seed: 0}
        position: [0, 0]                 # where the clip starts; omitted: where the motion is
        heading_deg: 0                   # facing at the start (0 = facing -Y); omitted: as recorded
      - name: bob
        avatar: bob.avatar.npz           # an already baked avatar (``avatarcine avatar bake``) ...
        motion: bob_on_smplh.npz         # ... with a motion on its skeleton: no torch needed
    camera: {type: orbit, degrees: 90}   # or {shots: [{type: static, seconds: 1}, {type: follow}]}
    passes: [mesh, normal, depth, semantic, mask, skeleton]
    engine: {rgb: auto, rgb_samples: 32}  # or just `engine: cycles`; flat passes always use Cycles, 1 spp
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from motion.errors import UserError, check_number
from motion.motion import MAX_FPS
from render import pass_table
from render.cameras import CAMERA_TYPES

BODIES = ("anny", "smpl", "smplh", "smplx")
_TOP = {"fps", "resolution", "frames", "actors", "camera", "passes", "engine", "caption"}
_ACTOR = {"name", "body", "avatar", "motion", "position", "heading_deg"}
_BODY = {"type", "model", "shape", "gender"}
_ENGINE = {"rgb", "rgb_samples", "flat"}
_CAMERA_KEYS = {
    "common": {"type", "focal_mm", "fill", "distance", "seconds", "roll_deg"},
    "static": {"position", "look_at", "target", "azimuth_deg", "elevation_deg"},
    "orbit": {"target", "radius", "height", "degrees", "direction", "start_deg", "elevation_deg"},
    "dolly": {"start", "end", "look_at", "azimuth_deg", "elevation_deg", "ratio", "towards"},
    "zoom": {"focal_start_mm", "focal_end_mm", "azimuth_deg", "elevation_deg"},
    "follow": {"target", "smoothing_s", "azimuth_deg", "elevation_deg"},
    "handheld": {"base", "seed", "amplitude_deg", "amplitude_m", "frequency_hz"},
    "keyframes": {"keys"},
    "from_file": {"path"},
}
MAX_RESOLUTION = 65536                   # Blender's largest render size per side
# numeric camera keys: check_number limits
_CAMERA_NUMBERS = {
    "focal_mm": {"above": 0}, "fill": {"above": 0, "maximum": 1}, "distance": {"above": 0}, "seconds": {"above": 0},
    "roll_deg": {}, "azimuth_deg": {}, "elevation_deg": {"minimum": -90, "maximum": 90}, "radius": {"above": 0},
    "height": {}, "degrees": {}, "start_deg": {}, "ratio": {"above": 0}, "focal_start_mm": {"above": 0},
    "focal_end_mm": {"above": 0}, "smoothing_s": {"minimum": 0}, "seed": {"minimum": 0, "integer": True},
    "amplitude_deg": {"minimum": 0}, "amplitude_m": {"minimum": 0}, "frequency_hz": {"above": 0},
    "time": {"minimum": 0},
}
_CAMERA_POINTS = ("position", "look_at", "start", "end", "target")


def _unknown(where: str, given: dict, allowed: set) -> None:
    extra = sorted(set(given) - allowed)
    if extra:
        raise UserError(where, f"unknown key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} "
                               f"(allowed: {', '.join(sorted(allowed))})")


def _mapping(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise UserError(where, f"must be a mapping, got {type(value).__name__}")
    return value


def _point(value, where: str) -> None:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise UserError(where, f"must be [x, y, z] in metres, got {value!r}")
    for v in value:
        check_number(v, where)


def _camera_numbers(spec: dict, where: str) -> None:
    """Every numeric camera key finite and in range, points [x, y, z] (``target`` may name an actor)."""
    for key, value in spec.items():
        if key in _CAMERA_NUMBERS:
            check_number(value, f"{where}.{key}", **_CAMERA_NUMBERS[key])
        elif key in _CAMERA_POINTS and not (key == "target" and isinstance(value, str)):
            _point(value, f"{where}.{key}")
    if "position" in spec and "look_at" in spec and spec["position"] == spec["look_at"]:
        raise UserError(f"{where}.look_at", "is the camera position itself; the camera needs a direction")


def _camera(spec, where: str) -> dict:
    spec = _mapping(spec, where)
    if "shots" in spec:
        _unknown(where, spec, {"shots"})
        if not isinstance(spec["shots"], list) or not spec["shots"]:
            raise UserError(f"{where}.shots", "must be a non-empty list of cameras")
        return {"shots": [_camera(s, f"{where}.shots[{i}]") for i, s in enumerate(spec["shots"])]}
    kind = spec.get("type", "static")
    if kind not in CAMERA_TYPES:
        raise UserError(f"{where}.type", f"unknown camera type {kind!r} (one of {', '.join(CAMERA_TYPES)})")
    _unknown(where, spec, _CAMERA_KEYS["common"] | _CAMERA_KEYS[kind])
    _camera_numbers(spec, where)
    if kind == "keyframes":
        keys = spec.get("keys")
        if not isinstance(keys, list) or not keys:
            raise UserError(f"{where}.keys", "must be a non-empty list of {time, position, look_at, focal_mm}")
        for i, key in enumerate(keys):
            _unknown(f"{where}.keys[{i}]", _mapping(key, f"{where}.keys[{i}]"), {"time", "position", "look_at",
                                                                                   "focal_mm"})
            _camera_numbers(key, f"{where}.keys[{i}]")
    if kind == "handheld" and "base" in spec:
        spec = {**spec, "base": _camera(spec["base"], f"{where}.base")}
    if kind == "from_file" and "path" not in spec:
        raise UserError(where, "from_file camera needs path")
    return spec


def _actor(spec, i: int) -> dict:
    where = f"actors[{i}]"
    spec = _mapping(spec, where)
    _unknown(where, spec, _ACTOR)
    heading = spec.get("heading_deg")
    out = {"name": str(spec.get("name", f"actor{i}")), "position": spec.get("position"),
           "heading_deg": None if heading is None else check_number(heading, f"{where}.heading_deg")}
    if "motion" not in spec:
        raise UserError(where, "needs motion (a file, or {generate: text, seconds: S})")
    motion = spec["motion"]
    if isinstance(motion, dict):
        _unknown(f"{where}.motion", motion, {"generate", "seconds", "seed", "fps"})
        if not isinstance(motion.get("generate"), str):
            raise UserError(f"{where}.motion", "generate must be a text prompt")
    elif not isinstance(motion, str):
        raise UserError(f"{where}.motion", "must be a file path or {generate: text, seconds: S}")
    out["motion"] = motion
    if "avatar" in spec:
        if "body" in spec:
            raise UserError(where, "give either body (baked for you) or avatar (a baked .npz), not both")
        out["avatar"] = str(spec["avatar"])
    else:
        body = spec.get("body", "anny")
        body = {"type": body} if isinstance(body, str) else _mapping(body, f"{where}.body")
        _unknown(f"{where}.body", body, _BODY)
        if body.get("type") not in BODIES:
            raise UserError(f"{where}.body", f"type must be one of {', '.join(BODIES)}, got {body.get('type')!r}")
        out["body"] = body
    pos = out["position"]
    if pos is not None:
        if not isinstance(pos, (list, tuple)) or len(pos) not in (2, 3):
            raise UserError(f"{where}.position", f"must be [x, y] or [x, y, z], got {pos!r}")
        out["position"] = [check_number(v, f"{where}.position") for v in pos]
    return out


def validate_scene(raw, where: str = "scene") -> dict:
    """Check a scene mapping and return it with defaults filled in (a new dict)."""
    scene = copy.deepcopy(_mapping(raw, where))
    _unknown(where, scene, _TOP)
    fps = check_number(scene.get("fps", 30), "fps", above=0, maximum=MAX_FPS)
    res = scene.get("resolution", [512, 512])
    if not isinstance(res, (list, tuple)) or len(res) != 2:
        raise UserError("resolution", f"must be [width, height] in pixels, got {res!r}")
    for v in res:
        check_number(v, "resolution", minimum=1, maximum=MAX_RESOLUTION, integer=True)
    frames = _mapping(scene.get("frames", {}), "frames")
    _unknown("frames", frames, {"start", "end", "seconds"})
    if "seconds" in frames and ("start" in frames or "end" in frames):
        raise UserError("frames", "give {start, end} or {seconds}, not both")
    for key in ("start", "end"):
        if key in frames:
            frames[key] = check_number(frames[key], f"frames.{key}", minimum=0, integer=True)
    if "seconds" in frames:
        check_number(frames["seconds"], "frames.seconds", above=0)
    if "start" in frames and "end" in frames and frames["end"] < frames["start"]:
        raise UserError("frames", f"end {frames['end']} is before start {frames['start']}")
    actors = scene.get("actors")
    if not isinstance(actors, list) or not actors:
        raise UserError("actors", "needs a non-empty list of actors")
    actors = [_actor(a, i) for i, a in enumerate(actors)]
    names = [a["name"] for a in actors]
    if len(set(names)) != len(names):
        raise UserError("actors", f"actor names must be unique, got {names}")
    passes = scene.get("passes", list(pass_table.default_passes()))
    if not isinstance(passes, list) or not passes:
        raise UserError("passes", "must be a non-empty list of pass names")
    bad = [p for p in passes if p not in pass_table.names()]
    if bad:
        raise UserError("passes", f"unknown pass{'es' if len(bad) > 1 else ''} {bad} (known: {', '.join(pass_table.names())})")
    engine = scene.get("engine", {})
    engine = {"rgb": engine} if isinstance(engine, str) else _mapping(engine, "engine")   # shorthand
    _unknown("engine", engine, _ENGINE)
    if engine.get("rgb", "auto") not in ("auto", "cycles", "eevee"):
        raise UserError("engine.rgb", f"must be auto, cycles or eevee, got {engine['rgb']!r}")
    if engine.get("flat", "cycles") != "cycles":
        raise UserError("engine.flat", "flat passes render with cycles (one sample, no filter: exact)")
    caption = scene.get("caption")
    if caption is not None and (not isinstance(caption, str) or not caption.strip()):
        raise UserError("caption", f"must be a non-empty text (the clip's prompt in meta.json), got {caption!r}")
    return {
        **({"caption": caption} if caption is not None else {}),
        "fps": fps, "resolution": [int(res[0]), int(res[1])], "frames": frames, "actors": actors,
        "camera": _camera(scene.get("camera", {"type": "orbit", "degrees": 90}), "camera"),
        "passes": list(dict.fromkeys(passes)),
        "engine": {"rgb": engine.get("rgb", "auto"),
                   "rgb_samples": check_number(engine.get("rgb_samples", 32), "engine.rgb_samples", minimum=1,
                                               maximum=65536, integer=True),
                   "flat": "cycles"},
    }


def load_scene_file(path: str | os.PathLike) -> dict:
    """Read a YAML (needs pyyaml) or JSON scene file; the raw mapping, not yet validated."""
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "no such scene file")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise UserError(path, f"invalid JSON ({exc})") from None
    try:
        import yaml
    except ImportError:
        raise UserError(path, "reading YAML needs pyyaml (absent in stock Blender: the blender entry "
                              "converts scenes through the avatarcine command)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(path, f"invalid YAML ({str(exc).splitlines()[0]})") from None

"""The passes folder contract: ``OUT/<pass>/<frame:06d>.<ext>`` plus ``OUT/meta.json``.

Written by ``render/`` and read by ``diffusion/`` (numpy + json only: importable anywhere).

meta.json (schema_version 1)::

    {
      "schema_version": 1,
      "fps": 30.0,
      "resolution": [W, H],
      "frames_range": [first, last],          # inclusive, absolute frame numbers
      "caption": str,                          # optional: text describing the clip (training prompt)
      "passes": {                              # name -> encoding, one entry per pass present
        "<name>": {"dir": "<name>", "ext": "png"|"exr", "dtype": "uint8"|"uint16"|"float32",
                   "channels": 1|3|4, "colour_space": "sRGB"|"raw"|"linear",
                   "encoding": "<one sentence: how values map to meaning>", ...pass extras}
      },
      "joint_names": {"<skeleton>": [...]},    # joints3d order, listed once
      "keypoint_names": {"openpose18": [...], "hand_left21": [...], ...},
      "actors": [{"name": str, "body": str, "skeleton": str, "instance_id": int}],
      "warnings": [str],                       # optional: what the render warned about (one line each)
      "frames": [
        {"index": int, "time": float, "caption": str (optional, overrides the clip's),
         "camera": {"K": 3x3, "world_to_camera_cv": 4x4, "camera_to_world_blender": 4x4,
                    "shot": int},
         "actors": {"<name>": {"joints3d": Jx3 (world),
                               "keypoints2d": {"openpose18": 18x[x_px, y_px, visible], ...}}}}
      ]
    }

Pixel coordinates: x right, y down, origin at the top-left corner of the top-left pixel; the centre
of pixel (i, j) is (j + 0.5, i + 0.5). ``visible`` is 1 when the point is inside the frame and not
occluded (judged against the depth buffer), else 0.

Writing (added with the helpers below; the schema above is unchanged): numbers that are not finite
(e.g. the pixel of a point behind the camera) are written as ``null``, which
``np.asarray(..., dtype=float)`` reads back as NaN. Keypoint sets: ``openpose18`` (OPENPOSE18),
``hand_left21``/``hand_right21`` (HAND21, OpenPose hand order), ``face68`` (FACE68, iBUG-300W order).
Standard pass entries (:func:`standard_pass`) carry an extra ``kind`` (image, normal, depth,
depth_float, labels, mask, pose, flow) that previews and readers may use to pick a decoder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from motion.errors import UserError
from motion.keypoints import HAND21, OPENPOSE18  # noqa: F401  (part of this contract)
from motion.fileio import save_json

SCHEMA_VERSION = 1
META = "meta.json"
FACE68 = ([f"jaw_{k}" for k in range(17)] + [f"right_eyebrow_{k}" for k in range(5)]
          + [f"left_eyebrow_{k}" for k in range(5)] + [f"nose_bridge_{k}" for k in range(4)]
          + [f"nose_lower_{k}" for k in range(5)] + [f"right_eye_{k}" for k in range(6)]
          + [f"left_eye_{k}" for k in range(6)] + [f"mouth_outer_{k}" for k in range(12)]
          + [f"mouth_inner_{k}" for k in range(8)])
KEYPOINT_SETS = {"openpose18": OPENPOSE18, "hand_left21": HAND21, "hand_right21": HAND21, "face68": FACE68}


def frame_path(root: str | os.PathLike, meta: dict, pass_name: str, index: int) -> Path:
    """Path of one frame of one pass."""
    info = meta["passes"][pass_name]
    return Path(root) / info.get("dir", pass_name) / f"{index:06d}.{info.get('ext', 'png')}"


def frame_ranges(frames) -> str:
    """``0..4, 9, 12..13`` for sorted frame numbers (messages naming frames)."""
    frames = [int(f) for f in frames]
    parts, start = [], 0
    for k in range(1, len(frames) + 1):
        if k == len(frames) or frames[k] != frames[k - 1] + 1:
            a, b = frames[start], frames[k - 1]
            parts.append(f"{a}" if a == b else f"{a}..{b}")
            start = k
    return ", ".join(parts)


def read_meta(root: str | os.PathLike) -> dict:
    """Load and check ``root/meta.json``; one-line UserError naming the problem."""
    path = Path(root) / META
    if not path.is_file():
        raise UserError(root, "not a passes folder (no meta.json); render one with `avatarcine render`")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(path, f"unreadable JSON ({exc})") from None
    return check_meta(meta, path)


def check_meta(meta: dict, where: object) -> dict:
    """The checks ``read_meta`` applies (and ``write_meta`` before writing); returns ``meta``."""
    if not isinstance(meta, dict):
        raise UserError(where, f"expected a JSON object, got {type(meta).__name__}")
    for key in ("schema_version", "fps", "resolution", "passes", "frames"):
        if key not in meta:
            raise UserError(where, f"missing key {key!r}")
    if meta["schema_version"] != SCHEMA_VERSION:
        raise UserError(where, f"schema_version {meta['schema_version']} is not supported (expected {SCHEMA_VERSION})")
    if not meta["frames"]:
        raise UserError(where, "no frames")
    return meta


def camera_arrays(frame: dict) -> tuple[np.ndarray, np.ndarray]:
    """(K 3x3, world_to_camera_cv 4x4) of one frame entry."""
    cam = frame["camera"]
    return np.asarray(cam["K"], dtype=np.float64), np.asarray(cam["world_to_camera_cv"], dtype=np.float64)


# ------------------------------------------------------------------------------------------------
# writing helpers

_PASS_KEYS = ("dir", "ext", "dtype", "channels", "colour_space", "encoding")
_STANDARD = {
    # kind: (ext, dtype, channels, colour_space, encoding)
    "image": ("png", "uint8", 3, "sRGB",
              "Blender render through the Standard view transform, 8-bit sRGB"),
    "normal": ("png", "uint8", 3, "raw",
               "camera-space unit normal n (x right, y up, z toward the camera) stored as "
               "round(255 * (0.5 * n + 0.5)); a surface facing the camera is (128, 128, 255); "
               "background (0, 0, 0)"),
    "depth_float": ("exr", "float32", 1, "linear",
                    "planar camera depth z in metres along the optical axis; background >= 1e9"),
    "labels": ("png", "uint8", 3, "raw",
               "flat colour of the body part under the pixel, from `palette` (part name -> [r, g, b]); "
               "background (0, 0, 0); no anti-aliasing, no dithering"),
    "mask": ("png", "uint8", 1, "raw",
             "instance_id of the actor covering the pixel (see actors), 0 = background"),
    "pose": ("png", "uint8", 3, "sRGB",
             "ControlNet OpenPose annotator drawing (controlnet_aux 0.0.10 draw_bodypose / "
             "draw_handpose / draw_facepose, people laid out in `order`) of the frame's keypoints2d "
             "on black"),
    "flow": ("exr", "float32", 2, "raw",
             "forward optical flow to the next frame in pixels, channels `exr_channels` = (dx right, "
             "dy down): the surface at pixel p is at p + (dx, dy) in the next frame; 0 where no surface"),
}


def pass_entry(name: str, *, ext: str, dtype: str, channels: int, colour_space: str, encoding: str,
               dir: str | None = None, **extras) -> dict:
    """One ``passes`` entry, checked against the schema; ``extras`` are pass-specific fields."""
    if ext not in ("png", "exr") or dtype not in ("uint8", "uint16", "float32") or channels not in (1, 2, 3, 4):
        raise ValueError(f"pass {name!r}: bad ext/dtype/channels {ext}/{dtype}/{channels}")
    if colour_space not in ("sRGB", "raw", "linear") or not encoding:
        raise ValueError(f"pass {name!r}: bad colour_space {colour_space!r} or empty encoding")
    return {"dir": dir or name, "ext": ext, "dtype": dtype, "channels": channels,
            "colour_space": colour_space, "encoding": encoding, **jsonable(extras)}


def standard_pass(kind: str, name: str | None = None, **extras) -> dict:
    """Entry of a pass of a standard ``kind``: image, normal, depth (PNG; extras near, far, bits),
    depth_float, labels (extra palette), mask, pose (extra order), flow (extra exr_channels)."""
    if kind == "depth":
        missing = {"near", "far", "bits"} - set(extras)
        if missing:
            raise ValueError(f"depth pass needs {sorted(missing)}")
        from render.depthmap import encoding_sentence
        bits = extras["bits"]
        spec = ("png", "uint8" if bits == 8 else "uint16", 1, "raw", encoding_sentence(bits))
    elif kind in _STANDARD:
        spec = _STANDARD[kind]
    else:
        raise ValueError(f"unknown pass kind {kind!r}; choose from {sorted(_STANDARD) + ['depth']}")
    if kind == "labels" and "palette" not in extras:
        raise ValueError("labels pass needs palette")
    if kind == "pose":
        extras.setdefault("order", "openpose")
    if kind == "flow":
        extras.setdefault("exr_channels", ["dx", "dy"])
    ext, dtype, channels, colour_space, encoding = spec
    return pass_entry(name or kind, ext=ext, dtype=dtype, channels=channels, colour_space=colour_space,
                      encoding=encoding, kind=kind, **extras)


def jsonable(value):
    """numpy -> lists/floats; non-finite floats -> None (JSON null)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.integer, bool, np.bool_)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else None
    return value


def actor_frame(joints3d: np.ndarray, keypoints2d: dict[str, np.ndarray]) -> dict:
    """Per-frame data of one actor: joints (J, 3) world, keypoint sets name -> (N, 3) [x, y, visible]."""
    joints3d = np.asarray(joints3d, dtype=np.float64)
    if joints3d.ndim != 2 or joints3d.shape[1] != 3:
        raise ValueError(f"joints3d must be (J, 3), got {joints3d.shape}")
    kps = {}
    for name, pts in keypoints2d.items():
        pts = np.asarray(pts, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"keypoints2d[{name!r}] must be (N, 3), got {pts.shape}")
        if name in KEYPOINT_SETS and len(pts) != len(KEYPOINT_SETS[name]):
            raise ValueError(f"keypoints2d[{name!r}] needs {len(KEYPOINT_SETS[name])} points, got {len(pts)}")
        rows = jsonable(pts)
        for row in rows:
            row[2] = int(row[2] or 0)
        kps[name] = rows
    return {"joints3d": jsonable(joints3d), "keypoints2d": kps}


def frame_entry(index: int, time: float, K: np.ndarray, world_to_camera_cv: np.ndarray,
                camera_to_world_blender: np.ndarray, shot: int, actors: dict[str, dict]) -> dict:
    """One ``frames`` entry; ``actors`` maps actor name -> :func:`actor_frame`."""
    for label, m, shape in (("K", K, (3, 3)), ("world_to_camera_cv", world_to_camera_cv, (4, 4)),
                            ("camera_to_world_blender", camera_to_world_blender, (4, 4))):
        if np.shape(m) != shape:
            raise ValueError(f"{label} must be {shape}, got {np.shape(m)}")
    return {"index": int(index), "time": float(time),
            "camera": {"K": jsonable(np.asarray(K, float)),
                       "world_to_camera_cv": jsonable(np.asarray(world_to_camera_cv, float)),
                       "camera_to_world_blender": jsonable(np.asarray(camera_to_world_blender, float)),
                       "shot": int(shot)},
            "actors": actors}


def build_meta(*, fps: float, resolution: tuple[int, int], passes: dict[str, dict], frames: list[dict],
               joint_names: dict[str, list[str]], actors: list[dict],
               keypoint_names: dict[str, list[str]] | None = None, warnings: list[str] | None = None,
               caption: str | None = None) -> dict:
    """The whole meta.json object (schema_version 1); ``frames_range`` from the frames' indices;
    ``warnings`` (kept only when there are some) as the renderer printed them; ``caption`` when given."""
    indices = [f["index"] for f in frames]
    used = {k for f in frames for a in f["actors"].values() for k in a["keypoints2d"]}
    if keypoint_names is None:
        unknown = used - set(KEYPOINT_SETS)
        if unknown:
            raise ValueError(f"name the keypoints of sets {sorted(unknown)} in keypoint_names")
        keypoint_names = {k: KEYPOINT_SETS[k] for k in sorted(used)}
    meta = {"schema_version": SCHEMA_VERSION, "fps": float(fps), "resolution": [int(resolution[0]), int(resolution[1])],
            "frames_range": [min(indices), max(indices)] if indices else [], "passes": passes,
            "joint_names": joint_names, "keypoint_names": keypoint_names, "actors": jsonable(actors),
            "frames": frames}
    if warnings:
        meta["warnings"] = list(warnings)
    if caption:
        meta["caption"] = caption
    return meta


def write_meta(root: str | os.PathLike, meta: dict, force: bool = True) -> Path:
    """Check ``meta`` like ``read_meta`` does, then write ``root/meta.json`` atomically."""
    path = Path(root) / META
    check_meta(meta, path)
    for name, info in meta["passes"].items():
        missing = [k for k in _PASS_KEYS if k not in info]
        if missing:
            raise UserError(path, f"pass {name!r} lacks {missing}")
    return save_json(path, jsonable(meta), force=force)

"""The passes folder contract: ``OUT/<pass>/<frame:06d>.<ext>`` plus ``OUT/meta.json``.

Written by ``render/`` and read by ``diffusion/`` (numpy + json only: importable anywhere).

meta.json (schema_version 1)::

    {
      "schema_version": 1,
      "fps": 30.0,
      "resolution": [W, H],
      "frames_range": [first, last],          # inclusive, absolute frame numbers
      "passes": {                              # name -> encoding, one entry per pass present
        "<name>": {"dir": "<name>", "ext": "png"|"exr", "dtype": "uint8"|"uint16"|"float32",
                   "channels": 1|3|4, "colour_space": "sRGB"|"raw"|"linear",
                   "encoding": "<one sentence: how values map to meaning>", ...pass extras}
      },
      "joint_names": {"<skeleton>": [...]},    # joints3d order, listed once
      "keypoint_names": {"openpose18": [...], "hand_left21": [...], ...},
      "actors": [{"name": str, "body": str, "skeleton": str, "instance_id": int}],
      "frames": [
        {"index": int, "time": float,
         "camera": {"K": 3x3, "world_to_camera_cv": 4x4, "camera_to_world_blender": 4x4,
                    "shot": int},
         "actors": {"<name>": {"joints3d": Jx3 (world),
                               "keypoints2d": {"openpose18": 18x[x_px, y_px, visible], ...}}}}
      ]
    }

Pixel coordinates: x right, y down, origin at the top-left corner of the top-left pixel; the centre
of pixel (i, j) is (j + 0.5, i + 0.5). ``visible`` is 1 when the point is inside the frame and not
occluded (judged against the depth buffer), else 0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from motion.errors import UserError

SCHEMA_VERSION = 1
META = "meta.json"
OPENPOSE18 = [
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
]


def frame_path(root: str | os.PathLike, meta: dict, pass_name: str, index: int) -> Path:
    """Path of one frame of one pass."""
    info = meta["passes"][pass_name]
    return Path(root) / info.get("dir", pass_name) / f"{index:06d}.{info.get('ext', 'png')}"


def read_meta(root: str | os.PathLike) -> dict:
    """Load and check ``root/meta.json``; one-line UserError naming the problem."""
    path = Path(root) / META
    if not path.is_file():
        raise UserError(root, "not a passes folder (no meta.json); render one with `avatarcine render`")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(path, f"unreadable JSON ({exc})") from None
    for key in ("schema_version", "fps", "resolution", "passes", "frames"):
        if key not in meta:
            raise UserError(path, f"missing key {key!r}")
    if meta["schema_version"] != SCHEMA_VERSION:
        raise UserError(path, f"schema_version {meta['schema_version']} is not supported (expected {SCHEMA_VERSION})")
    if not meta["frames"]:
        raise UserError(path, "no frames")
    return meta


def camera_arrays(frame: dict) -> tuple[np.ndarray, np.ndarray]:
    """(K 3x3, world_to_camera_cv 4x4) of one frame entry."""
    cam = frame["camera"]
    return np.asarray(cam["K"], dtype=np.float64), np.asarray(cam["world_to_camera_cv"], dtype=np.float64)

"""A synthetic passes folder (render/meta.py schema) of a moving stick figure, with skeleton, depth_png,
normal and mask passes drawn from the same keypoints: for tests and benchmarks (no Blender needed)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from render.meta import OPENPOSE18, SCHEMA_VERSION

LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0)]
# A standing figure in a unit box (x right, y down), openpose18 order (eyes/ears at the nose).
POSE = np.array([[.5, .12], [.5, .25], [.38, .26], [.34, .42], [.32, .56], [.62, .26], [.66, .42], [.68, .56],
                 [.43, .55], [.42, .73], [.42, .92], [.57, .55], [.58, .73], [.58, .92],
                 [.48, .1], [.52, .1], [.46, .11], [.54, .11]])

PASSES = {
    "skeleton": {"channels": 3, "colour_space": "sRGB", "encoding": "OpenPose-18 drawing on black"},
    "depth_png": {"channels": 1, "colour_space": "raw", "encoding": "near bright, per-clip normalised, 0 background"},
    "normal": {"channels": 3, "colour_space": "raw", "encoding": "camera-space normal * 0.5 + 0.5"},
    "mask": {"channels": 1, "colour_space": "raw", "encoding": "255 actor, 0 background"},
}


def keypoints(frame: int, size: tuple[int, int]) -> np.ndarray:
    """(18, 2) pixel keypoints of the figure at ``frame`` (it walks right and swings an arm)."""
    w, h = size
    pts = POSE.copy()
    pts[:, 0] += 0.04 * frame
    pts[4] += [0.0, -0.08 * np.sin(frame)]
    return pts * [w, h]


def write_passes(root: Path, frames: int = 3, size: tuple[int, int] = (64, 64), fps: float = 8.0,
                 passes: tuple[str, ...] = tuple(PASSES)) -> Path:
    """Write a passes folder with ``frames`` frames; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    w, h = size
    meta_frames = []
    for name in passes:
        (root / name).mkdir(exist_ok=True)
    for i in range(frames):
        pts = keypoints(i, size)
        body = np.zeros((h, w), np.uint8)
        skeleton = np.zeros((h, w, 3), np.uint8)
        for k, (a, b) in enumerate(LIMBS):
            pa, pb = tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b])
            cv2.line(body, pa, pb, 255, max(2, w // 16))
            colour = tuple(int(c) for c in cv2.cvtColor(np.uint8([[[k * 13 % 180, 255, 200]]]), cv2.COLOR_HSV2RGB)[0, 0])
            cv2.line(skeleton, pa, pb, colour, max(1, w // 32))
        depth = np.where(body > 0, 200 - 10 * i, 0).astype(np.uint8)
        normal = np.zeros((h, w, 3), np.uint8)
        normal[body > 0] = (128, 128, 255)
        images = {"skeleton": skeleton, "depth_png": depth, "normal": normal, "mask": body}
        for name in passes:
            image = images[name]
            if image.ndim == 3:
                image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(root / name / f"{i:06d}.png"), image)
        visible = [[float(x), float(y), 1.0] for x, y in pts]
        meta_frames.append({
            "index": i, "time": i / fps,
            "camera": {"K": [[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], "world_to_camera_cv": np.eye(4).tolist(),
                       "camera_to_world_blender": np.eye(4).tolist(), "shot": 0},
            "actors": {"a": {"joints3d": [[0.0, 0.0, 0.0]] * 18, "keypoints2d": {"openpose18": visible}}},
        })
    meta = {
        "schema_version": SCHEMA_VERSION, "fps": fps, "resolution": [w, h], "frames_range": [0, frames - 1],
        "passes": {n: {"dir": n, "ext": "png", "dtype": "uint8", **PASSES[n]} for n in passes},
        "joint_names": {"smpl": [f"j{k}" for k in range(18)]}, "keypoint_names": {"openpose18": OPENPOSE18},
        "actors": [{"name": "a", "body": "synthetic", "skeleton": "smpl", "instance_id": 1}],
        "frames": meta_frames,
    }
    (root / "meta.json").write_text(json.dumps(meta))
    return root

"""A synthetic passes folder (render/meta.py schema) of a moving stick figure, with skeleton, depth_png,
normal and mask passes (and, on request, rgb and avatar) drawn from the same keypoints: for tests and
benchmarks (no Blender needed).

Written with render/'s own writers (meta entries, PNG writer, the OpenPose drawing), so it holds the
files ``avatarcine render`` would: the skeleton is the annotator drawing of the keypoints, the body
(mask, normal, depth) is where that drawing is not black, facing the camera at a planar depth of
``2 + 0.1 * frame`` metres, and the depth PNG uses the clip's range like render/ does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from render.depthmap import encode_depth
from render.meta import actor_frame, build_meta, frame_entry, pass_entry, standard_pass, write_meta
from render.openpose import draw_pose
from render.png import write_png

# A standing figure in a unit box (x right, y down), openpose18 order (eyes/ears at the nose).
POSE = np.array([[.5, .12], [.5, .25], [.38, .26], [.34, .42], [.32, .56], [.62, .26], [.66, .42], [.68, .56],
                 [.43, .55], [.42, .73], [.42, .92], [.57, .55], [.58, .73], [.58, .92],
                 [.48, .1], [.52, .1], [.46, .11], [.54, .11]])
PASS_NAMES = ("skeleton", "depth_png", "normal", "mask")
# written only when asked: a red figure on grey (a source image for PoseAnimate), the figure in one skin
# tone on black (AMG's avatar condition), a plate without the figure whose blue rises frame by frame
# (each frame has its own background, as under a moving camera)
OPTIONAL_PASSES = ("rgb", "avatar", "plate")
SKIN = (205, 150, 125)
NEAR, STEP = 2.0, 0.1  # metres: the figure's depth at frame 0, and how much farther each frame


def keypoints(frame: int, size: tuple[int, int]) -> np.ndarray:
    """(18, 2) pixel keypoints of the figure at ``frame`` (it walks right and swings an arm)."""
    w, h = size
    pts = POSE.copy()
    pts[:, 0] += 0.04 * frame
    pts[4] += [0.0, -0.08 * np.sin(frame)]
    return pts * [w, h]


def _entries(passes: tuple[str, ...], near: float, far: float) -> dict[str, dict]:
    entries = {
        "skeleton": standard_pass("pose", "skeleton"),
        "depth_png": standard_pass("depth", "depth_png", near=near, far=far, bits=8),
        "normal": standard_pass("normal"),
        "mask": pass_entry("mask", ext="png", dtype="uint8", channels=1, colour_space="raw", kind="mask",
                           encoding="binary foreground: 255 where any actor covers the pixel, else 0"),
        "rgb": standard_pass("image", "rgb"),
        "avatar": pass_entry("avatar", ext="png", dtype="uint8", channels=3, colour_space="sRGB", kind="image",
                             encoding="the figure in one skin tone on black"),
        "plate": pass_entry("plate", ext="png", dtype="uint8", channels=3, colour_space="sRGB", kind="image",
                            encoding="a horizontal red ramp, blue 60 + 40 x frame, no figure"),
    }
    unknown = set(passes) - set(entries)
    if unknown:
        raise ValueError(f"unknown synthetic passes {sorted(unknown)}; choose from {PASS_NAMES + OPTIONAL_PASSES}")
    return {n: entries[n] for n in passes}


def write_passes(root: Path, frames: int = 3, size: tuple[int, int] = (64, 64), fps: float = 8.0,
                 passes: tuple[str, ...] = PASS_NAMES) -> Path:
    """Write a passes folder with ``frames`` frames; returns ``root``."""
    w, h = size
    near, far = NEAR, NEAR + STEP * (frames - 1)
    entries = _entries(passes, near, far)
    K = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], dtype=np.float64)
    meta_frames = []
    for i in range(frames):
        pts = keypoints(i, size)
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
        body_kp = np.column_stack([pts, inside.astype(np.float64)])
        skeleton = draw_pose(h, w, [{"body": body_kp}], backend="numpy")
        body = skeleton.any(axis=-1)
        normal = np.zeros((h, w, 3), np.uint8)
        normal[body] = (128, 128, 255)
        z = np.where(body, NEAR + STEP * i, np.inf)
        rgb = np.full((h, w, 3), 90, np.uint8)
        rgb[body] = (220, 80, 60)
        avatar = np.zeros((h, w, 3), np.uint8)
        avatar[body] = SKIN
        plate = np.zeros((h, w, 3), np.uint8)
        plate[..., 0] = np.linspace(0, 255, w).astype(np.uint8)[None]
        plate[..., 2] = min(60 + 40 * i, 255)
        images = {"skeleton": skeleton, "depth_png": encode_depth(z, near, far, 8), "normal": normal,
                  "mask": body.astype(np.uint8) * 255, "rgb": rgb, "avatar": avatar, "plate": plate}
        for name in passes:
            write_png(root / entries[name]["dir"] / f"{i:06d}.png", images[name])
        actors = {"a": actor_frame(np.zeros((18, 3)), {"openpose18": body_kp})}
        meta_frames.append(frame_entry(i, i / fps, K, np.eye(4), np.eye(4), 0, actors))
    meta = build_meta(fps=fps, resolution=size, passes=entries, frames=meta_frames,
                      joint_names={"smpl": [f"j{k}" for k in range(18)]},
                      actors=[{"name": "a", "body": "synthetic", "skeleton": "smpl", "instance_id": 1}])
    write_meta(root, meta)
    return root

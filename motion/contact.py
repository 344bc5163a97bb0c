"""Foot contact and foot skating (sliding of a foot that should be planted).

Definitions (world Z up, metres; positions from forward kinematics):

- Each foot is the pair (ankle, ball of the foot: SMPL's ``*_ankle`` and ``*_foot`` joints). A
  joint's *floor level* is its lowest height in the clip (its height when the foot stands flat:
  ~0 for the ball, ~6 cm for the ankle), so the metric needs no skeleton-specific constants.
- A foot is *in contact* at a frame when one of its two joints is within ``height`` (default
  3 cm) of its floor level; its *contact point* is the joint nearer its floor level (the ball
  while the heel rises, the ankle at heel strike).
- *Sliding speed*: horizontal speed of the contact point between two consecutive frames that are
  both in contact (cm/s). A planted foot has 0; anything else is skating.
- ``skating(motion)`` reports the mean and 95th percentile sliding speed over contact frames, the
  fraction of contact frames sliding faster than ``slide_speed`` (default 2 cm/s, well under the
  ~10 cm/s a drifting foot shows and well over numerical noise) and the mean height-weighted
  skate used in egocentric-pose papers (Kinpoly, EgoEgo): v * (2 - 2^(h/H)) over frames with
  h <= H, H = ``height`` (here per contact point and averaged, in cm/s).
"""

from __future__ import annotations

import numpy as np

from motion.errors import UserError
from motion.motion import Motion

FEET = {"left": ("left_ankle", "left_foot"), "right": ("right_ankle", "right_foot")}


def foot_contacts(positions: np.ndarray, fps: float, joints: list[tuple[int, int]], height: float = 0.03,
                  max_speed: float | None = None) -> np.ndarray:
    """Contact flags (T, F) for feet given as (ankle, ball) joint index pairs into ``positions``
    (T, J, 3). With ``max_speed`` (m/s) a foot must also move slower than that horizontally (for
    labelling contacts; leave it None to *measure* skating, or sliding would hide itself)."""
    contact = np.stack([_above_floor(positions, pair).min(axis=1) < height for pair in joints], -1)
    if max_speed is not None:
        speed = np.stack([_pair_motion(positions, pair, fps)[0] for pair in joints], -1)
        contact &= np.append(speed, speed[-1:], axis=0) < max_speed
    return contact


def _above_floor(positions: np.ndarray, pair: tuple[int, int]) -> np.ndarray:
    """Heights (T, 2) of a foot's two joints above their floor levels (lowest height in the clip)."""
    z = positions[:, list(pair), 2]
    return z - z.min(axis=0)


def _pair_motion(positions: np.ndarray, pair: tuple[int, int], fps: float) -> tuple[np.ndarray, np.ndarray]:
    """For each frame pair t -> t+1: horizontal speed (m/s) of the foot's contact point (the joint
    whose higher height over the pair is lower) and that height (m); shapes (T-1,)."""
    above = _above_floor(positions, pair)
    pair_height = np.maximum(above[:-1], above[1:])
    which = np.argmin(pair_height, axis=1)
    rows = np.arange(len(positions) - 1)
    xy = positions[:, list(pair), :2]
    step = np.linalg.norm(xy[1:] - xy[:-1], axis=-1)[rows, which]
    return step * fps, pair_height[rows, which]


def skating(motion: Motion, height: float = 0.03, slide_speed: float = 0.02,
            feet: dict[str, tuple[str, str]] | None = None) -> dict[str, float]:
    """Foot-skating metrics of a clip (see the module docstring) from its forward kinematics;
    ``feet`` maps a name to its (ankle, ball) joint names (default: SMPL's)."""
    feet = FEET if feet is None else feet
    joints = [(motion.joint(a), motion.joint(b)) for a, b in feet.values()]
    return skating_of(motion.joint_positions(), motion.fps, joints, height, slide_speed)


def skating_of(positions: np.ndarray, fps: float, joints: list[tuple[int, int]], height: float = 0.03,
               slide_speed: float = 0.02) -> dict[str, float]:
    """Foot-skating metrics of world joint positions (T, J, 3), feet as (ankle, ball) index pairs:
    contact_fraction (of foot-frame pairs), mean_slide_cm_s, p95_slide_cm_s, sliding_fraction
    (of contact pairs faster than ``slide_speed`` m/s) and weighted_skate_cm_s (height-weighted)."""
    if len(positions) < 2:
        raise UserError("motion", "skating needs at least two frames")
    speed, h = (np.stack(x, -1) for x in zip(*[_pair_motion(positions, pair, fps) for pair in joints]))
    both = h < height  # in contact in both frames of the pair
    v = speed[both]
    weighted = speed * np.clip(2 - 2 ** (h / height), 0, None)
    if not v.size:
        return {"contact_fraction": 0.0, "mean_slide_cm_s": 0.0, "p95_slide_cm_s": 0.0,
                "sliding_fraction": 0.0, "weighted_skate_cm_s": 0.0}
    return {
        "contact_fraction": float(both.mean()),
        "mean_slide_cm_s": float(100 * v.mean()),
        "p95_slide_cm_s": float(100 * np.percentile(v, 95)),
        "sliding_fraction": float((v > slide_speed).mean()),
        "weighted_skate_cm_s": float(100 * weighted[both].mean()),
    }

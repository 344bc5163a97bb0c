"""Upper-body posing: torso bends spread over the spine, arms posed by bone directions.

Arms are given as the direction of the upper arm and of the forearm in the chest frame (the
modelling frame of spine3: x left, y up, z forward). The elbow is a hinge: it only ever bends the
forearm towards the front of the upper arm (SMPL's rest elbow flexion axis is -y on the left arm,
+y on the right), and the shoulder takes whatever twist makes that hinge plane contain both
directions, so every pose is reached with an anatomically signed elbow angle in [0, 180) degrees.
"""

from __future__ import annotations

import numpy as np

from motion.generate.body import INDEX, NAMES, OFFSETS, SIDE_SIGN, axis_rotation, frame_from
from motion.rotations import matrix_to_quat


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def flex(v: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate directions (T, 3) forward-up about the lateral axis by ``angle`` (T,) radians."""
    return np.einsum("tij,tj->ti", axis_rotation("x", -np.asarray(angle, dtype=np.float64)), v)


def arm(side: str, upper: np.ndarray, fore: np.ndarray) -> dict[str, np.ndarray]:
    """Local rotations of shoulder and elbow putting the bones along ``upper`` and ``fore`` (T, 3)."""
    s = SIDE_SIGN[side]
    upper, fore = unit(upper), unit(fore)
    rest_upper = np.broadcast_to(unit(OFFSETS[INDEX[f"{side}_elbow"]]), upper.shape)
    rest_hinge = np.broadcast_to(np.array([0.0, -s, 0.0]), upper.shape)
    hinge = np.cross(upper, fore)
    straight = np.linalg.norm(hinge, axis=-1, keepdims=True) < 1e-6
    hinge = np.where(straight, np.cross(upper, [0.0, 0.0, 1.0]) + [0.0, 1e-3, 0.0], hinge)
    shoulder = frame_from(upper, hinge) @ np.swapaxes(frame_from(rest_upper, rest_hinge), -1, -2)
    bend = np.arccos(np.clip(np.sum(upper * fore, axis=-1), -1.0, 1.0))
    elbow = axis_rotation("y", -s * bend)
    return {f"{side}_shoulder": shoulder, f"{side}_elbow": elbow}


def hanging_arm(side: str, swing: np.ndarray, bend: np.ndarray, spread: float = 0.12) -> dict[str, np.ndarray]:
    """Arm hanging at the side, swung forward by ``swing`` and the elbow bent by ``bend`` (radians)."""
    swing = np.asarray(swing, dtype=np.float64)
    down = np.broadcast_to(unit([SIDE_SIGN[side] * spread, -1.0, 0.0]), swing.shape + (3,))
    return arm(side, flex(down, swing), flex(down, swing + np.asarray(bend, dtype=np.float64)))


def torso(pitch, yaw=0.0, roll=0.0, head_pitch=0.0, head_yaw=0.0, n: int = 1) -> dict[str, np.ndarray]:
    """Spine bend (forward ``pitch``, left-turning ``yaw``, left-side-down ``roll``) spread over
    spine1..3, and the head's own pitch/yaw split between neck and head (radians, arrays (T,))."""
    pitch, yaw, roll, head_pitch, head_yaw = (np.broadcast_to(np.asarray(a, dtype=np.float64), (n,))
                                              for a in (pitch, yaw, roll, head_pitch, head_yaw))
    spine = axis_rotation("y", yaw / 3) @ axis_rotation("x", pitch / 3) @ axis_rotation("z", -roll / 3)
    neck = axis_rotation("y", head_yaw / 2) @ axis_rotation("x", head_pitch / 2)
    return {"spine1": spine, "spine2": spine, "spine3": spine, "neck": neck, "head": neck}


def to_quats(parts: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Joint-name -> local rotation matrices (T, 3, 3) into quaternions (T, J, 4), identity elsewhere."""
    q = np.zeros((n, len(NAMES), 4))
    q[..., 0] = 1.0
    for name, m in parts.items():
        q[:, INDEX[name]] = matrix_to_quat(np.broadcast_to(m, (n, 3, 3)))
    return q

"""A reference rest skeleton for SMPL-topology motions read without the body-model files.

AMASS and fitter files carry rotations and a translation but not the rest joint positions (those
come from the licensed model files). When the user has not given them we use this skeleton: SMPL
joint topology, modelling frame Y up / facing +Z / subject's left +X, joint heights and segment
lengths from Drillis & Contini's anthropometric ratios for a stature H (fractions of H below).
With model files, ``motion.bodies`` computes the exact joints instead.
"""

from __future__ import annotations

import numpy as np

from motion.skeletons import skeleton

# AMASS/SMPL ``trans`` is the model origin, not the pelvis: the pelvis joint of the mean body sits
# this far from the origin in the modelling frame (the offset is added unrotated, a known quirk).
SMPL_ORIGIN_TO_PELVIS = np.array([0.0, -0.22, 0.028])

# Joint positions in the T-pose, as (x, y, z) fractions of stature, y measured from the floor.
_BODY_FRACTIONS = {
    "pelvis": (0.0, 0.560, 0.0),
    "left_hip": (0.050, 0.520, 0.0),
    "right_hip": (-0.050, 0.520, 0.0),
    "spine1": (0.0, 0.620, -0.010),
    "left_knee": (0.055, 0.285, 0.0),
    "right_knee": (-0.055, 0.285, 0.0),
    "spine2": (0.0, 0.695, -0.005),
    "left_ankle": (0.050, 0.039, -0.015),
    "right_ankle": (-0.050, 0.039, -0.015),
    "spine3": (0.0, 0.725, 0.0),
    "left_foot": (0.065, 0.005, 0.060),
    "right_foot": (-0.065, 0.005, 0.060),
    "neck": (0.0, 0.845, -0.010),
    "left_collar": (0.045, 0.800, -0.005),
    "right_collar": (-0.045, 0.800, -0.005),
    "head": (0.0, 0.900, 0.015),
    "left_shoulder": (0.100, 0.818, -0.010),
    "right_shoulder": (-0.100, 0.818, -0.010),
    "left_elbow": (0.286, 0.818, -0.015),
    "right_elbow": (-0.286, 0.818, -0.015),
    "left_wrist": (0.432, 0.818, -0.015),
    "right_wrist": (-0.432, 0.818, -0.015),
    "left_hand": (0.482, 0.818, -0.020),
    "right_hand": (-0.482, 0.818, -0.020),
    "jaw": (0.0, 0.905, 0.030),
    "left_eye_smplhf": (0.018, 0.935, 0.045),
    "right_eye_smplhf": (-0.018, 0.935, 0.045),
}
# Finger joints: (sideways spread, forward) at the knuckle, and the phalanx lengths, as fractions of H.
_FINGER_ROOTS = {"index": (0.050, 0.012), "middle": (0.052, 0.0), "ring": (0.050, -0.010),
                 "pinky": (0.046, -0.020), "thumb": (0.015, 0.020)}
_PHALANX = 0.014


def reference_joints(name: str, stature: float = 1.75) -> tuple[list[str], np.ndarray]:
    """Rest joint positions (J, 3) of skeleton ``name`` relative to the SMPL model origin."""
    names, _ = skeleton(name)
    pelvis_height = _BODY_FRACTIONS["pelvis"][1]
    joints = np.zeros((len(names), 3))
    for i, joint in enumerate(names):
        if joint in _BODY_FRACTIONS:
            x, y, z = _BODY_FRACTIONS[joint]
        else:  # e.g. left_index2: fingers continue outward from the wrist
            side, finger, k = joint.split("_")[0], joint.split("_")[1][:-1], int(joint[-1])
            sign = 1.0 if side == "left" else -1.0
            wx, wy, wz = _BODY_FRACTIONS[f"{side}_wrist"]
            spread, forward = _FINGER_ROOTS[finger]
            x, y, z = sign * (abs(wx) + spread + (k - 1) * _PHALANX), wy, wz + forward
        joints[i] = (x * stature, (y - pelvis_height) * stature, z * stature)
    return names, joints + SMPL_ORIGIN_TO_PELVIS


def joints_to_offsets(joints: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Rest joint positions -> offsets from each parent (row 0 keeps the root's position)."""
    offsets = joints.copy()
    offsets[1:] = joints[1:] - joints[np.asarray(parents)[1:]]
    return offsets


def reference_offsets(name: str, stature: float = 1.75) -> np.ndarray:
    """Rest offsets (J, 3) of skeleton ``name`` for ``Motion.rest_offsets``."""
    _, parents = skeleton(name)
    return joints_to_offsets(reference_joints(name, stature)[1], parents)

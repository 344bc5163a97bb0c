"""Joint names and parents of the skeletons avatarcine knows by name.

SMPL-family joint order is the official one (as ``smplx`` and AMASS use it). HumanML3D's
22 joints are SMPL's first 22. Anny's skeleton comes from the anny package (104 bones) and is
stored in every baked avatar; BVH files carry their own skeleton.
"""

from __future__ import annotations

import numpy as np

from motion.errors import UserError

SMPL_BODY = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
]
SMPL_BODY_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]

_FINGERS = ["index", "middle", "pinky", "ring", "thumb"]  # official SMPL-H/MANO order


def _hand(side: str, wrist: int, first: int) -> tuple[list[str], list[int]]:
    names, parents = [], []
    for f_i, finger in enumerate(_FINGERS):
        for k in range(1, 4):
            names.append(f"{side}_{finger}{k}")
            parents.append(wrist if k == 1 else first + 3 * f_i + k - 2)
    return names, parents


def _build() -> dict[str, tuple[list[str], list[int]]]:
    smpl = (SMPL_BODY + ["left_hand", "right_hand"], SMPL_BODY_PARENTS + [20, 21])
    lh, lhp = _hand("left", 20, 22)
    rh, rhp = _hand("right", 21, 37)
    smplh = (SMPL_BODY + lh + rh, SMPL_BODY_PARENTS + lhp + rhp)
    lx, lxp = _hand("left", 20, 25)
    rx, rxp = _hand("right", 21, 40)
    smplx = (SMPL_BODY + ["jaw", "left_eye_smplhf", "right_eye_smplhf"] + lx + rx,
             SMPL_BODY_PARENTS + [15, 15, 15] + lxp + rxp)
    return {
        "smpl": smpl,
        "smplh": smplh,
        "smplx": smplx,
        "humanml3d": (list(SMPL_BODY), list(SMPL_BODY_PARENTS)),
    }


SKELETONS = _build()
SMPL_FAMILY = ("smpl", "smplh", "smplx")


def skeleton(name: str) -> tuple[list[str], np.ndarray]:
    """Joint names and parent indices (-1 for the root) of a named skeleton."""
    if name not in SKELETONS:
        raise UserError("skeleton", f"unknown skeleton {name!r}; known: {', '.join(SKELETONS)}")
    names, parents = SKELETONS[name]
    return list(names), np.asarray(parents, dtype=np.int64)


def check_parents(parents: np.ndarray, where: str) -> None:
    """Parents must form a tree listed parents-first with one root at index 0."""
    parents = np.asarray(parents)
    if parents.ndim != 1 or len(parents) == 0 or parents[0] != -1:
        raise UserError(where, "joint parents must be a 1-D list starting with the root (-1)")
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, len(parents))):
        raise UserError(where, "each joint's parent must come before it (one root at index 0)")

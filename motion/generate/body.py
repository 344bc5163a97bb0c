"""The generator's body: SMPL joints on the reference skeleton, its floor, and frame helpers.

Frames: the *modelling frame* is SMPL's (Y up, facing +Z, subject's left +X). A character with
heading ``psi`` (radians, counter-clockwise about world +Z seen from above; 0 = facing -Y, the
AMASS/Blender convention) maps modelling vectors into the world with ``Rz(psi) @ Y_UP_TO_Z_UP``.
So turning left is a positive change of heading.
"""

from __future__ import annotations

import numpy as np

from motion.reference_skeleton import reference_offsets
from motion.rotations import Y_UP_TO_Z_UP, euler_to_matrix
from motion.skeletons import skeleton

SKELETON = "smpl"
NAMES, PARENTS = skeleton(SKELETON)
OFFSETS = reference_offsets(SKELETON)
INDEX = {name: i for i, name in enumerate(NAMES)}


def _rest_positions() -> np.ndarray:
    """Rest joint positions relative to the pelvis, in the modelling frame."""
    pos = np.zeros((len(NAMES), 3))
    for j in range(1, len(NAMES)):
        pos[j] = pos[PARENTS[j]] + OFFSETS[j]
    return pos


REST = _rest_positions()
# The floor is where the lowest foot joint (the ball of the foot, SMPL's "foot") stands.
PELVIS_HEIGHT = -REST[INDEX["left_foot"], 1]
SIDE_SIGN = {"left": 1.0, "right": -1.0}  # modelling-frame x of the subject's left / right


def heading_frame(psi: np.ndarray) -> np.ndarray:
    """Modelling frame -> world for a character with heading ``psi``: Rz(psi) @ Y_UP_TO_Z_UP."""
    return axis_rotation("z", psi) @ Y_UP_TO_Z_UP


def forward(psi: np.ndarray) -> np.ndarray:
    """World facing direction (..., 3) for heading ``psi``."""
    psi = np.asarray(psi, dtype=np.float64)
    return np.stack([np.sin(psi), -np.cos(psi), np.zeros_like(psi)], -1)


def left(psi: np.ndarray) -> np.ndarray:
    """World direction (..., 3) of the character's left for heading ``psi``."""
    psi = np.asarray(psi, dtype=np.float64)
    return np.stack([np.cos(psi), np.sin(psi), np.zeros_like(psi)], -1)


def axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) about the x, y or z axis by ``angle`` radians (right-handed)."""
    return euler_to_matrix(np.rad2deg(np.asarray(angle, dtype=np.float64))[..., None], axis.upper())


def frame_from(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal frames (..., 3, 3): columns primary, secondary made orthogonal, their cross."""
    a = primary / np.linalg.norm(primary, axis=-1, keepdims=True)
    b = secondary - np.sum(secondary * a, axis=-1, keepdims=True) * a
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return np.stack([a, b, np.cross(a, b)], axis=-1)

"""Body-part labels for the semantic segmentation pass: one fixed palette for every body.

Id 0 is the background (black) and no vertex carries it. Parts 1..16 follow the usual
human-parsing split (head, neck, torso, pelvis, three segments per limb). A vertex's part is the
part that receives the largest total skinning weight over the vertex's bones, so labels follow the
body model's own rig. Colours are fully saturated and pairwise far apart so that the pass survives
8-bit storage and nearest-colour decoding; left limbs are warm, right limbs cold.
"""

from __future__ import annotations

import numpy as np

from motion.errors import UserError

PART_NAMES = [
    "background", "head", "neck", "torso", "pelvis",
    "left_upper_arm", "right_upper_arm", "left_lower_arm", "right_lower_arm", "left_hand", "right_hand",
    "left_upper_leg", "right_upper_leg", "left_lower_leg", "right_lower_leg", "left_foot", "right_foot",
]
PART_PALETTE = np.array([
    (0, 0, 0),        # background
    (255, 220, 0),    # head
    (255, 128, 255),  # neck
    (0, 200, 0),      # torso
    (128, 64, 255),   # pelvis
    (255, 0, 0),      # left_upper_arm
    (0, 0, 255),      # right_upper_arm
    (255, 128, 0),    # left_lower_arm
    (0, 160, 255),    # right_lower_arm
    (160, 0, 0),      # left_hand
    (0, 0, 128),      # right_hand
    (255, 0, 128),    # left_upper_leg
    (0, 255, 255),    # right_upper_leg
    (255, 255, 128),  # left_lower_leg
    (0, 128, 128),    # right_lower_leg
    (128, 128, 0),    # left_foot
    (128, 255, 128),  # right_foot
], dtype=np.uint8)


def vertex_parts(skin_indices: np.ndarray, skin_weights: np.ndarray, joint_parts: list[str]) -> np.ndarray:
    """Part id (V,) per vertex: the part with the largest summed skinning weight.

    ``joint_parts[j]`` names the part joint ``j`` belongs to (one of ``PART_NAMES[1:]``).
    """
    unknown = sorted(set(joint_parts) - set(PART_NAMES[1:]))
    if unknown:
        raise UserError("parts", f"unknown part names {unknown}")
    part_of_joint = np.array([PART_NAMES.index(p) for p in joint_parts])
    totals = np.zeros((len(skin_indices), len(PART_NAMES)))
    rows = np.repeat(np.arange(len(skin_indices)), skin_indices.shape[1])
    np.add.at(totals, (rows, part_of_joint[skin_indices].ravel()), skin_weights.ravel())
    return totals.argmax(1).astype(np.int64)

"""AMASS motion files (.npz): SMPL+H (``poses`` (T, 156)), SMPL-X (``poses`` (T, 165) or the split
keys ``root_orient``/``pose_body``/``pose_hand``/``pose_jaw``/``pose_eye``), and SMPL (``poses`` (T, 72)).

AMASS's world is Z up and ``root_orient`` maps the Y-up modelling frame straight into it, so no
frame change is needed; see ``body_params`` for the unrotated pelvis offset added to ``trans``.
"""

from __future__ import annotations

import os

import numpy as np

from motion.errors import UserError
from motion.io.body_params import float_array, frames_of, smpl_motion, text_of
from motion.motion import Motion

# poses width -> body model (joints x 3, official joint order)
_BODY_BY_WIDTH = {72: "smpl", 156: "smplh", 165: "smplx"}
# split keys in SMPL-X joint order: root, 21 body, jaw, 2 eyes, 2 x 15 hand joints
_SPLIT_SMPLX = (("root_orient", 3), ("pose_body", 63), ("pose_jaw", 3), ("pose_eye", 6), ("pose_hand", 90))
FRAME_RATE_KEYS = ("mocap_framerate", "mocap_frame_rate", "fps")


def is_amass(data: dict) -> bool:
    return "poses" in data or "root_orient" in data


def read_amass(data: dict, where: str | os.PathLike, model_path=None, fps: float | None = None) -> Motion:
    """An AMASS archive's arrays -> Motion on the smpl/smplh/smplx skeleton."""
    if "trans" not in data:
        raise UserError(where, "missing key 'trans' (root translation)")
    if "poses" in data:
        poses = float_array(data, "poses", where)
        if poses.ndim != 2 or poses.shape[1] not in _BODY_BY_WIDTH:
            raise UserError(where, f"'poses' has shape {poses.shape}; expected (frames, 72|156|165)")
        body = _BODY_BY_WIDTH[poses.shape[1]]
    else:
        poses, body = _join_split_keys(data, where)
    if len(poses) == 0:
        raise UserError(where, "motion has zero frames")
    trans = frames_of(float_array(data, "trans", where), "trans", 3, where)
    if fps is None:
        key = next((k for k in FRAME_RATE_KEYS if k in data), None)
        if key is None:
            raise UserError(where, f"no frame rate ({' or '.join(FRAME_RATE_KEYS)})")
        fps = float(float_array(data, key, where).reshape(-1)[0])
    if fps <= 0:
        raise UserError(where, f"frame rate must be positive, got {fps}")
    betas = float_array(data, "betas", where).reshape(-1) if "betas" in data else None
    gender = text_of(data.get("gender"), "neutral").lower()
    return smpl_motion(body, poses.reshape(len(poses), -1, 3), trans, fps, where,
                       betas=betas, gender=gender, model_path=model_path)


def _join_split_keys(data: dict, where) -> tuple[np.ndarray, str]:
    """Concatenate the split keys in joint order; body is smplx when jaw/eyes are present, else smplh."""
    body = "smplx" if ("pose_jaw" in data or "pose_eye" in data
                       or text_of(data.get("surface_model_type"), "") == "smplx") else "smplh"
    root = frames_of(float_array(data, "root_orient", where), "root_orient", 3, where)
    T = len(root)
    parts = []
    for key, width in _SPLIT_SMPLX:
        if body == "smplh" and key in ("pose_jaw", "pose_eye"):
            continue
        if key == "root_orient":
            parts.append(root)
        elif key in data:
            part = frames_of(float_array(data, key, where), key, width, where)
            if len(part) != T:
                raise UserError(where, f"{key!r} has {len(part)} frames but 'root_orient' has {T}")
            parts.append(part)
        elif key == "pose_body":
            raise UserError(where, "missing key 'pose_body'")
        else:  # absent hands/face: rest pose
            parts.append(np.zeros((T, width)))
    return np.concatenate(parts, axis=1), body

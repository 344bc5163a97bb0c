"""SMPL-family pose parameters -> Motion (shared by the AMASS and the fitter-parameter readers).

Both formats store, per frame, axis-angle rotations in the body's joint order and a translation
``trans`` of the *model origin*. SMPL rotates the body about the pelvis joint J0 and then adds
``trans``, so the pelvis lands at ``trans + J0``: the rest pelvis offset is added unrotated.
With ``world_from_file`` (3x3) mapping the file's world frame into ours (Z up):

    root rotation      = world_from_file @ R(root_orient)
    root_translation   = world_from_file @ (trans + J0)
"""

from __future__ import annotations

import os

import numpy as np

from motion.errors import UserError
from motion.motion import Motion
from motion.reference_skeleton import joints_to_offsets, reference_joints
from motion.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from motion.skeletons import skeleton


def float_array(data: dict, key: str, where: str | os.PathLike) -> np.ndarray:
    """``data[key]`` as a finite float64 array, or a UserError naming the file and key."""
    try:
        value = data[key]
        if hasattr(value, "detach"):  # torch tensors in fitter pickles
            value = value.detach().cpu().numpy()
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(where, f"{key!r} is not a numeric array") from None
    if not np.all(np.isfinite(array)):
        raise UserError(where, f"{key!r} contains NaN or inf")
    return array


def frames_of(array: np.ndarray, key: str, width: int, where: str | os.PathLike) -> np.ndarray:
    """Reshape per-frame parameters to (T, width): accepts (T, width), (T, width/3, 3), (width,)."""
    if array.ndim == 1 and array.size == width:
        return array[None]
    if array.ndim >= 2 and int(np.prod(array.shape[1:])) == width:
        return array.reshape(len(array), width)
    raise UserError(where, f"{key!r} has shape {array.shape}; expected (frames, {width})")


def text_of(value, default: str) -> str:
    """A string stored as a numpy 0-d/1-element array, bytes or str (AMASS writes all three)."""
    if value is None:
        return default
    value = np.asarray(value).reshape(-1)
    if value.size == 0:
        return default
    item = value[0]
    return (item.decode() if isinstance(item, bytes) else str(item)).strip() or default


def rest_joints(body: str, model_path: str | os.PathLike | None, gender: str, betas: np.ndarray | None,
                where: str | os.PathLike) -> np.ndarray:
    """Rest joint positions (J, 3) in the modelling frame, relative to the model origin.

    From the body-model files when ``model_path`` is given (exact for these betas), otherwise the
    anthropometric reference skeleton (``motion.reference_skeleton``).
    """
    names, _ = skeleton(body)
    if model_path is None:
        return reference_joints(body)[1]
    from motion.bodies.smpl_family import rest_joints as model_rest_joints

    joints = np.asarray(model_rest_joints(body, model_path, gender, betas), dtype=np.float64)
    if joints.shape != (len(names), 3):
        raise UserError(where, f"the {body} model at {model_path} gives {joints.shape} joints, "
                               f"expected ({len(names)}, 3)")
    return joints


def smpl_motion(body: str, pose: np.ndarray, trans: np.ndarray, fps: float, where: str | os.PathLike, *,
                betas: np.ndarray | None = None, gender: str = "neutral", model_path=None,
                world_from_file: np.ndarray = np.eye(3), extra_shape: dict | None = None) -> Motion:
    """Build a validated Motion from full-body axis-angle ``pose`` (T, J, 3) and ``trans`` (T, 3)."""
    names, parents = skeleton(body)
    T = len(pose)
    if pose.shape != (T, len(names), 3):
        raise UserError(where, f"pose has shape {pose.shape}; {body} needs (frames, {len(names)}, 3)")
    if trans.shape != (T, 3):
        raise UserError(where, f"translation has shape {trans.shape}; expected ({T}, 3) to match the poses")
    joints = rest_joints(body, model_path, gender, betas, where)
    rotations = pose.copy()
    rotations[:, 0] = matrix_to_axis_angle(world_from_file @ axis_angle_to_matrix(pose[:, 0]))
    shape = {"gender": gender}
    if betas is not None:
        shape["betas"] = betas
    shape.update(extra_shape or {})
    return Motion(
        skeleton=body,
        joint_names=names,
        parents=parents,
        fps=fps,
        rotations=rotations,
        root_translation=(trans + joints[0]) @ world_from_file.T,
        rest_offsets=joints_to_offsets(joints, parents),
        shape=shape,
    ).validate(where)

"""SMPL-X (and SMPL) parameter files as fitters write them (.npz or .pkl).

Keys: ``global_orient`` (T, 3), ``body_pose`` (T, 63) or (T, 21, 3) (SMPL: (T, 69)),
``left_hand_pose``/``right_hand_pose`` (T, 45) axis-angle or (T, n<45) PCA coefficients,
``jaw_pose``, ``leye_pose``, ``reye_pose`` (T, 3), ``transl`` (T, 3), ``betas``, ``expression``;
optional ``fps``. Arrays with one frame are broadcast over the sequence; per-frame ``betas`` are
averaged (one body per clip); ``expression`` is kept per frame in ``Motion.shape``.

Conventions we assume (fitters do not record them):
- Frame: ``frame="y_up"`` (default) takes the parameters in SMPL-X's own Y-up world, as world-space
  video fitters and SMPL-X's own tools write them. Per-image fits in *camera* coordinates (OpenCV:
  Y down, Z forward; SMPLify-X, PIXIE, SMPLer-X) need ``frame="opencv"`` or the body comes out
  upside down; ``frame="z_up"`` for parameters already in a Z-up world (AMASS-like).
- Hands: 45-D hand poses are absolute joint rotations (smplx's ``flat_hand_mean=True``). PCA
  coefficients are expanded with the model's ``hands_components`` and, as in SMPL-X's PCA space,
  the model's ``hands_mean`` is added; this needs the SMPL-X model file (``model_path``).
- Rate: 30 fps unless the file has ``fps``/``mocap_frame_rate`` or the caller passes ``fps``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from motion.errors import UserError
from motion.io.amass import FRAME_RATE_KEYS
from motion.io.body_params import float_array, frames_of, smpl_motion, text_of
from motion.motion import Motion
from motion.rotations import Y_UP_TO_Z_UP

DEFAULT_FPS = 30.0
WORLD_FROM_FILE = {
    "y_up": Y_UP_TO_Z_UP,
    "z_up": np.eye(3),
    "opencv": Y_UP_TO_Z_UP @ np.diag([1.0, -1.0, -1.0]),  # camera frame: 180 deg about X to Y up
}
_HAND_WIDTH = 45


def is_smplx_params(data: dict) -> bool:
    return "global_orient" in data or "body_pose" in data


def load_pickle(path: Path) -> dict:
    """A fitter's pickle (a dict of arrays or torch tensors) or a UserError."""
    try:
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")
    except Exception as exc:  # pickle raises many types for foreign or corrupt files
        raise UserError(path, f"not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise UserError(path, f"expected a dict of SMPL-X parameters, got {type(data).__name__}")
    return data


def read_smplx_params(data: dict, where: str | os.PathLike, model_path=None, fps: float | None = None,
                      frame: str = "y_up") -> Motion:
    """Fitter parameters -> Motion on the smplx (or smpl) skeleton."""
    if frame not in WORLD_FROM_FILE:
        raise UserError("frame", f"unknown frame {frame!r}; choose one of {', '.join(WORLD_FROM_FILE)}")
    if "global_orient" not in data:
        raise UserError(where, "missing key 'global_orient'")
    if "body_pose" not in data:
        raise UserError(where, "missing key 'body_pose'")
    body_pose = float_array(data, "body_pose", where)
    per_joint = int(np.prod(body_pose.shape[1:])) if body_pose.ndim >= 2 else body_pose.size
    body = "smpl" if per_joint == 69 else "smplx"
    body_pose = frames_of(body_pose, "body_pose", 69 if body == "smpl" else 63, where)
    root = frames_of(float_array(data, "global_orient", where), "global_orient", 3, where)
    T = max(len(root), len(body_pose))
    if T == 0 or min(len(root), len(body_pose)) == 0:
        raise UserError(where, "motion has zero frames")

    def frames(key: str, width: int) -> np.ndarray:
        if key not in data:
            return np.zeros((T, width))
        return _broadcast(frames_of(float_array(data, key, where), key, width, where), T, key, where)

    parts = [_broadcast(root, T, "global_orient", where), _broadcast(body_pose, T, "body_pose", where)]
    if body == "smplx":
        parts += [frames("jaw_pose", 3), frames("leye_pose", 3), frames("reye_pose", 3)]
        parts += [_hand_pose(data, side, T, where, model_path) for side in ("left", "right")]
    pose = np.concatenate(parts, axis=1).reshape(T, -1, 3)
    if fps is None:
        key = next((k for k in FRAME_RATE_KEYS if k in data), None)
        fps = float(float_array(data, key, where).reshape(-1)[0]) if key else DEFAULT_FPS
    if fps <= 0:
        raise UserError(where, f"frame rate must be positive, got {fps}")
    betas = None
    if "betas" in data:
        betas = float_array(data, "betas", where)
        betas = betas.reshape(-1, betas.shape[-1]).mean(axis=0) if betas.ndim > 1 else betas
    extra = {}
    if "expression" in data:
        expression = float_array(data, "expression", where)
        expression = expression[None] if expression.ndim == 1 else expression.reshape(len(expression), -1)
        extra["expression"] = _broadcast(expression, T, "expression", where)
    return smpl_motion(body, pose, frames("transl", 3), fps, where, betas=betas,
                       gender=text_of(data.get("gender"), "neutral").lower(), model_path=model_path,
                       world_from_file=WORLD_FROM_FILE[frame], extra_shape=extra)


def _broadcast(array: np.ndarray, T: int, key: str, where) -> np.ndarray:
    if len(array) == T:
        return array
    if len(array) == 1:
        return np.repeat(array, T, axis=0)
    raise UserError(where, f"{key!r} has {len(array)} frames; other parameters have {T}")


def _hand_pose(data: dict, side: str, T: int, where, model_path) -> np.ndarray:
    key = f"{side}_hand_pose"
    if key not in data:
        return np.zeros((T, _HAND_WIDTH))
    pose = float_array(data, key, where)
    pose = pose.reshape(len(pose), int(np.prod(pose.shape[1:]))) if pose.ndim > 1 else pose[None]
    if pose.shape[1] == _HAND_WIDTH:
        return _broadcast(pose, T, key, where)
    if pose.shape[1] > _HAND_WIDTH:
        raise UserError(where, f"{key!r} has {pose.shape[1]} values per frame; expected 45 or PCA (< 45)")
    if model_path is None:
        raise UserError(where, f"{key!r} holds {pose.shape[1]} PCA coefficients; expanding them needs "
                               "the SMPL-X model's hand components: pass --model-path")
    components, mean = hand_pca(model_path, text_of(data.get("gender"), "neutral").lower(), side)
    return _broadcast(pose @ components[: pose.shape[1]] + mean, T, key, where)


def hand_pca(model_path: str | os.PathLike, gender: str, side: str) -> tuple[np.ndarray, np.ndarray]:
    """The SMPL-X model's hand PCA basis (45, 45) and mean (45,) for ``side`` ("left"/"right")."""
    from motion.bodies.smpl_family import model_file, read_model_arrays

    path = model_file("smplx", model_path, gender)
    data = read_model_arrays(path)
    letter = side[0]
    try:
        components = np.asarray(data[f"hands_components{letter}"], dtype=np.float64)
        mean = np.asarray(data[f"hands_mean{letter}"], dtype=np.float64).reshape(_HAND_WIDTH)
    except KeyError as exc:
        raise UserError(path, f"not an SMPL-X model file (no {exc.args[0]!r})") from None
    return components.reshape(-1, _HAND_WIDTH), mean

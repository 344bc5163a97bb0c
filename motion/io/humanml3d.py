"""HumanML3D joint positions (.npy) as text-to-motion models write them -> Motion via IK.

- ``(T, 22, 3)`` arrays (T2M-GPT, MoMask, HumanML3D's ``new_joints``): SMPL-22 joint order, metres,
  Y up, the body facing +Z with its left at +X at the start (HumanML3D's ``t2m_raw_offsets``), 20 fps.
- MDM's ``results.npy``: a pickled dict with ``motion`` (N, 22, 3, T) and ``lengths`` (N,);
  sample ``sample`` (default 0) is taken, cut to its length.

Y up becomes our Z up with ``Y_UP_TO_Z_UP``; rotations come from ``motion.ik``.
"""

from __future__ import annotations

import os

import numpy as np

from motion.errors import UserError
from motion.ik import positions_to_motion
from motion.motion import Motion
from motion.rotations import Y_UP_TO_Z_UP

FPS = 20.0
N_JOINTS = 22


def read_joints_npy(value, where: str | os.PathLike, fps: float | None = None, sample: int = 0) -> Motion:
    """The content of a .npy (array or MDM results dict) -> Motion on the humanml3d skeleton."""
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        value = value.item()
    if isinstance(value, dict):
        joints = _mdm_sample(value, where, sample)
    else:
        joints = np.asarray(value)
        if joints.ndim != 3 or joints.shape[1:] != (N_JOINTS, 3):
            hint = " (HumanML3D's 263-D features are not joint positions)" if joints.shape[-1:] == (263,) else ""
            raise UserError(where, f"expected joint positions of shape (frames, 22, 3), got {joints.shape}{hint}")
    if not np.issubdtype(joints.dtype, np.number):
        raise UserError(where, f"joint positions must be numbers, got dtype {joints.dtype}")
    return positions_to_motion(joints.astype(np.float64) @ Y_UP_TO_Z_UP.T, fps=FPS if fps is None else fps,
                               where=str(where))


def _mdm_sample(results: dict, where, sample: int) -> np.ndarray:
    if "motion" not in results:
        raise UserError(where, f"a results dict needs key 'motion' (N, 22, 3, T); has {', '.join(map(str, results))}")
    motion = np.asarray(results["motion"])
    if motion.ndim != 4 or motion.shape[1:3] != (N_JOINTS, 3):
        raise UserError(where, f"'motion' must have shape (samples, 22, 3, frames), got {motion.shape}")
    if not -len(motion) <= sample < len(motion):
        raise UserError(where, f"sample {sample} out of range: the file has {len(motion)} samples")
    joints = np.moveaxis(motion[sample], -1, 0)  # (T, 22, 3)
    if "lengths" in results:
        joints = joints[: int(np.asarray(results["lengths"]).reshape(-1)[sample])]
    return joints

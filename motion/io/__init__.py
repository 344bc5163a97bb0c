"""Motion files in and out: ``read_motion`` (any supported format) and ``write_motion`` (.npz, .bvh).

Readers by extension and content:

- ``.npz``: an avatarcine motion (``format`` key), an AMASS file (``poses`` or ``root_orient``;
  ``motion.io.amass``), or SMPL-X fitter parameters (``global_orient``; ``motion.io.smplx_params``)
- ``.pkl``: SMPL-X fitter parameters
- ``.bvh``: any skeleton (``motion.io.bvh``)
- ``.npy``: HumanML3D joint positions or MDM's ``results.npy`` (``motion.io.humanml3d``), via IK
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from motion.errors import UserError
from motion.fileio import load_npz
from motion.motion import FORMAT, Motion

READ_SUFFIXES = (".npz", ".pkl", ".bvh", ".npy")
WRITE_SUFFIXES = (".npz", ".bvh")


def read_motion(path: str | os.PathLike, model_path: str | os.PathLike | None = None, *,
                fps: float | None = None, frame: str = "y_up", sample: int = 0,
                units: str | None = None) -> Motion:
    """Read any supported motion file into a validated Motion (world Z up, metres).

    ``model_path``: SMPL-family model files, for exact rest joints (and SMPL-X PCA hands).
    ``fps``: the source frame rate, overriding the file's (fitter files default to 30, HumanML3D
    joints to 20). ``frame``: the world of fitter parameters ("y_up", "z_up", "opencv"; see
    ``motion.io.smplx_params``). ``sample``: which sample of an MDM ``results.npy``.
    ``units``: BVH length unit ("m", "cm", "mm", "inch"; guessed when None).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "no such file")
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise UserError("fps", f"must be a positive number, got {fps}")
    suffix = path.suffix.lower()
    if suffix == ".bvh":
        from motion.io.bvh import read_bvh

        return read_bvh(path, units=units, fps=fps)
    if suffix == ".npy":
        from motion.io.humanml3d import read_joints_npy

        try:
            value = np.load(path, allow_pickle=True)
        except Exception as exc:  # numpy raises many types for a corrupt file
            raise UserError(path, f"not a readable .npy file ({type(exc).__name__}: {exc})") from None
        return read_joints_npy(value, path, fps=fps, sample=sample)
    if suffix == ".pkl":
        from motion.io.smplx_params import load_pickle, read_smplx_params

        return read_smplx_params(load_pickle(path), path, model_path, fps=fps, frame=frame)
    if suffix != ".npz":
        raise UserError(path, f"unknown motion format {suffix or '(no extension)'!r}; "
                              f"readable: {', '.join(READ_SUFFIXES)}")
    data = load_npz(path)
    if "format" in data:
        motion = Motion.load(path)
        return motion.replace(fps=fps).validate(path) if fps is not None else motion
    from motion.io.amass import is_amass, read_amass
    from motion.io.smplx_params import is_smplx_params, read_smplx_params

    if is_amass(data):
        return read_amass(data, path, model_path, fps=fps)
    if is_smplx_params(data):
        return read_smplx_params(data, path, model_path, fps=fps, frame=frame)
    raise UserError(path, f"not a motion archive: expected an avatarcine motion ({FORMAT!r}), AMASS "
                          "('poses' or 'root_orient') or SMPL-X parameters ('global_orient'); "
                          f"found keys {', '.join(sorted(data)) or 'none'}")


def write_motion(motion: Motion, path: str | os.PathLike, force: bool = False) -> Path:
    """Write ``motion`` as avatarcine .npz or .bvh, atomically; refuses to overwrite unless ``force``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise UserError(path, f"cannot write {suffix or '(no extension)'!r}; writable: {', '.join(WRITE_SUFFIXES)}")
    motion.validate("motion")
    if suffix == ".bvh":
        from motion.io.bvh import write_bvh

        return write_bvh(motion, path, force=force)
    return motion.save(path, force=force)


__all__ = ["read_motion", "write_motion"]

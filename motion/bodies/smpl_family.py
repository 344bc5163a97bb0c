"""SMPL, SMPL-H and SMPL-X through the ``smplx`` package, from the user's licensed model files.

Accepted ``model_path`` (or ``$AVATARCINE_SMPL_DIR``): a model file, or a folder in one of the
layouts ``smplx`` and AMASS use, e.g. ``DIR/smplx/SMPLX_NEUTRAL.npz``, ``DIR/smplh/SMPLH_MALE.pkl``,
``DIR/SMPL_NEUTRAL.pkl``, ``DIR/smplh/male/model.npz``. Models are loaded with hands as full
axis-angle (``use_pca=False``) and ``flat_hand_mean=True``, so the rest pose has flat hands and a
Motion's finger rotations are the model's hand pose parameters (AMASS's convention).

Frames: the modelling frame is Y up, facing +Z; ``model_to_world = Y_UP_TO_Z_UP`` and the baked
asset is translated so the feet stand on z = 0 with the pelvis above the origin
(``shape["model_origin"]`` is where the model's origin lands). Pose correctives (``posedirs``)
are baked as ``corrective_shapes`` in the world frame (see ``motion.asset``).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
from pathlib import Path

import numpy as np

from motion.asset import AvatarAsset
from motion.errors import UserError
from motion.rotations import Y_UP_TO_Z_UP
from motion.skeletons import skeleton

GENDERS = ("neutral", "male", "female")
ENV = "AVATARCINE_SMPL_DIR"


def model_file(body: str, model_path: str | os.PathLike | None, gender: str | None) -> Path:
    """The model file for ``body`` and ``gender`` under ``model_path`` (file or folder)."""
    gender = (gender or "neutral").lower()
    if gender not in GENDERS:
        raise UserError("--gender", f"{gender!r} is not one of {', '.join(GENDERS)}")
    if model_path is None:
        model_path = os.environ.get(ENV)
    if not model_path:
        raise UserError("--model-path", f"{body} needs the licensed model files: pass --model-path DIR or set "
                                        f"${ENV} (expects e.g. DIR/{body}/{body.upper()}_{gender.upper()}.npz|pkl)")
    path = Path(model_path).expanduser()
    if path.is_file():
        return path
    stem = f"{body.upper()}_{gender.upper()}"
    candidates = [path / sub / f"{stem}.{ext}" for sub in (body, "") for ext in ("npz", "pkl")]
    candidates += [path / body / gender / "model.npz", path / gender / "model.npz"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if not path.exists():
        raise UserError(path, f"no such file or folder (the {body} model files go there)")
    raise UserError(path, f"no {gender} {body} model here; expected one of "
                          + ", ".join(str(c.relative_to(path)) for c in candidates))


def read_model_arrays(path: Path) -> dict:
    """The raw arrays of a model file (npz, or a pickle without chumpy objects)."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=True) as data:
                return {k: data[k] for k in data.files}
        with open(path, "rb") as f:
            return dict(pickle.load(f, encoding="latin1"))
    except ModuleNotFoundError as exc:
        raise UserError(path, f"the pickle needs module {exc.name!r} (an original chumpy model file); "
                              "convert it to plain numpy arrays as smplx's docs describe") from None
    except Exception as exc:
        raise UserError(path, f"not a readable model file ({type(exc).__name__}: {exc})") from None


def load_model(body: str, path: Path, gender: str | None, num_betas: int):
    """The ``smplx`` body model (float64) for a model file (``num_betas``: what its forward takes)."""
    import torch
    import smplx

    kwargs = dict(gender=(gender or "neutral").lower(), num_betas=num_betas, dtype=torch.float64)
    if body != "smpl":
        kwargs.update(use_pca=False, flat_hand_mean=True, ext=path.suffix.lstrip("."))
    cls = {"smpl": smplx.SMPL, "smplh": smplx.SMPLH, "smplx": smplx.SMPLX}[body]
    try:
        # smplx prints a warning when a file has fewer shape directions than its full space; we
        # read all of them ourselves (``shape_directions``), so the warning would mislead
        with contextlib.redirect_stdout(io.StringIO()):
            model = cls(model_path=str(path), **kwargs)
    except (KeyError, AttributeError, ValueError, IndexError, RuntimeError, pickle.UnpicklingError, OSError) as exc:
        raise UserError(path, f"not a usable {body} model file ({type(exc).__name__}: {exc})") from None
    except ModuleNotFoundError as exc:
        raise UserError(path, f"the pickle needs module {exc.name!r} (an original chumpy model file); "
                              "convert it to plain numpy arrays as smplx's docs describe") from None
    n_joints = len(skeleton(body)[0])
    if model.J_regressor.shape[0] != n_joints:
        raise UserError(path, f"has {model.J_regressor.shape[0]} joints; a {body} model has {n_joints}")
    return model


def parse_betas(shape: dict | None) -> np.ndarray:
    """``{"beta0": .., "beta3": ..}`` -> betas vector (missing ones 0, at least 10)."""
    shape = dict(shape or {})
    index = {}
    for key, value in shape.items():
        if not (key.startswith("beta") and key[4:].isdigit()):
            raise UserError("--shape", f"unknown SMPL shape parameter {key!r}; use beta0=.. beta1=.. (betaN)")
        index[int(key[4:])] = float(value)
    betas = np.zeros(max(10, max(index, default=-1) + 1))
    for i, value in index.items():
        betas[i] = value
    return betas


def shape_directions(body: str, raw: dict) -> np.ndarray:
    """The file's shape blend shapes (V, 3, B), all of them: smplx keeps only 10 when a file has
    fewer than its full space (e.g. AMASS's 16-beta SMPL+H), but AMASS fits use all 16. SMPL-X
    files append the expression directions (10 after 10 in v1.0, 100 after 300 in v1.1)."""
    dirs = np.asarray(raw["shapedirs"], dtype=np.float64)
    if body == "smplx":
        dirs = dirs[..., :300] if dirs.shape[-1] >= 400 else dirs[..., :10]
    return dirs


def _shaped(model, dirs: np.ndarray, betas: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rest vertices (V, 3) and joints (J, 3) in the modelling frame for ``betas``."""
    n = dirs.shape[-1]
    if np.any(betas[n:] != 0):
        raise UserError(path, f"the model has {n} shape coefficients; got betas up to beta{len(betas) - 1}")
    v = model.v_template.numpy() + dirs @ np.pad(betas, (0, max(0, n - len(betas))))[:n]
    return v, model.J_regressor.numpy() @ v


def rest_joints(body: str, model_path: str | os.PathLike | None, gender: str | None,
                betas: np.ndarray | None = None) -> np.ndarray:
    """Rest joints (J, 3) in the modelling frame, relative to the model origin, for ``betas``."""
    path = model_file(body, model_path, gender)
    betas = np.zeros(10) if betas is None else np.asarray(betas, dtype=np.float64).reshape(-1)
    dirs = shape_directions(body, read_model_arrays(path))
    return _shaped(load_model(body, path, gender, 10), dirs, betas[:dirs.shape[-1]], path)[1]


def joint_part(joint: str) -> str:
    """The body part an SMPL-family joint's skin belongs to (see ``motion.bodies.parts``)."""
    side, _, rest = joint.partition("_")
    if side not in ("left", "right"):
        return {"pelvis": "pelvis", "spine1": "torso", "spine2": "torso", "spine3": "torso",
                "neck": "neck", "head": "head", "jaw": "head"}[joint]
    if rest.startswith("eye"):
        return "head"
    part = {"hip": "upper_leg", "knee": "lower_leg", "ankle": "foot", "foot": "foot", "collar": "torso",
            "shoulder": "upper_arm", "elbow": "lower_arm", "wrist": "hand", "hand": "hand"}.get(rest, "hand")
    return part if part == "torso" else f"{side}_{part}"


def display_tails(heads: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Bone tails for display: the mean of the children's heads; leaves continue their parent's
    direction for half its length (at least 1 cm)."""
    tails = heads.copy()
    for j in range(len(heads)):
        children = np.flatnonzero(parents == j)
        if len(children):
            tails[j] = heads[children].mean(0)
        if np.linalg.norm(tails[j] - heads[j]) < 0.01:
            direction = heads[j] - heads[parents[j]] if j else np.array([0.0, 0.0, 1.0])
            norm = np.linalg.norm(direction)
            direction = direction / norm if norm > 1e-9 else np.array([0.0, 0.0, 1.0])
            tails[j] = heads[j] + direction * max(0.5 * norm, 0.01)
    return tails


def _sparse_weights(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense (V, J) skinning weights -> (V, K) indices and weights, K = most non-zeros per vertex."""
    k = int((dense > 0).sum(1).max())
    idx = np.argsort(-dense, axis=1)[:, :k]
    return idx.astype(np.int64), np.take_along_axis(dense, idx, 1)


def _landmarks(raw: dict) -> dict[str, np.ndarray] | None:
    """iBUG-68 face landmarks (contour of the frontal dynamic bin, then the 51 static ones)."""
    keys = ("lmk_faces_idx", "lmk_bary_coords", "dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords")
    if not all(k in raw for k in keys):
        return None
    dyn_faces, dyn_bary = np.asarray(raw[keys[2]]), np.asarray(raw[keys[3]])
    frontal = 0  # the table's rows are head yaw bins; smplx reads row 0 at zero yaw
    return {"faces_idx": np.concatenate([dyn_faces[frontal], np.asarray(raw[keys[0]]).reshape(-1)]).astype(np.int64),
            "bary_coords": np.concatenate([dyn_bary[frontal], np.asarray(raw[keys[1]]).reshape(-1, 3)])}


def bake_smpl(body: str, model_path=None, gender: str | None = None, shape: dict | None = None) -> AvatarAsset:
    """The avatar asset of an SMPL-family model with betas from ``shape`` (``beta0=..``)."""
    from motion.bodies.parts import PART_NAMES, PART_PALETTE, vertex_parts
    from motion.keypoints import smpl_keypoints

    betas = parse_betas(shape)
    path = model_file(body, model_path, gender)
    model = load_model(body, path, gender, 10)
    raw = read_model_arrays(path)
    verts, joints = _shaped(model, shape_directions(body, raw), betas, path)
    names, parents = skeleton(body)
    M = Y_UP_TO_Z_UP
    world_v = verts @ M.T
    origin = -np.array([*(joints[0] @ M.T)[:2], world_v[:, 2].min()])
    world_v, world_j = world_v + origin, joints @ M.T + origin
    skin_indices, skin_weights = _sparse_weights(model.lbs_weights.numpy())
    n_pose = model.posedirs.shape[0]
    # float32 halves the asset (SMPL-X: 486 x 10475 x 3); offsets are millimetres, error < 1e-9 m
    correctives = (model.posedirs.numpy().reshape(n_pose, -1, 3) @ M.T).astype(np.float32)
    faces = np.asarray(model.faces, dtype=np.int64)
    uvs = None
    if "vt" in raw and "ft" in raw:
        uvs = np.asarray(raw["vt"], dtype=np.float64)[np.asarray(raw["ft"], dtype=np.int64)]
    kp_names, kp_ids, kp_weights = smpl_keypoints(body, model.J_regressor.numpy(), names, faces,
                                                  _landmarks(raw) if body == "smplx" else None)
    return AvatarAsset(
        body=body, skeleton=body, joint_names=names, parents=parents,
        rest_joints=world_j, bone_tails=display_tails(world_j, parents), model_to_world=M,
        rest_vertices=world_v, faces=faces, skin_indices=skin_indices, skin_weights=skin_weights,
        part_names=list(PART_NAMES), part_palette=PART_PALETTE,
        vertex_parts=vertex_parts(skin_indices, skin_weights, [joint_part(n) for n in names]),
        keypoint_names=kp_names, keypoint_vertex_ids=kp_ids, keypoint_vertex_weights=kp_weights,
        uvs=uvs, corrective_shapes=correctives,
        corrective_names=[f"{names[j]}.r{a}{b}" for j in range(1, len(names)) for a in range(3) for b in range(3)],
        shape={"gender": (gender or "neutral").lower(), "betas": betas, "model_origin": origin,
               "model_file": str(path)},
    ).validate(path)

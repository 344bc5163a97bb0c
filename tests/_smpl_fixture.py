"""Synthetic SMPL-family model files in the official layouts (we cannot ship the licensed ones).

Same array names, shapes and dtypes as the released files that ``smplx`` reads (SMPL .pkl with a
scipy-sparse ``J_regressor``, SMPL-H .pkl with hand PCA arrays, SMPL-X v1.0 .npz with 10 shape +
10 expression directions, landmarks and UVs), and the official vertex counts so the published
keypoint vertex ids are valid. The geometry is our own: vertices scattered along the bones of the
reference skeleton, skinned to the bone and its child, random shape and pose-corrective
directions, and joint-regressor rows that average six vertices placed symmetrically about each
joint. The vertices behind the published keypoint ids sit where those keypoints belong.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.sparse

from motion.reference_skeleton import reference_joints
from motion.skeletons import skeleton

LAYOUT = {  # body: (vertices, faces, shape directions, file name, file format)
    "smpl": (6890, 13776, 10, "SMPL_NEUTRAL.pkl"),
    "smplh": (6890, 13776, 16, "SMPLH_MALE.pkl"),
    "smplx": (10475, 20908, 20, "SMPLX_NEUTRAL.npz"),
}


def _special_vertices(body: str, joints: dict[str, np.ndarray]) -> dict[int, tuple[np.ndarray, str]]:
    """Published keypoint vertex ids -> (position, joint skinning it)."""
    from smplx.vertex_ids import vertex_ids

    vid = vertex_ids["smplx" if body == "smplx" else "smplh"]
    head = joints["head"]
    out = {vid["nose"]: (head + [0.0, 0.02, 0.11], "head"),
           vid["leye"]: (head + [0.03, 0.06, 0.09], "head"), vid["reye"]: (head + [-0.03, 0.06, 0.09], "head"),
           vid["lear"]: (head + [0.075, 0.03, 0.0], "head"), vid["rear"]: (head + [-0.075, 0.03, 0.0], "head")}
    if body != "smpl":
        for side, s in (("left", "l"), ("right", "r")):
            for finger in ("thumb", "index", "middle", "ring", "pinky"):
                j3, j2 = joints[f"{side}_{finger}3"], joints[f"{side}_{finger}2"]
                out[vid[f"{s}{finger}"]] = (j3 + (j3 - j2), f"{side}_{finger}3")
    return out


def model_arrays(body: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The arrays of one synthetic model file."""
    n_verts, n_faces, n_shape, _ = LAYOUT[body]
    rng = np.random.default_rng(seed)
    names, parents = skeleton(body)
    J = len(names)
    _, joints = reference_joints(body)
    special = _special_vertices(body, dict(zip(names, joints)))
    free = np.array([v for v in range(n_verts) if v not in special])

    v_template = np.zeros((n_verts, 3))
    weights = np.zeros((n_verts, J))
    # six vertices per joint, symmetric about it: the joint regressor averages them
    regressor = scipy.sparse.lil_matrix((J, n_verts))
    axes = np.vstack([np.eye(3), -np.eye(3)]) * 0.02
    for j in range(J):
        ids = free[6 * j: 6 * j + 6]
        v_template[ids] = joints[j] + axes
        weights[ids, j] = 1.0
        regressor[j, ids] = 1.0 / 6.0
    # the rest scattered along each bone towards its first child, blended into the child
    rest = free[6 * J:]
    bone = rng.integers(0, J, len(rest))
    first_child = np.array([np.flatnonzero(parents == j)[0] if np.any(parents == j) else -1 for j in range(J)])
    u = rng.uniform(0.0, 1.0, len(rest))
    tip = np.where(first_child[bone, None] >= 0, joints[np.maximum(first_child[bone], 0)],
                   joints[bone] + 0.5 * (joints[bone] - joints[np.maximum(parents[bone], 0)]))
    v_template[rest] = joints[bone] + u[:, None] * (tip - joints[bone]) + rng.normal(0, 0.03, (len(rest), 3))
    blend = np.where(first_child[bone] >= 0, 0.5 * u, 0.0)
    weights[rest, bone] = 1.0 - blend
    has_child = first_child[bone] >= 0
    weights[rest[has_child], first_child[bone][has_child]] += blend[has_child]
    for v, (position, joint) in special.items():
        v_template[v] = position
        weights[v, names.index(joint)] = 1.0

    faces = rng.integers(0, n_verts - 2, n_faces)[:, None] + np.arange(3)
    kintree = np.stack([np.where(parents < 0, 4294967295, parents), np.arange(J)]).astype(np.int64)
    arrays = {
        "v_template": v_template,
        "f": faces.astype(np.uint32),
        "J_regressor": regressor.tocsc(),
        "weights": weights,
        "kintree_table": kintree,
        "shapedirs": rng.normal(0, 0.01, (n_verts, 3, n_shape)),
        "posedirs": rng.normal(0, 0.005, (n_verts, 3, 9 * (J - 1))),
    }
    if body != "smpl":
        for side in "lr":
            arrays[f"hands_components{side}"] = np.linalg.qr(rng.normal(size=(45, 45)))[0]
            arrays[f"hands_mean{side}"] = rng.normal(0, 0.1, 45)
    if body == "smplx":
        arrays["J_regressor"] = regressor.toarray()
        arrays["f"] = faces.astype(np.int32)
        head = np.flatnonzero(weights[:, names.index("head")] > 0.5)
        head_faces = np.flatnonzero(np.isin(faces, head).all(1))
        if len(head_faces) < 51:  # make sure some faces lie on the head
            arrays["f"][:51] = np.sort(rng.choice(head, (51, 3)), axis=1)
            head_faces = np.arange(51)
        arrays["lmk_faces_idx"] = rng.choice(head_faces, 51).astype(np.int64)
        arrays["lmk_bary_coords"] = rng.dirichlet(np.ones(3), 51)
        arrays["dynamic_lmk_faces_idx"] = rng.choice(head_faces, (79, 17)).astype(np.int64)
        arrays["dynamic_lmk_bary_coords"] = rng.dirichlet(np.ones(3), (79, 17))
        arrays["vt"] = rng.uniform(0, 1, (11313, 2))
        arrays["ft"] = rng.integers(0, 11313, (n_faces, 3)).astype(np.int64)
    return arrays


def write_model(root: str | Path, body: str, layout: str = "smplx", seed: int = 0) -> Path:
    """Write one synthetic model file; ``layout`` 'smplx' -> ROOT/<body>/<FILE>, 'flat' -> ROOT/<FILE>."""
    _, _, _, name = LAYOUT[body]
    folder = Path(root) / body if layout == "smplx" else Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    arrays = model_arrays(body, seed)
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    else:
        with open(path, "wb") as f:
            pickle.dump(arrays, f, protocol=2)
    return path

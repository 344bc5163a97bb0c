"""OpenPose keypoints as vertex regressors: each keypoint is a fixed convex combination of mesh
vertices, so it follows the skinned (posed) mesh exactly and ``AvatarAsset.keypoints`` needs
no rig.

Order in an asset: the 18 OpenPose body keypoints (``OPENPOSE18``), then, where the
body has fingers, 21 per hand in OpenPose hand order (wrist; thumb CMC, MCP, IP, tip; index,
middle, ring, pinky each MCP, PIP, DIP, tip) as ``left_hand_<point>`` / ``right_hand_<point>``,
then 68 face landmarks ``face_00`` .. ``face_67`` where the model file has landmarks (SMPL-X).

Sources:
- Anny: its COCO-17 regressor (``data/keypoints/coco.pth``) mapped to OpenPose order; neck =
  mean of the shoulders (stays linear). Finger joints: convex weights over the 24 vertices nearest
  the bone head among those the bone or its parent skin, fitted (non-negative least squares with
  a sum-to-one row) so the keypoint follows the bone head over the rest pose and 24 random poses
  of every joint (so it stays on the joint when posed, not only at rest); fingertips: the vertex of the distal phalanx farthest along the bone. Anny has
  no face landmarks.
- SMPL family: joints from the model's ``J_regressor`` rows (its official joint regressor);
  nose, eyes, ears and fingertips from the vertex ids ``smplx.vertex_ids.VERTEX_IDS`` lists for
  the official topologies (SMPL/SMPL-H share them; SMPL-X has its own); neck = mean of the
  shoulders as for Anny. SMPL-X face: the 51 static landmarks (``lmk_faces_idx`` /
  ``lmk_bary_coords``) plus the 17 contour points of the dynamic contour table's zero-yaw row,
  in iBUG-68 order (contour first).
"""

from __future__ import annotations

import numpy as np

from motion.errors import UserError

# OpenPose / COCO-18 body keypoint order (what ControlNet's OpenPose annotator draws).
OPENPOSE18 = [
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
]

# Keypoints on the skin (regressed from surface vertices, seen only from their side); the others are
# joints inside the body (render.projection decides their visibility by what covers them).
FACE_POINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")

HAND21 = ["wrist"] + [f"{finger}{k}" for finger in ("thumb", "index", "middle", "ring", "pinky")
                      for k in range(1, 5)]
Row = tuple[np.ndarray, np.ndarray]  # vertex ids, weights


def is_face_point(name: str) -> bool:
    """Whether keypoint ``name`` lies on the face's surface (FACE_POINTS and face landmarks ``face_*``)."""
    return name in FACE_POINTS or name.startswith("face_")


def hand_names(side: str) -> list[str]:
    return [f"{side}_hand_{point}" for point in HAND21]


def pack(rows: list[Row]) -> tuple[np.ndarray, np.ndarray]:
    """Sparse rows -> (K, N) vertex ids and weights, padded with weight 0 on vertex 0."""
    n = max(len(ids) for ids, _ in rows)
    ids = np.zeros((len(rows), n), dtype=np.int64)
    weights = np.zeros((len(rows), n))
    for k, (i, w) in enumerate(rows):
        ids[k, :len(i)] = i
        weights[k, :len(w)] = np.asarray(w) / np.sum(w)
    return ids, weights


def mean_row(*rows: Row) -> Row:
    """The keypoint at the mean of other keypoints (a linear regressor again)."""
    ids = np.concatenate([r[0] for r in rows])
    weights = np.concatenate([np.asarray(r[1]) / np.sum(r[1]) / len(rows) for r in rows])
    unique, inverse = np.unique(ids, return_inverse=True)
    return unique, np.bincount(inverse, weights=weights)


def dense_row(weights: np.ndarray) -> Row:
    ids = np.flatnonzero(weights)
    return ids, weights[ids]


def convex_fit(samples: np.ndarray, targets: np.ndarray, candidates: np.ndarray) -> Row:
    """Convex weights over ``candidates`` whose blend of the sampled vertices (S, V, 3) best
    follows the sampled ``targets`` (S, 3): non-negative least squares with a heavily weighted
    sum-to-one row."""
    from scipy.optimize import nnls

    lam = 10.0 * np.sqrt(len(samples))
    A = np.vstack([np.moveaxis(samples[:, candidates], 1, 2).reshape(-1, len(candidates)),
                   lam * np.ones(len(candidates))])
    w, _ = nnls(A, np.append(targets.reshape(-1), lam))
    keep = w > 1e-9
    return candidates[keep], w[keep] / w[keep].sum()


def _coco_rows(model) -> dict[str, Row]:
    import anny

    regressor = anny.KeypointsRegressor.coco(model)
    weights = regressor.regression_weights.double().numpy()
    return {label: dense_row(weights[k]) for k, label in enumerate(regressor.labels)}


def openpose18_rows(points: dict[str, Row]) -> list[Row]:
    """OpenPose-18 rows from rows named like OPENPOSE18 (the neck derived from the shoulders)."""
    return [mean_row(points["left_shoulder"], points["right_shoulder"]) if name == "neck" else points[name]
            for name in OPENPOSE18]


def anny_keypoints(model, asset, n_poses: int = 24, n_candidates: int = 24):
    """Keypoint names and (K, N) regressors for a baked Anny ``asset`` (before its keypoints)."""
    coco = _coco_rows(model)
    rows, names = openpose18_rows(coco), list(OPENPOSE18)
    rng = np.random.default_rng(0)
    poses = asset.rest_motion(n_poses + 1)
    rotations = rng.normal(0.0, 0.35, poses.rotations.shape)
    rotations[0] = 0.0
    rotations[:, 0] = poses.rotations[:, 0]
    poses = poses.replace(rotations=rotations)
    samples, joints = asset.skin(poses), poses.joint_positions(asset.rest_offsets)
    vertices, bones = asset.rest_vertices, asset.joint_names
    parents = asset.parents

    def joint(bone: str) -> Row:
        # fitted to follow the bone head over random poses of every joint, from the vertices
        # nearest it among those the bone or its parent skin
        b = bones.index(bone)
        touched = np.flatnonzero(np.isin(asset.skin_indices, [b, parents[b]]).any(1))
        distance = np.linalg.norm(vertices[touched] - asset.rest_joints[b], axis=1)
        near = touched[np.argsort(distance)[:n_candidates]]
        return convex_fit(samples, joints[:, b], near)

    def tip(bone: str) -> Row:
        b = bones.index(bone)
        own = np.flatnonzero(asset.skin_indices[np.arange(len(vertices)), asset.skin_weights.argmax(1)] == b)
        axis = asset.rest_joints[b] - asset.rest_joints[parents[b]]
        return own[[np.argmax((vertices[own] - asset.rest_joints[b]) @ axis)]], np.ones(1)

    for side, s in (("left", "L"), ("right", "R")):
        names += hand_names(side)
        rows.append(coco[f"{side}_wrist"])
        for finger in range(1, 6):  # Anny's finger1 is the thumb, finger2..5 index..pinky
            rows += [joint(f"finger{finger}-{k}.{s}") for k in (1, 2, 3)] + [tip(f"finger{finger}-3.{s}")]
    ids, weights = pack(rows)
    return names, ids, weights


def smpl_keypoints(body: str, J_regressor: np.ndarray, joint_names: list[str], faces: np.ndarray,
                   landmarks: dict[str, np.ndarray] | None = None):
    """Keypoint names and (K, N) regressors for an SMPL-family model with the official topology."""
    from smplx.vertex_ids import vertex_ids

    vid = vertex_ids["smplx" if body == "smplx" else "smplh"]
    if max(vid.values()) >= J_regressor.shape[1]:
        raise UserError(body, f"model has {J_regressor.shape[1]} vertices; the official {body} topology "
                              "is needed for the keypoint vertices")

    def joint(name: str) -> Row:
        return dense_row(J_regressor[joint_names.index(name)])

    def vertex(key: str) -> Row:
        return np.array([vid[key]]), np.ones(1)

    points = {name: joint(name) for name in (f"{side}_{j}" for side in ("left", "right")
                                             for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"))}
    points.update(nose=vertex("nose"), left_eye=vertex("leye"), right_eye=vertex("reye"),
                  left_ear=vertex("lear"), right_ear=vertex("rear"))
    names, rows = list(OPENPOSE18), openpose18_rows(points)
    if body in ("smplh", "smplx"):
        for side in ("left", "right"):
            names += hand_names(side)
            rows.append(joint(f"{side}_wrist"))
            for finger in ("thumb", "index", "middle", "ring", "pinky"):
                rows += [joint(f"{side}_{finger}{k}") for k in (1, 2, 3)] + [vertex(f"{side[0]}{finger}")]
    if landmarks is not None:
        tri = faces[landmarks["faces_idx"]]                              # (68, 3)
        names += [f"face_{i:02d}" for i in range(len(tri))]
        rows += [(t, b) for t, b in zip(tri, landmarks["bary_coords"])]
    ids, weights = pack(rows)
    return names, ids, weights

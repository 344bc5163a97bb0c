"""Inverse kinematics: world joint positions (T, 22, 3) -> a Motion on the SMPL-22 skeleton.

Text-to-motion models (MDM, T2M-GPT, MoMask) output HumanML3D joint positions, not rotations.
We recover rotations analytically, bone by bone, in the parents-first order:

- Rest skeleton: bone *directions* from ``motion.reference_skeleton`` (SMPL topology, modelling
  frame Y up, facing +Z, left +X), bone *lengths* from the data (median over the clip), so the
  rest pose is the reference pose with the performer's proportions.
- Joints with several children (pelvis: hips + spine; spine3: neck + collars) get the rotation
  that best maps their rest child offsets onto the observed ones (Kabsch / Wahba's problem).
- Joints with one child get the swing that points the bone at the child; the twist about the bone,
  which positions alone do not fix, comes from body geometry: spine1/spine2 blend the hip and
  shoulder lines; hips, knees and ankles use the leg plane (shin x foot, always defined because
  the foot is never along the shin); shoulders and elbows use the elbow's hinge axis (upper arm x
  forearm) when the arm is bent more than ~25 degrees and fade to the minimal (parent-relative)
  twist as it straightens; collars and neck keep the minimal twist. Leaves (head, feet tips,
  wrists) keep the identity local rotation: 22 joints say nothing about them.
- Placement: parents first, each bone is aimed from where forward kinematics puts its joint at
  the observed child, so bone-length jitter in generated motion does not add up along chains.
- Smoothing: the twist of each single-child bone about itself (what the geometry fixes least
  well) is low-pass filtered over time (Gaussian, ``smooth_seconds``); a twist about the bone
  moves no joint, so the fit is untouched.

Forward kinematics of the result reproduces the input to within the data's bone-length variation
(exactly consistent skeletons: well under a millimetre; see tests/test_ik.py).
"""

from __future__ import annotations

import numpy as np

from motion.errors import UserError
from motion.motion import Motion
from motion.reference_skeleton import reference_joints
from motion.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quat, rotation_between
from motion.skeletons import skeleton as skeleton_of

SKELETON = "humanml3d"
_TWIST_FULL_BEND = np.sin(np.deg2rad(25.0))


def positions_to_motion(joints: np.ndarray, skeleton: str = SKELETON, fps: float = 20.0, *,
                        smooth_seconds: float = 0.03, where: str = "joints") -> Motion:
    """IK of world joint positions (T, 22, 3) (Z up, metres, SMPL-22 order) -> validated Motion."""
    if skeleton != SKELETON:
        raise UserError(where, f"IK solves the {SKELETON!r} (SMPL-22) skeleton, not {skeleton!r}")
    names, parents = skeleton_of(SKELETON)
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (len(names), 3):
        raise UserError(where, f"joint positions must have shape (frames, {len(names)}, 3), got {joints.shape}")
    if len(joints) == 0:
        raise UserError(where, "motion has zero frames")
    if not np.all(np.isfinite(joints)):
        raise UserError(where, "joint positions contain NaN or inf")
    if not np.isfinite(fps) or fps <= 0:
        raise UserError(where, f"fps must be a positive number, got {fps}")
    idx = {n: i for i, n in enumerate(names)}
    lengths = np.median(np.linalg.norm(joints[:, 1:] - joints[:, parents[1:]], axis=-1), axis=0)
    if np.any(lengths < 1e-6):
        bad = names[1 + int(np.argmin(lengths))]
        raise UserError(where, f"bone to {bad!r} has zero length: joints coincide")
    ref = reference_joints(SKELETON)[1]
    offsets = ref.copy()
    directions = ref[1:] - ref[parents[1:]]
    offsets[1:] = directions / np.linalg.norm(directions, axis=-1, keepdims=True) * lengths[:, None]
    rest = np.zeros_like(ref)
    for j in range(1, len(names)):
        rest[j] = rest[parents[j]] + offsets[j]

    children = [[c for c in range(len(names)) if parents[c] == j] for j in range(len(names))]
    side = _side_vectors(joints, idx)
    rest_side = _side_vectors(rest[None], idx)
    G = np.zeros((len(joints), len(names), 3, 3))
    for j, name in enumerate(names):
        kids = children[j]
        if len(kids) > 1:
            G[:, j] = _kabsch(offsets[kids], joints[:, kids] - joints[:, j:j + 1])
            continue
        if not kids:  # leaf: identity local rotation
            G[:, j] = G[:, parents[j]]
            continue
        bone = joints[:, kids[0]] - joints[:, j]
        minimal = _aim(G[:, parents[j]], offsets[kids[0]], bone)
        if name in side:
            G[:, j] = _frame(bone, side[name]) @ np.swapaxes(_frame(offsets[kids[0]], rest_side[name][0]), -1, -2)
        elif name.endswith(("shoulder", "elbow")):
            G[:, j] = _hinge_twist(minimal, bone, offsets[kids[0]], joints, idx, name.split("_")[0])
        else:
            G[:, j] = minimal
    # Re-aim every bone from where forward kinematics puts its parent joint, so that bone-length
    # jitter in the data does not add up along the chains.
    placed = np.zeros_like(joints)
    placed[:, 0] = joints[:, 0]
    for j, kids in enumerate(children):
        if len(kids) > 1:
            G[:, j] = _kabsch(offsets[kids], joints[:, kids] - placed[:, j:j + 1])
        elif kids:
            G[:, j] = _aim(G[:, j], offsets[kids[0]], joints[:, kids[0]] - placed[:, j])
        for c in kids:
            placed[:, c] = placed[:, j] + G[:, j] @ offsets[c]
    # Local rotations, parents first; a single-child bone's twist about its own rest direction is
    # low-pass filtered (twisting about the bone leaves the bone, hence every joint, in place).
    local = G.copy()
    for j in range(1, len(names)):
        kids = children[j]
        local[:, j] = np.eye(3) if not kids else np.swapaxes(G[:, parents[j]], -1, -2) @ G[:, j]
        if len(kids) == 1:
            local[:, j] = _smooth_twist(local[:, j], offsets[kids[0]], smooth_seconds * fps)
        G[:, j] = G[:, parents[j]] @ local[:, j]
    return Motion(skeleton=SKELETON, joint_names=names, parents=parents, fps=fps,
                  rotations=matrix_to_axis_angle(local), root_translation=joints[:, 0],
                  rest_offsets=offsets).validate(where)


def _side_vectors(P: np.ndarray, idx: dict[str, int]) -> dict[str, np.ndarray]:
    """Per joint, a vector (T, 3) that fixes the twist about its bone, from body geometry."""
    def joint(n):
        return P[:, idx[n]]

    hips = joint("left_hip") - joint("right_hip")
    shoulders = joint("left_shoulder") - joint("right_shoulder")
    hips = hips / np.linalg.norm(hips, axis=-1, keepdims=True)
    shoulders = shoulders / np.linalg.norm(shoulders, axis=-1, keepdims=True)
    out = {"spine1": 2 * hips + shoulders, "spine2": hips + 2 * shoulders}
    for s in ("left", "right"):
        leg = np.cross(joint(f"{s}_ankle") - joint(f"{s}_knee"), joint(f"{s}_foot") - joint(f"{s}_ankle"))
        out.update({f"{s}_hip": leg, f"{s}_knee": leg, f"{s}_ankle": leg})
    return out


def _frame(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal frame (..., 3, 3) with columns (primary, secondary made orthogonal, their cross)."""
    a = primary / np.linalg.norm(primary, axis=-1, keepdims=True)
    b = secondary - np.sum(secondary * a, axis=-1, keepdims=True) * a
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return np.stack([a, b, np.cross(a, b)], axis=-1)


def _aim(G: np.ndarray, rest_bone: np.ndarray, bone: np.ndarray) -> np.ndarray:
    """Rotate ``G`` minimally so that it maps ``rest_bone`` onto the direction of ``bone``."""
    return rotation_between(G @ rest_bone, bone) @ G


def _kabsch(rest: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Rotations (T, 3, 3) best mapping rest vectors (K, 3) onto observed ones (T, K, 3)."""
    H = np.einsum("ki,tkj->tij", rest, observed)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.swapaxes(Vt, -1, -2) @ np.swapaxes(U, -1, -2)))
    D = np.zeros_like(H)
    D[:, 0, 0] = D[:, 1, 1] = 1.0
    D[:, 2, 2] = d
    return np.swapaxes(Vt, -1, -2) @ D @ np.swapaxes(U, -1, -2)


def _hinge_twist(minimal: np.ndarray, bone: np.ndarray, rest_bone: np.ndarray, P: np.ndarray,
                 idx: dict[str, int], s: str) -> np.ndarray:
    """Arm bones: twist so the elbow hinge (rest: upper arm x forward) matches upper x forearm.

    Blended by slerp with the minimal twist as the arm straightens (both rotations aim the bone
    the same way, so the blend only changes the twist).
    """
    upper = P[:, idx[f"{s}_elbow"]] - P[:, idx[f"{s}_shoulder"]]
    fore = P[:, idx[f"{s}_wrist"]] - P[:, idx[f"{s}_elbow"]]
    hinge = np.cross(upper, fore)
    bend = np.linalg.norm(hinge, axis=-1) / (np.linalg.norm(upper, axis=-1) * np.linalg.norm(fore, axis=-1))
    rest_hinge = np.cross(rest_bone, [0.0, 0.0, 1.0])  # elbow flexion brings the forearm forward (+Z)
    hinged = _frame(bone, hinge) @ _frame(rest_bone, rest_hinge).T
    weight = np.clip(bend / _TWIST_FULL_BEND, 0.0, 1.0)
    weight = weight * weight * (3 - 2 * weight)  # smoothstep
    delta = np.swapaxes(minimal, -1, -2) @ hinged
    return minimal @ _matrix_power(delta, weight)


def _matrix_power(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """R^t for rotations (T, 3, 3) and fractions t (T,), along the shorter arc."""
    return axis_angle_to_matrix(matrix_to_axis_angle(R) * t[:, None])


def _smooth_twist(L: np.ndarray, bone: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian low-pass over time of the twist of rotations L (T, 3, 3) about the rest ``bone``.

    With L = swing * twist(tau), L @ R(bone, tau_smooth - tau) changes the twist only.
    """
    if sigma_frames < 0.3 or len(L) < 3:
        return L
    axis = bone / np.linalg.norm(bone)
    q = matrix_to_quat(L)
    tau = np.unwrap(2.0 * np.arctan2(q[:, 1:] @ axis, q[:, 0]))
    radius = int(np.ceil(3 * sigma_frames))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    smooth = np.convolve(np.pad(tau, radius, mode="edge"), kernel / kernel.sum(), mode="valid")
    return L @ axis_angle_to_matrix((smooth - tau)[:, None] * axis)

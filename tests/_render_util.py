"""A small synthetic avatar for render/ tests: SMPL-topology reference skeleton, one skinned tube
per bone (two influences per vertex), six body parts, OpenPose-18 keypoints regressed from tube
rings. Independent of the real body models, so render/ is tested on its own."""

from __future__ import annotations

import numpy as np

from motion.asset import AvatarAsset
from motion.motion import Motion
from motion.reference_skeleton import reference_joints
from motion.rotations import Y_UP_TO_Z_UP, matrix_to_axis_angle
from motion.skeletons import skeleton
from render.meta import OPENPOSE18

_KEYPOINT_JOINTS = {
    "nose": "head", "neck": "neck", "right_shoulder": "right_shoulder", "right_elbow": "right_elbow",
    "right_wrist": "right_wrist", "left_shoulder": "left_shoulder", "left_elbow": "left_elbow",
    "left_wrist": "left_wrist", "right_hip": "right_hip", "right_knee": "right_knee",
    "right_ankle": "right_ankle", "left_hip": "left_hip", "left_knee": "left_knee",
    "left_ankle": "left_ankle", "right_eye": "head", "left_eye": "head", "right_ear": "head", "left_ear": "head",
}
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180]], np.uint8)


def tube_avatar(radius: float = 0.045, around: int = 8, rings: int = 4, correctives: bool = False) -> AvatarAsset:
    names, parents = skeleton("smpl")
    _, joints_model = reference_joints("smpl")
    joints = joints_model @ Y_UP_TO_Z_UP.T
    joints -= [joints[0, 0], joints[0, 1], joints[:, 2].min() - 0.06]
    verts, faces, idx, wts, parts, ring_of = [], [], [], [], [], {}
    angle = np.linspace(0, 2 * np.pi, around, endpoint=False)
    for j in range(1, len(names)):
        p = parents[j]
        a, b = joints[p], joints[j]
        axis = (b - a) / max(np.linalg.norm(b - a), 1e-6)
        u = np.cross(axis, [0.0, 0.0, 1.0] if abs(axis[2]) < 0.9 else [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        w = np.cross(axis, u)
        base = len(verts)
        for r, f in enumerate(np.linspace(0.0, 1.0, rings)):
            centre = a + f * (b - a)
            for t in angle:
                verts.append(centre + radius * (np.cos(t) * u + np.sin(t) * w))
                idx.append([p, j])
                wts.append([1.0 - 0.4 * f, 0.4 * f])
                parts.append(p % len(PALETTE))
        for r in range(rings - 1):
            for k in range(around):
                v00, v01 = base + r * around + k, base + r * around + (k + 1) % around
                v10, v11 = v00 + around, v01 + around
                faces += [[v00, v01, v11], [v00, v11, v10]]
        ring_of[names[j]] = base + (rings - 1) * around + np.arange(around)
    for j in range(len(names)):          # a ball at every joint closes the gaps at bends
        p = max(parents[j], 0)
        base = len(verts)
        lat = np.linspace(-np.pi / 2, np.pi / 2, 5)[1:-1]
        for phi in lat:
            for t in angle:
                verts.append(joints[j] + 1.3 * radius * np.array([np.cos(phi) * np.cos(t), np.cos(phi) * np.sin(t),
                                                                   np.sin(phi)]))
        verts += [joints[j] - [0, 0, 1.3 * radius], joints[j] + [0, 0, 1.3 * radius]]
        idx += [[p, j]] * (len(lat) * around + 2)
        wts += [[1.0, 0.0]] * (len(lat) * around + 2)
        parts += [p % len(PALETTE)] * (len(lat) * around + 2)
        south, north = base + len(lat) * around, base + len(lat) * around + 1
        for k in range(around):
            k1 = (k + 1) % around
            faces.append([south, base + k1, base + k])
            faces.append([north, base + (len(lat) - 1) * around + k, base + (len(lat) - 1) * around + k1])
            for r in range(len(lat) - 1):
                a0, a1 = base + r * around + k, base + r * around + k1
                faces += [[a0, a1, a1 + around], [a0, a1 + around, a0 + around]]
    verts = np.array(verts)
    kp_ids = np.stack([ring_of[_KEYPOINT_JOINTS[k]] for k in OPENPOSE18])
    tails = joints.copy()
    for j in range(len(names)):
        children = [c for c in range(len(names)) if parents[c] == j]
        tails[j] = joints[children[0]] if children else joints[j] + [0.0, 0.0, 0.08]
    shapes = None
    if correctives:
        rng = np.random.default_rng(3)
        shapes = rng.normal(0.0, 0.004, (9 * (len(names) - 1), len(verts), 3))
    return AvatarAsset(
        body="smpl", skeleton="smpl", joint_names=names, parents=np.asarray(parents), rest_joints=joints,
        bone_tails=tails, model_to_world=Y_UP_TO_Z_UP.copy(), rest_vertices=verts,
        faces=np.array(faces), skin_indices=np.array(idx), skin_weights=np.array(wts),
        part_names=[f"part{i}" for i in range(len(PALETTE))], part_palette=PALETTE,
        vertex_parts=np.array(parts), keypoint_names=list(OPENPOSE18), keypoint_vertex_ids=kp_ids,
        keypoint_vertex_weights=np.full(kp_ids.shape, 1.0 / around), corrective_shapes=shapes,
        corrective_names=[f"{j}.r{r}{c}" for j in names[1:] for r in range(3) for c in range(3)] if correctives else [],
    ).validate("tube_avatar")


def wave_motion(asset: AvatarAsset, n_frames: int = 6, fps: float = 30.0, walk: float = 0.0) -> Motion:
    """Arms and knees swinging, body turning slowly, optionally walking along +x."""
    motion = asset.rest_motion(n_frames, fps)
    t = np.arange(n_frames) / fps
    rot = motion.rotations.copy()
    for joint, axis, amp in (("left_shoulder", 2, 0.8), ("right_shoulder", 2, -0.6), ("left_knee", 0, 0.7),
                             ("right_elbow", 1, 0.9), ("spine1", 0, 0.2)):
        rot[:, motion.joint(joint), axis] = amp * np.sin(2 * np.pi * 1.5 * t)
    turn = 0.3 * np.sin(2 * np.pi * 0.5 * t)
    c, s = np.cos(turn), np.sin(turn)
    Rz = np.zeros((n_frames, 3, 3))
    Rz[:, 0, 0], Rz[:, 0, 1], Rz[:, 1, 0], Rz[:, 1, 1], Rz[:, 2, 2] = c, -s, s, c, 1.0
    rot[:, 0] = matrix_to_axis_angle(Rz @ asset.model_to_world)
    trans = motion.root_translation.copy()
    trans[:, 0] += walk * t
    return motion.replace(rotations=rot, root_translation=trans)


def panel_avatar(size: float = 1.0) -> AvatarAsset:
    """A square panel 1 m wide facing -Y (towards a front camera), one joint: normals test."""
    h = size / 2
    verts = np.array([[-h, 0.0, 1.0 - h], [h, 0.0, 1.0 - h], [h, 0.0, 1.0 + h], [-h, 0.0, 1.0 + h]])
    kp = np.zeros((18, 1), int)
    return AvatarAsset(
        body="anny", skeleton="panel", joint_names=["root"], parents=np.array([-1]),
        rest_joints=np.array([[0.0, 0.0, 1.0]]), bone_tails=np.array([[0.0, 0.0, 1.2]]),
        model_to_world=np.eye(3), rest_vertices=verts, faces=np.array([[0, 1, 2], [0, 2, 3]]),
        skin_indices=np.zeros((4, 1), int), skin_weights=np.ones((4, 1)), part_names=["panel"],
        part_palette=PALETTE[:1], vertex_parts=np.zeros(4, int), keypoint_names=list(OPENPOSE18),
        keypoint_vertex_ids=kp, keypoint_vertex_weights=np.ones((18, 1)),
    ).validate("panel")


def write_actor(folder, name: str, asset: AvatarAsset, motion: Motion) -> dict:
    """Save a baked actor next to a scene; its scene entry."""
    asset.save(folder / f"{name}.avatar.npz", force=True)
    motion.save(folder / f"{name}.motion.npz", force=True)
    return {"name": name, "avatar": f"{name}.avatar.npz", "motion": f"{name}.motion.npz"}

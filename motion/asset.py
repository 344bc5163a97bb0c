"""The avatar asset: everything ``render/`` needs to build and pose a body without torch.

Frames. ``rest_vertices`` and ``rest_joints`` are in the world convention (Z up, metres, the body
facing -Y, standing on z = 0, root above the origin). The body model's own modelling frame (Y up for
SMPL-family, Z up for Anny) maps to that world by ``model_to_world`` (3x3). A ``Motion`` for this
avatar has the avatar's joints; its joint frames are aligned with the modelling frame in the rest
pose (SMPL convention), so for frame t with world joint rotations G (from ``Motion.global_transforms``,
root rotation included) and joint positions p, linear blend skinning is

    v' = sum_j w_j * ( G_j @ model_to_world.T @ (v - J_j) + p_j )

with J_j the rest joint positions. The identity pose therefore has root rotation = model_to_world.

Pose correctives (SMPL family, ``posedirs``): when ``corrective_shapes`` is present it holds
9 (J - 1) world-frame vertex offsets, shape 9 (j - 1) + 3 a + b weighted by (R_j[a, b] - delta_ab)
with R_j joint j's local rotation matrix (the Motion's rotation of joint j); their weighted sum is
added to the rest vertices before skinning. ``corrective_names`` spell this as ``<joint>.r<a><b>``
(e.g. for Blender shape keys driven by the pose bones).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from motion.errors import UserError
from motion.fileio import load_npz, save_npz
from motion.motion import Motion
from motion.reference_skeleton import joints_to_offsets
from motion.skeletons import check_parents

FORMAT = "avatarcine.avatar/1"


@dataclasses.dataclass
class AvatarAsset:
    body: str                       # anny | smpl | smplh | smplx
    skeleton: str                   # name motions for this avatar carry
    joint_names: list[str]
    parents: np.ndarray             # (J,)
    rest_joints: np.ndarray         # (J, 3) world
    bone_tails: np.ndarray          # (J, 3) world; display only (Blender edit bones)
    model_to_world: np.ndarray      # (3, 3)
    rest_vertices: np.ndarray       # (V, 3) world
    faces: np.ndarray               # (F, 3) triangles
    skin_indices: np.ndarray        # (V, K) joint ids
    skin_weights: np.ndarray        # (V, K) rows sum to 1
    part_names: list[str]           # body parts, id = index
    part_palette: np.ndarray        # (P, 3) uint8 colours of the semantic pass
    vertex_parts: np.ndarray        # (V,) part id per vertex
    keypoint_names: list[str]       # OpenPose-18 first, then hands/face where the model has them
    keypoint_vertex_ids: np.ndarray      # (K, N) vertices each keypoint is regressed from
    keypoint_vertex_weights: np.ndarray  # (K, N) weights, rows sum to 1
    uvs: np.ndarray | None = None        # (F, 3, 2) per face-corner texture coordinates
    texture: np.ndarray | None = None    # (H, W, 3) uint8 albedo, when the body ships one
    corrective_shapes: np.ndarray | None = None  # (S, V, 3) pose correctives (SMPL family)
    corrective_names: list[str] = dataclasses.field(default_factory=list)
    shape: dict = dataclasses.field(default_factory=dict)  # betas / gender / phenotypes used

    @property
    def rest_offsets(self) -> np.ndarray:
        """Rest offsets in the modelling frame, for ``Motion.rest_offsets``."""
        return joints_to_offsets(self.rest_joints @ self.model_to_world, self.parents)

    def rest_motion(self, n_frames: int = 1, fps: float = 30.0) -> Motion:
        """The rest pose held for ``n_frames``, as a Motion on this avatar's skeleton."""
        from motion.rotations import matrix_to_axis_angle

        rot = np.zeros((n_frames, len(self.joint_names), 3))
        rot[:, 0] = matrix_to_axis_angle(self.model_to_world)
        return Motion(self.skeleton, self.joint_names, self.parents, fps, rot,
                      np.repeat(self.rest_joints[:1], n_frames, 0), self.rest_offsets)

    def skin(self, motion: Motion, frames: np.ndarray | slice | None = None) -> np.ndarray:
        """Posed vertices (T, V, 3) in world coordinates by linear blend skinning (see module doc)."""
        self.check_motion(motion)
        sub = motion if frames is None else motion.replace(
            rotations=motion.rotations[frames], root_translation=motion.root_translation[frames])
        G, p = sub.global_transforms(self.rest_offsets)
        A = G @ self.model_to_world.T                                  # (T, J, 3, 3)
        t = p - np.einsum("tjab,jb->tja", A, self.rest_joints)        # (T, J, 3)
        rest = self.posed_rest_vertices(sub.rotations)                 # (T, V, 3)
        idx, w = self.skin_indices, self.skin_weights.astype(np.float64)
        out = np.zeros((len(p), len(self.rest_vertices), 3))
        for k in range(idx.shape[1]):
            Ak, tk = A[:, idx[:, k]], t[:, idx[:, k]]
            out += w[None, :, k, None] * (np.einsum("tvab,tvb->tva", Ak, rest) + tk)
        return out

    def corrective_weights(self, rotations: np.ndarray) -> np.ndarray | None:
        """(T, S) weights of the pose correctives for local ``rotations`` (T, J, 3), None without any."""
        if self.corrective_shapes is None:
            return None
        from motion.rotations import axis_angle_to_matrix

        return (axis_angle_to_matrix(rotations[:, 1:]) - np.eye(3)).reshape(len(rotations), -1)

    def posed_rest_vertices(self, rotations: np.ndarray) -> np.ndarray:
        """Rest vertices (T, V, 3) plus the pose correctives of local ``rotations`` (T, J, 3)."""
        rest = np.broadcast_to(self.rest_vertices, (len(rotations),) + self.rest_vertices.shape)
        weights = self.corrective_weights(rotations)
        return rest if weights is None else rest + np.einsum("ts,svd->tvd", weights, self.corrective_shapes)

    def keypoints(self, posed_vertices: np.ndarray) -> np.ndarray:
        """Keypoints (T, K, 3) regressed from posed vertices (T, V, 3)."""
        gathered = posed_vertices[:, self.keypoint_vertex_ids]         # (T, K, N, 3)
        return np.einsum("tknd,kn->tkd", gathered, self.keypoint_vertex_weights)

    def check_motion(self, motion: Motion) -> None:
        if list(motion.joint_names) != list(self.joint_names):
            raise UserError(motion.skeleton, f"motion joints do not match avatar skeleton {self.skeleton!r}; "
                                             "retarget it first (avatarcine motion convert --to ...)")

    def validate(self, where: str | os.PathLike = "avatar") -> "AvatarAsset":
        where = str(where)
        J, V = len(self.joint_names), len(self.rest_vertices)
        check_parents(self.parents, f"{where}: parents")
        shapes = {
            "rest_joints": (self.rest_joints, (J, 3)), "bone_tails": (self.bone_tails, (J, 3)),
            "model_to_world": (self.model_to_world, (3, 3)), "rest_vertices": (self.rest_vertices, (V, 3)),
            "vertex_parts": (self.vertex_parts, (V,)),
        }
        for name, (arr, shape) in shapes.items():
            if np.shape(arr) != shape:
                raise UserError(where, f"{name} must have shape {shape}, got {np.shape(arr)}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or self.faces.max() >= V or self.faces.min() < 0:
            raise UserError(where, "faces must be (F, 3) vertex indices")
        if self.skin_indices.shape != self.skin_weights.shape or self.skin_indices.shape[0] != V:
            raise UserError(where, "skin_indices and skin_weights must both be (V, K)")
        if self.skin_indices.max() >= J or not np.allclose(self.skin_weights.sum(1), 1.0, atol=1e-4):
            raise UserError(where, "skin weights must index joints and sum to 1 per vertex")
        if self.vertex_parts.max() >= len(self.part_names) or len(self.part_palette) != len(self.part_names):
            raise UserError(where, "vertex_parts / part_palette do not match part_names")
        if self.keypoint_vertex_ids.shape != self.keypoint_vertex_weights.shape or \
                len(self.keypoint_vertex_ids) != len(self.keypoint_names):
            raise UserError(where, "keypoint regressors do not match keypoint_names")
        if self.corrective_shapes is not None and (
                np.shape(self.corrective_shapes) != (9 * (J - 1), V, 3) or len(self.corrective_names) != 9 * (J - 1)):
            raise UserError(where, f"corrective_shapes must be ({9 * (J - 1)}, {V}, 3) with as many corrective_names")
        for name in ("rest_vertices", "rest_joints", "skin_weights"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise UserError(where, f"{name} contains NaN or inf")
        return self

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        arrays = {"format": np.array(FORMAT)}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if field.name == "shape":
                arrays.update({f"shape.{k}": np.asarray(v) for k, v in value.items()})
            else:
                arrays[field.name] = np.asarray(value)
        return save_npz(path, arrays, force=force)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AvatarAsset":
        data = load_npz(path)
        if str(data.get("format", "")) != FORMAT:
            raise UserError(path, f"not an avatarcine avatar file (expected format {FORMAT!r}); "
                                  "make one with `avatarcine avatar bake`")
        kwargs, missing = {}, []
        for field in dataclasses.fields(cls):
            if field.name == "shape":
                kwargs["shape"] = {k[6:]: (v.item() if v.ndim == 0 else v) for k, v in data.items()
                                   if k.startswith("shape.")}
            elif field.name in data:
                value = data[field.name]
                if field.name in ("body", "skeleton"):
                    value = str(value)
                elif field.name.endswith("names"):
                    value = [str(v) for v in value]
                kwargs[field.name] = value
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                missing.append(field.name)
        if missing:
            raise UserError(path, f"missing keys: {', '.join(missing)}")
        return cls(**kwargs).validate(path)

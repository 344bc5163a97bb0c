"""Anny (NAVER, Apache-2.0), the default body: phenotype-driven, 104 bones, ships its own data.

Frames. Anny models Z up, facing -Y, the subject's left at +X (Blender's convention), so
``model_to_world`` is the identity; the baked asset is only translated so the feet stand on z = 0
and the root bone's head is above the origin (``shape["model_origin"]`` is where the model's origin
lands in the world).

Pose convention. Anny poses bones by deltas D_c in its 'local-ref' parameterization: each bone has
a rest orientation R_c (``rest_bone_poses``) and a reference orientation U_c; for identity deltas
the skeleton takes a *reference* pose that is not the rest mesh's pose. Our Motion instead rotates
joint frames aligned with the modelling frame in the rest pose. With A_c = U_c R_c^T (rest ->
reference rotation of bone c) and L_c our local rotation, forward kinematics agree exactly when

    D_0 = U_0 G_0 R_0 U_0^T,  d_0 = U_0 (p_0 - origin),   D_c = A_p L_c A_c^T  (c > 0, p its parent)

(G_0 = L_0 the root's world rotation, p_0 its world position); ``anny_pose_parameters`` builds
these and the tests check ``AvatarAsset.skin`` against Anny's own forward pass vertex by vertex.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from motion.asset import AvatarAsset
from motion.errors import UserError
from motion.motion import Motion
from motion.rotations import axis_angle_to_matrix

PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")
GENDER_PHENOTYPE = {"male": 0.0, "neutral": 0.5, "female": 1.0}  # Anny's gender axis: male 0 .. female 1


def check_phenotypes(shape: dict | None) -> dict[str, float]:
    """Validated phenotype values (0..1, default 0.5 each) or a UserError listing the valid ones."""
    shape = dict(shape or {})
    unknown = sorted(set(shape) - set(PHENOTYPES))
    if unknown:
        raise UserError("--shape", f"unknown Anny phenotype(s) {', '.join(unknown)}; "
                                   f"valid: {', '.join(PHENOTYPES)} (each 0..1)")
    values = {}
    for name in PHENOTYPES:
        value = float(shape.get(name, 0.5))
        if not 0.0 <= value <= 1.0:
            raise UserError("--shape", f"Anny phenotype {name}={value:g} is outside 0..1; "
                                       f"valid: {', '.join(PHENOTYPES)} (each 0..1)")
        values[name] = value
    return values


def phenotypes_with_gender(shape: dict | None, gender: str | None) -> dict[str, float]:
    """``shape`` with ``gender`` (male / neutral / female) as the gender phenotype unless it is set."""
    shape = dict(shape or {})
    if gender is not None:
        if gender not in GENDER_PHENOTYPE:
            raise UserError("--gender", f"{gender!r} is not one of {', '.join(GENDER_PHENOTYPE)}")
        shape.setdefault("gender", GENDER_PHENOTYPE[gender])
    return check_phenotypes(shape)


@functools.lru_cache(maxsize=1)
def anny_model():
    """Anny's full-body model (built once per process; the anny package caches its data on disk)."""
    import anny

    return anny.Anny(skinning_method="lbs")


def rest_model(phenotypes: dict[str, float]) -> dict[str, np.ndarray]:
    """Anny's rest mesh and bones for these phenotypes, in its modelling frame (float64 numpy)."""
    import torch

    model = anny_model()
    with torch.no_grad():
        out = model(phenotype_kwargs=phenotypes)
    return {
        "vertices": out["rest_vertices"][0].double().numpy(),
        "heads": out["rest_bone_heads"][0].double().numpy(),
        "rest_orientations": out["rest_bone_poses"][0, :, :3, :3].double().numpy(),
        "reference_orientations": model.reference_bone_orientations.double().numpy(),
    }


def _bone_tails(heads: np.ndarray, orientations: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Display tails: along each bone's local +Y (Blender's bone axis) to its farthest child head;
    leaves and zero-length bones get half their parent's length (at least 1 cm)."""
    length = np.zeros(len(heads))
    for c in range(len(heads) - 1, 0, -1):
        length[parents[c]] = max(length[parents[c]], float(np.linalg.norm(heads[c] - heads[parents[c]])))
    for c in range(len(heads)):
        if length[c] < 1e-3:
            length[c] = max(0.5 * length[parents[c]] if c else 0.1, 0.01)
    return heads + orientations[:, :, 1] * length[:, None]


def joint_part(bone: str) -> str:
    """The body part an Anny bone's skin belongs to (see ``motion.bodies.parts``)."""
    side = {"L": "left_", "R": "right_"}.get(bone.rsplit(".", 1)[-1], "")
    stem = bone.split(".")[0]
    for prefixes, part in (
        (("root", "pelvis", "spine05"), "pelvis"),
        (("spine",  "clavicle", "shoulder"), "torso"),
        (("neck",), "neck"),
        (("head", "eye", "jaw", "tongue"), "head"),
        (("upperarm",), "upper_arm"), (("lowerarm",), "lower_arm"),
        (("wrist", "metacarpal", "finger"), "hand"),
        (("upperleg",), "upper_leg"), (("lowerleg",), "lower_leg"), (("foot", "toe"), "foot"),
    ):
        if stem.startswith(prefixes):
            return part if part in ("pelvis", "torso", "neck", "head") else side + part
    raise UserError("anny", f"no body part known for bone {bone!r}")


def bake_anny(shape: dict | None = None) -> AvatarAsset:
    """The Anny avatar asset for phenotype values ``shape`` (see ``PHENOTYPES``)."""
    from motion.bodies.anny_texture import albedo_texture
    from motion.bodies.parts import PART_NAMES, PART_PALETTE, vertex_parts
    from motion.keypoints import anny_keypoints

    phenotypes = check_phenotypes(shape)
    model = anny_model()
    rest = rest_model(phenotypes)
    parents = np.asarray(model.bone_parents, dtype=np.int64)
    names = list(model.bone_labels)
    origin = np.array([-rest["heads"][0, 0], -rest["heads"][0, 1], -rest["vertices"][:, 2].min()])
    vertices, heads = rest["vertices"] + origin, rest["heads"] + origin
    skin_indices = model.vertex_bone_indices.numpy().astype(np.int64)
    skin_weights = model.vertex_bone_weights.double().numpy()
    faces = model.get_triangular_faces().numpy().astype(np.int64)
    uvs = model.texture_coordinates.double().numpy()[model.face_texture_coordinate_indices.numpy()]
    parts = vertex_parts(skin_indices, skin_weights, [joint_part(b) for b in names])
    asset = AvatarAsset(
        body="anny", skeleton="anny", joint_names=names, parents=parents,
        rest_joints=heads, bone_tails=_bone_tails(heads, rest["rest_orientations"], parents),
        model_to_world=np.eye(3), rest_vertices=vertices, faces=faces,
        skin_indices=skin_indices, skin_weights=skin_weights,
        part_names=list(PART_NAMES), part_palette=PART_PALETTE, vertex_parts=parts,
        keypoint_names=[], keypoint_vertex_ids=np.zeros((0, 1), np.int64), keypoint_vertex_weights=np.zeros((0, 1)),
        uvs=uvs, texture=albedo_texture(faces, uvs, parts),
        shape={**phenotypes, "model_origin": origin},
    )
    kp_names, kp_ids, kp_weights = anny_keypoints(model, asset)
    return dataclasses.replace(asset, keypoint_names=kp_names, keypoint_vertex_ids=kp_ids,
                               keypoint_vertex_weights=kp_weights).validate("anny")


def anny_pose_parameters(motion: Motion, asset: AvatarAsset):
    """Anny's own 'local-ref' pose parameters (T, 104, 4, 4) torch tensor reproducing ``motion``
    on ``asset`` (see the module docstring for the formula)."""
    import torch

    asset.check_motion(motion)
    rest = rest_model({k: float(asset.shape[k]) for k in PHENOTYPES})
    R, U = rest["rest_orientations"], rest["reference_orientations"]
    A = U @ np.swapaxes(R, -1, -2)
    local = axis_angle_to_matrix(motion.rotations)                        # (T, J, 3, 3)
    par = motion.parents[1:]
    D = np.empty((motion.n_frames, motion.n_joints, 4, 4))
    D[..., :, :] = np.eye(4)
    D[:, 1:, :3, :3] = A[par] @ local[:, 1:] @ np.swapaxes(A[1:], -1, -2)
    D[:, 0, :3, :3] = U[0] @ local[:, 0] @ R[0] @ U[0].T
    D[:, 0, :3, 3] = (motion.root_translation - asset.shape["model_origin"]) @ U[0].T
    return torch.as_tensor(D, dtype=torch.float64)
